"""Access and portability exports end to end (P22, P26, P07, P14): the job, the sealed parts,
the mailed link and its limits, the audit, the schema, and what an export holds and does not."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
import tracemalloc
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import jsonschema  # type: ignore[import-untyped]
import pytest
from tortoise import Tortoise

import settings as config
from auth.principal import ANONYMOUS
from models import (
    AccountToken,
    AccountTokenPurpose,
    AuditEvent,
    ConsentEntry,
    ConsentPurpose,
    ConsentSource,
    CorrectableField,
    Export,
    ExportPart,
    ExportStatus,
    ExternalIdentity,
    Job,
    JobState,
    LegalDisclosure,
    MailStatus,
    Notice,
    NoticePreference,
    PaymentMethod,
    PrivacyRequest,
    PrivacyRequestAction,
    PrivacyRequestKind,
    PrivacyRequestStatus,
    PrivacyRequestStep,
    SignInSession,
    Ticket,
    TicketMessage,
    User,
    crypto,
)
from models.fields import EncryptedField
from privacy import audit, exports, jobs, mail, rectification
from privacy.audit_actions import AuditAction
from privacy.rectification import Correction
from schema.relay import from_global_id, to_global_id
from tests import job_kinds
from tests.helpers import Api, letters_canary, user_by_email
from tests.smtp_server import Mailbox
from tests.test_jobs import PROCESS_SECONDS, _end, _start_worker, _tail, _worker_environment

CUSTOMER = "customer@example.com"
CUSTOMER2 = "customer2@example.com"
OFFICER = "privacy@example.com"
SCHEMA = json.loads(
    (Path(__file__).resolve().parent.parent / "docs" / "export.schema.json").read_text()
)

SUBMIT = """mutation($input: SubmitPrivacyRequestInput!) { submitPrivacyRequest(input: $input) {
  __typename ... on PrivacyRequestSuccess { request { id } } } }"""
STEP = """mutation($input: %sInput!) { %s(input: $input) {
  __typename ... on PrivacyRequestSuccess { request { id status } } } }"""


@pytest.fixture
def mail_settings(app: Any, smtp: Mailbox) -> config.Settings:
    settings: config.Settings = app.state.settings
    return replace(settings, smtp_url=smtp.url, mail_from="OCIS <no-reply@ocis.test>")


async def officer_step(api: Api, name: str, given: dict[str, Any]) -> None:
    body = await api.gql(STEP % (name[0].upper() + name[1:], name), {"input": given})
    assert body["data"][name]["__typename"] == "PrivacyRequestSuccess", body


async def verified_access_request(subject: Api, officer: Api) -> str:
    """An access request the subject submitted and the officer verified: its id."""
    body = await subject.gql(SUBMIT, {"input": {"kind": "ACCESS", "details": "All of it"}})
    gid: str = body["data"]["submitPrivacyRequest"]["request"]["id"]
    await officer_step(officer, "verifyIdentity", {"requestId": gid, "method": "SIGNED_IN_SESSION"})
    return gid


async def run_jobs() -> jobs.Report:
    return await jobs.Runner().run_due()


def link_of(message: str) -> tuple[str, str]:
    found = re.search(r"/privacy/exports/([0-9a-f-]{36})\?token=([A-Za-z0-9_-]+)", message)
    assert found is not None, message
    return found.group(1), found.group(2)


async def audited(action: AuditAction) -> list[AuditEvent]:
    return await AuditEvent.filter(action=action.value).order_by("seq")


# --- end to end -------------------------------------------------------------------------


@pytest.mark.promise("P22")
@pytest.mark.promise("P14")
async def test_an_access_request_ends_in_a_mailed_link_that_works_three_times(
    as_user: Any, client: httpx.AsyncClient, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    customer_api: Api = await as_user(CUSTOMER)
    officer: Api = await as_user(OFFICER)
    customer = await user_by_email(CUSTOMER)
    gid = await verified_access_request(customer_api, officer)
    assert await Export.all().count() == 0
    await officer_step(officer, "startPrivacyRequest", {"requestId": gid})

    (export,) = await Export.all()
    assert (export.status, export.subject_id) == (ExportStatus.BUILDING, customer.id)
    (job,) = await Job.filter(kind=exports.KIND)
    assert job.payload == {"export": str(export.id)}
    assert (await run_jobs()).done == 1
    await export.refresh_from_db()
    assert (export.status, export.downloads_left) == (ExportStatus.READY, exports.DOWNLOADS)
    assert export.expires_at is not None
    assert export.ready_at is not None
    assert export.expires_at - export.ready_at == exports.LIFETIME
    assert export.part_count == await ExportPart.filter(export_id=export.id).count() >= 1
    (created,) = await audited(AuditAction.PRIVACY_EXPORT_CREATE)
    assert (created.entity_id, created.subject_id) == (str(export.id), customer.id)

    # Nothing of the export is in the table in the clear.
    raw = await Tortoise.get_connection("default").execute_query_dict(
        'SELECT "data" FROM "export_parts"'
    )
    assert all("Carla" not in str(row["data"]) for row in raw)

    await mail.deliver_due(mail_settings)
    (got,) = [m for m in smtp.received if "copy of your data" in str(m.message["Subject"])]
    assert tuple(got.recipients) == (CUSTOMER,)
    export_id, secret = link_of(got.message.get_content())
    assert export_id == str(export.id)
    assert export.token_hash == exports.secret_hash(secret)
    # The in-platform notice does not show the secret.
    notice = await Notice.get(kind="privacy_export.ready")
    assert notice.link is None

    url = f"/privacy/exports/{export_id}?token={secret}"
    client.cookies.clear()
    for _ in range(3):
        response = await client.get(url)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/json")
        assert response.headers["cache-control"] == "no-store"
        document = response.json()
        jsonschema.validate(document, SCHEMA)
        assert (document["kind"], document["profile"]["email"]) == ("access", CUSTOMER)
    used_up = await client.get(url)
    assert used_up.status_code == 410
    assert used_up.json()["error"] == "GONE"
    downloads = await audited(AuditAction.PRIVACY_EXPORT_DOWNLOAD)
    assert len(downloads) == 3
    assert {event.subject_id for event in downloads} == {customer.id}
    (refused,) = await audited(AuditAction.PRIVACY_EXPORT_DOWNLOAD_REFUSE)
    assert refused.purpose == "gone"


async def test_an_expired_link_is_refused_with_410_and_audited(
    client: httpx.AsyncClient, demo: None
) -> None:
    customer = await user_by_email(CUSTOMER)
    export, secret = await ready_export(customer)
    await Export.filter(id=export.id).update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    response = await client.get(f"/privacy/exports/{export.id}?token={secret}")
    assert response.status_code == 410
    assert (await Export.get(id=export.id)).downloads_left == 3
    (refused,) = await audited(AuditAction.PRIVACY_EXPORT_DOWNLOAD_REFUSE)
    assert (refused.purpose, refused.entity_id) == ("gone", str(export.id))


@pytest.mark.promise("P14")
async def test_a_wrong_token_another_users_session_or_a_garbage_id_get_the_same_404(
    as_user: Any, client: httpx.AsyncClient
) -> None:
    customer = await user_by_email(CUSTOMER)
    export, secret = await ready_export(customer)
    other: Api = await as_user(CUSTOMER2)
    mine: Api = await as_user(CUSTOMER)
    not_found = {"error": "NOT_FOUND", "message": "No such export, or this link is not valid."}
    attempts = [
        (f"/privacy/exports/{export.id}?token={secret}x", None),
        (f"/privacy/exports/{export.id}", None),
        (f"/privacy/exports/{export.id}?token=", None),
        (f"/privacy/exports/{export.id}", other.cookie),
        (f"/privacy/exports/{uuid4()}?token={secret}", None),
        ("/privacy/exports/not-a-uuid?token=x", None),
        (f"/privacy/exports/{export.id}?token={'a' * 5000}", None),
    ]
    for url, cookie in attempts:
        client.cookies.clear()
        headers = {"cookie": f"ocis_session={cookie}"} if cookie else {}
        response = await client.get(url, headers=headers)
        assert (response.status_code, response.json()) == (404, not_found), url
        assert secret not in response.text
    assert (await Export.get(id=export.id)).downloads_left == 3
    refused = await audited(AuditAction.PRIVACY_EXPORT_DOWNLOAD_REFUSE)
    assert [event.purpose for event in refused] == ["not_authorised"] * 5
    assert await audited(AuditAction.PRIVACY_EXPORT_DOWNLOAD) == []

    # The subject's own session needs no secret.
    client.cookies.clear()
    response = await client.get(
        f"/privacy/exports/{export.id}", headers={"cookie": f"ocis_session={mine.cookie}"}
    )
    assert response.status_code == 200
    assert response.json()["subjectId"] == str(customer.id)


EXPORTS = """{ myPrivacyRequests { kind exports {
  kind status createdAt readyAt expiresAt downloadsLeft downloadPath } } }"""


@pytest.mark.promise("P22")
@pytest.mark.promise("P14")
async def test_the_subject_and_the_officer_see_an_exports_state_and_never_its_secret(
    as_user: Any, client: httpx.AsyncClient
) -> None:
    customer = await user_by_email(CUSTOMER)
    export, secret = await ready_export(customer)
    mine: Api = await as_user(CUSTOMER)
    client.cookies.clear()
    response = await client.get(
        f"/privacy/exports/{export.id}", headers={"cookie": f"ocis_session={mine.cookie}"}
    )
    assert response.status_code == 200

    body = await mine.gql(EXPORTS)
    assert "errors" not in body, body
    (access,) = [r for r in body["data"]["myPrivacyRequests"] if r["kind"] == "ACCESS"]
    assert export.ready_at is not None
    assert export.expires_at is not None
    assert access["exports"] == [
        {
            "kind": "ACCESS",
            "status": "READY",
            "createdAt": export.created_at.isoformat(),
            "readyAt": export.ready_at.isoformat(),
            "expiresAt": export.expires_at.isoformat(),
            "downloadsLeft": exports.DOWNLOADS - 1,
            "downloadPath": f"/privacy/exports/{export.id}",
        }
    ]
    assert secret not in json.dumps(body)
    assert export.token_hash is not None
    assert export.token_hash not in json.dumps(body)

    officer: Api = await as_user(OFFICER)
    gid = to_global_id("PrivacyRequest", export.request_id)
    seen = await officer.gql(
        "query($id: ID!) { node(id: $id) { ... on PrivacyRequest { exports {"
        " status downloadsLeft downloadPath } } } }",
        {"id": gid},
    )
    assert seen["data"]["node"]["exports"] == [
        {"status": "READY", "downloadsLeft": exports.DOWNLOADS - 1, "downloadPath": None}
    ]
    assert [(e["path"], e["extensions"]["code"]) for e in seen["errors"]] == [
        (["node", "exports", 0, "downloadPath"], "FORBIDDEN")
    ]
    # Another customer reaches neither the request nor its exports.
    other: Api = await as_user(CUSTOMER2)
    theirs = await other.gql(
        "query($id: ID!) { node(id: $id) { ... on PrivacyRequest { exports { status } } } }",
        {"id": gid},
    )
    assert theirs["data"]["node"] is None
    assert all(not r["exports"] for r in (await other.gql(EXPORTS))["data"]["myPrivacyRequests"])


@pytest.mark.promise("P26")
async def test_the_schema_is_published_and_a_portability_export_follows_it(
    client: httpx.AsyncClient, demo: None
) -> None:
    response = await client.get("/privacy/export-schema.json")
    assert response.status_code == 200
    assert response.json() == SCHEMA
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    customer = await user_by_email(CUSTOMER)
    export, _ = await ready_export(customer, PrivacyRequestKind.PORTABILITY)
    document = await export_json(export)
    jsonschema.validate(document, SCHEMA)
    assert document["kind"] == "portability"
    assert (bool(document["tickets"]), document["accessLog"], document["signIns"]) == (True, [], [])


async def test_parts_swapped_or_moved_do_not_open(demo: None) -> None:
    customer = await user_by_email(CUSTOMER)
    await many_tickets(customer, 200)
    export, _ = await ready_export(customer)
    assert export.part_count >= 2
    connection = Tortoise.get_connection("default")
    rows = await connection.execute_query_dict(
        'SELECT "id", "data" FROM "export_parts" ORDER BY "index"'
    )
    first, second = rows[0], rows[1]
    marker = "$1" if connection.capabilities.dialect == "postgres" else "?"
    other = "$2" if marker == "$1" else "?"
    update = f'UPDATE "export_parts" SET "data" = {marker} WHERE "id" = {other}'  # noqa: S608
    await connection.execute_query(update, [second["data"], str(first["id"])])
    await connection.execute_query(update, [first["data"], str(second["id"])])
    with pytest.raises(crypto.DecryptionError):
        await export_json(export)


# --- a worker killed mid-build ----------------------------------------------------------


@pytest.mark.promise("P22")
@pytest.mark.promise("P14")
async def test_an_export_survives_kill_9_of_its_worker_mid_build_and_is_delivered_once(
    demo: None, app_settings: config.Settings, tmp_path: Path
) -> None:
    subject = await user_by_email(CUSTOMER)
    await many_tickets(subject, 600)
    request = await PrivacyRequest.create(
        subject=subject,
        kind=PrivacyRequestKind.ACCESS,
        received_at=datetime.now(UTC),
        due_at=datetime.now(UTC),
    )
    export = await exports.create_for(request)
    assert export is not None
    (job,) = await Job.filter(kind=exports.KIND)
    trail, log = tmp_path / "trail.txt", tmp_path / "worker.log"
    environment = _worker_environment(app_settings, trail)

    def parts_written() -> list[str]:
        lines = trail.read_text().splitlines() if trail.exists() else []
        return [line for line in lines if " part " in line]

    worker = _start_worker(environment | {job_kinds.EXPORT_PAUSE: "2"}, log)
    try:
        deadline = time.monotonic() + PROCESS_SECONDS
        while len(parts_written()) < 3:
            assert worker.poll() is None, _tail(log)
            assert time.monotonic() < deadline, _tail(log)
            await asyncio.sleep(0.05)
    finally:
        _end(worker, signal.SIGKILL)
    # Killed holding the job, three parts in: nothing delivered, nothing audited yet.
    crashed = await Job.get(id=job.id)
    assert (crashed.state, crashed.attempts) == (JobState.RUNNING, 1)
    await export.refresh_from_db()
    assert (export.status, export.token_hash) == (ExportStatus.BUILDING, None)
    assert await ExportPart.filter(export_id=export.id).count() == 3
    assert await Notice.filter(kind="privacy_export.ready").count() == 0
    assert await audited(AuditAction.PRIVACY_EXPORT_CREATE) == []

    restarted = _start_worker(environment, log)
    try:
        deadline = time.monotonic() + PROCESS_SECONDS
        while (await Job.get(id=job.id)).state != JobState.DONE:
            assert restarted.poll() is None, _tail(log)
            assert time.monotonic() < deadline, _tail(log)
            await asyncio.sleep(0.05)
    finally:
        assert _end(restarted, signal.SIGTERM) == 0, _tail(log)

    done = await Job.get(id=job.id)
    assert (done.attempts, done.last_error_code) == (2, None)
    await export.refresh_from_db()
    assert export.status == ExportStatus.READY
    # Rebuilt from the start: every part rewritten in place, none twice, none left over.
    indexes = [int(line.split()[2]) for line in parts_written()]
    assert indexes == [0, 1, 2, *range(export.part_count)]
    stored = await ExportPart.filter(export_id=export.id).order_by("index")
    assert [part.index for part in stored] == list(range(export.part_count))
    assert export.part_count > 3
    document = await export_json(export)
    jsonschema.validate(document, SCHEMA)
    theirs = await Ticket.filter(requester_id=subject.id).values_list("id", flat=True)
    assert len(theirs) > 600
    assert sorted(ticket["id"] for ticket in document["tickets"]) == sorted(map(str, theirs))
    assert export.size_bytes == len(
        json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    )
    # Delivered and audited once.
    (notice,) = await Notice.filter(kind="privacy_export.ready")
    assert notice.params["export"] == str(export.id)
    (created,) = await audited(AuditAction.PRIVACY_EXPORT_CREATE)
    assert created.entity_id == str(export.id)


# --- what an export holds -----------------------------------------------------------------

# Tables holding a person's data that are not theirs to export, and why.
NOT_THE_SUBJECTS = {
    "WalkInRequester": "an email-only requester without an account: their own subject",
    "Invitation": "an invitee's address before they have an account; the inviter is staff",
    "Announcement": "its author is staff at work, not data about them",
    "Campaign": "its author is staff at work, not data about them",
    "Export": "the export itself",
    "ExportPart": "the export itself",
    "Job": "work queued about the subject: ids only (P10), parked while they are restricted",
    "LegalHold": "the authority's matter; its effect shows as a blocked erasure's step (P13)",
}


def subject_tables() -> set[str]:
    """Every model with a user or subject reference, or an encrypted personal field."""
    found = set()
    for name, model in Tortoise.apps["ocis"].items():
        refers = any(
            getattr(model._meta.fields_map[fk], "related_model", None) is User
            for fk in model._meta.fk_fields
        )
        sealed = any(isinstance(f, EncryptedField) for f in model._meta.fields_map.values())
        if refers or sealed or "subject_id" in model._meta.fields_map:
            found.add(name)
    return found - {"DataKey"}  # key material: never exported, destroyed on erasure


async def seed_canaries(user: User, staff: User) -> dict[str, str]:
    """One canary per table holding the user's data, keyed by model name."""
    c = {name: f"{name.lower()}{letters_canary(16)}" for name in subject_tables()}
    await User.filter(id=user.id).update(source="partner:" + letters_canary(8))
    user.name = c["User"]
    await user.save(update_fields=["name"])
    soon = datetime.now(UTC) + timedelta(days=1)
    await AccountToken.create(
        user=user,
        purpose=AccountTokenPurpose.CHANGE_EMAIL,
        token_hash=letters_canary(40),
        new_email=f"{c['AccountToken']}@example.com",
        expires_at=soon,
    )
    await ExternalIdentity.create(
        user=user, issuer="https://idp.example.com", subject=c["ExternalIdentity"], provider="idp"
    )
    await PaymentMethod.create(
        user=user,
        gateway_token="tok" + letters_canary(),
        brand=c["PaymentMethod"],
        last4="4242",
        exp_month=12,
        exp_year=2030,
    )
    await SignInSession.create(
        user=user, token_hash=letters_canary(40), browser=c["SignInSession"], expires_at=soon
    )
    ticket = await Ticket.create(subject=c["Ticket"], requester=user)
    await TicketMessage.create(ticket=ticket, author=user, body=c["TicketMessage"])
    await TicketMessage.create(ticket=ticket, author=staff, body="reply" + letters_canary())
    await ConsentEntry.create(
        user=user,
        purpose=ConsentPurpose.PREFERENCES,
        granted=True,
        policy_version="1",
        source=ConsentSource.WEB,
        user_agent=c["ConsentEntry"],
    )
    request = await PrivacyRequest.create(
        subject=user,
        kind=PrivacyRequestKind.RECTIFICATION,
        details=c["PrivacyRequest"],
        received_at=datetime.now(UTC),
        due_at=soon,
    )
    await PrivacyRequestStep.create(
        request=request,
        subject=user,
        action=PrivacyRequestAction.SUBMITTED,
        to_status=PrivacyRequestStatus.RECEIVED,
        at=datetime.now(UTC),
        note=c["PrivacyRequestStep"],
    )
    await Notice.create(
        user=user,
        kind="privacy_request.received",
        params={"received": c["Notice"]},
        mail_status=MailStatus.SENT,
        mail_due_at=datetime.now(UTC),
    )
    await NoticePreference.create(user=user, kind=c["NoticePreference"], by_mail=False)
    await LegalDisclosure.create(
        subject=user,
        authority="Court",
        legal_basis=c["LegalDisclosure"],
        data_categories=["tickets"],
        disclosed_on=datetime.now(UTC).date() - timedelta(days=30),
        subject_may_be_told_on=datetime.now(UTC).date(),
        recorded_at=datetime.now(UTC),
    )
    await audit.record(
        ANONYMOUS,
        action=AuditAction.PERSONAL_DATA_READ,
        entity="User",
        entity_id=user.id,
        subject_id=user.id,
        purpose=c["AuditEvent"],
    )
    return {name: value for name, value in c.items() if name not in NOT_THE_SUBJECTS}


