"""P10 and SECURITY 24/25: AES-256-GCM columns bound to their row, and a blind index."""

from __future__ import annotations

import asyncio
import base64
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from tortoise import Tortoise, fields
from tortoise.models import Model

from auth.policy import PERSONAL_FIELDS
from auth.sessions import token_hash
from models import (
    ConsentEntry,
    ExternalIdentity,
    Invitation,
    LegalDisclosure,
    LegalHold,
    PaymentMethod,
    PrivacyRequest,
    PrivacyRequestStep,
    SignInSession,
    Ticket,
    TicketMessage,
    User,
    WalkInRequester,
    crypto,
)
from models.crypto import DataCipher, DecryptionError, Keyring
from models.fields import EncryptedField
from models.keys import DataKey
from schema.relay import to_global_id
from tests.helpers import DEMO_PASSWORD, Api, sign_in, verify_by_link

AsUser = Callable[[str | None], Awaitable[Api]]

MASTER = b"m" * 32
SUBJECT = uuid.UUID("0b6d1c4e-0000-4000-8000-0000000000aa")
AAD = "users/name/0b6d1c4e-0000-4000-8000-000000000001"


@pytest.fixture
def ring() -> Keyring:
    return Keyring.from_master_key(MASTER)


@pytest.fixture
def cipher(ring: Keyring) -> DataCipher:
    return ring.new_data_key(SUBJECT)[0]


# --- data keys -----------------------------------------------------------------------------


@pytest.mark.promise("P10")
@pytest.mark.parametrize("plaintext", ["Ada Lovelace", "", "Zoë Ünïcode 😀", "x" * 5000])
def test_a_sealed_value_opens_to_the_same_text(cipher: DataCipher, plaintext: str) -> None:
    sealed = cipher.seal(plaintext, AAD)

    assert cipher.open(sealed, AAD) == plaintext


@pytest.mark.promise("P10")
def test_every_ciphertext_names_its_format_and_key(cipher: DataCipher) -> None:
    sealed = cipher.seal("Ada Lovelace", AAD)

    assert len(cipher.key_id) == 12
    assert sealed.startswith(f"v2:{cipher.key_id}:")
    assert crypto.key_id_of(sealed) == cipher.key_id
    assert "Ada" not in sealed
    # 12-byte nonce + 12 bytes of text + 16-byte tag.
    payload = sealed.removeprefix(f"v2:{cipher.key_id}:")
    assert len(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))) == 12 + 12 + 16


@pytest.mark.promise("P10")
def test_the_same_plaintext_seals_differently_each_time(cipher: DataCipher) -> None:
    first = cipher.seal("Ada Lovelace", AAD)
    second = cipher.seal("Ada Lovelace", AAD)

    assert first != second
    assert cipher.open(first, AAD) == cipher.open(second, AAD) == "Ada Lovelace"


@pytest.mark.promise("P10")
def test_every_data_key_is_its_own(ring: Keyring) -> None:
    first, _ = ring.new_data_key(SUBJECT)
    second, _ = ring.new_data_key(SUBJECT)

    assert first.key_id != second.key_id
    with pytest.raises(DecryptionError):
        # Even relabelled with the other key's id, a value sealed under one key does not open.
        second.open(first.seal("Ada", AAD).replace(first.key_id, second.key_id, 1), AAD)


@pytest.mark.parametrize(
    "elsewhere",
    [
        "users/name/0b6d1c4e-0000-4000-8000-000000000002",
        "users/email/0b6d1c4e-0000-4000-8000-000000000001",
        "tickets/name/0b6d1c4e-0000-4000-8000-000000000001",
        "",
    ],
    ids=["another-row", "another-column", "another-table", "no-binding"],
)
def test_a_ciphertext_moved_elsewhere_does_not_open(cipher: DataCipher, elsewhere: str) -> None:
    sealed = cipher.seal("Ada Lovelace", AAD)

    with pytest.raises(DecryptionError):
        cipher.open(sealed, elsewhere)


def _flip_payload_byte(sealed: str, index: int) -> str:
    prefix, payload = sealed.rsplit(":", 1)
    raw = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raw[index] ^= 0x01
    return f"{prefix}:{base64.urlsafe_b64encode(bytes(raw)).decode().rstrip('=')}"


