"""The mobile app's credentials: code exchange with PKCE, access JWTs, rotating refresh tokens."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jose import jwt
from jose.backends.cryptography_backend import CryptographyECKey

import settings as config
from auth import tokens
from models import AuditEvent, SignInSession, User, crypto
from tests.helpers import ORIGIN, app_refresh, sign_in

CLIENT_ID = "ocis-mobile"
REDIRECT_URI = "ocis://auth/callback"
CUSTOMER = "customer@example.com"
ME = "{ me { id email } }"


@pytest.fixture
async def mobile(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client as the app is one: no Origin, no Referer, no cookies."""
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50001))
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as http:
        yield http


@dataclass
class SignedIn:
    user_id: UUID
    access_token: str
    refresh_token: str

    @property
    def family_id(self) -> str:
        return str(jwt.get_unverified_claims(self.access_token)["sid"])


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, _b64(hashlib.sha256(verifier.encode()).digest())


async def _user_id(email: str) -> UUID:
    user = await User.get(email_index=crypto.blind_index(email))
    return user.id


async def _code(app: Any, email: str = CUSTOMER, **kwargs: Any) -> tuple[str, str]:
    """A one-time code as the sign-in flow issues it, and its PKCE verifier."""
    verifier, challenge = _pkce()
    code = await tokens.issue_mobile_code(
        app.state.store, await _user_id(email), REDIRECT_URI, challenge, CLIENT_ID, **kwargs
    )
    return code, verifier


def _exchange_form(code: str, verifier: str) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": REDIRECT_URI,
        "client_id": CLIENT_ID,
    }


async def _token(mobile: httpx.AsyncClient, form: dict[str, str]) -> httpx.Response:
    return await mobile.post("/auth/token", data=form)


async def _sign_in(app: Any, mobile: httpx.AsyncClient, email: str = CUSTOMER) -> SignedIn:
    code, verifier = await _code(app, email)
    response = await _token(mobile, _exchange_form(code, verifier))
    assert response.status_code == 200, response.text
    body = response.json()
    return SignedIn(await _user_id(email), body["access_token"], body["refresh_token"])


async def _me(mobile: httpx.AsyncClient, access_token: str) -> httpx.Response:
    return await mobile.post(
        "/graphql", json={"query": ME}, headers={"authorization": f"Bearer {access_token}"}
    )


async def _me_email(mobile: httpx.AsyncClient, access_token: str) -> str:
    response = await _me(mobile, access_token)
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["me"]["email"])


def _assert_invalid_grant(response: httpx.Response) -> None:
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant"}
    assert response.headers["cache-control"] == "no-store"


def _assert_invalid_token(response: httpx.Response) -> None:
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"] == {"code": "SESSION_EXPIRED"}
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def _audit(action: str) -> list[AuditEvent]:
    return await AuditEvent.filter(action=action).order_by("seq")


# --- the code exchange ------------------------------------------------------------------


@pytest.mark.promise("P06")
async def test_a_code_and_its_verifier_buy_tokens_that_read_me_without_csrf(
    app: Any, mobile: httpx.AsyncClient, demo: None
) -> None:
    code, verifier = await _code(app)
    response = await _token(mobile, _exchange_form(code, verifier))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "ES256"
    assert header["typ"] == "at+jwt"
    claims = jwt.get_unverified_claims(body["access_token"])
    assert claims["sub"] == str(await _user_id(CUSTOMER))
    assert claims["iss"] == ORIGIN
    assert claims["aud"] == "ocis-api"
    assert claims["exp"] - claims["iat"] == 600
    assert claims["nbf"] == claims["iat"]
    assert claims["client_id"] == CLIENT_ID
    # No Origin, no cookie, and not even a JSON-only content type is demanded of a bearer.
    assert "origin" not in mobile.headers
    assert await _me_email(mobile, body["access_token"]) == CUSTOMER


async def test_the_json_body_form_of_the_token_request_works_too(
    app: Any, mobile: httpx.AsyncClient, demo: None
) -> None:
    code, verifier = await _code(app)
    response = await mobile.post("/auth/token", json=_exchange_form(code, verifier))
    assert response.status_code == 200, response.text
    assert await _me_email(mobile, response.json()["access_token"]) == CUSTOMER


