"""The loopback OpenID provider harness itself, driven with plain httpx (no OCIS code).

Proves what relying-party tests lean on: discovery per flavour, a genuine code flow with PKCE
whose ID token carries the account's claims under a published key, each sabotage mode changing
exactly what it says on the next token response only, runtime claims and key rotation.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.oidc_harness import (
    CONSUMERS_TENANT,
    SABOTAGE_MODES,
    AuthorizationRequest,
    OidcClient,
    OidcHarnessError,
    OidcProvider,
    ProviderConfig,
    RsaKey,
    SabotageMode,
    authorize,
    b64url_decode,
    callback_params,
    decode_jwt,
    rsa_public_key_from_jwk,
)

# Port 9 (discard): nothing listens there, so a harness that requested the redirect would fail.
REDIRECT = "http://127.0.0.1:9/auth/callback/test"
RP = OidcClient("ocis-rp", "rp-secret-1", (REDIRECT,), "client_secret_basic")
RP_POST = OidcClient("ocis-rp-post", "rp-secret-2", (REDIRECT,), "client_secret_post")
TENANT_A = "11111111-1111-4111-8111-111111111111"
TENANT_B = "22222222-2222-4222-8222-222222222222"

ALICE = {
    "email": "alice@example.com",
    "email_verified": True,
    "name": "Alice Example",
    "given_name": "Alice",
    "family_name": "Example",
    "birthdate": "1990-04-01",
    "department": "support",
}
BOB = {"email": "bob@example.com", "name": "Bob Example", "given_name": "Bob"}

CONFIGS = {
    "generic": ProviderConfig(
        flavour="generic", clients=[RP, RP_POST], accounts={"alice": ALICE, "bob": BOB}
    ),
    "google": ProviderConfig(flavour="google", clients=[RP], accounts={"bob": BOB}),
    "linkedin": ProviderConfig(flavour="linkedin", clients=[RP_POST], accounts={"bob": BOB}),
    "microsoft": ProviderConfig(
        flavour="microsoft",
        clients=[RP, RP_POST],
        tenants=[TENANT_A, TENANT_B],
        accounts={
            "alice": {**BOB, "email": "alice@contoso.example", "tid": TENANT_A},
            "bob": {**BOB, "tid": TENANT_B},
            "unverified": {"email": "victim@example.com", "tid": TENANT_B, "xms_edov": None},
            "consumer": {"email": "carol@outlook.example", "tid": CONSUMERS_TENANT},
        },
    ),
}


@pytest.fixture(scope="module")
def providers() -> Iterator[dict[str, OidcProvider]]:
    started = {name: OidcProvider(config) for name, config in CONFIGS.items()}
    try:
        with ThreadPoolExecutor(len(started)) as pool:
            list(pool.map(OidcProvider.start_sync, started.values()))
        yield started
    finally:
        for provider in started.values():
            provider.stop_sync()


@pytest.fixture
async def op(providers: dict[str, OidcProvider]) -> dict[str, OidcProvider]:
    """The module's providers, each back to its configured state."""
    await asyncio.gather(*(provider.reset() for provider in providers.values()))
    return providers


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=20) as client:
        yield client


# ------------------------------------------------------------------------------------ helpers


@dataclass
class Flow:
    request: AuthorizationRequest
    redirect: str
    tokens: dict[str, Any]

    @property
    def id_token(self) -> str:
        token: str = self.tokens["id_token"]
        return token

    @property
    def claims(self) -> dict[str, Any]:
        return decode_jwt(self.id_token)[1]

    @property
    def header(self) -> dict[str, Any]:
        return decode_jwt(self.id_token)[0]


async def sign_in(
    provider: OidcProvider,
    http: httpx.AsyncClient,
    account: str,
    *,
    client: OidcClient | None = None,
    tenant: str | None = None,
    pkce: bool = True,
) -> Flow:
    request = provider.authorization_request(client=client, tenant=tenant, pkce=pkce)
    redirect = await authorize(http, request.url, account)
    assert redirect.startswith((client or provider.client).redirect_uri + "?"), redirect
    params = callback_params(redirect)
    assert params["state"] == request.state
    response = await provider.exchange_code(
        http, params["code"], code_verifier=request.code_verifier, client=client, tenant=tenant
    )
    assert response.status_code == 200, response.text
    return Flow(request, redirect, response.json())


