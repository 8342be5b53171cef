"""P03, generated: card data in disguise is refused in every free-text input and stored nowhere.

The disguises are built from a few Luhn-valid test card numbers x separators x encodings
(GraphQL escapes, block strings, JSON escapes, NFKC forms, zero-width characters) and CVV
spellings; the inputs are every String field of every mutation input in the live schema.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    Undefined,
    get_named_type,
)
from tortoise import Tortoise

from auth.card_data import contains_card_data
from models import SignInSession
from models.privacy import ConsentEntry
from schema import schema
from tests.helpers import DEMO_PASSWORD, Api

AsUser = Callable[[str | None], Awaitable[Api]]

PANS = ("4111111111111111", "5555555555554444", "378282246310005", "6011111111111117")
SEPARATORS = {
    "dots": ".",
    "slashes": "/",
    "underscores": "_",
    "commas": ",",
    "double-spaces": "  ",
    "no-break-spaces": "\u00a0",
    "zero-width-spaces": "\u200b",
    "newlines": "\n",
    "tabs": "\t",
    "en-dashes": "\u2013",
    "em-dashes": "\u2014",
    "spaced-hyphens": " - ",
    "ideographic-spaces": "\u3000",
    "colons": ":",
}
CVV_SPELLINGS = (
    "cvv123",
    "c.v.v 123",
    "CVV: 123",
    "c v v 123",
    "cvc2=123",
    "my security-code is 123",
    "c\u200dv\u200dv 123",
    "\uff43\uff56\uff56\uff11\uff12\uff13",
)


def _grouped(pan: str, separator: str) -> str:
    sizes = (4, 6, 5) if len(pan) == 15 else (4, 4, 4, 4)
    groups, start = [], 0
    for size in sizes:
        groups.append(pan[start : start + size])
        start += size
    return separator.join(groups)


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in text)


def _bold(text: str) -> str:
    return "".join(chr(0x1D7CE + int(c)) if c.isdigit() else c for c in text)


@dataclass(frozen=True)
class Disguise:
    name: str
    text: str
    # "variables": JSON variables; "json-escaped": JSON with \\u escapes; "escaped-literal": an
    # inline string literal of \\uXXXX escapes; "block-string": an inline block string.
    encoding: str
    needle: str  # the digits (or the code's plain form) that must appear nowhere afterwards


def _disguises() -> list[Disguise]:
    table: list[Disguise] = []
    for pan in PANS:
        for label, separator in SEPARATORS.items():
            table.append(
                Disguise(f"{pan[:4]}-{label}", f"card {_grouped(pan, separator)}", "variables", pan)
            )
        spaced = _grouped(pan, " ")
        table += [
            Disguise(f"{pan[:4]}-escaped", f"pay {spaced}", "escaped-literal", pan),
            Disguise(f"{pan[:4]}-block", f"pay\n{_grouped(pan, chr(10))}\n", "block-string", pan),
            Disguise(f"{pan[:4]}-json", f"pay {_grouped(pan, '.')}", "json-escaped", pan),
            Disguise(f"{pan[:4]}-fullwidth", _fullwidth(spaced), "variables", pan),
            Disguise(f"{pan[:4]}-math-bold", _bold(pan), "escaped-literal", pan),
            Disguise(f"{pan[:4]}-zwj", "\u200d".join(pan), "variables", pan),
            Disguise(f"{pan[:4]}-soft-hyphen", _grouped(pan, "\u00ad"), "block-string", pan),
        ]
    for index, spelling in enumerate(CVV_SPELLINGS):
        table.append(Disguise(f"cvv-{index}", f"declined, {spelling}", "variables", spelling))
    table += [
        Disguise("cvv-escaped", "code cvv123", "escaped-literal", "cvv123"),
        Disguise("cvv-block", "c.v.v\n123", "block-string", "c.v.v\n123"),
    ]
    return table


DISGUISES = _disguises()

LOOK_ALIKES = {
    "phone-de": "call me on +49 1512 3456787",
    "phone-uk": "+44 20 7946 0958",
    "phone-us": "+1 (202) 555-0173",
    "order-failing-luhn": "order 4111 1111 1111 1112",
    "order-number": "Order ORD-20240115-0001",
    "invoice": "invoice 1234567890123",
    "date": "2024-01-15",
    "dates": "from 15.01.2024 to 16.02.2024",
    "date-time": "2024-01-15 10:30:45",
    "date-time-list": "15.01.2024 10:30, 16.01.2024 11:45",
    "iso-timestamp": "2024-01-15T10:30:45.123Z",
    "uuid": "123e4567-e89b-12d3-a456-426614174000",
    "ticket-id": "VGlja2V0VHlwZTpkMmUxYjYyNi0wMGQ2LTRmODEtYWJjZC0xMjM0NTY3ODkwMTI=",
    "time": "between 09:30 and 17:45",
    "version": "app version 10.4.12.2031 build 7",
    "user-agent": "Chrome/124.0.6367.118 Safari/537.36",
    "cvv-two-digits": "the cvv 12 was wrong",
}


@dataclass(frozen=True)
class Target:
    mutation: str
    argument: str
    path: tuple[str, ...]
    input_type: GraphQLInputObjectType


def _string_paths(input_type: GraphQLInputObjectType, path: tuple[str, ...]) -> Iterator[Any]:
    for name, field in input_type.fields.items():
        named = get_named_type(field.type)
        if isinstance(named, GraphQLInputObjectType):
            yield from _string_paths(named, (*path, name))
        elif isinstance(named, GraphQLScalarType) and named.name == "String":
            yield (*path, name)


def _targets() -> list[Target]:
    """Every String field of every mutation's input object, from the live schema."""
    mutation_type = schema._schema.mutation_type
    assert mutation_type is not None
    found = []
    for mutation, field in mutation_type.fields.items():
        for argument, arg in field.args.items():
            named = get_named_type(arg.type)
            if isinstance(named, GraphQLInputObjectType):
                for path in _string_paths(named, ()):
                    found.append(Target(mutation, argument, path, named))
    return found


