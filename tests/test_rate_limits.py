"""Rate limits per IP and per account in the shared store, and the client IP behind a trusted
proxy (SECURITY 16, 23)."""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from argon2.exceptions import VerifyMismatchError
from redis.asyncio import Redis
from starlette.applications import Starlette

import auth.passwords
import settings as config
from auth import rate_limit, tokens
from auth.client_ip import client_ip
from models import AuditEvent, PrivacyRequest, SignInSession, User, crypto
from tests.helpers import (
    DEMO_PASSWORD,
    ORIGIN,
    Api,
    another_instance,
    app_code_exchange,
    sign_in,
)

CUSTOMER = "customer@example.com"
PROXIES = (ip_network("10.0.0.0/8"), ip_network("2001:db8:ffff::/48"))
TOO_MANY = "Too many attempts. Try again later."
WRONG_PASSWORD = "not-the-password"
REGISTER = """
mutation Register($input: RegisterInput!) {
  register(input: $input) {
    __typename
    ... on UserError { message code }
    ... on RateLimitedError { retryAfterSeconds }
  }
}
"""
SUBMIT = """
mutation Submit($input: SubmitPrivacyRequestInput!) {
  submitPrivacyRequest(input: $input) {
    __typename
    ... on UserError { message code }
    ... on RateLimitedError { retryAfterSeconds }
  }
}
"""


class _CountingHasher:
    """Counts argon2 verifications; with `check=False` every password is wrong, at no cost."""

    def __init__(self, real: PasswordHasher, *, check: bool = True) -> None:
        self.real = real
        self.check = check
        self.calls = 0

    def verify(self, hash: str, password: str) -> bool:
        self.calls += 1
        if not self.check:
            raise VerifyMismatchError
        return self.real.verify(hash, password)


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch) -> _CountingHasher:
    counting = _CountingHasher(auth.passwords._hasher)
    monkeypatch.setattr(auth.passwords, "_hasher", counting)
    return counting


@pytest.fixture
def cheap_hasher(monkeypatch: pytest.MonkeyPatch) -> _CountingHasher:
    counting = _CountingHasher(auth.passwords._hasher, check=False)
    monkeypatch.setattr(auth.passwords, "_hasher", counting)
    return counting


@pytest.fixture
async def second_app(app: Starlette, app_settings: config.Settings) -> AsyncIterator[Starlette]:
    async with another_instance(app, app_settings) as other:
        yield other


@pytest.fixture
async def proxied_app(app: Starlette, app_settings: config.Settings) -> AsyncIterator[Starlette]:
    async with another_instance(app, replace(app_settings, trusted_proxies=PROXIES)) as other:
        yield other


@asynccontextmanager
async def peer(app: Starlette, ip: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    async with httpx.AsyncClient(
        transport=transport, base_url=ORIGIN, headers={"origin": ORIGIN}
    ) as http:
        yield http


async def password(
    app: Starlette,
    ip: str,
    login: str,
    secret: str = WRONG_PASSWORD,
    forwarded_for: str | None = None,
) -> httpx.Response:
    headers = {"x-forwarded-for": forwarded_for} if forwarded_for is not None else {}
    async with peer(app, ip) as http:
        return await http.post(
            "/auth/password", json={"email": login, "password": secret}, headers=headers
        )


async def gql(
    app: Starlette, ip: str, query: str, variables: dict[str, Any], cookie: str | None = None
) -> httpx.Response:
    async with peer(app, ip) as http:
        return await Api(http, cookie).post(query, variables)


def registration(email: str, date_of_birth: str = "1990-05-17") -> dict[str, Any]:
    return {
        "input": {
            "name": "Rosa Registrant",
            "email": email,
            "password": "a long enough password",
            "dateOfBirth": date_of_birth,
        }
    }


class _TestClock:
    """When the running test began: every window it fills began after that."""

    began = 0.0


@pytest.fixture(autouse=True)
def _test_clock() -> None:
    _TestClock.began = time.monotonic()


def assert_refused(response: httpx.Response, window_seconds: int) -> int:
    """A 429 whose Retry-After is the rest of a window that began during this test."""
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["retry-after"])
    # The test's own run time, not a fixed allowance: on a loaded machine (parallel workers)
    # ten argon2 sign-ins alone can take longer than ten seconds.
    elapsed = math.ceil(time.monotonic() - _TestClock.began)
    assert window_seconds - elapsed - 1 <= retry_after <= window_seconds
    return retry_after