async def published_keys(
    http: httpx.AsyncClient, provider: OidcProvider, tenant: str | None = None
) -> dict[str, rsa.RSAPublicKey]:
    """The JWKS reached the way a relying party reaches it: through discovery."""
    discovery_url = provider.info.discovery_url_for(tenant) if tenant else provider.discovery_url
    discovery = (await http.get(discovery_url)).json()
    jwks = (await http.get(discovery["jwks_uri"])).json()
    return {key["kid"]: rsa_public_key_from_jwk(key) for key in jwks["keys"]}


def rs256_valid(token: str, key: rsa.RSAPublicKey) -> bool:
    signing_input, _, signature = token.rpartition(".")
    try:
        key.verify(
            b64url_decode(signature), signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()
        )
    except InvalidSignature:
        return False
    return True


def genuinely_signed(token: str, keys: dict[str, rsa.RSAPublicKey]) -> bool:
    header = decode_jwt(token)[0]
    return header.get("alg") == "RS256" and rs256_valid(token, keys[header["kid"]])


def changed(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    missing = object()
    return {
        name
        for name in before.keys() | after.keys()
        if before.get(name, missing) != after.get(name, missing)
    }


def account_claims(token_claims: dict[str, Any]) -> dict[str, Any]:
    registered = {"iss", "aud", "exp", "iat", "nonce", "at_hash", "sid", "auth_time", "azp"}
    return {name: value for name, value in token_claims.items() if name not in registered}


# ------------------------------------------------------------------------------------ discovery


@pytest.mark.parametrize(
    ("name", "issuer_path", "rfc9207"),
    [("generic", "", True), ("google", "", False), ("linkedin", "/oauth", False)],
)
async def test_discovery_per_flavour(
    op: dict[str, OidcProvider],
    http: httpx.AsyncClient,
    name: str,
    issuer_path: str,
    rfc9207: bool,
) -> None:
    provider = op[name]
    issuer = provider.origin + issuer_path
    assert provider.issuer == issuer
    assert provider.discovery_url == f"{issuer}/.well-known/openid-configuration"
    response = await http.get(provider.discovery_url)
    assert response.status_code == 200
    discovery = response.json()
    assert discovery["issuer"] == issuer
    for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
        assert discovery[endpoint].startswith(issuer + "/"), endpoint
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    assert "RS256" in discovery["id_token_signing_alg_values_supported"]
    assert discovery["response_types_supported"] == ["code"]
    assert discovery.get("authorization_response_iss_parameter_supported", False) is rfc9207
    assert list(await published_keys(http, provider)) == [provider.signing_key.kid]


async def test_microsoft_discovery_per_tenant_and_multi_tenant_templates(
    op: dict[str, OidcProvider], http: httpx.AsyncClient
) -> None:
    provider = op["microsoft"]
    origin = provider.origin
    assert provider.issuer == f"{origin}/{TENANT_A}/v2.0"
    for tenant in (TENANT_A, TENANT_B):
        issuer = f"{origin}/{tenant}/v2.0"
        assert provider.info.issuer_for(tenant) == issuer
        url = provider.info.discovery_url_for(tenant)
        assert url == f"{issuer}/.well-known/openid-configuration"
        discovery = (await http.get(url)).json()
        assert discovery["issuer"] == issuer
        assert discovery["token_endpoint"] == f"{issuer}/token"
        assert discovery["jwks_uri"] == f"{issuer}/jwks"
        assert "authorization_response_iss_parameter_supported" not in discovery
    template = f"{origin}/{{tenantid}}/v2.0"
    expected = {
        "common": template,
        "organizations": template,
        "consumers": f"{origin}/{CONSUMERS_TENANT}/v2.0",
    }
    for alias, issuer in expected.items():
        url = provider.info.discovery_url_for(alias)
        assert url == f"{origin}/{alias}/v2.0/.well-known/openid-configuration"
        discovery = (await http.get(url)).json()
        assert discovery["issuer"] == issuer
        assert discovery["authorization_endpoint"] == f"{origin}/{alias}/v2.0/auth"
        assert discovery["token_endpoint"] == f"{origin}/{alias}/v2.0/token"
    assert (await http.get(f"{origin}/common/v2.0/.well-known/openid-configuration")).json()[
        "issuer"
    ] == (origin + "/{tenantid}/v2.0")
    env = provider.info.env("microsoft", issuer=f"{origin}/common/v2.0")
    assert env == {
        "OIDC_MICROSOFT_ISSUER": f"{origin}/common/v2.0",
        "OIDC_MICROSOFT_CLIENT_ID": RP.client_id,
        "OIDC_MICROSOFT_CLIENT_SECRET": RP.client_secret,
    }


# ------------------------------------------------------------------------------------ code flow


async def test_full_code_flow_with_pkce_yields_the_accounts_claims_under_a_published_key(
    op: dict[str, OidcProvider], http: httpx.AsyncClient
) -> None:
    provider = op["generic"]
    flow = await sign_in(provider, http, "alice")
    params = callback_params(flow.redirect)
    assert set(params) == {"code", "state", "iss"}
    assert params["iss"] == provider.issuer
    assert set(flow.tokens) >= {"access_token", "id_token", "refresh_token", "token_type"}
    assert flow.tokens["token_type"] == "Bearer"
    keys = await published_keys(http, provider)
    assert flow.header == {"alg": "RS256", "kid": provider.signing_key.kid}
    assert genuinely_signed(flow.id_token, keys)
    claims = flow.claims
    assert account_claims(claims) == {"sub": "alice", **ALICE}
    assert claims["iss"] == provider.issuer
    assert claims["aud"] == RP.client_id
    assert claims["nonce"] == flow.request.nonce
    assert claims["exp"] - claims["iat"] == 3600
    assert abs(claims["iat"] - time.time()) < 30
    # The access token is genuine too: the userinfo endpoint answers for the same account.
    userinfo = await http.get(
        provider.origin + "/me", headers={"authorization": f"Bearer {flow.tokens['access_token']}"}
    )
    assert userinfo.status_code == 200
    assert userinfo.json()["sub"] == "alice"
    # And the refresh token: a refresh yields a new, genuine ID token for the same subject.
    refreshed = await http.post(
        provider.origin + "/token",
        data={"grant_type": "refresh_token", "refresh_token": flow.tokens["refresh_token"]},
        auth=(RP.client_id, RP.client_secret),
    )
    assert refreshed.status_code == 200, refreshed.text
    assert decode_jwt(refreshed.json()["id_token"])[1]["sub"] == "alice"
    assert genuinely_signed(refreshed.json()["id_token"], keys)


async def test_client_secret_post_client_authenticates_only_its_registered_way(
    op: dict[str, OidcProvider], http: httpx.AsyncClient
) -> None:
    provider = op["generic"]
    flow = await sign_in(provider, http, "bob", client=RP_POST)
    assert flow.claims["aud"] == RP_POST.client_id
    assert flow.claims["sub"] == "bob"
    request = provider.authorization_request(client=RP_POST)
    code = callback_params(await authorize(http, request.url, "bob"))["code"]
    basic = await http.post(
        provider.origin + "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": request.code_verifier,
        },
        auth=(RP_POST.client_id, RP_POST.client_secret),
    )
    assert basic.status_code == 401
    assert basic.json()["error"] == "invalid_client"