TARGETS = _targets()
FILLER = {"email": "walk-in@example.com", "password": "a long passphrase 42", "kind": "ACCESS"}


@dataclass(frozen=True)
class Enum:
    name: str


def _filled(input_type: GraphQLInputType) -> object:
    """A plausible value for a required input: its shape only has to be right."""
    if isinstance(input_type, GraphQLNonNull):
        return _filled(input_type.of_type)
    if isinstance(input_type, GraphQLList):
        return []
    if isinstance(input_type, GraphQLEnumType):
        return Enum(next(iter(input_type.values)))
    if isinstance(input_type, GraphQLInputObjectType):
        return {
            name: FILLER.get(name) or _filled(field.type)
            for name, field in input_type.fields.items()
            if isinstance(field.type, GraphQLNonNull) and field.default_value is Undefined
        }
    return {"Int": 1, "Boolean": False, "Float": 1.0}.get(getattr(input_type, "name", ""), "Hi")


def _with(value: dict[str, Any], path: tuple[str, ...], text: object) -> dict[str, Any]:
    head, *rest = path
    inner = value.get(head)
    return {
        **value,
        head: _with(inner if isinstance(inner, dict) else {}, tuple(rest), text) if rest else text,
    }


@dataclass(frozen=True)
class Literal:
    source: str


def _escaped(text: str) -> str:
    return "".join(f"\\u{ord(c):04x}" if ord(c) < 0x10000 else _pair(c) for c in text)


def _pair(char: str) -> str:
    # A character outside the BMP as a surrogate pair, as JSON and GraphQL spell it.
    high, low = divmod(ord(char) - 0x10000, 0x400)
    return f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04x}"


def _literal(value: object) -> str:
    if isinstance(value, Literal):
        return value.source
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value)


def _plain(value: object) -> object:
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _request(target: Target, text: str, encoding: str) -> dict[str, Any]:
    """The GraphQL request body that puts text into the target field in the given encoding."""
    base = _filled(target.input_type)
    assert isinstance(base, dict)

    def operation(value: str, declared: str = "") -> str:
        selection = f"{target.mutation}({target.argument}: {value}) {{ __typename }}"
        return f"mutation{declared} {{ {selection} }}"

    if encoding in {"variables", "json-escaped"}:
        query = operation("$v", f" M($v: {target.input_type.name}!)")
        return {"query": query, "variables": {"v": _plain(_with(base, target.path, text))}}
    source = f'"{_escaped(text)}"' if encoding == "escaped-literal" else f'"""{text}"""'
    return {
        "query": operation(_literal(_with(base, target.path, Literal(source)))),
        "variables": {},
    }


