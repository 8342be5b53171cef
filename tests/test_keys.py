"""P10, SECURITY 24/25/27: a data key per subject wrapped by the master key; rotation; shredding.

Rotation is checked on the raw column values (every ciphertext names its key), the old keys
are deleted before reading back, and a "restart" (``restart_with``) is what a new process does
at startup: configure the master keys, forget cached keys, load the stored blind-index key.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
from tortoise import Tortoise
from tortoise.transactions import in_transaction

import settings as config
from models import (
    ConsentEntry,
    ConsentPurpose,
    ConsentSource,
    ExternalIdentity,
    PaymentMethod,
    PrivacyRequest,
    PrivacyRequestKind,
    Ticket,
    TicketMessage,
    User,
    crypto,
    db,
    keys,
)
from models.crypto import DecryptionError, KeyPurpose, UnknownMasterKey
from models.keys import DataKey, KeyRotation, KeyState
from privacy import keys as key_management
from tests.helpers import Api, StatementCounter, run_cli, sign_in, user_by_email
from tests.test_query_counts import MAX_STATEMENTS, measure, seed_agent_tickets

AsUser = Callable[[str | None], Awaitable[Api]]

CUSTOMER = "customer@example.com"
CUSTOMER2 = "customer2@example.com"
AGENT = "agent@example.com"
NEW_MASTER = b"N" * 32


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


async def restart_with(master_key: bytes, previous: tuple[bytes, ...] = ()) -> None:
    """What a new process does at startup with this configuration; the database stays."""
    crypto.configure(master_key, previous)
    keys.forget()
    await db.load_keys()


@pytest.fixture
async def keyed(app: Any, app_settings: config.Settings) -> AsyncIterator[None]:
    """A freshly started deployment (its blind-index key stored); the key tables emptied after."""
    await restart_with(app_settings.master_key)
    yield
    await Tortoise.get_connection("default").execute_script(
        'DELETE FROM "data_keys"; DELETE FROM "key_rotations"'
    )
    crypto.configure(app_settings.master_key)
    keys.forget()


@pytest.fixture
async def desk(keyed: None, demo: None) -> None:
    """The demo data set, written after the deployment started."""


def readable(value: str | None) -> str | None:
    """A non-null encrypted attribute reads as None once its key is destroyed."""
    return value


def placeholders(is_postgres: bool) -> tuple[str, str]:
    return ("$1", "$2") if is_postgres else ("?", "?")


async def raw_ciphertexts() -> list[tuple[str, str, str, str]]:
    """(table, column, row id, ciphertext) of every encrypted value, read with plain SQL."""
    connection = Tortoise.get_connection("default")
    found: list[tuple[str, str, str, str]] = []
    for model in key_management.encrypted_models():
        table = model._meta.db_table
        columns = [column for _, column in model.encrypted_columns()]
        selected = ", ".join(f'"{column}"' for column in columns)
        _, rows = await connection.execute_query(f'SELECT "id", {selected} FROM "{table}"')  # noqa: S608
        for row in rows:
            found.extend(
                (table, column, str(row["id"]), str(row[column]))
                for column in columns
                if row[column] is not None
            )
    return found


async def plaintexts() -> dict[tuple[str, str, str], str | None]:
    """(table, column, row id) -> every encrypted value of every row, as the ORM reads it."""
    values: dict[tuple[str, str, str], str | None] = {}
    for model in key_management.encrypted_models():
        for row in await model.all():
            for attribute, column in model.encrypted_columns():
                values[(model._meta.db_table, column, str(row.pk))] = getattr(row, attribute)
    return values


async def data_keys() -> list[DataKey]:
    return await DataKey.filter(purpose=KeyPurpose.DATA).order_by("subject_id", "version")


def rows_naming(
    ciphertexts: list[tuple[str, str, str, str]], key_ids: set[str]
) -> set[tuple[str, str]]:
    return {
        (table, row_id)
        for table, _, row_id, sealed in ciphertexts
        if crypto.key_id_of(sealed) in key_ids
    }


async def add_personal_data(user: User, consents: int = 1) -> None:
    """A row of every other kind of personal data, and an email-only ticket."""
    for number in range(consents):
        await ConsentEntry.create(
            user=user,
            purpose=ConsentPurpose.STATISTICS,
            granted=number % 2 == 0,
            policy_version="2024-01",
            source=ConsentSource.WEB,
            ip_address=f"203.0.113.{number + 1}",
            user_agent=f"Agent {number}",
        )
    await PaymentMethod.create(
        user=user, gateway_token="tok_visa_4242", brand="visa", last4="4242", exp_month=12,
        exp_year=2031,
    )  # fmt: skip
    now = datetime.now(UTC)
    await PrivacyRequest.create(
        subject=user,
        kind=PrivacyRequestKind.ACCESS,
        details="Please send me everything",
        received_at=now,
        due_at=now + timedelta(days=30),
    )
    await ExternalIdentity.create(
        user=user, issuer="https://idp.example.com", subject=f"sub-{user.id}", provider="example",
        email="carla@idp.example.com",
    )  # fmt: skip
    guest = await Ticket.create(
        subject="Sent by email", requester_name="Gina Guest", requester_email="gina@example.com"
    )
    await TicketMessage.create(ticket=guest, body="Hello from my inbox")


# --- whose key seals what ------------------------------------------------------------------


def test_every_encrypted_model_says_whose_data_it_holds(app: Any) -> None:
    declared = {model.__name__: model.key_subject for model in key_management.encrypted_models()}

    assert declared == {
        # A pending new address waits on the account's token.
        "AccountToken": ("user_id",),
        "ConsentEntry": ("user_id", "visitor_id", "id"),
        # A part of an export's JSON: the data of the export's subject.
        "ExportPart": ("subject_id",),
        "ExternalIdentity": ("user_id",),
        # An invitation's address belongs to no account until it is accepted.
        "Invitation": ("id",),
        # Legal holds and disclosures: about their subject, shredded with them.
        "LegalDisclosure": ("subject_id",),
        "LegalHold": ("subject_id",),
        # A mail to an address without an account is its own subject.
        "Notice": ("user_id", "id"),
        "PaymentMethod": ("user_id",),
        "PrivacyRequest": ("subject_id",),
        # A step of a request's history: its notes are about the request's subject.
        "PrivacyRequestStep": ("subject_id",),
        "SignInSession": ("user_id",),
        "TicketMessage": ("author_id", "ticket_id"),
        "Ticket": ("requester_id", "walk_in_id", "id"),
        "User": ("id",),
        "WalkInRequester": ("id",),
    }
    for model in key_management.encrypted_models():
        assert set(model.key_subject) <= set(model._meta.fields_db_projection), model


@pytest.mark.promise("P10")
async def test_each_subject_has_a_data_key_of_its_own(desk: None) -> None:
    carla, agent = await user_by_email(CUSTOMER), await user_by_email(AGENT)
    await add_personal_data(carla)
    records = await data_keys()
    by_id = {record.id: record for record in records}
    guest = await Ticket.get(requester_email__not_isnull=True)

    assert len({record.subject_id for record in records}) == len(records)
    assert all(record.state == KeyState.ACTIVE and record.version == 1 for record in records)
    assert all(record.wrapped_key and record.kek_id for record in records)
    assert len(await User.all()) + 1 == len(records)  # every account, and the guest's ticket
    subject_of: dict[tuple[str, str], UUID | None] = {}
    for table, _, row_id, sealed in await raw_ciphertexts():
        assert sealed.startswith("v2:")
        subject_of[(table, row_id)] = by_id[crypto.key_id_of(sealed)].subject_id
    assert subject_of[("users", str(carla.id))] == carla.id
    for ticket in await Ticket.filter(requester=carla):
        assert subject_of[("tickets", str(ticket.id))] == carla.id
    assert subject_of[("tickets", str(guest.id))] == guest.id
    for message in await TicketMessage.filter(ticket__requester=carla):
        author = message.author_id
        assert subject_of[("ticket_messages", str(message.id))] == author
    assert {
        subject_of[("ticket_messages", str(m.id))] for m in await TicketMessage.filter(ticket=guest)
    } == {guest.id}
    assert agent.id in {record.subject_id for record in records}
    for table in ("consent_entries", "payment_methods", "privacy_requests", "external_identities"):
        assert {subject for (t, _), subject in subject_of.items() if t == table} == {carla.id}


async def test_a_key_made_in_a_rolled_back_transaction_never_seals_committed_data(
    keyed: None,
) -> None:
    user = User(name="Rolf Back", roles=["customer"])
    user.set_email("rolf@example.com")

    async def save_then_change_my_mind() -> None:
        async with in_transaction():
            await user.save()
            assert await DataKey.filter(subject_id=user.id).count() == 1
            raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError, match="changed my mind"):
        await save_then_change_my_mind()
    assert await DataKey.filter(subject_id=user.id).count() == 0
    user._saved_in_db = False
    await user.save()

    keys.forget()
    stored = await User.get(id=user.id)
    assert (stored.name, stored.email) == ("Rolf Back", "rolf@example.com")
    assert await DataKey.filter(subject_id=user.id).count() == 1


async def test_bulk_writes_seal_under_each_subjects_key(desk: None) -> None:
    carla, chris = await user_by_email(CUSTOMER), await user_by_email(CUSTOMER2)
    ticket = await Ticket.filter(requester=carla).first()
    assert ticket is not None
    messages = [
        TicketMessage(ticket=ticket, author=author, body=f"bulk {number}")
        for number, author in enumerate((carla, chris, None))
    ]

    await TicketMessage.bulk_create(messages)
    messages[0].body = "bulk 0, edited"
    await TicketMessage.bulk_update(messages[:1], fields=["body"])

    keys.forget()
    stored = {m.id: m for m in await TicketMessage.filter(id__in=[m.id for m in messages])}
    assert [stored[m.id].body for m in messages] == ["bulk 0, edited", "bulk 1", "bulk 2"]
    named = {
        row_id: crypto.key_id_of(sealed)
        for table, _, row_id, sealed in await raw_ciphertexts()
        if table == "ticket_messages"
    }
    owners = {record.id: record.subject_id for record in await data_keys()}
    assert [owners[named[str(m.id)]] for m in messages] == [carla.id, chris.id, ticket.id]


# --- data-key rotation ---------------------------------------------------------------------


@pytest.mark.promise("P10")
async def test_rotation_moves_every_value_to_a_new_key_and_the_old_keys_can_be_removed(
    desk: None, as_user: AsUser
) -> None:
    customer = await as_user(CUSTOMER)
    await add_personal_data(await user_by_email(CUSTOMER))
    before = await plaintexts()
    first = await data_keys()
    old_ids = {record.id for record in first}
    rows = {(table, row_id) for table, _, row_id, _ in await raw_ciphertexts()}
    assert rows_naming(await raw_ciphertexts(), old_ids) == rows

    result = await key_management.rotate_data_keys(batch_size=4, settle_seconds=0)

    assert result == key_management.DataKeyRotation(
        new_keys=len(first),
        rows_reencrypted=len(rows),
        unreadable_rows=0,
        retired=len(first),
        still_referenced=0,
    )
    records = await data_keys()
    current = {record.id for record in records if record.state == KeyState.ACTIVE}
    assert {record.subject_id for record in records if record.id in current} == {
        record.subject_id for record in first
    }
    assert all(record.version == 2 for record in records if record.id in current)
    assert {record.state for record in records if record.id in old_ids} == {KeyState.RETIRED}
    ciphertexts = await raw_ciphertexts()
    assert rows_naming(ciphertexts, current) == rows
    assert rows_naming(ciphertexts, old_ids) == set()
    assert all(sealed.startswith("v2:") for *_, sealed in ciphertexts)
    assert await KeyRotation.filter(finished_at__isnull=True).count() == 0

    assert await key_management.delete_retired_keys() == len(first)
    assert await DataKey.filter(id__in=list(old_ids)).count() == 0
    keys.forget()
    assert await plaintexts() == before
    me = await customer.gql(
        "{ me { name email } tickets(first: 10) { edges { node { subject } } } }"
    )
    assert me["data"]["me"] == {"name": "Carla Customer", "email": CUSTOMER}
    assert {edge["node"]["subject"] for edge in me["data"]["tickets"]["edges"]} == {
        "Cannot reset my password",
        "Invoice shows the wrong address",
        "How do I export my data?",
    }


class Interrupted(Exception):
    pass


def stop_after_first_reencrypted_batch(step: key_management.Step) -> None:
    if step.phase == "re-encrypt":
        raise Interrupted(step)


@pytest.mark.promise("P10")
async def test_an_interrupted_rotation_continues_where_it_stopped(desk: None) -> None:
    await add_personal_data(await user_by_email(CUSTOMER), consents=7)
    before = await plaintexts()
    old_ids = {record.id for record in await data_keys()}
    rows = {(table, row_id) for table, _, row_id, _ in await raw_ciphertexts()}

    with pytest.raises(Interrupted) as stopped:
        await key_management.rotate_data_keys(
            batch_size=5, settle_seconds=0, progress=stop_after_first_reencrypted_batch
        )

    # Every subject got its new key; the first batch of consent entries moved to it.
    assert stopped.value.args[0] == key_management.Step("re-encrypt", 5, "consent_entries")
    records = await data_keys()
    new_ids = {record.id for record in records if record.state == KeyState.ACTIVE}
    assert {record.state for record in records if record.id in old_ids} == {KeyState.SUPERSEDED}
    ciphertexts = await raw_ciphertexts()
    moved = rows_naming(ciphertexts, new_ids)
    assert len(moved) == 5
    assert {table for table, _ in moved} == {"consent_entries"}
    assert rows_naming(ciphertexts, old_ids) == rows - moved
    assert await KeyRotation.filter(finished_at__isnull=True).count() == 1
    keys.forget()
    assert await plaintexts() == before  # old and new keys both open meanwhile

    result = await key_management.rotate_data_keys(batch_size=5, settle_seconds=0)

    assert result.new_keys == 0
    assert result.rows_reencrypted == len(rows) - 5
    assert result.retired == len(old_ids)
    assert {record.id for record in await data_keys() if record.state == KeyState.ACTIVE} == (
        new_ids
    )
    assert rows_naming(await raw_ciphertexts(), new_ids) == rows
    assert await KeyRotation.filter(finished_at__isnull=True).count() == 0
    await key_management.delete_retired_keys()
    keys.forget()
    assert await plaintexts() == before


@pytest.mark.promise("P10")
async def test_reads_while_rotating_keep_succeeding(desk: None, as_user: AsUser) -> None:
    carla = await user_by_email(CUSTOMER)
    for number in range(30):
        ticket = await Ticket.create(subject=f"Busy {number:02d}", requester=carla)
        await TicketMessage.create(ticket=ticket, author=carla, body=f"Body {number:02d}")
    customer = await as_user(CUSTOMER)
    query = "{ tickets(first: 50) { edges { node { subject messages(first: 5) { edges { node { body } } } } } } }"  # noqa: E501
    expected = sorted(
        [f"Busy {n:02d}" for n in range(30)]
        + [
            "Cannot reset my password",
            "Invoice shows the wrong address",
            "How do I export my data?",
        ]
    )
    rotation = asyncio.create_task(key_management.rotate_data_keys(batch_size=3, settle_seconds=0))
    during = 0
    while not rotation.done():
        body = await customer.gql(query)
        assert "errors" not in body, body
        edges = body["data"]["tickets"]["edges"]
        assert sorted(edge["node"]["subject"] for edge in edges) == expected
        bodies = {m["node"]["body"] for e in edges for m in e["node"]["messages"]["edges"]}
        assert {f"Body {n:02d}" for n in range(30)} <= bodies
        during += 0 if rotation.done() else 1

    result = await rotation
    assert during >= 1
    assert result.still_referenced == 0
    assert result.retired == result.new_keys > 0


# --- master-key rotation -------------------------------------------------------------------


def test_previous_master_keys_come_from_the_environment() -> None:
    settings = config.from_environ(
        {
            "OCIS_MASTER_KEY": b64(NEW_MASTER),
            "OCIS_PREVIOUS_MASTER_KEYS": f" {b64(b'k' * 32)} ,{b64(b'o' * 32)}",
        }
    )

    assert settings.master_key == NEW_MASTER
    assert settings.previous_master_keys == (b"k" * 32, b"o" * 32)
    assert config.from_environ({}).previous_master_keys == ()
    for bad in ("not-base64!", b64(b"short"), f"{b64(b'k' * 32)},x"):
        with pytest.raises(config.ConfigurationError, match="OCIS_PREVIOUS_MASTER_KEYS"):
            config.from_environ({"OCIS_PREVIOUS_MASTER_KEYS": bad})


@pytest.mark.promise("P10")
async def test_master_key_rotation_rewraps_every_key_and_the_old_master_key_can_go(
    desk: None, client: httpx.AsyncClient, app_settings: config.Settings
) -> None:
    await add_personal_data(await user_by_email(CUSTOMER))
    before = await plaintexts()
    email_index = (await user_by_email(CUSTOMER)).email_index
    new_kek = crypto.MasterKey.from_bytes(NEW_MASTER).kek_id
    old_kek = crypto.MasterKey.from_bytes(app_settings.master_key).kek_id
    assert {str(kek) for kek in await DataKey.all().values_list("kek_id", flat=True)} == {old_kek}

    # Dropping the old master key before re-wrapping would lose everything.
    with pytest.raises(UnknownMasterKey):
        await restart_with(NEW_MASTER)
    await restart_with(NEW_MASTER, (app_settings.master_key,))
    assert await plaintexts() == before
    rewrapped = await key_management.rotate_master_key(batch_size=3)

    assert rewrapped == await DataKey.all().count() == len(await data_keys()) + 1
    assert {str(kek) for kek in await DataKey.all().values_list("kek_id", flat=True)} == {new_kek}
    assert await key_management.rotate_master_key() == 0
    await restart_with(NEW_MASTER)
    assert await plaintexts() == before
    assert crypto.blind_index(" Customer@Example.COM") == email_index
    token = await sign_in(client, "CUSTOMER@example.com ")
    me = await Api(client, token).gql("{ me { name email } }")
    assert me["data"]["me"] == {"name": "Carla Customer", "email": CUSTOMER}


@pytest.mark.promise("P10")
async def test_rotate_keys_command_rewraps_and_rotates_with_progress(
    desk: None, database_url: str, app_settings: config.Settings
) -> None:
    before = await plaintexts()
    old_ids = {record.id for record in await data_keys()}
    environment = {
        "DATABASE_URL": database_url,
        "OCIS_MASTER_KEY": b64(NEW_MASTER),
        "OCIS_PREVIOUS_MASTER_KEYS": b64(app_settings.master_key),
    }

    result = await asyncio.to_thread(
        run_cli,
        "rotate-keys",
        "--batch-size",
        "4",
        "--settle-seconds",
        "0",
        "--delete-retired",
        env=environment,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"re-wrapped {len(old_ids) + 1} keys" in result.stdout
    assert "  re-encrypt (users): " in result.stdout
    assert f"new data keys: {len(old_ids)};" in result.stdout
    assert f"deleted {len(old_ids)} retired keys" in result.stdout
    await restart_with(NEW_MASTER)
    assert await DataKey.filter(id__in=list(old_ids)).count() == 0
    assert await plaintexts() == before
    assert rows_naming(await raw_ciphertexts(), old_ids) == set()


# --- moved ciphertexts ---------------------------------------------------------------------


@pytest.mark.promise("P10")
@pytest.mark.parametrize("tampering", ["copied", "relabelled", "keys-swapped"])
async def test_a_ciphertext_moved_to_another_subject_does_not_open(
    desk: None, is_postgres: bool, tampering: str
) -> None:
    carla, chris = await user_by_email(CUSTOMER), await user_by_email(CUSTOMER2)
    hers = await Ticket.filter(requester=carla).order_by("created_at").first()
    his = await Ticket.filter(requester=chris).order_by("created_at").first()
    assert hers is not None
    assert his is not None
    first, second = placeholders(is_postgres)
    connection = Tortoise.get_connection("default")
    _, rows = await connection.execute_query(
        f'SELECT "id", "subject" FROM "tickets" WHERE "id" IN ({first}, {second})',  # noqa: S608
        [str(hers.id), str(his.id)],
    )
    sealed = {str(row["id"]): str(row["subject"]) for row in rows}
    her_key = crypto.key_id_of(sealed[str(hers.id)])

    if tampering == "copied":
        await connection.execute_query(
            f'UPDATE "tickets" SET "subject" = {first} WHERE "id" = {second}',  # noqa: S608
            [sealed[str(hers.id)], str(his.id)],
        )
    elif tampering == "relabelled":
        his_sealed = sealed[str(his.id)]
        relabelled = his_sealed.replace(crypto.key_id_of(his_sealed), her_key, 1)
        await connection.execute_query(
            f'UPDATE "tickets" SET "subject" = {first} WHERE "id" = {second}',  # noqa: S608
            [relabelled, str(his.id)],
        )
    else:
        her_record = await DataKey.get(subject_id=carla.id)
        his_record = await DataKey.get(subject_id=chris.id)
        await DataKey.filter(id=her_record.id).update(wrapped_key=his_record.wrapped_key)
        await DataKey.filter(id=his_record.id).update(wrapped_key=her_record.wrapped_key)
        keys.forget()

    with pytest.raises(DecryptionError):
        await Ticket.get(id=his.id)
    if tampering != "keys-swapped":
        assert (await Ticket.get(id=hers.id)).subject == "Cannot reset my password"


# --- destroying a subject's keys -----------------------------------------------------------


AGENT_PAGE = "{ tickets(first: 20) { edges { node { subject requester { name email } messages(first: 5) { edges { node { body author { name } } } } } } } }"  # noqa: E501


@pytest.mark.promise("P10")
async def test_destroying_a_subjects_keys_makes_their_data_unreadable_and_no_one_elses(
    desk: None, as_user: AsUser, is_postgres: bool
) -> None:
    carla, chris = await user_by_email(CUSTOMER), await user_by_email(CUSTOMER2)
    agent = await as_user(AGENT)
    await add_personal_data(carla)
    before = await plaintexts()
    ciphertexts = await raw_ciphertexts()
    hers = {record.id for record in await data_keys() if record.subject_id == carla.id}
    her_rows = {(t, c, r) for t, c, r, sealed in ciphertexts if crypto.key_id_of(sealed) in hers}

    assert await key_management.destroy_subject_keys(carla.id) == 1

    for fresh_process in (False, True):
        if fresh_process:
            keys.forget()
        now = await plaintexts()
        for place, value in before.items():
            assert now[place] == (None if place in her_rows else value), place
    assert {row for row in her_rows if row[0] == "users"} == {
        ("users", column, str(carla.id))
        for column in ("name", "email", "date_of_birth", "locale", "time_zone")
    }
    stored = await User.get(id=carla.id)
    # Locale and time zone are sealed under her key too (P10), so they are shredded with it.
    assert stored.shredded_fields == {"name", "email", "date_of_birth", "locale", "time_zone"}
    assert stored.locale is None
    assert (await User.get(id=chris.id)).name == "Chris Customer"
    record = await DataKey.get(id=next(iter(hers)))
    assert (record.state, record.wrapped_key, record.kek_id) == (KeyState.DESTROYED, None, None)
    assert await raw_ciphertexts() == ciphertexts  # the rows stay, unreadable

    body = await agent.gql(AGENT_PAGE)
    assert "errors" not in body, body
    nodes = [edge["node"] for edge in body["data"]["tickets"]["edges"]]
    his = [node for node in nodes if node["subject"] == "App crashes on start"]
    assert [node["requester"] for node in his] == [{"name": "Chris Customer", "email": CUSTOMER2}]
    hers_on_page = [node for node in nodes if node["subject"] is None]
    assert len(hers_on_page) == await Ticket.filter(requester=carla).count() == 3
    for node in hers_on_page:
        assert node["requester"] == {"name": None, "email": None}
        thread = [edge["node"] for edge in node["messages"]["edges"]]
        assert thread[0] == {"body": None, "author": {"name": None}}
        assert all(m["author"] == {"name": "Alex Agent"} and m["body"] for m in thread[1:])

    # Saving the row keeps the unreadable ciphertexts; new data gets a new key.
    stored.locale = "de"
    await stored.save()
    stored.phone = "+1 555 0100"
    await stored.save(update_fields=["phone"])
    keys.forget()
    again = await User.get(id=carla.id)
    assert (readable(again.name), again.locale, again.phone) == (None, "de", "+1 555 0100")
    assert sorted((r.version, r.state) for r in await DataKey.filter(subject_id=carla.id)) == [
        (1, KeyState.DESTROYED),
        (2, KeyState.ACTIVE),
    ]
    first, _ = placeholders(is_postgres)
    _, rows = await Tortoise.get_connection("default").execute_query(
        f'SELECT "name" FROM "users" WHERE "id" = {first}',  # noqa: S608
        [str(carla.id)],
    )
    assert crypto.key_id_of(str(rows[0]["name"])) in hers

    # Rotation afterwards leaves shredded values alone and moves the rest.
    result = await key_management.rotate_data_keys(settle_seconds=0)
    assert (result.unreadable_rows, result.still_referenced) == (0, 0)
    keys.forget()
    after = await User.get(id=carla.id)
    assert (readable(after.name), after.phone) == (None, "+1 555 0100")


async def test_other_processes_stop_opening_a_destroyed_key_when_their_cache_expires(
    desk: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    carla = await user_by_email(CUSTOMER)
    monkeypatch.setattr(keys, "CACHE_TTL_SECONDS", 1.0)
    keys.forget()
    assert (await User.get(id=carla.id)).name == "Carla Customer"
    # Another process destroys her key: this one's cache has not heard of it ...
    await DataKey.filter(subject_id=carla.id).update(
        state=KeyState.DESTROYED, wrapped_key=None, kek_id=None
    )
    assert (await User.get(id=carla.id)).name == "Carla Customer"
    # ... until the cached key expires.
    await asyncio.sleep(1.1)
    shredded = await User.get(id=carla.id)
    assert (readable(shredded.name), readable(shredded.email)) == (None, None)
    assert (await user_by_email(CUSTOMER2)).name == "Chris Customer"


# --- key loading cost ----------------------------------------------------------------------


async def test_a_cold_key_cache_costs_the_same_for_10_and_50_tickets(
    as_user: AsUser, count_statements: StatementCounter
) -> None:
    await seed_agent_tickets()
    agent = await as_user(AGENT)

    keys.forget()
    small_count, small = await measure(agent, count_statements, 10)
    small_statements = list(count_statements.statements)
    keys.forget()
    large_count, large = await measure(agent, count_statements, 50)

    assert (len(small), len(large)) == (10, 50)
    assert small_count == large_count, count_statements.statements
    # One key load: the tickets' keys, with those of the people they point at (the agent).
    loads = [sql for sql in small_statements if 'FROM "data_keys"' in sql]
    assert len(loads) == 1, small_statements
    # Cold, the page also loads data keys: once per batch of rows, never per row.
    assert large_count <= MAX_STATEMENTS + 2, count_statements.statements
