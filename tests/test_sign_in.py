"""Password sign-in and sign-out: the cookie, the session, its metadata (P02, P04)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from tortoise import Tortoise

import auth.passwords
import settings as config
from auth.rate_limit import KEY_PREFIX
from models import SignInSession, User, crypto
from server import create_app
from tests.helpers import (
    DEMO_PASSWORD,
    ORIGIN,
    Api,
    database_rows,
    https_settings,
    sign_in,
    signed_in_email,
    verify_by_link,
)

CUSTOMER = "customer@example.com"
HTTPS_ORIGIN = "https://ocis.example.com"
IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
DESKTOP_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36"
    " (KHTML, like Gecko) Chrome/124.0.6367.91 Safari/537.36"
)
SIGN_INS = """
{ me { signIns { ipAddress browser browserVersion os deviceType timeZone referrer current } } }
"""


def _set_cookie(response: httpx.Response, name: str) -> Any:
    """The one Set-Cookie morsel for `name`, parsed."""
    headers = [value for value in response.headers.get_list("set-cookie") if name in value]
    assert len(headers) == 1, response.headers.get_list("set-cookie")
    jar: SimpleCookie = SimpleCookie()
    jar.load(headers[0])
    return jar[name]


async def _password(
    client: httpx.AsyncClient, cookie: str | None = None, **kwargs: Any
) -> httpx.Response:
    client.cookies.clear()
    headers = dict(kwargs.pop("headers", {}))
    if cookie is not None:
        headers["cookie"] = f"ocis_session={cookie}"
    response = await client.post("/auth/password", headers=headers, **kwargs)
    client.cookies.clear()
    return response


async def _me_email(client: httpx.AsyncClient, cookie: str) -> str | None:
    return signed_in_email(await Api(client, cookie).post("{ me { email } }"))


async def _store_entries(app: Any) -> list[tuple[str, str]]:
    store = app.state.store
    entries: list[tuple[str, str]] = []
    async for key in store.scan_iter(match="*"):
        kind = await store.type(key)
        value = await store.get(key) if kind == "string" else ""
        entries.append((key, value or ""))
    return entries


# --- the cookie ------------------------------------------------------------------------------


async def test_json_sign_in_sets_the_development_cookie(
    client: httpx.AsyncClient, demo: None, app_settings: config.Settings
) -> None:
    response = await _password(client, json={"email": CUSTOMER, "password": DEMO_PASSWORD})
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    cookie = _set_cookie(response, "ocis_session")
    assert cookie["httponly"] is True
    assert cookie["samesite"].lower() == "lax"
    assert cookie["path"] == "/"
    assert cookie["domain"] == ""
    assert cookie["max-age"] == str(app_settings.session_ttl_seconds)
    assert len(cookie.value) >= 40
    assert await _me_email(client, cookie.value) == CUSTOMER


async def test_form_sign_in_sets_the_cookie(client: httpx.AsyncClient, demo: None) -> None:
    response = await _password(client, data={"email": CUSTOMER, "password": DEMO_PASSWORD})
    assert response.status_code == 200
    cookie = _set_cookie(response, "ocis_session")
    assert cookie["httponly"] is True
    assert await _me_email(client, cookie.value) == CUSTOMER


@pytest.mark.parametrize("login", ["CUSTOMER@Example.COM", "  customer@example.com  "])
async def test_email_case_and_surrounding_spaces_find_the_account(
    client: httpx.AsyncClient, demo: None, login: str
) -> None:
    response = await _password(client, json={"email": login, "password": DEMO_PASSWORD})
    assert response.status_code == 200
    assert await _me_email(client, _set_cookie(response, "ocis_session").value) == CUSTOMER


@pytest.fixture
async def https_client(
    app: Any, demo: None, app_settings: config.Settings
) -> AsyncIterator[httpx.AsyncClient]:
    """A second app served as https://ocis.example.com, on the same (seeded) database."""
    application = create_app(https_settings(app_settings))
    # The running app's connections: a second lifespan would close the shared database at its end.
    application.state.store = app.state.store
    application.state.gateway = app.state.gateway
    transport = httpx.ASGITransport(app=application, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(
        transport=transport, base_url=HTTPS_ORIGIN, headers={"origin": HTTPS_ORIGIN}
    ) as http:
        yield http


async def test_https_sign_in_sets_a_host_prefixed_secure_cookie(
    https_client: httpx.AsyncClient,
) -> None:
    response = await https_client.post(
        "/auth/password", json={"email": CUSTOMER, "password": DEMO_PASSWORD}
    )
    assert response.status_code == 200
    # The session, and the device cookie (tests/test_device_cookies.py).
    names = sorted(value.split("=", 1)[0] for value in response.headers.get_list("set-cookie"))
    assert names == ["__Host-ocis_device", "__Host-ocis_session"]
    cookie = _set_cookie(response, "__Host-ocis_session")
    assert cookie["secure"] is True
    assert cookie["httponly"] is True
    assert cookie["samesite"].lower() == "lax"
    assert cookie["path"] == "/"
    assert cookie["domain"] == ""

    https_client.cookies.clear()
    served = await https_client.post(
        "/graphql",
        json={"query": "{ me { email } }"},
        headers={"cookie": f"__Host-ocis_session={cookie.value}"},
    )
    assert served.json() == {"data": {"me": {"email": CUSTOMER}}}
    # Under https the plain name is not a session cookie at all.
    plain = await https_client.post(
        "/graphql",
        json={"query": "{ me { email } }"},
        headers={"cookie": f"ocis_session={cookie.value}"},
    )
    assert plain.json() == {"data": {"me": None}}


# --- failures look alike (P02, SECURITY 16) --------------------------------------------------


class _CountingHasher:
    """Wraps the argon2 hasher and records which hashes were verified."""

    def __init__(self, real: PasswordHasher) -> None:
        self.real = real
        self.verified: list[str] = []

    def verify(self, hash: str, password: str) -> bool:
        self.verified.append(hash)
        return self.real.verify(hash, password)


@pytest.mark.promise("P02")
async def test_wrong_password_and_unknown_email_get_the_same_answer(
    client: httpx.AsyncClient, demo: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    hasher = _CountingHasher(auth.passwords._hasher)
    monkeypatch.setattr(auth.passwords, "_hasher", hasher)

    wrong = await _password(client, json={"email": CUSTOMER, "password": "not-the-password"})
    unknown = await _password(
        client, json={"email": "nobody@example.com", "password": "not-the-password"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.content == unknown.content
    assert wrong.json() == {"error": "Wrong email or password."}
    assert "set-cookie" not in wrong.headers
    assert "set-cookie" not in unknown.headers
    # Both paths pay for one argon2 verification, so timing does not tell them apart.
    assert len(hasher.verified) == 2
    assert all(stored.startswith("$argon2id$") for stored in hasher.verified)
    assert await SignInSession.all().count() == 0


@pytest.mark.promise("P02")
@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"json": {"email": CUSTOMER}}, id="json-no-password"),
        pytest.param({"json": {"password": DEMO_PASSWORD}}, id="json-no-email"),
        pytest.param({"json": {"email": "", "password": ""}}, id="json-empty"),
        pytest.param({"json": {"email": CUSTOMER, "password": 12345}}, id="json-number"),
        pytest.param({"json": [CUSTOMER, DEMO_PASSWORD]}, id="json-array"),
        pytest.param(
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            id="json-malformed",
        ),
        pytest.param({"data": {"email": CUSTOMER}}, id="form-no-password"),
        pytest.param({"data": {}}, id="form-empty"),
    ],
)
async def test_missing_fields_are_a_bad_request(
    client: httpx.AsyncClient, demo: None, kwargs: dict[str, Any]
) -> None:
    response = await _password(client, **kwargs)
    assert response.status_code == 400
    assert response.json() == {"error": "Send email and password."}
    assert "set-cookie" not in response.headers
    assert await SignInSession.all().count() == 0


