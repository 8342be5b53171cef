"""GraphQL object types over the domain models; personal-data types carry their policy."""

import base64
import binascii
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

import strawberry

from auth.policy import Relation
from models import (
    AuditEvent,
    Channel,
    ConsentEntry,
    ConsentPurpose,
    ExternalIdentity,
    MailStatus,
    Notice,
    PaymentMethod,
    PrivacyRequest,
    PrivacyRequestKind,
    PrivacyRequestStatus,
    Role,
    SignInSession,
    Ticket,
    TicketMessage,
    TicketPriority,
    TicketStatus,
    User,
    UserStatus,
)
from resolvers.accounts import notice_text
from resolvers.errors import DomainError, InvalidInput
from resolvers.pagination import Page, decode_cursor, page_size
from schema.context import Info
from schema.errors import from_domain
from schema.need_to_know import personal_data

TicketStatusEnum = strawberry.enum(TicketStatus, name="TicketStatus")
TicketPriorityEnum = strawberry.enum(TicketPriority, name="TicketPriority")
ChannelEnum = strawberry.enum(Channel, name="Channel")
RoleEnum = strawberry.enum(Role, name="Role")
UserStatusEnum = strawberry.enum(UserStatus, name="UserStatus")
ConsentPurposeEnum = strawberry.enum(ConsentPurpose, name="ConsentPurpose")
PrivacyRequestKindEnum = strawberry.enum(PrivacyRequestKind, name="PrivacyRequestKind")
PrivacyRequestStatusEnum = strawberry.enum(PrivacyRequestStatus, name="PrivacyRequestStatus")


def to_global_id(type_name: str, ident: UUID) -> strawberry.ID:
    raw = f"{type_name}:{ident}".encode()
    return strawberry.ID(base64.urlsafe_b64encode(raw).decode().rstrip("="))


def from_global_id(
    global_id: str, expected: str | None = None, field: str = "id"
) -> tuple[str, UUID]:
    """Decode an opaque id; a malformed one, or one of another type, is a coded error."""
    try:
        raw = base64.urlsafe_b64decode(global_id + "=" * (-len(global_id) % 4)).decode()
        type_name, ident = raw.split(":", 1)
        parsed = UUID(ident)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput("This id is not one this API issued.", field=field) from exc
    if expected is not None and type_name != expected:
        raise InvalidInput(f"This id does not name a {expected}.", field=field)
    return type_name, parsed


@strawberry.interface(description="An object with an opaque global id, fetchable by node(id:).")
class Node:
    @strawberry.field(description="Opaque global id.")
    def id(self) -> strawberry.ID:
        raise NotImplementedError


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


N = TypeVar("N")


@strawberry.type
class Edge(Generic[N]):
    node: N
    cursor: str


@strawberry.type
class Connection(Generic[N]):
    edges: list[Edge[N]]
    page_info: PageInfo


def connection(page: Page[Any], nodes: list[N]) -> Connection[N]:
    from resolvers.pagination import encode_cursor

    return Connection(
        edges=[
            Edge(node=node, cursor=encode_cursor(item))
            for item, node in zip(page.items, nodes, strict=True)
        ],
        page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
    )


def relation_to_self(principal_user: UUID | None, owner: UUID | None) -> Relation:
    return Relation(is_self=owner is not None and owner == principal_user)


async def user_node(info: Info, user_id: UUID | None) -> "UserType | None":
    """A person reached through an object already in scope, with the caller's relation."""
    if user_id is None:
        return None
    loaders = info.context.loaders
    user = await loaders.users.load(user_id)
    if user is None:
        return None
    return UserType(model=user, relation=await loaders.relations.load(user_id))