@pytest.mark.promise("P22")
@pytest.mark.promise("P07")
async def test_an_export_holds_a_canary_from_every_table_of_its_subject_and_nobody_elses(
    demo: None,
) -> None:
    generated = subject_tables()
    staff = await user_by_email(OFFICER)
    subject, other = await user_by_email(CUSTOMER), await user_by_email(CUSTOMER2)
    mine = await seed_canaries(subject, staff)
    theirs = await seed_canaries(other, staff)
    # Every table the models hold a person in is seeded or excused, by name.
    assert set(mine) | set(NOT_THE_SUBJECTS) == generated | {"AuditEvent"}
    internal = "note" + letters_canary()
    (ticket,) = [
        t for t in await Ticket.filter(requester_id=subject.id) if t.subject == mine["Ticket"]
    ]
    await TicketMessage.create(ticket=ticket, author=staff, body=internal, internal=True)
    staff_name = (await User.get(id=staff.id)).name

    export, _ = await ready_export(subject)
    text = json.dumps(await export_json(export), ensure_ascii=False)
    jsonschema.validate(json.loads(text), SCHEMA)
    assert {name: value in text for name, value in mine.items()} == dict.fromkeys(mine, True)
    assert [name for name, value in theirs.items() if value in text] == []
    assert CUSTOMER2 not in text
    assert internal not in text
    assert staff_name not in text
    assert str(staff.id) not in text
    for secret_column in ("passwordHash", "tokenHash", "gatewayToken", "password_hash"):
        assert secret_column not in text
    gateway = await PaymentMethod.get(user_id=subject.id)
    assert gateway.gateway_token not in text
    document = json.loads(text)
    assert document["profile"]["source"].startswith("partner:")  # P07: the source is shown
    assert {entry["purpose"] for entry in document["accessLog"]} >= {mine["AuditEvent"]}
    assert all("actorId" not in entry for entry in document["accessLog"])


