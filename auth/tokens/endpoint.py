"""The token endpoint (`POST /auth/token`): the two grants the app uses, and whose they are."""

from __future__ import annotations

import json
from collections.abc import Mapping

from redis.asyncio import Redis

import settings as config
from auth.client_info import ClientInfo
from auth.sessions import token_hash
from auth.tokens.codes import exchange_code
from auth.tokens.errors import InvalidRequest, UnsupportedGrantType
from auth.tokens.families import TokenGrant, refresh
from auth.tokens.keyspace import CODE_PREFIX, FAMILY_PREFIX, REFRESH_CLAIM_PREFIX, REFRESH_PREFIX


async def account_of(store: Redis, params: Mapping[str, str]) -> str | None:
    """Whose live code or refresh token a token request presents (for its rate limit), if
    any; reading it consumes nothing. A used or revoked token counts for nobody, so an old
    token cannot be spent to lock its owner's devices out."""
    grant_type = params.get("grant_type")
    if grant_type == "authorization_code":
        raw = await store.get(CODE_PREFIX + token_hash(params.get("code") or ""))
        return str(json.loads(raw)["user_id"]) if raw is not None else None
    if grant_type != "refresh_token":
        return None
    digest = token_hash(params.get("refresh_token") or "")
    raw = await store.get(REFRESH_PREFIX + digest)
    if raw is None:
        return None
    record = json.loads(raw)
    async with store.pipeline(transaction=False) as pipe:
        pipe.exists(REFRESH_CLAIM_PREFIX + digest)
        pipe.exists(FAMILY_PREFIX + record["family_id"])
        used, alive = await pipe.execute()
    return str(record["user_id"]) if alive and not used else None


async def token_request(
    store: Redis,
    settings: config.Settings,
    params: Mapping[str, str],
    *,
    client: ClientInfo | None = None,
    received_at: float | None = None,
) -> TokenGrant:
    """The token endpoint: the authorization_code and refresh_token grants (RFC 6749).

    `client` describes the device, for the sign-in record of a new app sign-in (P04).
    """
    grant_type = params.get("grant_type")
    if grant_type == "authorization_code":
        names = ("code", "code_verifier", "redirect_uri", "client_id")
        values = [params.get(name) or "" for name in names]
        if not all(values):
            raise InvalidRequest
        code, code_verifier, redirect_uri, client_id = values
        return await exchange_code(
            store,
            settings,
            code=code,
            code_verifier=code_verifier,
            redirect_uri=redirect_uri,
            client_id=client_id,
            client=client,
        )
    if grant_type == "refresh_token":
        token = params.get("refresh_token")
        if not token:
            raise InvalidRequest
        return await refresh(
            store,
            settings,
            token,
            client_id=params.get("client_id") or None,
            received_at=received_at,
        )
    if not grant_type:
        raise InvalidRequest
    raise UnsupportedGrantType