async def test_pkce_is_required_and_checked(
    op: dict[str, OidcProvider], http: httpx.AsyncClient
) -> None:
    provider = op["generic"]
    without = provider.authorization_request(pkce=False)
    redirect = await authorize(http, without.url, "alice")
    params = callback_params(redirect)
    assert params["error"] == "invalid_request"
    assert "PKCE" in params["error_description"]
    assert params["state"] == without.state
    assert "code" not in params
    plain = provider.authorization_request(extra={"code_challenge_method": "plain"})
    params = callback_params(await authorize(http, plain.url, "alice"))
    assert params["error"] == "invalid_request"
    assert "code" not in params
    request = provider.authorization_request()
    code = callback_params(await authorize(http, request.url, "alice"))["code"]
    wrong = await provider.exchange_code(http, code, code_verifier="x" * 43)
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"


async def test_linkedin_like_allows_no_pkce(
    op: dict[str, OidcProvider], http: httpx.AsyncClient
) -> None:
    provider = op["linkedin"]
    flow = await sign_in(provider, http, "bob", pkce=False)
    assert flow.request.code_verifier is None
    assert flow.claims["iss"] == provider.origin + "/oauth"
    assert flow.claims["email_verified"] is True
    assert "iss" not in callback_params(flow.redirect)


