"""Bad input on every mutation: a typed error from the result union, and nothing changed."""

from __future__ import annotations

from typing import Any

import pytest
from tortoise import Tortoise

import schema
from tests.helpers import Api

GRAPHQL = schema.schema._schema


async def snapshot() -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, so any write at all shows up."""
    connection = Tortoise.get_connection("default")
    state = {}
    for model in Tortoise.apps["ocis"].values():
        table = model._meta.db_table
        rows = await connection.execute_query_dict(f'SELECT * FROM "{table}"')  # noqa: S608
        state[table] = sorted(tuple(sorted((k, str(v)) for k, v in row.items())) for row in rows)
    return state


async def ticket_of(api: Api) -> str:
    body = await api.gql("{ tickets(first: 1) { edges { node { id } } } }")
    ticket_id: str = body["data"]["tickets"]["edges"][0]["node"]["id"]
    return ticket_id


SELECTION = "__typename ... on UserError { message code } ... on InvalidInputError { field }"

# A privacy request that does not exist, and the answer to an id this API never issued.
_NO_REQUEST = "UHJpdmFjeVJlcXVlc3Q6MDAwMDAwMDAtMDAwMC00MDAwLTgwMDAtMDAwMDAwMDAwMDA1"
_ID = ("InvalidInputError", "requestId")

# (mutation, who, arguments, expected error type, expected field)
CASES: list[tuple[str, str | None, str, str, str | None]] = [
    (
        "register",
        None,
        'input: {name: "A", email: "not-an-email", password: "long enough pw",'
        ' dateOfBirth: "1990-01-01"}',
        "InvalidInputError",
        "email",
    ),
    (
        "register",
        None,
        'input: {name: "A", email: "young@example.com", password: "long enough pw",'
        ' dateOfBirth: "2024-01-01"}',
        "AgeRequirementError",
        None,
    ),
    (
        "updateProfile",
        "customer@example.com",
        'input: {timeZone: "Mars/Base"}',
        "InvalidInputError",
        "timeZone",
    ),
    ("updateProfile", None, 'input: {name: "Nobody"}', "AuthenticationRequiredError", None),
    (
        "createTicket",
        "customer@example.com",
        'input: {subject: "   ", body: "b"}',
        "InvalidInputError",
        "subject",
    ),
    (
        "createTicket",
        "customer@example.com",
        'input: {subject: "s", body: "b", requesterEmail: "x@example.com"}',
        "ForbiddenError",
        None,
    ),
    (
        "addMessage",
        "customer@example.com",
        'input: {ticketId: "bm9wZQ", body: "hi"}',
        "InvalidInputError",
        "ticketId",
    ),
    (
        "addMessage",
        "customer@example.com",
        'input: {ticketId: "$TICKET", body: ""}',
        "InvalidInputError",
        "body",
    ),
    (
        "assignTicket",
        "agent@example.com",
        'input: {ticketId: "$TICKET", assigneeId: null}',
        "ForbiddenError",
        None,
    ),
    (
        "moveTicket",
        "lead@example.com",
        'input: {ticketId: "$TICKET", teamId: "bm9wZQ"}',
        "InvalidInputError",
        "teamId",
    ),
    (
        "moveTicket",
        "agent@example.com",
        'input: {ticketId: "$TICKET",'
        ' teamId: "VGVhbTowMDAwMDAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDA"}',
        "ForbiddenError",
        None,
    ),
    (
        "changeTicketStatus",
        "customer@example.com",
        'input: {ticketId: "$TICKET", status: PENDING}',
        "ForbiddenError",
        None,
    ),
    (
        "grantConsent",
        None,
        'input: {purpose: MARKETING_EMAIL, visitorId: "c1.00000000000000000000000000000000.00"}',
        "InvalidInputError",
        "visitorId",
    ),
    ("withdrawConsent", None, "input: {purpose: NECESSARY}", "InvalidInputError", "purpose"),
    (
        "setConsent",
        None,
        "input: {purpose: PRIVACY_POLICY, granted: true}",
        "InvalidInputError",
        "purpose",
    ),
    (
        "submitPrivacyRequest",
        "customer@example.com",
        'input: {kind: ACCESS, details: "' + "x" * 5001 + '"}',
        "InvalidInputError",
        "details",
    ),
    (
        "addPaymentMethod",
        "customer@example.com",
        'input: {gatewayToken: "tok_abcdefgh", brand: "visa", last4: "42", expMonth: 1,'
        " expYear: 2099}",
        "InvalidInputError",
        "last4",
    ),
    (
        "removePaymentMethod",
        "customer@example.com",
        'id: "UGF5bWVudE1ldGhvZDpub3BlIQ"',
        "InvalidInputError",
        "id",
    ),
    (
        "unlinkIdentity",
        "customer@example.com",
        'id: "TGlua2VkSWRlbnRpdHk6MDAwMDAwMDAtMDAwMC00MDAwLTgwMDAtMDAwMDAwMDAwMDAw"',
        "NotFoundError",
        None,
    ),
    ("signOutEverywhere", None, "", "AuthenticationRequiredError", None),
    (
        "disableAccount",
        "agent@example.com",
        'userId: "VXNlcjowMDAwMDAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDA"',
        "ForbiddenError",
        None,
    ),
    ("disableAccount", "admin@example.com", 'userId: "bm9wZQ"', "InvalidInputError", "userId"),
    (
        "enableAccount",
        "admin@example.com",
        'userId: "VXNlcjowMDAwMDAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDA"',
        "NotFoundError",
        None,
    ),
    ("markNoticesRead", "customer@example.com", 'ids: ["bm9wZQ"]', "InvalidInputError", "ids"),
    # Staff administration (more cases in tests/test_staff_admin.py).
    (
        "inviteStaff",
        "admin@example.com",
        'email: "not-an-email", roles: [AGENT]',
        "InvalidInputError",
        "email",
    ),
    ("acceptInvitation", None, 'token: "", name: "A", password: "x"', "InvalidInputError", "token"),
    ("revokeInvitation", "lead@example.com", 'id: "bm9wZQ"', "InvalidInputError", "id"),
    (
        "grantRole",
        "admin@example.com",
        'userId: "VXNlcjowMDAwMDAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDA", role: AGENT',
        "NotFoundError",
        None,
    ),
    (
        "revokeRole",
        "agent@example.com",
        'userId: "VXNlcjowMDAwMDAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDA", role: AGENT',
        "ForbiddenError",
        None,
    ),
    ("createTeam", "admin@example.com", 'name: "  "', "InvalidInputError", "name"),
    ("renameTeam", "admin@example.com", 'id: "bm9wZQ", name: "N"', "InvalidInputError", "id"),
    ("archiveTeam", "customer@example.com", 'id: "bm9wZQ"', "InvalidInputError", "id"),
    (
        "setTeamMembers",
        "admin@example.com",
        'teamId: "bm9wZQ", userIds: []',
        "InvalidInputError",
        "teamId",
    ),
    ("setTeamLead", None, 'teamId: "bm9wZQ", userId: "bm9wZQ"', "InvalidInputError", "teamId"),
    (
        "setNoticePreference",
        "customer@example.com",
        'kind: "no.such.kind", byMail: false',
        "InvalidInputError",
        "kind",
    ),
    ("verifyEmail", None, 'token: "forged"', "InvalidLinkError", None),
    ("requestPasswordReset", None, 'email: "not-an-email"', "InvalidInputError", "email"),
    (
        "resetPassword",
        None,
        'token: "forged", newPassword: "a long new password"',
        "InvalidLinkError",
        None,
    ),
    (
        "changePassword",
        None,
        'currentPassword: "ocis-demo", newPassword: "a long new password"',
        "AuthenticationRequiredError",
        None,
    ),
    (
        "changePassword",
        "customer@example.com",
        'currentPassword: "not-the-password", newPassword: "a long new password"',
        "InvalidInputError",
        "currentPassword",
    ),
    (
        "changePassword",
        "customer@example.com",
        'currentPassword: "ocis-demo", newPassword: "1234567890"',
        "InvalidInputError",
        "newPassword",
    ),
    (
        "changeEmail",
        "customer@example.com",
        'newEmail: "not-an-email", password: "ocis-demo"',
        "InvalidInputError",
        "newEmail",
    ),
    (
        "changeEmail",
        "customer@example.com",
        'newEmail: "new.me@example.com", password: "not-the-password"',
        "InvalidInputError",
        "password",
    ),
    ("confirmEmailChange", None, 'token: "forged"', "InvalidLinkError", None),
    (
        "publishPolicyVersion",
        "admin@example.com",
        'input: {version: "2026-03", url: "http://example.com/p", significant: true}',
        "InvalidInputError",
        "url",
    ),
    (
        "publishPolicyVersion",
        "customer@example.com",
        'input: {version: "2026-03", url: "/privacy", significant: true}',
        "ForbiddenError",
        None,
    ),
    ("acceptPolicyVersion", "customer@example.com", 'version: "1999"', "NotFoundError", None),
    (
        "sendNoticeToAllUsers",
        "admin@example.com",
        'input: {title: "", body: "Hello."}',
        "InvalidInputError",
        "title",
    ),
    (
        "addProcessor",
        "privacy@example.com",
        'input: {name: "P", purpose: "p", dataCategories: ["email"], country: "XX",'
        " safeguard: STANDARD_CONTRACTUAL_CLAUSES}",
        "InvalidInputError",
        "country",
    ),
    (
        "updateProcessor",
        "privacy@example.com",
        'input: {id: "bm9wZQ", country: "IE"}',
        "InvalidInputError",
        "id",
    ),
    (
        "removeProcessor",
        "admin@example.com",
        'id: "UHJvY2Vzc29yOjAwMDAwMDAwLTAwMDAtNDAwMC04MDAwLTAwMDAwMDAwMDAwMA"',
        "ForbiddenError",
        None,
    ),
    (
        "createCampaign",
        "admin@example.com",
        'subject: "   ", body: "New: dark mode."',
        "InvalidInputError",
        "subject",
    ),
    ("createCampaign", "customer@example.com", 'subject: "s", body: "b"', "ForbiddenError", None),
    ("sendCampaign", "admin@example.com", 'id: "bm9wZQ"', "InvalidInputError", "id"),
    (
        "registerPrivacyRequest",
        "privacy@example.com",
        'input: {kind: ACCESS, subjectEmail: "customer@example.com",'
        ' receivedAt: "2999-01-01T00:00:00+00:00", verificationMethod: EMAIL_LINK}',
        "InvalidInputError",
        "receivedAt",
    ),
    ("assignPrivacyRequest", "privacy@example.com", 'input: {requestId: "bm9wZQ"}', *_ID),
    (
        "verifyIdentity",
        "privacy@example.com",
        f'input: {{requestId: "{_NO_REQUEST}", method: EMAIL_LINK}}',
        "NotFoundError",
        None,
    ),
    (
        "startPrivacyRequest",
        "customer@example.com",
        f'input: {{requestId: "{_NO_REQUEST}"}}',
        "ForbiddenError",
        None,
    ),
    (
        "completePrivacyRequest",
        "privacy@example.com",
        f'input: {{requestId: "{_NO_REQUEST}", outcome: "  "}}',
        "InvalidInputError",
        "outcome",
    ),
    (
        "rejectPrivacyRequest",
        None,
        f'input: {{requestId: "{_NO_REQUEST}", reason: "No."}}',
        "AuthenticationRequiredError",
        None,
    ),
    (
        "decideCorrections",
        "privacy@example.com",
        f'input: {{requestId: "{_NO_REQUEST}", decisions: [{{field: NAME, accept: true}}]}}',
        "NotFoundError",
        None,
    ),
    (
        "extendPrivacyRequest",
        "privacy@example.com",
        f'input: {{requestId: "{_NO_REQUEST}", months: 3, reason: "Later."}}',
        "InvalidInputError",
        "months",
    ),
    (
        "liftRestriction",
        "privacy@example.com",
        'input: {userId: "VXNlcjowMDAwMDAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDA", reason: "  "}',
        "InvalidInputError",
        "reason",
    ),
    (
        "recordUsage",
        "customer@example.com",
        'input: {feature: "ticket 42", at: "2026-01-01T00:00:00+00:00"}',
        "InvalidInputError",
        "feature",
    ),
    (
        "placeLegalHold",
        "customer@example.com",
        'input: {userId: "VXNlcjowMDAwMDAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDA",'
        ' authority: "Court", reference: "1", reason: "r", reviewOn: "2099-01-01"}',
        "ForbiddenError",
        None,
    ),
    (
        "liftLegalHold",
        "privacy@example.com",
        'holdId: "TGVnYWxIb2xkOjAwMDAwMDAwLTAwMDAtNDAwMC04MDAwLTAwMDAwMDAwMDAwMA"',
        "NotFoundError",
        "holdId",
    ),
    (
        "recordLegalDisclosure",
        "privacy@example.com",
        'input: {userId: "VXNlcjowMDAwMDAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDA",'
        ' authority: "Court", legalBasis: "Order", dataCategories: ["tickets"],'
        ' disclosedOn: "2026-01-01"}',
        "NotFoundError",
        "userId",
    ),
    (
        "flagChildAccount",
        "agent@example.com",
        'input: {userId: "VXNlcjowMDAwMDAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDA", reason: "12"}',
        "ForbiddenError",
        None,
    ),
]


def test_the_cases_cover_every_mutation() -> None:
    mutation_type = GRAPHQL.mutation_type
    assert mutation_type is not None
    assert {case[0] for case in CASES} == set(mutation_type.fields)


@pytest.mark.parametrize(
    ("mutation", "who", "arguments", "error_type", "field"),
    CASES,
    ids=[f"{case[0]}-{case[3]}" for case in CASES],
)
async def test_bad_input_gets_a_typed_error_and_changes_nothing(
    as_user: Any,
    mutation: str,
    who: str | None,
    arguments: str,
    error_type: str,
    field: str | None,
) -> None:
    api = await as_user(who)
    if "$TICKET" in arguments:
        arguments = arguments.replace("$TICKET", await ticket_of(api))
    before = await snapshot()
    call = f"{mutation}({arguments})" if arguments else mutation
    body = await api.gql(f"mutation {{ result: {call} {{ {SELECTION} }} }}")
    assert body.get("errors") is None, body
    result = body["data"]["result"]
    assert result["__typename"] == error_type
    assert result["message"]
    if error_type == "InvalidInputError":
        assert result["field"] == field
    assert await snapshot() == before