@personal_data
@strawberry.type(name="User", description="An account. Personal fields follow need-to-know.")
class UserType(Node):
    model: strawberry.Private[User]
    relation: strawberry.Private[Relation]

    @property
    def subject_id(self) -> UUID | None:
        return self.model.id

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("User", self.model.id)

    @strawberry.field
    def name(self) -> str | None:
        return self.model.name

    @strawberry.field
    def email(self) -> str | None:
        return self.model.email

    @strawberry.field
    def phone(self) -> str | None:
        return self.model.phone

    @strawberry.field
    def username(self) -> str | None:
        return self.model.username

    @strawberry.field
    def date_of_birth(self) -> date | None:
        value = self.model.date_of_birth
        return date.fromisoformat(value) if value else None

    @strawberry.field
    def locale(self) -> str | None:
        return self.model.locale

    @strawberry.field
    def time_zone(self) -> str | None:
        return self.model.time_zone

    @strawberry.field
    def roles(self) -> list[RoleEnum] | None:  # type: ignore[valid-type]
        return [Role(role) for role in self.model.roles]

    @strawberry.field
    def status(self) -> UserStatusEnum | None:  # type: ignore[valid-type]
        return UserStatus(self.model.status)

    @strawberry.field(description="Where this record came from: self, a provider or a partner.")
    def source(self) -> str | None:
        return self.model.source

    @strawberry.field
    def created_at(self) -> datetime | None:
        return self.model.created_at

    @strawberry.field
    async def payment_methods(self, info: Info) -> "list[PaymentMethodType] | None":
        methods = await info.context.loaders.payment_methods.load(self.model.id)
        return [PaymentMethodType(model=method, relation=self.relation) for method in methods]

    @strawberry.field(description="Provider accounts that sign in to this account.")
    async def identities(self, info: Info) -> "list[LinkedIdentityType] | None":
        linked = await info.context.loaders.identities.load(self.model.id)
        return [LinkedIdentityType(model=row, relation=self.relation) for row in linked]

    @strawberry.field(description="Recent sign-ins and what they collected (P04).")
    async def sign_ins(self, info: Info) -> "list[SignInType] | None":
        records = await info.context.loaders.sign_ins.load(self.model.id)
        current = info.context.principal.session_id
        return [
            SignInType(model=r, relation=self.relation, current_session=current) for r in records
        ]


@personal_data
@strawberry.type(name="LinkedIdentity", description="A provider account linked for sign-in.")
class LinkedIdentityType(Node):
    model: strawberry.Private[ExternalIdentity]
    relation: strawberry.Private[Relation]

    @property
    def subject_id(self) -> UUID | None:
        owner: UUID | None = self.model.user_id  # type: ignore[attr-defined]
        return owner

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("LinkedIdentity", self.model.id)

    @strawberry.field(description="google, microsoft, linkedin or another configured name.")
    def provider(self) -> str | None:
        return self.model.provider

    @strawberry.field
    def email(self) -> str | None:
        return self.model.email

    @strawberry.field(description="Whether the provider vouched for the email.")
    def email_verified(self) -> bool | None:
        return self.model.email_verified

    @strawberry.field
    def linked_at(self) -> datetime | None:
        return self.model.linked_at