async def _send(api: Api, body: dict[str, Any], encoding: str) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if api.cookie:
        headers["cookie"] = f"ocis_session={api.cookie}"
    api.http.cookies.clear()
    content = json.dumps(body, ensure_ascii=encoding == "json-escaped")
    return await api.http.post("/graphql", content=content.encode(), headers=headers)


# --- where things could have been written ------------------------------------------------


def _digits(text: str) -> str:
    normal = unicodedata.normalize("NFKC", text)
    return "".join(
        str(unicodedata.decimal(c)) for c in normal if unicodedata.decimal(c, None) is not None
    )


def _texts(value: object) -> list[str]:
    return [value.decode("latin-1") if isinstance(value, bytes) else str(value)]


async def _stored_values(store: Any) -> list[str]:
    """Every value in every table, raw and decrypted, and every key and value in the store."""
    connection = Tortoise.get_connection("default")
    values: list[str] = []
    for model in Tortoise.apps["ocis"].values():
        table = model._meta.db_table
        _, rows = await connection.execute_query(f'SELECT * FROM "{table}"')  # noqa: S608
        values += [str(cell) for row in rows for cell in dict(row).values()]
        for instance in await model.all():
            values += [str(getattr(instance, name)) for name in model._meta.fields_db_projection]
    async for key in store.scan_iter(match="*"):
        values += _texts(key)
        kind = await store.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind == "string":
            values += _texts(await store.get(key))
        elif kind == "hash":
            values += [
                t for k, v in (await store.hgetall(key)).items() for t in _texts(k) + _texts(v)
            ]
        elif kind == "list":
            values += [t for item in await store.lrange(key, 0, -1) for t in _texts(item)]
        elif kind == "set":
            values += [t for item in await store.smembers(key) for t in _texts(item)]
        elif kind == "zset":
            values += [t for item in await store.zrange(key, 0, -1) for t in _texts(item)]
    return values


def _leaks(needles: set[str], places: dict[str, list[str]]) -> list[str]:
    found = []
    for where, values in places.items():
        for value in values:
            digits, lowered = _digits(value), unicodedata.normalize("NFKC", value).lower()
            for needle in needles:
                plain = unicodedata.normalize("NFKC", needle).lower()
                if (needle.isdigit() and needle in digits) or (
                    not needle.isdigit() and plain in lowered
                ):
                    found.append(f"{needle!r} in {where}")
    return sorted(set(found))


def _log_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return [formatter.format(record) for record in caplog.records]


# --- the tables ---------------------------------------------------------------------------