async def test_sign_in_from_another_origin_is_refused(
    client: httpx.AsyncClient, demo: None
) -> None:
    response = await _password(
        client,
        json={"email": CUSTOMER, "password": DEMO_PASSWORD},
        headers={"origin": "https://evil.example.net"},
    )
    assert response.status_code == 403
    assert response.json() == {"error": "Sign in from the OCIS site.", "code": "CROSS_SITE"}
    assert "set-cookie" not in response.headers
    assert await SignInSession.all().count() == 0


# --- no login CSRF: a form only from our own pages ---------------------------------------------

OUR_PAGE = f"{ORIGIN}/signin?next=/tickets"
EVIL_PAGE = "https://evil.example.net/login.html"


async def _post_sign_in(
    client: httpx.AsyncClient, headers: dict[str, str | None], **kwargs: Any
) -> httpx.Response:
    """POST /auth/password with these headers; a None value removes a default one (Origin)."""
    client.cookies.clear()
    request = client.build_request(
        "POST",
        "/auth/password",
        headers={name: value for name, value in headers.items() if value is not None},
        **kwargs,
    )
    for name, value in headers.items():
        if value is None:
            del request.headers[name]
    response = await client.send(request)
    client.cookies.clear()
    return response


async def _assert_nothing_changed(app: Any, response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    assert response.json() == {"error": "Sign in from the OCIS site.", "code": "CROSS_SITE"}
    assert "set-cookie" not in response.headers
    assert await SignInSession.all().count() == 0
    # Refused before counting: a cross-site page cannot spend the owner's attempts either.
    assert [key async for key in app.state.store.scan_iter(match=f"{KEY_PREFIX}*")] == []


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"origin": "https://evil.example.net"}, id="cross-site-origin"),
        pytest.param({"origin": "http://127.0.0.1:8001"}, id="another-port"),
        pytest.param({"origin": "https://127.0.0.1:8000"}, id="another-scheme"),
        pytest.param({"origin": "null"}, id="null-origin"),
        pytest.param({"origin": "null", "referer": OUR_PAGE}, id="null-origin-our-referer"),
        pytest.param({"origin": None}, id="no-origin-no-referer"),
        pytest.param({"origin": None, "referer": EVIL_PAGE}, id="foreign-referer"),
        pytest.param(
            {"origin": None, "referer": "http://127.0.0.1:8000.evil.example.net/"},
            id="look-alike-referer",
        ),
        pytest.param({"origin": None, "referer": "/signin"}, id="relative-referer"),
        pytest.param({"origin": "https://evil.example.net", "referer": OUR_PAGE}, id="both-mixed"),
    ],
)
async def test_a_sign_in_form_from_anywhere_but_our_pages_is_refused(
    app: Any, client: httpx.AsyncClient, demo: None, headers: dict[str, str | None]
) -> None:
    response = await _post_sign_in(
        client, headers, data={"email": CUSTOMER, "password": DEMO_PASSWORD}
    )
    await _assert_nothing_changed(app, response)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"origin": ORIGIN}, id="our-origin"),
        pytest.param({"origin": None, "referer": OUR_PAGE}, id="no-origin-our-referer"),
    ],
)
async def test_a_sign_in_form_from_our_pages_signs_in(
    client: httpx.AsyncClient, demo: None, headers: dict[str, str | None]
) -> None:
    response = await _post_sign_in(
        client, headers, data={"email": CUSTOMER, "password": DEMO_PASSWORD}
    )
    assert response.status_code == 200, response.text
    assert await _me_email(client, _set_cookie(response, "ocis_session").value) == CUSTOMER


