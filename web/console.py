"""The staff console: GraphiQL built from console/ (`make console`), its sign-in page and assets."""

from __future__ import annotations

import asyncio
from html import escape
from pathlib import Path
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from auth.oidc import Gateway
from auth.redirects import same_origin_path
from auth.sessions import resolve_session
from web.cookies import read_cookie
from web.requests import settings_of, store_of

CONSOLE_PATH = "/console"
SIGN_IN_PATH = "/console/sign-in"
NOT_BUILT = "console not built: run make console"
FILES = Path(__file__).resolve().parent / "console_files"
SIGN_IN_PAGE = (FILES / "sign-in.html").read_text(encoding="utf-8")
SIGN_IN_SCRIPT = (FILES / "sign-in.js").read_bytes()
SIGN_IN_STYLE = (FILES / "sign-in.css").read_bytes()

# GraphiQL's stylesheet carries its fonts and icons as data: URLs, and Monaco writes <style>
# elements at run time (hence 'unsafe-inline' for styles, and for styles only). Its workers are
# files under /console/assets, so worker-src needs no blob:.
CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "font-src 'self' data:; img-src 'self' data:; worker-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SIGN_IN_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# Vite names every built asset after its content: a changed file is a new URL.
IMMUTABLE = "public, max-age=31536000, immutable"

FORBIDDEN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>OCIS console: staff only</title>
<link rel="stylesheet" href="/console/sign-in.css"></head>
<body><main><h1>403: the console is for staff</h1>
<p>This account may not use the OCIS console.
<a href="/console/sign-in?next=%2Fconsole">Sign in as someone else</a>.</p></main></body></html>
"""


def _page(body: str, status_code: int, policy: str) -> Response:
    return HTMLResponse(
        body,
        status_code=status_code,
        headers={"content-security-policy": policy, "cache-control": "no-store"},
    )


async def console_page(request: Request) -> Response:
    """GraphiQL for staff; anonymous visitors go to sign in and back, customers get 403."""
    settings = settings_of(request)
    index = await asyncio.to_thread(_built_index, settings.console_dist)
    if index is None:
        return PlainTextResponse(NOT_BUILT, status_code=503, headers={"cache-control": "no-store"})
    request_id = request.scope.get("state", {}).get("request_id")
    principal = await resolve_session(store_of(request), read_cookie(request, settings), request_id)
    if principal.user_id is None:
        return RedirectResponse(f"{SIGN_IN_PATH}?next={quote(CONSOLE_PATH, safe='')}", 303)
    if not principal.is_staff:
        return _page(FORBIDDEN_PAGE, 403, SIGN_IN_CSP)
    return _page(index, 200, CONSOLE_CSP)


def _built_index(dist: Path) -> str | None:
    try:
        return (dist / "index.html").read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _provider_links(gateway: Gateway, next_path: str) -> str:
    links = [
        f'<li><a href="/auth/login/{quote(name, safe="")}?next={quote(next_path, safe="")}">'
        f"Sign in with {escape(name.capitalize())}</a></li>"
        for name in sorted(gateway.providers)
    ]
    return f'<ul class="providers">{"".join(links)}</ul>' if links else ""


async def console_sign_in(request: Request) -> Response:
    """A self-hosted sign-in page: a password form (sign-in.js) and every configured provider."""
    next_path = same_origin_path(request.query_params.get("next") or CONSOLE_PATH)
    body = SIGN_IN_PAGE.replace("{next}", escape(next_path, quote=True)).replace(
        "{providers}", _provider_links(request.app.state.gateway, next_path)
    )
    return _page(body, 200, SIGN_IN_CSP)


def _file(content: bytes, media_type: str) -> Response:
    return Response(content, media_type=media_type, headers={"cache-control": "no-cache"})


async def sign_in_script(request: Request) -> Response:
    return _file(SIGN_IN_SCRIPT, "text/javascript")


async def sign_in_style(request: Request) -> Response:
    return _file(SIGN_IN_STYLE, "text/css")


class ConsoleAssets:
    """The built files under /console/assets, long-cached; the build is found through the
    settings of the app that serves them, so a rebuild needs no restart."""

    def __init__(self) -> None:
        self.served: dict[Path, StaticFiles] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        directory: Path = scope["app"].state.settings.console_dist / "assets"
        if not await asyncio.to_thread(directory.is_dir):
            await PlainTextResponse("Not Found", status_code=404)(scope, receive, send)
            return
        files = self.served.get(directory)
        if files is None:
            files = self.served[directory] = StaticFiles(directory=directory, check_dir=False)

        async def send_cached(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (200, 304):
                headers = [*message.get("headers", []), (b"cache-control", IMMUTABLE.encode())]
                message = {**message, "headers": headers}
            await send(message)

        await files(scope, receive, send_cached)
