"""Federated sign-in end to end, against real `oidc-provider` processes on 127.0.0.1 (P06)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

import settings as config
from auth import rate_limit
from auth.oidc import Gateway
from models import (
    AuditEvent,
    ConsentEntry,
    ConsentPurpose,
    ExternalIdentity,
    MailStatus,
    Notice,
    SignInSession,
    User,
    UserStatus,
    crypto,
)
from tests.helpers import ORIGIN, Api, another_instance, sign_in
from tests.oidc_harness import (
    CONSUMERS_TENANT,
    OidcClient,
    OidcProvider,
    ProviderConfig,
    SabotageMode,
    authorize,
    check_installed,
)
from tests.smtp_server import Mailbox

TENANT_A = "11111111-1111-4111-8111-111111111111"
TENANT_B = "22222222-2222-4222-8222-222222222222"
SECRET = "test-client-secret-not-for-production"


def _client(name: str) -> OidcClient:
    return OidcClient("ocis-" + name, SECRET, (f"{ORIGIN}/auth/callback/{name}",))


ACCOUNTS: dict[str, dict[str, Any]] = {
    "alice": {"email": "alice@example.com", "name": "Alice Federated", "birthdate": "1990-04-01"},
    "young": {"email": "young@example.com", "name": "Young One", "birthdate": "2015-01-01"},
    "nobirth": {"email": "nobirth@example.com", "name": "No Birthdate"},
    # Claims a demo customer's email: the provider vouches for it.
    "carla": {
        "email": "customer@example.com",
        "name": "Carla Elsewhere",
        "birthdate": "1991-01-01",
    },
}

FLAVOURS = {
    "google": ProviderConfig(flavour="google", clients=[_client("google")], accounts=ACCOUNTS),
    # LinkedIn registers web apps for client_secret_post only.
    "linkedin": ProviderConfig(
        flavour="linkedin",
        clients=[
            OidcClient(
                "ocis-linkedin",
                SECRET,
                (f"{ORIGIN}/auth/callback/linkedin",),
                token_endpoint_auth_method="client_secret_post",
            )
        ],
        accounts=ACCOUNTS,
    ),
    "acme": ProviderConfig(flavour="generic", clients=[_client("acme")], accounts=ACCOUNTS),
    "microsoft": ProviderConfig(
        flavour="microsoft",
        clients=[_client("microsoft")],
        tenants=[TENANT_A, TENANT_B],
        accounts={
            **ACCOUNTS,
            # Tenant B's admin can put any email on a user, without xms_edov.
            "mallory": {
                "email": "customer@example.com",
                "name": "Mallory",
                "tid": TENANT_B,
                "xms_edov": None,
                "birthdate": "1985-05-05",
            },
            "olga": {
                "email": "olga@example.com",
                "name": "Olga Otherco",
                "tid": TENANT_B,
                "birthdate": "1980-02-02",
            },
            "connie": {
                "email": "connie@example.com",
                "name": "Connie Consumer",
                "tid": CONSUMERS_TENANT,
                "birthdate": "1979-03-03",
            },
        },
    ),
}


@pytest.fixture(scope="module")
def providers() -> Iterator[dict[str, OidcProvider]]:
    check_installed()
    started: dict[str, OidcProvider] = {}
    try:
        for name, flavour in FLAVOURS.items():
            provider = OidcProvider(flavour)
            provider.start_sync()
            started[name] = provider
        yield started
    finally:
        for provider in started.values():
            provider.stop_sync()


@pytest.fixture
def microsoft_endpoint(request: pytest.FixtureRequest) -> tuple[str, str]:
    """Which Microsoft endpoint OCIS is configured with, and its tenant allow-list."""
    chosen: tuple[str, str] = getattr(request, "param", ("common", ""))
    return chosen


@pytest.fixture
def app_settings(
    app_settings: config.Settings,
    providers: dict[str, OidcProvider],
    smtp: Mailbox,
    microsoft_endpoint: tuple[str, str],
) -> Any:
    oidc: dict[str, dict[str, str]] = {}
    for name, provider in providers.items():
        issuer = provider.info.issuer
        tenants = ""
        if name == "microsoft":
            # By default the multi-tenant endpoint: its discovery names the {tenantid} template.
            endpoint, tenants = microsoft_endpoint
            issuer = f"{provider.info.origin}/{endpoint}/v2.0"
        oidc[name] = {
            "issuer": issuer,
            "client_id": provider.info.client_id,
            "client_secret": provider.info.client_secret,
            "tenants": tenants,
        }
    # A real mail server too: the app's own delivery loop tells owners of sign-in changes.
    return replace(app_settings, oidc=oidc, smtp_url=smtp.url, mail_poll_seconds=0.05)


@pytest.fixture
async def browser(providers: dict[str, OidcProvider]) -> AsyncIterator[httpx.AsyncClient]:
    """The browser's side of the provider (a real HTTP client on loopback)."""
    for provider in providers.values():
        await provider.clear_sabotage()
    async with httpx.AsyncClient(timeout=20) as http:
        yield http