async def test_a_json_sign_in_with_a_null_origin_is_refused(
    app: Any, client: httpx.AsyncClient, demo: None
) -> None:
    response = await _post_sign_in(
        client, {"origin": "null"}, json={"email": CUSTOMER, "password": DEMO_PASSWORD}
    )
    await _assert_nothing_changed(app, response)


async def test_a_json_sign_in_without_origin_is_a_non_browser_client_and_served(
    client: httpx.AsyncClient, demo: None
) -> None:
    # A browser attaches Origin to every cross-site POST, and may not send cross-site JSON at all
    # without a CORS preflight we never grant; a JSON body without Origin is a script or an app.
    response = await _post_sign_in(
        client, {"origin": None}, json={"email": CUSTOMER, "password": DEMO_PASSWORD}
    )
    assert response.status_code == 200, response.text


# --- session ids (SECURITY 15) ---------------------------------------------------------------


async def test_every_sign_in_gets_a_new_session_id(client: httpx.AsyncClient, demo: None) -> None:
    tokens = [await sign_in(client, CUSTOMER) for _ in range(3)]
    assert len(set(tokens)) == 3
    for token in tokens:
        assert await _me_email(client, token) == CUSTOMER


async def test_signing_in_over_an_old_cookie_revokes_it(
    client: httpx.AsyncClient, demo: None, app: Any
) -> None:
    old = await sign_in(client, CUSTOMER)
    response = await _password(
        client, cookie=old, json={"email": CUSTOMER, "password": DEMO_PASSWORD}
    )
    assert response.status_code == 200
    new = _set_cookie(response, "ocis_session").value
    assert new != old
    assert await _me_email(client, old) is None
    assert await _me_email(client, new) == CUSTOMER
    old_row = await SignInSession.get(token_hash=hashlib.sha256(old.encode()).hexdigest())
    new_row = await SignInSession.get(token_hash=hashlib.sha256(new.encode()).hexdigest())
    assert old_row.revoked_at is not None
    assert new_row.revoked_at is None
    keys = [key for key, _ in await _store_entries(app)]
    assert f"ocis:session:{hashlib.sha256(old.encode()).hexdigest()}" not in keys


