"""What the endpoints read from a request besides its body: settings, store, caller's client."""

from __future__ import annotations

from redis.asyncio import Redis
from starlette.requests import HTTPConnection, Request

import settings as config
from auth.client_info import ClientInfo, describe_client
from auth.client_ip import client_ip
from auth.csrf import cookie_request_allowed
from auth.visitor_ids import VisitorIds, cookie_name


def settings_of(request: HTTPConnection) -> config.Settings:
    settings: config.Settings = request.app.state.settings
    return settings


def store_of(request: HTTPConnection) -> Redis:
    store: Redis = request.app.state.store
    return store


def request_id_of(request: HTTPConnection) -> str:
    request_id: str = request.scope["state"]["request_id"]
    return request_id


def ip_of(request: HTTPConnection) -> str | None:
    """The client's IP: X-Forwarded-For is believed from OCIS_TRUSTED_PROXIES only."""
    forwarded_for = ", ".join(request.headers.getlist("x-forwarded-for")) or None
    peer = request.client.host if request.client else None
    return client_ip(peer, forwarded_for, settings_of(request).trusted_proxies)


def client_of(
    request: HTTPConnection, *, referrer: str | None = None, time_zone: str | None = None
) -> ClientInfo:
    """The browser or app a sign-in record describes."""
    return describe_client(
        ip_address=ip_of(request),
        user_agent=request.headers.get("user-agent"),
        referrer=referrer,
        time_zone=time_zone,
    )


def same_site_json(request: Request) -> bool:
    """The CSRF rule for cookie-authenticated requests (auth/csrf.py)."""
    return cookie_request_allowed(
        method=request.method,
        content_type=request.headers.get("content-type"),
        origin=request.headers.get("origin"),
        referer=request.headers.get("referer"),
        allowed_origins=settings_of(request).allowed_origins,
    )


def visitor_ids_of(request: HTTPConnection) -> VisitorIds:
    """Consent ids, checked under the current master key and the previous ones."""
    settings = settings_of(request)
    return VisitorIds((settings.master_key, *settings.previous_master_keys))


def consent_cookie_of(request: HTTPConnection) -> str | None:
    """The anonymous visitor's consent id the browser keeps (auth/visitor_ids.py)."""
    return request.cookies.get(cookie_name(secure=settings_of(request).secure_cookies))
