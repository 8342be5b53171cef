"""Live updates: ticket events and ended sign-ins, fanned out through the shared store's pub/sub.

A use case that changed a ticket publishes ids only (the ticket, the message, the requester's
account) on one channel; every process subscribes to it once (`Hub.run`) and hands each event
to the feeds of its own connections that asked for that ticket or that requester. What a
subscriber receives is read again from the database with its own principal and scoped queries
(`read_ticket_event`), so the published ids decide nothing about what anyone may see. With
REDIS_URL the channel crosses processes; in the embedded default fakeredis's in-process client
does the same within the one process.

Each feed's queue is bounded: a subscriber that lets it fill is dropped (its connection is
closed), never buffered for without limit. Events published while a process is reconnecting
to Redis are lost to it: live updates tell clients what changed; the queries stay the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as StoreConnectionError
from redis.exceptions import TimeoutError as StoreTimeoutError

from auth import scoping
from auth.principal import Principal
from models import Ticket, TicketMessage

CHANNEL = "ocis:live"
# Events one subscription may have waiting; a subscriber further behind is dropped.
QUEUE_SIZE = 64
# How long one wait for a message on the channel lasts: under the store's socket timeout, so
# the wait never reads as a dead connection.
POLL_SECONDS = 0.4
RECONNECT_SECONDS = 1.0
# How long the channel's pub/sub connection gets to close when the loop ends.
CLOSE_SECONDS = 2.0

MESSAGE = "message"
STATUS = "status"
ASSIGNMENT = "assignment"
KINDS = frozenset({MESSAGE, STATUS, ASSIGNMENT})

logger = logging.getLogger("ocis.live")


@dataclass(frozen=True, slots=True)
class TicketEvent:
    """Something happened on a ticket: ids only, never a value."""

    kind: str
    ticket_id: UUID
    requester_id: UUID | None = None
    message_id: UUID | None = None


def _encode(event: TicketEvent) -> str:
    return json.dumps(
        {
            "t": "ticket",
            "kind": event.kind,
            "ticket": str(event.ticket_id),
            "requester": str(event.requester_id) if event.requester_id else None,
            "message": str(event.message_id) if event.message_id else None,
        }
    )


def _uuid_or_none(value: object) -> UUID | None:
    return UUID(value) if isinstance(value, str) else None


async def publish_ticket_event(store: Redis | None, event: TicketEvent) -> None:
    """Tell every process's subscribers; called once the change has committed.

    The change is stored whatever happens here: a store that cannot be reached costs the live
    update only, so the caller is not told to retry a write that took place.
    """
    if store is None:
        return
    try:
        await store.publish(CHANNEL, _encode(event))
    except (StoreConnectionError, StoreTimeoutError) as error:
        logger.warning("live events: not published (%s)", type(error).__name__)


async def announce_account_change(store: Redis | None, user_id: UUID | None) -> None:
    """Tell every process that this account's sign-ins ended or changed: its live connections
    check their credentials again at once (and close if they no longer hold)."""
    if store is not None and user_id is not None:
        await store.publish(CHANNEL, json.dumps({"t": "account", "user": str(user_id)}))


@dataclass(eq=False)
class Feed:
    """One subscription's queue of events, and what to do when it overflows."""

    wants: Callable[[TicketEvent], bool]
    on_overflow: Callable[[], None]
    queue: asyncio.Queue[TicketEvent] = field(
        default_factory=lambda: asyncio.Queue(maxsize=QUEUE_SIZE)
    )
    dropped: bool = False

    def offer(self, event: TicketEvent) -> None:
        if self.dropped or not self.wants(event):
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped = True
            self.on_overflow()

    async def next(self) -> TicketEvent:
        return await self.queue.get()