async def test_a_code_is_redeemed_once(
    op: dict[str, OidcProvider], http: httpx.AsyncClient
) -> None:
    provider = op["generic"]
    request = provider.authorization_request()
    code = callback_params(await authorize(http, request.url, "alice"))["code"]
    first = await provider.exchange_code(http, code, code_verifier=request.code_verifier)
    assert first.status_code == 200
    replay = await provider.exchange_code(http, code, code_verifier=request.code_verifier)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"


async def test_each_flow_is_a_fresh_login_and_leaves_no_provider_cookie(
    op: dict[str, OidcProvider], http: httpx.AsyncClient
) -> None:
    provider = op["generic"]
    http.cookies.set("rp_cookie", "kept", domain="127.0.0.1")
    assert (await sign_in(provider, http, "alice")).claims["sub"] == "alice"
    assert (await sign_in(provider, http, "bob")).claims["sub"] == "bob"
    assert [cookie.name for cookie in http.cookies.jar] == ["rp_cookie"]


async def test_unknown_account_is_refused_with_access_denied(
    op: dict[str, OidcProvider], http: httpx.AsyncClient
) -> None:
    provider = op["generic"]
    request = provider.authorization_request()
    params = callback_params(await authorize(http, request.url, "nobody"))
    assert params["error"] == "access_denied"
    assert params["state"] == request.state


async def test_flavours_fill_in_their_claims(
    op: dict[str, OidcProvider], http: httpx.AsyncClient
) -> None:
    google = (await sign_in(op["google"], http, "bob")).claims
    assert account_claims(google) == {"sub": "bob", **BOB, "email_verified": True}
    assert google["iss"] == op["google"].origin
    microsoft = op["microsoft"]
    alice = (await sign_in(microsoft, http, "alice", tenant=TENANT_A)).claims
    assert account_claims(alice) == {
        "sub": "alice",
        **BOB,
        "email": "alice@contoso.example",
        "tid": TENANT_A,
        "xms_edov": True,
        "ver": "2.0",
        "preferred_username": "alice@contoso.example",
    }
    assert "email_verified" not in alice
    assert alice["iss"] == f"{microsoft.origin}/{TENANT_A}/v2.0"
    unverified = (await sign_in(microsoft, http, "unverified", tenant=TENANT_B)).claims
    assert "xms_edov" not in unverified
    assert unverified["tid"] == TENANT_B


async def test_microsoft_multi_tenant_endpoints_issue_the_users_tenant_issuer(
    op: dict[str, OidcProvider], http: httpx.AsyncClient
) -> None:
    provider = op["microsoft"]
    keys = await published_keys(http, provider, "common")
    for alias in ("common", "organizations"):
        flow = await sign_in(provider, http, "bob", tenant=alias)
        assert flow.claims["iss"] == f"{provider.origin}/{TENANT_B}/v2.0"
        assert flow.claims["tid"] == TENANT_B
        assert genuinely_signed(flow.id_token, keys)
        assert "iss" not in callback_params(flow.redirect)
    consumer = await sign_in(provider, http, "consumer", tenant="consumers")
    assert consumer.claims["iss"] == f"{provider.origin}/{CONSUMERS_TENANT}/v2.0"
    # A tenant's own endpoint and the consumers endpoint know no account of another tenant.
    for tenant, account in ((TENANT_A, "bob"), ("consumers", "bob"), ("organizations", "consumer")):
        request = provider.authorization_request(tenant=tenant)
        params = callback_params(await authorize(http, request.url, account))
        assert params["error"] == "access_denied", (tenant, account)