async def test_a_planted_cookie_value_is_never_adopted(
    client: httpx.AsyncClient, demo: None
) -> None:
    planted = "attacker-chosen-session-id-0123456789abcdef"
    response = await _password(
        client, cookie=planted, json={"email": "agent@example.com", "password": DEMO_PASSWORD}
    )
    assert response.status_code == 200
    assert _set_cookie(response, "ocis_session").value != planted
    assert await _me_email(client, planted) is None


# --- metadata (P04) --------------------------------------------------------------------------


@pytest.mark.promise("P04")
async def test_sign_in_records_its_metadata(client: httpx.AsyncClient, demo: None) -> None:
    phone = await _password(
        client,
        json={"email": CUSTOMER, "password": DEMO_PASSWORD, "timeZone": "Europe/Lisbon"},
        headers={"user-agent": IPHONE_SAFARI, "referer": "https://search.example.org/?q=ocis"},
    )
    desktop = await _password(
        client,
        json={"email": CUSTOMER, "password": DEMO_PASSWORD, "timeZone": "America/New_York"},
        headers={"user-agent": DESKTOP_CHROME},
    )
    assert phone.status_code == desktop.status_code == 200
    desktop_token = _set_cookie(desktop, "ocis_session").value

    body = await Api(client, desktop_token).gql(SIGN_INS)
    sign_ins = sorted(body["data"]["me"]["signIns"], key=lambda row: str(row["browser"]))
    assert sign_ins == [
        {
            "ipAddress": "203.0.113.7",
            "browser": "Chrome",
            "browserVersion": "124.0.6367",
            "os": "Windows",
            "deviceType": "desktop",
            "timeZone": "America/New_York",
            "referrer": None,
            "current": True,
        },
        {
            "ipAddress": "203.0.113.7",
            "browser": "Mobile Safari",
            "browserVersion": "17.4",
            "os": "iOS",
            "deviceType": "mobile",
            "timeZone": "Europe/Lisbon",
            # Only the Referer's origin is kept: its path and query may carry anything (P03).
            "referrer": "https://search.example.org",
            "current": False,
        },
    ]

    user = await User.get(email_index=crypto.blind_index(CUSTOMER))
    rows = await SignInSession.filter(user_id=user.id).order_by("created_at")
    assert [(row.browser, row.ip_address, row.method) for row in rows] == [
        ("Mobile Safari", "203.0.113.7", "password"),
        ("Chrome", "203.0.113.7", "password"),
    ]
    assert all(row.expires_at > row.created_at for row in rows)