def assert_password_refused(response: httpx.Response, window_seconds: int) -> None:
    retry_after = assert_refused(response, window_seconds)
    assert response.json() == {"error": TOO_MANY, "retryAfterSeconds": retry_after}
    assert "set-cookie" not in response.headers


def assert_mutation_refused(response: httpx.Response, field: str, window_seconds: int) -> None:
    retry_after = assert_refused(response, window_seconds)
    assert response.json() == {
        "data": {
            field: {
                "__typename": "RateLimitedError",
                "message": TOO_MANY,
                "code": "RATE_LIMITED",
                "retryAfterSeconds": retry_after,
            }
        }
    }


async def counter_keys(store: Redis) -> list[str]:
    return sorted([key async for key in store.scan_iter(match=f"{rate_limit.KEY_PREFIX}*")])


# --- the client IP -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer_ip", "forwarded_for", "trusted", "expected"),
    [
        pytest.param("203.0.113.9", None, (), "203.0.113.9", id="plain-peer"),
        pytest.param("203.0.113.9", "198.51.100.1", (), "203.0.113.9", id="forged-no-proxies"),
        pytest.param(
            "203.0.113.9", "198.51.100.1", PROXIES, "203.0.113.9", id="forged-untrusted-peer"
        ),
        pytest.param("10.0.0.1", "198.51.100.1", PROXIES, "198.51.100.1", id="one-proxy"),
        pytest.param("10.0.0.1", None, PROXIES, "10.0.0.1", id="proxy-without-header"),
        pytest.param(
            "10.0.0.1", "6.6.6.6, 198.51.100.1", PROXIES, "198.51.100.1", id="forged-left-part"
        ),
        pytest.param(
            "10.0.0.1",
            "6.6.6.6, 198.51.100.1, 10.9.9.9",
            PROXIES,
            "198.51.100.1",
            id="two-proxies",
        ),
        pytest.param("10.0.0.1", "10.0.0.3, 10.0.0.2", PROXIES, "10.0.0.3", id="all-internal"),
        pytest.param("10.0.0.1", "6.6.6.6, garbage", PROXIES, "10.0.0.1", id="unreadable"),
        pytest.param("10.0.0.1", "198.51.100.1:5123", PROXIES, "198.51.100.1", id="v4-port"),
        pytest.param(
            "10.0.0.1", "[2001:DB8::7]:443", PROXIES, "2001:db8::7", id="v6-port-normalised"
        ),
        pytest.param("::ffff:10.0.0.1", "198.51.100.1", PROXIES, "198.51.100.1", id="v4-mapped"),
        pytest.param("2001:db8:ffff::1", "198.51.100.1, ", PROXIES, "198.51.100.1", id="v6-proxy"),
        pytest.param("10.0.0.1", " , ", PROXIES, "10.0.0.1", id="empty-entries"),
        pytest.param(None, "198.51.100.1", PROXIES, None, id="no-peer"),
    ],
)
def test_client_ip(
    peer_ip: str | None,
    forwarded_for: str | None,
    trusted: tuple[IPv4Network | IPv6Network, ...],
    expected: str | None,
) -> None:
    assert client_ip(peer_ip, forwarded_for, trusted) == expected


def test_trusted_proxies_come_from_the_environment() -> None:
    assert config.from_environ({}).trusted_proxies == ()
    assert config.from_environ(
        {"OCIS_TRUSTED_PROXIES": " 10.0.0.0/8, 192.0.2.7 ,2001:db8::/32,"}
    ).trusted_proxies == (
        ip_network("10.0.0.0/8"),
        ip_network("192.0.2.7/32"),
        ip_network("2001:db8::/32"),
    )
    with pytest.raises(config.ConfigurationError, match="'proxy.internal'"):
        config.from_environ({"OCIS_TRUSTED_PROXIES": "10.0.0.1, proxy.internal"})


