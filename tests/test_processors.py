"""The registry of processors (P15, P30), and what OCIS hands the mail transport (P15)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import settings as config
from models import AuditEvent, Processor, TransferSafeguard
from privacy import mail, notices
from resolvers import processors
from schema.relay import to_global_id
from server import create_app
from tests.helpers import Api, table_counts, user_by_email
from tests.smtp_server import Mailbox

AsUser = Callable[[str | None], Awaitable[Api]]

OFFICER = "privacy@example.com"
CUSTOMER = "customer@example.com"

FIELDS = "id name purpose dataCategories country safeguard contractDate"
LIST = "{ processors { FIELDS } }".replace("FIELDS", FIELDS)
ADD = """
mutation Add($input: AddProcessorInput!) {
  addProcessor(input: $input) {
    __typename
    ... on ProcessorSuccess { processor { FIELDS } }
    ... on UserError { code message }
    ... on InvalidInputError { field }
  }
}
""".replace("FIELDS", FIELDS)
UPDATE = """
mutation Update($input: UpdateProcessorInput!) {
  updateProcessor(input: $input) {
    __typename
    ... on ProcessorSuccess { processor { FIELDS } }
    ... on UserError { code message }
    ... on InvalidInputError { field }
    ... on NotFoundError { field }
  }
}
""".replace("FIELDS", FIELDS)
REMOVE = """
mutation Remove($id: ID!) {
  removeProcessor(id: $id) {
    __typename
    ... on RemoveProcessorSuccess { id }
    ... on UserError { code message }
    ... on InvalidInputError { field }
    ... on NotFoundError { field }
  }
}
"""


def payments(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "Example Payments Ltd",
        "purpose": "Takes card payments for paid plans.",
        "dataCategories": ["name", "payment token", "name"],
        "country": "us",
        "safeguard": "STANDARD_CONTRACTUAL_CLAUSES",
        "contractDate": "2025-06-01",
        **overrides,
    }


async def add(api: Api, **input: Any) -> dict[str, Any]:
    result: dict[str, Any] = (await api.gql(ADD, {"input": input}))["data"]["addProcessor"]
    return result


async def mail_transport(app: Any) -> Processor:
    settings: config.Settings = app.state.settings
    return await processors.register_mail_transport(
        settings.mail_processor_name, settings.mail_processor_country
    )


@pytest.mark.promise("P15")
@pytest.mark.promise("P30")
async def test_the_privacy_officer_keeps_the_registry_and_everyone_reads_it(
    as_user: AsUser, app: Any
) -> None:
    transport = await mail_transport(app)
    officer = await as_user(OFFICER)
    added = await add(officer, **payments())
    assert added["__typename"] == "ProcessorSuccess"
    entry = added["processor"]
    assert {k: v for k, v in entry.items() if k != "id"} == {
        "name": "Example Payments Ltd",
        "purpose": "Takes card payments for paid plans.",
        "dataCategories": ["name", "payment token"],
        "country": "US",
        "safeguard": "STANDARD_CONTRACTUAL_CLAUSES",
        "contractDate": "2025-06-01",
    }
    anonymous = await as_user(None)
    listed = (await anonymous.gql(LIST))["data"]["processors"]
    assert [(p["name"], p["country"], p["safeguard"]) for p in listed] == [
        ("Example Payments Ltd", "US", "STANDARD_CONTRACTUAL_CLAUSES"),
        ("Mail transport (SMTP relay)", "EU", "NOT_NEEDED_EEA"),
    ]

    moved = await officer.gql(
        UPDATE,
        {
            "input": {
                "id": entry["id"],
                "country": "IE",
                "safeguard": "NOT_NEEDED_EEA",
                "contractDate": None,
            }
        },
    )
    updated = moved["data"]["updateProcessor"]["processor"]
    assert (updated["country"], updated["safeguard"], updated["contractDate"]) == (
        "IE",
        "NOT_NEEDED_EEA",
        None,
    )
    assert updated["name"] == "Example Payments Ltd"

    removed = (await officer.gql(REMOVE, {"id": entry["id"]}))["data"]["removeProcessor"]
    assert removed == {"__typename": "RemoveProcessorSuccess", "id": entry["id"]}
    assert [p.name for p in await Processor.all()] == [transport.name]

    officer_account = await user_by_email(OFFICER)
    trail = await AuditEvent.filter(entity="Processor").order_by("seq")
    assert [(e.action, e.actor_id, e.subject_id, e.field_names) for e in trail] == [
        (
            "processor.add",
            officer_account.id,
            None,
            [
                "Processor.contractDate",
                "Processor.country",
                "Processor.dataCategories",
                "Processor.name",
                "Processor.purpose",
                "Processor.safeguard",
            ],
        ),
        (
            "processor.update",
            officer_account.id,
            None,
            ["Processor.contractDate", "Processor.country", "Processor.safeguard"],
        ),
        ("processor.remove", officer_account.id, None, []),
    ]
    assert {e.entity_id for e in trail} == {str(await _id_of(entry["id"]))}


async def _id_of(global_id: str) -> Any:
    from schema.relay import from_global_id

    return from_global_id(global_id, "Processor")[1]


@pytest.mark.promise("P15")
@pytest.mark.parametrize(
    "email",
    ["customer@example.com", "agent@example.com", "lead@example.com", "admin@example.com", None],
)
async def test_only_the_privacy_officer_changes_the_registry(
    as_user: AsUser, app: Any, email: str | None
) -> None:
    transport = await mail_transport(app)
    ident = to_global_id("Processor", transport.id)
    caller = await as_user(email)
    before = await table_counts()
    answers = [
        await add(caller, **payments()),
        (await caller.gql(UPDATE, {"input": {"id": ident, "country": "US"}}))["data"][
            "updateProcessor"
        ],
        (await caller.gql(REMOVE, {"id": ident}))["data"]["removeProcessor"],
    ]
    expected = "UNAUTHENTICATED" if email is None else "FORBIDDEN"
    assert [answer["code"] for answer in answers] == [expected] * 3
    assert await table_counts() == before
    assert (await Processor.get(id=transport.id)).country == "EU"


def _tomorrow() -> str:
    return (datetime.now(UTC).date() + timedelta(days=1)).isoformat()


@pytest.mark.promise("P30")
@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"country": "XX"}, "country"),
        ({"country": "USA"}, "country"),
        ({"country": ""}, "country"),
        ({"safeguard": "NOT_NEEDED_EEA"}, "safeguard"),
        ({"dataCategories": []}, "dataCategories"),
        ({"dataCategories": ["  "]}, "dataCategories"),
        ({"dataCategories": [f"c{n}" for n in range(31)]}, "dataCategories"),
        ({"name": "  "}, "name"),
        ({"name": "Mail transport (SMTP relay)"}, "name"),
        ({"purpose": ""}, "purpose"),
        ({"contractDate": "tomorrow"}, "contractDate"),
        ({"contractDate": "1970-01-01"}, "contractDate"),
    ],
    ids=[
        "unknown-country",
        "alpha-3",
        "no-country",
        "eea-safeguard-outside-eea",
        "no-categories",
        "blank-category",
        "too-many-categories",
        "blank-name",
        "duplicate-name",
        "no-purpose",
        "future-contract",
        "ancient-contract",
    ],
)
async def test_a_bad_processor_is_refused_with_a_typed_error_and_changes_nothing(
    as_user: AsUser, app: Any, overrides: dict[str, Any], field: str
) -> None:
    await mail_transport(app)
    officer = await as_user(OFFICER)
    if overrides.get("contractDate") == "tomorrow":
        overrides = {"contractDate": _tomorrow()}
    before = await table_counts()
    result = await add(officer, **payments(**overrides))
    assert (result["__typename"], result["code"], result["field"]) == (
        "InvalidInputError",
        "INVALID_INPUT",
        field,
    ), result
    assert await table_counts() == before


@pytest.mark.promise("P30")
async def test_a_bad_correction_is_refused_and_keeps_the_entry(as_user: AsUser, app: Any) -> None:
    officer = await as_user(OFFICER)
    entry = (await add(officer, **payments()))["processor"]
    before = await table_counts()
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"country": "ZZ"}, "InvalidInputError", "country"),
        ({"safeguard": "NOT_NEEDED_EEA"}, "InvalidInputError", "safeguard"),
        ({"dataCategories": []}, "InvalidInputError", "dataCategories"),
    ]
    for change, typename, field in cases:
        body = await officer.gql(UPDATE, {"input": {"id": entry["id"], **change}})
        answer = body["data"]["updateProcessor"]
        assert (answer["__typename"], answer["field"]) == (typename, field)
    missing = to_global_id("Processor", uuid.uuid4())
    gone = (await officer.gql(UPDATE, {"input": {"id": missing, "country": "IE"}}))["data"]
    assert gone["updateProcessor"]["__typename"] == "NotFoundError"
    wrong = to_global_id("User", uuid.uuid4())
    mistyped = (await officer.gql(REMOVE, {"id": wrong}))["data"]["removeProcessor"]
    assert (mistyped["__typename"], mistyped["field"]) == ("InvalidInputError", "id")
    assert await table_counts() == before
    listed = (await officer.gql(LIST))["data"]["processors"]
    assert listed == [entry]


@pytest.mark.promise("P15")
async def test_the_mail_transport_is_registered_at_start_up_and_cannot_be_removed(
    app_settings: config.Settings,
) -> None:
    settings = replace(
        app_settings, mail_processor_name="Example Mail Relay", mail_processor_country="us"
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        await Processor.all().delete()
    async with application.router.lifespan_context(application):
        (row,) = await Processor.all()
        assert (row.name, row.country, row.safeguard, row.system_role) == (
            "Example Mail Relay",
            "US",
            TransferSafeguard.STANDARD_CONTRACTUAL_CLAUSES,
            "mail_transport",
        )
        assert row.data_categories == ["email address", "email subject", "email text"]
        # The privacy officer's corrections survive the next start.
        await Processor.filter(id=row.id).update(country="IE", contract_date="2024-01-31")
    async with application.router.lifespan_context(application):
        (again,) = await Processor.all()
        assert (again.id, again.country) == (row.id, "IE")


@pytest.mark.promise("P15")
async def test_the_mail_transport_stays_in_the_registry(as_user: AsUser, app: Any) -> None:
    transport = await mail_transport(app)
    officer = await as_user(OFFICER)
    ident = to_global_id("Processor", transport.id)
    refused = (await officer.gql(REMOVE, {"id": ident}))["data"]["removeProcessor"]
    assert (refused["__typename"], refused["field"]) == ("InvalidInputError", "id")
    assert await Processor.exists(id=transport.id)
    corrected = await officer.gql(
        UPDATE, {"input": {"id": ident, "name": "Example Mail Relay", "country": "DE"}}
    )
    assert corrected["data"]["updateProcessor"]["processor"]["country"] == "DE"


# Everything a mail of OCIS carries in its header: delivery needs these and nothing else.
MAIL_HEADERS = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Auto-Submitted",
    "Content-Type",
    "Content-Transfer-Encoding",
    "MIME-Version",
]


@pytest.mark.promise("P15")
async def test_the_mail_transport_gets_the_address_subject_and_text_and_nothing_else(
    demo: None, app: Any, smtp: Mailbox
) -> None:
    settings = replace(app.state.settings, smtp_url=smtp.url, mail_from="OCIS <no-reply@ocis.test>")
    person = await user_by_email(CUSTOMER)
    notice = await notices.notify(person.id, "identity.linked", provider="Google")
    composed = mail.compose(settings, notice, CUSTOMER)
    assert sorted(composed.keys()) == sorted(MAIL_HEADERS)
    assert composed["To"] == CUSTOMER  # the bare address: no display name
    assert composed["From"] == "OCIS <no-reply@ocis.test>"
    assert composed["Auto-Submitted"] == "auto-generated"
    assert re.fullmatch(rf"<[^@]*{notice.id.hex}[^@]*@ocis\.test>", composed["Message-ID"])
    assert composed.get_content_type() == "text/plain"

    assert await mail.deliver_due(settings) == mail.Delivery(sent=1)
    (got,) = smtp.received
    assert sorted(got.message.keys()) == sorted(MAIL_HEADERS)
    assert (got.sender, got.recipients) == ("no-reply@ocis.test", [CUSTOMER])
    everything = got.message.as_string()
    # None of the person's other data: not their name, account id, locale or time zone.
    for value in (person.name, str(person.id), person.id.hex):
        assert value not in everything
    assert "X-" not in "".join(f"{key}\n" for key in got.message.keys())


def test_the_mail_transports_country_is_a_two_letter_code() -> None:
    assert (
        config.from_environ({"OCIS_MAIL_PROCESSOR_COUNTRY": " de "}).mail_processor_country == "DE"
    )
    assert config.from_environ({}).mail_processor_country == "EU"
    for bad in ("DEU", "1E", "Ü1"):
        with pytest.raises(config.ConfigurationError, match="OCIS_MAIL_PROCESSOR_COUNTRY"):
            config.from_environ({"OCIS_MAIL_PROCESSOR_COUNTRY": bad})
