"""node(id:): any object by its global id, through the caller's row scope."""

from __future__ import annotations

import strawberry

from auth.relations import relation_to_row
from models import (
    ExternalIdentity,
    PaymentMethod,
    PrivacyRequest,
    SignInSession,
    Ticket,
    TicketMessage,
    User,
)
from resolvers import nodes
from schema.context import Info
from schema.errors import coded_errors, not_found
from schema.identities import LinkedIdentityType, SignInType
from schema.payments import PaymentMethodType
from schema.privacy import PrivacyRequestType
from schema.relay import Node, from_global_id
from schema.tickets import message_node, ticket_nodes
from schema.users import user_node


@strawberry.type
class NodeQuery:
    @strawberry.field(description="Any object by its global id, if you may reach it.")
    @coded_errors
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        type_name, ident = from_global_id(id)
        principal = info.context.principal
        found = await nodes.get_node(principal, type_name, ident)
        if isinstance(found, User):
            return await user_node(info, found.id)
        if isinstance(found, Ticket):
            (ticket,) = await ticket_nodes(info, [found])
            return ticket
        if found is None:
            raise not_found()
        if isinstance(found, TicketMessage):
            return await message_node(info, found)
        relation = relation_to_row(principal, found)
        if isinstance(found, PrivacyRequest):
            return PrivacyRequestType(model=found, relation=relation)
        if isinstance(found, SignInSession):
            current = principal.session_id
            return SignInType(model=found, relation=relation, current_session=current)
        if isinstance(found, ExternalIdentity):
            return LinkedIdentityType(model=found, relation=relation)
        if isinstance(found, PaymentMethod):
            return PaymentMethodType(model=found, relation=relation)
        raise not_found()
