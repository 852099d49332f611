"""Time in one place: timezone-aware UTC datetimes (SQLModel stores them as UTC)."""

from __future__ import annotations

from datetime import UTC, datetime

from backend.core.defaults import takes_nothing


@takes_nothing  # also a default factory of table models
def utcnow() -> datetime:
    return datetime.now(UTC)