@pytest.mark.promise("P22")
@pytest.mark.promise("P23")
@pytest.mark.promise("P26")
@pytest.mark.parametrize("kind", [PrivacyRequestKind.ACCESS, PrivacyRequestKind.PORTABILITY])
async def test_an_export_holds_each_rectifications_corrections_as_asked_and_decided(
    demo: None, kind: PrivacyRequestKind
) -> None:
    subject = await user_by_email(CUSTOMER)
    asked = "Carla " + letters_canary(10)
    reason = "Your ID shows " + letters_canary(10)
    proposed = [
        Correction(CorrectableField.NAME, asked, accepted=True),
        Correction(CorrectableField.PHONE, None, accepted=False, reason=reason),
    ]
    decided = await PrivacyRequest.create(
        subject=subject,
        kind=PrivacyRequestKind.RECTIFICATION,
        status=PrivacyRequestStatus.COMPLETED,
        corrections=rectification.dumps(proposed),
        outcome=rectification.outcome(proposed),
        received_at=datetime.now(UTC) - timedelta(days=2),
        due_at=datetime.now(UTC) + timedelta(days=28),
        closed_at=datetime.now(UTC),
    )
    undecided = await PrivacyRequest.create(
        subject=subject,
        kind=PrivacyRequestKind.RECTIFICATION,
        corrections=rectification.dumps([Correction(CorrectableField.DATE_OF_BIRTH, "1990-01-02")]),
        received_at=datetime.now(UTC) - timedelta(days=1),
        due_at=datetime.now(UTC) + timedelta(days=29),
    )

    export, _ = await ready_export(subject, kind)

    document = await export_json(export)
    jsonschema.validate(document, SCHEMA)
    by_id = {entry["id"]: entry for entry in document["privacyRequests"]}
    assert by_id[str(decided.id)]["corrections"] == [
        {"field": "name", "value": asked, "accepted": True, "reason": None},
        {"field": "phone", "value": None, "accepted": False, "reason": reason},
    ]
    assert by_id[str(decided.id)]["outcome"] == rectification.outcome(proposed)
    assert reason in by_id[str(decided.id)]["outcome"]
    assert by_id[str(undecided.id)]["corrections"] == [
        {"field": "date_of_birth", "value": "1990-01-02", "accepted": None, "reason": None}
    ]
    # Every other request answers an empty list: the schema's one shape for all kinds.
    others = [
        entry for key, entry in by_id.items() if key not in {str(decided.id), str(undecided.id)}
    ]
    assert others
    assert all(entry["corrections"] == [] for entry in others)
    fields = SCHEMA["properties"]["privacyRequests"]["items"]["properties"]["corrections"]
    assert fields["items"]["properties"]["field"]["enum"] == [f.value for f in CorrectableField]


