"""A frozen, movable clock for tests where a time boundary matters (login throttle, TOTP steps).

The backend takes the time from ``backend.core.clock.utcnow``; modules import that function by name, so a
test replaces the name in each module whose decisions it wants to control.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest


class FrozenClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def freeze(monkeypatch: pytest.MonkeyPatch, *modules: str, at: datetime | None = None) -> FrozenClock:
    """Freeze ``utcnow`` in ``modules`` (dotted names) at ``at`` (default: a fixed mid-step instant)."""
    import importlib

    clock = FrozenClock(at or datetime(2026, 3, 2, 10, 0, 15, tzinfo=UTC))  # 15 s into a 30 s TOTP step
    for name in modules:
        monkeypatch.setattr(importlib.import_module(name), "utcnow", clock)
    return clock
