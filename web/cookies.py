"""The gateway's cookies: HttpOnly, SameSite (Lax; the device cookie Strict), whole site; `__Host-`
and Secure over https."""

from __future__ import annotations

from typing import Literal

from starlette.requests import Request
from starlette.responses import Response

import settings as config
from auth import device_cookies
from auth.sessions import SESSION_COOKIE

SESSION = SESSION_COOKIE
LOGIN = "ocis_oidc"  # binds a provider sign-in's transaction to the browser that started it
PENDING = "ocis_pending"  # binds a pending sign-up or link step to this browser
DEVICE = "ocis_device"  # this browser signed in to an account before (auth/device_cookies.py)


def cookie_name(settings: config.Settings, base: str = SESSION) -> str:
    return f"__Host-{base}" if settings.secure_cookies else base


def read_cookie(request: Request, settings: config.Settings, base: str = SESSION) -> str | None:
    return request.cookies.get(cookie_name(settings, base))


def set_cookie(
    response: Response,
    settings: config.Settings,
    base: str,
    value: str,
    max_age: int,
    samesite: Literal["lax", "strict"] = "lax",
) -> None:
    response.set_cookie(
        cookie_name(settings, base),
        value,
        max_age=max_age,
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite=samesite,
    )


def set_session_cookie(response: Response, settings: config.Settings, token: str) -> None:
    set_cookie(response, settings, SESSION, token, settings.session_ttl_seconds)


def set_device_cookie(response: Response, settings: config.Settings, value: str) -> None:
    # Strict: only our own sign-in page, never a request another site starts, presents it.
    set_cookie(
        response, settings, DEVICE, value, device_cookies.LIFETIME_SECONDS, samesite="strict"
    )


def forget_cookie(response: Response, settings: config.Settings, base: str) -> None:
    # A __Host- cookie is only replaced by one with the same Secure attribute.
    response.delete_cookie(
        cookie_name(settings, base), path="/", secure=settings.secure_cookies, httponly=True
    )