@pytest.mark.promise("P22")
async def test_an_export_of_1000_tickets_takes_no_more_memory_than_one_of_100(
    demo: None,
) -> None:
    small, large = await user_by_email(CUSTOMER), await user_by_email(CUSTOMER2)
    await many_tickets(small, 100)
    await many_tickets(large, 1000)
    peaks = []
    for user in (small, large):
        tracemalloc.start()
        try:
            export, _ = await ready_export(user)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        peaks.append(peak)
        assert export.part_count >= 1
    size_small = await Export.filter(subject_id=small.id).values_list("size_bytes", flat=True)
    size_large = await Export.filter(subject_id=large.id).values_list("size_bytes", flat=True)
    assert size_large[0] > 8 * size_small[0]  # ten times the data...
    assert peaks[1] < 2 * peaks[0], peaks  # ...in about the same memory


# --- helpers ------------------------------------------------------------------------------


async def many_tickets(user: User, count: int) -> None:
    tickets = [
        Ticket(id=uuid4(), subject=f"Ticket {n} " + "x" * 200, requester=user) for n in range(count)
    ]
    await Ticket.bulk_create(tickets)
    await TicketMessage.bulk_create(
        [
            TicketMessage(
                id=uuid4(), ticket_id=ticket.id, author_id=user.id, body="message " + "y" * 300
            )
            for ticket in tickets
        ]
    )


