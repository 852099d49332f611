"""Event-driven waiting for tests: poll a condition with a generous ceiling instead of sleeping.

A fixed ``sleep`` has to guess how long a loaded 2-core CI machine needs; ``wait_until`` returns as soon as
the condition holds and fails with a message (and the last value seen) only after a ceiling that is far
above anything a healthy run needs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

CEILING_S = 60.0


def wait_until(
    predicate: Callable[[], T], *, timeout: float = CEILING_S, interval: float = 0.05, message: str = ""
) -> T:
    """Call ``predicate`` until it returns something truthy; return that. Fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T = predicate()
    while not last:
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message or predicate!r}")
        time.sleep(interval)
        last = predicate()
    return last
