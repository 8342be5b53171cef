"""CSRF defence: cookie-authenticated requests, and forms posted to us (login CSRF)."""

from __future__ import annotations

from urllib.parse import urlsplit

JSON_MEDIA_TYPES = frozenset({"application/json", "application/graphql-response+json"})


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def origin_allowed(origin: str, allowed_origins: frozenset[str]) -> bool:
    """Whether an Origin (or a Referer's origin) is our own or an allowed one."""
    return origin.rstrip("/").lower() in {allowed.lower() for allowed in allowed_origins}


def cookie_request_allowed(
    *,
    method: str,
    content_type: str | None,
    origin: str | None,
    referer: str | None,
    allowed_origins: frozenset[str],
) -> bool:
    """A cookie may authenticate only a JSON POST from our own origin or an allowed one.

    A plain HTML form cannot send a JSON content type, and a cross-origin page cannot
    forge the Origin header a browser attaches.
    """
    if method != "POST" or not is_json(content_type):
        return False
    source = origin if origin and origin != "null" else None
    if source is None and referer:
        source = _origin_of(referer)
    if source is None:
        return False
    return origin_allowed(source, allowed_origins)


def is_json(content_type: str | None) -> bool:
    """Whether a body is JSON, which a plain HTML form cannot send."""
    return (content_type or "").split(";", 1)[0].strip().lower() in JSON_MEDIA_TYPES


def form_post_allowed(
    *, origin: str | None, referer: str | None, allowed_origins: frozenset[str]
) -> bool:
    """A form may be posted only from our own pages: its Origin, or without an Origin its
    Referer's origin, is our own or an allowed one (no login CSRF).

    Any site can make a browser post a form here. An Origin the browser sent is its word on
    the sending page, so a `null` one (a sandboxed frame, a privacy-sensitive redirect) is
    not overridden by a Referer; neither header at all proves nothing.
    """
    if origin is not None:
        return origin != "null" and origin_allowed(origin, allowed_origins)
    source = _origin_of(referer) if referer else None
    return source is not None and origin_allowed(source, allowed_origins)
