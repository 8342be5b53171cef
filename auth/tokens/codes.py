"""One-time codes: how the app's sign-in in a browser reaches the app, bound by PKCE S256.

The gateway hands the app a code valid 60 seconds, bound to its registered redirect URI and
its code challenge; exchanging it with the verifier starts a refresh family.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
import time
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from redis.asyncio import Redis

import settings as config
from auth.client_info import ClientInfo
from auth.redirects import MOBILE_REDIRECTS
from auth.sessions import APP_METHOD_PREFIX, record_app_sign_in, token_hash
from auth.tokens.access import live_user
from auth.tokens.errors import CredentialReuse, InvalidGrant
from auth.tokens.families import TokenGrant, revoke_family, start_family
from auth.tokens.keyspace import (
    CODE_PREFIX,
    CODE_REPLAY_MEMORY,
    CODE_TTL,
    CODE_USED_PREFIX,
    MAX_OPAQUE_LENGTH,
    NOT_BEFORE_PREFIX,
    REFRESH_FAMILY_TTL,
    opaque,
)

_CODE_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def is_registered_redirect(client_id: str, redirect_uri: str) -> bool:
    return redirect_uri in MOBILE_REDIRECTS.get(client_id, frozenset())


async def issue_mobile_code(
    store: Redis,
    user_id: UUID | str,
    redirect_uri: str,
    code_challenge: str,
    client_id: str,
    *,
    method: str = "code",
    now: float | None = None,
) -> str:
    """A one-time code for the app, valid 60 seconds, bound to its redirect and PKCE challenge.

    `method` is how the person signed in (e.g. ``oidc:google``), for the sign-in record.
    """
    if not is_registered_redirect(client_id, redirect_uri):
        raise ValueError("unregistered mobile client or redirect URI")
    if not code_challenge or len(code_challenge) > MAX_OPAQUE_LENGTH:
        raise ValueError("a PKCE S256 code challenge is required")
    issued = time.time() if now is None else now
    code = secrets.token_urlsafe(32)
    record = {
        "user_id": str(user_id),
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "code_challenge": code_challenge,
        "issued_at": issued,
        "expires_at": issued + CODE_TTL,
        "method": method,
    }
    await store.set(CODE_PREFIX + token_hash(code), json.dumps(record), ex=CODE_TTL)
    return code


async def _signed_out_since(store: Redis, code_record: Mapping[str, Any]) -> bool:
    """Whether the person signed out everywhere (or was disabled) after this code was issued."""
    not_before = await store.get(NOT_BEFORE_PREFIX + str(code_record["user_id"]))
    return not_before is not None and float(code_record["issued_at"]) <= float(not_before)


def _pkce_matches(code_verifier: str, code_challenge: str) -> bool:
    if not _CODE_VERIFIER.fullmatch(code_verifier):
        return False
    computed: str = create_s256_code_challenge(code_verifier)
    return hmac.compare_digest(computed, code_challenge)


async def exchange_code(
    store: Redis,
    settings: config.Settings,
    *,
    code: str,
    code_verifier: str,
    redirect_uri: str,
    client_id: str,
    client: ClientInfo | None = None,
    now: float | None = None,
) -> TokenGrant:
    """Trade a one-time code and its PKCE verifier for the first tokens of a new family."""
    current = time.time() if now is None else now
    if not opaque(code):
        raise InvalidGrant
    digest = token_hash(code)
    # GETDEL: of any number of callers, exactly one receives the code; a wrong verifier
    # burns it too, so nobody gets a second guess.
    raw = await store.getdel(CODE_PREFIX + digest)
    if raw is None:
        used = await store.get(CODE_USED_PREFIX + digest)
        if used is not None:
            # A replayed code revokes what it issued (RFC 6749 4.1.2).
            first = json.loads(used)
            if await revoke_family(store, first["family_id"]):
                raise CredentialReuse(
                    "authorization_code.reuse", first["family_id"], UUID(first["user_id"])
                )
        raise InvalidGrant
    record = json.loads(raw)
    if (
        record["expires_at"] <= current
        or record["client_id"] != client_id
        or record["redirect_uri"] != redirect_uri
        or not _pkce_matches(code_verifier, record["code_challenge"])
    ):
        raise InvalidGrant
    if await _signed_out_since(store, record):
        raise InvalidGrant  # issued before the person signed out everywhere
    user = await live_user(record["user_id"])
    if user is None:
        raise InvalidGrant
    grant = await start_family(store, settings, user.id, client_id, current)
    if await _signed_out_since(store, record):
        # Signed out everywhere while this family was starting: it must not outlive that.
        await revoke_family(store, grant.family_id)
        raise InvalidGrant
    if client is not None:
        method = APP_METHOD_PREFIX + str(record.get("method", "app"))
        await record_app_sign_in(user.id, grant.family_id, client, REFRESH_FAMILY_TTL, method)
    marker = json.dumps({"family_id": grant.family_id, "user_id": str(user.id)})
    await store.set(CODE_USED_PREFIX + digest, marker, ex=CODE_REPLAY_MEMORY)
    return grant