async def test_a_wrong_verifier_is_refused_and_burns_the_code(
    app: Any, mobile: httpx.AsyncClient, demo: None
) -> None:
    code, verifier = await _code(app)
    other_verifier, _ = _pkce()
    _assert_invalid_grant(await _token(mobile, _exchange_form(code, other_verifier)))
    _assert_invalid_grant(await _token(mobile, _exchange_form(code, verifier)))
    assert await AuditEvent.all().count() == 0


async def test_the_challenge_itself_is_not_a_verifier(
    app: Any, mobile: httpx.AsyncClient, demo: None
) -> None:
    verifier, challenge = _pkce()
    code = await tokens.issue_mobile_code(
        app.state.store, await _user_id(CUSTOMER), REDIRECT_URI, challenge, CLIENT_ID
    )
    _assert_invalid_grant(await _token(mobile, _exchange_form(code, challenge)))


@pytest.mark.promise("P06")
async def test_a_replayed_code_is_refused_and_revokes_what_it_issued(
    app: Any, mobile: httpx.AsyncClient, demo: None
) -> None:
    code, verifier = await _code(app)
    first = await _token(mobile, _exchange_form(code, verifier))
    assert first.status_code == 200
    issued = first.json()
    _assert_invalid_grant(await _token(mobile, _exchange_form(code, verifier)))
    _assert_invalid_token(await _me(mobile, issued["access_token"]))
    _assert_invalid_grant(await app_refresh(mobile, issued["refresh_token"]))
    (event,) = await _audit("authorization_code.reuse")
    assert event.subject_id == await _user_id(CUSTOMER)
    assert event.entity == "RefreshTokenFamily"
    assert event.entity_id == jwt.get_unverified_claims(issued["access_token"])["sid"]
    assert event.actor_id is None


async def test_an_expired_code_is_refused(app: Any, mobile: httpx.AsyncClient, demo: None) -> None:
    code, verifier = await _code(app, now=time.time() - 61)
    _assert_invalid_grant(await _token(mobile, _exchange_form(code, verifier)))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("redirect_uri", "ocis://auth/callback/other"),
        ("redirect_uri", "https://evil.example.com/callback"),
        ("client_id", "another-app"),
    ],
)
async def test_a_code_works_only_for_its_client_and_exact_redirect(
    app: Any, mobile: httpx.AsyncClient, demo: None, field: str, value: str
) -> None:
    code, verifier = await _code(app)
    _assert_invalid_grant(await _token(mobile, {**_exchange_form(code, verifier), field: value}))


@pytest.mark.parametrize(
    ("client_id", "redirect_uri"),
    [("ocis-mobile", "ocis://auth/callback/evil"), ("other", "ocis://auth/callback")],
)
async def test_codes_are_issued_only_for_registered_mobile_redirects(
    app: Any, demo: None, client_id: str, redirect_uri: str
) -> None:
    _, challenge = _pkce()
    with pytest.raises(ValueError, match="unregistered"):
        await tokens.issue_mobile_code(
            app.state.store, await _user_id(CUSTOMER), redirect_uri, challenge, client_id
        )


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({}, "invalid_request"),
        ({"grant_type": "password", "username": "x", "password": "y"}, "unsupported_grant_type"),
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({"grant_type": "authorization_code", "code": "abc"}, "invalid_request"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
        ({"grant_type": "refresh_token", "refresh_token": "not-a-token"}, "invalid_grant"),
        ({"grant_type": "refresh_token", "refresh_token": "x" * 129}, "invalid_grant"),
        (
            {
                "grant_type": "authorization_code",
                "code": "never-issued",
                "code_verifier": "v" * 43,
                "redirect_uri": REDIRECT_URI,
                "client_id": CLIENT_ID,
            },
            "invalid_grant",
        ),
    ],
)
async def test_token_endpoint_errors_follow_rfc_6749(
    mobile: httpx.AsyncClient, form: dict[str, str], error: str
) -> None:
    response = await _token(mobile, form)
    assert response.status_code == 400
    assert response.json() == {"error": error}


