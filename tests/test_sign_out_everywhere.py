"""Sign out everywhere, and account disable: every session and app sign-in ends at once.

The two-process proof (a second server process sharing Redis) is in tests/test_two_processes.py.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from models import AuditEvent, Notice, SignInSession, User, UserStatus
from schema.relay import to_global_id
from tests.helpers import (
    Api,
    app_code_exchange,
    app_refresh,
    sign_in,
    signed_in_email,
    user_by_email,
)

CUSTOMER = "customer@example.com"
OTHER = "customer2@example.com"
ADMIN = "admin@example.com"
ME = "{ me { email } }"
SIGN_OUT_EVERYWHERE = """mutation { signOutEverywhere {
  __typename ... on SignOutEverywhereSuccess { sessionsEnded appSignInsEnded } } }"""
DISABLE = """mutation($id: ID!) { disableAccount(userId: $id) {
  __typename ... on DisableAccountSuccess { userId sessionsEnded appSignInsEnded }
  ... on UserError { message } } }"""
ENABLE = """mutation($id: ID!) { enableAccount(userId: $id) {
  __typename ... on UserError { message } } }"""
NOTICES = "{ myNotices { id kind subject body readAt emailedAt } }"


async def _email_of(api: Api) -> str | None:
    return signed_in_email(await api.post(ME))


async def _exchange(app: Any, client: httpx.AsyncClient, email: str) -> httpx.Response:
    """The mobile app's code exchange (PKCE) for a code the sign-in flow issued."""
    form = await app_code_exchange(app.state.store, (await user_by_email(email)).id)
    return await client.post("/auth/token", data=form)


async def _app_sign_in(app: Any, client: httpx.AsyncClient, email: str) -> dict[str, str]:
    """Access and refresh tokens as the mobile app gets them."""
    response = await _exchange(app, client, email)
    assert response.status_code == 200, response.text
    grant: dict[str, str] = response.json()
    return grant


async def _bearer_me(client: httpx.AsyncClient, access_token: str) -> httpx.Response:
    return await client.post(
        "/graphql",
        json={"query": ME},
        headers={"authorization": f"Bearer {access_token}", "origin": ""},
    )


@pytest.mark.promise("P06")
async def test_signing_out_everywhere_ends_every_session_and_app_sign_in_of_that_person_only(
    app: Any, client: httpx.AsyncClient, demo: None
) -> None:
    laptop = Api(client, await sign_in(client, CUSTOMER))
    phone_browser = Api(client, await sign_in(client, CUSTOMER))
    grant = await _app_sign_in(app, client, CUSTOMER)
    bystander = Api(client, await sign_in(client, OTHER))
    bystander_grant = await _app_sign_in(app, client, OTHER)
    assert (await _bearer_me(client, grant["access_token"])).status_code == 200

    body = await laptop.gql(SIGN_OUT_EVERYWHERE)
    assert body["data"]["signOutEverywhere"] == {
        "__typename": "SignOutEverywhereSuccess",
        "sessionsEnded": 2,
        "appSignInsEnded": 1,
    }
    assert await _email_of(laptop) is None
    assert await _email_of(phone_browser) is None
    assert (await _bearer_me(client, grant["access_token"])).status_code == 401
    refused = await app_refresh(client, grant["refresh_token"])
    assert refused.status_code == 400
    assert refused.json() == {"error": "invalid_grant"}
    customer = await user_by_email(CUSTOMER)
    assert not await SignInSession.filter(user_id=customer.id, revoked_at__isnull=True).exists()
    # Someone else's sign-ins are untouched.
    assert await _email_of(bystander) == OTHER
    assert (await _bearer_me(client, bystander_grant["access_token"])).status_code == 200
    assert (await app_refresh(client, bystander_grant["refresh_token"])).status_code == 200

    event = await AuditEvent.get(action="account.sign_out_everywhere")
    assert event.subject_id == customer.id
    again = Api(client, await sign_in(client, CUSTOMER))
    notices = (await again.gql(NOTICES))["data"]["myNotices"]
    assert [notice["kind"] for notice in notices] == ["account.signed_out_everywhere"]
    assert "Every session and app sign-in of your OCIS account was ended" in notices[0]["body"]
    assert await _email_of(again) == CUSTOMER