# ------------------------------------------------------------------------------------ sabotage


SABOTAGE_CASES: list[tuple[SabotageMode, str, dict[str, Any]]] = [
    ("wrong_nonce", "generic", {}),
    ("missing_nonce", "generic", {}),
    ("aud_other", "generic", {}),
    ("aud_list_without_us", "generic", {}),
    ("azp_other", "generic", {}),
    ("wrong_iss", "generic", {}),
    ("wrong_iss", "generic", {"iss": "https://accounts.google.com"}),
    ("iss_without_scheme", "google", {}),
    ("ms_iss_tid_mismatch", "microsoft", {}),
    ("ms_tenantid_literal", "microsoft", {}),
    ("ms_v1_issuer", "microsoft", {}),
    ("alg_none", "generic", {}),
    ("hs256_public_pem", "generic", {}),
    ("hs256_public_der", "generic", {}),
    ("forged_signature", "generic", {}),
    ("embedded_jwk", "generic", {}),
    ("jku_header", "generic", {}),
    ("x5u_header", "generic", {}),
    ("crit_unknown", "generic", {}),
    ("expired", "generic", {}),
    ("oversized", "generic", {}),
    ("unknown_kid", "generic", {}),
    (
        "override_claims",
        "generic",
        {"claims": {"email": "m@evil.example", "email_verified": False}},
    ),
]


def test_every_sabotage_mode_is_tested() -> None:
    assert {mode for mode, _, _ in SABOTAGE_CASES} == set(SABOTAGE_MODES)


def attacker_verifies(token: str, provider: OidcProvider) -> bool:
    return rs256_valid(token, provider.attacker_key.public_key)


