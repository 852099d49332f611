"""Base classes for request and response bodies."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, field_validator

from backend.core.errors import BadRequest

T = TypeVar("T")


class RequestBody(BaseModel):
    """Request bodies refuse unknown fields and NUL characters, and trim whitespace."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        """PostgreSQL text cannot hold NUL, and no field of ours has a use for it: refuse it here (422)
        rather than fail in the database (500)."""
        values = value if isinstance(value, list | tuple | set) else [value]
        if any(isinstance(v, str) and "\x00" in v for v in values):
            raise ValueError("must not contain NUL characters")
        return value


class ResponseBody(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    """A page of a list; pass ``next_cursor`` back as ``cursor`` for the next page (null: no more)."""

    items: list[T]
    next_cursor: str | None = None


def page_of(
    rows: list[Any], limit: int, *, item: Callable[[Any], T], cursor: Callable[[Any], list[Any]]
) -> Page[T]:
    """A page from ``limit + 1`` fetched rows: the extra row only says whether there is a next page."""
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(items=[item(r) for r in rows], next_cursor=encode_cursor(cursor(rows[-1])) if more else None)


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, default=str).encode()).decode().rstrip("=")


_BAD_CURSOR = "cursor is not valid; use next_cursor from a previous page"
_MAX_CURSOR_INT = 2**62  # beyond any sequence number or rank; keeps the value inside a database integer


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a cursor value")


def cursor_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > _MAX_CURSOR_INT:
        raise TypeError("not an integer")
    return value


def cursor_text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    if "\x00" in value:
        raise ValueError("NUL in a cursor")
    return value


def cursor_moment(value: Any) -> datetime:
    return datetime.fromisoformat(cursor_text(value))


def cursor_uuid(value: Any) -> uuid.UUID:
    return uuid.UUID(cursor_text(value))


def decode_cursor(cursor: str, *fields: Callable[[Any], Any]) -> list[Any]:
    """The values of a cursor made by `page_of`, each checked and converted by its field parser
    (`cursor_int`, `cursor_text`, `cursor_moment`, `cursor_uuid`).

    A cursor comes back from the client, so it is input like any other: anything but the list this page
    made (another length, another type, ``Infinity``/``NaN``, a non-date, a non-UUID) is a 400, never an
    exception deeper in the query.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()), parse_constant=_refuse_constant)
        if not isinstance(values, list) or len(values) != len(fields):
            raise ValueError("wrong shape")
        return [parse(value) for parse, value in zip(fields, values, strict=True)]
    except (ValueError, TypeError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest(_BAD_CURSOR) from exc