async def start(client: httpx.AsyncClient, provider: str, query: str = "") -> str:
    response = await client.get(f"/auth/login/{provider}{query}")
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    params = parse_qs(urlsplit(location).query)
    assert params["redirect_uri"] == [f"{ORIGIN}/auth/callback/{provider}"]
    assert params["state"]
    assert params["nonce"]
    if provider != "linkedin":
        assert params["code_challenge_method"] == ["S256"]
        assert len(params["code_challenge"][0]) >= 43
    assert "ocis_oidc" in response.cookies
    return location


async def callback(client: httpx.AsyncClient, redirect: str) -> httpx.Response:
    parts = urlsplit(redirect)
    return await client.get(f"{parts.path}?{parts.query}")


async def sign_in_with(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, provider: str, account: str
) -> httpx.Response:
    redirect = await authorize(browser, await start(client, provider, "?next=/tickets"), account)
    return await callback(client, redirect)


def session_of(response: httpx.Response) -> str | None:
    return response.cookies.get("ocis_session")


async def me(client: httpx.AsyncClient, token: str) -> dict[str, Any] | None:
    body = await Api(client, token).gql("{ me { id name email source } }")
    result: dict[str, Any] | None = body["data"]["me"]
    return result


@pytest.mark.promise("P06")
@pytest.mark.parametrize("provider", ["google", "microsoft", "linkedin", "acme"])
async def test_a_first_sign_in_creates_the_account_and_the_second_reaches_it(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, demo: None, provider: str
) -> None:
    first = await sign_in_with(client, browser, provider, "alice")
    assert first.status_code == 302, first.text
    assert first.headers["location"] == "/tickets"
    token = session_of(first)
    assert token
    account = await me(client, token)
    assert account is not None
    assert account["name"] == "Alice Federated"
    assert account["email"] == "alice@example.com"
    assert account["source"] == f"provider:{provider}"
    client.cookies.clear()
    second = await sign_in_with(client, browser, provider, "alice")
    again = await me(client, session_of(second) or "")
    assert again is not None
    assert again["id"] == account["id"]
    assert session_of(second) != token
    identity = await ExternalIdentity.get(provider=provider)
    user = await User.get(id=identity.user_id)
    assert user.name == "Alice Federated"
    # Only a provider that vouches for the email makes it a way to find the account.
    indexed = await User.filter(email_index=crypto.blind_index("alice@example.com")).exists()
    assert indexed is (provider != "acme")
    sessions = await SignInSession.filter(user_id=user.id).order_by("created_at")
    assert [session.method for session in sessions] == [f"oidc:{provider}"] * 2
    # The first way in of a new account is not news to tell its owner about.
    assert not await Notice.all().exists()


@pytest.mark.promise("P05")
async def test_a_visitors_consent_joins_the_account_at_a_provider_sign_in(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, demo: None
) -> None:
    client.cookies.clear()
    granted = await client.post(
        "/graphql",
        json={
            "query": "mutation { setConsent(input: {purpose: STATISTICS, granted: true})"
            " { ... on ConsentSuccess { visitorId } } }"
        },
    )
    visitor_id = granted.json()["data"]["setConsent"]["visitorId"]
    assert client.cookies.get("ocis_consent") == visitor_id

    response = await sign_in_with(client, browser, "google", "alice")

    assert response.status_code == 302, response.text
    identity = await ExternalIdentity.get(provider="google")
    entries = await ConsentEntry.filter(user_id=identity.user_id)
    assert [(entry.purpose, entry.granted) for entry in entries] == [
        (ConsentPurpose.STATISTICS, True)
    ]
    assert client.cookies.get("ocis_consent") is None


