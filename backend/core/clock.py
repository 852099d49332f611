"""Time in one place: timezone-aware UTC datetimes (SQLModel stores them as UTC)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
