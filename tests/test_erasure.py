"""Erasure (P24) end to end: a subject with everything OCIS can hold of a person is erased,
and then no table (every column, decrypted with the keys that remain), no key of the shared
store and no log line holds their name, addresses, phone or username in any case; the audit
trail verifies; tickets stay for the team, pseudonymised; the address registers again as a new
person; the subject's keys are dropped by every process at once; a worker killed in the middle
finishes the erasure once; a child's account flagged by staff is erased without a request
(P29)."""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import signal
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from tortoise import Tortoise

import settings as config
from auth.passwords import hash_password
from models import (
    AccountToken,
    AccountTokenPurpose,
    AuditEvent,
    ConsentEntry,
    ConsentPurpose,
    ConsentSource,
    DataKey,
    ExternalIdentity,
    Job,
    JobState,
    KeyState,
    Notice,
    PaymentMethod,
    PrivacyRequest,
    PrivacyRequestKind,
    PrivacyRequestStatus,
    Ticket,
    TicketMessage,
    User,
    UserStatus,
    crypto,
    keys,
)
from models.base import Entity
from privacy import audit_verify, erasure, jobs, mail, walk_ins
from privacy import keys as key_management
from schema.relay import to_global_id
from tests import erasure_pause
from tests.helpers import Api, app_code_exchange, app_refresh, run_cli, sign_in, user_by_email
from tests.smtp_server import Mailbox
from tests.test_jobs import _end, _start_worker, _until, _worker_environment
from tests.test_privacy_workflow import ADMIN, AGENT, CUSTOMER2, OFFICER, AsUser, ok, submit

NAME = "Zelda Quixotic"
EMAIL = "Zelda.Quixotic@example.com"
IDENTITY_EMAIL = "zq.partner@example.org"
NEW_EMAIL = "zelda.new@example.net"
WALK_IN_EMAIL = "zelda.q@example.com"
PHONE = "+44 20 7946 0321"
USERNAME = "zquixotic"
PASSWORD = "a long enough password for zelda"
# Each trace, in any case; the phone in any spacing.
NEEDLES = [NAME, "Zelda", "Quixotic", EMAIL, IDENTITY_EMAIL, NEW_EMAIL, WALK_IN_EMAIL, USERNAME]
PHONE_ANYHOW = re.compile(r"\+?44[\s().-]*20[\s().-]*7946[\s().-]*0321|2079460321")

FLAG = """mutation($input: FlagChildAccountInput!) { flagChildAccount(input: $input) {
  __typename ... on FlagChildAccountSuccess { requestId }
  ... on UserError { code message } } }"""


def found_traces(text: str) -> list[str]:
    """The traces of the subject in this text, in any case."""
    lowered = text.casefold()
    hits = [needle for needle in NEEDLES if needle.casefold() in lowered]
    if PHONE_ANYHOW.search(text):
        hits.append("phone")
    return hits


