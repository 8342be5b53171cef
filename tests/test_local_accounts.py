"""Local accounts end to end over a real SMTP server: registration and its verification link,
identical answers for taken and free addresses, password reset, password and email change."""

from __future__ import annotations

import re
import sqlite3
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from tortoise import Tortoise
from tortoise.migrations.api.migrate import migrate as run_migrations

import settings as config
from auth import passwords, rate_limit
from auth.oidc import VerifiedIdentity
from models import AccountToken, ExternalIdentity, MailStatus, Notice, User, crypto, db
from privacy import mail, notices
from resolvers import federated
from schema.local_accounts import CHECK_YOUR_MAIL
from tests.helpers import DEMO_PASSWORD, ORIGIN, Api, sign_in, signed_in_email, table_counts
from tests.smtp_server import Mailbox, Received

CUSTOMER = "customer@example.com"
NEW_PASSWORD = "a brand new passphrase"
REGISTER = """
mutation Register($input: RegisterInput!) {
  register(input: $input) {
    __typename
    ... on CheckYourMail { message }
    ... on UserError { message code }
    ... on InvalidInputError { field }
  }
}
"""
VERIFY = "mutation($t: String!) { verifyEmail(token: $t) { __typename ... on UserError { code } } }"
REQUEST_RESET = """
mutation($e: String!) {
  requestPasswordReset(email: $e) {
    __typename ... on CheckYourMail { message } ... on UserError { code }
  }
}
"""
RESET = """
mutation($t: String!, $p: String!) {
  resetPassword(token: $t, newPassword: $p) {
    __typename
    ... on CredentialChanged { sessionsEnded appSignInsEnded }
    ... on UserError { message code }
    ... on InvalidInputError { field }
  }
}
"""
CHANGE_PASSWORD = """
mutation($c: String!, $p: String!) {
  changePassword(currentPassword: $c, newPassword: $p) {
    __typename
    ... on CredentialChanged { sessionsEnded appSignInsEnded }
    ... on UserError { code }
    ... on InvalidInputError { field }
  }
}
"""
CHANGE_EMAIL = """
mutation($e: String!, $p: String!) {
  changeEmail(newEmail: $e, password: $p) {
    __typename ... on CheckYourMail { message } ... on UserError { code }
    ... on InvalidInputError { field }
  }
}
"""
CONFIRM_EMAIL = """
mutation($t: String!) { confirmEmailChange(token: $t) { __typename ... on UserError { code } } }
"""
ACCEPTED = {"__typename": "CheckYourMail", "message": CHECK_YOUR_MAIL}


@pytest.fixture
def mail_settings(app: Any, smtp: Mailbox) -> config.Settings:
    settings: config.Settings = app.state.settings
    return replace(settings, smtp_url=smtp.url, mail_from="OCIS <no-reply@ocis.test>")


def _form(email: str, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": "Vera Verify",
        "email": email,
        "password": "a long enough password",
        "dateOfBirth": "1990-05-17",
    }
    values.update(overrides)
    return {"input": values}


async def _deliver(settings: config.Settings) -> mail.Delivery:
    return await mail.deliver_due(settings)


def _link_token(message: Received, path: str) -> str:
    body = message.message.get_content()
    found = re.search(re.escape(f"{ORIGIN}{path}") + r"#token=([A-Za-z0-9_-]+)", body)
    assert found, body
    return found.group(1)


def _mails_to(smtp: Mailbox, address: str) -> list[Received]:
    return [got for got in smtp.received if got.recipients == [address]]


async def _me(http: httpx.AsyncClient, cookie: str) -> Any:
    """The session's `me`, or None for a session that has ended (401 SESSION_EXPIRED)."""
    email = signed_in_email(await Api(http, cookie).post("{ me { email } }"))
    return None if email is None else {"email": email}


async def _password_status(http: httpx.AsyncClient, email: str, password: str) -> int:
    http.cookies.clear()
    response = await http.post("/auth/password", json={"email": email, "password": password})
    http.cookies.clear()
    return response.status_code