async def ready_export(
    user: User, kind: PrivacyRequestKind = PrivacyRequestKind.ACCESS
) -> tuple[Export, str]:
    """An export of `user` built by its job, and its link's secret (read from the notice)."""
    request = await PrivacyRequest.create(
        subject=user, kind=kind, received_at=datetime.now(UTC), due_at=datetime.now(UTC)
    )
    export = await exports.create_for(request)
    assert export is not None
    assert (await run_jobs()).done == 1
    (notice,) = [
        row
        for row in await Notice.filter(user_id=user.id, kind="privacy_export.ready")
        if row.params["export"] == str(export.id)
    ]
    assert notice.link is not None
    await export.refresh_from_db()
    return export, notice.link


async def export_json(export: Export) -> dict[str, Any]:
    text = "".join([piece async for piece in exports.stream(export)])
    document: dict[str, Any] = json.loads(text)
    return document


START_RELEASING = """mutation($input: StartPrivacyRequestInput!) {
  startPrivacyRequest(input: $input) { __typename
  ... on PrivacyRequestSuccess { request { id status } }
  ... on UserError { code message }
  ... on InvalidInputError { field } } }"""


@pytest.mark.promise("P22")
@pytest.mark.parametrize(
    ("kind", "release", "answer", "exported"),
    [
        ("ACCESS", True, "PrivacyRequestSuccess", True),
        ("ACCESS", False, "PrivacyRequestSuccess", False),
        ("PORTABILITY", True, "InvalidInputError", False),
        ("PORTABILITY", False, "PrivacyRequestSuccess", False),
        ("RESTRICTION", True, "InvalidInputError", False),
    ],
)
async def test_internal_notes_are_in_an_access_export_only_where_the_officer_released_them(
    as_user: Any, kind: str, release: bool, answer: str, exported: bool
) -> None:
    customer_api: Api = await as_user(CUSTOMER)
    officer: Api = await as_user(OFFICER)
    customer, staff = await user_by_email(CUSTOMER), await user_by_email(OFFICER)
    ticket = await Ticket.create(requester=customer, subject="Where is my order?")
    note = "note" + letters_canary()
    reply = "reply" + letters_canary()
    await TicketMessage.create(ticket=ticket, author=staff, body=note, internal=True)
    await TicketMessage.create(ticket=ticket, author=staff, body=reply)
    given = {"kind": kind, "details": "Everything, please"}
    body = await customer_api.gql(SUBMIT, {"input": given})
    gid = body["data"]["submitPrivacyRequest"]["request"]["id"]
    await officer_step(officer, "verifyIdentity", {"requestId": gid, "method": "SIGNED_IN_SESSION"})

    start = {"requestId": gid, "releaseInternalNotes": release}
    started = (await officer.gql(START_RELEASING, {"input": start}))["data"]["startPrivacyRequest"]
    assert started["__typename"] == answer, started
    request = await PrivacyRequest.get(id=from_global_id(gid)[1])
    assert request.internal_notes_released is (exported and release)
    if answer != "PrivacyRequestSuccess":
        # Refused: nothing changed, the request still waits to be started.
        assert started["field"] == "releaseInternalNotes"
        assert request.status == PrivacyRequestStatus.IDENTITY_VERIFIED
        assert await Export.filter(request_id=request.id).count() == 0
        return
    assert (await run_jobs()).done == 1
    (export,) = await Export.filter(request_id=request.id)
    document = await export_json(export)
    jsonschema.validate(document, SCHEMA)
    (mine,) = [t for t in document["tickets"] if t["id"] == str(ticket.id)]
    assert [(m["body"], m["internal"]) for m in mine["messages"]] == (
        [(note, True), (reply, False)] if exported else [(reply, False)]
    )
    (started_step,) = await AuditEvent.filter(
        action=AuditAction.PRIVACY_REQUEST_START.value, entity_id=str(request.id)
    )
    assert ("PrivacyRequest.internalNotesReleased" in started_step.field_names) is release