async def test_a_repeated_parameter_or_a_non_text_value_is_an_invalid_request(
    mobile: httpx.AsyncClient,
) -> None:
    repeated = await mobile.post(
        "/auth/token",
        content="grant_type=refresh_token&refresh_token=a&refresh_token=b",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert repeated.status_code == 400
    assert repeated.json() == {"error": "invalid_request"}
    not_text = await mobile.post(
        "/auth/token", json={"grant_type": "refresh_token", "refresh_token": ["a"]}
    )
    assert not_text.status_code == 400
    assert not_text.json() == {"error": "invalid_request"}
    not_an_object = await mobile.post("/auth/token", json=["grant_type", "refresh_token"])
    assert not_an_object.json() == {"error": "invalid_request"}


# --- access tokens ----------------------------------------------------------------------


def _compact(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    signing_input = (
        _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    ).encode()
    return signing_input.decode() + "." + _b64(sign(signing_input))


def _good_claims(user_id: UUID, family_id: str) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": ORIGIN,
        "aud": "ocis-api",
        "sub": str(user_id),
        "sid": family_id,
        "client_id": CLIENT_ID,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": secrets.token_hex(16),
    }


def _signed_by_us(
    settings: config.Settings, claims: dict[str, Any], header: dict[str, Any] | None = None
) -> str:
    key = tokens.signing_key(settings.master_key)
    token: str = jwt.encode(
        claims,
        CryptographyECKey(key.private_key, "ES256"),
        algorithm="ES256",
        headers={"kid": key.kid, "typ": "at+jwt"} if header is None else header,
    )
    return token


def _forgeries(
    settings: config.Settings, valid: str, user_id: UUID, family_id: str
) -> dict[str, str]:
    key = tokens.signing_key(settings.master_key)
    claims = _good_claims(user_id, family_id)
    public_pem = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    head, body, signature = valid.split(".")
    tampered_claims = {
        **jwt.get_unverified_claims(valid),
        "sub": "00000000-0000-0000-0000-000000000001",
    }
    stranger = ec.generate_private_key(ec.SECP256R1())
    return {
        "tampered payload": f"{head}.{_b64(json.dumps(tampered_claims).encode())}.{signature}",
        "tampered signature": f"{head}.{body}.{signature[:-4]}AAAA",
        "alg none": _compact(
            {"alg": "none", "kid": key.kid, "typ": "at+jwt"}, claims, lambda _: b""
        ),
        "HS256 keyed with our public key": _compact(
            {"alg": "HS256", "kid": key.kid, "typ": "at+jwt"},
            claims,
            lambda data: hmac.new(public_pem, data, hashlib.sha256).digest(),
        ),
        "unknown kid": jwt.encode(
            claims,
            CryptographyECKey(stranger, "ES256"),
            algorithm="ES256",
            headers={"kid": "not-our-key", "typ": "at+jwt"},
        ),
        "another key under our kid": jwt.encode(
            claims,
            CryptographyECKey(stranger, "ES256"),
            algorithm="ES256",
            headers={"kid": key.kid, "typ": "at+jwt"},
        ),
        "embedded jwk": _signed_by_us(
            settings,
            claims,
            {"kid": key.kid, "typ": "at+jwt", "jwk": {"kty": "EC", "crv": "P-256"}},
        ),
        "no typ": _signed_by_us(settings, claims, {"kid": key.kid}),
        "typ JWT (not an access token)": _signed_by_us(
            settings, claims, {"kid": key.kid, "typ": "JWT"}
        ),
        "wrong aud": _signed_by_us(settings, {**claims, "aud": "ocis-web"}),
        "wrong iss": _signed_by_us(settings, {**claims, "iss": "https://evil.example.com"}),
        "no sub": _signed_by_us(settings, {k: v for k, v in claims.items() if k != "sub"}),
        "sub not a user id": _signed_by_us(settings, {**claims, "sub": "admin"}),
        "no jti": _signed_by_us(settings, {k: v for k, v in claims.items() if k != "jti"}),
        "no sid": _signed_by_us(settings, {k: v for k, v in claims.items() if k != "sid"}),
        "unknown client": _signed_by_us(settings, {**claims, "client_id": "other"}),
        "lifetime longer than we issue": _signed_by_us(
            settings, {**claims, "exp": claims["iat"] + 3600}
        ),
        "expired": tokens.issue_access_token(
            settings, user_id, family_id, CLIENT_ID, now=time.time() - 3600
        ),
        "not yet valid": tokens.issue_access_token(
            settings, user_id, family_id, CLIENT_ID, now=time.time() + 3600
        ),
        "not a jwt": "definitely-not-a-jwt",
        "oversized": valid + "A" * 5000,
    }


FORGERY_NAMES = [
    "tampered payload",
    "tampered signature",
    "alg none",
    "HS256 keyed with our public key",
    "unknown kid",
    "another key under our kid",
    "embedded jwk",
    "no typ",
    "typ JWT (not an access token)",
    "wrong aud",
    "wrong iss",
    "no sub",
    "sub not a user id",
    "no jti",
    "no sid",
    "unknown client",
    "lifetime longer than we issue",
    "expired",
    "not yet valid",
    "not a jwt",
    "oversized",
]


@pytest.mark.parametrize("forgery", FORGERY_NAMES)
async def test_an_invalid_bearer_token_is_refused_with_401_not_served_as_anonymous(
    app: Any, mobile: httpx.AsyncClient, demo: None, forgery: str
) -> None:
    signed_in = await _sign_in(app, mobile)
    tokens_by_name = _forgeries(
        app.state.settings, signed_in.access_token, signed_in.user_id, signed_in.family_id
    )
    assert sorted(tokens_by_name) == sorted(FORGERY_NAMES)
    _assert_invalid_token(await _me(mobile, tokens_by_name[forgery]))
    # The genuine token still works: only the forgery was refused.
    assert await _me_email(mobile, signed_in.access_token) == CUSTOMER


async def test_a_token_of_our_making_with_every_claim_right_is_accepted(
    app: Any, mobile: httpx.AsyncClient, demo: None
) -> None:
    """The forgeries above differ from this one in one thing each, so each check is tested."""
    signed_in = await _sign_in(app, mobile)
    token = _signed_by_us(app.state.settings, _good_claims(signed_in.user_id, signed_in.family_id))
    assert await _me_email(mobile, token) == CUSTOMER


@pytest.mark.parametrize("authorization", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "token"])
async def test_an_authorization_header_that_is_no_bearer_token_is_refused(
    mobile: httpx.AsyncClient, authorization: str
) -> None:
    response = await mobile.post(
        "/graphql", json={"query": ME}, headers={"authorization": authorization}
    )
    _assert_invalid_token(response)