class Hub:
    """This process's end of the channel: one subscription to the store, many local feeds."""

    def __init__(self, store: Redis) -> None:
        self.store = store
        self.feeds: set[Feed] = set()
        self.watchers: dict[UUID, set[asyncio.Event]] = {}
        self.subscribed = asyncio.Event()
        # Set by stop(): the loop ends by itself even where a cancellation is swallowed.
        self.stopped = False
        # Open sockets per client address, in this process.
        self.sockets: dict[str, int] = {}

    @contextlib.contextmanager
    def socket_slot(self, address: str | None, limit: int) -> Iterator[bool]:
        """Hold one of the `limit` sockets an address may have open here while the block
        runs; yields False (and holds nothing) when they are all taken. No address: no limit."""
        if address is None:
            yield True
            return
        held = self.sockets.get(address, 0)
        if held >= limit:
            yield False
            return
        self.sockets[address] = held + 1
        try:
            yield True
        finally:
            left = self.sockets[address] - 1
            if left:
                self.sockets[address] = left
            else:
                del self.sockets[address]

    @contextlib.contextmanager
    def feed(
        self, wants: Callable[[TicketEvent], bool], on_overflow: Callable[[], None]
    ) -> Iterator[Feed]:
        feed = Feed(wants, on_overflow)
        self.feeds.add(feed)
        try:
            yield feed
        finally:
            self.feeds.discard(feed)

    @contextlib.contextmanager
    def account_watch(self, user_id: UUID) -> Iterator[asyncio.Event]:
        """An event set whenever the account's sign-ins are announced as ended or changed."""
        signal = asyncio.Event()
        self.watchers.setdefault(user_id, set()).add(signal)
        try:
            yield signal
        finally:
            watchers = self.watchers.get(user_id)
            if watchers is not None:
                watchers.discard(signal)
                if not watchers:
                    del self.watchers[user_id]

    def dispatch(self, raw: str) -> None:
        """Hand one message of the channel to whoever here asked for it."""
        try:
            message: dict[str, Any] = json.loads(raw)
            if message.get("t") == "account":
                user_id = UUID(message["user"])
                for signal in self.watchers.get(user_id, ()):
                    signal.set()
                return
            kind = message["kind"]
            if kind not in KINDS:
                return
            event = TicketEvent(
                kind=kind,
                ticket_id=UUID(message["ticket"]),
                requester_id=_uuid_or_none(message.get("requester")),
                message_id=_uuid_or_none(message.get("message")),
            )
        except (ValueError, KeyError, TypeError):
            logger.warning("live events: a malformed message on the channel was ignored")
            return
        for feed in list(self.feeds):
            feed.offer(event)

    def stop(self) -> None:
        """Make run() end within a poll: a process stopping sets this before cancelling it
        (redis-py may turn a cancellation into an error it then clears, or swallow it)."""
        self.stopped = True

    async def run(self) -> None:
        """Listen to the channel until stopped or cancelled, resubscribing after a lost
        connection."""
        while not self.stopped:
            pubsub = self.store.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                self.subscribed.set()
                while not self.stopped:
                    message = await pubsub.get_message(timeout=POLL_SECONDS)
                    if message is not None and message.get("type") == "message":
                        self.dispatch(str(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - any failure: reconnect, never die
                self.subscribed.clear()
                if self.stopped:
                    return
                if _cancelling():
                    # redis-py may turn the cancellation of a read into a connection error:
                    # this loop was told to stop, and stops (or it would never end).
                    raise asyncio.CancelledError from error
                logger.warning("live events: %s; subscribing again", type(error).__name__)
                await asyncio.sleep(RECONNECT_SECONDS)
            finally:
                # Bounded: closing a pub/sub whose read was cancelled can wait for good.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pubsub.aclose(), CLOSE_SECONDS)  # type: ignore[no-untyped-call]


def _cancelling() -> bool:
    """Whether the running task has been asked to stop (Python 3.11+)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class TicketEventKind(Enum):
    REPLY = "reply"
    INTERNAL_NOTE = "internal_note"
    STATUS_CHANGED = "status_changed"
    ASSIGNMENT_CHANGED = "assignment_changed"


@dataclass(frozen=True, slots=True)
class EventRows:
    """What one subscriber may read of one event: the ticket, and the message if any."""

    kind: TicketEventKind
    ticket: Ticket
    message: TicketMessage | None


async def read_ticket_event(
    principal: Principal, event: TicketEvent, *, own_tickets_only: bool = False
) -> EventRows | None:
    """The event as this caller may read it now, or None when they may not see it (a ticket
    out of their reach, an internal note for anyone without that scope)."""
    ticket = await scoping.readable_tickets(principal).get_or_none(id=event.ticket_id)
    if ticket is None:
        return None
    if own_tickets_only and (principal.user_id is None or ticket.requester_id != principal.user_id):
        return None
    if event.kind == STATUS:
        return EventRows(TicketEventKind.STATUS_CHANGED, ticket, None)
    if event.kind == ASSIGNMENT:
        return EventRows(TicketEventKind.ASSIGNMENT_CHANGED, ticket, None)
    message = await scoping.readable_messages(principal).get_or_none(
        id=event.message_id, ticket_id=ticket.id
    )
    if message is None:
        return None
    kind = TicketEventKind.INTERNAL_NOTE if message.internal else TicketEventKind.REPLY
    return EventRows(kind, ticket, message)
