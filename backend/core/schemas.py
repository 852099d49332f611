"""Base classes for request and response bodies."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from backend.core.errors import BadRequest

T = TypeVar("T")


class RequestBody(BaseModel):
    """Request bodies refuse unknown fields and trim whitespace."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


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


def decode_cursor(cursor: str) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("cursor is not valid; use next_cursor from a previous page") from exc
    if not isinstance(values, list):
        raise BadRequest("cursor is not valid; use next_cursor from a previous page")
    return values