@pytest.mark.promise("P22")
async def test_an_export_whose_job_is_given_up_is_failed_its_parts_gone_and_its_subject_told(
    as_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer_api: Api = await as_user(CUSTOMER)
    officer: Api = await as_user(OFFICER)
    customer = await user_by_email(CUSTOMER)
    gid = await verified_access_request(customer_api, officer)
    await officer_step(officer, "startPrivacyRequest", {"requestId": gid})
    (export,) = await Export.all()
    written = ExportPart(id=uuid4(), export_id=export.id, subject_id=customer.id, index=0)
    written.data = '{"profile":'  # what a build wrote before it broke
    await written.save(force_create=True)
    await Job.filter(kind=exports.KIND).update(max_attempts=2)

    async def broken(job: jobs.JobContext, export: Export) -> tuple[int, int]:
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(exports, "build", broken)
    assert await run_jobs() == jobs.Report(retried=1)
    await export.refresh_from_db()
    assert export.status == ExportStatus.BUILDING  # a retry is not a failure yet
    assert await Notice.filter(kind="privacy_export.failed").count() == 0

    later = datetime.now(UTC) + timedelta(hours=1)
    assert await jobs.Runner().run_due(now=later) == jobs.Report(failed=1)
    await export.refresh_from_db()
    assert (export.status, export.part_count) == (ExportStatus.FAILED, 0)
    assert await ExportPart.filter(export_id=export.id).count() == 0
    (told,) = await Notice.filter(user_id=customer.id, kind="privacy_export.failed")
    assert told.params["export"] == str(export.id)
    (failed,) = await audited(AuditAction.PRIVACY_EXPORT_FAIL)
    assert (failed.entity_id, failed.subject_id) == (str(export.id), customer.id)
    mine = (await customer_api.gql(EXPORTS))["data"]["myPrivacyRequests"]
    assert [row["exports"] for row in mine if row["kind"] == "ACCESS"][0][0]["status"] == "FAILED"
    request = await PrivacyRequest.get(id=from_global_id(gid)[1])
    assert request.status == PrivacyRequestStatus.IN_PROGRESS