async def test_a_sign_in_code_issued_before_signing_out_everywhere_buys_nothing(
    app: Any, client: httpx.AsyncClient, demo: None
) -> None:
    form = await app_code_exchange(app.state.store, (await user_by_email(CUSTOMER)).id)
    laptop = Api(client, await sign_in(client, CUSTOMER))
    await laptop.gql(SIGN_OUT_EVERYWHERE)
    response = await client.post("/auth/token", data=form)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant"}
    # A code issued afterwards works as usual.
    assert "access_token" in await _app_sign_in(app, client, CUSTOMER)


async def test_an_administrator_disables_an_account_at_once_and_can_enable_it_again(
    app: Any, client: httpx.AsyncClient, demo: None
) -> None:
    customer = await user_by_email(CUSTOMER)
    session = Api(client, await sign_in(client, CUSTOMER))
    grant = await _app_sign_in(app, client, CUSTOMER)
    admin = Api(client, await sign_in(client, ADMIN))
    target = to_global_id("User", customer.id)

    body = await admin.gql(DISABLE, {"id": target})
    assert body["data"]["disableAccount"] == {
        "__typename": "DisableAccountSuccess",
        "userId": target,
        "sessionsEnded": 1,
        "appSignInsEnded": 1,
    }
    assert (await User.get(id=customer.id)).status == UserStatus.DISABLED
    assert await _email_of(session) is None
    assert (await _bearer_me(client, grant["access_token"])).status_code == 401
    assert (await app_refresh(client, grant["refresh_token"])).status_code == 400
    # Only the right password learns that the account is disabled.
    client.cookies.clear()
    right = await client.post("/auth/password", json={"email": CUSTOMER, "password": "ocis-demo"})
    assert right.status_code == 403
    assert right.json() == {"error": "This account is disabled.", "code": "ACCOUNT_DISABLED"}
    assert "ocis_session" not in right.cookies
    wrong = await client.post("/auth/password", json={"email": CUSTOMER, "password": "guess-1234"})
    assert wrong.status_code == 401
    assert wrong.json() == {"error": "Wrong email or password."}
    # A sign-in code for the disabled account buys nothing.
    exchange = await _exchange(app, client, CUSTOMER)
    assert exchange.status_code == 400
    assert exchange.json() == {"error": "invalid_grant"}
    # Disabling twice changes nothing more.
    again = await admin.gql(DISABLE, {"id": target})
    assert again["data"]["disableAccount"]["__typename"] == "DisableAccountSuccess"
    assert await AuditEvent.filter(action="account.disable", subject_id=customer.id).count() == 1
    listed = await admin.gql("{ users(first: 100) { edges { node { email status } } } }")
    statuses = {e["node"]["email"]: e["node"]["status"] for e in listed["data"]["users"]["edges"]}
    assert statuses[CUSTOMER] == "DISABLED"

    enabled = await admin.gql(ENABLE, {"id": target})
    assert enabled["data"]["enableAccount"]["__typename"] == "EnableAccountSuccess"
    assert await _email_of(session) is None, "old sessions stay ended"
    back = Api(client, await sign_in(client, CUSTOMER))
    kinds = [notice["kind"] for notice in (await back.gql(NOTICES))["data"]["myNotices"]]
    assert kinds == ["account.enabled", "account.disabled"]
    assert await AuditEvent.filter(action="account.enable", subject_id=customer.id).exists()
    twice = await admin.gql(ENABLE, {"id": target})
    assert twice["data"]["enableAccount"]["__typename"] == "InvalidInputError"


