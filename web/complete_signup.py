"""The second step of a first provider sign-in: the date of birth the provider did not give."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from auth import rate_limit
from auth.identities import MappingRefused, TooYoung
from resolvers import sign_in
from resolvers.errors import InvalidInput
from web import cookies
from web.bodies import read_body
from web.requests import ip_of, request_id_of, same_site_json, settings_of, store_of
from web.responses import error, too_many_attempts
from web.sign_in import finish_sign_in


async def complete_signup(request: Request) -> Response:
    """The date of birth a provider did not give; under 16 is refused and nothing is kept."""
    settings, store = settings_of(request), store_of(request)
    if not same_site_json(request):
        return error("Send JSON from the OCIS site.", 403)
    decision = await rate_limit.registration_attempt(store, email=None, ip=ip_of(request))
    if not decision.allowed:
        return too_many_attempts(decision)
    body = await read_body(request)
    if body is None:
        return error("Send pending and dateOfBirth.", 400)
    try:  # before the step is used up: a typo must not cost the whole provider flow
        birth = sign_in.signup_date_of_birth(body.get("dateOfBirth"))
    except InvalidInput as problem:
        return error(problem.message, 400)
    try:
        done = await sign_in.complete_signup(
            store,
            body.get("pending"),
            cookies.read_cookie(request, settings, cookies.PENDING),
            birth,
            request_id_of(request),
        )
    except sign_in.SignupStepExpired:
        return error("This sign-up step expired; sign in again.", 400)
    except TooYoung:
        response = error("OCIS is not for anyone under 16.", 403)
    except InvalidInput as problem:
        response = error(problem.message, 400)
    except MappingRefused:
        response = error("Sign-in failed.", 401)
    else:
        response = await finish_sign_in(request, done.user, done.intent, done.method)
    cookies.forget_cookie(response, settings, cookies.PENDING)
    return response
