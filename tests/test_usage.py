"""Usage analytics (P09): events kept only for a visitor or user with statistics consent, no
objection and no restriction, as counts per feature and day; otherwise only the drop counts.
Administrators read the counts, never per person."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from tortoise import Tortoise

from auth import rate_limit
from models import AuditEvent, ConsentEntry, UsageCount, User, UserStatus
from resolvers.usage import MAX_DAYS
from schema import schema
from tests.helpers import Api, user_by_email
from tests.test_privacy_workflow import ADMIN, AGENT, CUSTOMER, CUSTOMER2, OFFICER, AsUser

RECORD = """mutation($input: RecordUsageInput!) { recordUsage(input: $input) {
  __typename
  ... on RecordUsageSuccess { counted }
  ... on UserError { code message }
  ... on InvalidInputError { field }
  ... on RateLimitedError { retryAfterSeconds } } }"""
CONSENT = """mutation($input: ConsentInput!) { grantConsent(input: $input) {
  __typename ... on ConsentSuccess { visitorId } } }"""
WITHDRAW = """mutation($p: ConsentPurpose!) { withdrawConsent(input: {purpose: $p}) {
  __typename } }"""
COUNTS = """query($from: Date!, $to: Date!) { usageCounts(from: $from, to: $to) {
  feature day events } }"""
OBJECT = """mutation { submitPrivacyRequest(input: {kind: OBJECTION, objectTo: [ANALYTICS]}) {
  __typename } }"""


def _dropped() -> float:
    return REGISTRY.get_sample_value("ocis_usage_events_dropped_total") or 0.0


def _now() -> str:
    return datetime.now(UTC).isoformat()


async def _record(
    api: Api, feature: str = "tickets.list", at: str | None = None, **extra: Any
) -> dict[str, Any]:
    given = {"feature": feature, "at": at or _now(), **extra}
    answer: dict[str, Any] = (await api.gql(RECORD, {"input": given}))["data"]["recordUsage"]
    return answer


async def _counts() -> list[tuple[str, date, int]]:
    rows = await UsageCount.all().order_by("day", "feature")
    return [(row.feature, row.day, row.events) for row in rows]


async def _grant_statistics(api: Api, visitor_id: str | None = None) -> str | None:
    given: dict[str, Any] = {"purpose": "STATISTICS"}
    if visitor_id is not None:
        given["visitorId"] = visitor_id
    answer = (await api.gql(CONSENT, {"input": given}))["data"]["grantConsent"]
    assert answer["__typename"] == "ConsentSuccess"
    issued: str | None = answer["visitorId"]
    return issued


@pytest.mark.promise("P09")
async def test_usage_is_counted_per_feature_and_day_only_for_those_who_consent(
    as_user: AsUser,
) -> None:
    customer = await as_user(CUSTOMER)
    other = await as_user(CUSTOMER2)
    today = datetime.now(UTC).date()
    dropped = _dropped()

    # No statistics consent yet: dropped, only the drop counted.
    assert await _record(customer) == {"__typename": "RecordUsageSuccess", "counted": False}
    assert await _counts() == []
    assert _dropped() == dropped + 1

    await _grant_statistics(customer)
    for feature in ("tickets.list", "tickets.list", "page.privacy_requests"):
        assert (await _record(customer, feature))["counted"] is True
    assert (await _record(other))["counted"] is False
    assert await _counts() == [("page.privacy_requests", today, 1), ("tickets.list", today, 2)]
    assert _dropped() == dropped + 2

    # A time earlier today or yesterday counts on its own day (UTC).
    yesterday = datetime.now(UTC) - timedelta(hours=23)
    assert (await _record(customer, at=yesterday.isoformat()))["counted"] is True
    assert ("tickets.list", yesterday.date(), 1 + (yesterday.date() == today) * 2) in (
        await _counts()
    )

    # A withdrawal applies at once.
    await customer.gql(WITHDRAW, {"p": "STATISTICS"})
    before = await _counts()
    assert (await _record(customer))["counted"] is False
    assert await _counts() == before
    assert _dropped() == dropped + 3

    # No row names a person: the table holds a feature, a day and a count.
    rows = await Tortoise.get_connection("default").execute_query_dict(
        'SELECT * FROM "usage_counts"'
    )
    assert {column for row in rows for column in row} == {"id", "feature", "day", "events"}
    ids = {str((await user_by_email(email)).id) for email in (CUSTOMER, CUSTOMER2)}
    assert not any(ident in repr(rows) for ident in ids)
    assert not await AuditEvent.filter(entity="UsageCount").exists()


@pytest.mark.promise("P09")
async def test_an_anonymous_visitor_is_counted_only_with_its_consent_id_and_consent(
    as_user: AsUser,
) -> None:
    visitor = await as_user(None)
    dropped = _dropped()
    assert (await _record(visitor))["counted"] is False
    visitor_id = await _grant_statistics(visitor)
    assert visitor_id is not None
    assert (await _record(visitor, visitorId=visitor_id))["counted"] is True
    assert (await _record(visitor))["counted"] is False  # no consent id: nobody to ask
    other_visitor = await _grant_statistics(visitor) or ""
    await visitor.gql(
        "mutation($v: String!) { withdrawConsent(input: {purpose: STATISTICS, visitorId: $v}) {"
        " __typename } }",
        {"v": other_visitor},
    )
    assert (await _record(visitor, visitorId=other_visitor))["counted"] is False
    assert await _counts() == [("tickets.list", datetime.now(UTC).date(), 1)]
    assert _dropped() == dropped + 3


@pytest.mark.promise("P09")
@pytest.mark.parametrize("why", ["objected", "restricted"])
async def test_an_objection_or_a_restriction_drops_usage_despite_the_consent(
    as_user: AsUser, why: str
) -> None:
    customer = await as_user(CUSTOMER)
    await _grant_statistics(customer)
    assert (await _record(customer))["counted"] is True
    user = await user_by_email(CUSTOMER)
    if why == "objected":
        assert (await customer.gql(OBJECT))["data"]["submitPrivacyRequest"]["__typename"] == (
            "PrivacyRequestSuccess"
        )
        assert await ConsentEntry.filter(user_id=user.id, objection=True).count() == 1
    else:
        await User.filter(id=user.id).update(status=UserStatus.RESTRICTED)
    before = await _counts()
    dropped = _dropped()
    assert (await _record(customer))["counted"] is False
    assert await _counts() == before
    assert _dropped() == dropped + 1


async def _nothing_changed() -> tuple[Any, ...]:
    return (await _counts(), _dropped(), await AuditEvent.all().count())


@pytest.mark.parametrize(
    ("feature", "at", "field"),
    [
        ("", None, "feature"),
        ("Tickets.List", None, "feature"),
        ("ticket.42", None, "feature"),
        ("ticket 3f2a9c1e", None, "feature"),
        ("carla@example.com", None, "feature"),
        ("tickets.", None, "feature"),
        ("a" * 65, None, "feature"),
        ("a.b.c.d.e.f.g.h.i", None, "feature"),
        ("tickets.list\u202e", None, "feature"),
        ("tickets.list", "future", "at"),
        ("tickets.list", "old", "at"),
    ],
    ids=[
        "empty",
        "upper_case",
        "digits",
        "free_text",
        "an_address",
        "trailing_dot",
        "too_long",
        "too_many_words",
        "bidi",
        "future",
        "too_old",
    ],
)
async def test_bad_usage_events_are_refused_and_change_nothing(
    as_user: AsUser, feature: str, at: str | None, field: str
) -> None:
    customer = await as_user(CUSTOMER)
    await _grant_statistics(customer)
    when = {
        None: _now(),
        "future": (datetime.now(UTC) + timedelta(minutes=10)).isoformat(),
        "old": (datetime.now(UTC) - timedelta(days=1, minutes=1)).isoformat(),
    }[at]
    before = await _nothing_changed()
    answer = await _record(customer, feature, when)
    assert (answer["__typename"], answer["code"], answer["field"]) == (
        "InvalidInputError",
        "INVALID_INPUT",
        field,
    )
    assert await _nothing_changed() == before


async def test_a_time_without_its_zone_or_a_visitor_id_signed_in_is_refused(
    as_user: AsUser,
) -> None:
    customer = await as_user(CUSTOMER)
    visitor = await as_user(None)
    before = await _nothing_changed()
    naive = await _record(customer, at=datetime.now(UTC).replace(tzinfo=None).isoformat())
    assert (naive["__typename"], naive.get("field")) == ("InvalidInputError", "at")
    issued = await _grant_statistics(visitor) or ""
    before = await _nothing_changed()
    signed_in = await _record(customer, visitorId=issued)
    assert (signed_in["__typename"], signed_in["field"]) == ("InvalidInputError", "visitorId")
    forged = await _record(visitor, visitorId="c1.00000000000000000000000000000000.00")
    assert (forged["__typename"], forged["field"]) == ("InvalidInputError", "visitorId")
    assert await _nothing_changed() == before


async def test_usage_events_are_rate_limited_per_account(
    as_user: AsUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rate_limit, "USAGE_PER_ACCOUNT", rate_limit.Limit("usage:account", 2, 60))
    customer = await as_user(CUSTOMER)
    await _grant_statistics(customer)
    assert [(await _record(customer))["counted"] for _ in range(2)] == [True, True]
    before = await _nothing_changed()
    response = await customer.post(RECORD, {"input": {"feature": "tickets.list", "at": _now()}})
    assert response.status_code == 429
    refused = response.json()["data"]["recordUsage"]
    assert (refused["__typename"], refused["code"]) == ("RateLimitedError", "RATE_LIMITED")
    assert await _nothing_changed() == before


@pytest.mark.promise("P09")
async def test_administrators_read_counts_per_feature_and_day_never_per_person(
    as_user: AsUser,
) -> None:
    today = datetime.now(UTC).date()
    await UsageCount.create(feature="tickets.list", day=today, events=7)
    await UsageCount.create(feature="tickets.reply", day=today - timedelta(days=3), events=2)
    await UsageCount.create(feature="tickets.list", day=today - timedelta(days=40), events=5)
    admin = await as_user(ADMIN)
    span = {"from": (today - timedelta(days=7)).isoformat(), "to": today.isoformat()}
    body = await admin.gql(COUNTS, span)
    assert body == {
        "data": {
            "usageCounts": [
                {
                    "feature": "tickets.reply",
                    "day": (today - timedelta(days=3)).isoformat(),
                    "events": 2,
                },
                {"feature": "tickets.list", "day": today.isoformat(), "events": 7},
            ]
        }
    }
    # The type has nothing that could name a person.
    usage_type = schema._schema.get_type("UsageCount")
    assert usage_type is not None
    assert set(getattr(usage_type, "fields", {})) == {"feature", "day", "events"}


@pytest.mark.parametrize("caller", [CUSTOMER, AGENT, OFFICER, None])
async def test_other_roles_are_refused_the_counts(as_user: AsUser, caller: str | None) -> None:
    await UsageCount.create(feature="tickets.list", day=datetime.now(UTC).date(), events=7)
    today = datetime.now(UTC).date().isoformat()
    body = await (await as_user(caller)).gql(COUNTS, {"from": today, "to": today})
    assert body["data"] == {"usageCounts": None}
    expected = "UNAUTHENTICATED" if caller is None else "FORBIDDEN"
    assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [
        (["usageCounts"], expected)
    ]
    assert "tickets.list" not in repr(body)


@pytest.mark.parametrize(
    ("first_back", "last_back"), [(0, 5), (MAX_DAYS, 0)], ids=["reversed", "too_long"]
)
async def test_a_bad_span_of_days_is_refused(
    as_user: AsUser, first_back: int, last_back: int
) -> None:
    today = datetime.now(UTC).date()
    span = {
        "from": (today - timedelta(days=first_back)).isoformat(),
        "to": (today - timedelta(days=last_back)).isoformat(),
    }
    body = await (await as_user(ADMIN)).gql(COUNTS, span)
    assert body["data"] == {"usageCounts": None}
    assert [e["extensions"]["code"] for e in body["errors"]] == ["INVALID_INPUT"]
    within = {"from": (today - timedelta(days=MAX_DAYS - 1)).isoformat(), "to": today.isoformat()}
    assert (await (await as_user(ADMIN)).gql(COUNTS, within))["data"] == {"usageCounts": []}
