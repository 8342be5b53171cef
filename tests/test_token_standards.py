"""Key ids (RFC 7638) and PKCE S256 (RFC 7636) stay what they were before Authlib computed them."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import httpx

from auth import tokens
from auth.tokens.signing import SigningKey
from models import User, crypto

CLIENT_ID = "ocis-mobile"
REDIRECT_URI = "ocis://auth/callback"
# RFC 7636 Appendix B.
RFC_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
# Issued tokens and published key sets carry these: a changed kid would orphan them.
KNOWN_KIDS = {
    b"k" * 32: "i-SFpTWs0qEY10c-XMS0RmA_ZJggtJVnD-8q_Gwj7Nw",
    b"a" * 32: "Ad59zTGOaTsQhcPgkc9zaKjc6L0bXaqlMZYfMa3g-7s",
}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _hand_made_kid(key: SigningKey) -> str:
    """The RFC 7638 thumbprint as the key id was computed before Authlib's helper."""
    numbers = key.private_key.public_key().public_numbers()
    x, y = _b64(numbers.x.to_bytes(32, "big")), _b64(numbers.y.to_bytes(32, "big"))
    members = json.dumps(
        {"crv": "P-256", "kty": "EC", "x": x, "y": y}, separators=(",", ":"), sort_keys=True
    )
    return _b64(hashlib.sha256(members.encode()).digest())


def test_known_master_keys_keep_their_kids() -> None:
    assert {master: tokens.signing_key(master).kid for master in KNOWN_KIDS} == KNOWN_KIDS


def test_every_kid_and_jwk_equals_the_hand_made_rfc_7638_thumbprint() -> None:
    # Among these, coordinates with a leading zero byte (keys 197, 328, 364) must stay padded.
    short = 0
    for index in range(400):
        key = tokens.signing_key(b"%032d" % index)
        numbers = key.private_key.public_key().public_numbers()
        short += min(numbers.x, numbers.y) < 2**248
        assert key.kid == _hand_made_kid(key)
        assert key.public_jwk == {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64(numbers.x.to_bytes(32, "big")),
            "y": _b64(numbers.y.to_bytes(32, "big")),
            "kid": key.kid,
            "use": "sig",
            "alg": "ES256",
        }
    assert short == 3


async def test_the_rfc_7636_example_verifier_redeems_its_challenge(
    app: Any, client: httpx.AsyncClient, demo: None
) -> None:
    user = await User.get(email_index=crypto.blind_index("customer@example.com"))
    form = {
        "grant_type": "authorization_code",
        "redirect_uri": REDIRECT_URI,
        "client_id": CLIENT_ID,
    }
    wrong = await tokens.issue_mobile_code(
        app.state.store, user.id, REDIRECT_URI, RFC_CHALLENGE, CLIENT_ID
    )
    refused = await client.post(
        "/auth/token", data={**form, "code": wrong, "code_verifier": RFC_VERIFIER[:-1] + "K"}
    )
    assert refused.status_code == 400
    assert refused.json() == {"error": "invalid_grant"}
    code = await tokens.issue_mobile_code(
        app.state.store, user.id, REDIRECT_URI, RFC_CHALLENGE, CLIENT_ID
    )
    accepted = await client.post(
        "/auth/token", data={**form, "code": code, "code_verifier": RFC_VERIFIER}
    )
    assert accepted.status_code == 200, accepted.text
    assert set(accepted.json()) == {"access_token", "token_type", "expires_in", "refresh_token"}