@pytest.mark.promise("P29")
async def test_a_provider_without_a_birthdate_asks_for_one_and_refuses_under_16(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, demo: None
) -> None:
    response = await sign_in_with(client, browser, "acme", "nobirth")
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert location.path == "/signup/complete"
    pending = location.fragment.removeprefix("signup=")
    assert session_of(response) is None
    before = await User.all().count()
    young = await client.post(
        "/auth/complete-signup", json={"pending": pending, "dateOfBirth": "2015-06-01"}
    )
    assert young.status_code == 403
    assert await User.all().count() == before
    assert not await ExternalIdentity.filter(provider="acme").exists()
    reused = await client.post(
        "/auth/complete-signup", json={"pending": pending, "dateOfBirth": "1990-01-01"}
    )
    assert reused.status_code == 400
    again = await sign_in_with(client, browser, "acme", "nobirth")
    pending = urlsplit(again.headers["location"]).fragment.removeprefix("signup=")
    done = await client.post(
        "/auth/complete-signup", json={"pending": pending, "dateOfBirth": "1990-01-01"}
    )
    assert done.status_code == 302
    account = await me(client, session_of(done) or "")
    assert account is not None
    assert account["email"] == "nobirth@example.com"


async def _pending_values(app: Any) -> AsyncIterator[str]:
    async for key in app.state.store.scan_iter(match="ocis:oidc:pending:*"):
        yield await app.state.store.get(key)


