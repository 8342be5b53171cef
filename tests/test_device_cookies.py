"""Device cookies (OWASP, "Slow Down Online Guessing Attacks with Device Cookies"): guessers
lock out the untrusted clients of an account, never the browsers its owner signed in with."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Literal
from uuid import UUID

import httpx
import pytest
from argon2 import PasswordHasher
from argon2.exceptions import VerifyMismatchError
from redis.asyncio import Redis
from starlette.applications import Starlette

import auth.passwords
import settings as config
from auth import device_cookies, rate_limit
from models import SignInSession
from tests.helpers import (
    DEMO_PASSWORD,
    ORIGIN,
    another_instance,
    https_settings,
    user_by_email,
)
from tests.test_sign_in import _set_cookie
from tests.test_two_processes import (  # noqa: F401 - fixtures of the two-process test
    Browser,
    browser,
    servers,
    shared_redis,
)

CUSTOMER = "customer@example.com"
OTHER = "customer2@example.com"
WRONG = "not-the-password"
TOO_MANY = "Too many attempts. Try again later."
LIMIT = rate_limit.PASSWORD_PER_ACCOUNT.limit
DEVICE_LIMIT = rate_limit.PASSWORD_PER_DEVICE.limit


class _Hasher(PasswordHasher):
    """Knows the demo password without argon2's cost: these tests count attempts, not hashes."""

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        if password != DEMO_PASSWORD:
            raise VerifyMismatchError
        return True


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth.passwords, "_hasher", _Hasher())


@pytest.fixture
async def second_app(app: Starlette, app_settings: config.Settings) -> AsyncIterator[Starlette]:
    async with another_instance(app, app_settings) as other:
        yield other


async def attempt(
    app: Starlette,
    login: str = CUSTOMER,
    password: str = WRONG,
    *,
    device: str | None = None,
    ip: str = "198.51.100.10",
    base_url: str = ORIGIN,
    cookie_name: str = "ocis_device",
) -> httpx.Response:
    """One sign-in from a fresh browser at `ip`, presenting `device` if given."""
    headers = {"cookie": f"{cookie_name}={device}"} if device is not None else {}
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    async with httpx.AsyncClient(
        transport=transport, base_url=base_url, headers={"origin": base_url}
    ) as http:
        return await http.post(
            "/auth/password", json={"email": login, "password": password}, headers=headers
        )


def device_of(response: httpx.Response, name: str = "ocis_device") -> str:
    assert response.status_code == 200, response.text
    value = response.cookies.get(name)
    assert value, response.headers.get_list("set-cookie")
    return value


async def sign_in_device(app: Starlette, login: str = CUSTOMER, ip: str = "192.0.2.1") -> str:
    """The owner signs in on their own browser and keeps its device cookie."""
    return device_of(await attempt(app, login, DEMO_PASSWORD, ip=ip))


