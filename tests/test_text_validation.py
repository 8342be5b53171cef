"""One validator for free text and names (issue 9.12): NFC, no control, bidi-override or
unassigned characters, patterns without a trailing newline, email-validator for addresses,
and no channel or priority chosen by customers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast
from uuid import uuid4

import pytest
from graphql import get_named_type, is_input_object_type

from models import Notice, Team, Ticket, User, crypto
from privacy import notices
from resolvers import validation
from resolvers.errors import InvalidInput
from resolvers.payments import CardReference, _checked
from resolvers.staff import INVITATION_PATH
from schema import schema
from schema.relay import from_global_id
from tests.helpers import DEMO_PASSWORD, Api, database_rows, unique_email, user_by_email

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
ADMIN = "admin@example.com"
OFFICER = "privacy@example.com"
INVITED = "invited.agent@example.com"
POLICY_URL = "https://ocis.example.com/privacy/2026-03"


@dataclass(frozen=True, slots=True)
class Existing:
    """Rows some mutations need before they can be called at all."""

    ticket_id: str
    team_id: str
    processor_id: str
    invitation_token: str
    # An open privacy request of the customer per officer step, in the status it starts from.
    privacy_requests: dict[str, str]


def _register(_: Existing) -> dict[str, Any]:
    return {
        "name": "Nia New",
        "email": unique_email(),
        "password": PASSWORD,
        "dateOfBirth": "1990-05-17",
    }


def _card(_: Existing) -> dict[str, Any]:
    return {
        "gatewayToken": "tok_visa_12345678",
        "brand": "visa",
        "last4": "4242",
        "expMonth": 12,
        "expYear": datetime.now(UTC).year + 2,
    }


def _processor(_: Existing) -> dict[str, Any]:
    return {
        "name": f"Processor {uuid4().hex[:8]}",
        "purpose": "Sends mail.",
        "dataCategories": ["email address"],
        "country": "IE",
        "safeguard": "ADEQUACY_DECISION",
    }


Base = Callable[[Existing], dict[str, Any]]
BASES: dict[str, tuple[str | None, Base]] = {
    "register": (None, _register),
    "updateProfile": (CUSTOMER, lambda _: {}),
    "createTicket": (CUSTOMER, lambda _: {"subject": "Printer jams", "body": "It jams."}),
    "addMessage": (CUSTOMER, lambda e: {"ticketId": e.ticket_id, "body": "Thanks."}),
    "submitPrivacyRequest": (CUSTOMER, lambda _: {"kind": "ACCESS"}),
    "addPaymentMethod": (CUSTOMER, _card),
    "changeEmail": (CUSTOMER, lambda _: {"newEmail": unique_email(), "password": DEMO_PASSWORD}),
    "requestPasswordReset": (None, lambda _: {"email": unique_email()}),
    "acceptPolicyVersion": (CUSTOMER, lambda _: {"version": "2026-03"}),
    "inviteStaff": (ADMIN, lambda _: {"email": unique_email(), "roles": ["AGENT"]}),
    # Signed out: the name and password make the staff account.
    "acceptInvitation": (
        None,
        lambda e: {"token": e.invitation_token, "name": "Ina Invited", "password": PASSWORD},
    ),
    "createTeam": (ADMIN, lambda _: {"name": f"Team {uuid4().hex[:8]}"}),
    "renameTeam": (ADMIN, lambda e: {"id": e.team_id, "name": f"Team {uuid4().hex[:8]}"}),
    "publishPolicyVersion": (
        ADMIN,
        lambda _: {"version": "2026-04", "significant": False, "url": POLICY_URL},
    ),
    "sendNoticeToAllUsers": (ADMIN, lambda _: {"title": "Maintenance", "body": "Tonight."}),
    "addProcessor": (OFFICER, _processor),
    "registerPrivacyRequest": (
        OFFICER,
        lambda _: {
            "kind": "ACCESS",
            "subjectEmail": "customer2@example.com",
            "receivedAt": datetime.now(UTC).isoformat(),
            "verificationMethod": "EMAIL_LINK",
        },
    ),
    "verifyIdentity": (
        OFFICER,
        lambda e: {"requestId": e.privacy_requests["verifyIdentity"], "method": "EMAIL_LINK"},
    ),
    "startPrivacyRequest": (
        OFFICER,
        lambda e: {"requestId": e.privacy_requests["startPrivacyRequest"]},
    ),
    "completePrivacyRequest": (
        OFFICER,
        lambda e: {"requestId": e.privacy_requests["completePrivacyRequest"], "outcome": "Done."},
    ),
    "rejectPrivacyRequest": (
        OFFICER,
        lambda e: {"requestId": e.privacy_requests["rejectPrivacyRequest"], "reason": "No."},
    ),
    "extendPrivacyRequest": (
        OFFICER,
        lambda e: {
            "requestId": e.privacy_requests["extendPrivacyRequest"],
            "months": 1,
            "reason": "Later.",
        },
    ),
    "updateProcessor": (OFFICER, lambda e: {"id": e.processor_id}),
    "createCampaign": (ADMIN, lambda _: {"subject": "Spring news", "body": "Dark mode."}),
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
    ("changeEmail", "newEmail"): "carla.new@example.com",
    ("requestPasswordReset", "email"): "customer@example.com",
    ("acceptPolicyVersion", "version"): "2026-03",
    ("inviteStaff", "email"): "new.staff@example.com",
    ("acceptInvitation", "name"): "Ina Invited",
    ("createTeam", "name"): "Night shift",
    ("renameTeam", "name"): "Weekend shift",
    ("publishPolicyVersion", "version"): "2026-04",
    ("publishPolicyVersion", "url"): "https://ocis.example.com/privacy/2026-04",
    (
        "publishPolicyVersion",
        "text",
    ): "We keep what you tell us.\n\nAnd for no longer than we need.",
    ("publishPolicyVersion", "summary"): "Shorter retention.",
    ("sendNoticeToAllUsers", "title"): "Maintenance tonight",
    (
        "sendNoticeToAllUsers",
        "body",
    ): "OCIS is down from 22:00 to 23:00 UTC.\nSorry for the trouble.",
    ("createCampaign", "subject"): "Spring news",
    ("createCampaign", "body"): "Dark mode is here.\nTry it today.",
    ("addProcessor", "name"): "Example Mail Ltd",
    ("addProcessor", "purpose"): "Sends our mail.",
    ("addProcessor", "dataCategories"): "email address",
    ("addProcessor", "country"): "US",
    ("updateProcessor", "name"): "Example Mail Group",
    ("updateProcessor", "purpose"): "Sends our mail and texts.",
    ("updateProcessor", "dataCategories"): "phone number",
    ("updateProcessor", "country"): "DE",
    ("registerPrivacyRequest", "subjectEmail"): "customer2@example.com",
    ("registerPrivacyRequest", "details"): "Mail of 3 May:\nplease erase me.",
    ("registerPrivacyRequest", "verificationNote"): "Wrote from the account's address.",
    ("verifyIdentity", "note"): "Signed in when asking.",
    ("startPrivacyRequest", "note"): "Export job queued.",
    ("completePrivacyRequest", "outcome"): "Your export:\nsent by mail.",
    ("rejectPrivacyRequest", "reason"): "This account is\nnot yours.",
    ("extendPrivacyRequest", "reason"): "Archives are restored first.",
}
# Staff open tickets for someone who wrote in.
CALLER_OF = {("createTicket", "requesterEmail"): AGENT, ("createTicket", "requesterName"): AGENT}
_SECRET = (
    "a secret, compared as typed and never shown: any character a password manager makes is"
    " fine, and changing it would lock its owner out"
)
_TOKEN = (
    "a token from a link we mailed, only compared (by its hash) with the ones we issued:"
    " anything else is an invalid link, and it is never stored or shown"
)
_CONSENT_ID = (
    "a consent id we issued, only checked against its HMAC: anything else is refused"
    " (tests/test_visitor_consent.py), and only its random id is stored"
)
_LEGAL = (
    "checked by validation.text like every staff text; its refusals are tested in"
    " tests/test_holds.py, where the accounts they name exist"
)
NOT_TEXT: dict[tuple[str, str], str] = {
    ("register", "password"): _SECRET,
    ("acceptInvitation", "password"): _SECRET,
    ("changeEmail", "password"): _SECRET,
    ("changePassword", "currentPassword"): _SECRET,
    ("changePassword", "newPassword"): _SECRET,
    ("resetPassword", "newPassword"): _SECRET,
    ("acceptInvitation", "token"): _TOKEN,
    ("verifyEmail", "token"): _TOKEN,
    ("resetPassword", "token"): _TOKEN,
    ("confirmEmailChange", "token"): _TOKEN,
    ("grantConsent", "visitorId"): _CONSENT_ID,
    ("withdrawConsent", "visitorId"): _CONSENT_ID,
    ("setConsent", "visitorId"): _CONSENT_ID,
    ("recordUsage", "visitorId"): _CONSENT_ID,
    ("recordUsage", "feature"): "matched against a closed pattern (lower-case words joined by dots"
    " or underscores), never free text: any other value is refused (tests/test_usage.py)",
    ("liftRestriction", "reason"): "checked by validation.text like every officer's reason; its"
    " refusals are tested in tests/test_restriction.py, where a restricted subject exists",
    ("verifyEmail", "visitorId"): _CONSENT_ID,
    ("placeLegalHold", "authority"): _LEGAL,
    ("placeLegalHold", "reference"): _LEGAL,
    ("placeLegalHold", "reason"): _LEGAL,
    ("recordLegalDisclosure", "authority"): _LEGAL,
    ("recordLegalDisclosure", "legalBasis"): _LEGAL,
    ("recordLegalDisclosure", "dataCategories"): _LEGAL,
    ("flagChildAccount", "reason"): _LEGAL,
    ("setNoticePreference", "kind"): "matched exactly against the known kinds of notice and"
    " never stored otherwise: any other value is refused (see the test below)",
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
                        found[(name, input_name)] = str(input_field.type)
            elif named.name == "String":
                found[(name, argument_name)] = str(argument.type)
    return found


def _takes_input(mutation: str) -> bool:
    """`m(input: {...})` rather than plain arguments `m(a: ..., b: ...)`."""
    arguments = schema._schema.mutation_type.fields[mutation].args  # type: ignore[union-attr]
    return list(arguments) == ["input"] and is_input_object_type(
        get_named_type(arguments["input"].type)
    )


def _document(mutation: str) -> str:
    """The mutation with every argument as a variable, as the schema declares it."""
    arguments = schema._schema.mutation_type.fields[mutation].args  # type: ignore[union-attr]
    declared = ", ".join(f"${name}: {argument.type}" for name, argument in arguments.items())
    passed = ", ".join(f"{name}: ${name}" for name in arguments)
    return (
        f"mutation Case({declared}) {{ {mutation}({passed})"
        " { __typename ... on InvalidInputError { field code } } }"
    )


def _variables(mutation: str, values: dict[str, Any]) -> dict[str, Any]:
    return {"input": values} if _takes_input(mutation) else values


def _value(mutation: str, field: str, text: str) -> str | list[str]:
    """A list input (dataCategories) gets a valid item first: every item is checked."""
    if _string_inputs()[(mutation, field)].startswith("["):
        return ["name", text]
    return text


async def _existing(callers: dict[str | None, Api]) -> Existing:
    listed = await callers[CUSTOMER].gql("{ tickets(first: 1) { edges { node { id } } } }")
    team = await callers[ADMIN].gql(
        'mutation { createTeam(name: "Fixture team") { ... on TeamSuccess { team { id } } } }'
    )
    processor = await callers[OFFICER].gql(
        "mutation($input: AddProcessorInput!) { addProcessor(input: $input) {"
        " ... on ProcessorSuccess { processor { id } } } }",
        {"input": _processor(cast(Existing, None)) | {"name": "Fixture Processor"}},
    )
    invited = await callers[ADMIN].gql(
        "mutation($e: String!) { inviteStaff(email: $e, roles: [AGENT]) { __typename } }",
        {"e": INVITED},
    )
    assert invited["data"]["inviteStaff"]["__typename"] == "InviteStaffSuccess", invited
    notice = await Notice.filter(kind="staff.invited").order_by("-created_at").first()
    assert notice is not None
    assert notice.link
    published = await callers[ADMIN].gql(
        "mutation($input: PublishPolicyVersionInput!) {"
        " publishPolicyVersion(input: $input) { __typename } }",
        {"input": {"version": "2026-03", "significant": False, "url": POLICY_URL}},
    )
    assert published["data"]["publishPolicyVersion"]["__typename"] == (
        "PublishPolicyVersionSuccess"
    ), published
    return Existing(
        ticket_id=listed["data"]["tickets"]["edges"][0]["node"]["id"],
        team_id=team["data"]["createTeam"]["team"]["id"],
        processor_id=processor["data"]["addProcessor"]["processor"]["id"],
        invitation_token=notice.link.rsplit(INVITATION_PATH, 1)[1],
        privacy_requests=await _privacy_requests(callers),
    )


# Each officer step's request: a kind of its own (no duplicates), and the steps before it.
_PRIVACY_STEPS: dict[str, tuple[str, list[str]]] = {
    "verifyIdentity": ("RECTIFICATION", []),
    "startPrivacyRequest": ("ERASURE", ["verifyIdentity"]),
    "completePrivacyRequest": ("PORTABILITY", ["verifyIdentity", "startPrivacyRequest"]),
    "rejectPrivacyRequest": ("OBJECTION", []),
    "extendPrivacyRequest": ("RESTRICTION", []),
}


async def _privacy_requests(callers: dict[str | None, Api]) -> dict[str, str]:
    made = {}
    for mutation, (kind, before) in _PRIVACY_STEPS.items():
        submitted = await callers[CUSTOMER].gql(
            "mutation($k: PrivacyRequestKind!) { submitPrivacyRequest(input: {kind: $k}) {"
            " ... on PrivacyRequestSuccess { request { id } } } }",
            {"k": kind},
        )
        ident = submitted["data"]["submitPrivacyRequest"]["request"]["id"]
        for step in before:
            taken = await callers[OFFICER].gql(
                _document(step), {"input": BASES[step][1](Existing("", "", "", "", {step: ident}))}
            )
            assert taken["data"][step]["__typename"] == "PrivacyRequestSuccess", taken
        made[mutation] = ident
    return made


async def _callers(as_user: Any) -> dict[str | None, Api]:
    return {email: await as_user(email) for email in (None, CUSTOMER, AGENT, ADMIN, OFFICER)}


def test_every_string_input_of_every_mutation_is_covered_or_listed_with_a_reason() -> None:
    assert set(_string_inputs()) == set(COVERED) | set(NOT_TEXT)
    assert set(COVERED).isdisjoint(NOT_TEXT)
    assert {mutation for mutation, _ in COVERED} == set(BASES)


async def test_every_text_input_refuses_bidi_c1_and_escape_and_stores_nothing(
    app: Any, as_user: Any
) -> None:
    callers = await _callers(as_user)
    existing = await _existing(callers)
    store = app.state.store
    checked = 0
    for (mutation, field), sample in COVERED.items():
        default_caller, base = BASES[mutation]
        caller = callers[CALLER_OF.get((mutation, field), default_caller)]
        for label, char in BAD.items():
            async for key in store.scan_iter(match="ocis:rl:*"):
                await store.delete(key)
            value = base(existing)
            if (mutation, field) in CALLER_OF:
                value.setdefault("requesterEmail", unique_email())
            value[field] = _value(mutation, field, sample[:1] + char + sample[1:])
            before = await database_rows()
            body = await caller.gql(_document(mutation), _variables(mutation, value))
            assert body.get("errors") is None, (mutation, field, label, body)
            assert body["data"][mutation] == {
                "__typename": "InvalidInputError",
                "field": field,
                "code": "INVALID_INPUT",
            }, (mutation, field, label, body)
            assert await database_rows() == before, (mutation, field, label)
            checked += 1
    assert checked == len(COVERED) * len(BAD)


async def test_the_samples_are_accepted_without_the_bad_character(as_user: Any) -> None:
    """The loop above proves a refusal only if the same input passes without the character."""
    callers = await _callers(as_user)
    existing = await _existing(callers)
    for mutation, (default_caller, base) in BASES.items():
        samples = {f: s for (m, f), s in COVERED.items() if m == mutation}
        caller = next(
            (CALLER_OF[(mutation, f)] for f in samples if (mutation, f) in CALLER_OF),
            default_caller,
        )
        value = base(existing) | {f: _value(mutation, f, s) for f, s in samples.items()}
        body = await callers[caller].gql(_document(mutation), _variables(mutation, value))
        assert body.get("errors") is None, (mutation, body)
        answer = body["data"][mutation]["__typename"]
        assert answer in ("CheckYourMail",) or answer.endswith("Success"), (mutation, body)
    user = await User.get(email_index=crypto.blind_index(CUSTOMER))
    assert (user.name, user.locale, user.time_zone) == ("Carla C.", "en-GB", "Europe/Paris")
    team = await Team.get(id=from_global_id(existing.team_id, "Team", "id")[1])
    assert team.name == "Weekend shift"


async def test_a_notice_kind_with_a_bad_character_is_no_kind_and_changes_nothing(
    as_user: Any,
) -> None:
    """setNoticePreference.kind is matched against the known kinds, not stored as typed."""
    customer = await as_user(CUSTOMER)
    kind = next(k for k in notices.TEMPLATES if not notices.always_mailed(k))
    document = _document("setNoticePreference")
    for label, char in BAD.items():
        before = await database_rows()
        body = await customer.gql(document, {"kind": kind[:1] + char + kind[1:], "byMail": False})
        assert body["data"]["setNoticePreference"] == {
            "__typename": "InvalidInputError",
            "field": "kind",
            "code": "INVALID_INPUT",
        }, label
        assert await database_rows() == before, label
    accepted = await customer.gql(document, {"kind": kind, "byMail": False})
    assert accepted["data"]["setNoticePreference"]["__typename"] == "SetNoticePreferenceSuccess"
