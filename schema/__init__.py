"""The one GraphQL schema of OCIS."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import strawberry
from graphql import lexicographic_sort_schema, print_schema
from graphql.error import GraphQLError
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from schema.attributes import read_attribute
from schema.audit import AuditEntryType, AuditQuery
from schema.context import Context, Info, Loaders
from schema.errors import EXCEPTION_HANDLERS
from schema.extensions import EXTENSIONS
from schema.identities import IdentitiesMutation, LinkedIdentityType, SignInType
from schema.legal import LegalMutation, LegalQuery
from schema.local_accounts import LocalAccountsMutation
from schema.marketing import MarketingMutation, MarketingQuery
from schema.node import NodeQuery
from schema.notices import NoticesMutation, NoticesQuery
from schema.payments import PaymentMethodType, PaymentsMutation
from schema.policy import PolicyMutation, PolicyQuery
from schema.privacy import ConsentEntryType, PrivacyMutation, PrivacyQuery, PrivacyRequestType
from schema.processors import ProcessorsMutation, ProcessorsQuery
from schema.queues import QueuesMutation, QueuesQuery
from schema.staff import InvitationType, StaffMutation, StaffQuery, TeamType
from schema.tickets import TicketMessageType, TicketsMutation, TicketsQuery, TicketType
from schema.usage import UsageMutation, UsageQuery
from schema.users import UsersMutation, UsersQuery, UserType

SDL_PATH = Path(__file__).with_name("schema.graphql")
_SUGGESTION = re.compile(r"\s*Did you mean .*$", re.DOTALL)
logger = logging.getLogger("ocis.graphql")


class OcisSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log codes and paths only: messages may echo input, which may be personal data.

        Also strips every "Did you mean" hint (arguments, input fields, enum values and
        types too, not only fields) so the schema cannot be mapped by trial and error.
        """
        context: Any = execution_context.context if execution_context else None
        request_id = getattr(context, "request_id", None)
        for error in errors:
            error.message = _SUGGESTION.sub("", error.message)
            code = (error.extensions or {}).get("code", "GRAPHQL_ERROR")
            path = ".".join(str(part) for part in error.path or ())
            logger.info("graphql error %s at %s (request %s)", code, path or "-", request_id)


Query = merge_types(
    "Query",
    (
        UsersQuery,
        NodeQuery,
        TicketsQuery,
        PrivacyQuery,
        AuditQuery,
        NoticesQuery,
        StaffQuery,
        PolicyQuery,
        ProcessorsQuery,
        QueuesQuery,
        MarketingQuery,
        UsageQuery,
        LegalQuery,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        UsersMutation,
        LocalAccountsMutation,
        TicketsMutation,
        QueuesMutation,
        PrivacyMutation,
        PaymentsMutation,
        IdentitiesMutation,
        NoticesMutation,
        StaffMutation,
        PolicyMutation,
        ProcessorsMutation,
        MarketingMutation,
        UsageMutation,
        LegalMutation,
    ),
)

schema = OcisSchema(
    query=Query,
    mutation=Mutation,
    types=[
        AuditEntryType,
        LinkedIdentityType,
        UserType,
        TicketType,
        TicketMessageType,
        SignInType,
        PaymentMethodType,
        PrivacyRequestType,
        ConsentEntryType,
        InvitationType,
        TeamType,
    ],
    extensions=EXTENSIONS,
    config=StrawberryConfig(disable_field_suggestions=True, default_resolver=read_attribute),
    exception_handlers=EXCEPTION_HANDLERS,
)


def sdl() -> str:
    """The SDL, sorted so diffs stay small (sorting the live schema breaks union resolution)."""
    return print_schema(lexicographic_sort_schema(schema._schema)) + "\n"


__all__ = ["SDL_PATH", "Context", "Info", "Loaders", "schema", "sdl"]