@pytest.mark.promise("P04")
@pytest.mark.parametrize("time_zone", ["Mars/Olympus_Mons", "", "utc'; DROP TABLE users;--", 60])
async def test_an_invalid_time_zone_is_stored_as_null(
    client: httpx.AsyncClient, demo: None, time_zone: object
) -> None:
    response = await _password(
        client,
        json={"email": CUSTOMER, "password": DEMO_PASSWORD, "timeZone": time_zone},
        headers={"user-agent": IPHONE_SAFARI},
    )
    assert response.status_code == 200
    row = await SignInSession.get()
    assert row.time_zone is None
    assert row.browser == "Mobile Safari"
    assert row.referrer is None


@pytest.mark.promise("P04")
async def test_sign_in_metadata_is_not_another_customers_to_read(
    client: httpx.AsyncClient, demo: None
) -> None:
    await _password(
        client,
        json={"email": CUSTOMER, "password": DEMO_PASSWORD, "timeZone": "Europe/Lisbon"},
        headers={"user-agent": IPHONE_SAFARI},
    )
    response = await _password(
        client,
        json={"email": "customer2@example.com", "password": DEMO_PASSWORD},
        headers={"user-agent": DESKTOP_CHROME},
    )
    other = _set_cookie(response, "ocis_session").value
    body = await Api(client, other).gql(SIGN_INS)
    rows = body["data"]["me"]["signIns"]
    assert [(row["browser"], row["timeZone"], row["current"]) for row in rows] == [
        ("Chrome", None, True)
    ]


# --- sign-out (SECURITY 12, 15) --------------------------------------------------------------


async def test_sign_out_revokes_the_session_at_once(
    client: httpx.AsyncClient, demo: None, app: Any
) -> None:
    token = await sign_in(client, CUSTOMER)
    other = await sign_in(client, CUSTOMER)
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert f"ocis:session:{digest}" in [key for key, _ in await _store_entries(app)]

    client.cookies.clear()
    response = await client.post(
        "/auth/logout", json={}, headers={"cookie": f"ocis_session={token}"}
    )
    assert response.status_code == 204
    cleared = _set_cookie(response, "ocis_session")
    assert cleared.value in ("", '""')
    assert cleared["max-age"] == "0"

    assert await _me_email(client, token) is None
    row = await SignInSession.get(token_hash=digest)
    assert row.revoked_at is not None
    assert f"ocis:session:{digest}" not in [key for key, _ in await _store_entries(app)]
    # Only that session ends.
    assert await _me_email(client, other) == CUSTOMER


@pytest.mark.parametrize(
    ("headers", "kwargs"),
    [
        pytest.param({"origin": "https://evil.example.net"}, {"json": {}}, id="foreign-origin"),
        pytest.param({}, {"data": {"x": "1"}}, id="form-post"),
    ],
)
async def test_cross_site_sign_out_is_refused(
    client: httpx.AsyncClient, demo: None, headers: dict[str, str], kwargs: dict[str, Any]
) -> None:
    token = await sign_in(client, CUSTOMER)
    client.cookies.clear()
    response = await client.post(
        "/auth/logout", headers={**headers, "cookie": f"ocis_session={token}"}, **kwargs
    )
    assert response.status_code == 403
    assert await _me_email(client, token) == CUSTOMER
    assert await SignInSession.filter(revoked_at__isnull=False).count() == 0


