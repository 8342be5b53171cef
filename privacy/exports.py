"""Access and portability exports (P22, P26, P07, P14): everything OCIS holds about a subject,
as JSON (docs/export.schema.json), built by a durable job and streamed.

Starting an access or portability request (privacy/requests.py) creates the export and queues
the ``privacy.export`` job with its id only. The job writes the JSON in parts of at most
PART_SIZE characters, each sealed under the subject's data key; a part's key is derived from
its export and index (models.exports.part_id), and the ciphertext's associated data binds that
key, so parts cannot be reordered or swapped. Tickets are read a page at a time, so the memory
a build needs does not grow with the subject's history. A rerun (a worker died) starts over:
the parts are keyed, rewritten in place, and the ones past the new end deleted.

What is in it, and what is not:
- internal notes are staff's working data about a ticket, not the subject's; they stay out
  unless the officer released them when starting the access request (never in portability:
  the subject did not provide them); each message says whether it is one;
- staff appear by role only: the access log lists roles, actions, field names and times, and
  replies say only whether the subject wrote them;
- secrets never: no password hash, no session or link token, no payment gateway token;
- the processors are those OCIS hands personal data to (every registered one: OCIS keeps no
  per-person record of transfers), with country and safeguard (P15, P30);
- legal disclosures (P13) once the authority lets the subject be told, never before; legal
  holds are the authority's matter (a hold's effect shows as a blocked erasure's step).

Portability is the data the subject provided (profile, identities, payment methods, tickets and
their own messages, consents, privacy requests), in the same schema with ``kind`` set to
``portability`` and the observed or derived sections empty.

The download link (``PUBLIC_URL/privacy/exports/<id>?token=<secret>``) works DOWNLOADS times
within LIFETIME; only the secret's hash is kept, and the mail carries the secret.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from auth.principal import ANONYMOUS, Principal
from models import (
    AccountToken,
    AuditEvent,
    ConsentEntry,
    Export,
    ExportPart,
    ExportStatus,
    ExternalIdentity,
    LegalDisclosure,
    Notice,
    NoticePreference,
    PaymentMethod,
    PrivacyRequest,
    PrivacyRequestKind,
    PrivacyRequestStep,
    Processor,
    SignInSession,
    Ticket,
    TicketMessage,
    User,
    part_id,
)
from privacy import audit, jobs, legal, notices, rectification
from privacy.audit_actions import AuditAction

KIND = "privacy.export"
EXPORT_KINDS = frozenset({PrivacyRequestKind.ACCESS, PrivacyRequestKind.PORTABILITY})
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "docs" / "export.schema.json"
SCHEMA_VERSION = 1
PART_SIZE = 64 * 1024
PAGE = 100
DOWNLOADS = 3
LIFETIME = timedelta(days=7)


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_for(request: PrivacyRequest) -> Export | None:
    """Create the export of an access or portability request and queue its job (in the
    caller's transaction); None for other kinds. Once per request."""
    if request.kind not in EXPORT_KINDS:
        return None
    existing = await Export.get_or_none(request_id=request.id)
    if existing is not None:
        return existing
    export = Export(request_id=request.id, subject_id=request.subject_id, kind=request.kind)
    await export.save()
    await jobs.enqueue(
        KIND, {"export": export.id}, dedupe_key=f"{KIND}:{export.id}", subject_id=export.subject_id
    )
    return export


# The JSON, piece by piece.


def _profile(user: User) -> dict[str, Any]:
    return {
        "name": user.name,
        "email": user.email,
        "emailVerifiedAt": _iso(user.email_verified_at),
        "phone": user.phone,
        "username": user.username,
        "dateOfBirth": user.date_of_birth,
        "locale": user.locale,
        "timeZone": user.time_zone,
        "status": user.status.value,
        "roles": list(user.roles),
        "source": user.source,
        "createdAt": _iso(user.created_at),
        "updatedAt": _iso(user.updated_at),
    }


def _identity(row: ExternalIdentity) -> dict[str, Any]:
    return {
        "provider": row.provider,
        "issuer": row.issuer,
        "subject": row.subject,
        "email": row.email,
        "emailVerified": row.email_verified,
        "linkedAt": _iso(row.linked_at),
        "source": row.provider,
    }


def _sign_in(row: SignInSession) -> dict[str, Any]:
    return {
        "method": row.method,
        "ipAddress": row.ip_address,
        "browser": row.browser,
        "browserVersion": row.browser_version,
        "os": row.os,
        "deviceType": row.device_type,
        "timeZone": row.time_zone,
        "referrer": row.referrer,
        "location": row.location,
        "createdAt": _iso(row.created_at),
        "expiresAt": _iso(row.expires_at),
        "revokedAt": _iso(row.revoked_at),
    }


def _payment_method(row: PaymentMethod) -> dict[str, Any]:
    return {
        "brand": row.brand,
        "last4": row.last4,
        "expMonth": row.exp_month,
        "expYear": row.exp_year,
        "createdAt": _iso(row.created_at),
    }


def _consent(row: ConsentEntry) -> dict[str, Any]:
    return {
        "purpose": row.purpose.value,
        "granted": row.granted,
        "objection": row.objection,
        "policyVersion": row.policy_version,
        "source": row.source.value,
        "ipAddress": row.ip_address,
        "userAgent": row.user_agent,
        "createdAt": _iso(row.created_at),
    }


def _notice(row: Notice) -> dict[str, Any]:
    return {
        "kind": row.kind,
        "params": dict(row.params),
        "createdAt": _iso(row.created_at),
        "readAt": _iso(row.read_at),
        "mailStatus": row.mail_status.value,
    }


def _account_token(row: AccountToken) -> dict[str, Any]:
    return {
        "purpose": row.purpose.value,
        "newEmail": row.new_email,
        "createdAt": _iso(row.created_at),
        "expiresAt": _iso(row.expires_at),
        "usedAt": _iso(row.used_at),
    }


def _request(row: PrivacyRequest, history: list[PrivacyRequestStep]) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "kind": row.kind.value,
        "status": row.status.value,
        "channel": row.channel.value,
        "details": row.details,
        "outcome": row.outcome,
        "receivedAt": _iso(row.received_at),
        "dueAt": _iso(row.due_at),
        "closedAt": _iso(row.closed_at),
        # A rectification's corrections: what was asked and, once decided, each decision.
        "corrections": [
            {
                "field": c.field.value,
                "value": c.value,
                "accepted": c.accepted,
                "reason": c.reason,
            }
            for c in rectification.loads(row.corrections)
        ],
        "history": [
            {
                "action": step.action.value,
                "fromStatus": step.from_status.value if step.from_status else None,
                "toStatus": step.to_status.value,
                "at": _iso(step.at),
                "note": step.note,
            }
            for step in history
        ],
    }