async def seed_subject(client: httpx.AsyncClient, store: Any) -> tuple[User, dict[str, Any]]:
    """A customer with tickets (replies, internal notes about them, a walk-in ticket of another
    address of theirs), messages of others naming them, consents (one merged from a visitor),
    sign-ins on the web and in the app, an identity, a payment method, notices and a pending
    address change. Answers the user and their credentials."""
    user = User(id=uuid4(), name=NAME, phone=PHONE, password_hash=await hash_password(PASSWORD))
    user.set_email(EMAIL)
    user.set_username(USERNAME)
    user.email_verified_at = datetime.now(UTC)
    await user.save()
    agent, other = await user_by_email(AGENT), await user_by_email(CUSTOMER2)
    own = await Ticket.create(subject=f"{NAME} cannot pay", requester=user, team_id=agent.team_id)
    own.assignee_id = agent.id
    await own.save(update_fields=["assignee_id"])
    await TicketMessage.create(ticket=own, author=user, body=f"Call me on {PHONE}, {NAME}")
    await TicketMessage.create(
        ticket=own, author=agent, body="Hello zelda, we wrote to ZELDA.QUIXOTIC@EXAMPLE.COM"
    )
    await TicketMessage.create(
        ticket=own,
        author=agent,
        body=f"Internal: Ms Quixotic ({USERNAME}) rang from +442079460321",
        internal=True,
    )
    theirs = await Ticket.create(subject="Refund for my friend", requester=other)
    await TicketMessage.create(
        ticket=theirs, author=other, body=f"My friend {NAME} <{EMAIL}> paid for me"
    )
    await TicketMessage.create(ticket=theirs, author=agent, body="We will ask Zelda. Thanks!")
    walk_in = await walk_ins.walk_in_for(WALK_IN_EMAIL, "Zelda Q.")
    by_mail = await Ticket.create(
        subject="Written by mail",
        walk_in=walk_in,
        requester_email=WALK_IN_EMAIL,
        requester_name="Zelda Q.",
        channel="email",
    )
    await TicketMessage.create(ticket=by_mail, body="From zelda.q@example.com: hello")
    visitor = str(uuid4())
    for entry in (
        ConsentEntry(
            id=uuid4(),
            user_id=user.id,
            purpose=ConsentPurpose.MARKETING_EMAIL,
            granted=True,
            policy_version="1",
            source=ConsentSource.WEB,
            ip_address="192.0.2.10",
            user_agent=f"Browser of {NAME}",
        ),
        ConsentEntry(
            id=uuid4(),
            user_id=user.id,
            visitor_id=visitor,
            purpose=ConsentPurpose.STATISTICS,
            granted=True,
            policy_version="1",
            source=ConsentSource.WEB,
            user_agent="Visitor browser of zquixotic",
        ),
        ConsentEntry(
            id=uuid4(),
            visitor_id=visitor,
            purpose=ConsentPurpose.PREFERENCES,
            granted=True,
            policy_version="1",
            source=ConsentSource.WEB,
            user_agent="Visitor browser of Quixotic",
        ),
    ):
        await entry.save()
    await ExternalIdentity.create(
        user=user,
        issuer="https://idp.example.org",
        subject="zq-subject",
        provider="partner",
        email=IDENTITY_EMAIL,
        email_verified=True,
    )
    await PaymentMethod.create(
        user=user, gateway_token="tok_zelda", brand="visa", last4="4242", exp_month=1, exp_year=2031
    )
    await AccountToken.create(
        user=user,
        purpose=AccountTokenPurpose.CHANGE_EMAIL,
        token_hash="a" * 64,
        new_email=NEW_EMAIL,
        expires_at=datetime.now(UTC) + timedelta(days=1),
    )
    now = datetime.now(UTC)
    await Notice.create(user=user, kind="account.signed_out_everywhere", mail_due_at=now)
    await Notice.create(address=WALK_IN_EMAIL, kind="ticket.replied", mail_due_at=now)
    cookie = await sign_in(client, EMAIL, PASSWORD)
    grant = await client.post("/auth/token", data=await app_code_exchange(store, user.id))
    assert grant.status_code == 200, grant.text
    return user, {"cookie": cookie, "refresh": grant.json()["refresh_token"]}


async def erase_by_request(client: httpx.AsyncClient, as_user: AsUser, user: User) -> str:
    """The subject asks, the officer verifies, starts and completes; answers the request id."""
    mine = Api(client, await sign_in(client, EMAIL, PASSWORD))
    request = await submit(mine, "ERASURE", f"Erase everything about {NAME}, {PHONE}")
    other = await as_user(CUSTOMER2)
    await submit(other, "ACCESS", f"Also tell me what you hold of my sister {NAME}")
    officer = await as_user(OFFICER)
    await ok(officer, "verifyIdentity", {"requestId": request["id"], "method": "EMAIL_LINK"})
    await ok(officer, "startPrivacyRequest", {"requestId": request["id"]})
    done = await ok(
        officer,
        "completePrivacyRequest",
        {"requestId": request["id"], "outcome": "Your data is erased."},
    )
    assert done["status"] == "COMPLETED"
    return str(request["id"])


async def every_value() -> str:
    """Every column of every row of every table: through the models (encrypted columns opened
    with the keys that remain, the destroyed ones reading as nothing), and as stored."""
    pieces: list[str] = []
    connection = Tortoise.get_connection("default")
    for model in Tortoise.apps["ocis"].values():
        table = model._meta.db_table
        raw = await connection.execute_query_dict(f'SELECT * FROM "{table}"')  # noqa: S608
        pieces.extend(repr(row) for row in raw)
        if issubclass(model, Entity):
            for row in await model.all():
                pieces.extend(repr(getattr(row, name, None)) for name in model._meta.fields_map)
    return "\n".join(pieces)