def _header(sealed: str) -> str:
    return sealed[: sealed.rindex(":") + 1]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda s: _flip_payload_byte(s, 0),
        lambda s: _flip_payload_byte(s, 14),
        lambda s: _flip_payload_byte(s, -1),
        lambda s: s[:-4],
        lambda s: s.replace(_header(s), "v2:AAAAAAAAAAAA:", 1),
        lambda s: s.replace("v2:", "v1:", 1),
        lambda s: s.replace("v2:", "v3:", 1),
        lambda s: s.replace(_header(s), "", 1),
        lambda s: "Ada Lovelace",
    ],
    ids=[
        "nonce-bit",
        "text-bit",
        "tag-bit",
        "truncated",
        "other-key-id",
        "old-format",
        "unknown-format",
        "no-header",
        "plaintext",
    ],
)
def test_a_tampered_ciphertext_does_not_open(
    cipher: DataCipher, tamper: Callable[[str], str]
) -> None:
    sealed = cipher.seal("Ada Lovelace", AAD)

    with pytest.raises(DecryptionError):
        cipher.open(tamper(sealed), AAD)


@pytest.mark.promise("P10")
def test_a_data_key_is_stored_wrapped_and_only_its_master_key_unwraps_it(ring: Keyring) -> None:
    cipher, wrapped = ring.new_data_key(SUBJECT)
    sealed = cipher.seal("Ada Lovelace", AAD)

    assert wrapped.key_id == cipher.key_id
    assert wrapped.kek_id == ring.current.kek_id
    reopened = ring.open_data_key(wrapped.key_id, SUBJECT, wrapped.wrapped_key, wrapped.kek_id)
    assert reopened.open(sealed, AAD) == "Ada Lovelace"
    other = Keyring.from_master_key(b"n" * 32)
    assert other.current.kek_id != ring.current.kek_id
    with pytest.raises(DecryptionError):
        other.open_data_key(wrapped.key_id, SUBJECT, wrapped.wrapped_key, wrapped.kek_id)
    # Told the other master key's id, it still cannot unwrap.
    forged = Keyring(replace(other.current, kek_id=ring.current.kek_id), (), b"")
    with pytest.raises(DecryptionError):
        forged.open_data_key(wrapped.key_id, SUBJECT, wrapped.wrapped_key, wrapped.kek_id)


@pytest.mark.promise("P10")
@pytest.mark.parametrize("moved", ["another-key-id", "another-subject"])
def test_a_wrapped_data_key_moved_to_another_key_or_subject_does_not_unwrap(
    ring: Keyring, moved: str
) -> None:
    _, wrapped = ring.new_data_key(SUBJECT)
    key_id = "BBBBBBBBBBBB" if moved == "another-key-id" else wrapped.key_id
    subject = SUBJECT if moved == "another-key-id" else uuid.uuid4()

    with pytest.raises(DecryptionError):
        ring.open_data_key(key_id, subject, wrapped.wrapped_key, wrapped.kek_id)


def test_a_previous_master_key_still_unwraps(ring: Keyring) -> None:
    cipher, wrapped = ring.new_data_key(SUBJECT)
    rotated = Keyring.from_master_key(b"n" * 32, previous=(MASTER,))

    reopened = rotated.open_data_key(wrapped.key_id, SUBJECT, wrapped.wrapped_key, wrapped.kek_id)

    assert reopened.open(cipher.seal("Ada", AAD), AAD) == "Ada"
    with pytest.raises(crypto.UnknownMasterKey):
        Keyring.from_master_key(b"n" * 32).open_data_key(
            wrapped.key_id, SUBJECT, wrapped.wrapped_key, wrapped.kek_id
        )


@pytest.mark.parametrize(
    "variant",
    [
        "customer@example.com",
        "Customer@Example.com",
        "CUSTOMER@EXAMPLE.COM",
        "  customer@example.com",
        "customer@example.com \t\n",
        "  CusTomer@EXAMPLE.com  ",
    ],
)
def test_blind_index_ignores_case_and_surrounding_space(ring: Keyring, variant: str) -> None:
    assert ring.blind_index(variant) == ring.blind_index("customer@example.com")


def test_blind_index_takes_a_lone_surrogate(ring: Keyring) -> None:
    index = ring.blind_index("customer\ud800@example.com")

    assert len(index) == 64
    assert index != ring.blind_index("customer@example.com")
    assert index != ring.blind_index("customer\udfff@example.com")


def test_blind_index_separates_different_values(ring: Keyring) -> None:
    index = ring.blind_index("customer@example.com")

    assert index != ring.blind_index("customer2@example.com")
    assert index != ring.blind_index("customer@example.co")
    assert index != ring.blind_index("cust omer@example.com")
    assert len(index) == 64
    assert int(index, 16) >= 0
    assert "customer" not in index