def assert_locked(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.json() == {
        "error": TOO_MANY,
        "retryAfterSeconds": int(response.headers["retry-after"]),
    }
    assert "set-cookie" not in response.headers


async def lock_out_untrusted(
    app: Starlette, login: str = CUSTOMER, already: int = 0, base_url: str = ORIGIN
) -> None:
    """A guesser without a device cookie spends the account's allowance (`already` of it is
    spent), and then some: even the right password is refused to untrusted clients."""
    for number in range(already, LIMIT + 2):
        response = await attempt(app, login, ip=f"203.0.113.{number + 1}", base_url=base_url)
        if number < LIMIT:
            assert response.status_code == 401, (number, response.text)
        else:
            assert_locked(response)
    assert_locked(await attempt(app, login, DEMO_PASSWORD, ip="203.0.113.200", base_url=base_url))


# --- the cookie --------------------------------------------------------------------------------


async def test_a_sign_in_gives_the_browser_a_signed_device_cookie(
    app: Starlette, demo: None, app_settings: config.Settings
) -> None:
    first = await attempt(app, CUSTOMER, DEMO_PASSWORD)
    morsel = _set_cookie(first, "ocis_device")
    assert morsel["httponly"] is True
    assert morsel["samesite"].lower() == "strict"
    assert morsel["path"] == "/"
    assert morsel["domain"] == ""
    assert morsel["secure"] == ""
    assert morsel["max-age"] == str(180 * 24 * 3600)

    device = device_cookies.verify(app_settings, morsel.value)
    assert device is not None
    assert device.account_id == (await user_by_email(CUSTOMER)).id
    # Nothing in it but the account id, an expiry, a random nonce and the MAC.
    assert re.fullmatch(r"d1\.[0-9a-f]{32}\.[0-9]{10}\.[0-9a-f]{32}\.[0-9a-f]{64}", morsel.value)
    assert "customer" not in morsel.value
    # Each sign-in gets a new nonce.
    again = device_cookies.verify(app_settings, await sign_in_device(app))
    assert again is not None
    assert again.account_id == device.account_id
    assert again.nonce != device.nonce


async def test_a_failed_or_refused_sign_in_gives_no_device_cookie(
    app: Starlette, demo: None
) -> None:
    wrong = await attempt(app, CUSTOMER, WRONG)
    assert wrong.status_code == 401
    assert "set-cookie" not in wrong.headers


async def test_over_https_the_device_cookie_is_host_prefixed_and_secure(
    app: Starlette, demo: None, app_settings: config.Settings
) -> None:
    https_origin = "https://ocis.example.com"
    async with another_instance(app, https_settings(app_settings)) as https_app:
        response = await attempt(https_app, CUSTOMER, DEMO_PASSWORD, base_url=https_origin)
        morsel = _set_cookie(response, "__Host-ocis_device")
        assert morsel["secure"] is True
        assert morsel["httponly"] is True
        assert morsel["samesite"].lower() == "strict"
        assert morsel["path"] == "/"
        assert morsel["domain"] == ""

        await lock_out_untrusted(https_app, already=1, base_url=https_origin)
        # The owner's __Host- cookie gets in; the same value under the plain name is no device
        # cookie over https (a subdomain or plain-http page could have set it).
        trusted = await attempt(
            https_app,
            CUSTOMER,
            DEMO_PASSWORD,
            device=morsel.value,
            base_url=https_origin,
            cookie_name="__Host-ocis_device",
        )
        assert trusted.status_code == 200, trusted.text
        assert_locked(
            await attempt(
                https_app, CUSTOMER, DEMO_PASSWORD, device=morsel.value, base_url=https_origin
            )
        )


# --- untrusted clients are locked out together; the owner's device is not -----------------------


async def test_guessers_lock_out_untrusted_clients_but_the_owner_signs_in_with_their_device(
    app: Starlette, demo: None
) -> None:
    device = await sign_in_device(app)  # counted among the account's attempts, as every one
    await lock_out_untrusted(app, already=1)
    assert await SignInSession.all().count() == 1

    # The owner on a new browser is an untrusted client too.
    assert_locked(await attempt(app, CUSTOMER, DEMO_PASSWORD, ip="192.0.2.2"))
    # The owner's own browser signs in, from anywhere, and gets a fresh device cookie.
    owner = await attempt(app, CUSTOMER, DEMO_PASSWORD, device=device, ip="192.0.2.3")
    assert owner.status_code == 200, owner.text
    assert owner.cookies.get("ocis_session")
    assert device_of(owner) != device
    assert await SignInSession.all().count() == 2
    # A wrong password from it is the usual answer, not a lockout.
    wrong = await attempt(app, CUSTOMER, WRONG, device=device)
    assert wrong.status_code == 401
    assert wrong.json() == {"error": "Wrong email or password."}


def _tampered(value: str, part: int) -> str:
    parts = value.split(".")
    text = parts[part]
    parts[part] = text[:-1] + ("0" if text[-1] != "0" else "1")
    return ".".join(parts)


def _forged_cookies(settings: config.Settings, account_id: UUID, genuine: str) -> dict[str, str]:
    other_key = replace(settings, master_key=b"o" * 32)
    expired_at = time.time() - device_cookies.LIFETIME_SECONDS - 1
    version, account_hex, _, nonce, _ = genuine.split(".")
    far_future = f"{version}.{account_hex}.9999999999.{nonce}"
    return {
        "nonce-changed": _tampered(genuine, 3),
        "expiry-changed": _tampered(genuine, 2),
        "mac-changed": _tampered(genuine, 4),
        "expiry-extended": f"{far_future}.{genuine.rsplit('.', 1)[1]}",
        "another-master-key": device_cookies.issue(other_key, account_id),
        "expired": device_cookies.issue(settings, account_id, now=expired_at),
        "no-mac": genuine.rsplit(".", 1)[0],
        "unsigned-version": "d0." + genuine.split(".", 1)[1],
        "garbage": "not-a-device-cookie",
        "oversized": genuine + "0" * 300,
        "empty": "",
    }


FORGERIES = [
    "nonce-changed",
    "expiry-changed",
    "mac-changed",
    "expiry-extended",
    "another-master-key",
    "expired",
    "no-mac",
    "unsigned-version",
    "garbage",
    "oversized",
    "empty",
]


@pytest.mark.parametrize("forgery", FORGERIES)
async def test_a_forged_tampered_or_expired_device_cookie_is_untrusted(
    app: Starlette, demo: None, app_settings: config.Settings, forgery: str
) -> None:
    genuine = await sign_in_device(app)
    account_id = (await user_by_email(CUSTOMER)).id
    value = _forged_cookies(app_settings, account_id, genuine)[forgery]
    assert device_cookies.verify(app_settings, value) is None

    await lock_out_untrusted(app, already=1)
    assert_locked(await attempt(app, CUSTOMER, DEMO_PASSWORD, device=value))
    # The genuine one still gets in: the refusal was the forgery's.
    assert (await attempt(app, CUSTOMER, DEMO_PASSWORD, device=genuine)).status_code == 200


async def test_a_forged_cookie_spends_the_untrusted_allowance(
    app: Starlette, demo: None, app_settings: config.Settings
) -> None:
    account_id = (await user_by_email(CUSTOMER)).id
    forged = device_cookies.issue(replace(app_settings, master_key=b"o" * 32), account_id)
    for number in range(LIMIT):
        response = await attempt(app, CUSTOMER, device=forged, ip=f"203.0.113.{number + 1}")
        assert response.status_code == 401, number
    assert_locked(await attempt(app, CUSTOMER, DEMO_PASSWORD, ip="203.0.113.99"))


async def test_a_cookie_from_account_a_does_not_help_for_account_b(
    app: Starlette, demo: None
) -> None:
    device_for_a = await sign_in_device(app, CUSTOMER)
    await lock_out_untrusted(app, OTHER)
    assert_locked(await attempt(app, OTHER, DEMO_PASSWORD, device=device_for_a))
    # Nor does it spend B's allowance as a device: B's untrusted clients stay locked, A's
    # browser still signs in to A.
    assert (await attempt(app, CUSTOMER, DEMO_PASSWORD, device=device_for_a)).status_code == 200


async def test_a_login_that_names_no_account_is_untrusted_whatever_the_cookie(
    app: Starlette, demo: None
) -> None:
    device = await sign_in_device(app)
    nobody = "nobody@example.com"
    for number in range(LIMIT):
        response = await attempt(app, nobody, device=device, ip=f"203.0.113.{number + 1}")
        assert response.status_code == 401, number
    # The same answer as for an account that exists: the lockout reveals nothing.
    assert_locked(await attempt(app, nobody, device=device, ip="203.0.113.99"))


# --- a device's own allowance --------------------------------------------------------------------


async def test_a_device_cookies_own_failures_lock_only_that_cookie(
    app: Starlette, demo: None
) -> None:
    laptop = await sign_in_device(app, ip="192.0.2.1")
    phone = await sign_in_device(app, ip="192.0.2.2")
    for number in range(DEVICE_LIMIT):
        response = await attempt(app, CUSTOMER, device=laptop, ip=f"198.51.100.{number + 1}")
        assert response.status_code == 401, number
    # That cookie is locked out, even with the right password.
    assert_locked(await attempt(app, CUSTOMER, DEMO_PASSWORD, device=laptop))
    # Not the owner's other device, nor untrusted clients: its failures counted for it alone.
    assert (await attempt(app, CUSTOMER, DEMO_PASSWORD, device=phone)).status_code == 200
    for number in range(LIMIT - 3):
        response = await attempt(app, CUSTOMER, ip=f"203.0.113.{number + 1}")
        assert response.status_code == 401, number
    assert (await attempt(app, CUSTOMER, DEMO_PASSWORD, ip="192.0.2.9")).status_code == 200


async def test_right_passwords_do_not_spend_a_devices_allowance(app: Starlette, demo: None) -> None:
    device = await sign_in_device(app)
    for number in range(DEVICE_LIMIT + 2):
        response = await attempt(
            app, CUSTOMER, DEMO_PASSWORD, device=device, ip=f"198.51.100.{number + 1}"
        )
        assert response.status_code == 200, number
    # Its whole allowance of failures is still there.
    for number in range(DEVICE_LIMIT):
        response = await attempt(app, CUSTOMER, device=device, ip=f"198.51.100.{number + 100}")
        assert response.status_code == 401, number
    assert_locked(await attempt(app, CUSTOMER, DEMO_PASSWORD, device=device))


async def test_device_counters_hold_neither_account_nor_nonce(
    app: Starlette, demo: None, app_settings: config.Settings
) -> None:
    store: Redis = app.state.store
    value = await sign_in_device(app)
    device = device_cookies.verify(app_settings, value)
    assert device is not None
    async for key in store.scan_iter(match=f"{rate_limit.KEY_PREFIX}*"):
        await store.delete(key)
    assert (await attempt(app, CUSTOMER, device=value)).status_code == 401
    keys = sorted([key async for key in store.scan_iter(match=f"{rate_limit.KEY_PREFIX}*")])
    assert len(keys) == 2
    assert re.fullmatch(r"ocis:rl:password:device:[0-9a-f]{64}", keys[0]), keys
    assert re.fullmatch(r"ocis:rl:password:ip:[0-9a-f]{64}", keys[1]), keys
    joined = " ".join(keys)
    assert device.nonce not in joined
    assert device.account_id.hex not in joined
    assert await store.get(keys[0]) == "1"
    assert 890_000 <= await store.pttl(keys[0]) <= 900_000


# --- across instances sharing the store ----------------------------------------------------------


async def test_devices_and_lockouts_hold_across_two_app_instances(
    app: Starlette, second_app: Starlette, app_settings: config.Settings
) -> None:
    from resolvers.demo import seed_demo_data

    assert await seed_demo_data()
    if app_settings.redis_url:
        assert second_app.state.store is not app.state.store  # two connections, one Redis
    laptop = await sign_in_device(second_app, ip="192.0.2.1")
    phone = await sign_in_device(app, ip="192.0.2.2")
    for number in range(1 + LIMIT):
        instance = app if number % 2 else second_app
        response = await attempt(instance, CUSTOMER, ip=f"203.0.113.{number + 1}")
        assert response.status_code == (401 if number < LIMIT - 2 else 429), number
    for instance in (app, second_app):
        assert_locked(await attempt(instance, CUSTOMER, DEMO_PASSWORD, ip="203.0.113.99"))
        # A cookie one instance issued is trusted by the other.
        assert (await attempt(instance, CUSTOMER, DEMO_PASSWORD, device=laptop)).status_code == 200

    for number in range(DEVICE_LIMIT):
        instance = app if number % 2 else second_app
        response = await attempt(instance, CUSTOMER, device=phone, ip=f"198.51.100.{number + 1}")
        assert response.status_code == 401, number
    for instance in (app, second_app):
        assert_locked(await attempt(instance, CUSTOMER, DEMO_PASSWORD, device=phone))
        assert (await attempt(instance, CUSTOMER, DEMO_PASSWORD, device=laptop)).status_code == 200


async def test_a_device_cookie_from_one_server_process_is_trusted_by_another(
    servers: tuple[str, str],  # noqa: F811 - the fixtures imported above
    browser: Browser,  # noqa: F811
) -> None:
    first, second = servers
    http = browser.http
    http.cookies.clear()
    signed_in = await http.post(
        f"{first}/auth/password",
        json={"email": CUSTOMER, "password": DEMO_PASSWORD},
        headers={"origin": ORIGIN},
    )
    device = device_of(signed_in)
    http.cookies.clear()
    for number in range(LIMIT + 1):
        base = first if number % 2 else second
        response = await http.post(
            f"{base}/auth/password",
            json={"email": CUSTOMER, "password": WRONG},
            headers={"origin": ORIGIN},
        )
        assert response.status_code == (401 if number < LIMIT - 1 else 429), number
    for base in (first, second):
        untrusted = await http.post(
            f"{base}/auth/password",
            json={"email": CUSTOMER, "password": DEMO_PASSWORD},
            headers={"origin": ORIGIN},
        )
        assert untrusted.status_code == 429
        owner = await http.post(
            f"{base}/auth/password",
            json={"email": CUSTOMER, "password": DEMO_PASSWORD},
            headers={"origin": ORIGIN, "cookie": f"ocis_device={device}"},
        )
        assert owner.status_code == 200, owner.text
        http.cookies.clear()