async def every_stored_value(store: Any) -> str:
    """Every key of the shared store and its value, whatever its type."""
    pieces: list[str] = []
    async for key in store.scan_iter():
        pieces.append(str(key))
        kind = await store.type(key)
        if kind == "string":
            pieces.append(str(await store.get(key)))
        elif kind == "hash":
            pieces.append(repr(await store.hgetall(key)))
        elif kind == "set":
            pieces.append(repr(await store.smembers(key)))
        elif kind == "list":
            pieces.append(repr(await store.lrange(key, 0, -1)))
        elif kind == "zset":
            pieces.append(repr(await store.zrange(key, 0, -1, withscores=True)))
    return "\n".join(pieces)


def runner(app: Any) -> jobs.Runner:
    """The app's own runner: its settings have no SMTP_URL, so no mail is waited for."""
    return jobs.runner(app.state.settings, app.state.store)


@pytest.mark.promise("P24")
async def test_the_subject_is_mailed_that_the_erasure_is_done_before_their_address_goes(
    app: Any, client: httpx.AsyncClient, as_user: AsUser, smtp: Mailbox
) -> None:
    settings = replace(app.state.settings, smtp_url=smtp.url, mail_from="OCIS <no@ocis.test>")
    user, _ = await seed_subject(client, app.state.store)
    await erase_by_request(client, as_user, user)
    sending = jobs.runner(settings, app.state.store)
    # The completion's mail has not left: the job waits for it, the account untouched.
    assert await sending.run_due() == jobs.Report(retried=1)
    assert (await User.get(id=user.id)).status == UserStatus.ACTIVE
    (job,) = await Job.filter(kind=erasure.KIND)
    assert job.last_error_code == "notice_not_sent"

    await mail.deliver_due(settings)
    answered = [
        got for got in smtp.received if got.message["Subject"] == "Your privacy request is answered"
    ]
    assert [got.recipients for got in answered] == [[EMAIL]]
    assert "Your data is erased." in answered[0].message.get_content()
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert await sending.run_due(now=later) == jobs.Report(done=1)
    assert (await User.get(id=user.id)).status == UserStatus.ERASED
    assert found_traces(await every_value()) == []


