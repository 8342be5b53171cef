"""Marketing by email (P12): who may be sent it, and the signed one-click way out.

Who is eligible is decided here and only here, one SQL statement per batch: an open account
(status active, so neither disabled, erased nor restricted) whose address finds it and is
verified, whose latest marketing-email decision in the consent ledger is a grant (an
objection, P27, is recorded as a withdrawal, so it counts), and who has not turned the campaign
mail off among their notice preferences. A restricted account (P25) is not active, so it is
never eligible.

Every campaign mail carries an unsubscribe link (RFC 8058): a token naming the account and
the purpose, an expiry, and an HMAC-SHA256 under a key derived from the master key. Nothing
is stored until it is used; tokens signed under a previous master key stay valid until they
expire. It holds an account id, never an address.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import time
from datetime import datetime
from uuid import UUID

from tortoise.expressions import RawSQL, Subquery
from tortoise.queryset import QuerySet

import settings as config
from models import ConsentPurpose, NoticePreference, User, UserStatus, crypto

CAMPAIGN_KIND = "marketing.campaign"
PURPOSE = ConsentPurpose.MARKETING_EMAIL
# A mail read months later still unsubscribes; one older than this sends its reader to the
# consent settings instead (the page says so).
TOKEN_LIFETIME_SECONDS = 90 * 24 * 3600
TOKEN_VERSION = "u1"  # noqa: S105 (a format version, not a secret)
MAX_TOKEN_CHARS = 200  # a genuine one is about 110

# The latest marketing-email decision of the account in the outer query; on a tie in time a
# withdrawal wins. The purpose is spelled out (ConsentPurpose.MARKETING_EMAIL): no input here.
_LATEST_DECISION = RawSQL(
    '(SELECT "c"."granted" FROM "consent_entries" "c" WHERE "c"."user_id" = "users"."id"'
    ' AND "c"."purpose" = \'marketing_email\''
    ' ORDER BY "c"."created_at" DESC, "c"."granted" ASC LIMIT 1)'
)


def _eligible() -> QuerySet[User]:
    turned_off = NoticePreference.filter(kind=CAMPAIGN_KIND, by_mail=False).values("user_id")
    return (
        User.filter(
            status=UserStatus.ACTIVE,
            email_index__not_isnull=True,
            email_verified_at__not_isnull=True,
        )
        .exclude(id__in=Subquery(turned_off))
        .annotate(marketing_email=_LATEST_DECISION)
        .filter(marketing_email=True)
    )


async def eligible_batch(
    after_id: UUID | None, limit: int, *, opened_by: datetime | None = None
) -> list[UUID]:
    """The next `limit` eligible accounts after `after_id` in id order (one statement);
    with `opened_by`, only accounts opened by then."""
    query = _eligible()
    if after_id is not None:
        query = query.filter(id__gt=after_id)
    if opened_by is not None:
        query = query.filter(created_at__lte=opened_by)
    ids = await query.order_by("id").limit(limit).values_list("id", flat=True)
    return [UUID(str(ident)) for ident in ids]


async def count_eligible() -> int:
    return await _eligible().count()


async def still_eligible(user_id: UUID) -> bool:
    """Checked again when each mail is sent: a withdrawal since the batch was written wins."""
    return await _eligible().filter(id=user_id).exists()


@functools.lru_cache(maxsize=8)
def _mac_key(master_key: bytes) -> bytes:
    return crypto.derive(master_key, "ocis/unsubscribe-link")


def _mac(master_key: bytes, payload: str) -> str:
    digest = hmac.new(_mac_key(master_key), payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def unsubscribe_token(settings: config.Settings, user_id: UUID, *, now: float | None = None) -> str:
    """A token that withdraws this account's marketing-email consent, for 90 days."""
    expires = int(time.time() if now is None else now) + TOKEN_LIFETIME_SECONDS
    payload = f"{TOKEN_VERSION}.{user_id.hex}.{PURPOSE.value}.{expires}"
    return f"{payload}.{_mac(settings.master_key, payload)}"


def unsubscribe_url(settings: config.Settings, user_id: UUID) -> str:
    return f"{settings.public_url.rstrip('/')}/unsubscribe/{unsubscribe_token(settings, user_id)}"


def read_unsubscribe_token(
    settings: config.Settings, token: str, *, now: float | None = None
) -> UUID | None:
    """The account a token names, or None if it is malformed, forged, tampered or expired."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    payload, _, mac = token.rpartition(".")
    parts = payload.split(".")
    if len(parts) != 4 or parts[0] != TOKEN_VERSION or parts[2] != PURPOSE.value:
        return None
    masters = (settings.master_key, *settings.previous_master_keys)
    if not any(hmac.compare_digest(mac.encode(), _mac(m, payload).encode()) for m in masters):
        return None
    try:
        user_id = UUID(hex=parts[1])
        expired = int(parts[3]) <= (time.time() if now is None else now)
    except ValueError:
        return None
    return None if expired else user_id
