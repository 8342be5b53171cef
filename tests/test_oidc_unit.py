"""ID-token checks and redirect rules, with tokens minted here (the flow is tested end to end
against a real provider in tests/test_federated_sign_in.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from joserfc import jws, jwt
from joserfc.jwk import RSAKey

from auth.oidc import (
    Provider,
    SignInRefused,
    UnknownSigningKey,
    email_is_vouched,
    expected_issuers,
    verify_id_token,
)
from auth.redirects import mobile_intent, same_origin_path

ISSUER = "https://issuer.example.com"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS256"})
JWKS = {"keys": [KEY.as_dict(private=False)]}
METADATA = {"issuer": ISSUER, "id_token_signing_alg_values_supported": ["RS256"]}
GENERIC = Provider("acme", "generic", ISSUER, "ocis-client", "secret")


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "sub": "user-1",
        "aud": "ocis-client",
        "exp": now + 300,
        "iat": now,
        "nonce": "n-1",
        "email": "a@example.com",
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def mint(payload: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    """RS256 with the provider's real key, any header at all (libraries refuse odd ones)."""
    head = b64(json.dumps({"alg": "RS256", "kid": "k1", **(header or {})}).encode())
    body = b64(json.dumps(payload).encode())
    private = KEY.private_key
    assert isinstance(private, rsa.RSAPrivateKey)
    signature = private.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{body}.{b64(signature)}"


def verify(token: str, provider: Provider = GENERIC, **kwargs: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"metadata": METADATA, "jwks": JWKS, "nonce": "n-1"}
    options.update(kwargs)
    return verify_id_token(token, provider=provider, **options)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_a_genuine_token_passes() -> None:
    assert verify(mint(claims()))["sub"] == "user-1"


@pytest.mark.parametrize(
    "overrides",
    [
        {"nonce": "other"},
        {"nonce": None},
        {"aud": "someone-else"},
        {"aud": ["someone-else"], "azp": "ocis-client"},
        {"aud": ["ocis-client", "other"]},
        {"aud": "ocis-client", "azp": "other"},
        {"iss": "https://evil.example.com"},
        {"sub": None},
    ],
    ids=lambda value: ",".join(f"{k}={v}" for k, v in value.items()),
)
def test_claims_that_do_not_fit_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(SignInRefused):
        verify(mint(claims(**overrides)))


# The clock is read when the test runs: ids made from it would differ between xdist workers.
@pytest.mark.parametrize(
    ("claim", "offset"), [("exp", -3600), ("iat", 3600)], ids=["expired", "issued-later"]
)
def test_a_token_outside_its_time_is_refused(claim: str, offset: int) -> None:
    with pytest.raises(SignInRefused):
        verify(mint(claims(**{claim: int(time.time()) + offset})))


def test_alg_none_is_refused() -> None:
    header = b64(json.dumps({"alg": "none", "kid": "k1"}).encode())
    token = f"{header}.{b64(json.dumps(claims()).encode())}."
    with pytest.raises(SignInRefused, match="algorithm"):
        verify(token)