def test_the_tables_are_generated_large(capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(  # noqa: T201 - the table sizes belong in the test output
            f"\ncard-data tables: {len(DISGUISES)} disguises x {len(TARGETS)} free-text inputs"
            f" = {len(DISGUISES) * len(TARGETS)} refused requests;"
            f" {len(LOOK_ALIKES)} look-alikes that pass"
        )
    assert len(DISGUISES) >= 40
    assert len({d.name for d in DISGUISES}) == len(DISGUISES)
    assert {d.encoding for d in DISGUISES} == {
        "variables",
        "json-escaped",
        "escaped-literal",
        "block-string",
    }
    assert {
        ("createTicket", ("body",)),
        ("addMessage", ("body",)),
        ("updateProfile", ("name",)),
    } <= {(t.mutation, t.path) for t in TARGETS}


@pytest.mark.promise("P03")
@pytest.mark.parametrize("disguise", DISGUISES, ids=[d.name for d in DISGUISES])
def test_every_disguise_is_card_data(disguise: Disguise) -> None:
    assert contains_card_data(disguise.text)


@pytest.mark.promise("P03")
@pytest.mark.parametrize("text", LOOK_ALIKES.values(), ids=LOOK_ALIKES.keys())
def test_look_alikes_are_not_card_data(text: str) -> None:
    assert not contains_card_data(text)


# --- through GraphQL ----------------------------------------------------------------------


@pytest.mark.promise("P03")
@pytest.mark.parametrize(
    "target", TARGETS, ids=[f"{t.mutation}-{'.'.join(t.path)}" for t in TARGETS]
)
async def test_every_disguise_is_refused_in_every_input_and_written_nowhere(
    app: Any, as_user: AsUser, caplog: pytest.LogCaptureFixture, target: Target
) -> None:
    customer = await as_user("customer@example.com")
    caplog.set_level(logging.DEBUG)
    accepted: list[str] = []
    responses: list[str] = []

    for disguise in DISGUISES:
        response = await _send(
            customer, _request(target, disguise.text, disguise.encoding), disguise.encoding
        )
        body = response.json()
        codes = [error.get("extensions", {}).get("code") for error in body.get("errors") or []]
        if (
            response.status_code != 200
            or body.get("data") is not None
            or codes != ["CARD_DATA_REFUSED"]
        ):
            accepted.append(f"{disguise.name}: {response.status_code} {codes}")
        responses.append(response.text)

    assert accepted == []
    needles = {d.needle for d in DISGUISES}
    leaks = _leaks(
        needles,
        {
            "the database": await _stored_values(app.state.store),
            "the logs": _log_lines(caplog),
            "the responses": responses,
        },
    )
    assert leaks == []
    # The same request with harmless text is not refused as card data.
    control = await _send(customer, _request(target, "Hello there", "variables"), "variables")
    assert "CARD_DATA_REFUSED" not in control.text


@pytest.mark.promise("P03")
@pytest.mark.parametrize("encoding", ["variables", "escaped-literal", "block-string"])
async def test_look_alikes_are_accepted_and_stored(as_user: AsUser, encoding: str) -> None:
    customer = await as_user("customer@example.com")
    target = next(t for t in TARGETS if (t.mutation, t.path) == ("createTicket", ("body",)))
    refused = []

    for name, text in LOOK_ALIKES.items():
        response = await _send(customer, _request(target, text, encoding), encoding)
        body = response.json()
        if "errors" in body or body["data"]["createTicket"]["__typename"] != "TicketSuccess":
            refused.append(f"{name}: {response.text[:120]}")

    assert refused == []


# --- header values ------------------------------------------------------------------------

CARD_REFERER = "https://shop.example.com/checkout?pan=4111111111111111&cvv=123"
CARD_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0.0.0 Safari/537.36 card 4111.1111.1111.1111"
)


@pytest.mark.promise("P03")
async def test_a_card_in_the_referer_or_user_agent_is_never_stored(
    app: Any, client: httpx.AsyncClient, demo: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client.cookies.clear()
    signed_in = await client.post(
        "/auth/password",
        json={
            "email": "customer@example.com",
            "password": DEMO_PASSWORD,
            "timeZone": "Europe/Lisbon",
        },
        headers={"referer": CARD_REFERER, "user-agent": CARD_AGENT},
    )
    assert signed_in.status_code == 200, "the sign-in is never refused for its headers"
    token = signed_in.cookies.get("ocis_session")
    assert token
    client.cookies.clear()
    granted = await client.post(
        "/graphql",
        json={"query": "mutation { grantConsent(input: {purpose: STATISTICS}) { __typename } }"},
        headers={"cookie": f"ocis_session={token}", "user-agent": CARD_AGENT},
    )
    assert granted.json()["data"]["grantConsent"]["__typename"] == "ConsentSuccess"

    (row,) = await SignInSession.all()
    assert row.referrer == "https://shop.example.com"
    assert (row.browser, row.browser_version, row.os, row.device_type) == (None, None, None, None)
    assert row.time_zone == "Europe/Lisbon"
    (entry,) = await ConsentEntry.all()
    assert entry.user_agent is None
    leaks = _leaks(
        {"4111111111111111", "cvv=123"},
        {"the database": await _stored_values(app.state.store), "the logs": _log_lines(caplog)},
    )
    assert leaks == []


@pytest.mark.promise("P03")
async def test_a_referer_is_kept_as_its_origin_only(client: httpx.AsyncClient, demo: None) -> None:
    client.cookies.clear()
    signed_in = await client.post(
        "/auth/password",
        json={"email": "customer@example.com", "password": DEMO_PASSWORD},
        headers={"referer": "https://Search.Example.org:8443/results?q=ocis+login#top"},
    )
    assert signed_in.status_code == 200

    (row,) = await SignInSession.all()
    assert row.referrer == "https://search.example.org:8443"


def test_needles_are_found_however_written() -> None:
    # The leak check itself: a disguised number is found by its digits.
    assert _leaks({"4111111111111111"}, {"x": ["4111\u200b1111.1111 \uff11111"]}) == [
        "'4111111111111111' in x"
    ]
    assert re.fullmatch(r"[0-9]+", _digits("\U0001d7d2\u0664")) is not None
