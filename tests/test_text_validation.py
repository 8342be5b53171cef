"""One validator for free text and names (issue 9.12): NFC, no control, bidi-override or
unassigned characters, patterns without a trailing newline, email-validator for addresses,
and no channel or priority chosen by customers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from graphql import get_named_type, is_input_object_type

from models import Ticket, User, crypto
from resolvers import validation
from resolvers.errors import InvalidInput
from resolvers.payments import CardReference, _checked
from schema import schema
from tests.helpers import Api, database_rows, unique_email, user_by_email

CUSTOMER = "customer@example.com"
AGENT = "agent@example.com"

C0_CONTROLS = ["\x00", "\x07", "\x1b", "\r", "\x7f"]
C1_CONTROLS = ["\x80", "\x85", "\x9b", "\x9f"]
BIDI = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"]
UNASSIGNED = ["\u0378", "\ufdd0", "\uffff", "\U0010fffe", "\ud800", "\udfff"]
REFUSED_EVERYWHERE = C0_CONTROLS + C1_CONTROLS + BIDI + UNASSIGNED


def _refused(check: Callable[[str], object], value: str, field: str) -> InvalidInput:
    with pytest.raises(InvalidInput) as raised:
        check(value)
    assert raised.value.field == field
    return raised.value


# --- the validator itself -------------------------------------------------------------------


def test_text_is_stored_in_nfc() -> None:
    decomposed = "Rene\u0301e"
    assert len(decomposed) == 6
    assert validation.text(decomposed, "name", max_length=200) == "Ren\u00e9e"
    body = validation.text("Cafe\u0301\nOK\n", "body", max_length=7, multiline=True)
    assert body == "Caf\u00e9\nOK"


@pytest.mark.parametrize("char", REFUSED_EVERYWHERE, ids=lambda char: f"U+{ord(char):04X}")
@pytest.mark.parametrize("multiline", [False, True], ids=["line", "body"])
def test_control_bidi_and_unassigned_characters_are_refused(char: str, multiline: bool) -> None:
    error = _refused(
        lambda value: validation.text(value, "body", max_length=100, multiline=multiline),
        f"before{char}after",
        "body",
    )
    assert char not in error.message


@pytest.mark.parametrize("char", ["\n", "\t", "\u2028", "\u2029"], ids=repr)
def test_line_breaks_and_tabs_only_in_bodies(char: str) -> None:
    value = f"first{char}second"
    assert validation.text(value, "body", max_length=100, multiline=True) == value
    _refused(lambda v: validation.text(v, "name", max_length=100), value, "name")
    _refused(lambda v: validation.text(v, "name", max_length=100), f"Ada{char}", "name")


@pytest.mark.parametrize("mark", ["\u200e", "\u200f", "\u061c"], ids=["LRM", "RLM", "ALM"])
def test_bidi_marks_that_reorder_nothing_stay_allowed(mark: str) -> None:
    value = f"\u05e9\u05dc\u05d5\u05dd{mark} 42"
    assert validation.text(value, "name", max_length=100) == value


PATTERNS: list[tuple[str, Callable[[str], object], str]] = [
    ("email", validation.email, "person@example.com"),
    ("phone", validation.phone, "+44 20 7946 0000"),
    ("username", validation.username, "rosa_r"),
    ("locale", validation.locale, "pt-BR"),
    ("timeZone", validation.time_zone, "Europe/Lisbon"),
]


@pytest.mark.parametrize(("field", "check", "sample"), PATTERNS, ids=[p[0] for p in PATTERNS])
def test_no_pattern_accepts_a_trailing_newline(
    field: str, check: Callable[[str], object], sample: str
) -> None:
    assert check(sample) == sample
    for suffix in ("\n", "\r\n", "\n\n", "\x85"):
        _refused(check, sample + suffix, field)
    _refused(check, f"{sample}\nx", field)


def test_a_gateway_token_with_a_trailing_newline_is_refused() -> None:
    year = datetime.now(UTC).year + 2
    card = CardReference("tok_visa_12345678", "visa", "4242", 12, year)
    assert _checked(card, datetime.now(UTC)) == card
    for broken in (
        CardReference("tok_visa_12345678\n", "visa", "4242", 12, year),
        CardReference("tok_visa_12345678", "visa", "4242\n", 12, year),
        CardReference("tok_visa_12345678", "visa", "\u0664\u0662\u0664\u0662", 12, year),
    ):
        with pytest.raises(InvalidInput):
            _checked(broken, datetime.now(UTC))


@pytest.mark.parametrize(
    "address",
    [
        "a..b@example.com",
        ".a@example.com",
        "a@example.invalid",
        "a@-example.com",
        "a b@example.com",
        "a@b@example.com",
        "a@localhost",
    ],
)
def test_email_addresses_are_checked_by_email_validator(address: str) -> None:
    error = _refused(validation.email, address, "email")
    assert error.message == "Enter a valid email address."


def test_email_domains_are_kept_in_ascii_so_existing_blind_indexes_still_match() -> None:
    ring = crypto.Keyring.from_master_key(b"k" * 32)
    stored = validation.email("  Rosa.Registrant@Example.COM ")
    assert stored == "Rosa.Registrant@example.com"
    assert ring.blind_index(stored) == ring.blind_index("Rosa.Registrant@Example.COM")
    assert validation.email("Jose\u0301@B\u00fccher.example") == "Jos\u00e9@xn--bcher-kva.example"
    assert validation.email("a@xn--bcher-kva.example") == "a@xn--bcher-kva.example"


# --- through the API ----------------------------------------------------------------------

CREATE_TICKET = """
mutation Open($input: CreateTicketInput!) {
  createTicket(input: $input) {
    __typename
    ... on TicketSuccess { ticket { id priority channel } }
    ... on InvalidInputError { code field }
  }
}
"""


async def test_a_decomposed_name_is_stored_composed(as_user: Any) -> None:
    customer = await as_user(CUSTOMER)
    body = await customer.gql(
        "mutation($input: UpdateProfileInput!) { updateProfile(input: $input) { __typename } }",
        {"input": {"name": "Rene\u0301e Client"}},
    )
    assert body["data"]["updateProfile"]["__typename"] == "UpdateProfileSuccess"
    assert (await user_by_email(CUSTOMER)).name == "Ren\u00e9e Client"


@pytest.mark.parametrize(
    ("choice", "field"),
    [({"channel": "EMAIL"}, "channel"), ({"priority": "HIGH"}, "priority")],
    ids=["channel", "priority"],
)
async def test_customers_cannot_choose_the_email_channel_or_a_priority(
    as_user: Any, choice: dict[str, str], field: str
) -> None:
    customer = await as_user(CUSTOMER)
    before = await database_rows()
    body = await customer.gql(
        CREATE_TICKET, {"input": {"subject": "Printer", "body": "It jams.", **choice}}
    )
    assert body["data"]["createTicket"] == {
        "__typename": "InvalidInputError",
        "code": "INVALID_INPUT",
        "field": field,
    }
    assert await database_rows() == before
    served = await customer.gql(
        CREATE_TICKET,
        {"input": {"subject": "Printer", "body": "It jams.", "channel": "MOBILE"}},
    )
    ticket = served["data"]["createTicket"]["ticket"]
    assert (ticket["priority"], ticket["channel"]) == ("NORMAL", "MOBILE")


async def test_staff_choose_the_channel_and_priority(as_user: Any) -> None:
    agent = await as_user(AGENT)
    body = await agent.gql(
        CREATE_TICKET,
        {
            "input": {
                "subject": "Call back",
                "body": "Wrote in.",
                "channel": "EMAIL",
                "priority": "URGENT",
                "requesterEmail": unique_email(),
            }
        },
    )
    ticket = body["data"]["createTicket"]["ticket"]
    assert (ticket["priority"], ticket["channel"]) == ("URGENT", "EMAIL")
    assert await Ticket.filter(priority="urgent", channel="email").count() == 1


# Every String a mutation takes: the caller who sends it, a value that would be accepted,
# and the rest of a valid input. A new String input fails the test until it is listed here.
PASSWORD = "a long enough password"


def _register() -> dict[str, Any]:
    return {
        "name": "Nia New",
        "email": unique_email(),
        "password": PASSWORD,
        "dateOfBirth": "1990-05-17",
    }


def _card() -> dict[str, Any]:
    return {
        "gatewayToken": "tok_visa_12345678",
        "brand": "visa",
        "last4": "4242",
        "expMonth": 12,
        "expYear": datetime.now(UTC).year + 2,
    }


BASES: dict[str, tuple[str | None, Callable[[], dict[str, Any]]]] = {
    "register": (None, _register),
    "updateProfile": (CUSTOMER, dict),
    "createTicket": (CUSTOMER, lambda: {"subject": "Printer jams", "body": "It jams."}),
    "addMessage": (CUSTOMER, lambda: {"body": "Thanks."}),
    "submitPrivacyRequest": (CUSTOMER, lambda: {"kind": "ACCESS"}),
    "addPaymentMethod": (CUSTOMER, _card),
}
COVERED: dict[tuple[str, str], str] = {
    ("register", "name"): "Nia New",
    ("register", "email"): "nia@example.com",
    ("register", "phone"): "+44 20 7946 0000",
    ("register", "username"): "nia_new",
    ("register", "locale"): "pt-BR",
    ("register", "timeZone"): "Europe/Lisbon",
    ("updateProfile", "name"): "Carla C.",
    ("updateProfile", "phone"): "+44 20 7946 0001",
    ("updateProfile", "locale"): "en-GB",
    ("updateProfile", "timeZone"): "Europe/Paris",
    ("createTicket", "subject"): "Printer jams",
    ("createTicket", "body"): "It jams.\nEvery time.",
    ("createTicket", "requesterEmail"): "walk.in@example.com",
    ("createTicket", "requesterName"): "Walk In",
    ("addMessage", "body"): "Thanks.\n\tStill broken.",
    ("submitPrivacyRequest", "details"): "Please send\nmy data.",
    ("addPaymentMethod", "gatewayToken"): "tok_visa_12345678",
    ("addPaymentMethod", "brand"): "visa",
    ("addPaymentMethod", "last4"): "4242",
}
# Staff open tickets for someone who wrote in.
CALLER_OF = {("createTicket", "requesterEmail"): AGENT, ("createTicket", "requesterName"): AGENT}
NOT_TEXT: dict[tuple[str, str], str] = {
    ("register", "password"): "a secret, compared as typed and never shown: any character a"
    " password manager makes is fine, and changing it would lock its owner out",
}
BAD = {"bidi override": "\u202e", "C1 NEL": "\x85", "ESC": "\x1b"}


def _string_inputs() -> dict[tuple[str, str], str]:
    """Every String argument or input field of every mutation, with its input type."""
    found: dict[tuple[str, str], str] = {}
    mutation = schema._schema.mutation_type
    assert mutation is not None
    for name, field in mutation.fields.items():
        for argument_name, argument in field.args.items():
            named = get_named_type(argument.type)
            if is_input_object_type(named):
                for input_name, input_field in named.fields.items():
                    if get_named_type(input_field.type).name == "String":
                        found[(name, input_name)] = str(argument.type)
            elif named.name == "String":
                found[(name, argument_name)] = str(argument.type)
    return found


def test_every_string_input_of_every_mutation_is_covered_or_listed_with_a_reason() -> None:
    assert set(_string_inputs()) == set(COVERED) | set(NOT_TEXT)
    assert set(COVERED).isdisjoint(NOT_TEXT)
    assert {mutation for mutation, _ in COVERED} == set(BASES)


async def test_every_text_input_refuses_bidi_c1_and_escape_and_stores_nothing(
    app: Any, as_user: Any
) -> None:
    inputs = _string_inputs()
    callers: dict[str | None, Api] = {}
    for email in {None, CUSTOMER, AGENT}:
        callers[email] = await as_user(email)
    listed = await callers[CUSTOMER].gql("{ tickets(first: 1) { edges { node { id } } } }")
    ticket_id = listed["data"]["tickets"]["edges"][0]["node"]["id"]
    store = app.state.store
    checked = 0
    for (mutation, field), sample in COVERED.items():
        default_caller, base = BASES[mutation]
        caller = callers[CALLER_OF.get((mutation, field), default_caller)]
        document = (
            f"mutation Case($input: {inputs[(mutation, field)]}) {{ {mutation}(input: $input)"
            " { __typename ... on InvalidInputError { field code } } }"
        )
        for label, char in BAD.items():
            async for key in store.scan_iter(match="ocis:rl:*"):
                await store.delete(key)
            value = base() | ({"ticketId": ticket_id} if mutation == "addMessage" else {})
            if (mutation, field) in CALLER_OF:
                value.setdefault("requesterEmail", unique_email())
            value[field] = sample[:1] + char + sample[1:]
            before = await database_rows()
            body = await caller.gql(document, {"input": value})
            assert body.get("errors") is None, (mutation, field, label, body)
            assert body["data"][mutation] == {
                "__typename": "InvalidInputError",
                "field": field,
                "code": "INVALID_INPUT",
            }, (mutation, field, label)
            assert await database_rows() == before, (mutation, field, label)
            checked += 1
    assert checked == len(COVERED) * len(BAD)


async def test_the_samples_are_accepted_without_the_bad_character(as_user: Any) -> None:
    """The loop above proves a refusal only if the same input passes without the character."""
    customer = await as_user(CUSTOMER)
    agent = await as_user(AGENT)
    registered = await (await as_user(None)).gql(
        "mutation($input: RegisterInput!) { register(input: $input) { __typename } }",
        {
            "input": _register()
            | {
                field: sample
                for (mutation, field), sample in COVERED.items()
                if mutation == "register" and field != "email"
            }
        },
    )
    assert registered["data"]["register"]["__typename"] == "RegisterSuccess"
    profile = await customer.gql(
        "mutation($input: UpdateProfileInput!) { updateProfile(input: $input) { __typename } }",
        {"input": {f: s for (m, f), s in COVERED.items() if m == "updateProfile"}},
    )
    assert profile["data"]["updateProfile"]["__typename"] == "UpdateProfileSuccess"
    opened = await agent.gql(
        CREATE_TICKET, {"input": {f: s for (m, f), s in COVERED.items() if m == "createTicket"}}
    )
    assert opened["data"]["createTicket"]["__typename"] == "TicketSuccess"
    listed = await customer.gql("{ tickets(first: 1) { edges { node { id } } } }")
    replied = await customer.gql(
        "mutation($input: AddMessageInput!) { addMessage(input: $input) { __typename } }",
        {
            "input": {
                "ticketId": listed["data"]["tickets"]["edges"][0]["node"]["id"],
                "body": COVERED[("addMessage", "body")],
            }
        },
    )
    assert replied["data"]["addMessage"]["__typename"] == "AddMessageSuccess"
    requested = await customer.gql(
        "mutation($input: SubmitPrivacyRequestInput!) {"
        " submitPrivacyRequest(input: $input) { __typename } }",
        {"input": {"kind": "ACCESS", "details": COVERED[("submitPrivacyRequest", "details")]}},
    )
    assert requested["data"]["submitPrivacyRequest"]["__typename"] == "PrivacyRequestSuccess"
    card = {f: s for (m, f), s in COVERED.items() if m == "addPaymentMethod"}
    added = await customer.gql(
        "mutation($input: AddPaymentMethodInput!) {"
        " addPaymentMethod(input: $input) { __typename } }",
        {"input": _card() | card},
    )
    assert added["data"]["addPaymentMethod"]["__typename"] == "AddPaymentMethodSuccess"
    user = await User.get(email_index=crypto.blind_index(CUSTOMER))
    assert (user.name, user.locale, user.time_zone) == ("Carla C.", "en-GB", "Europe/Paris")
