"""Where the gateway may send a browser after signing in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, TypedDict
from urllib.parse import urlsplit

DEFAULT_NEXT = "/"


class MobileIntent(TypedDict):
    """The mobile app's part of a sign-in, checked against its registration."""

    client: Literal["mobile"]
    client_id: str
    redirect_uri: str
    code_challenge: str


class Intent(TypedDict, total=False):
    """What a sign-in goes on to once the provider answers, kept with its transaction."""

    client: Literal["web", "mobile"]
    next: str  # the web client's page on our origin
    link_token: str  # a pending link that signing in here also proves
    link_user_id: str  # the signed-in account that started linking
    client_id: str  # the mobile client's, as in MobileIntent
    redirect_uri: str
    code_challenge: str


def same_origin_path(value: str | None) -> str:
    """A path on our own origin, or "/": absolute, scheme-relative and odd URLs are ignored."""
    if not value or len(value) > 2048 or not value.startswith("/"):
        return DEFAULT_NEXT
    if value.startswith(("//", "/\\")) or "\\" in value or any(ord(c) < 32 for c in value):
        return DEFAULT_NEXT
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return DEFAULT_NEXT
    return value


# The mobile app's registered client and redirect URIs (exact match, RFC 9700 2.1).
MOBILE_REDIRECTS: dict[str, frozenset[str]] = {"ocis-mobile": frozenset({"ocis://auth/callback"})}


def mobile_intent(params: Mapping[str, str]) -> MobileIntent | None:
    """The mobile app's part of a sign-in: its client, exact redirect URI and PKCE challenge."""
    client_id = params.get("client_id", "")
    redirect_uri = params.get("redirect_uri", "")
    challenge = params.get("code_challenge", "")
    if redirect_uri not in MOBILE_REDIRECTS.get(client_id, frozenset()):
        return None
    # An S256 challenge is a base64url SHA-256: exactly 43 characters.
    if params.get("code_challenge_method") != "S256" or len(challenge) != 43:
        return None
    return {
        "client": "mobile",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "code_challenge": challenge,
    }