async def _customer() -> User:
    return await User.get(email_index=crypto.blind_index(CUSTOMER))


# --- registration and verification -----------------------------------------------------------


@pytest.mark.promise("P02")
async def test_register_mail_verify_link_then_sign_in(
    client: httpx.AsyncClient, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    email = "vera.verify@example.com"
    assert (await Api(client).gql(REGISTER, _form(email)))["data"]["register"] == ACCEPTED
    user = await User.get(email_index=crypto.blind_index(email))
    assert user.email_verified_at is None
    assert await _password_status(client, email, "a long enough password") == 401

    assert await _deliver(mail_settings) == mail.Delivery(sent=1)
    (got,) = smtp.received
    assert got.recipients == [email]
    assert got.message["Subject"] == "Confirm your email address for OCIS"
    token = _link_token(got, "/account/verify-email")
    # Only the hash is stored; the outbox forgot the link once it was sent.
    assert token not in repr(await AccountToken.all().values())
    assert (await Notice.get(kind="account.verify")).link is None

    body = await Api(client).gql(VERIFY, {"t": token})
    assert body == {"data": {"verifyEmail": {"__typename": "VerifyEmailSuccess"}}}
    assert (await User.get(id=user.id)).email_verified_at is not None
    cookie = await sign_in(client, email, "a long enough password")
    assert await _me(client, cookie) == {"email": email}

    again = await Api(client).gql(VERIFY, {"t": token})
    assert again == {
        "data": {"verifyEmail": {"__typename": "InvalidLinkError", "code": "INVALID_LINK"}}
    }


async def test_a_taken_and_a_free_address_get_identical_answers(
    client: httpx.AsyncClient, demo: None, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    taken = await Api(client).post(REGISTER, _form(CUSTOMER))
    free = await Api(client).post(REGISTER, _form("free.address@example.com"))
    assert taken.status_code == free.status_code == 200
    assert taken.content == free.content
    assert taken.json() == {"data": {"register": ACCEPTED}}
    # Every header alike but the request's own id.
    per_request = {"x-request-id"}
    assert {k: v for k, v in taken.headers.items() if k not in per_request} == {
        k: v for k, v in free.headers.items() if k not in per_request
    }
    assert taken.headers.keys() == free.headers.keys()

    customer = await _customer()
    assert (customer.name, customer.email) == ("Carla Customer", CUSTOMER)
    assert await passwords.verify_password(customer.password_hash, DEMO_PASSWORD)
    assert await _deliver(mail_settings) == mail.Delivery(sent=2)
    (owner_told,) = _mails_to(smtp, CUSTOMER)
    assert owner_told.message["Subject"] == (
        "Someone tried to open an OCIS account with your address"
    )
    assert "#token=" not in owner_told.message.get_content()
    (verify,) = _mails_to(smtp, "free.address@example.com")
    assert verify.message["Subject"] == "Confirm your email address for OCIS"


async def test_an_unverified_account_gets_no_mail_but_its_verification(
    client: httpx.AsyncClient, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    email = "not.yet@example.com"
    assert (await Api(client).gql(REGISTER, _form(email)))["data"]["register"] == ACCEPTED
    user = await User.get(email_index=crypto.blind_index(email))
    other = await notices.notify(user.id, "account.signed_out_everywhere")
    assert await _deliver(mail_settings) == mail.Delivery(sent=1, cancelled=1)
    assert [got.message["Subject"] for got in smtp.received] == [
        "Confirm your email address for OCIS"
    ]
    assert (await Notice.get(id=other.id)).mail_status == MailStatus.CANCELLED


async def test_registering_an_unverified_address_again_replaces_it_and_voids_its_link(
    client: httpx.AsyncClient,
) -> None:
    email = "squatted@example.com"
    await Api(client).gql(REGISTER, _form(email, name="Squatter", password="squatter password"))
    first = await Notice.filter(kind="account.verify").first()
    assert first is not None
    assert first.link is not None
    first_token = first.link.rsplit("#token=", 1)[1]
    await Api(client).gql(REGISTER, _form(email, name="Real Owner", password="owner password!"))
    assert await User.filter(email_index=crypto.blind_index(email)).count() == 1
    user = await User.get(email_index=crypto.blind_index(email))
    assert user.name == "Real Owner"
    refused = await Api(client).gql(VERIFY, {"t": first_token})
    assert refused["data"]["verifyEmail"]["__typename"] == "InvalidLinkError"
    assert (await User.get(id=user.id)).email_verified_at is None


async def test_an_unverified_address_suggests_no_provider_link(
    client: httpx.AsyncClient, app: Any
) -> None:
    email = "squatted@example.com"
    await Api(client).gql(REGISTER, _form(email))
    squatter = await User.get(email_index=crypto.blind_index(email))
    identity = VerifiedIdentity(
        provider="google",
        issuer="https://accounts.google.com",
        subject="victim-1",
        tenant_id="",
        email=email,
        email_trusted=True,
        name="Victim",
        birthdate="1990-01-01",
        claims={},
    )
    mapped = await federated.map_identity(
        app.state.store, identity, signed_in=None, linking=False, request_id=None, binder="b"
    )
    assert mapped.step == "signed_in"
    assert mapped.user is not None
    assert mapped.user.id != squatter.id  # a separate account, not the squatter's
    assert not await ExternalIdentity.exists(user_id=squatter.id)

    # Verified, the same address asks for proof of control before linking.
    await User.filter(id=squatter.id).update(email_verified_at=datetime.now(UTC))
    second = replace(identity, subject="victim-2")
    proof = await federated.map_identity(
        app.state.store, second, signed_in=None, linking=False, request_id=None, binder="b"
    )
    assert proof.step == "needs_password_to_link"


@pytest.mark.parametrize("token", ["forged", "", "x" * 500])
async def test_a_forged_verification_token_changes_nothing(
    client: httpx.AsyncClient, token: str
) -> None:
    await Api(client).gql(REGISTER, _form("vera.verify@example.com"))
    counts = await table_counts()
    body = await Api(client).gql(VERIFY, {"t": token})
    assert body["data"]["verifyEmail"] == {"__typename": "InvalidLinkError", "code": "INVALID_LINK"}
    assert await table_counts() == counts
    assert not await User.exists(email_verified_at__isnull=False)


# --- password reset ---------------------------------------------------------------------------


async def _reset_token(
    client: httpx.AsyncClient, smtp: Mailbox, settings: config.Settings, email: str
) -> str:
    body = await Api(client).gql(REQUEST_RESET, {"e": email})
    assert body["data"]["requestPasswordReset"] == ACCEPTED
    await _deliver(settings)
    mails = [
        m for m in _mails_to(smtp, email) if m.message["Subject"] == "Reset your OCIS password"
    ]
    return _link_token(mails[-1], "/account/reset-password")


async def test_reset_ends_every_earlier_session_and_tells_the_owner(
    client: httpx.AsyncClient, demo: None, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    earlier = await sign_in(client, CUSTOMER)
    other_device = await sign_in(client, CUSTOMER)
    token = await _reset_token(client, smtp, mail_settings, CUSTOMER)

    body = await Api(client).gql(RESET, {"t": token, "p": NEW_PASSWORD})
    assert body["data"]["resetPassword"] == {
        "__typename": "CredentialChanged",
        "sessionsEnded": 2,
        "appSignInsEnded": 0,
    }
    assert await _me(client, earlier) is None
    assert await _me(client, other_device) is None
    assert await _password_status(client, CUSTOMER, DEMO_PASSWORD) == 401
    assert await _me(client, await sign_in(client, CUSTOMER, NEW_PASSWORD)) == {"email": CUSTOMER}
    await _deliver(mail_settings)
    assert _mails_to(smtp, CUSTOMER)[-1].message["Subject"] == "Your OCIS password was changed"


async def test_a_used_or_expired_reset_link_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, demo: None, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    token = await _reset_token(client, smtp, mail_settings, CUSTOMER)
    first = await Api(client).gql(RESET, {"t": token, "p": NEW_PASSWORD})
    assert first["data"]["resetPassword"]["__typename"] == "CredentialChanged"
    before = (await _customer()).password_hash
    reused = await Api(client).gql(RESET, {"t": token, "p": "yet another passphrase"})
    assert reused["data"]["resetPassword"]["__typename"] == "InvalidLinkError"
    assert (await _customer()).password_hash == before

    expiring = await _reset_token(client, smtp, mail_settings, CUSTOMER)
    await AccountToken.filter(used_at__isnull=True).update(
        expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    counts = await table_counts()
    expired = await Api(client).gql(RESET, {"t": expiring, "p": "yet another passphrase"})
    assert expired["data"]["resetPassword"] == {
        "__typename": "InvalidLinkError",
        "message": "This link is not valid: it may have expired or been used already.",
        "code": "INVALID_LINK",
    }
    assert (await _customer()).password_hash == before
    assert await table_counts() == counts


async def test_a_refused_new_password_keeps_the_reset_link_usable(
    client: httpx.AsyncClient, demo: None, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    token = await _reset_token(client, smtp, mail_settings, CUSTOMER)
    before = (await _customer()).password_hash
    weak = await Api(client).gql(RESET, {"t": token, "p": "password123"})
    assert weak["data"]["resetPassword"]["__typename"] == "InvalidInputError"
    assert weak["data"]["resetPassword"]["field"] == "newPassword"
    assert (await _customer()).password_hash == before
    retry = await Api(client).gql(RESET, {"t": token, "p": NEW_PASSWORD})
    assert retry["data"]["resetPassword"]["__typename"] == "CredentialChanged"


async def test_reset_answers_the_same_for_unknown_and_unverified_addresses_and_mails_nobody(
    client: httpx.AsyncClient, demo: None, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    await Api(client).gql(REGISTER, _form("unverified@example.com"))
    await Notice.all().delete()
    counts = await table_counts()
    answers = [
        await Api(client).post(REQUEST_RESET, {"e": email})
        for email in ("nobody@example.com", "unverified@example.com", CUSTOMER)
    ]
    assert len({(a.status_code, a.content) for a in answers}) == 1
    assert await _deliver(mail_settings) == mail.Delivery(sent=1)
    assert [got.recipients for got in smtp.received] == [[CUSTOMER]]
    assert await table_counts() == {
        **counts,
        "account_tokens": counts["account_tokens"] + 1,
        "notices": counts["notices"] + 1,
    }


async def test_reset_is_rate_limited_per_address(client: httpx.AsyncClient, demo: None) -> None:
    limit = rate_limit.RESET_PER_ACCOUNT
    for _ in range(limit.limit):
        body = await Api(client).gql(REQUEST_RESET, {"e": CUSTOMER})
        assert body["data"]["requestPasswordReset"] == ACCEPTED
    refused = await Api(client).post(REQUEST_RESET, {"e": CUSTOMER})
    assert refused.status_code == 429
    assert refused.json()["data"]["requestPasswordReset"] == {
        "__typename": "RateLimitedError",
        "code": "RATE_LIMITED",
    }
    assert await Notice.filter(kind="account.password_reset").count() == limit.limit


# --- change password and email ----------------------------------------------------------------


async def test_change_password_ends_the_other_sessions_and_keeps_this_one(
    client: httpx.AsyncClient, demo: None
) -> None:
    this = await sign_in(client, CUSTOMER)
    other = await sign_in(client, CUSTOMER)
    body = await Api(client, this).gql(CHANGE_PASSWORD, {"c": DEMO_PASSWORD, "p": NEW_PASSWORD})
    assert body["data"]["changePassword"] == {
        "__typename": "CredentialChanged",
        "sessionsEnded": 1,
        "appSignInsEnded": 0,
    }
    assert await _me(client, this) == {"email": CUSTOMER}
    assert await _me(client, other) is None
    assert await _password_status(client, CUSTOMER, NEW_PASSWORD) == 200
    told = await Notice.filter(kind="account.password_changed").count()
    assert told == 1


async def test_change_password_with_a_wrong_current_one_is_refused_and_rate_limited(
    client: httpx.AsyncClient, demo: None
) -> None:
    cookie = await sign_in(client, CUSTOMER)
    other = await sign_in(client, CUSTOMER)
    before = (await _customer()).password_hash
    for _ in range(rate_limit.CURRENT_PASSWORD_PER_ACCOUNT.limit):
        body = await Api(client, cookie).gql(
            CHANGE_PASSWORD, {"c": "wrong guess!", "p": NEW_PASSWORD}
        )
        assert body["data"]["changePassword"] == {
            "__typename": "InvalidInputError",
            "code": "INVALID_INPUT",
            "field": "currentPassword",
        }
    refused = await Api(client, cookie).post(
        CHANGE_PASSWORD, {"c": DEMO_PASSWORD, "p": NEW_PASSWORD}
    )
    assert refused.status_code == 429
    assert refused.json()["data"]["changePassword"]["__typename"] == "RateLimitedError"
    assert (await _customer()).password_hash == before
    assert await _me(client, other) == {"email": CUSTOMER}


async def test_change_email_takes_effect_only_when_confirmed_from_the_new_address(
    client: httpx.AsyncClient, demo: None, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    new = "carla.new@example.com"
    cookie = await sign_in(client, CUSTOMER)
    body = await Api(client, cookie).gql(CHANGE_EMAIL, {"e": new, "p": DEMO_PASSWORD})
    assert body["data"]["changeEmail"] == ACCEPTED
    assert (await _customer()).email == CUSTOMER
    assert await _deliver(mail_settings) == mail.Delivery(sent=2)
    (told,) = _mails_to(smtp, CUSTOMER)
    assert told.message["Subject"] == "A new email address was asked for your OCIS account"
    (confirm,) = _mails_to(smtp, new)
    token = _link_token(confirm, "/account/confirm-email")
    assert new not in repr(await AccountToken.all().values())  # sealed

    done = await Api(client).gql(CONFIRM_EMAIL, {"t": token})
    assert done == {"data": {"confirmEmailChange": {"__typename": "EmailChanged"}}}
    user = await User.get(email_index=crypto.blind_index(new))
    assert user.email == new
    assert user.email_verified_at is not None
    assert not await User.exists(email_index=crypto.blind_index(CUSTOMER))
    assert await _password_status(client, new, DEMO_PASSWORD) == 200
    assert await _password_status(client, CUSTOMER, DEMO_PASSWORD) == 401
    await _deliver(mail_settings)
    assert _mails_to(smtp, CUSTOMER)[-1].message["Subject"] == (
        "Your OCIS account has a new email address"
    )
    again = await Api(client).gql(CONFIRM_EMAIL, {"t": token})
    assert again["data"]["confirmEmailChange"]["__typename"] == "InvalidLinkError"


async def test_change_email_to_a_taken_address_answers_the_same_and_changes_nothing(
    client: httpx.AsyncClient, demo: None, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    cookie = await sign_in(client, CUSTOMER)
    taken = await Api(client, cookie).post(
        CHANGE_EMAIL, {"e": "customer2@example.com", "p": DEMO_PASSWORD}
    )
    free = await Api(client, cookie).post(
        CHANGE_EMAIL, {"e": "free.one@example.com", "p": DEMO_PASSWORD}
    )
    assert (taken.status_code, taken.content) == (free.status_code, free.content)
    assert taken.json()["data"]["changeEmail"] == ACCEPTED
    assert await AccountToken.filter(new_email__isnull=False).count() == 1
    await _deliver(mail_settings)
    (attempt,) = _mails_to(smtp, "customer2@example.com")
    assert "#token=" not in attempt.message.get_content()
    assert (await _customer()).email == CUSTOMER


# --- passwords --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("short", "Use at least 10 characters."),
        ("x" * 257, "Use at most 256 characters."),
        ("1234567890", "too common"),
        ("PASSWORD123", "too common"),
        ("qwertyuiop", "too common"),
        ("ｐａｓｓｗｏｒｄ１２３", "too common"),  # full-width, NFKC folds it
        ("aaaaaaaaaaaa", "more than one repeated character"),
        ("vera@example.com", "email address or username"),
        ("vera_verify_1", "email address or username"),
    ],
)
def test_the_password_rules_name_the_rule(password: str, rule: str) -> None:
    problem = passwords.password_problem(password, personal=("vera@example.com", "vera_verify_1"))
    assert problem is not None
    assert rule in problem


@pytest.mark.parametrize(
    "password",
    ["correct horse battery staple", "ünïcödé pässwörd", "パスワードは長いです", "Tr0ub4dor&3x"],
)
def test_long_passwords_of_any_script_and_no_composition_are_accepted(password: str) -> None:
    assert passwords.password_problem(password, personal=("vera@example.com",)) is None


async def test_a_password_verifies_whichever_way_its_accents_were_typed() -> None:
    composed = "caf\u00e9 au lait, s'il vous pla\u00eet"
    decomposed = "cafe\u0301 au lait, s'il vous pla\u0131\u0302t".replace("\u0131", "i")
    stored = await passwords.hash_password(composed)
    assert await passwords.verify_password(stored, decomposed)
    assert not await passwords.verify_password(stored, composed + "!")


def test_the_blocklist_ships_with_the_code() -> None:
    assert len(passwords.blocklist()) == 19_640
    assert passwords.BLOCKLIST_PATH.with_name("common-passwords.NOTICE").exists()


# --- migration ---------------------------------------------------------------------------------


async def test_accounts_made_before_verification_count_as_verified(tmp_path: Path) -> None:
    path = tmp_path / "at-0009.sqlite3"
    url = f"sqlite://{path}"
    await run_migrations(
        config=db.tortoise_config(url), app_labels=["ocis"], target="ocis.0009_notice_addresses"
    )
    await Tortoise.close_connections()
    created = "2026-11-01 10:00:00+00:00"
    indexed, unindexed = str(uuid.uuid4()), str(uuid.uuid4())
    with sqlite3.connect(path) as connection:
        for ident, index in ((indexed, uuid.uuid4().hex), (unindexed, None)):
            connection.execute(
                "INSERT INTO users (id, name, email, email_index, locale, time_zone, roles,"
                " status, source, created_at, updated_at)"
                " VALUES (?, 'x', 'x', ?, 'en', 'UTC', '[]', 'active', 'self', ?, ?)",
                (ident, index, created, created),
            )
    await db.migrate(url)
    with sqlite3.connect(path) as connection:
        rows = dict(connection.execute("SELECT id, email_verified_at FROM users").fetchall())
    assert rows == {indexed: created, unindexed: None}


# --- the timing bench --------------------------------------------------------------------------


@pytest.mark.parametrize("reset", [False, True], ids=["register", "requestPasswordReset"])
async def test_the_timing_bench_measures_both_paths(
    app_settings: config.Settings, tmp_path: Path, reset: bool
) -> None:
    from bench import registration_timing

    settings = replace(
        app_settings,
        database_url=f"sqlite://{tmp_path / 'timing.sqlite3'}",
        redis_url=None,
        audit_checkpoint_dir=tmp_path / "checkpoints",
    )
    result = await registration_timing.measure(settings, 2, reset=reset)
    assert result["mutation"] == ("requestPasswordReset" if reset else "register")
    assert result["attempts"] == 2
    assert result["backend"] == "sqlite"
    assert result["taken_median_ms"] > 0
    assert result["free_median_ms"] > 0
    assert result["ratio"] >= 1