@personal_data
@strawberry.type(name="Ticket", description="A support ticket.")
class TicketType(Node):
    model: strawberry.Private[Ticket]
    relation: strawberry.Private[Relation]

    @property
    def subject_id(self) -> UUID | None:
        requester: UUID | None = self.model.requester_id  # type: ignore[attr-defined]
        return requester

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("Ticket", self.model.id)

    @strawberry.field
    def subject(self) -> str | None:
        return self.model.subject

    @strawberry.field
    def status(self) -> TicketStatusEnum | None:  # type: ignore[valid-type]
        return TicketStatus(self.model.status)

    @strawberry.field
    def priority(self) -> TicketPriorityEnum | None:  # type: ignore[valid-type]
        return TicketPriority(self.model.priority)

    @strawberry.field
    def channel(self) -> ChannelEnum | None:  # type: ignore[valid-type]
        return Channel(self.model.channel)

    @strawberry.field(description="The registered account that opened the ticket, if any.")
    async def requester(self, info: Info) -> UserType | None:
        return await user_node(info, self.model.requester_id)  # type: ignore[attr-defined]

    @strawberry.field(description="Name of a requester known only by email.")
    def requester_name(self) -> str | None:
        return self.model.requester_name

    @strawberry.field(description="Email of a requester known only by email.")
    def requester_email(self) -> str | None:
        return self.model.requester_email

    @strawberry.field
    async def assignee(self, info: Info) -> UserType | None:
        return await user_node(info, self.model.assignee_id)  # type: ignore[attr-defined]

    @strawberry.field
    def created_at(self) -> datetime | None:
        return self.model.created_at

    @strawberry.field
    def updated_at(self) -> datetime | None:
        return self.model.updated_at

    @strawberry.field
    def closed_at(self) -> datetime | None:
        return self.model.closed_at

    @strawberry.field(description="Public replies, and internal notes for staff, oldest first.")
    async def messages(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> "Connection[TicketMessageType] | None":
        try:
            page_size(first)
            if after is not None:
                decode_cursor(after)
        except DomainError as error:
            raise from_domain(error) from None
        key = (self.model.id, first, after)
        page = await info.context.loaders.message_pages.load(key)
        nodes = [TicketMessageType(model=message, relation=Relation()) for message in page.items]
        return connection(page, nodes)


async def ticket_nodes(info: Info, tickets: Sequence[Ticket]) -> list[TicketType]:
    """Tickets with the caller's relation to each requester.

    A requester is judged as a person: any ticket of theirs the caller works, found by
    account for registered requesters and by the email's blind index for the others.
    """
    requesters = [ticket.requester_id for ticket in tickets]  # type: ignore[attr-defined]
    known = [ident for ident in dict.fromkeys(requesters) if ident is not None]
    loaders = info.context.loaders
    relations = dict(zip(known, await loaders.relations.load_many(known), strict=True))
    walk_ins = list(
        dict.fromkeys(
            t.requester_email_index for t in tickets if t.requester_email_index is not None
        )
    )
    worked = dict(zip(walk_ins, await loaders.walk_ins.load_many(walk_ins), strict=True))
    nodes = []
    for ticket, requester in zip(tickets, requesters, strict=True):
        if requester is not None:
            relation = relations[requester]
        else:
            index = ticket.requester_email_index
            relation = Relation(works_their_ticket=bool(index and worked.get(index)))
        nodes.append(TicketType(model=ticket, relation=relation))
    return nodes


@personal_data
@strawberry.type(name="TicketMessage", description="A reply or an internal note.")
class TicketMessageType(Node):
    model: strawberry.Private[TicketMessage]
    relation: strawberry.Private[Relation]

    @property
    def subject_id(self) -> UUID | None:
        author: UUID | None = self.model.author_id  # type: ignore[attr-defined]
        return author

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("TicketMessage", self.model.id)

    @strawberry.field
    def body(self) -> str | None:
        return self.model.body

    @strawberry.field(description="True for a staff-only note; customers never receive these.")
    def internal(self) -> bool | None:
        return self.model.internal

    @strawberry.field
    async def author(self, info: Info) -> UserType | None:
        return await user_node(info, self.model.author_id)  # type: ignore[attr-defined]

    @strawberry.field
    def created_at(self) -> datetime | None:
        return self.model.created_at


@personal_data
@strawberry.type(name="SignIn", description="One sign-in and the metadata collected with it.")
class SignInType(Node):
    model: strawberry.Private[SignInSession]
    relation: strawberry.Private[Relation]

    @property
    def subject_id(self) -> UUID | None:
        owner: UUID | None = self.model.user_id  # type: ignore[attr-defined]
        return owner

    current_session: strawberry.Private[UUID | None] = None

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("SignIn", self.model.id)

    @strawberry.field
    def method(self) -> str | None:
        return self.model.method

    @strawberry.field
    def ip_address(self) -> str | None:
        return self.model.ip_address

    @strawberry.field
    def browser(self) -> str | None:
        return self.model.browser

    @strawberry.field
    def browser_version(self) -> str | None:
        return self.model.browser_version

    @strawberry.field
    def os(self) -> str | None:
        return self.model.os

    @strawberry.field
    def device_type(self) -> str | None:
        return self.model.device_type

    @strawberry.field
    def time_zone(self) -> str | None:
        return self.model.time_zone

    @strawberry.field
    def referrer(self) -> str | None:
        return self.model.referrer

    @strawberry.field
    def location(self) -> str | None:
        return self.model.location

    @strawberry.field
    def created_at(self) -> datetime | None:
        return self.model.created_at

    @strawberry.field(description="True for the session making this request.")
    def current(self) -> bool | None:
        return self.model.id == self.current_session


@personal_data
@strawberry.type(name="PaymentMethod", description="A card known only by its gateway token.")
class PaymentMethodType(Node):
    model: strawberry.Private[PaymentMethod]
    relation: strawberry.Private[Relation]

    @property
    def subject_id(self) -> UUID | None:
        owner: UUID | None = self.model.user_id  # type: ignore[attr-defined]
        return owner

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("PaymentMethod", self.model.id)

    @strawberry.field
    def brand(self) -> str | None:
        return self.model.brand

    @strawberry.field
    def last4(self) -> str | None:
        return self.model.last4

    @strawberry.field
    def exp_month(self) -> int | None:
        return int(self.model.exp_month)

    @strawberry.field
    def exp_year(self) -> int | None:
        return int(self.model.exp_year)

    @strawberry.field
    def created_at(self) -> datetime | None:
        return self.model.created_at


@personal_data
@strawberry.type(name="PrivacyRequest", description="A request to exercise a GDPR right.")
class PrivacyRequestType(Node):
    model: strawberry.Private[PrivacyRequest]
    relation: strawberry.Private[Relation]

    @property
    def subject_id(self) -> UUID | None:
        subject: UUID | None = self.model.subject_id  # type: ignore[attr-defined]
        return subject

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("PrivacyRequest", self.model.id)

    @strawberry.field
    def kind(self) -> PrivacyRequestKindEnum | None:  # type: ignore[valid-type]
        return PrivacyRequestKind(self.model.kind)

    @strawberry.field
    def status(self) -> PrivacyRequestStatusEnum | None:  # type: ignore[valid-type]
        return PrivacyRequestStatus(self.model.status)

    @strawberry.field
    def details(self) -> str | None:
        return self.model.details

    @strawberry.field
    def received_at(self) -> datetime | None:
        return self.model.received_at

    @strawberry.field(description="The date by which OCIS must answer (one month).")
    def due_at(self) -> datetime | None:
        return self.model.due_at

    @strawberry.field
    def closed_at(self) -> datetime | None:
        return self.model.closed_at

    @strawberry.field
    def outcome(self) -> str | None:
        return self.model.outcome


@personal_data
@strawberry.type(name="ConsentEntry", description="One line of the append-only consent ledger.")
class ConsentEntryType:
    model: strawberry.Private[ConsentEntry]
    relation: strawberry.Private[Relation]

    @property
    def subject_id(self) -> UUID | None:
        owner: UUID | None = self.model.user_id  # type: ignore[attr-defined]
        return owner

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("ConsentEntry", self.model.id)

    @strawberry.field
    def purpose(self) -> ConsentPurposeEnum | None:  # type: ignore[valid-type]
        return ConsentPurpose(self.model.purpose)

    @strawberry.field
    def granted(self) -> bool | None:
        return self.model.granted

    @strawberry.field
    def policy_version(self) -> str | None:
        return self.model.policy_version

    @strawberry.field
    def source(self) -> str | None:
        return self.model.source

    @strawberry.field
    def created_at(self) -> datetime | None:
        return self.model.created_at


@personal_data
@strawberry.type(
    name="AuditEntry",
    description="One audit record: who did what with whose data (field names, never values).",
)
class AuditEntryType:
    model: strawberry.Private[AuditEvent]
    relation: strawberry.Private[Relation]

    @property
    def subject_id(self) -> UUID | None:
        return self.model.subject_id

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.model.seq))

    @strawberry.field
    def occurred_at(self) -> datetime | None:
        return self.model.occurred_at

    @strawberry.field(description="What happened, e.g. personal_data.read or ticket.reply.")
    def action(self) -> str | None:
        return self.model.action

    @strawberry.field(description="Type.field names that were read or changed.")
    def field_names(self) -> list[str] | None:
        return list(self.model.field_names)

    @strawberry.field(description="The roles the actor held at the time.")
    def actor_roles(self) -> list[RoleEnum] | None:  # type: ignore[valid-type]
        return [Role(role) for role in self.model.actor_roles if role in Role.__members__.values()]

    @strawberry.field
    def purpose(self) -> str | None:
        return self.model.purpose

    @strawberry.field(description="Who acted (privacy officer only).")
    async def actor(self, info: Info) -> "UserType | None":
        return await user_node(info, self.model.actor_id)

    @strawberry.field
    def request_id(self) -> str | None:
        return self.model.request_id


