"""The ES256 signing keys of access tokens, and the JWKS that publishes their public halves."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from jose.backends.cryptography_backend import CryptographyECKey
from joserfc.jwk import ECKey

import settings as config

ALGORITHM = "ES256"

_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    private_key: ec.EllipticCurvePrivateKey
    public_jwk: dict[str, str]
    verifier: Any  # jose's key object for the public half


@functools.lru_cache(maxsize=8)
def signing_key(master_key: bytes) -> SigningKey:
    """The ES256 key every process derives alike from the master key (no key table)."""
    material = HKDF(
        algorithm=hashes.SHA256(), length=48, salt=None, info=b"ocis/mobile-access-token/es256"
    ).derive(master_key)
    # 64 extra bits before the reduction make the bias negligible (FIPS 186-5 A.2.1).
    scalar = int.from_bytes(material, "big") % (_P256_ORDER - 1) + 1
    private_key = ec.derive_private_key(scalar, ec.SECP256R1())
    public = ECKey.import_key(private_key.public_key())
    coordinates = public.as_dict()
    kid = public.thumbprint()  # RFC 7638
    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "x": str(coordinates["x"]),
        "y": str(coordinates["y"]),
        "kid": kid,
        "use": "sig",
        "alg": ALGORITHM,
    }
    verifier = CryptographyECKey(private_key.public_key(), ALGORITHM)
    return SigningKey(kid, private_key, jwk, verifier)


def verification_keys(settings: config.Settings) -> dict[str, SigningKey]:
    """Our keys by kid: the current one, and those of previous master keys if configured."""
    # Tokens signed before a master-key rotation stay valid until they expire. (getattr:
    # this module does not depend on the key-rotation settings being present.)
    previous = getattr(settings, "previous_master_keys", ())
    masters = [settings.master_key, *(key for key in previous if isinstance(key, bytes))]
    return {key.kid: key for key in map(signing_key, masters)}


def jwks(settings: config.Settings) -> dict[str, list[dict[str, str]]]:
    """The public keys, as `GET /.well-known/jwks.json` publishes them."""
    return {"keys": [key.public_jwk for key in verification_keys(settings).values()]}