async def test_raw_session_ids_never_reach_the_store_or_the_database(
    client: httpx.AsyncClient, demo: None, app: Any
) -> None:
    tokens = [await sign_in(client, CUSTOMER), await sign_in(client, "agent@example.com")]
    entries = await _store_entries(app)
    dump = await database_rows()
    hashes = {row.token_hash for row in await SignInSession.all()}
    assert hashes == {hashlib.sha256(token.encode()).hexdigest() for token in tokens}
    for token in tokens:
        assert f"ocis:session:{hashlib.sha256(token.encode()).hexdigest()}" in dict(entries)
        for key, value in entries:
            assert token not in key
            assert token not in value
        assert token not in dump

    client.cookies.clear()
    await client.post("/auth/logout", json={}, headers={"cookie": f"ocis_session={tokens[0]}"})
    assert tokens[0] not in await database_rows()
    assert all(tokens[0] not in key + value for key, value in await _store_entries(app))


# --- passwords (P02) -------------------------------------------------------------------------


REGISTER = """
mutation Register($input: RegisterInput!) {
  register(input: $input) { __typename }
}
"""


@pytest.mark.promise("P02")
async def test_passwords_are_stored_only_as_argon2id_hashes(
    client: httpx.AsyncClient, demo: None
) -> None:
    password = "correct horse battery staple"
    body = await Api(client).gql(
        REGISTER,
        {
            "input": {
                "name": "Hash Tester",
                "email": "hash.tester@example.com",
                "password": password,
                "dateOfBirth": "1990-01-01",
            }
        },
    )
    assert body["data"]["register"]["__typename"] == "CheckYourMail"

    connection = Tortoise.get_connection("default")
    rows = await connection.execute_query_dict('SELECT "password_hash" FROM "users"')
    stored = [str(row["password_hash"]) for row in rows]
    assert len(stored) == 8
    assert all(value.startswith("$argon2id$v=19$") for value in stored)
    hasher = PasswordHasher()
    registered = (
        await User.get(email_index=crypto.blind_index("hash.tester@example.com"))
    ).password_hash
    assert registered is not None
    assert hasher.verify(registered, password)
    dump = await database_rows()
    assert password not in dump
    assert DEMO_PASSWORD not in dump


@pytest.mark.promise("P02")
async def test_no_graphql_output_field_can_return_a_password(
    client: httpx.AsyncClient,
) -> None:
    body = await Api(client).gql(
        "{ __schema { types { name kind fields(includeDeprecated: true) { name } } } }"
    )
    types = body["data"]["__schema"]["types"]
    output_fields = [
        f"{graphql_type['name']}.{field['name']}"
        for graphql_type in types
        for field in graphql_type["fields"] or []
    ]
    assert "User.email" in output_fields, "introspection must list the real fields"
    # A mutation is named for what it does (changePassword); what it answers is checked here
    # through its result types.
    suspicious = [
        name
        for name in output_fields
        if not name.startswith("Mutation.")
        and any(word in name.lower() for word in ("password", "passwd", "hash", "secret"))
    ]
    assert suspicious == []


@pytest.mark.promise("P02")
async def test_passwords_are_never_logged(
    client: httpx.AsyncClient, demo: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    password = "a secret never to be logged"
    await Api(client).gql(
        REGISTER,
        {
            "input": {
                "name": "Log Tester",
                "email": "log.tester@example.com",
                "password": password,
                "dateOfBirth": "1990-01-01",
            }
        },
    )
    await verify_by_link(client)
    ok = await _password(client, json={"email": "log.tester@example.com", "password": password})
    wrong = await _password(client, json={"email": CUSTOMER, "password": password + "!"})
    assert (ok.status_code, wrong.status_code) == (200, 401)
    formatter = logging.Formatter("%(name)s %(message)s")
    logged = "\n".join(formatter.format(record) for record in caplog.records)
    assert "tortoise.db_client" in logged, "SQL logging was captured"
    assert password not in logged