def test_blind_index_depends_on_the_master_key(ring: Keyring) -> None:
    other = Keyring.from_master_key(b"n" * 32)

    assert other.blind_index("customer@example.com") != ring.blind_index("customer@example.com")


def test_blind_index_key_is_not_a_data_key(ring: Keyring, cipher: DataCipher) -> None:
    assert len(ring.blind_index_key) == 32
    assert ring.blind_index_key != MASTER
    # Were the index key the data key, a value sealed under it would open.
    forged = DataCipher(cipher.key_id, AESGCM(ring.blind_index_key)).seal("Ada", AAD)

    with pytest.raises(DecryptionError):
        cipher.open(forged, AAD)


def test_blind_index_key_differs_under_another_master_key(ring: Keyring) -> None:
    assert Keyring.from_master_key(b"n" * 32).blind_index_key != ring.blind_index_key


def test_the_stored_blind_index_key_replaces_the_initial_one(ring: Keyring) -> None:
    stored = ring.with_blind_index_key(b"s" * 32)

    assert stored.blind_index("customer@example.com") != ring.blind_index("customer@example.com")
    assert stored.current == ring.current


# --- through the ORM ---------------------------------------------------------------------


async def _person(name: str, email: str) -> User:
    user = User(name=name, roles=["customer"])
    user.set_email(email)
    await user.save()
    return user


def _placeholders(is_postgres: bool) -> tuple[str, str]:
    return ("$1", "$2") if is_postgres else ("?", "?")


@pytest.mark.promise("P10")
async def test_an_email_ciphertext_copied_to_another_row_does_not_decrypt(
    app: Any, is_postgres: bool
) -> None:
    victim = await _person("Vera Victim", "vera@example.com")
    other = await _person("Otto Other", "otto@example.com")
    first, second = _placeholders(is_postgres)
    connection = Tortoise.get_connection("default")

    await connection.execute_query(
        f'UPDATE "users" SET "email" = (SELECT "email" FROM "users" WHERE "id" = {first}) '  # noqa: S608
        f'WHERE "id" = {second}',
        [str(victim.id), str(other.id)],
    )

    _, rows = await connection.execute_query(
        f'SELECT "email" FROM "users" WHERE "id" = {first}',  # noqa: S608
        [str(other.id)],
    )
    moved = str(rows[0]["email"])
    # The copy names the victim's data key, which exists; only the binding to its row fails.
    assert moved.startswith("v2:")
    assert await DataKey.filter(id=crypto.key_id_of(moved), subject_id=victim.id).exists()
    with pytest.raises(DecryptionError):
        await User.get(id=other.id)
    assert (await User.get(id=victim.id)).email == "vera@example.com"


@pytest.mark.promise("P10")
async def test_a_name_ciphertext_copied_to_the_email_column_does_not_decrypt(
    app: Any, is_postgres: bool
) -> None:
    person = await _person("Nina Name", "nina@example.com")
    first, _ = _placeholders(is_postgres)

    await Tortoise.get_connection("default").execute_query(
        f'UPDATE "users" SET "email" = "name" WHERE "id" = {first}',  # noqa: S608
        [str(person.id)],
    )

    with pytest.raises(DecryptionError):
        await User.get(id=person.id)


# --- the dump test -----------------------------------------------------------------------


async def _select_everything() -> str:
    connection = Tortoise.get_connection("default")
    parts: list[str] = []
    for model in Tortoise.apps["ocis"].values():
        table = model._meta.db_table
        _, rows = await connection.execute_query(f'SELECT * FROM "{table}"')  # noqa: S608
        parts.extend(f"{table}: " + " | ".join(str(v) for v in dict(row).values()) for row in rows)
    return "\n".join(parts)


def _sqlite_file_text(database_url: str) -> str:
    path = Path(database_url.removeprefix("sqlite://"))
    chunks = [path.read_bytes()]
    for suffix in ("-wal", "-journal"):
        extra = path.with_name(path.name + suffix)
        if extra.exists():
            chunks.append(extra.read_bytes())
    return b"\n".join(chunks).decode("latin-1")


