"""Group commit: the new rows of several concurrent requests inserted and committed in one transaction.

SQLite has one writer at a time, and under load the write transaction of a submission is what everything
else queues for: its few milliseconds of Python grow several-fold while fifteen other threads want the
interpreter lock, and requests pass the lock one by one. A `GroupCommitter` owns one writer thread; a
request hands it complete rows and audit events and waits; the thread takes every write that is waiting,
inserts all of their rows with one multi-row INSERT per table, appends all of their audit events to the
chain and commits once. Each caller returns only once its rows are durable, exactly as if it had
committed them itself, so a ``201`` keeps meaning what it meant.

One request's conflict (a parallel retry under the same idempotency key) must not fail the others: if
the group's transaction raises `IntegrityError`, it is rolled back and its writes are committed one by
one, so that only the conflicting one gets the error. Any other failure (the database is gone, the write
lock was not granted in time) is every waiting writer's error, as it would have been for each alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from backend.audit.models import AuditEvent
from backend.audit.service import queue_events
from backend.db import insert_in_order


@dataclass
class _Write:
    rows: list  # type: ignore[type-arg]
    events: list[AuditEvent]
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class GroupCommitter:
    """Commits the writes handed to `write` in groups, in a thread of its own (started on first use).

    ``order``: the row types it may insert, parents before children (one INSERT per type, in this order).
    ``observe(writes, seconds)``: called after each commit with the group's size and the time it took.
    The thread ends after ``idle_seconds`` without a write (the next write starts another), so that a
    committer nobody uses any more, and what it refers to, can be collected."""

    def __init__(
        self,
        sessions: Callable[[], Session],
        order: Sequence[type],
        *,
        max_group: int = 32,
        observe: Callable[[int, float], None] | None = None,
        idle_seconds: float = 10.0,
    ) -> None:
        self.sessions = sessions
        self.order = tuple(order)
        self.max_group = max_group
        self.observe = observe
        self.idle_seconds = idle_seconds
        self._queue: list[_Write] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def accepts(self, rows: list) -> bool:  # type: ignore[type-arg]
        """Whether every row is of a type this committer inserts."""
        return all(type(row) in self.order for row in rows)

    def write(self, rows: list, events: list[AuditEvent]) -> None:  # type: ignore[type-arg]
        """Insert ``rows`` (complete, transient model instances) and append ``events`` to the audit chain
        in a committed transaction, possibly shared with other callers'; return once it is durable, or
        raise what made it fail (`IntegrityError` when these rows conflict with stored ones)."""
        if not self.accepts(rows):
            raise ValueError("GroupCommitter.write: a row of a type it does not insert")
        write = _Write(rows, events)
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="dermalink-group-commit", daemon=True)
                self._thread.start()
            self._queue.append(write)
            self._cond.notify()
        write.done.wait()
        if write.error is not None:
            raise write.error

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._cond.wait_for(lambda: bool(self._queue), self.idle_seconds):
                    self._thread = None  # under the lock: a write from now on starts another thread
                    return
                group, self._queue = self._queue[: self.max_group], self._queue[self.max_group :]
            self._commit_group(group)

    def _commit_group(self, group: list[_Write]) -> None:
        start = time.perf_counter()
        try:
            self._commit(group)
        except IntegrityError as exc:
            if len(group) == 1:
                group[0].error = exc
            else:  # somebody's conflict: each alone, so that only the conflicting ones fail
                for write in group:
                    try:
                        self._commit([write])
                    except BaseException as single:  # noqa: BLE001 - this caller's own outcome
                        write.error = single
        except BaseException as exc:  # noqa: BLE001 - handed to every waiting caller, who raises it
            for write in group:
                write.error = exc
        finally:
            for write in group:
                write.done.set()
        if self.observe:
            self.observe(len(group), time.perf_counter() - start)

    def _commit(self, group: list[_Write]) -> None:
        with self.sessions() as session:
            try:
                insert_in_order(session, [row for write in group for row in write.rows], self.order)
                queue_events(session, [event for write in group for event in write.events])
                session.commit()  # the audit chain is appended by the commit hook, under the write lock
            except BaseException:
                session.rollback()
                raise
