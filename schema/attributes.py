"""Plain fields of the model-backed types: the default resolver reads them off the wrapped row."""

from typing import Any

import strawberry


def attribute(description: str | None = None) -> Any:
    """A field whose value is the wrapped model's attribute of the same name."""
    field = strawberry.field(description=description)
    # Not a constructor argument: the value lives on the row, not on the wrapper.
    field.init = field.repr = field.compare = False
    return field


def read_attribute(source: object, name: str) -> object:
    """The default resolver: a wrapper's row when it has one, else the object itself."""
    model = getattr(source, "model", None)
    return getattr(source if model is None else model, name)
