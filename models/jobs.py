"""Durable jobs: work that outlives a request, claimed with a lease by any process."""

from __future__ import annotations

from typing import Any

from tortoise import fields

from models.base import Entity
from models.enums import JobState


class Job(Entity):
    """One unit of durable work (an export, an erasure, a retention run).

    Its payload and progress hold ids, counts and flags only, never personal data
    (privacy/jobs.py refuses anything else). A claim sets ``lease_owner`` and ``lease_until``;
    a worker that dies leaves the lease to run out and another process takes the job over,
    resuming from ``progress``.
    """

    kind = fields.CharField(max_length=50)
    payload = fields.JSONField[dict[str, Any]](default=dict)
    state = fields.CharEnumField(JobState, default=JobState.QUEUED, max_length=10, db_index=True)
    # When a queued job is next due (its first run, or its retry after a failure).
    run_at = fields.DatetimeField()
    # Bumped by every claim, a lease taken over from a dead worker included.
    attempts = fields.SmallIntField(default=0)
    max_attempts = fields.SmallIntField(default=8)
    lease_owner = fields.CharField(max_length=64, null=True)
    lease_until = fields.DatetimeField(null=True)
    # A short code (an exception's type, a handler's own code), never a message.
    last_error_code = fields.CharField(max_length=64, null=True)
    # Enqueueing the same key twice gives the same job.
    dedupe_key = fields.CharField(max_length=200, null=True, unique=True)
    # The checkpoint of a resumable handler: its last finished step and that step's state.
    progress = fields.JSONField[dict[str, Any]](default=dict)
    # The person the work is about: while their processing is restricted (P25) the job is
    # parked, unless its kind is allowed then (an export, an erasure).
    subject_id = fields.UUIDField(null=True, db_index=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "jobs"
