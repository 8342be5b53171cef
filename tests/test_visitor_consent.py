"""Consent for anonymous visitors and accounts (P05): consent ids, the merge at sign-up and
sign-in, Global Privacy Control, objections, the privacy officer's read, and withdrawal seen
at once by another process."""

from __future__ import annotations

import secrets
import string
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from typing import Any
from uuid import UUID

import httpx
import pytest
from tortoise import Tortoise

import settings as config
from auth.card_data import contains_card_data
from auth.visitor_ids import Visitor, VisitorIds
from models import (
    AuditEvent,
    ConsentEntry,
    ConsentPurpose,
    ConsentSource,
    DataKey,
    PolicyVersion,
    crypto,
)
from privacy import consent, keys
from schema.relay import to_global_id
from tests.helpers import (
    ORIGIN,
    Api,
    another_instance,
    app_code_exchange,
    https_settings,
    pending_link_token,
    sign_in,
    unique_email,
    user_by_email,
)

CUSTOMER = "customer@example.com"
SET = """
mutation Set($input: SetConsentInput!) {
  setConsent(input: $input) {
    __typename
    ... on ConsentSuccess { visitorId consent { purpose granted objected policyVersion updatedAt } }
    ... on InvalidInputError { code field message }
  }
}
"""
VISITOR_STATE = """
query State($v: String!) {
  consents(visitorId: $v) { purpose granted objected policyVersion updatedAt }
}
"""
MY_CONSENTS = "{ myConsents { purpose granted objected policyVersion updatedAt } }"
MY_LEDGER = "{ myConsentLedger { purpose granted objection policyVersion source createdAt } }"
CONSENTS_OF = """
query Of($u: ID!) {
  consentsOf(userId: $u) { purpose granted objected }
  consentLedgerOf(userId: $u) { purpose granted objection source policyVersion }
}
"""
REGISTER = "mutation R($input: RegisterInput!) { register(input: $input) { __typename } }"
VERIFY = """
mutation V($t: String!, $v: String) {
  verifyEmail(token: $t, visitorId: $v) {
    __typename ... on InvalidInputError { field } ... on InvalidLinkError { code }
  }
}
"""


def visitor_ids() -> VisitorIds:
    return VisitorIds((b"k" * 32,))