async def test_only_an_administrator_disables_and_never_their_own_account(
    client: httpx.AsyncClient, demo: None
) -> None:
    customer = await user_by_email(CUSTOMER)
    target = to_global_id("User", customer.id)
    for email in ("agent@example.com", "privacy@example.com", OTHER, CUSTOMER):
        api = Api(client, await sign_in(client, email))
        body = await api.gql(DISABLE, {"id": target})
        assert body["data"]["disableAccount"]["__typename"] == "ForbiddenError", email
    assert (await User.get(id=customer.id)).status == UserStatus.ACTIVE
    admin = await user_by_email(ADMIN)
    api = Api(client, await sign_in(client, ADMIN))
    own = await api.gql(DISABLE, {"id": to_global_id("User", admin.id)})
    assert own["data"]["disableAccount"]["__typename"] == "InvalidInputError"
    assert (await User.get(id=admin.id)).status == UserStatus.ACTIVE
    assert not await AuditEvent.filter(action="account.disable").exists()


async def test_notices_are_the_callers_own_and_only_they_mark_them_read(
    client: httpx.AsyncClient, demo: None
) -> None:
    customer = Api(client, await sign_in(client, CUSTOMER))
    await customer.gql(SIGN_OUT_EVERYWHERE)
    owner = Api(client, await sign_in(client, CUSTOMER))
    (notice,) = (await owner.gql(NOTICES))["data"]["myNotices"]
    assert notice["readAt"] is None
    assert notice["emailedAt"] is None  # no mail server is configured here
    other = Api(client, await sign_in(client, OTHER))
    assert (await other.gql(NOTICES))["data"]["myNotices"] == []
    mark = """mutation($ids: [ID!]!) {
      markNoticesRead(ids: $ids) { ... on MarkNoticesReadSuccess { marked } } }"""
    assert (await other.gql(mark, {"ids": [notice["id"]]}))["data"]["markNoticesRead"] == {
        "marked": 0
    }
    assert await Notice.filter(read_at__isnull=True).count() == 1
    assert (await owner.gql(mark, {"ids": [notice["id"]]}))["data"]["markNoticesRead"] == {
        "marked": 1
    }
    unread = await owner.gql("{ myNotices(unreadOnly: true) { id } }")
    assert unread["data"]["myNotices"] == []
    read = (await owner.gql(NOTICES))["data"]["myNotices"]
    assert read[0]["readAt"] is not None
    too_many = await owner.gql("{ myNotices(first: 51) { id } }")
    assert too_many["data"] == {"myNotices": None}
    assert too_many["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    anonymous = await Api(client).gql(NOTICES)
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_restricted_account_still_signs_in(client: httpx.AsyncClient, demo: None) -> None:
    customer = await user_by_email(CUSTOMER)
    await User.filter(id=customer.id).update(status=UserStatus.RESTRICTED)
    api = Api(client, await sign_in(client, CUSTOMER))
    assert await _email_of(api) == CUSTOMER


async def test_a_restricted_account_disabled_and_enabled_again_stays_restricted(
    client: httpx.AsyncClient, demo: None
) -> None:
    customer = await user_by_email(CUSTOMER)
    await User.filter(id=customer.id).update(status=UserStatus.RESTRICTED)
    admin = Api(client, await sign_in(client, ADMIN))
    target = to_global_id("User", customer.id)
    assert (await admin.gql(DISABLE, {"id": target}))["data"]["disableAccount"]["__typename"] == (
        "DisableAccountSuccess"
    )
    assert (await User.get(id=customer.id)).status == UserStatus.DISABLED
    assert (await admin.gql(ENABLE, {"id": target}))["data"]["enableAccount"]["__typename"] == (
        "EnableAccountSuccess"
    )
    restored = await User.get(id=customer.id)
    assert restored.status == UserStatus.RESTRICTED
    assert restored.status_before_disable is None
