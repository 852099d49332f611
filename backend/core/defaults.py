"""Default factories for table models' fields, each carrying its signature.

SQLModel builds a table row through pydantic's `FieldInfo.get_default`, which asks `inspect.signature`
of every default factory, for every row, whether it takes the validated data (pydantic 2.14 remembers
the answer for private attributes, not for fields). For `uuid.uuid4`, `dict` and `list` that question
costs about as much as the rest of building a row. `inspect.signature` returns a callable's own
``__signature__`` at once, so these factories carry one.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

Factory = TypeVar("Factory", bound=Callable[[], Any])


def takes_nothing(factory: Factory) -> Factory:
    """Give a zero-argument factory its signature, so pydantic need not inspect it per row."""
    factory.__signature__ = inspect.Signature()  # type: ignore[attr-defined]
    return factory


@takes_nothing
def new_id() -> uuid.UUID:
    return uuid.uuid4()


@takes_nothing
def empty_dict() -> dict[str, Any]:
    return {}


@takes_nothing
def empty_list() -> list[Any]:
    return []