async def test_a_bearer_token_is_never_downgraded_to_the_cookie_beside_it(
    app: Any, client: httpx.AsyncClient, demo: None
) -> None:
    cookie = await sign_in(client, "agent@example.com")
    response = await client.post(
        "/graphql",
        json={"query": ME},
        headers={"cookie": f"ocis_session={cookie}", "authorization": "Bearer forged"},
    )
    _assert_invalid_token(response)


async def test_the_access_token_of_a_revoked_family_stops_at_once(
    app: Any, mobile: httpx.AsyncClient, demo: None
) -> None:
    signed_in = await _sign_in(app, mobile)
    assert await _me_email(mobile, signed_in.access_token) == CUSTOMER
    assert await tokens.revoke_family(app.state.store, signed_in.family_id) is True
    _assert_invalid_token(await _me(mobile, signed_in.access_token))
    _assert_invalid_grant(await app_refresh(mobile, signed_in.refresh_token))
    assert await tokens.revoke_family(app.state.store, signed_in.family_id) is False


async def test_jwks_publishes_the_public_key_that_verifies_issued_tokens(
    app: Any, mobile: httpx.AsyncClient, demo: None
) -> None:
    signed_in = await _sign_in(app, mobile)
    response = await mobile.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=300"
    (key,) = response.json()["keys"]
    assert set(key) == {"kty", "crv", "x", "y", "kid", "use", "alg"}  # no private "d"
    assert (key["kty"], key["crv"], key["use"], key["alg"]) == ("EC", "P-256", "sig", "ES256")
    assert key["kid"] == jwt.get_unverified_header(signed_in.access_token)["kid"]
    claims = jwt.decode(
        signed_in.access_token, key, algorithms=["ES256"], audience="ocis-api", issuer=ORIGIN
    )
    assert claims["sub"] == str(signed_in.user_id)