def _access(row: AuditEvent) -> dict[str, Any]:
    return {
        "action": row.action,
        "roles": sorted(row.actor_roles),
        "byYou": False,
        "fields": list(row.field_names),
        "purpose": row.purpose,
        "at": _iso(row.occurred_at),
    }


def _processor(row: Processor) -> dict[str, Any]:
    return {
        "name": row.name,
        "purpose": row.purpose,
        "dataCategories": list(row.data_categories),
        "country": row.country,
        "safeguard": row.safeguard.value,
    }


def _disclosure(row: LegalDisclosure) -> dict[str, Any]:
    return {
        "authority": row.authority,
        "legalBasis": row.legal_basis,
        "dataCategories": list(row.data_categories),
        "disclosedOn": row.disclosed_on.isoformat(),
    }


def _dump(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


async def _tickets(subject_id: UUID, *, notes: bool) -> AsyncIterator[dict[str, Any]]:
    """The subject's tickets with their public messages (and internal notes, if released), a
    page at a time."""
    after: UUID | None = None
    while True:
        query = Ticket.filter(requester_id=subject_id)
        if after is not None:
            query = query.filter(id__gt=after)
        page = await query.order_by("id").limit(PAGE)
        if not page:
            return
        messages: dict[UUID, list[TicketMessage]] = {ticket.id: [] for ticket in page}
        shown = TicketMessage.filter(ticket_id__in=list(messages))
        if not notes:
            shown = shown.filter(internal=False)
        for message in await shown.order_by("created_at", "id"):
            messages[message.ticket_id].append(message)
        for ticket in page:
            yield {
                "id": str(ticket.id),
                "subject": ticket.subject,
                "status": ticket.status.value,
                "priority": ticket.priority.value,
                "channel": ticket.channel.value,
                "requesterName": ticket.requester_name,
                "requesterEmail": ticket.requester_email,
                "createdAt": _iso(ticket.created_at),
                "closedAt": _iso(ticket.closed_at),
                "messages": [
                    {
                        "byYou": message.author_id == subject_id,
                        "internal": message.internal,
                        "body": message.body,
                        "createdAt": _iso(message.created_at),
                    }
                    for message in messages[ticket.id]
                ],
            }
        after = page[-1].id
        if len(page) < PAGE:
            return


async def _sections(export: Export) -> AsyncIterator[tuple[str, AsyncIterator[Any] | Any]]:
    subject_id = export.subject_id
    provided = export.kind is PrivacyRequestKind.PORTABILITY
    user = await User.get(id=subject_id)
    yield "profile", _profile(user)

    async def rows(items: list[Any]) -> AsyncIterator[Any]:
        for item in items:
            yield item

    identities = await ExternalIdentity.filter(user_id=subject_id).order_by("linked_at")
    yield "identities", rows([_identity(row) for row in identities])
    payments = await PaymentMethod.filter(user_id=subject_id).order_by("created_at")
    yield "paymentMethods", rows([_payment_method(row) for row in payments])
    notes = not provided and bool(
        await PrivacyRequest.filter(id=export.request_id, internal_notes_released=True).exists()
    )
    yield "tickets", _tickets(subject_id, notes=notes)
    consents = await ConsentEntry.filter(user_id=subject_id).order_by("created_at", "id")
    yield "consents", rows([_consent(row) for row in consents])
    requests = await PrivacyRequest.filter(subject_id=subject_id).order_by("received_at")
    steps: dict[UUID, list[PrivacyRequestStep]] = {row.id: [] for row in requests}
    for step in await PrivacyRequestStep.filter(subject_id=subject_id).order_by("at", "id"):
        steps.setdefault(step.request_id, []).append(step)
    yield "privacyRequests", rows([_request(row, steps[row.id]) for row in requests])
    if provided:
        for name in ("signIns", "notices", "noticePreferences", "accountChanges", "accessLog"):
            yield name, rows([])
        yield "processors", rows([])
        yield "legalDisclosures", rows([])
        return
    sign_ins = await SignInSession.filter(user_id=subject_id).order_by("created_at")
    yield "signIns", rows([_sign_in(row) for row in sign_ins])
    notice_rows = await Notice.filter(user_id=subject_id).order_by("created_at", "id")
    yield "notices", rows([_notice(row) for row in notice_rows])
    preferences = await NoticePreference.filter(user_id=subject_id).order_by("kind")
    yield "noticePreferences", rows([{"kind": p.kind, "byMail": p.by_mail} for p in preferences])
    tokens = await AccountToken.filter(user_id=subject_id).order_by("created_at")
    yield "accountChanges", rows([_account_token(row) for row in tokens])
    events = await AuditEvent.filter(subject_id=subject_id).order_by("occurred_at", "seq")
    log = []
    for event in events:
        entry = _access(event)
        entry["byYou"] = event.actor_id == subject_id
        log.append(entry)
    yield "accessLog", rows(log)
    processors = await Processor.all().order_by("name")
    yield "processors", rows([_processor(row) for row in processors])
    # Only those the authority lets the subject be told of by now (P13).
    disclosures = await legal.told_disclosures(subject_id)
    yield "legalDisclosures", rows([_disclosure(row) for row in disclosures])


async def render(export: Export) -> AsyncIterator[str]:
    """The export's JSON as a stream of text pieces."""
    head = {
        "schemaVersion": SCHEMA_VERSION,
        "kind": export.kind.value,
        "exportId": str(export.id),
        "subjectId": str(export.subject_id),
        "generatedAt": _iso(datetime.now(UTC)),
    }
    yield _dump(head)[:-1]
    async for name, section in _sections(export):
        yield f",{_dump(name)}:"
        if not hasattr(section, "__aiter__"):
            yield _dump(section)
            continue
        yield "["
        first = True
        async for item in section:
            yield _dump(item) if first else "," + _dump(item)
            first = False
        yield "]"
    yield "}"


async def build(job: jobs.JobContext, export: Export) -> tuple[int, int]:
    """Write the export's parts; how many, and the bytes of JSON they hold."""
    index = 0
    size = 0
    pending: list[str] = []
    pending_size = 0

    async def flush(final: bool) -> None:
        nonlocal index, pending, pending_size, size
        text = "".join(pending)
        while len(text) >= PART_SIZE or (final and text):
            chunk, text = text[:PART_SIZE], text[PART_SIZE:]
            await _write_part(export, index, chunk)
            size += len(chunk.encode())
            index += 1
            if index % 16 == 0:
                await job.renew()
        pending, pending_size = ([text] if text else []), len(text)

    async for piece in render(export):
        pending.append(piece)
        pending_size += len(piece)
        if pending_size >= PART_SIZE:
            await flush(final=False)
    await flush(final=True)
    await ExportPart.filter(export_id=export.id, index__gte=index).delete()
    return index, size


async def _write_part(export: Export, index: int, chunk: str) -> None:
    key = part_id(export.id, index)
    part = await ExportPart.get_or_none(id=key)
    if part is None:
        part = ExportPart(id=key, export_id=export.id, subject_id=export.subject_id, index=index)
        part.data = chunk
        await part.save(force_create=True)
    else:
        part.data = chunk
        await part.save(update_fields=["data"])


async def export_given_up(job: jobs.JobContext) -> None:
    """The export's job failed for good (in the transaction marking it so): the export is
    marked failed, the parts written so far go, and its subject is told; the officer sees the
    failed export on the request, which stays in progress."""
    export = await Export.select_for_update().get_or_none(id=UUID(str(job.payload["export"])))
    if export is None or export.status is not ExportStatus.BUILDING:
        return
    export.status = ExportStatus.FAILED
    export.part_count = 0
    export.size_bytes = 0
    await export.save(update_fields=["status", "part_count", "size_bytes"])
    await ExportPart.filter(export_id=export.id).delete()
    await notices.notify(export.subject_id, "privacy_export.failed", export=str(export.id))
    await audit.record(
        ANONYMOUS,
        action=AuditAction.PRIVACY_EXPORT_FAIL,
        entity="Export",
        entity_id=export.id,
        subject_id=export.subject_id,
        field_names=["Export.status"],
        purpose=job.kind,
    )


@jobs.handler(KIND, while_restricted=True, given_up=export_given_up)
async def export_job(job: jobs.JobContext) -> None:
    """Build one export, then deliver its link (notice and mail) and audit it."""
    export = await Export.get_or_none(id=UUID(str(job.payload["export"])))
    if export is None or export.status is not ExportStatus.BUILDING:
        return
    count, size = await build(job, export)
    secret = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    async with in_transaction():
        locked = await Export.select_for_update().get(id=export.id)
        if locked.status is not ExportStatus.BUILDING:
            return
        locked.status = ExportStatus.READY
        locked.token_hash = secret_hash(secret)
        locked.part_count = count
        locked.size_bytes = size
        locked.downloads_left = DOWNLOADS
        locked.ready_at = now
        locked.expires_at = now + LIFETIME
        await locked.save()
        await notices.notify(
            export.subject_id,
            "privacy_export.ready",
            link=secret,
            export=str(export.id),
            expires=(now + LIFETIME).strftime("%Y-%m-%d"),
            downloads=str(DOWNLOADS),
        )
        await audit.record(
            ANONYMOUS,
            action=AuditAction.PRIVACY_EXPORT_CREATE,
            entity="Export",
            entity_id=export.id,
            subject_id=export.subject_id,
            field_names=["Export.parts"],
            purpose=export.kind.value,
        )


async def stream(export: Export, count: int | None = None) -> AsyncIterator[str]:
    """The export's JSON, decrypted a part at a time, in order."""
    total = export.part_count if count is None else count
    for index in range(total):
        part = await ExportPart.get_or_none(id=part_id(export.id, index))
        if part is None or part.export_id != export.id or part.index != index:
            raise RuntimeError("an export part is missing or out of place")
        if part.data is None:  # its data key was destroyed (erased subject)
            raise RuntimeError("an export part can no longer be opened")
        yield part.data


class DownloadRefused(Exception):
    """Why a download is refused: `gone` (expired or used up) or not found (anything else)."""

    def __init__(self, gone: bool) -> None:
        super().__init__("gone" if gone else "not found")
        self.gone = gone


async def take_download(principal: Principal, export_id: UUID, secret: str | None) -> Export:
    """Count one download of an export by its subject's session or its link's secret, and
    audit it (a refusal too); DownloadRefused when it may not be had."""
    export = await Export.get_or_none(id=export_id)
    by_session = export is not None and principal.user_id == export.subject_id
    by_secret = (
        export is not None
        and secret is not None
        and export.token_hash is not None
        and secrets.compare_digest(export.token_hash, secret_hash(secret))
    )
    if export is None or not (by_session or by_secret):
        if export is not None:
            await _audit_download(principal, export, refused="not_authorised")
        raise DownloadRefused(gone=False)
    now = datetime.now(UTC)
    async with in_transaction():
        taken = await Export.filter(
            id=export.id,
            status=ExportStatus.READY,
            downloads_left__gt=0,
            expires_at__gt=now,
        ).update(downloads_left=F("downloads_left") - 1)
        if taken:
            await _audit_download(principal, export, refused=None)
    if not taken:
        await _audit_download(principal, export, refused="gone")
        raise DownloadRefused(gone=True)
    return await Export.get(id=export.id)


async def _audit_download(principal: Principal, export: Export, refused: str | None) -> None:
    await audit.record(
        principal,
        action=(
            AuditAction.PRIVACY_EXPORT_DOWNLOAD
            if refused is None
            else AuditAction.PRIVACY_EXPORT_DOWNLOAD_REFUSE
        ),
        entity="Export",
        entity_id=export.id,
        subject_id=export.subject_id,
        field_names=["Export.parts"] if refused is None else [],
        purpose=refused,
    )


def schema_text() -> str:
    return SCHEMA_PATH.read_text(encoding="utf-8")