@pytest.mark.parametrize(
    ("mode", "name", "params"),
    SABOTAGE_CASES,
    ids=[f"{mode}-{index}" for index, (mode, _, _) in enumerate(SABOTAGE_CASES)],
)
async def test_sabotage_changes_exactly_that_on_the_next_token_response_only(
    op: dict[str, OidcProvider],
    http: httpx.AsyncClient,
    mode: SabotageMode,
    name: str,
    params: dict[str, Any],
) -> None:
    provider = op[name]
    tenant = TENANT_A if name == "microsoft" else None
    account = "alice" if name in ("generic", "microsoft") else "bob"
    await provider.sabotage(mode, **params)
    assert (await provider.sabotage_log())["pending"] == mode

    flow = await sign_in(provider, http, account, tenant=tenant)

    log = await provider.sabotage_log()
    assert log["pending"] is None
    assert len(log["applied"]) == 1
    original: str = log["applied"][0]["original_id_token"]
    token = flow.id_token
    assert log["applied"][0]["id_token"] == token
    keys = await published_keys(http, provider, tenant)
    assert genuinely_signed(original, keys)
    before_header, before, _ = decode_jwt(original)
    header, after, signature = decode_jwt(token)
    assert before["nonce"] == flow.request.nonce
    assert before["aud"] == RP.client_id
    # The rest of the response stays genuine.
    assert set(flow.tokens) >= {"access_token", "refresh_token"}
    origin, iss = provider.origin, before["iss"]

    if mode in ("alg_none", "hs256_public_pem", "hs256_public_der"):
        assert after == before
        public = keys[before_header["kid"]]
        signing_input = token.rpartition(".")[0].encode()
        if mode == "alg_none":
            assert header == {"alg": "none", "typ": "JWT"}
            assert signature == b""
            assert token.endswith(".")
        else:
            assert header == {"alg": "HS256", "typ": "JWT", "kid": before_header["kid"]}
            pem = public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            der = public.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            secret = pem if mode == "hs256_public_pem" else der
            assert hmac.compare_digest(
                signature, hmac.new(secret, signing_input, hashlib.sha256).digest()
            )
    elif mode == "forged_signature":
        assert header == before_header
        assert token.split(".")[0] == original.split(".")[0]
        assert token.split(".")[2] == original.split(".")[2]
        assert changed(before, after) == {"email"}
        assert after["email"] == "forged@attacker.example"
        assert not genuinely_signed(token, keys)
    elif mode in ("embedded_jwk", "jku_header", "x5u_header", "unknown_kid"):
        assert after == before
        assert not any(rs256_valid(token, key) for key in keys.values())
        if mode == "embedded_jwk":
            assert changed(before_header, header) == {"jwk"}
            assert header["jwk"] == provider.attacker_key.public_jwk()
            assert attacker_verifies(token, provider)
        elif mode == "jku_header":
            assert changed(before_header, header) == {"jku", "kid"}
            assert header["jku"] == f"{origin}/__test/attacker/jwks.json"
            assert header["kid"] == provider.attacker_key.kid not in keys
            served = (await http.get(header["jku"])).json()
            assert served == {"keys": [provider.attacker_key.public_jwk()]}
            assert attacker_verifies(token, provider)
        elif mode == "x5u_header":
            assert changed(before_header, header) == {"x5u", "kid"}
            assert header["x5u"] == f"{origin}/__test/attacker/cert.pem"
            cert = x509.load_pem_x509_certificate((await http.get(header["x5u"])).content)
            cert_key = cert.public_key()
            assert isinstance(cert_key, rsa.RSAPublicKey)
            assert cert_key.public_numbers() == provider.attacker_key.public_key.public_numbers()
            assert rs256_valid(token, cert_key)
        else:
            assert changed(before_header, header) == {"kid"}
            assert header["kid"] not in keys
            assert not attacker_verifies(token, provider)
    elif mode == "crit_unknown":
        assert after == before
        assert header == {**before_header, "crit": ["urn:ocis:test:unknown"]} | {
            "urn:ocis:test:unknown": True
        }
        assert genuinely_signed(token, keys)
    else:
        # Claim changes, genuinely signed by the provider's own key.
        assert header == before_header
        assert genuinely_signed(token, keys)
        expected: dict[str, Any] = {
            "wrong_nonce": {"nonce"},
            "missing_nonce": {"nonce"},
            "aud_other": {"aud"},
            "aud_list_without_us": {"aud", "azp"},
            "azp_other": {"aud", "azp"},
            "wrong_iss": {"iss"},
            "iss_without_scheme": {"iss"},
            "ms_iss_tid_mismatch": {"iss"},
            "ms_tenantid_literal": {"iss"},
            "ms_v1_issuer": {"iss"},
            "oversized": {"x_padding"},
            "override_claims": {"email", "email_verified"},
        }
        if mode == "expired":
            assert changed(before, after) <= {"exp", "iat", "auth_time"}
            assert after["exp"] < time.time() - 3000
            assert after["iat"] < after["exp"]
        else:
            assert changed(before, after) == expected[mode]
        other = RP_POST.client_id
        checks: dict[str, bool] = {
            "wrong_nonce": after.get("nonce") not in (None, before["nonce"]),
            "missing_nonce": "nonce" not in after,
            "aud_other": after["aud"] == other,
            "aud_list_without_us": after["aud"] == [other] and after["azp"] == RP.client_id,
            "azp_other": after["aud"] == [RP.client_id, other] and after["azp"] == other,
            "wrong_iss": after["iss"] == params.get("iss", f"{origin}/other-issuer"),
            "iss_without_scheme": after["iss"] == iss.removeprefix("http://"),
            "ms_iss_tid_mismatch": after["iss"] == f"{origin}/{TENANT_B}/v2.0"
            and after["tid"] == TENANT_A,
            "ms_tenantid_literal": after["iss"] == origin + "/{tenantid}/v2.0",
            "ms_v1_issuer": after["iss"] == f"https://sts.windows.net/{TENANT_A}/",
            "expired": True,
            "oversized": len(token) > 65536 and after["x_padding"] == "A" * 65536,
            "override_claims": after["email"] == "m@evil.example"
            and after["email_verified"] is False,
        }
        assert checks[mode], after

    # The next token response is genuine again.
    again = await sign_in(provider, http, account, tenant=tenant)
    assert genuinely_signed(again.id_token, keys)
    assert again.claims["nonce"] == again.request.nonce
    assert again.claims["iss"] == iss
    assert again.claims["aud"] == RP.client_id
    assert len((await provider.sabotage_log())["applied"]) == 1


