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
from strawberry.types import ExecutionContext

from schema.context import Context, Info, Loaders
from schema.extensions import EXTENSIONS
from schema.mutations import Mutation
from schema.queries import Query
from schema.types import (
    AuditEntryType,
    ConsentEntryType,
    LinkedIdentityType,
    PaymentMethodType,
    PrivacyRequestType,
    SignInType,
    TicketMessageType,
    TicketType,
    UserType,
)

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
    ],
    extensions=EXTENSIONS,
    config=StrawberryConfig(disable_field_suggestions=True),
)


def sdl() -> str:
    """The SDL, sorted so diffs stay small (sorting the live schema breaks union resolution)."""
    return print_schema(lexicographic_sort_schema(schema._schema)) + "\n"


__all__ = ["SDL_PATH", "Context", "Info", "Loaders", "schema", "sdl"]
