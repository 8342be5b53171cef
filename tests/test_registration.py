"""The `register` mutation: a customer account for anyone 16 or over (P01, P02, P29).

It answers "check your mail" whatever the address; tests/test_local_accounts.py follows the
mails and proves taken and free addresses get identical answers.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from models import AuditEvent, Notice, Role, User, UserStatus, crypto
from schema.local_accounts import CHECK_YOUR_MAIL
from tests.helpers import Api, database_rows, table_counts, verify_by_link

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
PASSWORD = "a long enough password"


def _today() -> date:
    return datetime.now(UTC).date()


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February in a year without one
        return day.replace(year=day.year - years, day=28)


def _input(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": "Rosa Registrant",
        "email": "rosa.registrant@example.com",
        "password": PASSWORD,
        "dateOfBirth": "1990-05-17",
        "phone": "+44 20 7946 0000",
    }
    values.update(overrides)
    return values


async def _register(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    body = await Api(client).gql(REGISTER, {"input": _input(**overrides)})
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["register"]
    return result


ACCEPTED = {"__typename": "CheckYourMail", "message": CHECK_YOUR_MAIL}


async def _registered(email: str = "rosa.registrant@example.com") -> User:
    return await User.get(email_index=crypto.blind_index(email))


# --- success ---------------------------------------------------------------------------------


@pytest.mark.promise("P01")
@pytest.mark.promise("P02")
async def test_registration_creates_a_customer_who_can_sign_in(
    client: httpx.AsyncClient,
) -> None:
    form = _input(
        email="  Rosa.Registrant@Example.com ",
        username="rosa_r",
        locale="pt-BR",
        timeZone="Europe/Lisbon",
    )
    response = await Api(client).post(REGISTER, {"input": form})
    assert response.json() == {"data": {"register": ACCEPTED}}
    assert "set-cookie" not in response.headers  # registering signs nobody in

    user = await User.get(email_index=crypto.blind_index("rosa.registrant@example.com"))
    assert (user.name, user.email, user.phone) == (
        "Rosa Registrant",
        "Rosa.Registrant@example.com",
        "+44 20 7946 0000",
    )
    assert user.roles == [Role.CUSTOMER.value]
    assert user.status == UserStatus.ACTIVE
    assert user.password_hash is not None
    assert user.password_hash.startswith("$argon2id$")
    assert (user.username, user.locale, user.time_zone, user.date_of_birth) == (
        "rosa_r",
        "pt-BR",
        "Europe/Lisbon",
        "1990-05-17",
    )
    assert (user.source, user.email_verified_at) == ("self", None)

    client.cookies.clear()
    before = await client.post(
        "/auth/password", json={"email": "rosa.registrant@example.com", "password": PASSWORD}
    )
    assert before.status_code == 401  # not until the address is verified
    await verify_by_link(client)
    client.cookies.clear()
    signed_in = await client.post(
        "/auth/password", json={"email": "ROSA.registrant@example.com", "password": PASSWORD}
    )
    assert signed_in.status_code == 200
    token = signed_in.cookies["ocis_session"]
    me = await Api(client, token).gql("{ me { name email phone roles } }")
    assert me == {
        "data": {
            "me": {
                "name": "Rosa Registrant",
                "email": "Rosa.Registrant@example.com",
                "phone": "+44 20 7946 0000",
                "roles": ["CUSTOMER"],
            }
        }
    }


async def test_registration_defaults_locale_and_time_zone(client: httpx.AsyncClient) -> None:
    assert await _register(client, phone=None) == ACCEPTED
    user = await _registered()
    assert (user.phone, user.locale, user.time_zone, user.username) == (None, "en", "UTC", None)


async def test_registration_is_audited_without_values(client: httpx.AsyncClient) -> None:
    response = await Api(client).post(REGISTER, {"input": _input()})
    assert response.json()["data"]["register"] == ACCEPTED
    user = await _registered()
    events = await AuditEvent.all()
    assert [(event.action, event.entity, event.subject_id) for event in events] == [
        ("account.create", "User", user.id)
    ]
    assert events[0].entity_id == str(user.id)
    assert events[0].field_names == sorted(
        [
            "User.name",
            "User.email",
            "User.phone",
            "User.username",
            "User.dateOfBirth",
            "User.password",
        ]
    )
    raw = repr(await AuditEvent.all().values())
    for value in ("Rosa", "rosa.registrant", "7946", "1990-05-17", PASSWORD):
        assert value not in raw
    assert events[0].request_id == response.headers["x-request-id"]


async def test_a_sixteenth_birthday_today_is_old_enough(client: httpx.AsyncClient) -> None:
    birth = _years_before(_today(), 16)
    assert await _register(client, dateOfBirth=birth.isoformat()) == ACCEPTED
    assert (await _registered()).date_of_birth == birth.isoformat()


# --- under 16 (P29) --------------------------------------------------------------------------


def _under_sixteen() -> list[Any]:
    today = _today()
    return [
        pytest.param(_years_before(today + timedelta(days=1), 16), id="16th-birthday-tomorrow"),
        pytest.param(_years_before(today, 15), id="fifteen-today"),
        pytest.param(_years_before(today, 10), id="ten"),
        pytest.param(today, id="born-today"),
    ]


@pytest.mark.promise("P29")
@pytest.mark.parametrize("birth", _under_sixteen())
async def test_under_sixteen_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient,
    demo: None,
    app: Any,
    caplog: pytest.LogCaptureFixture,
    birth: date,
) -> None:
    caplog.set_level(logging.DEBUG)
    counts = await table_counts()
    email = "young.teen@example.com"
    name = "Tilly Teenager"
    phone = "+44 20 7946 0999"

    result = await _register(
        client, email=email, name=name, phone=phone, dateOfBirth=birth.isoformat()
    )

    assert result == {
        "__typename": "AgeRequirementError",
        "message": "OCIS is not for anyone under 16.",
        "code": "AGE_REQUIREMENT_NOT_MET",
    }
    assert await table_counts() == counts
    assert not await User.exists(email_index=crypto.blind_index(email))
    assert await AuditEvent.filter(action="account.create").count() == 0
    dump = await database_rows()
    for value in (email, name, phone, crypto.blind_index(email)):
        assert value not in dump
    keys = [key async for key in app.state.store.scan_iter(match="*")]
    assert not [key for key in keys if email in key or crypto.blind_index(email) in key]
    formatter = logging.Formatter("%(name)s %(message)s")
    logged = "\n".join(formatter.format(record) for record in caplog.records)
    for value in (email, name, phone):
        assert value not in logged


@pytest.mark.promise("P29")
async def test_age_is_checked_before_anything_else(client: httpx.AsyncClient) -> None:
    counts = await table_counts()
    result = await _register(
        client, email="not-an-email", dateOfBirth=_years_before(_today(), 12).isoformat()
    )
    assert result["__typename"] == "AgeRequirementError"
    assert await table_counts() == counts


# --- invalid input changes nothing -----------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        pytest.param({"email": "not-an-email"}, "email", id="email-no-at"),
        pytest.param({"email": "rosa@"}, "email", id="email-no-domain"),
        pytest.param({"email": "   "}, "email", id="email-blank"),
        pytest.param({"password": "short"}, "password", id="password-short"),
        pytest.param({"password": "123456789"}, "password", id="password-nine"),
        pytest.param({"password": "x" * 257}, "password", id="password-too-long"),
        pytest.param({"password": "1234567890"}, "password", id="password-common"),
        pytest.param({"password": "Qwertyuiop"}, "password", id="password-common-any-case"),
        pytest.param({"password": "z" * 12}, "password", id="password-one-character"),
        pytest.param(
            {"password": "rosa.registrant@example.com"}, "password", id="password-is-the-email"
        ),
        pytest.param(
            {"password": "rosa_registrant", "username": "rosa_registrant"},
            "password",
            id="password-is-the-username",
        ),
        pytest.param({"name": "   "}, "name", id="name-blank"),
        pytest.param({"name": ""}, "name", id="name-empty"),
        pytest.param({"name": "x" * 201}, "name", id="name-too-long"),
        pytest.param({"phone": "call me maybe"}, "phone", id="phone-words"),
        pytest.param({"phone": "12"}, "phone", id="phone-short"),
        pytest.param({"locale": "english!"}, "locale", id="locale"),
        pytest.param({"locale": ""}, "locale", id="locale-empty"),
        pytest.param({"timeZone": "Mars/Olympus_Mons"}, "timeZone", id="time-zone"),
        pytest.param({"timeZone": "europe/paris"}, "timeZone", id="time-zone-case"),
        pytest.param({"username": "a b"}, "username", id="username"),
        pytest.param({"dateOfBirth": "1899-12-31"}, "dateOfBirth", id="born-before-1900"),
    ],
)
async def test_invalid_input_names_the_field_and_changes_nothing(
    client: httpx.AsyncClient, overrides: dict[str, Any], field: str
) -> None:
    counts = await table_counts()
    result = await _register(client, **overrides)
    assert result["__typename"] == "InvalidInputError"
    assert result["code"] == "INVALID_INPUT"
    assert result["field"] == field
    assert result["message"]
    assert await table_counts() == counts


async def test_a_future_birth_date_is_invalid(client: httpx.AsyncClient) -> None:
    counts = await table_counts()
    tomorrow = _today() + timedelta(days=1)
    result = await _register(client, dateOfBirth=tomorrow.isoformat())
    assert result == {
        "__typename": "InvalidInputError",
        "message": "Enter a real date of birth.",
        "code": "INVALID_INPUT",
        "field": "dateOfBirth",
    }
    assert await table_counts() == counts


@pytest.mark.parametrize(
    "duplicate",
    [
        "rosa.registrant@example.com",
        "ROSA.Registrant@EXAMPLE.com",
        "  Rosa.Registrant@example.com  ",
    ],
)
async def test_a_registered_email_in_any_case_or_spacing_changes_nothing_and_tells_its_owner(
    client: httpx.AsyncClient, duplicate: str
) -> None:
    assert await _register(client) == ACCEPTED
    await verify_by_link(client)
    owner = await _registered()
    counts = await table_counts()
    result = await _register(client, email=duplicate, name="Someone Else", phone=None)
    assert result == ACCEPTED
    # One row more: the mail telling the owner; nothing else.
    assert await table_counts() == {**counts, "notices": counts["notices"] + 1}
    user = await User.get(email_index=crypto.blind_index(duplicate))
    assert (user.name, user.password_hash) == ("Rosa Registrant", owner.password_hash)
    told = await Notice.filter(user_id=owner.id).order_by("-created_at").first()
    assert told is not None
    assert told.kind == "account.registration_attempt"


async def test_a_taken_username_opens_nothing_and_tells_the_address_given(
    client: httpx.AsyncClient,
) -> None:
    assert await _register(client, username="rosa_r") == ACCEPTED
    counts = await table_counts()
    result = await _register(client, email="other@example.com", username="ROSA_R")
    assert result == ACCEPTED
    # The mail, and the data key its sealed address is under; no account.
    assert await table_counts() == {
        **counts,
        "notices": counts["notices"] + 1,
        "data_keys": counts["data_keys"] + 1,
    }
    assert not await User.exists(email_index=crypto.blind_index("other@example.com"))
    told = await Notice.get(kind="account.username_taken")
    assert (told.user_id, told.address) == (None, "other@example.com")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        pytest.param({"dateOfBirth": "17/05/1990"}, "dateOfBirth", id="date-format"),
        pytest.param({"dateOfBirth": "1990-02-30"}, "dateOfBirth", id="date-impossible"),
        pytest.param({"name": 5}, "name", id="name-not-a-string"),
    ],
)
async def test_a_mistyped_variable_is_a_client_error_not_an_internal_one(
    client: httpx.AsyncClient, overrides: dict[str, Any], field: str
) -> None:
    counts = await table_counts()
    body = await Api(client).gql(REGISTER, {"input": _input(**overrides)})
    assert body["data"] is None
    assert len(body["errors"]) == 1
    error = body["errors"][0]
    assert error["message"] != "Unexpected error."
    assert error.get("extensions", {}).get("code") != "INTERNAL_SERVER_ERROR"
    assert field in error["message"]
    assert await table_counts() == counts