def audit_entry(principal_user: UUID | None, event: AuditEvent) -> AuditEntryType:
    relation = Relation(is_self=event.subject_id is not None and event.subject_id == principal_user)
    return AuditEntryType(model=event, relation=relation)


@personal_data
@strawberry.type(
    name="ConsentState", description="The caller's current decision for one consent purpose."
)
class ConsentState:
    purpose: ConsentPurposeEnum | None  # type: ignore[valid-type]
    granted: bool | None
    policy_version: str | None
    updated_at: datetime | None
    owner: strawberry.Private[UUID | None]

    @property
    def relation(self) -> Relation:
        return Relation(is_self=True)

    @property
    def subject_id(self) -> UUID | None:
        return self.owner


@personal_data
@strawberry.type(
    name="Notice",
    description="Something OCIS told you: kept here, and sent to your email address.",
)
class NoticeType:
    model: strawberry.Private[Notice]
    contact: strawberry.Private[str]
    relation: strawberry.Private[Relation]

    @property
    def subject_id(self) -> UUID | None:
        owner: UUID = self.model.user_id  # type: ignore[attr-defined]
        return owner

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("Notice", self.model.id)

    @strawberry.field(description="What the notice is about, e.g. identity.linked.")
    def kind(self) -> str | None:
        return self.model.kind

    @strawberry.field
    def subject(self) -> str | None:
        return notice_text(self.model, self.contact).subject

    @strawberry.field
    def body(self) -> str | None:
        return notice_text(self.model, self.contact).body

    @strawberry.field
    def created_at(self) -> datetime | None:
        return self.model.created_at

    @strawberry.field
    def read_at(self) -> datetime | None:
        return self.model.read_at

    @strawberry.field(description="When its email was handed to the mail server, if it was.")
    def emailed_at(self) -> datetime | None:
        sent = self.model.mail_status == MailStatus.SENT
        return self.model.mail_sent_at if sent else None