@asynccontextmanager
async def another_browser(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A second browser on our site: its own cookies, none of the first one's."""
    transport = httpx.ASGITransport(app=app, client=("198.51.100.66", 50100))
    async with httpx.AsyncClient(
        transport=transport, base_url=ORIGIN, headers={"origin": ORIGIN}
    ) as http:
        yield http


async def test_a_sign_up_step_works_only_in_the_browser_that_finished_the_flow(
    app: Any, client: httpx.AsyncClient, browser: httpx.AsyncClient, demo: None
) -> None:
    response = await sign_in_with(client, browser, "acme", "nobirth")
    pending = urlsplit(response.headers["location"]).fragment.removeprefix("signup=")
    binder = response.cookies.get("ocis_pending")
    assert binder
    assert "httponly" in response.headers["set-cookie"].lower()
    # The store's copy of the step is sealed under the token and the binder it never holds.
    stored = [value async for value in _pending_values(app)]
    assert len(stored) == 1
    for secret in ("nobirth@example.com", "No Birthdate", "nobirth", pending, binder):
        assert secret not in stored[0]
    before = await User.all().count()
    # A victim lured into finishing the attacker's sign-up is not signed in to it (login CSRF).
    async with another_browser(app) as victim:
        lured = await victim.post(
            "/auth/complete-signup", json={"pending": pending, "dateOfBirth": "1990-01-01"}
        )
        assert lured.status_code == 400
        assert session_of(lured) is None
    assert await User.all().count() == before
    # A cross-site form post is refused before anything is read.
    again = await sign_in_with(client, browser, "acme", "nobirth")
    pending = urlsplit(again.headers["location"]).fragment.removeprefix("signup=")
    body = json.dumps({"pending": pending, "dateOfBirth": "1990-01-01"})
    for headers in (
        {"content-type": "text/plain", "origin": ORIGIN},
        {"content-type": "application/json", "origin": "https://evil.example"},
    ):
        forged = await client.post("/auth/complete-signup", content=body, headers=headers)
        assert forged.status_code == 403
    for bad in ("0001-01-01", "19900101", "2999-01-01"):
        refused = await client.post(
            "/auth/complete-signup", json={"pending": pending, "dateOfBirth": bad}
        )
        assert refused.status_code == 400, bad
        assert "expired" not in refused.json()["error"], "a typo must not use up the step"
    assert await User.all().count() == before
    # The step is still there for the corrected date.
    done = await client.post(
        "/auth/complete-signup", json={"pending": pending, "dateOfBirth": "1990-01-01"}
    )
    assert done.status_code == 302
    assert await User.all().count() == before + 1


async def test_a_link_token_works_only_in_the_browser_that_finished_the_flow(
    app: Any, client: httpx.AsyncClient, browser: httpx.AsyncClient, demo: None
) -> None:
    # The attacker's provider identity claims the victim's (verified) email.
    response = await sign_in_with(client, browser, "google", "carla")
    link_token = urlsplit(response.headers["location"]).fragment.removeprefix("link=")
    victim_account = await User.get(email_index=crypto.blind_index("customer@example.com"))
    async with another_browser(app) as victim:
        answer = await victim.post(
            "/auth/password",
            json={
                "email": "customer@example.com",
                "password": "ocis-demo",
                "linkToken": link_token,
            },
        )
        assert answer.status_code == 200
        assert answer.json() == {"ok": True, "linked": False}
    assert not await ExternalIdentity.filter(user_id=victim_account.id).exists()
    assert not await Notice.filter(user_id=victim_account.id).exists()


@pytest.mark.promise("P29")
async def test_a_provider_birthdate_under_16_is_refused_and_nothing_kept(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, demo: None
) -> None:
    before = await User.all().count()
    response = await sign_in_with(client, browser, "google", "young")
    assert response.status_code == 401
    assert session_of(response) is None
    assert await User.all().count() == before
    assert not await ExternalIdentity.all().exists()


async def refused(response: httpx.Response, sessions_before: int = 0) -> None:
    """Refused: the same answer, no session cookie, no new session row, and audited."""
    assert response.status_code == 401, response.text
    assert response.json() == {"error": "Sign-in failed."}
    assert session_of(response) is None
    assert await SignInSession.filter(method__startswith="oidc:").count() == sessions_before
    assert await AuditEvent.filter(action="sign_in.refused").exists()


async def test_a_callback_without_state_or_with_another_state_is_refused(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, demo: None
) -> None:
    redirect = await authorize(browser, await start(client, "google"), "alice")
    parts = urlsplit(redirect)
    params = parse_qs(parts.query)
    await refused(await client.get(f"{parts.path}?code={params['code'][0]}"))
    await refused(await client.get(f"{parts.path}?code={params['code'][0]}&state=not-the-state"))


async def test_a_replayed_callback_is_refused(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, demo: None
) -> None:
    redirect = await authorize(browser, await start(client, "google"), "alice")
    first = await callback(client, redirect)
    assert first.status_code == 302
    await client.get("/auth/login/google")  # a fresh binding cookie, as a browser would hold
    await refused(await callback(client, redirect), sessions_before=1)


async def test_a_replayed_code_with_a_fresh_state_is_refused(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, demo: None
) -> None:
    old = await authorize(browser, await start(client, "google"), "alice")
    assert (await callback(client, old)).status_code == 302
    client.cookies.clear()
    fresh = await start(client, "google")
    state = parse_qs(urlsplit(fresh).query)["state"][0]
    code = parse_qs(urlsplit(old).query)["code"][0]
    await refused(await client.get(f"/auth/callback/google?code={code}&state={state}"), 1)


async def test_a_callback_from_another_browser_is_refused(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, demo: None
) -> None:
    redirect = await authorize(browser, await start(client, "google"), "alice")
    client.cookies.clear()  # the victim's browser never started this flow
    await refused(await callback(client, redirect))


@pytest.mark.parametrize(
    ("provider", "mode"),
    [
        ("google", "wrong_nonce"),
        ("google", "missing_nonce"),
        ("google", "aud_other"),
        ("google", "aud_list_without_us"),
        ("google", "azp_other"),
        ("google", "wrong_iss"),
        ("microsoft", "ms_iss_tid_mismatch"),
        ("microsoft", "ms_tenantid_literal"),
        ("microsoft", "ms_v1_issuer"),
        ("google", "alg_none"),
        ("google", "hs256_public_pem"),
        ("google", "hs256_public_der"),
        ("google", "forged_signature"),
        ("google", "embedded_jwk"),
        ("google", "jku_header"),
        ("google", "x5u_header"),
        ("google", "crit_unknown"),
        ("google", "expired"),
        ("google", "oversized"),
        ("acme", "unknown_kid"),
    ],
)
async def test_a_bad_id_token_is_refused_leaves_no_session_and_is_audited(
    client: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    providers: dict[str, OidcProvider],
    demo: None,
    provider: str,
    mode: SabotageMode,
) -> None:
    location = await start(client, provider)
    redirect = await authorize(browser, location, "alice")
    await providers[provider].sabotage(mode)
    await refused(await callback(client, redirect))
    assert not await User.filter(email_index=crypto.blind_index("alice@example.com")).exists()
    audit = await AuditEvent.get(action="sign_in.refused")
    assert audit.entity_id == provider
    assert "alice" not in repr(audit.__dict__)


@pytest.mark.promise("P06")
async def test_an_unverified_email_of_an_existing_account_gives_no_access_to_it(
    client: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    providers: dict[str, OidcProvider],
    demo: None,
) -> None:
    await providers["acme"].set_claims("carla", {"email_verified": False})
    response = await sign_in_with(client, browser, "acme", "carla")
    assert response.status_code == 302
    token = session_of(response)
    assert token
    account = await me(client, token)
    victim = await User.get(email_index=crypto.blind_index("customer@example.com"))
    assert account is not None
    assert account["name"] == "Carla Elsewhere"
    assert not await ExternalIdentity.filter(user_id=victim.id).exists()
    tickets = await Api(client, token).gql("{ tickets(first: 10) { edges { node { id } } } }")
    assert tickets["data"]["tickets"]["edges"] == []
    assert not await ExternalIdentity.filter(user_id=victim.id).exists()


@pytest.mark.promise("P06")
async def test_a_microsoft_token_of_another_tenant_with_a_victims_email_is_a_new_identity(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, demo: None
) -> None:
    response = await sign_in_with(client, browser, "microsoft", "mallory")
    victim = await User.get(email_index=crypto.blind_index("customer@example.com"))
    account = await me(client, session_of(response) or "")
    assert account is not None
    assert account["name"] == "Mallory"
    identity = await ExternalIdentity.get(provider="microsoft")
    assert identity.tenant_id == TENANT_B
    assert identity.user_id != victim.id


@pytest.mark.promise("P06")
async def test_a_verified_email_links_only_after_signing_in_to_that_account(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, demo: None
) -> None:
    response = await sign_in_with(client, browser, "google", "carla")
    assert response.status_code == 302
    assert session_of(response) is None
    location = urlsplit(response.headers["location"])
    assert location.path == "/signin/link"
    link_token = location.fragment.removeprefix("link=")
    victim = await User.get(email_index=crypto.blind_index("customer@example.com"))
    assert not await ExternalIdentity.filter(user_id=victim.id).exists()
    # Someone else's password does not link it.
    wrong = await client.post(
        "/auth/password",
        json={"email": "customer2@example.com", "password": "ocis-demo", "linkToken": link_token},
    )
    assert wrong.json() == {"ok": True, "linked": False}
    assert not await ExternalIdentity.filter(user_id=victim.id).exists()
    again = await sign_in_with(client, browser, "google", "carla")
    link_token = urlsplit(again.headers["location"]).fragment.removeprefix("link=")
    proved = await client.post(
        "/auth/password",
        json={"email": "customer@example.com", "password": "ocis-demo", "linkToken": link_token},
    )
    assert proved.json() == {"ok": True, "linked": True}
    assert await ExternalIdentity.filter(user_id=victim.id, provider="google").exists()
    assert await AuditEvent.filter(action="identity.link", subject_id=victim.id).exists()
    assert await Notice.filter(user_id=victim.id, kind="identity.linked").exists()
    client.cookies.clear()
    later = await sign_in_with(client, browser, "google", "carla")
    account = await me(client, session_of(later) or "")
    assert account is not None
    assert account["name"] == "Carla Customer"


async def test_googles_two_issuer_spellings_reach_the_same_account(
    client: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    providers: dict[str, OidcProvider],
    demo: None,
) -> None:
    first = await me(
        client, session_of(await sign_in_with(client, browser, "google", "alice")) or ""
    )
    await providers["google"].sabotage("iss_without_scheme")
    client.cookies.clear()
    second = await me(
        client, session_of(await sign_in_with(client, browser, "google", "alice")) or ""
    )
    assert (await providers["google"].sabotage_log())["applied"], "the spelling was not used"
    assert first is not None
    assert second is not None
    assert second["id"] == first["id"]
    identity = await ExternalIdentity.get(provider="google")
    assert identity.issuer == providers["google"].info.issuer
    assert await ExternalIdentity.all().count() == 1


async def test_an_email_claim_that_is_no_address_is_not_kept(
    client: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    providers: dict[str, OidcProvider],
    demo: None,
) -> None:
    await providers["google"].set_claims("alice", {"email": "alice@example.com, x@evil.example"})
    try:
        response = await sign_in_with(client, browser, "google", "alice")
    finally:
        await providers["google"].set_claims("alice", ACCOUNTS["alice"], replace=True)
    assert response.status_code == 302
    identity = await ExternalIdentity.get(provider="google")
    assert identity.email is None
    assert identity.email_verified is False
    user = await User.get(id=identity.user_id)
    assert user.email == ""
    assert user.email_index is None


async def test_signing_in_through_a_linked_provider_proves_the_account_for_a_pending_link(
    app: Any, client: httpx.AsyncClient, browser: httpx.AsyncClient, demo: None
) -> None:
    first = await sign_in_with(client, browser, "google", "alice")
    account = await me(client, session_of(first) or "")
    assert account is not None
    client.cookies.clear()
    # Microsoft vouches for the same address: it may only suggest a link.
    suggested = await sign_in_with(client, browser, "microsoft", "alice")
    location = urlsplit(suggested.headers["location"])
    assert location.path == "/signin/link"
    link_token = location.fragment.removeprefix("link=")
    # Another browser holding the token proves nothing, even signed in as the owner.
    async with another_browser(app) as elsewhere:
        redirect = await authorize(
            browser, await start(elsewhere, "google", f"?linkToken={link_token}"), "alice"
        )
        assert (await callback(elsewhere, redirect)).status_code == 302
    assert not await ExternalIdentity.filter(provider="microsoft").exists()
    # In the browser the link waits in, signing in through Google proves the account.
    suggested = await sign_in_with(client, browser, "microsoft", "alice")
    link_token = urlsplit(suggested.headers["location"]).fragment.removeprefix("link=")
    redirect = await authorize(
        browser, await start(client, "google", f"?linkToken={link_token}"), "alice"
    )
    proved = await callback(client, redirect)
    assert proved.status_code == 302
    linked = await ExternalIdentity.get(provider="microsoft")
    assert str(linked.user_id) == str((await ExternalIdentity.get(provider="google")).user_id)
    client.cookies.clear()
    later = await me(
        client, session_of(await sign_in_with(client, browser, "microsoft", "alice")) or ""
    )
    assert later is not None
    assert later["id"] == account["id"]


async def test_a_changed_email_with_the_same_subject_reaches_the_same_account(
    client: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    providers: dict[str, OidcProvider],
    demo: None,
) -> None:
    first = await me(client, session_of(await sign_in_with(client, browser, "acme", "alice")) or "")
    await providers["acme"].set_claims("alice", {"email": "alice.new@example.com"})
    client.cookies.clear()
    second = await me(
        client, session_of(await sign_in_with(client, browser, "acme", "alice")) or ""
    )
    assert first is not None
    assert second is not None
    assert second["id"] == first["id"]
    identity = await ExternalIdentity.get(provider="acme")
    assert identity.email == "alice.new@example.com"


async def test_linking_while_signed_in_and_unlinking_but_not_the_last_way_in(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, demo: None, smtp: Mailbox
) -> None:
    token = await sign_in(client, "customer2@example.com")
    client.cookies.set("ocis_session", token)
    # Linking starts only with a JSON POST from our origin: a cross-site page cannot start it.
    assert (await client.get("/auth/login/linkedin?link=1")).status_code == 405
    forged = await client.post(
        "/auth/login/linkedin", json={}, headers={"origin": "https://evil.example"}
    )
    assert forged.status_code == 403
    started = await client.post("/auth/login/linkedin", json={"next": "/account"})
    assert started.status_code == 200
    location = started.json()["location"]
    response = await callback(client, await authorize(browser, location, "alice"))
    assert response.status_code == 302
    api = Api(client, session_of(response) or token)
    body = await api.gql("{ me { email identities { id provider email } } }")
    identities = body["data"]["me"]["identities"]
    assert [(i["provider"], i["email"]) for i in identities] == [("linkedin", "alice@example.com")]
    # The owner is told, in-platform and by email (the server's delivery loop sends it).
    (linked,) = await smtp.wait_for(1)
    assert linked.recipients == ["customer2@example.com"]
    assert "Your LinkedIn account was linked to your OCIS account" in linked.message.get_content()
    unlink = "mutation($id: ID!) { unlinkIdentity(id: $id) { __typename } }"
    result = await api.gql(unlink, {"id": identities[0]["id"]})
    assert result["data"]["unlinkIdentity"]["__typename"] == "UnlinkIdentitySuccess"
    assert await AuditEvent.filter(action="identity.unlink").exists()
    _, unlinked = await smtp.wait_for(2)
    assert unlinked.recipients == ["customer2@example.com"]
    assert "LinkedIn account was unlinked from your OCIS account" in unlinked.message.get_content()
    # The server marks a notice sent after the mail server's answer: wait for that too.
    for _ in range(200):
        if await Notice.filter(mail_status=MailStatus.SENT).count() == 2:
            break
        await asyncio.sleep(0.05)
    told = await api.gql("{ myNotices { kind emailedAt } }")
    kinds = [(n["kind"], n["emailedAt"] is not None) for n in told["data"]["myNotices"]]
    assert kinds == [("identity.unlinked", True), ("identity.linked", True)]
    # A federated-only account cannot drop its only identity.
    client.cookies.clear()
    federated = await sign_in_with(client, browser, "acme", "alice")
    only = Api(client, session_of(federated) or "")
    mine = await only.gql("{ me { identities { id } } }")
    last = mine["data"]["me"]["identities"][0]["id"]
    refusal = await only.gql(unlink, {"id": last})
    assert refusal["data"]["unlinkIdentity"]["__typename"] == "ForbiddenError"


@pytest.mark.promise("P06")
@pytest.mark.parametrize(
    ("microsoft_endpoint", "account", "tenant"),
    [
        (("organizations", ""), "alice", TENANT_A),
        (("organizations", ""), "olga", TENANT_B),
        (("consumers", ""), "connie", CONSUMERS_TENANT),
        ((TENANT_A, ""), "alice", TENANT_A),
        (("common", TENANT_A), "alice", TENANT_A),
    ],
    ids=["organizations-a", "organizations-b", "consumers", "single-tenant", "allow-list"],
    indirect=["microsoft_endpoint"],
)
async def test_each_microsoft_endpoint_signs_in_its_tenants(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, account: str, tenant: str
) -> None:
    response = await sign_in_with(client, browser, "microsoft", account)
    assert response.status_code == 302, response.text
    assert await me(client, session_of(response) or "") is not None
    identity = await ExternalIdentity.get(provider="microsoft")
    assert identity.tenant_id == tenant
    assert identity.issuer.endswith(f"/{tenant}/v2.0")


@pytest.mark.parametrize("microsoft_endpoint", [("common", TENANT_A)], indirect=True)
async def test_a_tenant_outside_the_allow_list_is_refused(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await refused(await sign_in_with(client, browser, "microsoft", "olga"))
    event = await AuditEvent.get(action="sign_in.refused")
    assert event.purpose == "tenant outside the allow-list"
    assert not await ExternalIdentity.all().exists()


FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
OCIS_APP = "OCIS/3.1 (iPhone; iOS 17.5; Scale/3.00)"


@pytest.mark.promise("P04")
@pytest.mark.promise("P06")
async def test_a_provider_sign_in_records_its_metadata(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, demo: None
) -> None:
    client.headers["user-agent"] = FIREFOX
    response = await sign_in_with(client, browser, "microsoft", "alice")
    assert response.status_code == 302
    (record,) = await SignInSession.all()
    assert record.method == "oidc:microsoft"
    assert (record.ip_address, record.browser, record.os) == ("203.0.113.7", "Firefox", "Linux")
    body = await Api(client, session_of(response)).gql(
        "{ me { signIns { method ipAddress browser current } } }"
    )
    assert body["data"]["me"]["signIns"] == [
        {
            "method": "oidc:microsoft",
            "ipAddress": "203.0.113.7",
            "browser": "Firefox",
            "current": True,
        }
    ]


@pytest.mark.promise("P04")
@pytest.mark.promise("P06")
async def test_the_mobile_app_signs_in_through_a_provider_and_trades_its_code_for_tokens(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, demo: None
) -> None:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    app_query = (
        "?client=mobile&client_id=ocis-mobile&redirect_uri=ocis://auth/callback"
        f"&code_challenge={challenge.decode().rstrip('=')}&code_challenge_method=S256"
    )
    for bad in (
        app_query.replace("ocis://auth/callback", "https://evil.example/cb"),
        app_query.replace("S256", "plain"),
        app_query.replace("ocis-mobile", "someone-else"),
    ):
        assert (await client.get(f"/auth/login/google{bad}")).status_code == 400
    redirect = await authorize(browser, await start(client, "google", app_query), "alice")
    response = await callback(client, redirect)
    assert response.status_code == 302
    assert session_of(response) is None, "the app gets a code, not a browser session"
    location = urlsplit(response.headers["location"])
    assert (location.scheme, location.netloc, location.path) == ("ocis", "auth", "/callback")
    (code,) = parse_qs(location.query)["code"]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": "ocis://auth/callback",
        "client_id": "ocis-mobile",
    }
    wrong = await client.post("/auth/token", data={**form, "code_verifier": "x" * 43})
    assert wrong.json() == {"error": "invalid_grant"}
    # A wrong verifier burns the code: the app starts over.
    redirect = await authorize(browser, await start(client, "google", app_query), "alice")
    (code,) = parse_qs(urlsplit((await callback(client, redirect)).headers["location"]).query)[
        "code"
    ]
    tokens_answer = await client.post(
        "/auth/token",
        data={**form, "code": code, "code_verifier": verifier},
        headers={"user-agent": OCIS_APP, "origin": ""},
    )
    assert tokens_answer.status_code == 200, tokens_answer.text
    access = tokens_answer.json()["access_token"]
    me_answer = await client.post(
        "/graphql",
        json={"query": "{ me { email signIns { method ipAddress os } } }"},
        headers={"authorization": f"Bearer {access}", "origin": ""},
    )
    me_body = me_answer.json()["data"]["me"]
    assert me_body["email"] == "alice@example.com"
    assert {"method": "app:oidc:google", "ipAddress": "203.0.113.7", "os": "iOS"} in me_body[
        "signIns"
    ]


async def test_a_disabled_account_cannot_sign_in_through_its_provider(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, demo: None
) -> None:
    first = await sign_in_with(client, browser, "google", "alice")
    assert first.status_code == 302
    identity = await ExternalIdentity.get(provider="google")
    await User.filter(id=identity.user_id).update(status=UserStatus.DISABLED)
    client.cookies.clear()
    await refused(await sign_in_with(client, browser, "google", "alice"), sessions_before=1)


async def test_next_pointing_off_origin_is_ignored(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, demo: None
) -> None:
    location = await start(client, "google", "?next=https://evil.example.com/")
    response = await callback(client, await authorize(browser, location, "alice"))
    assert response.headers["location"] == "/"


async def test_a_rotated_provider_key_is_accepted_after_one_key_set_fetch(
    client: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    providers: dict[str, OidcProvider],
    demo: None,
) -> None:
    provider = providers["acme"]
    await signed_in_then_rotated(client, browser, provider)
    assert (await sign_in_with(client, browser, "acme", "alice")).status_code == 302
    assert await provider.jwks_fetches() == 1
    # A token naming an unknown key again does not fetch the key set again (one a minute).
    redirect = await authorize(browser, await start(client, "acme"), "alice")
    await provider.sabotage("unknown_kid")
    await refused(await callback(client, redirect), 2)
    assert await provider.jwks_fetches() == 1


@asynccontextmanager
async def second_process(app: Any, settings: config.Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A browser talking to another app process on the shared store."""
    async with another_instance(app, settings) as other:
        transport = httpx.ASGITransport(app=other, client=("203.0.113.8", 50000))
        async with httpx.AsyncClient(
            transport=transport, base_url=ORIGIN, headers={"origin": ORIGIN}
        ) as http:
            yield http


async def signed_in_then_rotated(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, provider: OidcProvider
) -> None:
    """One sign-in (the key set is cached), then the provider rotates its key."""
    assert (await sign_in_with(client, browser, "acme", "alice")).status_code == 302
    await provider.rotate_key(keep_old=False)
    await provider.reset_stats()
    client.cookies.clear()


async def test_processes_share_one_key_set_fetch_after_a_rotation(
    app: Any,
    app_settings: config.Settings,
    client: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    providers: dict[str, OidcProvider],
    demo: None,
) -> None:
    provider = providers["acme"]
    await signed_in_then_rotated(client, browser, provider)
    async with second_process(app, app_settings) as other:
        assert (await sign_in_with(other, browser, "acme", "alice")).status_code == 302
        assert (await sign_in_with(client, browser, "acme", "alice")).status_code == 302
        assert await provider.jwks_fetches() == 1
        # A flow started in one process finishes in the other: its state is in the store.
        redirect = await authorize(browser, await start(client, "acme"), "alice")
        other.cookies.set("ocis_oidc", client.cookies["ocis_oidc"])
        assert (await callback(other, redirect)).status_code == 302
    assert await provider.jwks_fetches() == 1


async def test_a_refresh_refused_as_too_soon_uses_the_set_another_process_just_fetched(
    app: Any, providers: dict[str, OidcProvider], demo: None
) -> None:
    gateway: Gateway = app.state.gateway
    acme = gateway.provider("acme")
    assert acme is not None
    fetched = {"keys": [{"kty": "RSA", "kid": "fetched-elsewhere", "n": "AQAB", "e": "AQAB"}]}
    await app.state.store.set("ocis:oidc:jwks:acme", json.dumps(fetched))
    await app.state.store.set("ocis:oidc:jwks:acme:refreshed", "1", ex=60)
    await providers["acme"].reset_stats()
    metadata = {"jwks_uri": f"{providers['acme'].info.origin}/jwks"}
    assert await gateway._jwks(acme, metadata, refresh=True) == fetched
    assert await providers["acme"].jwks_fetches() == 0


async def test_callbacks_are_rate_limited_per_ip(client: httpx.AsyncClient, demo: None) -> None:
    for _ in range(rate_limit.CALLBACK_PER_IP.limit):
        response = await client.get("/auth/callback/google?code=x&state=y")
        assert response.status_code == 401
    over = await client.get("/auth/callback/google?code=x&state=y")
    assert over.status_code == 429
    assert int(over.headers["retry-after"]) > 0
    assert await AuditEvent.filter(action="sign_in.refused").count() == (
        rate_limit.CALLBACK_PER_IP.limit
    )


async def test_sign_ins_of_one_identity_are_limited(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, demo: None
) -> None:
    limit = rate_limit.CALLBACK_PER_ACCOUNT
    assert (limit.limit, limit.window_seconds) == (20, 900)
    for attempt in range(limit.limit):
        client.cookies.clear()
        response = await sign_in_with(client, browser, "acme", "alice")
        assert response.status_code == 302, attempt
    client.cookies.clear()
    over = await sign_in_with(client, browser, "acme", "alice")
    assert over.status_code == 429
    assert session_of(over) is None
    # Someone else signs in as usual.
    client.cookies.clear()
    assert (await sign_in_with(client, browser, "acme", "nobirth")).status_code == 302
