"""The one body parser of the endpoints: a JSON object or a form, as fields."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from auth.csrf import is_json


async def _fields(request: Request) -> list[tuple[str, Any]] | None:
    try:
        if is_json(request.headers.get("content-type")):
            body = await request.json()
            return list(body.items()) if isinstance(body, dict) else None
        return list((await request.form()).multi_items())
    except ValueError:
        return None


async def read_body(request: Request) -> dict[str, Any] | None:
    """The body's fields (a repeated form field: its last value); None unless an object."""
    fields = await _fields(request)
    return None if fields is None else dict(fields)


async def read_params(request: Request) -> dict[str, str] | None:
    """OAuth-style parameters: RFC 6749 3.2 allows each at most once, and only text."""
    fields = await _fields(request)
    if fields is None:
        return None
    params: dict[str, str] = {}
    for name, value in fields:
        if not isinstance(value, str) or name in params:
            return None
        params[name] = value
    return params