def test_ipv6_clients_count_per_64() -> None:
    assert rate_limit.ip_key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert rate_limit.ip_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert rate_limit.ip_key("2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert rate_limit.ip_key("::ffff:198.51.100.4") == "198.51.100.4"
    assert rate_limit.ip_key(None) == "unknown"


@pytest.mark.promise("P04")
async def test_a_forged_x_forwarded_for_does_not_change_the_sign_in_ip(
    app: Starlette, demo: None
) -> None:
    response = await password(
        app, "203.0.113.60", CUSTOMER, DEMO_PASSWORD, forwarded_for="198.51.100.1"
    )
    assert response.status_code == 200
    assert [row.ip_address for row in await SignInSession.all()] == ["203.0.113.60"]


@pytest.mark.promise("P04")
async def test_behind_a_trusted_proxy_the_sign_in_ip_is_the_forwarded_client(
    proxied_app: Starlette, demo: None
) -> None:
    response = await password(
        proxied_app, "10.0.0.1", CUSTOMER, DEMO_PASSWORD, forwarded_for="6.6.6.6, 198.51.100.20"
    )
    assert response.status_code == 200
    untrusted = await password(
        proxied_app, "203.0.113.61", CUSTOMER, DEMO_PASSWORD, forwarded_for="198.51.100.21"
    )
    assert untrusted.status_code == 200
    rows = await SignInSession.all().order_by("created_at")
    assert [row.ip_address for row in rows] == ["198.51.100.20", "203.0.113.61"]


# --- the limiter -------------------------------------------------------------------------------


async def test_hit_allows_exactly_the_limit_then_says_when_to_retry(app: Starlette) -> None:
    store: Redis = app.state.store
    decisions = [
        await rate_limit.hit(store, "test", "someone@example.com", limit=3, window_seconds=60)
        for _ in range(5)
    ]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert [d.retry_after for d in decisions[:3]] == [0, 0, 0]
    assert 55 <= decisions[3].retry_after <= 60
    other = await rate_limit.hit(store, "test", "other@example.com", limit=3, window_seconds=60)
    assert other.allowed
    assert await rate_limit.hit(
        store, "other-bucket", "someone@example.com", limit=3, window_seconds=60
    ) == rate_limit.Decision(allowed=True, retry_after=0)


async def test_concurrent_hits_never_pass_more_than_the_limit(app: Starlette) -> None:
    store: Redis = app.state.store
    decisions = await asyncio.gather(
        *(
            rate_limit.hit(store, "race", "203.0.113.1", limit=10, window_seconds=60)
            for _ in range(30)
        )
    )
    assert sum(d.allowed for d in decisions) == 10
    keys = await counter_keys(store)
    assert len(keys) == 1
    assert await store.get(keys[0]) == "30"


async def test_counter_keys_hold_no_email_ip_or_blind_index(
    app: Starlette, cheap_hasher: _CountingHasher
) -> None:
    login = "Secret.Person@Example.com"
    assert (await password(app, "198.51.100.77", login)).status_code == 401
    keys = await counter_keys(app.state.store)
    assert len(keys) == 2
    assert all(re.fullmatch(r"ocis:rl:password:(account|ip):[0-9a-f]{64}", key) for key in keys), (
        keys
    )
    joined = " ".join(keys).lower()
    for secret in ("secret", "person", "example", "198.51.100.77", crypto.blind_index(login)):
        assert secret not in joined


# --- POST /auth/password -----------------------------------------------------------------------


@pytest.mark.parametrize("login", [CUSTOMER, "nobody@example.com"], ids=["known", "unknown"])
async def test_password_limit_per_account_holds_across_ips_and_costs_no_hash(
    app: Starlette, demo: None, hasher: _CountingHasher, login: str
) -> None:
    limit = rate_limit.PASSWORD_PER_ACCOUNT
    assert (limit.limit, limit.window_seconds) == (10, 900)
    variants = [login, login.upper(), f"  {login}  ", login.title()]
    for attempt in range(limit.limit):
        response = await password(app, f"198.51.100.{attempt + 1}", variants[attempt % 4])
        assert response.status_code == 401, attempt
    assert hasher.calls == limit.limit

    # Over the limit: refused before any password hashing, even with the right password.
    refused = await password(app, "198.51.100.200", login, DEMO_PASSWORD)
    assert_password_refused(refused, 900)
    assert hasher.calls == limit.limit
    assert await SignInSession.all().count() == 0

    # Another account from the same addresses is unaffected.
    assert (
        await password(app, "198.51.100.1", "agent@example.com", DEMO_PASSWORD)
    ).status_code == 200


async def test_the_account_limit_counts_the_account_however_its_login_is_typed(
    app: Starlette, demo: None, cheap_hasher: _CountingHasher
) -> None:
    user = await User.get(email_index=crypto.blind_index(CUSTOMER))
    user.set_username("casey")
    await user.save()
    limit = rate_limit.PASSWORD_PER_ACCOUNT
    for attempt in range(limit.limit):
        login = CUSTOMER if attempt % 2 else " Casey "
        assert (await password(app, f"198.51.100.{attempt + 1}", login)).status_code == 401
    # Email and username name one account, so they share one counter.
    assert_password_refused(await password(app, "198.51.100.90", "casey", DEMO_PASSWORD), 900)
    assert_password_refused(await password(app, "198.51.100.91", CUSTOMER, DEMO_PASSWORD), 900)
    assert cheap_hasher.calls == limit.limit


async def test_the_refusal_is_the_same_for_known_and_unknown_accounts(
    app: Starlette, demo: None, cheap_hasher: _CountingHasher
) -> None:
    answers = []
    for login in (CUSTOMER, "nobody@example.com"):
        for attempt in range(rate_limit.PASSWORD_PER_ACCOUNT.limit):
            await password(app, f"198.51.100.{attempt + 1}", login)
        answers.append(await password(app, "198.51.100.99", login))
    known, unknown = answers
    assert known.status_code == unknown.status_code == 429
    assert known.json()["error"] == unknown.json()["error"] == TOO_MANY
    assert set(known.headers) == set(unknown.headers)


async def test_password_limit_per_ip_holds_across_accounts(
    app: Starlette, cheap_hasher: _CountingHasher
) -> None:
    limit = rate_limit.PASSWORD_PER_IP
    assert (limit.limit, limit.window_seconds) == (50, 900)
    for attempt in range(limit.limit):
        response = await password(app, "203.0.113.50", f"spray-{attempt}@example.com")
        assert response.status_code == 401, attempt
    assert_password_refused(await password(app, "203.0.113.50", "fresh@example.com"), 900)
    assert cheap_hasher.calls == limit.limit
    # Another address still gets an answer.
    assert (await password(app, "203.0.113.51", "fresh@example.com")).status_code == 401


async def test_a_forged_x_forwarded_for_does_not_escape_the_ip_limit(
    app: Starlette, cheap_hasher: _CountingHasher
) -> None:
    for attempt in range(rate_limit.PASSWORD_PER_IP.limit):
        response = await password(
            app, "203.0.113.52", f"spray-{attempt}@example.com", forwarded_for=f"192.0.2.{attempt}"
        )
        assert response.status_code == 401, attempt
    refused = await password(app, "203.0.113.52", "fresh@example.com", forwarded_for="192.0.2.250")
    assert_password_refused(refused, 900)


async def test_behind_a_trusted_proxy_the_ip_limit_is_per_forwarded_client(
    proxied_app: Starlette, cheap_hasher: _CountingHasher
) -> None:
    for attempt in range(rate_limit.PASSWORD_PER_IP.limit):
        response = await password(
            proxied_app,
            "10.0.0.1",
            f"spray-{attempt}@example.com",
            forwarded_for=f"192.0.2.{attempt}, 198.51.100.30",
        )
        assert response.status_code == 401, attempt
    # The same client through another trusted hop, with a new forged left part: still refused.
    refused = await password(
        proxied_app, "10.0.0.2", "fresh@example.com", forwarded_for="192.0.2.251, 198.51.100.30"
    )
    assert_password_refused(refused, 900)
    # A different client behind the same proxy is counted on its own.
    other = await password(
        proxied_app, "10.0.0.1", "fresh@example.com", forwarded_for="198.51.100.31"
    )
    assert other.status_code == 401


async def test_two_app_instances_sharing_one_store_share_the_counters(
    app: Starlette, second_app: Starlette, app_settings: config.Settings, hasher: _CountingHasher
) -> None:
    if app_settings.redis_url:
        assert second_app.state.store is not app.state.store  # two connections, one Redis
    for attempt in range(rate_limit.PASSWORD_PER_ACCOUNT.limit):
        instance_app = app if attempt % 2 else second_app
        assert (await password(instance_app, "198.51.100.5", CUSTOMER)).status_code == 401
    assert_password_refused(await password(app, "198.51.100.6", CUSTOMER), 900)
    assert_password_refused(await password(second_app, "198.51.100.7", CUSTOMER), 900)
    assert hasher.calls == rate_limit.PASSWORD_PER_ACCOUNT.limit

    for attempt in range(rate_limit.REGISTER_PER_IP.limit):
        instance_app = app if attempt % 2 else second_app
        response = await gql(
            instance_app,
            "198.51.100.8",
            REGISTER,
            registration(f"p{attempt}@example.com", "2020-01-01"),
        )
        assert response.json()["data"]["register"]["__typename"] == "AgeRequirementError"
    refused = await gql(app, "198.51.100.8", REGISTER, registration("late@example.com"))
    assert_mutation_refused(refused, "register", 3600)


async def test_the_window_expires(app: Starlette, cheap_hasher: _CountingHasher) -> None:
    store: Redis = app.state.store
    for attempt in range(rate_limit.PASSWORD_PER_ACCOUNT.limit):
        await password(app, f"198.51.100.{attempt + 1}", "someone@example.com")
    assert_password_refused(await password(app, "198.51.100.100", "someone@example.com"), 900)
    account_keys = [key for key in await counter_keys(store) if ":password:account:" in key]
    assert len(account_keys) == 1
    (key,) = account_keys

    await store.pexpire(key, 30_000)
    refused = await password(app, "198.51.100.101", "someone@example.com")
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "30"

    await store.pexpire(key, 1)
    await asyncio.sleep(0.05)
    assert (await password(app, "198.51.100.102", "someone@example.com")).status_code == 401
    assert await store.get(key) == "1"
    assert 890_000 <= await store.pttl(key) <= 900_000


# --- GraphQL: register and submitPrivacyRequest ------------------------------------------------


async def test_register_is_limited_per_ip_and_nothing_is_written(app: Starlette) -> None:
    limit = rate_limit.REGISTER_PER_IP
    assert (limit.limit, limit.window_seconds) == (10, 3600)
    for attempt in range(limit.limit):
        # Too young: refused by the use case, nothing stored, no password hashing.
        response = await gql(
            app, "203.0.113.70", REGISTER, registration(f"kid{attempt}@example.com", "2020-01-01")
        )
        assert response.status_code == 200
        assert response.json()["data"]["register"]["__typename"] == "AgeRequirementError"

    refused = await gql(app, "203.0.113.70", REGISTER, registration("adult@example.com"))
    assert_mutation_refused(refused, "register", 3600)
    assert await User.all().count() == 0
    assert await AuditEvent.all().count() == 0
    allowed = await gql(app, "203.0.113.71", REGISTER, registration("adult@example.com"))
    assert allowed.status_code == 200
    assert "retry-after" not in allowed.headers
    assert allowed.json()["data"]["register"]["__typename"] == "CheckYourMail"


async def test_register_is_limited_per_email_across_ips(app: Starlette) -> None:
    limit = rate_limit.REGISTER_PER_ACCOUNT
    assert (limit.limit, limit.window_seconds) == (5, 3600)
    variants = ["taken@example.com", "TAKEN@example.com", " taken@example.com", "Taken@Example.com"]
    kinds = []
    for attempt in range(limit.limit):
        response = await gql(
            app, f"198.51.100.{attempt + 1}", REGISTER, registration(variants[attempt % 4])
        )
        kinds.append(response.json()["data"]["register"]["__typename"])
    # The same answer whether the address is free or taken (the first made it taken).
    assert kinds == ["CheckYourMail"] * limit.limit

    refused = await gql(app, "198.51.100.99", REGISTER, registration("taken@EXAMPLE.com"))
    assert_mutation_refused(refused, "register", 3600)
    assert await User.all().count() == 1


async def test_privacy_requests_are_limited_per_account_across_ips(
    app: Starlette, client: httpx.AsyncClient, demo: None
) -> None:
    limit = rate_limit.PRIVACY_REQUEST_PER_ACCOUNT
    assert (limit.limit, limit.window_seconds) == (10, 86_400)
    cookie = await sign_in(client, CUSTOMER)
    request = {"input": {"kind": "ACCESS"}}
    for attempt in range(limit.limit):
        response = await gql(app, f"198.51.100.{attempt + 1}", SUBMIT, request, cookie)
        assert response.status_code == 200
        assert response.json()["data"]["submitPrivacyRequest"] == {
            "__typename": "PrivacyRequestSuccess"
        }
    audited = await AuditEvent.filter(action="privacy_request.submit").count()
    assert audited == limit.limit

    refused = await gql(app, "198.51.100.99", SUBMIT, request, cookie)
    assert_mutation_refused(refused, "submitPrivacyRequest", 86_400)
    assert await PrivacyRequest.all().count() == limit.limit
    assert await AuditEvent.filter(action="privacy_request.submit").count() == audited

    other = await sign_in(client, "customer2@example.com")
    response = await gql(app, "198.51.100.99", SUBMIT, request, other)
    assert response.json()["data"]["submitPrivacyRequest"]["__typename"] == "PrivacyRequestSuccess"


async def test_privacy_requests_are_limited_per_ip_across_accounts(
    app: Starlette, client: httpx.AsyncClient, demo: None
) -> None:
    limit = rate_limit.PRIVACY_REQUEST_PER_IP
    assert (limit.limit, limit.window_seconds) == (30, 3600)
    people = ["customer@example.com", "customer2@example.com", "agent@example.com"]
    cookies = [await sign_in(client, email) for email in people]
    request = {"input": {"kind": "PORTABILITY"}}
    for attempt in range(limit.limit):
        response = await gql(app, "203.0.113.80", SUBMIT, request, cookies[attempt % 3])
        assert response.json()["data"]["submitPrivacyRequest"] == {
            "__typename": "PrivacyRequestSuccess"
        }
    lead = await sign_in(client, "lead@example.com")
    refused = await gql(app, "203.0.113.80", SUBMIT, request, lead)
    assert_mutation_refused(refused, "submitPrivacyRequest", 3600)
    assert await PrivacyRequest.all().count() == limit.limit


async def test_the_token_endpoint_is_limited_per_ip(client: httpx.AsyncClient) -> None:
    for _ in range(rate_limit.TOKEN_PER_IP.limit):
        response = await client.post("/auth/token", data={"grant_type": "refresh_token"})
        assert response.status_code == 400
    over = await client.post("/auth/token", data={"grant_type": "refresh_token"})
    assert over.status_code == 429
    assert 0 < int(over.headers["retry-after"]) <= rate_limit.TOKEN_PER_IP.window_seconds


async def test_the_token_endpoint_is_limited_per_account_across_addresses(
    app: Starlette, demo: None
) -> None:
    user = await User.get(email_index=crypto.blind_index(CUSTOMER))
    limit = rate_limit.TOKEN_PER_ACCOUNT
    assert (limit.limit, limit.window_seconds) == (60, 900)
    async with peer(app, "198.51.100.1") as http:
        first = await http.post(
            "/auth/token", data=await app_code_exchange(app.state.store, user.id)
        )
    refresh_token = first.json()["refresh_token"]
    for attempt in range(1, limit.limit):
        async with peer(app, f"198.51.100.{attempt % 200 + 2}") as http:
            answer = await http.post(
                "/auth/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token}
            )
        assert answer.status_code == 200, attempt
        refresh_token = answer.json()["refresh_token"]
    async with peer(app, "203.0.113.99") as http:
        over = await http.post(
            "/auth/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token}
        )
        assert over.status_code == 429
        # Another person's tokens from the same address still work.
        other = await http.post("/auth/token", data={"grant_type": "refresh_token"})
        assert other.status_code == 400


async def test_starting_sign_ins_is_limited_per_ip(app: Starlette, demo: None) -> None:
    limit = rate_limit.LOGIN_START_PER_IP
    assert (limit.limit, limit.window_seconds) == (60, 900)
    async with peer(app, "198.51.100.77") as http:
        # No provider is configured here: each start still counts, before anything else.
        for _ in range(limit.limit):
            assert (await http.get("/auth/login/nowhere")).status_code == 404
        over = await http.get("/auth/login/nowhere")
        assert over.status_code == 429
        assert 0 < int(over.headers["retry-after"]) <= limit.window_seconds
    async with peer(app, "198.51.100.78") as http:
        assert (await http.get("/auth/login/nowhere")).status_code == 404


async def test_a_used_refresh_token_cannot_spend_its_owners_token_limit(
    app: Starlette, demo: None
) -> None:
    user = await User.get(email_index=crypto.blind_index(CUSTOMER))
    async with peer(app, "198.51.100.1") as http:
        first = await http.post(
            "/auth/token", data=await app_code_exchange(app.state.store, user.id)
        )
        old = first.json()["refresh_token"]
        rotated = await http.post(
            "/auth/token", data={"grant_type": "refresh_token", "refresh_token": old}
        )
        current = rotated.json()["refresh_token"]
    assert (
        await tokens.account_of(
            app.state.store, {"grant_type": "refresh_token", "refresh_token": old}
        )
        is None
    )
    assert await tokens.account_of(
        app.state.store, {"grant_type": "refresh_token", "refresh_token": current}
    ) == str(user.id)
