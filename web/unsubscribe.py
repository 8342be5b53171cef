"""One-click unsubscribe from marketing email (RFC 8058), without a session.

`GET /unsubscribe/{token}` only shows a page whose form posts back; `POST` (the mail client's
`List-Unsubscribe=One-Click`, or that form) withdraws the consent. The signed token in the
path is what authorises it: no cookie is read, so the cookie CSRF rule (auth/csrf.py, which
guards /graphql in web/callers.py) does not apply, and a mail client's cross-site POST must
work. The pages load nothing and run nothing (their CSP forbids it), and show no personal
data; the route is logged by its template, never its path.
"""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from auth import rate_limit
from resolvers import marketing
from web.bodies import read_body
from web.requests import ip_of, request_id_of, settings_of, store_of

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="robots" content="noindex">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title></head>
<body>
<h1>{title}</h1>
{content}
</body>
</html>
"""

_CONFIRM = """<p>Stop marketing email from OCIS? Mail about your account and your tickets
keeps coming; only marketing stops.</p>
<form method="post">
<input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe</button>
</form>
"""

_DONE = """<p>You will get no more marketing email from OCIS. Your choice is recorded in your
consent settings, where you can change it again after signing in (under Privacy).</p>
"""

_INVALID = """<p>This unsubscribe link is not valid: it was changed, it is older than 90 days,
or its account is gone. Nothing was changed.</p>
<p>To stop marketing email, sign in to OCIS and withdraw it under Privacy, or write to
{contact}.</p>
"""

_NOT_ONE_CLICK = """<p>Nothing was changed: an unsubscribe is confirmed with the button of
this link's page (or a mail client's one-click request).</p>
"""

_TOO_MANY = """<p>Too many attempts. Nothing was changed; try again in a while.</p>"""


def _page(title: str, content: str, status_code: int = 200, **headers: str) -> Response:
    return HTMLResponse(
        _PAGE.format(title=html.escape(title), content=content),
        status_code=status_code,
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY, **headers},
    )


def _invalid(request: Request) -> Response:
    contact = html.escape(settings_of(request).privacy_contact)
    return _page("Link not valid", _INVALID.format(contact=contact), 400)


async def _allowed(request: Request, account: object | None) -> rate_limit.Decision:
    if account is None:
        limit, key = rate_limit.UNSUBSCRIBE_PER_IP, rate_limit.ip_key(ip_of(request))
    else:
        limit, key = rate_limit.UNSUBSCRIBE_PER_ACCOUNT, str(account)
    return await rate_limit.hit_all(store_of(request), [(limit, key)])


def _too_many(decision: rate_limit.Decision) -> Response:
    retry = str(decision.retry_after)
    return _page("Try again later", _TOO_MANY, 429, **{"Retry-After": retry})


async def unsubscribe_page(request: Request) -> Response:
    """GET: the confirmation page (it changes nothing); POST: unsubscribe."""
    settings = settings_of(request)
    token = request.path_params["token"]
    account = marketing.unsubscribe_link_account(settings, token)
    decision = await _allowed(request, account)
    if not decision.allowed:
        return _too_many(decision)
    if account is None:
        return _invalid(request)
    if request.method != "POST":
        return _page("Unsubscribe from OCIS marketing email", _CONFIRM)
    body = await read_body(request)
    # RFC 8058's body; the page's form sends the same field.
    if body is None or body.get("List-Unsubscribe") != "One-Click":
        return _page("Not unsubscribed", _NOT_ONE_CLICK, 400)
    try:
        await marketing.unsubscribe(
            settings,
            token,
            ip_address=ip_of(request),
            user_agent=request.headers.get("user-agent"),
            request_id=request_id_of(request),
        )
    except marketing.InvalidUnsubscribeLink:
        return _invalid(request)
    return _page("You are unsubscribed", _DONE)