async def test_a_token_error_does_not_use_up_the_sabotage(
    op: dict[str, OidcProvider], http: httpx.AsyncClient
) -> None:
    provider = op["generic"]
    await provider.sabotage("missing_nonce")
    request = provider.authorization_request()
    code = callback_params(await authorize(http, request.url, "alice"))["code"]
    refused = await provider.exchange_code(http, code, code_verifier="y" * 43)
    assert refused.status_code == 400
    assert (await provider.sabotage_log())["pending"] == "missing_nonce"
    assert "nonce" not in (await sign_in(provider, http, "alice")).claims
    await provider.sabotage("missing_nonce")
    await provider.clear_sabotage()
    assert "nonce" in (await sign_in(provider, http, "alice")).claims


async def test_an_unknown_sabotage_mode_is_an_error(op: dict[str, OidcProvider]) -> None:
    with pytest.raises(OidcHarnessError, match="unknown sabotage mode"):
        await op["generic"].sabotage("no_such_mode")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ runtime state


async def test_set_claims_changes_the_next_tokens_for_the_same_subject(
    op: dict[str, OidcProvider], http: httpx.AsyncClient
) -> None:
    provider = op["generic"]
    now = await provider.set_claims(
        "alice", {"email": "alice.new@example.com", "email_verified": False, "team": "blue"}
    )
    assert now["email"] == "alice.new@example.com"
    claims = (await sign_in(provider, http, "alice")).claims
    assert claims["sub"] == "alice"
    assert claims["email"] == "alice.new@example.com"
    assert claims["email_verified"] is False
    assert claims["team"] == "blue"  # a claim name first seen at runtime
    assert claims["name"] == ALICE["name"]
    await provider.set_claims("alice", {"email_verified": None})
    assert "email_verified" not in (await sign_in(provider, http, "alice")).claims
    await provider.set_claims("alice", {"email": "only@example.com"}, replace=True)
    assert account_claims((await sign_in(provider, http, "alice")).claims) == {
        "sub": "alice",
        "email": "only@example.com",
    }
    await provider.set_claims("carol", {"email": "carol@example.com"})
    assert (await sign_in(provider, http, "carol")).claims["email"] == "carol@example.com"
    await provider.reset()
    assert (await sign_in(provider, http, "alice")).claims["email"] == ALICE["email"]


async def test_key_rotation_publishes_and_uses_the_new_key(
    op: dict[str, OidcProvider], http: httpx.AsyncClient
) -> None:
    provider = op["generic"]
    old = provider.signing_key
    new = await provider.rotate_key()
    assert new.kid != old.kid
    assert provider.signing_key == new
    keys = await published_keys(http, provider)
    assert list(keys) == [new.kid, old.kid]
    flow = await sign_in(provider, http, "alice")
    assert flow.header["kid"] == new.kid
    assert rs256_valid(flow.id_token, keys[new.kid])
    minted = provider.mint_id_token(provider.id_token_claims("alice", nonce="n"))
    assert decode_jwt(minted)[0]["kid"] == new.kid
    assert rs256_valid(minted, keys[new.kid])
    newest = await provider.rotate_key(keep_old=False)
    assert list(await published_keys(http, provider)) == [newest.kid]
    await provider.reset()
    assert list(await published_keys(http, provider)) == [old.kid]
    assert (await sign_in(provider, http, "alice")).header["kid"] == old.kid