@pytest.mark.parametrize("encoding", [serialization.Encoding.PEM, serialization.Encoding.DER])
def test_hs256_signed_with_the_public_key_is_refused(encoding: serialization.Encoding) -> None:
    public = KEY.as_dict(private=False)
    pem = RSAKey.import_key(public).public_key.public_bytes(
        encoding, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    head = b64(json.dumps({"alg": "HS256", "kid": "k1"}).encode())
    body = b64(json.dumps(claims()).encode())
    mac = hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    token = f"{head}.{body}.{b64(mac)}"
    with pytest.raises(SignInRefused, match="algorithm"):
        verify(token)


def test_a_forged_signature_is_refused() -> None:
    head, _, signature = mint(claims()).split(".")
    forged = b64(json.dumps(claims(sub="admin")).encode())
    with pytest.raises(SignInRefused, match="signature"):
        verify(f"{head}.{forged}.{signature}")


@pytest.mark.parametrize("header", ["jwk", "jku", "x5u", "x5c", "crit"])
def test_headers_that_bring_their_own_keys_are_refused(header: str) -> None:
    value: Any = ["exp"] if header == "crit" else "https://evil.example.com/keys"
    if header == "jwk":
        value = KEY.as_dict(private=False)
    token = mint(claims(), {header: value})
    with pytest.raises(SignInRefused, match="header"):
        verify(token)


def test_an_unknown_kid_asks_for_a_key_refresh() -> None:
    other = RSAKey.generate_key(2048, parameters={"kid": "k2"})
    token = jwt.encode({"alg": "RS256", "kid": "k2"}, claims(), other)
    assert jws.extract_compact(token.encode()).headers()["kid"] == "k2"
    with pytest.raises(UnknownSigningKey):
        verify(token)


def test_an_oversized_token_is_refused_before_parsing() -> None:
    with pytest.raises(SignInRefused, match="too large"):
        verify(mint(claims(padding="x" * 20_000)))


MICROSOFT_TEMPLATE = "https://login.microsoftonline.com/{tenantid}/v2.0"
TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"


def test_microsoft_issuer_is_resolved_against_tid() -> None:
    provider = Provider("microsoft", "microsoft", MICROSOFT_TEMPLATE, "ocis-client", "s")
    issuer = MICROSOFT_TEMPLATE.replace("{tenantid}", TENANT)
    assert expected_issuers(provider, MICROSOFT_TEMPLATE, {"tid": TENANT}) == [issuer]
    with pytest.raises(SignInRefused):
        expected_issuers(provider, MICROSOFT_TEMPLATE, {})
    with pytest.raises(SignInRefused):
        expected_issuers(provider, MICROSOFT_TEMPLATE, {"tid": "{tenantid}"})
    allow_listed = Provider(
        "microsoft", "microsoft", MICROSOFT_TEMPLATE, "c", "s", frozenset({"other"})
    )
    with pytest.raises(SignInRefused, match="allow-list"):
        expected_issuers(allow_listed, MICROSOFT_TEMPLATE, {"tid": TENANT})
    metadata = {"issuer": MICROSOFT_TEMPLATE, "id_token_signing_alg_values_supported": ["RS256"]}
    mismatched = mint(claims(iss=issuer, tid="another-tenant"))
    with pytest.raises(SignInRefused):
        verify(mismatched, provider, metadata=metadata)
    v1 = mint(claims(iss=f"https://sts.windows.net/{TENANT}/", tid=TENANT))
    with pytest.raises(SignInRefused):
        verify(v1, provider, metadata=metadata)
    assert verify(mint(claims(iss=issuer, tid=TENANT)), provider, metadata=metadata)["tid"]


def test_a_microsoft_v1_issuer_is_refused_even_where_it_is_the_configured_one() -> None:
    """An operator who configured the v1 endpoint still gets no v1 token accepted."""
    v1_template = "https://sts.windows.net/{tenantid}/"
    provider = Provider("microsoft", "microsoft", v1_template, "ocis-client", "s")
    metadata = {"issuer": v1_template, "id_token_signing_alg_values_supported": ["RS256"]}
    token = mint(claims(iss=f"https://sts.windows.net/{TENANT}/", tid=TENANT))
    with pytest.raises(SignInRefused, match="v1 issuer"):
        verify(token, provider, metadata=metadata)


def test_google_accepts_both_issuer_spellings() -> None:
    provider = Provider("google", "google", "https://accounts.google.com", "ocis-client", "s")
    metadata = {"issuer": "https://accounts.google.com"}
    for issuer in ("https://accounts.google.com", "accounts.google.com"):
        assert verify(mint(claims(iss=issuer)), provider, metadata=metadata)["iss"] == issuer


@pytest.mark.parametrize(
    ("kind", "claims_", "vouched"),
    [
        ("google", {"email": "a@example.com", "email_verified": True}, True),
        ("google", {"email": "a@example.com", "email_verified": "true"}, False),
        ("google", {"email": "a@example.com"}, False),
        ("microsoft", {"email": "a@example.com", "email_verified": True}, False),
        ("microsoft", {"email": "a@example.com", "xms_edov": True}, True),
        ("linkedin", {"email": "a@example.com", "email_verified": True}, True),
        ("generic", {"email_verified": True}, False),
    ],
)
def test_only_an_explicit_word_vouches_for_an_email(
    kind: Any, claims_: dict[str, Any], vouched: bool
) -> None:
    assert email_is_vouched(kind, claims_) is vouched


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/tickets?id=1", "/tickets?id=1"),
        ("/", "/"),
        (None, "/"),
        ("https://evil.example.com/", "/"),
        ("//evil.example.com/", "/"),
        ("/\\evil.example.com", "/"),
        ("javascript:alert(1)", "/"),
        ("tickets", "/"),
        ("/a\nb", "/"),
    ],
)
def test_next_only_accepts_same_origin_paths(value: str | None, expected: str) -> None:
    assert same_origin_path(value) == expected


def test_mobile_sign_in_needs_the_registered_redirect_and_s256() -> None:
    good = {
        "client_id": "ocis-mobile",
        "redirect_uri": "ocis://auth/callback",
        "code_challenge": "x" * 43,
        "code_challenge_method": "S256",
    }
    assert mobile_intent(good) == {
        "client": "mobile",
        "client_id": "ocis-mobile",
        "redirect_uri": "ocis://auth/callback",
        "code_challenge": "x" * 43,
    }
    assert mobile_intent({**good, "redirect_uri": "ocis://auth/callback/evil"}) is None
    assert mobile_intent({**good, "code_challenge_method": "plain"}) is None
    assert mobile_intent({**good, "client_id": "other"}) is None