def test_every_process_derives_the_same_key_and_another_master_key_another() -> None:
    first = tokens.signing_key(b"a" * 32)
    tokens.signing_key.cache_clear()
    again = tokens.signing_key(b"a" * 32)
    other = tokens.signing_key(b"b" * 32)
    assert first.kid == again.kid
    assert first.public_jwk == again.public_jwk
    assert first.kid != other.kid
    assert first.public_jwk["x"] != other.public_jwk["x"]


def test_tokens_signed_under_a_previous_master_key_survive_its_rotation(
    app_settings: config.Settings,
) -> None:
    user_id, family_id = UUID(int=7), "f" * 32
    old = replace(app_settings, master_key=b"o" * 32)
    token = tokens.issue_access_token(old, user_id, family_id, CLIENT_ID)
    rotated = replace(app_settings, previous_master_keys=(b"o" * 32,))
    assert tokens.verify_access_token(rotated, token) == tokens.AccessClaims(user_id, family_id)
    kids = [key["kid"] for key in tokens.jwks(rotated)["keys"]]
    assert kids == [
        tokens.signing_key(app_settings.master_key).kid,
        tokens.signing_key(b"o" * 32).kid,
    ]
    with pytest.raises(tokens.InvalidAccessToken, match="unknown kid"):
        tokens.verify_access_token(app_settings, token)


# --- refresh tokens ---------------------------------------------------------------------