async def _pg_dump_text(database_url: str) -> str | None:
    process = await asyncio.create_subprocess_exec(
        "/usr/bin/pg_dump",
        "--no-owner",
        database_url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, _ = await process.communicate()
    if process.returncode != 0:
        return None
    return stdout.decode()


async def _database_dumps(database_url: str) -> dict[str, str]:
    """The database as an attacker holding it would read it, by kind of dump."""
    dumps = {"select": await _select_everything()}
    if database_url.startswith("postgres"):
        dumped = await _pg_dump_text(database_url)
        if dumped is not None:
            dumps["pg_dump"] = dumped
    else:
        dumps["sqlite-file"] = _sqlite_file_text(database_url)
    return dumps


REGISTER = """
mutation Register($input: RegisterInput!) {
  register(input: $input) { __typename }
}
"""


@pytest.mark.promise("P10")
async def test_a_database_dump_holds_no_plaintext_personal_data(
    client: httpx.AsyncClient, database_url: str, is_postgres: bool
) -> None:
    tag = uuid.uuid4().hex[:12]
    canaries = {
        "name": f"Quillon Canaryname{tag}",
        "email": f"canarymail{tag}@example.com",
        "phone": f"+1 555 {int(tag[:7], 16) % 10_000_000:07d}",
        "username": f"canaryuser{tag}",
        "password": f"canarypass{tag}",
        "date_of_birth": "1961-07-23",
        "user_agent": f"canaryagent{tag}",
        "referrer": f"canaryref{tag}",
        "subject": f"Canarysubject {tag}",
        "body": f"Canarybody {tag} my parcel never arrived",
        "gateway_token": f"tok_canary{tag}",
        "details": f"Canarydetails {tag} please send me everything",
        "ip_address": "203.0.113.7",
    }
    user_agent = (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/124.0.0.0 Safari/537.36 {canaries['user_agent']}"
    )
    # Only the Referer's origin is stored, so the canary is in the host name.
    referrer = f"https://{canaries['referrer']}.example.org/landing?campaign=spring"
    client.headers["user-agent"] = user_agent
    anonymous = Api(client)

    registered = await anonymous.gql(
        REGISTER,
        {
            "input": {
                "name": canaries["name"],
                "email": canaries["email"],
                "password": canaries["password"],
                "dateOfBirth": canaries["date_of_birth"],
                "phone": canaries["phone"],
                "username": canaries["username"],
            }
        },
    )
    assert registered["data"]["register"]["__typename"] == "CheckYourMail"
    await verify_by_link(client)
    client.cookies.clear()
    signed_in = await client.post(
        "/auth/password",
        json={"email": canaries["email"], "password": canaries["password"]},
        headers={"referer": referrer},
    )
    assert signed_in.status_code == 200, signed_in.text
    token = signed_in.cookies.get("ocis_session")
    assert token
    person = Api(client, token)
    ticket = await person.gql(
        "mutation C($input: CreateTicketInput!) { createTicket(input: $input) { __typename } }",
        {"input": {"subject": canaries["subject"], "body": canaries["body"]}},
    )
    assert ticket["data"]["createTicket"]["__typename"] == "TicketSuccess"
    card = await person.gql(
        "mutation P($input: AddPaymentMethodInput!) "
        "{ addPaymentMethod(input: $input) { __typename } }",
        {
            "input": {
                "gatewayToken": canaries["gateway_token"],
                "brand": "visa",
                "last4": "4242",
                "expMonth": 12,
                "expYear": datetime.now(UTC).year + 2,
            }
        },
    )
    assert card["data"]["addPaymentMethod"]["__typename"] == "AddPaymentMethodSuccess"
    request = await person.gql(
        "mutation R($input: SubmitPrivacyRequestInput!) "
        "{ submitPrivacyRequest(input: $input) { __typename } }",
        {"input": {"kind": "ACCESS", "details": canaries["details"]}},
    )
    assert request["data"]["submitPrivacyRequest"]["__typename"] == "PrivacyRequestSuccess"
    consent = await person.gql(
        "mutation { grantConsent(input: {purpose: STATISTICS}) { __typename } }"
    )
    assert consent["data"]["grantConsent"]["__typename"] == "ConsentSuccess"

    # Everything was stored and reads back through the API ...
    me = await person.gql(
        "{ me { name email phone username dateOfBirth signIns { referrer ipAddress } } }"
    )
    assert me["data"]["me"] == {
        "name": canaries["name"],
        "email": canaries["email"],
        "phone": canaries["phone"],
        "username": canaries["username"],
        "dateOfBirth": canaries["date_of_birth"],
        "signIns": [
            {
                "referrer": f"https://{canaries['referrer']}.example.org",
                "ipAddress": canaries["ip_address"],
            }
        ],
    }
    counts = {
        model._meta.db_table: await model.all().count() for model in Tortoise.apps["ocis"].values()
    }
    assert counts["users"] == 1
    assert counts["sign_in_sessions"] == 1
    assert counts["tickets"] == 1
    assert counts["ticket_messages"] == 1
    assert counts["payment_methods"] == 1
    assert counts["privacy_requests"] == 1
    assert counts["consent_entries"] == 1

    # ... yet no dump of the database shows any of it.
    dumps = await _database_dumps(database_url)
    assert "sqlite-file" in dumps or is_postgres
    # Every ciphertext names a data key that is stored (wrapped) in the database.
    named = set(re.findall(r"v2:([A-Za-z0-9_-]{12}):", dumps["select"]))
    stored = set(await DataKey.all().values_list("id", flat=True))
    assert named
    assert named <= stored
    for kind, dump in dumps.items():
        lowered = dump.lower()
        # The dump does hold the rows: plaintext columns, the blind index and ciphertexts
        # (the browser is sealed now: the sign-in row shows by its token's hash).
        assert token_hash(token) in lowered, f"{kind} dump misses the sign-in row"
        assert crypto.blind_index(canaries["email"]) in lowered, f"{kind} dump misses the user"
        assert lowered.count("v2:") >= 13, f"{kind} dump misses the ciphertexts"
        leaked = [name for name, value in canaries.items() if value.lower() in lowered]
        assert leaked == [], f"{kind} dump shows plaintext: {leaked}"
        assert tag not in lowered


async def test_sign_in_finds_the_account_by_any_case_and_surrounding_space(
    client: httpx.AsyncClient, as_user: AsUser
) -> None:
    token = await sign_in(client, "  CUSTOMER@Example.COM \t")

    me = await Api(client, token).gql("{ me { email } }")

    assert me["data"]["me"] == {"email": "customer@example.com"}


async def test_registering_a_case_variant_of_a_known_email_changes_nothing(
    as_user: AsUser,
) -> None:
    anonymous = await as_user(None)

    body = await anonymous.gql(
        "mutation R($input: RegisterInput!) { register(input: $input) "
        "{ __typename ... on InvalidInputError { field } } }",
        {
            "input": {
                "name": "Copy Cat",
                "email": " Customer@EXAMPLE.com ",
                "password": DEMO_PASSWORD + "-longer",
                "dateOfBirth": "1990-05-05",
            }
        },
    )

    assert body["data"]["register"] == {"__typename": "CheckYourMail"}
    assert await User.all().count() == 7
    owner = await User.get(email_index=crypto.blind_index("customer@example.com"))
    assert (owner.name, owner.email) == ("Carla Customer", "customer@example.com")


# --- every personal column, generated from the policy's list ------------------------------

# The models behind the GraphQL types of PERSONAL_FIELDS; ConsentState is computed from the
# consent ledger (ConsentEntry) and has no table of its own.
STORED_AS: dict[str, type[Model]] = {
    "User": User,
    "Ticket": Ticket,
    "TicketMessage": TicketMessage,
    "SignIn": SignInSession,
    "PaymentMethod": PaymentMethod,
    "PrivacyRequest": PrivacyRequest,
    "PrivacyRequestStep": PrivacyRequestStep,
    "ConsentEntry": ConsentEntry,
    "LinkedIdentity": ExternalIdentity,
    "WalkInRequester": WalkInRequester,
    "Invitation": Invitation,
    "LegalHold": LegalHold,
    "LegalDisclosure": LegalDisclosure,
}
COMPUTED = {"ConsentState"}
# Personal columns that are not text: EncryptedField seals text only, so a dump shows these.
NOT_TEXT = {
    ("payment_methods", "exp_month"): "small integer (1-12); sealing needs a text column",
    ("payment_methods", "exp_year"): "small integer; sealing needs a text column",
    ("privacy_requests", "kind"): "an enum of request kinds; sealing needs a text column",
    ("consent_entries", "purpose"): "an enum of the consent purposes",
    ("consent_entries", "granted"): "a boolean",
    ("consent_entries", "objection"): "a boolean",
}


def _column_name(field_name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", field_name).lower()


def personal_columns() -> list[tuple[type[Model], str]]:
    """Every model column that PERSONAL_FIELDS names, as (model, field name)."""
    assert set(PERSONAL_FIELDS) == set(STORED_AS) | COMPUTED, "map each new type to its model"
    found = []
    for type_name, model in STORED_AS.items():
        for field_name in sorted(PERSONAL_FIELDS[type_name]):
            column = _column_name(field_name)
            assert column in model._meta.fields_map, f"{type_name}.{field_name} has no column"
            found.append((model, column))
    return found


def _is_text(field: Any) -> bool:
    return isinstance(field, EncryptedField | fields.CharField | fields.TextField) and not (
        isinstance(field, fields.data.CharEnumFieldInstance)
    )


@pytest.mark.promise("P10")
def test_every_personal_text_column_is_an_encrypted_field() -> None:
    columns = personal_columns()
    text = [(m, c) for m, c in columns if _is_text(m._meta.fields_map[c])]
    other = {(m._meta.db_table, c) for m, c in columns if (m, c) not in text}

    plaintext = [
        f"{model._meta.db_table}.{column}"
        for model, column in text
        if not isinstance(model._meta.fields_map[column], EncryptedField)
    ]
    assert plaintext == []
    assert other == set(NOT_TEXT)


@pytest.mark.promise("P10")
async def test_a_canary_in_every_personal_text_column_is_absent_from_every_dump(
    client: httpx.AsyncClient, as_user: AsUser, database_url: str
) -> None:
    customer = await as_user("customer@example.com")
    await sign_in(client, "customer@example.com")
    user = await User.get(email_index=crypto.blind_index("customer@example.com"))
    await ExternalIdentity.create(
        user=user, issuer="https://id.example.com", subject="canary-sub", provider="example"
    )
    made = await customer.gql(
        'mutation { addPaymentMethod(input: {gatewayToken: "tok_visa_4242abcd", brand: "visa",'
        f' last4: "4242", expMonth: 12, expYear: {datetime.now(UTC).year + 2}}}) {{ __typename }}'
        ' submitPrivacyRequest(input: {kind: ACCESS, details: "all of it"}) { __typename }'
        " grantConsent(input: {purpose: STATISTICS}) { __typename } }"
    )
    assert "errors" not in made, made
    agent = await as_user("agent@example.com")
    walked_in = await agent.gql(
        'mutation { createTicket(input: {subject: "By email", body: "Wrote in",'
        ' requesterEmail: "walk-in@example.com", requesterName: "Wanda Walk-in"})'
        " { __typename } }"
    )
    assert walked_in["data"]["createTicket"]["__typename"] == "TicketSuccess", walked_in
    admin = await as_user("admin@example.com")
    invited = await admin.gql(
        'mutation { inviteStaff(email: "invited@example.com", roles: [AGENT]) { __typename } }'
    )
    assert "errors" not in invited, invited
    officer = await as_user("privacy@example.com")
    legal = await officer.gql(
        'mutation($u: ID!, $day: Date!) { placeLegalHold(input: {userId: $u, authority: "Court",'
        ' reference: "R-1", reason: "An inquiry", reviewOn: "2099-01-01"}) { __typename }'
        ' recordLegalDisclosure(input: {userId: $u, authority: "Police", legalBasis: "An order",'
        ' dataCategories: ["tickets"], disclosedOn: $day}) { __typename } }',
        {"u": to_global_id("User", user.id), "day": datetime.now(UTC).date().isoformat()},
    )
    assert "errors" not in legal, legal
    tag = uuid.uuid4().hex[:8]
    canaries: dict[str, str] = {}
    too_short: list[str] = []

    columns = [(m, c) for m, c in personal_columns() if _is_text(m._meta.fields_map[c])]
    for number, (model, column) in enumerate(columns):
        row = await model.all().order_by(model._meta.pk_attr).first()
        assert row is not None, f"no {model._meta.db_table} row to write a canary into"
        canary = f"cy{tag}{number:02d}"
        if len(canary) > (getattr(model._meta.fields_map[column], "max_length", None) or 1000):
            too_short.append(f"{model._meta.db_table}.{column}")  # a short plaintext column
            continue
        setattr(row, column, canary)
        await row.save(update_fields=[column])
        reread = await model.get(pk=row.pk)
        assert getattr(reread, column) == canary
        canaries[f"{model._meta.db_table}.{column}"] = canary

    dumps = await _database_dumps(database_url)
    for kind, dump in dumps.items():
        leaked = [name for name, canary in canaries.items() if canary in dump.lower()]
        assert leaked == [], f"{kind} dump shows plaintext: {leaked}"
    assert too_short == []
    assert len(canaries) >= 20