@pytest.mark.promise("P24")
async def test_an_erased_subject_leaves_no_trace_in_any_table_the_store_or_the_logs(
    app: Any, client: httpx.AsyncClient, as_user: AsUser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    store = app.state.store
    user, credentials = await seed_subject(client, store)
    assert found_traces(await every_value())  # the scan finds them while they are there
    request_id = await erase_by_request(client, as_user, user)
    assert (await runner(app).run_due()).done == 1

    assert found_traces(await every_value()) == []
    assert found_traces(await every_stored_value(store)) == []
    assert found_traces(caplog.text) == []
    report = await audit_verify.verify_chain()
    assert report.intact, report
    settings: config.Settings = app.state.settings
    verified = run_cli(
        "audit-verify",
        env={
            "DATABASE_URL": settings.database_url,
            "OCIS_MASTER_KEY": base64.b64encode(settings.master_key).decode(),
            "OCIS_AUDIT_CHECKPOINT_DIR": str(settings.audit_checkpoint_dir),
            **({"REDIS_URL": settings.redis_url} if settings.redis_url else {}),
        },
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    steps = await AuditEvent.filter(action="erasure.step", subject_id=user.id).order_by("seq")
    assert [event.purpose for event in steps] == [name for name, _ in erasure.STEPS[:-1]]
    assert await AuditEvent.filter(action="erasure.complete", subject_id=user.id).count() == 1

    # The account is a tombstone: erased, its keys destroyed, its request kept (ids, times).
    erased = await User.get(id=user.id)
    assert (erased.status, erased.email_index, erased.password_hash) == (
        UserStatus.ERASED,
        None,
        None,
    )
    assert {key.state for key in await DataKey.filter(subject_id=user.id)} == {KeyState.DESTROYED}
    (kept,) = await PrivacyRequest.filter(subject_id=user.id, kind=PrivacyRequestKind.ERASURE)
    assert to_global_id("PrivacyRequest", kept.id) == request_id
    assert (kept.details, kept.outcome) == (None, None)  # shredded with the keys
    for model in (ExternalIdentity, PaymentMethod, Notice, AccountToken):
        assert await model.filter(user_id=user.id).count() == 0
    # A proof of each withdrawal, without anything else.
    proofs = await ConsentEntry.filter(user_id=user.id)
    assert {(p.purpose, p.granted, p.source) for p in proofs} == {
        (ConsentPurpose.MARKETING_EMAIL, False, ConsentSource.ERASURE),
        (ConsentPurpose.STATISTICS, False, ConsentSource.ERASURE),
    }
    assert all((p.ip_address, p.user_agent, p.visitor_id) == (None, None, None) for p in proofs)
    assert await ConsentEntry.filter(user_id=None).count() == 0

    # Sign-ins ended at once, and it cannot sign in again.
    me = await client.post(
        "/graphql",
        json={"query": "{ me { email } }"},
        headers={"cookie": f"ocis_session={credentials['cookie']}"},
    )
    assert me.status_code == 401
    assert (await app_refresh(client, credentials["refresh"])).status_code in (400, 401)
    client.cookies.clear()
    refused = await client.post("/auth/password", json={"email": EMAIL, "password": PASSWORD})
    assert refused.status_code == 401

    # The team keeps its tickets, the requester pseudonymised, in every message.
    agent = await as_user(AGENT)
    page = await agent.gql(
        "{ tickets(first: 20) { edges { node { subject requester { id } requesterName"
        " messages(first: 10) { edges { node { body author { id } } } } } } } }"
    )
    nodes = [edge["node"] for edge in page["data"]["tickets"]["edges"]]
    (kept_ticket,) = [node for node in nodes if "cannot pay" in node["subject"]]
    assert kept_ticket["subject"] == f"{erasure.PSEUDONYM} cannot pay"
    assert kept_ticket["requester"] is None
    bodies = [edge["node"]["body"] for edge in kept_ticket["messages"]["edges"]]
    assert f"Call me on {erasure.PSEUDONYM}, {erasure.PSEUDONYM}" in bodies
    assert "Hello [erased], we wrote to [erased]" in bodies

    # The address registers again, as a new person.
    registered = await Api(client).gql(
        "mutation($i: RegisterInput!) { register(input: $i) { __typename } }",
        {
            "i": {
                "name": "Another Person",
                "email": EMAIL.lower(),
                "password": PASSWORD,
                "dateOfBirth": "1990-01-01",
            }
        },
    )
    assert registered["data"]["register"]["__typename"] == "CheckYourMail", registered
    newcomer = await User.get(email_index=crypto.blind_index(EMAIL))
    assert newcomer.id != user.id


@pytest.mark.promise("P24")
async def test_a_subjects_destroyed_keys_are_dropped_by_every_process_at_once(
    app: Any, demo: None
) -> None:
    """A process that did not destroy them drops them as soon as the message arrives, not
    after its 60-second cache: here the message is sent as another process would send it."""
    store = app.state.store
    user = await user_by_email(CUSTOMER2)
    connection = Tortoise.get_connection("default")
    marker = "$1" if connection.capabilities.dialect == "postgres" else "?"
    sealed = await connection.execute_query_dict(
        f'SELECT "name" FROM "users" WHERE "id" = {marker}',  # noqa: S608 - a fixed query
        [user.id if marker == "$1" else str(user.id)],
    )
    key_id = crypto.key_id_of(sealed[0]["name"])
    assert (await User.get(id=user.id)).name  # cached here now
    assert keys.cached_cipher(key_id)[1] is not None
    # Another process destroys the key in the database and says so; this one never called
    # forget itself.
    await DataKey.filter(id=key_id).update(state=KeyState.DESTROYED, wrapped_key=None)
    await store.publish(
        key_management.DESTROYED_CHANNEL, f'{{"subject": "{user.id}", "keys": ["{key_id}"]}}'
    )
    deadline = time.monotonic() + 5
    for _ in range(250):  # the listener's poll, bounded
        if keys.cached_cipher(key_id)[1] is None or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    assert keys.cached_cipher(key_id) == (True, None)
    assert (await User.get(id=user.id)).name is None


@pytest.mark.promise("P24")
async def test_destroying_a_subjects_keys_tells_the_other_processes(app: Any, demo: None) -> None:
    store = app.state.store
    user = await user_by_email(CUSTOMER2)
    pubsub = store.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(key_management.DESTROYED_CHANNEL)
    try:
        assert await key_management.destroy_and_broadcast(store, [user.id]) >= 1
        message = None
        deadline = time.monotonic() + 5
        while message is None and time.monotonic() < deadline:
            message = await pubsub.get_message(timeout=0.2)
        assert message is not None
        assert str(user.id) in message["data"]
    finally:
        await pubsub.aclose()


@pytest.mark.promise("P24")
async def test_killing_the_worker_in_the_middle_of_an_erasure_finishes_it_once(
    app: Any,
    app_settings: config.Settings,
    client: httpx.AsyncClient,
    as_user: AsUser,
    tmp_path: Path,
) -> None:
    user, _ = await seed_subject(client, app.state.store)
    await erase_by_request(client, as_user, user)
    (job,) = await Job.filter(kind=erasure.KIND)
    trail, log = tmp_path / "trail.txt", tmp_path / "worker.log"
    environment = _worker_environment(
        app_settings,
        tmp_path / "unused.txt",
        **{erasure_pause.PAUSE: "700", erasure_pause.TRAIL: str(trail)},
    )
    environment["OCIS_EXTRA_JOB_MODULES"] = "tests.erasure_pause"
    worker = _start_worker(environment, log)
    try:
        await _until(job.id, lambda j: j.progress.get("step") == "texts", worker, log)
    finally:
        _end(worker, signal.SIGKILL)
    crashed = await Job.get(id=job.id)
    assert crashed.state == JobState.RUNNING
    assert crashed.progress["step"] in ("texts", "consents")
    restarted = _start_worker(environment, log)
    try:
        done = await _until(job.id, lambda j: j.state == JobState.DONE, restarted, log)
    finally:
        assert _end(restarted, signal.SIGTERM) == 0
    assert done.attempts == 2
    steps = [event.purpose for event in await AuditEvent.filter(action="erasure.step")]
    assert Counter(steps) == Counter(name for name, _ in erasure.STEPS[:-1])
    assert await AuditEvent.filter(action="erasure.complete").count() == 1
    started = Counter(line.split()[1] for line in trail.read_text().splitlines())
    assert (started["sign_ins"], started["tickets"], started["texts"]) == (1, 1, 1)
    if not app_settings.redis_url:
        # The worker's broadcast reaches the processes sharing its store; embedded, this
        # process has none in common with it, so it drops the keys it cached itself.
        keys.forget()
    assert found_traces(await every_value()) == []
    assert (await audit_verify.verify_chain()).intact


@pytest.mark.promise("P29")
@pytest.mark.promise("P24")
async def test_a_childs_account_flagged_by_staff_is_restricted_at_once_then_erased(
    app: Any, client: httpx.AsyncClient, as_user: AsUser
) -> None:
    user, _ = await seed_subject(client, app.state.store)
    admin = await as_user(ADMIN)
    agent = await as_user(AGENT)
    given = {"userId": to_global_id("User", user.id), "reason": "Her school wrote: she is 12"}
    refused = (await agent.gql(FLAG, {"input": given}))["data"]["flagChildAccount"]
    assert refused["code"] == "FORBIDDEN"
    assert await PrivacyRequest.filter(subject_id=user.id).count() == 0
    flagged = (await admin.gql(FLAG, {"input": given}))["data"]["flagChildAccount"]
    assert flagged["__typename"] == "FlagChildAccountSuccess", flagged
    assert (await User.get(id=user.id)).status == UserStatus.RESTRICTED
    (request,) = await PrivacyRequest.filter(subject_id=user.id)
    assert to_global_id("PrivacyRequest", request.id) == flagged["requestId"]
    assert request.status == PrivacyRequestStatus.COMPLETED
    assert (request.kind, request.channel.value) == (PrivacyRequestKind.ERASURE, "child_account")
    assert await AuditEvent.filter(action="child_account.flag", subject_id=user.id).count() == 1
    again = (await admin.gql(FLAG, {"input": given}))["data"]["flagChildAccount"]
    assert again["code"] == "ILLEGAL_TRANSITION"
    # The erasure runs although the account is restricted: it is a right the subject keeps.
    assert (await runner(app).run_due()).done == 1
    assert (await User.get(id=user.id)).status == UserStatus.ERASED
    assert found_traces(await every_value()) == []