async def anonymous(
    client: httpx.AsyncClient,
    purpose: str,
    granted: bool,
    visitor_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    client.cookies.clear()
    response = await client.post(
        "/graphql",
        json={
            "query": SET,
            "variables": {
                "input": {"purpose": purpose, "granted": granted, "visitorId": visitor_id}
            },
        },
        headers=headers or {},
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["data"]["setConsent"]
    return result


def by_purpose(states: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {state["purpose"]: state for state in states}


async def visitor_state(client: httpx.AsyncClient, visitor_id: str) -> dict[str, dict[str, Any]]:
    body = await Api(client).gql(VISITOR_STATE, {"v": visitor_id})
    assert body.get("errors") is None, body
    return by_purpose(body["data"]["consents"])


async def counts() -> tuple[int, int]:
    return await ConsentEntry.all().count(), await AuditEvent.all().count()


# --- visitors ---------------------------------------------------------------------------


@pytest.mark.promise("P05")
async def test_a_visitor_gets_a_consent_id_and_a_cookie_and_reads_its_own_state(
    client: httpx.AsyncClient, demo: None
) -> None:
    client.cookies.clear()
    response = await client.post(
        "/graphql",
        json={
            "query": SET,
            "variables": {"input": {"purpose": "STATISTICS", "granted": True}},
        },
    )
    answer = response.json()["data"]["setConsent"]
    visitor_id = answer["visitorId"]
    assert answer["__typename"] == "ConsentSuccess"
    assert visitor_ids().verify(visitor_id) is not None
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"ocis_consent={visitor_id};")
    assert "Path=/" in cookie
    assert "SameSite=lax" in cookie
    assert "HttpOnly" not in cookie  # the frontend reads it to send as visitorId

    again = await anonymous(client, "MARKETING_EMAIL", True, visitor_id)
    assert again["visitorId"] == visitor_id
    state = await visitor_state(client, visitor_id)
    assert state["STATISTICS"]["granted"] is True
    assert state["MARKETING_EMAIL"]["granted"] is True
    assert state["NECESSARY"] == {
        "purpose": "NECESSARY",
        "granted": True,
        "objected": False,
        "policyVersion": None,
        "updatedAt": None,
    }
    assert state["PREFERENCES"]["granted"] is False

    withdrawn = await anonymous(client, "STATISTICS", False, visitor_id)
    assert withdrawn["consent"]["granted"] is False
    assert (await visitor_state(client, visitor_id))["STATISTICS"]["granted"] is False

    entries = await ConsentEntry.all()
    visitor = visitor_ids().verify(visitor_id)
    assert visitor is not None
    assert {(e.user_id, e.visitor_id, e.source) for e in entries} == {
        (None, str(visitor.id), ConsentSource.WEB)
    }
    # Another visitor's id sees none of it.
    _, other_id = visitor_ids().issue()
    assert (await visitor_state(client, other_id))["MARKETING_EMAIL"]["granted"] is False


def tampered_ids() -> list[str]:
    visitor_id = visitor_ids().issue()[1]
    payload, _, mac = visitor_id.rpartition(".")
    other = visitor_ids().issue()[1].split(".")[1]
    return [
        f"{payload}.{mac[:-1]}{'0' if mac[-1] != '0' else '1'}",  # MAC altered
        f"c1.{other}.{mac}",  # another visitor's random id under this MAC
        VisitorIds((b"x" * 32,)).issue()[1],  # signed under another key
        "not-a-consent-id",
        "c1." + "f" * 10_000,  # huge
        "",
    ]


@pytest.mark.promise("P05")
@pytest.mark.parametrize("tampered", tampered_ids(), ids=range(6))
async def test_a_tampered_visitor_id_is_refused_and_nothing_is_written(
    client: httpx.AsyncClient, demo: None, tampered: str
) -> None:
    before = await counts()

    answer = await anonymous(client, "MARKETING_EMAIL", True, tampered)
    body = await Api(client).gql(VISITOR_STATE, {"v": tampered})

    assert answer["__typename"] == "InvalidInputError"
    assert answer["field"] == "visitorId"
    assert body["data"] == {"consents": None}
    assert [e["extensions"]["code"] for e in body["errors"]] == ["INVALID_INPUT"]
    assert await counts() == before


@pytest.mark.parametrize(
    ("purpose", "field"),
    [("NECESSARY", "purpose"), ("PRIVACY_POLICY", "purpose")],
)
async def test_necessary_and_the_privacy_policy_are_not_choices(
    as_user: Any, client: httpx.AsyncClient, purpose: str, field: str
) -> None:
    customer = await as_user(CUSTOMER)
    before = await counts()
    for granted in (True, False):
        signed_in = await customer.gql(SET, {"input": {"purpose": purpose, "granted": granted}})
        visitor = await anonymous(client, purpose, granted)
        for answer in (signed_in["data"]["setConsent"], visitor):
            assert answer["__typename"] == "InvalidInputError"
            assert answer["field"] == field
    assert await counts() == before


async def test_an_unknown_purpose_or_a_visitor_id_from_an_account_changes_nothing(
    as_user: Any, client: httpx.AsyncClient
) -> None:
    customer = await as_user(CUSTOMER)
    before = await counts()

    unknown = await customer.post(SET, {"input": {"purpose": "MARKETING", "granted": True}})
    with_visitor = await customer.gql(
        SET,
        {
            "input": {
                "purpose": "STATISTICS",
                "granted": True,
                "visitorId": visitor_ids().issue()[1],
            }
        },
    )

    assert unknown.status_code == 200
    assert [e["message"][:40] for e in unknown.json()["errors"]] != []
    assert "data" not in unknown.json() or unknown.json()["data"] is None
    assert with_visitor["data"]["setConsent"]["__typename"] == "InvalidInputError"
    assert with_visitor["data"]["setConsent"]["field"] == "visitorId"
    assert await counts() == before


async def test_a_visitors_ip_and_user_agent_are_sealed_under_its_own_erasable_key(
    client: httpx.AsyncClient, demo: None
) -> None:
    # Letters only: a run of digits (a timestamp) can pass the Luhn check, and card data is
    # dropped.
    agent = "visitor-agent-" + "".join(secrets.choice(string.ascii_letters) for _ in range(16))
    answer = await anonymous(client, "PREFERENCES", True, headers={"user-agent": agent})
    visitor = visitor_ids().verify(answer["visitorId"])
    assert visitor is not None
    (entry,) = await ConsentEntry.all()
    assert (entry.ip_address, entry.user_agent) == ("203.0.113.7", agent)
    _, rows = await Tortoise.get_connection("default").execute_query(
        'SELECT "ip_address", "user_agent" FROM "consent_entries"'
    )
    stored = " ".join(str(value) for value in dict(rows[0]).values())
    assert "203.0.113.7" not in stored
    assert agent not in stored
    key = await DataKey.get(id=crypto.key_id_of(str(dict(rows[0])["ip_address"])))
    assert key.subject_id == visitor.id

    assert await keys.destroy_subject_keys(visitor.id) == 1

    (shredded,) = await ConsentEntry.all()
    assert (shredded.ip_address, shredded.user_agent) == (None, None)
    assert shredded.granted is True  # the decision stays; who made it from where is gone


# --- merging into an account -------------------------------------------------------------


async def publish_version(version: str) -> None:
    now = datetime.now(UTC)
    await PolicyVersion.create(version=version, published_at=now, effective_at=now)


@pytest.mark.promise("P05")
async def test_a_visitors_consent_is_on_the_account_after_sign_up_with_its_time_and_version(
    client: httpx.AsyncClient, demo: None
) -> None:
    first = await anonymous(client, "STATISTICS", True)
    visitor_id = first["visitorId"]
    second = await anonymous(client, "MARKETING_EMAIL", True, visitor_id)
    decided = {
        "STATISTICS": first["consent"],
        "MARKETING_EMAIL": second["consent"],
    }
    await publish_version("2026-09")  # what is decided from now on names another version
    email = unique_email()
    client.cookies.clear()
    registered = await Api(client).gql(
        REGISTER,
        {
            "input": {
                "name": "Vera Visitor",
                "email": email,
                "password": "a long enough password",
                "dateOfBirth": "1990-05-17",
            }
        },
    )
    assert registered == {"data": {"register": {"__typename": "CheckYourMail"}}}
    token = await pending_link_token("account.verify")
    verified = await Api(client).gql(VERIFY, {"t": token, "v": visitor_id})
    assert verified == {"data": {"verifyEmail": {"__typename": "VerifyEmailSuccess"}}}

    account = Api(client, await sign_in(client, email, "a long enough password"))
    states = by_purpose((await account.gql(MY_CONSENTS))["data"]["myConsents"])
    for purpose, original in decided.items():
        assert states[purpose] == {
            "purpose": purpose,
            "granted": True,
            "objected": False,
            "policyVersion": "2026-01",
            "updatedAt": original["updatedAt"],
        }
    assert original["policyVersion"] == "2026-01"
    ledger = (await account.gql(MY_LEDGER))["data"]["myConsentLedger"]
    assert sorted((e["purpose"], e["createdAt"], e["policyVersion"]) for e in ledger) == sorted(
        (p, d["updatedAt"], "2026-01") for p, d in decided.items()
    )
    # The visitor's id opens nothing of the account's any more.
    assert (await visitor_state(client, visitor_id))["STATISTICS"]["granted"] is False
    user = await user_by_email(email)
    (merge,) = await AuditEvent.filter(action="consent.merge")
    visitor = visitor_ids().verify(visitor_id)
    assert visitor is not None
    assert (merge.subject_id, merge.entity_id, merge.field_names) == (
        user.id,
        str(visitor.id),
        ["ConsentEntry.user"],
    )
    # Now sealed under the account's key: erasing the account's keys erases them.
    for entry in await ConsentEntry.filter(user_id=user.id):
        assert entry.visitor_id == str(visitor.id)
        assert entry.ip_address == "203.0.113.7"


async def test_a_tampered_visitor_id_at_verification_leaves_the_link_unused(
    client: httpx.AsyncClient, demo: None
) -> None:
    email = unique_email()
    await Api(client).gql(
        REGISTER,
        {
            "input": {
                "name": "Tim Tamper",
                "email": email,
                "password": "a long enough password",
                "dateOfBirth": "1990-05-17",
            }
        },
    )
    token = await pending_link_token("account.verify")
    before = await counts()

    refused = await Api(client).gql(VERIFY, {"t": token, "v": "c1.forged.value"})

    assert refused == {
        "data": {"verifyEmail": {"__typename": "InvalidInputError", "field": "visitorId"}}
    }
    assert await counts() == before
    assert (await user_by_email(email)).email_verified_at is None
    verified = await Api(client).gql(VERIFY, {"t": token, "v": None})
    assert verified == {"data": {"verifyEmail": {"__typename": "VerifyEmailSuccess"}}}


@pytest.mark.promise("P05")
async def test_at_password_sign_in_the_later_decision_per_purpose_wins(
    as_user: Any, client: httpx.AsyncClient
) -> None:
    customer = await as_user(CUSTOMER)
    # STATISTICS: the visitor first, the account later. PREFERENCES: the other way round.
    visitor_id = (await anonymous(client, "STATISTICS", False))["visitorId"]
    await customer.gql(SET, {"input": {"purpose": "STATISTICS", "granted": True}})
    await customer.gql(SET, {"input": {"purpose": "PREFERENCES", "granted": True}})
    await anonymous(client, "PREFERENCES", False, visitor_id)
    marketing = await anonymous(client, "MARKETING_EMAIL", True, visitor_id)

    client.cookies.clear()
    response = await client.post(
        "/auth/password",
        json={"email": CUSTOMER, "password": "ocis-demo"},
        headers={"cookie": f"ocis_consent={visitor_id}"},
    )
    assert response.status_code == 200, response.text
    assert any(
        header.startswith('ocis_consent="";') or header.startswith("ocis_consent=;")
        for header in response.headers.get_list("set-cookie")
    ), "the browser forgets the visitor's consent id"

    again = Api(client, response.cookies["ocis_session"])
    states = by_purpose((await again.gql(MY_CONSENTS))["data"]["myConsents"])
    assert {p: states[p]["granted"] for p in ("STATISTICS", "PREFERENCES", "MARKETING_EMAIL")} == {
        "STATISTICS": True,
        "PREFERENCES": False,
        "MARKETING_EMAIL": True,
    }
    assert states["MARKETING_EMAIL"]["updatedAt"] == marketing["consent"]["updatedAt"]
    ledger = (await again.gql(MY_LEDGER))["data"]["myConsentLedger"]
    assert len(ledger) == 5  # nothing decided was changed or dropped
    customer_id = (await user_by_email(CUSTOMER)).id
    assert await consent.granted(customer_id, ConsentPurpose.MARKETING_EMAIL)


async def test_a_forged_consent_cookie_at_sign_in_moves_nothing(
    client: httpx.AsyncClient, demo: None
) -> None:
    visitor_id = (await anonymous(client, "MARKETING_EMAIL", True))["visitorId"]
    forged = visitor_id[:-1] + ("0" if visitor_id[-1] != "0" else "1")
    client.cookies.clear()
    response = await client.post(
        "/auth/password",
        json={"email": CUSTOMER, "password": "ocis-demo"},
        headers={"cookie": f"ocis_consent={forged}"},
    )
    assert response.status_code == 200
    customer_id = (await user_by_email(CUSTOMER)).id
    assert await ConsentEntry.filter(user_id=customer_id).count() == 0
    assert await AuditEvent.filter(action="consent.merge").count() == 0


# --- Global Privacy Control and objections -------------------------------------------------


async def gpc_request(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    client.cookies.clear()
    response = await client.post(
        "/graphql", json={"query": "{ privacyContact }"}, headers={"sec-gpc": "1", **headers}
    )
    assert response.status_code == 200, response.text


@pytest.mark.promise("P05")
async def test_gpc_from_a_visitor_records_an_objection_to_marketing_once(
    client: httpx.AsyncClient, demo: None
) -> None:
    visitor_id = (await anonymous(client, "MARKETING_EMAIL", True))["visitorId"]
    for _ in range(3):
        await gpc_request(client, {"cookie": f"ocis_consent={visitor_id}"})

    state = await visitor_state(client, visitor_id)
    for purpose in ("MARKETING_COOKIES", "MARKETING_EMAIL"):
        assert (state[purpose]["granted"], state[purpose]["objected"]) == (False, True)
    assert (state["STATISTICS"]["granted"], state["STATISTICS"]["objected"]) == (False, False)
    objections = await ConsentEntry.filter(objection=True)
    assert sorted((e.purpose, e.source, e.granted) for e in objections) == [
        (ConsentPurpose.MARKETING_COOKIES, ConsentSource.GPC, False),
        (ConsentPurpose.MARKETING_EMAIL, ConsentSource.GPC, False),
    ]
    assert await AuditEvent.filter(action="consent.object").count() == 2


@pytest.mark.promise("P05")
async def test_gpc_from_a_signed_in_user_objects_once_and_an_explicit_choice_after_stands(
    as_user: Any,
) -> None:
    customer = await as_user(CUSTOMER)
    gpc = {"sec-gpc": "1"}
    for _ in range(2):
        response = await customer.http.post(
            "/graphql",
            json={"query": MY_CONSENTS},
            headers={"cookie": f"ocis_session={customer.cookie}", **gpc},
        )
        assert response.status_code == 200
    states = by_purpose(response.json()["data"]["myConsents"])
    assert states["MARKETING_EMAIL"]["objected"] is True
    assert await ConsentEntry.filter(objection=True).count() == 2

    # The person grants marketing mail on this site after all: GPC does not undo it.
    response = await customer.http.post(
        "/graphql",
        json={
            "query": SET,
            "variables": {"input": {"purpose": "MARKETING_EMAIL", "granted": True}},
        },
        headers={"cookie": f"ocis_session={customer.cookie}", **gpc},
    )
    assert response.json()["data"]["setConsent"]["consent"]["granted"] is True
    response = await customer.http.post(
        "/graphql",
        json={"query": MY_CONSENTS},
        headers={"cookie": f"ocis_session={customer.cookie}", **gpc},
    )
    assert by_purpose(response.json()["data"]["myConsents"])["MARKETING_EMAIL"]["granted"] is True
    assert await ConsentEntry.filter(objection=True).count() == 2


async def test_object_to_records_an_objection_once_for_reuse(app: Any, demo: None) -> None:
    customer_id = (await user_by_email(CUSTOMER)).id
    visitor = Visitor(visitor_ids().issue()[0].id)
    for owner in (customer_id, visitor):
        await consent.append(
            owner,
            ConsentPurpose.STATISTICS,
            granted=True,
            source=ConsentSource.WEB,
            ip_address=None,
            user_agent=None,
        )
        first = await consent.object_to(
            owner, [ConsentPurpose.STATISTICS, ConsentPurpose.NECESSARY], ConsentSource.WEB
        )
        again = await consent.object_to(owner, [ConsentPurpose.STATISTICS], ConsentSource.WEB)

        assert [(e.purpose, e.granted, e.objection) for e in first] == [
            (ConsentPurpose.STATISTICS, False, True)
        ]
        assert again == []
        state = {s.purpose: s for s in await consent.current_state(owner)}
        assert (
            state[ConsentPurpose.STATISTICS].granted,
            state[ConsentPurpose.STATISTICS].objected,
        ) == (False, True)
        assert state[ConsentPurpose.NECESSARY].granted is True
        assert not await consent.granted(owner, ConsentPurpose.STATISTICS)


async def test_the_mobile_app_decides_with_source_mobile(
    app: Any, client: httpx.AsyncClient, demo: None
) -> None:
    customer_id = (await user_by_email(CUSTOMER)).id
    client.cookies.clear()
    tokens = (
        await client.post("/auth/token", data=await app_code_exchange(app.state.store, customer_id))
    ).json()
    response = await client.post(
        "/graphql",
        json={"query": SET, "variables": {"input": {"purpose": "STATISTICS", "granted": True}}},
        headers={"authorization": f"Bearer {tokens['access_token']}"},
    )
    assert response.json()["data"]["setConsent"]["visitorId"] is None
    (entry,) = await ConsentEntry.all()
    assert (entry.user_id, entry.source) == (customer_id, ConsentSource.MOBILE)


# --- the privacy officer, and other processes ----------------------------------------------


@pytest.mark.promise("P05")
async def test_the_privacy_officer_reads_a_persons_consent_and_another_customer_cannot(
    as_user: Any,
) -> None:
    customer = await as_user(CUSTOMER)
    await customer.gql(SET, {"input": {"purpose": "MARKETING_EMAIL", "granted": True}})
    customer_id = (await user_by_email(CUSTOMER)).id
    gid = str(to_global_id("User", customer_id))

    officer = await as_user("privacy@example.com")
    reads_before = await AuditEvent.filter(action="personal_data.read").count()
    read = await officer.gql(CONSENTS_OF, {"u": gid})
    assert read.get("errors") is None, read
    assert by_purpose(read["data"]["consentsOf"])["MARKETING_EMAIL"] == {
        "purpose": "MARKETING_EMAIL",
        "granted": True,
        "objected": False,
    }
    assert read["data"]["consentLedgerOf"] == [
        {
            "purpose": "MARKETING_EMAIL",
            "granted": True,
            "objection": False,
            "source": "WEB",
            "policyVersion": "2026-01",
        }
    ]
    reads = await AuditEvent.filter(action="personal_data.read").order_by("seq")
    assert len(reads) == reads_before + 1
    assert reads[-1].subject_id == customer_id
    assert {"ConsentEntry.purpose", "ConsentState.granted"} <= set(reads[-1].field_names)

    for other in ("customer2@example.com", "agent@example.com", "admin@example.com"):
        refused = await (await as_user(other)).gql(CONSENTS_OF, {"u": gid})
        assert refused["data"] == {"consentsOf": None, "consentLedgerOf": None}
        assert sorted(e["extensions"]["code"] for e in refused["errors"]) == [
            "FORBIDDEN",
            "FORBIDDEN",
        ]
        assert "MARKETING_EMAIL" not in str(refused)
    own = await customer.gql(CONSENTS_OF, {"u": gid})
    assert own.get("errors") is None
    assert await AuditEvent.filter(action="personal_data.read").count() == reads_before + 1


@pytest.mark.promise("P05")
async def test_a_withdrawal_is_seen_at_once_by_another_process(
    app: Any, app_settings: config.Settings, client: httpx.AsyncClient, demo: None
) -> None:
    token = await sign_in(client, CUSTOMER)
    visitor_id = (await anonymous(client, "MARKETING_COOKIES", True))["visitorId"]
    async with another_instance(app, app_settings) as other:
        transport = httpx.ASGITransport(app=other, client=("203.0.113.8", 50000))
        async with httpx.AsyncClient(
            transport=transport, base_url=ORIGIN, headers={"origin": ORIGIN}
        ) as second:
            here, there = Api(client, token), Api(second, token)
            await here.gql(SET, {"input": {"purpose": "STATISTICS", "granted": True}})
            state = by_purpose((await there.gql(MY_CONSENTS))["data"]["myConsents"])
            assert state["STATISTICS"]["granted"] is True

            await there.gql(SET, {"input": {"purpose": "STATISTICS", "granted": False}})
            state = by_purpose((await here.gql(MY_CONSENTS))["data"]["myConsents"])
            assert state["STATISTICS"]["granted"] is False
            customer_id = (await user_by_email(CUSTOMER)).id
            assert not await consent.granted(customer_id, ConsentPurpose.STATISTICS)

            assert (await visitor_state(second, visitor_id))["MARKETING_COOKIES"]["granted"]
            await anonymous(second, "MARKETING_COOKIES", False, visitor_id)
            assert not (await visitor_state(client, visitor_id))["MARKETING_COOKIES"]["granted"]


def test_a_consent_id_names_its_visitor_and_older_master_keys_still_verify() -> None:
    old = VisitorIds((b"o" * 32,))
    visitor, issued = old.issue()
    rotated = VisitorIds((b"n" * 32, b"o" * 32))
    assert rotated.verify(issued) == visitor
    assert VisitorIds((b"n" * 32,)).verify(issued) is None
    assert isinstance(visitor.id, UUID)
    assert len(issued) == 100


async def test_over_https_the_consent_cookie_is_host_prefixed_and_secure(
    app: Any, app_settings: config.Settings, demo: None
) -> None:
    origin = "https://ocis.example.com"
    async with another_instance(app, https_settings(app_settings)) as https_app:
        transport = httpx.ASGITransport(app=https_app, client=("203.0.113.9", 50000))
        async with httpx.AsyncClient(transport=transport, base_url=origin) as browser:
            response = await browser.post(
                "/graphql",
                json={
                    "query": SET,
                    "variables": {"input": {"purpose": "MARKETING_EMAIL", "granted": True}},
                },
            )
            visitor_id = response.json()["data"]["setConsent"]["visitorId"]
            morsel = SimpleCookie(response.headers["set-cookie"])["__Host-ocis_consent"]
            assert morsel.value == visitor_id
            assert (morsel["secure"], morsel["httponly"], morsel["path"]) == (True, "", "/")
            assert morsel["samesite"].lower() == "lax"
            assert morsel["domain"] == ""

            # Its GPC signal finds the visitor by the __Host- cookie; the plain name is no one.
            for name in ("ocis_consent", "__Host-ocis_consent"):
                gpc = await browser.post(
                    "/graphql",
                    json={"query": "{ privacyContact }"},
                    headers={"sec-gpc": "1", "cookie": f"{name}={visitor_id}"},
                )
                assert gpc.status_code == 200
                objections = await ConsentEntry.filter(objection=True).count()
                assert objections == (0 if name == "ocis_consent" else 2)


def test_no_consent_id_issued_would_be_refused_as_card_data() -> None:
    """Hex holds runs of digits; one that passes the Luhn check would make the card-data guard
    (P03) refuse the visitor's own id when it comes back. Such ids are never issued."""
    ids = VisitorIds((b"v" * 32,))
    issued = [ids.issue()[1] for _ in range(3000)]
    assert not [token for token in issued if contains_card_data(token)]
    assert all(ids.verify(token) is not None for token in issued[:50])
