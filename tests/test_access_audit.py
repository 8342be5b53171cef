"""The access audit (P20): every read of another person's personal data leaves a record."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

import schema.extensions
from models import AuditEvent, User, crypto
from privacy import audit, audit_verify
from tests.helpers import Api

TICKETS = "{ tickets(first: 50) { edges { node { subject requester { id name email } } } } }"


async def user(email: str) -> User:
    return await User.get(email_index=crypto.blind_index(email))


async def reads() -> list[AuditEvent]:
    return await AuditEvent.filter(action=audit.READ_ACTION).order_by("seq")


@pytest.mark.promise("P20")
async def test_an_agent_reading_requesters_leaves_one_record_per_person(as_user: Any) -> None:
    agent = await as_user("agent@example.com")
    response = await agent.post(TICKETS)
    body = response.json()
    assert body.get("errors") is None
    requesters = {edge["node"]["requester"]["email"] for edge in body["data"]["tickets"]["edges"]}
    assert requesters == {"customer@example.com", "customer2@example.com"}
    records = await reads()
    agent_user = await user("agent@example.com")
    expected_subjects = {(await user(email)).id for email in requesters}
    assert {record.subject_id for record in records} == expected_subjects
    for record in records:
        assert record.actor_id == agent_user.id
        assert record.actor_roles == ["agent"]
        assert record.request_id == response.headers["x-request-id"]
        assert record.field_names == ["Ticket.subject", "User.email", "User.name"]
        assert record.entity_id is None
    stored = repr([record.__dict__ for record in records])
    for value in ("customer@example.com", "Carla Customer", "Cannot reset my password"):
        assert value not in stored
    assert (await audit_verify.verify_chain()).intact


@pytest.mark.promise("P20")
async def test_own_data_and_denied_fields_are_not_recorded(as_user: Any) -> None:
    customer = await as_user("customer@example.com")
    body = await customer.gql(
        "{ me { name email phone } tickets(first: 10) { edges { node { subject"
        " assignee { name email } } } } }"
    )
    errors = body["errors"]
    assert {error["extensions"]["code"] for error in errors} == {"FORBIDDEN"}
    records = await reads()
    agent_user = await user("agent@example.com")
    # Only the assignee's name (allowed: a staff member's name) was another person's data.
    assert [(r.subject_id, r.field_names) for r in records] == [(agent_user.id, ["User.name"])]


async def test_the_audit_write_costs_at_most_one_statement(
    app: Any, as_user: Any, count_statements: Any
) -> None:
    agent = await as_user("agent@example.com")
    await agent.gql(TICKETS)  # warm: session, relations, caches
    count_statements.statements.clear()
    await agent.gql(TICKETS)
    with_audit = len(count_statements.statements)
    app.state.settings = replace(app.state.settings, audit_reads=False)
    count_statements.statements.clear()
    await agent.gql(TICKETS)
    without_audit = len(count_statements.statements)
    assert with_audit - without_audit == 1
    inserts = [s for s in count_statements.statements if "audit_events" in s]
    assert inserts == []


async def test_if_the_trail_cannot_be_written_the_data_is_withheld(
    as_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(schema.extensions, "record_reads", broken)
    agent = await as_user("agent@example.com")
    response = await agent.post(TICKETS)
    body = response.json()
    assert body["data"] is None
    assert "customer@example.com" not in response.text
    error = body["errors"][0]
    assert error["message"] == "Unexpected error."
    assert error["extensions"] == {
        "code": "INTERNAL_SERVER_ERROR",
        "requestId": response.headers["x-request-id"],
    }
    assert "disk full" not in response.text


@pytest.mark.promise("P20")
async def test_concurrent_requests_keep_one_unbroken_chain(as_user: Any) -> None:
    agents = [await as_user("agent@example.com"), await as_user("lead@example.com")]
    customer = await as_user("customer@example.com")

    async def reader(api: Api) -> None:
        for _ in range(3):
            body = await api.gql(TICKETS)
            assert body.get("errors") is None

    async def writer() -> None:
        for purpose in ("MARKETING_EMAIL", "STATISTICS", "MARKETING_EMAIL"):
            body = await customer.gql(
                f"mutation {{ grantConsent(input: {{purpose: {purpose}}}) {{ __typename }} }}"
            )
            assert body["data"]["grantConsent"]["__typename"] == "ConsentSuccess"

    await asyncio.gather(*(reader(api) for api in agents), writer())
    report = await audit_verify.verify_chain()
    assert report.intact, report
    assert report.checked == await AuditEvent.all().count()
    assert await AuditEvent.filter(action="consent.grant").count() == 3
    assert len(await reads()) >= 2 * 3 * 2


@pytest.mark.promise("P20")
async def test_a_subject_sees_who_accessed_their_data_but_not_who_exactly(
    as_user: Any,
) -> None:
    agent = await as_user("agent@example.com")
    await agent.gql(TICKETS)
    customer = await as_user("customer@example.com")
    body = await customer.gql(
        "{ myDataAccesses { action fieldNames actorRoles occurredAt actor { name } requestId } }"
    )
    accesses = body["data"]["myDataAccesses"]
    assert len(accesses) == 1
    access = accesses[0]
    assert access["action"] == "personal_data.read"
    assert access["fieldNames"] == ["Ticket.subject", "User.email", "User.name"]
    assert access["actorRoles"] == ["AGENT"]
    assert access["occurredAt"]
    assert access["actor"] is None
    assert access["requestId"] is None
    denied = {tuple(error["path"][-1:]) for error in body["errors"]}
    assert denied == {("actor",), ("requestId",)}
    assert "Alex Agent" not in str(body)


async def test_the_privacy_officer_reads_the_trail_of_one_person(as_user: Any) -> None:
    agent = await as_user("agent@example.com")
    await agent.gql(TICKETS)
    carla = await user("customer@example.com")
    customer = await as_user("customer@example.com")
    me = await customer.gql("{ me { id } }")
    subject = me["data"]["me"]["id"]
    officer = await as_user("privacy@example.com")
    query = "query($s: ID!) { auditTrail(subjectId: $s) { action actor { id } requestId } }"
    body = await officer.gql(query, {"s": subject})
    assert body.get("errors") is None, body
    trail = body["data"]["auditTrail"]
    assert [entry["action"] for entry in trail] == ["personal_data.read"]
    assert trail[0]["requestId"]
    assert trail[0]["actor"]["id"]
    refused = await customer.gql(query, {"s": subject})
    assert refused["data"] == {"auditTrail": None}
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert carla.id is not None
