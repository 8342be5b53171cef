"""P03: card numbers and security codes are refused everywhere and never written anywhere."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from tortoise import Tortoise

from auth.card_data import (
    contains_card_data,
    is_security_code_name,
    luhn_valid,
    value_holds_card_data,
)
from models import PaymentMethod
from tests.helpers import Api

AsUser = Callable[[str | None], Awaitable[Api]]

FUTURE_YEAR = datetime.now(UTC).year + 2
# Loggers that run in production; the SQL statement logger is debug-only and never enabled.
OCIS_LOGGERS = ("ocis", "ocis.graphql", "strawberry")


# --- unit tests of auth/card_data.py ---------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111111111111111",
        "378282246310005",
        "3782 822463 10005",
        "6011-1111-1111-1117",
        "4000 0000 0000 0000 006",
        "4111111111119",
        "please charge 4111 1111 1111 1111 today",
        "card:5555555555554444.",
    ],
)
def test_luhn_valid_card_numbers_are_detected(text: str) -> None:
    assert contains_card_data(text)


@pytest.mark.parametrize("digits", ["4111111111111111", "378282246310005", "4000000000000000006"])
def test_luhn_check_accepts_test_card_numbers(digits: str) -> None:
    assert luhn_valid(digits)


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1112",
        "378282246310006",
        "6011-1111-1111-1118",
        "411111111111",
        "4111 1111 1111",
        "41111111111111111111",
        "+49 1512 3456787",
        "call me on +49 1512 3456787 tomorrow",
        "2024-01-15",
        "15.01.2024 10:30",
        "2024-01-15T10:30:45Z",
        "Order 2024-000123",
        "order number ORD-20240115-0001",
        "invoice 1234567890123",
        "",
        "I have 123 apples",
    ],
)
def test_other_numbers_are_not_card_data(text: str) -> None:
    assert not contains_card_data(text)


def test_the_phone_number_case_is_luhn_valid_without_its_plus() -> None:
    # The "+" is what keeps this phone number from being taken for a card.
    assert luhn_valid("4915123456787")
    assert contains_card_data("49 1512 3456787")


@pytest.mark.parametrize(
    "text",
    [
        "CVV 123",
        "cvc: 1234",
        "security code 987",
        "cvv2=456",
        "CSC-321",
        "Card Security Code 1234",
        "exp 12/27 CVV: 0123",
    ],
)
def test_security_codes_are_detected(text: str) -> None:
    assert contains_card_data(text)


@pytest.mark.promise("P03")
@pytest.mark.parametrize("text", ["my CVV is 456", "the security code is 987", "CVC code: 123"])
def test_security_codes_written_as_a_sentence_are_detected(text: str) -> None:
    # How customers actually type it into a ticket; a word between label and digits
    # must not let the code through.
    assert contains_card_data(text)


@pytest.mark.parametrize("text", ["CVV", "what is a cvc?", "security code sent by SMS", "cvv 12"])
def test_words_without_a_code_are_not_card_data(text: str) -> None:
    assert not contains_card_data(text)


@pytest.mark.parametrize("name", ["cvv", "CVV", "cvc", "securityCode", "security_code", "cvv2"])
def test_security_code_key_names(name: str) -> None:
    assert is_security_code_name(name)
    assert value_holds_card_data({name: "123"})
    assert value_holds_card_data({"input": {"card": {name: 123}}})
    assert not value_holds_card_data({name: None})
    assert not value_holds_card_data({name: ""})


@pytest.mark.parametrize(
    "value",
    [
        {"input": {"body": "4111 1111 1111 1111"}},
        {"input": {"numbers": [1, 4111111111111111]}},
        ["ok", ["nested", "378282246310005"]],
        4111111111111111,
        "cvc: 1234",
    ],
)
def test_json_values_holding_card_data(value: object) -> None:
    assert value_holds_card_data(value)


@pytest.mark.parametrize(
    "value",
    [
        {"input": {"body": "hello", "priority": "HIGH", "count": 3, "flag": True}},
        {"brand": "visa", "last4": "4242", "expMonth": 12, "expYear": 2030},
        [None, 1.5, "+49 1512 3456787"],
        None,
    ],
)
def test_json_values_without_card_data(value: object) -> None:
    assert not value_holds_card_data(value)


# --- helpers ------------------------------------------------------------------------------


async def dump_tables() -> dict[str, list[dict[str, Any]]]:
    """Every row of every OCIS table, read with plain SQL."""
    connection = Tortoise.get_connection("default")
    dump: dict[str, list[dict[str, Any]]] = {}
    for model in Tortoise.apps["ocis"].values():
        table = model._meta.db_table
        _, rows = await connection.execute_query(f'SELECT * FROM "{table}"')  # noqa: S608
        dump[table] = [dict(row) for row in rows]
    return dump


def dump_text(dump: dict[str, list[dict[str, Any]]]) -> str:
    return "\n".join(
        f"{table}: " + " | ".join(str(value) for value in row.values())
        for table, rows in dump.items()
        for row in rows
    ).lower()


def row_counts(dump: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    return {table: len(rows) for table, rows in dump.items()}


def log_text(records: list[logging.LogRecord]) -> str:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(record) for record in records).lower()


def _in_loggers(record: logging.LogRecord, names: tuple[str, ...]) -> bool:
    return any(record.name == name or record.name.startswith(name + ".") for name in names)


ADD_PAYMENT_METHOD = """
mutation Add($input: AddPaymentMethodInput!) {
  addPaymentMethod(input: $input) {
    __typename
    ... on AddPaymentMethodSuccess { paymentMethod { id brand last4 expMonth expYear } }
    ... on InvalidInputError { code field message }
    ... on CardDataRefusedError { code field message }
  }
}
"""

CREATE_TICKET = """
mutation Create($input: CreateTicketInput!) {
  createTicket(input: $input) { __typename ... on TicketSuccess { ticket { id } } }
}
"""

UPDATE_PROFILE = """
mutation Update($input: UpdateProfileInput!) {
  updateProfile(input: $input) { __typename ... on UpdateProfileSuccess { user { name } } }
}
"""

SUBMIT_PRIVACY_REQUEST = """
mutation Submit($input: SubmitPrivacyRequestInput!) {
  submitPrivacyRequest(input: $input) {
    __typename ... on PrivacyRequestSuccess { request { id } }
  }
}
"""

MY_PAYMENT_METHODS = "{ me { paymentMethods { brand last4 expMonth expYear } } }"

REMOVE_PAYMENT_METHOD = """
mutation Remove($id: ID!) {
  removePaymentMethod(id: $id) {
    __typename
    ... on RemovePaymentMethodSuccess { removedId }
    ... on NotFoundError { code field }
  }
}
"""


def card(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "gatewayToken": "tok_visa_4242abcd",
        "brand": "visa",
        "last4": "4242",
        "expMonth": 12,
        "expYear": FUTURE_YEAR,
    }
    return {"input": fields | overrides}


# --- refused through GraphQL, and written nowhere ----------------------------------------

# (operation, variables, every form of the secret that must appear nowhere afterwards)
REFUSED: list[Any] = [
    pytest.param(
        ADD_PAYMENT_METHOD,
        card(gatewayToken="4111111111111111", last4="1111"),
        ("4111111111111111",),
        id="payment-gateway-token",
    ),
    pytest.param(
        'mutation { createTicket(input: {subject: "Billing", '
        'body: "Please charge my card 4111 1111 1111 1111 again"}) { __typename } }',
        None,
        ("4111 1111 1111 1111", "4111111111111111"),
        id="ticket-body-inline",
    ),
    pytest.param(
        CREATE_TICKET,
        {"input": {"subject": "Billing", "body": "The amex is 3782-822463-10005, thanks"}},
        ("3782-822463-10005", "378282246310005"),
        id="ticket-body-variables",
    ),
    pytest.param(
        UPDATE_PROFILE,
        {"input": {"name": "Carla 6011-1111-1111-1117"}},
        ("6011-1111-1111-1117", "6011111111111117"),
        id="profile-name",
    ),
    pytest.param(
        SUBMIT_PRIVACY_REQUEST,
        {"input": {"kind": "ACCESS", "details": "my card 4000 0000 0000 0000 006 was charged"}},
        ("4000 0000 0000 0000 006", "4000000000000000006"),
        id="privacy-request-details",
    ),
    pytest.param(
        CREATE_TICKET,
        {"input": {"subject": "Payment failed", "body": "I typed CVV 739 and it failed"}},
        ("cvv 739",),
        id="ticket-body-cvv",
    ),
]


@pytest.mark.promise("P03")
@pytest.mark.parametrize(("query", "variables", "secrets"), REFUSED)
async def test_card_data_is_refused_and_written_nowhere(
    as_user: AsUser,
    caplog: pytest.LogCaptureFixture,
    query: str,
    variables: dict[str, Any] | None,
    secrets: tuple[str, ...],
) -> None:
    customer = await as_user("customer@example.com")
    before = await dump_tables()
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="tortoise.db_client")

    response = await customer.post(query, variables)

    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert [error["extensions"]["code"] for error in body["errors"]] == ["CARD_DATA_REFUSED"]
    assert any(
        r.name == "ocis.graphql" and "CARD_DATA_REFUSED" in r.getMessage() for r in caplog.records
    ), "the refusal is logged (by code only), so the log check below has records to search"
    after = await dump_tables()
    assert row_counts(after) == row_counts(before)
    assert after == before
    stored = dump_text(after)
    logged = log_text([r for r in caplog.records if r.name != "tortoise.db_client"])
    ocis_logged = log_text([r for r in caplog.records if _in_loggers(r, OCIS_LOGGERS)])
    for secret in secrets:
        assert secret.lower() not in response.text.lower()
        assert secret.lower() not in stored
        assert secret.lower() not in logged
        assert secret.lower() not in ocis_logged


@pytest.mark.promise("P03")
async def test_card_data_in_any_variable_refuses_the_whole_operation(as_user: AsUser) -> None:
    customer = await as_user("customer@example.com")
    before = row_counts(await dump_tables())

    body = await customer.gql(
        "mutation M($input: CreateTicketInput!, $note: String) "
        "{ createTicket(input: $input) { __typename } }",
        {"input": {"subject": "Hello", "body": "Hi"}, "note": "4111 1111 1111 1111"},
    )

    assert body["data"] is None
    assert body["errors"][0]["extensions"] == {"code": "CARD_DATA_REFUSED"}
    assert row_counts(await dump_tables()) == before


# --- payment methods: only a token, brand, last 4 and expiry ------------------------------


@pytest.mark.promise("P03")
async def test_a_gateway_token_is_kept_listed_and_removed(as_user: AsUser) -> None:
    customer = await as_user("customer@example.com")

    added = await customer.gql(ADD_PAYMENT_METHOD, card())

    result = added["data"]["addPaymentMethod"]
    assert result["__typename"] == "AddPaymentMethodSuccess"
    method = result["paymentMethod"]
    assert {k: v for k, v in method.items() if k != "id"} == {
        "brand": "visa",
        "last4": "4242",
        "expMonth": 12,
        "expYear": FUTURE_YEAR,
    }
    listed = await customer.gql(MY_PAYMENT_METHODS)
    assert listed == {
        "data": {
            "me": {
                "paymentMethods": [
                    {"brand": "visa", "last4": "4242", "expMonth": 12, "expYear": FUTURE_YEAR}
                ]
            }
        }
    }
    stored = await PaymentMethod.all()
    assert [(m.gateway_token, m.brand, m.last4) for m in stored] == [
        ("tok_visa_4242abcd", "visa", "4242")
    ]
    assert "tok_visa_4242abcd" not in dump_text(await dump_tables())

    removed = await customer.gql(REMOVE_PAYMENT_METHOD, {"id": method["id"]})

    assert removed["data"]["removePaymentMethod"] == {
        "__typename": "RemovePaymentMethodSuccess",
        "removedId": method["id"],
    }
    assert await customer.gql(MY_PAYMENT_METHODS) == {"data": {"me": {"paymentMethods": []}}}
    assert await PaymentMethod.all().count() == 0


@pytest.mark.promise("P03")
async def test_removing_another_users_payment_method_is_not_found(as_user: AsUser) -> None:
    owner = await as_user("customer2@example.com")
    other = await as_user("customer@example.com")
    added = await owner.gql(ADD_PAYMENT_METHOD, card(gatewayToken="tok_mc_5555wxyz"))
    method_id = added["data"]["addPaymentMethod"]["paymentMethod"]["id"]

    attempt = await other.gql(REMOVE_PAYMENT_METHOD, {"id": method_id})

    assert attempt["data"]["removePaymentMethod"] == {
        "__typename": "NotFoundError",
        "code": "NOT_FOUND",
        "field": "id",
    }
    assert await PaymentMethod.all().count() == 1
    still = await owner.gql(MY_PAYMENT_METHODS)
    assert [m["last4"] for m in still["data"]["me"]["paymentMethods"]] == ["4242"]


@pytest.mark.promise("P03")
@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"brand": "bitcoin"}, "brand"),
        ({"last4": "42"}, "last4"),
        ({"last4": "42x4"}, "last4"),
        ({"expMonth": 13}, "expMonth"),
        ({"expMonth": 0}, "expMonth"),
        ({"expMonth": 12, "expYear": datetime.now(UTC).year - 1}, "expYear"),
        ({"gatewayToken": "tok"}, "gatewayToken"),
    ],
)
async def test_bad_payment_method_input_is_refused_and_stores_nothing(
    as_user: AsUser, overrides: dict[str, Any], field: str
) -> None:
    customer = await as_user("customer@example.com")
    before = row_counts(await dump_tables())

    body = await customer.gql(ADD_PAYMENT_METHOD, card(**overrides))

    result = body["data"]["addPaymentMethod"]
    assert result["__typename"] == "InvalidInputError"
    assert result["code"] == "INVALID_INPUT"
    assert result["field"] == field
    assert row_counts(await dump_tables()) == before
    assert await customer.gql(MY_PAYMENT_METHODS) == {"data": {"me": {"paymentMethods": []}}}