async def test_python_minted_tokens_match_the_published_key(
    op: dict[str, OidcProvider], http: httpx.AsyncClient
) -> None:
    provider = op["microsoft"]
    keys = await published_keys(http, provider, TENANT_A)
    claims = provider.id_token_claims(
        "alice", nonce="abc", issuer=provider.info.issuer_for(TENANT_A), tid=TENANT_A
    )
    assert claims["aud"] == RP.client_id
    assert claims["exp"] - claims["iat"] == 300
    token = provider.mint_id_token(claims)
    assert decode_jwt(token)[:2] == (
        {"alg": "RS256", "typ": "JWT", "kid": provider.signing_key.kid},
        claims,
    )
    assert genuinely_signed(token, keys)
    stranger = provider.mint_id_token(claims, key=RsaKey.generate("stranger"))
    assert decode_jwt(stranger)[0]["kid"] == "stranger"
    hs = provider.mint_id_token(claims, alg="HS256", key=provider.signing_key.public_pem())
    signing_input, _, signature = hs.rpartition(".")
    assert (
        b64url_decode(signature)
        == hmac.new(
            provider.signing_key.public_pem(), signing_input.encode(), hashlib.sha256
        ).digest()
    )
    none = provider.mint_id_token(claims, alg="none", headers={"kid": None, "typ": None})
    assert decode_jwt(none)[0] == {"alg": "none"}
    assert none.endswith(".")


async def test_stats_count_key_set_fetches(
    op: dict[str, OidcProvider], http: httpx.AsyncClient
) -> None:
    provider = op["microsoft"]
    assert await provider.jwks_fetches() == 0
    await published_keys(http, provider, TENANT_A)
    await published_keys(http, provider, "common")
    assert await provider.jwks_fetches() == 2
    stats = await provider.stats()
    assert stats[f"/{TENANT_A}/v2.0/jwks"] == 1
    assert stats["/common/v2.0/jwks"] == 1
    await provider.reset_stats()
    assert await provider.stats() == {}


# ------------------------------------------------------------------------------------ lifecycle


def _port_open(origin: str) -> bool:
    host, port = origin.removeprefix("http://").split(":")
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) == 0


async def test_start_and_stop_as_a_context_manager() -> None:
    async with OidcProvider(ProviderConfig(accounts={"a": {}})) as provider:
        assert provider.startup_seconds is not None
        assert provider.startup_seconds < 20
        assert provider.returncode is None
        process = provider._process
        assert process is not None
        origin = provider.origin
        assert _port_open(origin)
    assert process.process.returncode is not None  # stopped and reaped
    assert not _port_open(origin)


async def test_the_process_ends_itself_when_the_harness_goes_away() -> None:
    provider = OidcProvider(ProviderConfig(accounts={"a": {}}))
    await provider.start()
    try:
        process = provider._process
        assert process is not None
        assert process.process.stdin is not None
        process.process.stdin.close()  # what happens when the Python process dies
        await asyncio.to_thread(process.process.wait, 10)
        assert process.process.returncode == 0
    finally:
        await provider.stop()


async def test_the_process_ends_itself_after_its_lifetime() -> None:
    provider = OidcProvider(ProviderConfig(max_lifetime_s=2))
    await provider.start()
    try:
        process = provider._process
        assert process is not None
        await asyncio.to_thread(process.process.wait, 10)
        assert process.process.returncode == 3
        assert "max_lifetime_s reached" in provider.stderr
    finally:
        await provider.stop()


async def test_a_provider_that_dies_at_start_reports_node_stderr() -> None:
    broken = OidcClient("broken", "secret", ())
    provider = OidcProvider(ProviderConfig(clients=[broken]))
    with pytest.raises(OidcHarnessError, match="exited with 1 before listening") as raised:
        await provider.start()
    assert "invalid client redirect_uris must contain members" in str(raised.value)


async def test_a_missing_install_names_the_install_command(tmp_path: Path) -> None:
    provider = OidcProvider(ProviderConfig(), provider_dir=tmp_path)
    with pytest.raises(OidcHarnessError, match="npm ci --omit=dev --prefix tests/oidc_provider"):
        await provider.start()
