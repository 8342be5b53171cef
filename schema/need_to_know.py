"""Need-to-know wired into the schema: every field of a personal-data type asks the policy."""

from __future__ import annotations

from collections.abc import Callable
from inspect import isawaitable
from typing import Any, Protocol, TypeVar
from uuid import UUID

from strawberry.extensions import FieldExtension
from strawberry.types.base import get_object_definition

from auth.policy import FIELD_POLICY, PERSONAL_FIELDS, Relation, Rule
from schema.errors import forbidden


class Guarded(Protocol):
    """A row of a personal-data type: whom it is about, and the caller's relation to them.

    A row about more than one person (a message: its author and its ticket's requester) names
    the others in an ``also_about`` tuple; reads are recorded against each of them.
    """

    relation: Relation

    @property
    def subject_id(self) -> UUID | None: ...


class NeedToKnow(FieldExtension):
    """Resolve the field only if its rule allows this caller; otherwise null + FORBIDDEN.

    An allowed read of another person's personal-data field is noted in the request
    context; the audit extension writes those notes once, at the end of the request.
    """

    def __init__(self, type_name: str, field_name: str, rule: Rule) -> None:
        self.type_name = type_name
        self.field_name = field_name
        self.rule = rule
        self.personal = field_name in PERSONAL_FIELDS.get(type_name, frozenset())
        self.noted = f"{type_name}.{field_name}"  # as the read audit names it

    def _check(self, source: Guarded, info: Any) -> None:
        context = info.context
        if not self.rule(context.principal, source.relation):
            raise forbidden()
        if self.personal:
            reader = context.principal.user_id
            about = () if source.relation.is_self else (source.subject_id,)
            for subject in (*about, *getattr(source, "also_about", ())):
                if subject is not None and subject != reader:
                    context.note_read(subject, self.noted)

    def resolve(self, next_: Callable[..., Any], source: Any, info: Any, **kwargs: Any) -> Any:
        self._check(source, info)
        return next_(source, info, **kwargs)

    async def resolve_async(
        self, next_: Callable[..., Any], source: Any, info: Any, **kwargs: Any
    ) -> Any:
        self._check(source, info)
        result = next_(source, info, **kwargs)
        return await result if isawaitable(result) else result


PERSONAL_DATA_TYPES: list[type] = []

T = TypeVar("T", bound=type)


class MissingPolicyError(TypeError):
    pass


def personal_data(cls: T) -> T:
    """Attach each field's rule from ``auth.policy.FIELD_POLICY``; a field without one fails."""
    definition = get_object_definition(cls, strict=True)
    rules = FIELD_POLICY.get(definition.name)
    if rules is None:
        raise MissingPolicyError(f"{definition.name} has no entry in the need-to-know table")
    for field in definition.fields:
        name = field.graphql_name or field.python_name
        camel = name if field.graphql_name else _camel(field.python_name)
        rule = rules.get(camel)
        if rule is None:
            raise MissingPolicyError(f"{definition.name}.{camel} has no need-to-know rule")
        field.extensions.append(NeedToKnow(definition.name, camel, rule))
        note = f"Need-to-know: {rule.__name__} ({(rule.__doc__ or '').strip()})"
        field.description = f"{field.description} {note}" if field.description else note
    PERSONAL_DATA_TYPES.append(cls)
    return cls


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
