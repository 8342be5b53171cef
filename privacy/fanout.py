"""Notices owed to every account, written by a job in batches, never in the request that asks.

Asking (``owe_everyone``) writes one row in the transaction of the change it reports. Any
process then claims that row (privacy/leases.py, the claim mail and jobs use), writes the
notices of the next ``BATCH`` accounts in id order and moves its cursor, all in one transaction
whose first statement is the claim: a second worker passes over the row while it is taken, and a
crash rolls the batch back, losing no notice and doubling none. privacy/mail.py then mails each
notice like any other, recording delivery per account. Accounts opened after the ask are not
owed it; disabled and erased ones are not told.

A marketing campaign (privacy/marketing.py) is owed the same way, to the accounts eligible
when each batch is written rather than to all; each batch also counts its mails on the
campaign, which is sent once its last batch is written.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from uuid import UUID

from tortoise.expressions import F
from tortoise.transactions import in_transaction

import settings as config
from models import SIGN_IN_STATUSES, Campaign, CampaignState, Notice, NoticeFanout, User
from privacy import marketing, notices
from privacy.leases import Queue, claim

logger = logging.getLogger("ocis.fanout")

BATCH = 500
# A worker that dies mid-batch rolls back; the lease only keeps others off while it works.
LEASE = timedelta(minutes=2)
FANOUT_QUEUE = Queue(
    table="notice_fanouts",
    due='"done_at" IS NULL AND "lease_until" <= :now',
    take='"lease_until" = :until',
    order='"created_at"',
)


async def owe_everyone(kind: str, **params: str) -> NoticeFanout:
    """Owe a notice of this kind to every account open now (call inside the change's
    transaction); the job writes them."""
    notices.new_notice(kind, params)  # an unknown kind or a kind needing a link fails here
    fanout = NoticeFanout(kind=kind, params=params, lease_until=datetime.now(UTC))
    await fanout.save()
    return fanout


async def fan_out_due(*, batches: int = 20) -> int:
    """Write up to `batches` batches of the notices owed; answer how many were written."""
    written = 0
    for _ in range(batches):
        batch = await _next_batch()
        if batch is None:
            break
        written += batch
    return written


async def _next_batch() -> int | None:
    """One batch of the oldest fan-out nobody holds; None when there is none."""
    now = datetime.now(UTC)
    async with in_transaction():
        taken = await claim(FANOUT_QUEUE, limit=1, now=now, until=now + LEASE)
        if not taken:
            return None
        fanout = await NoticeFanout.get(id=taken[0].id)
        ids = await _owed(fanout)
        owed = []
        for user_id in ids:
            notice = notices.new_notice(fanout.kind, fanout.params)
            notice.user_id = user_id
            owed.append(notice)
        if owed:
            await Notice.bulk_create(owed)
        finished = len(ids) < BATCH
        await NoticeFanout.filter(id=fanout.id).update(
            cursor=ids[-1] if ids else fanout.cursor,
            notified=fanout.notified + len(ids),
            lease_until=now,
            done_at=now if finished else None,
        )
        if fanout.kind == marketing.CAMPAIGN_KIND:
            await Campaign.filter(id=fanout.params["campaign"]).update(
                queued=F("queued") + len(ids),
                **({"state": CampaignState.SENT} if finished else {}),
            )
    if finished:
        logger.info("fan-out %s done: %d notices", fanout.id, fanout.notified + len(ids))
    return len(ids)


async def _owed(fanout: NoticeFanout) -> list[UUID]:
    """The next batch of accounts owed this notice, after the cursor."""
    if fanout.kind == marketing.CAMPAIGN_KIND:
        return await marketing.eligible_batch(fanout.cursor, BATCH, opened_by=fanout.created_at)
    accounts = User.filter(status__in=SIGN_IN_STATUSES, created_at__lte=fanout.created_at)
    if fanout.cursor is not None:
        accounts = accounts.filter(id__gt=fanout.cursor)
    ids = await accounts.order_by("id").limit(BATCH).values_list("id", flat=True)
    return [UUID(str(ident)) for ident in ids]


async def run_forever(settings: config.Settings) -> None:
    """The fan-out job of one process; stops only when cancelled."""
    while True:
        await asyncio.sleep(settings.fanout_poll_seconds)
        try:
            await fan_out_due()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the loop outlives a bad moment of the database
            logger.error("fan-out round failed: %s", type(error).__name__)