async def test_a_refresh_rotates_the_token_within_its_family(
    app: Any, mobile: httpx.AsyncClient, demo: None
) -> None:
    signed_in = await _sign_in(app, mobile)
    response = await app_refresh(mobile, signed_in.refresh_token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    assert body["refresh_token"] != signed_in.refresh_token
    claims = jwt.get_unverified_claims(body["access_token"])
    assert claims["sid"] == signed_in.family_id
    assert claims["jti"] != jwt.get_unverified_claims(signed_in.access_token)["jti"]
    assert await _me_email(mobile, body["access_token"]) == CUSTOMER
    again = await app_refresh(mobile, body["refresh_token"])
    assert again.status_code == 200
    assert await _audit("refresh_token.reuse") == []


async def test_a_refresh_token_is_bound_to_its_client(
    app: Any, mobile: httpx.AsyncClient, demo: None
) -> None:
    signed_in = await _sign_in(app, mobile)
    form = {"grant_type": "refresh_token", "refresh_token": signed_in.refresh_token}
    _assert_invalid_grant(await _token(mobile, {**form, "client_id": "another-app"}))
    assert (await _token(mobile, {**form, "client_id": CLIENT_ID})).status_code == 200


@pytest.mark.promise("P06")
@pytest.mark.parametrize("rotations_after", [0, 3])
async def test_a_refresh_token_used_twice_revokes_its_family_newest_child_too(
    app: Any, mobile: httpx.AsyncClient, demo: None, rotations_after: int
) -> None:
    signed_in = await _sign_in(app, mobile)
    stolen = signed_in.refresh_token
    first = await app_refresh(mobile, stolen)
    assert first.status_code == 200
    newest = first.json()
    for _ in range(rotations_after):
        step = await app_refresh(mobile, newest["refresh_token"])
        assert step.status_code == 200
        newest = step.json()
    other = await _sign_in(app, mobile)  # another device of the same person

    _assert_invalid_grant(await app_refresh(mobile, stolen))

    _assert_invalid_grant(await app_refresh(mobile, newest["refresh_token"]))
    _assert_invalid_token(await _me(mobile, newest["access_token"]))
    (event,) = await _audit("refresh_token.reuse")
    assert event.subject_id == signed_in.user_id
    assert event.entity == "RefreshTokenFamily"
    assert event.entity_id == signed_in.family_id
    assert event.field_names == []
    # The other sign-in is another family and keeps working.
    assert await _me_email(mobile, other.access_token) == CUSTOMER
    assert (await app_refresh(mobile, other.refresh_token)).status_code == 200
    # Presenting the dead token again is refused without a second revocation record.
    _assert_invalid_grant(await app_refresh(mobile, stolen))
    assert len(await _audit("refresh_token.reuse")) == 1


async def test_parallel_refreshes_with_one_token_yield_exactly_one_valid_child(
    app: Any, mobile: httpx.AsyncClient, demo: None
) -> None:
    signed_in = await _sign_in(app, mobile)
    current = signed_in.refresh_token
    for _ in range(5):
        answers = await asyncio.gather(app_refresh(mobile, current), app_refresh(mobile, current))
        winners = [answer for answer in answers if answer.status_code == 200]
        losers = [answer for answer in answers if answer.status_code != 200]
        assert len(winners) == 1, [answer.text for answer in answers]
        _assert_invalid_grant(losers[0])
        child = winners[0].json()
        # The race loser is refused, but the winner's child stays valid.
        assert await _me_email(mobile, child["access_token"]) == CUSTOMER
        current = child["refresh_token"]
    assert (await app_refresh(mobile, current)).status_code == 200
    assert await _audit("refresh_token.reuse") == []


async def test_parallel_rotation_in_the_store_claims_once(
    app: Any, mobile: httpx.AsyncClient, demo: None
) -> None:
    signed_in = await _sign_in(app, mobile)
    store, settings = app.state.store, app.state.settings
    results = await asyncio.gather(
        *(tokens.refresh(store, settings, signed_in.refresh_token) for _ in range(4)),
        return_exceptions=True,
    )
    grants = [result for result in results if isinstance(result, tokens.TokenGrant)]
    refusals = [result for result in results if isinstance(result, tokens.InvalidGrant)]
    assert len(grants) == 1
    assert len(refusals) == 3
    assert not any(isinstance(refusal, tokens.CredentialReuse) for refusal in refusals)
    assert await store.exists(tokens.FAMILY_PREFIX + signed_in.family_id) == 1


async def test_a_request_that_arrived_during_the_rotation_is_a_loser_not_a_replay(
    app: Any, mobile: httpx.AsyncClient, demo: None
) -> None:
    """What tells the race loser from a replay is whether it reached us before the rotation
    was done, not when it got its turn at the store (which the scheduler decides)."""
    signed_in = await _sign_in(app, mobile)
    store, settings = app.state.store, app.state.settings
    before = time.time()
    winner = await tokens.refresh(store, settings, signed_in.refresh_token)
    with pytest.raises(tokens.InvalidGrant) as late_loser:
        await tokens.refresh(store, settings, signed_in.refresh_token, received_at=before)
    assert not isinstance(late_loser.value, tokens.CredentialReuse)
    assert await _me_email(mobile, winner.access_token) == CUSTOMER

    with pytest.raises(tokens.CredentialReuse) as replay:
        await tokens.refresh(store, settings, signed_in.refresh_token)
    assert replay.value.family_id == signed_in.family_id
    assert replay.value.user_id == signed_in.user_id
    _assert_invalid_token(await _me(mobile, winner.access_token))


async def test_revoke_all_for_user_kills_every_family_of_that_person_only(
    app: Any, mobile: httpx.AsyncClient, demo: None
) -> None:
    phone = await _sign_in(app, mobile)
    tablet = await _sign_in(app, mobile)
    rotated = (await app_refresh(mobile, tablet.refresh_token)).json()
    neighbour = await _sign_in(app, mobile, "customer2@example.com")

    assert await tokens.revoke_all_for_user(app.state.store, phone.user_id) == 2

    for access_token in (phone.access_token, tablet.access_token, rotated["access_token"]):
        _assert_invalid_token(await _me(mobile, access_token))
    for refresh_token in (phone.refresh_token, rotated["refresh_token"]):
        _assert_invalid_grant(await app_refresh(mobile, refresh_token))
    assert await _me_email(mobile, neighbour.access_token) == "customer2@example.com"
    assert await tokens.revoke_all_for_user(app.state.store, phone.user_id) == 0
    # Signing in again after "sign out everywhere" starts a fresh, working family.
    fresh = await _sign_in(app, mobile)
    assert await _me_email(mobile, fresh.access_token) == CUSTOMER


async def test_the_store_holds_no_raw_code_or_token(
    app: Any, mobile: httpx.AsyncClient, demo: None
) -> None:
    code, verifier = await _code(app)
    issued = (await _token(mobile, _exchange_form(code, verifier))).json()
    child = (await app_refresh(mobile, issued["refresh_token"])).json()
    secrets_seen = [code, issued["refresh_token"], child["refresh_token"]]
    store = app.state.store
    dumped: list[str] = []
    async for key in store.scan_iter(match="ocis:mobile:*"):
        dumped.append(key)
        kind = await store.type(key)
        if kind == "string":
            dumped.append(await store.get(key))
        elif kind == "set":
            dumped.extend(await store.smembers(key))
    assert any(key.startswith(tokens.REFRESH_PREFIX) for key in dumped)
    for secret in secrets_seen:
        assert not any(secret in entry for entry in dumped)


# --- signing out of the app ------------------------------------------------------------------


async def test_the_app_signs_out_with_its_access_token_and_only_that_sign_in_ends(
    app: Any, mobile: httpx.AsyncClient, demo: None
) -> None:
    phone = await _sign_in(app, mobile)
    tablet = await _sign_in(app, mobile)
    response = await mobile.post(
        "/auth/logout", headers={"authorization": f"Bearer {phone.access_token}"}
    )
    assert response.status_code == 204
    assert response.headers["cache-control"] == "no-store"
    _assert_invalid_token(await _me(mobile, phone.access_token))
    _assert_invalid_grant(await app_refresh(mobile, phone.refresh_token))
    assert await _me_email(mobile, tablet.access_token) == CUSTOMER
    # Both app sign-ins are on record (P04); the ended one says so.
    records = await SignInSession.filter(method="app:code").order_by("created_at")
    assert [record.revoked_at is not None for record in records] == [True, False]


@pytest.mark.parametrize("encoding", ["form", "json"])
async def test_the_app_signs_out_with_its_refresh_token_once_the_access_token_expired(
    app: Any, mobile: httpx.AsyncClient, demo: None, encoding: str
) -> None:
    phone = await _sign_in(app, mobile)
    body = {"refresh_token": phone.refresh_token}
    sent = {"data": body} if encoding == "form" else {"json": body}
    response = await mobile.post("/auth/logout", **sent)  # type: ignore[arg-type]
    assert response.status_code == 204
    _assert_invalid_grant(await app_refresh(mobile, phone.refresh_token))
    _assert_invalid_token(await _me(mobile, phone.access_token))
    assert not await tokens.revoke_family(app.state.store, phone.family_id)


async def test_an_unknown_or_forged_token_signs_nothing_out_and_says_nothing(
    app: Any, mobile: httpx.AsyncClient, demo: None
) -> None:
    phone = await _sign_in(app, mobile)
    for attempt in (
        {"headers": {"authorization": "Bearer not-a-token"}},
        {"headers": {"authorization": f"Bearer {phone.access_token[:-4]}AAAA"}},
        {"data": {"refresh_token": "never-issued-" + "x" * 30}},
    ):
        response = await mobile.post("/auth/logout", **attempt)  # type: ignore[arg-type]
        assert response.status_code == 204
    assert await _me_email(mobile, phone.access_token) == CUSTOMER
    assert (await app_refresh(mobile, phone.refresh_token)).status_code == 200


async def test_an_expired_access_token_still_signs_its_own_app_sign_in_out(
    app: Any, mobile: httpx.AsyncClient, demo: None
) -> None:
    phone = await _sign_in(app, mobile)
    settings: config.Settings = app.state.settings
    expired = tokens.issue_access_token(
        settings, phone.user_id, phone.family_id, CLIENT_ID, now=time.time() - 3600
    )
    _assert_invalid_token(await _me(mobile, expired))
    response = await mobile.post("/auth/logout", headers={"authorization": f"Bearer {expired}"})
    assert response.status_code == 204
    _assert_invalid_grant(await app_refresh(mobile, phone.refresh_token))


async def test_a_refresh_token_beside_a_stale_bearer_header_is_honoured(
    app: Any, mobile: httpx.AsyncClient, demo: None
) -> None:
    phone = await _sign_in(app, mobile)
    response = await mobile.post(
        "/auth/logout",
        headers={"authorization": "Bearer not-a-token"},
        data={"refresh_token": phone.refresh_token},
    )
    assert response.status_code == 204
    _assert_invalid_grant(await app_refresh(mobile, phone.refresh_token))
