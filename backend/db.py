"""Database engine and sessions. SQLite is the embedded default; PostgreSQL via DERMALINK_DATABASE_URL.

SQLite has one writer at a time. A transaction starts as a plain (deferred) ``BEGIN``, so reading never
waits for a writer (WAL readers see a snapshot). The write lock is taken when the transaction first shows
the intent to write, before that statement runs:

* a flush with changes (an ORM insert, update or delete, also the one autoflush does before a query);
* an ORM ``UPDATE``/``DELETE``/``INSERT`` statement;
* a ``SELECT ... FOR UPDATE`` (SQLite has no row locks, so "lock this row for my write" means "take the
  write lock now"), whose rows are then re-read (``populate_existing``) in the new snapshot.

Taking the lock ends the read-only snapshot and starts ``BEGIN IMMEDIATE``, waiting up to the busy
timeout for the current writer. Writers first queue on a lock of their own (`WriterLock`, held until
the connection goes back to the pool or begins its next transaction): SQLite's busy handler polls
with sleeps of up to 100 ms, so under concurrent submissions the write lock sat free while waiters
slept. Within a process a thread lock hands it over at once; between the processes of
``dermalink serve --workers N`` an advisory file lock beside the database does (polled every
millisecond or so, by one thread per process).
A deferred transaction that tried to upgrade itself in place would fail at once with ``database is
locked`` (``SQLITE_BUSY_SNAPSHOT``) whenever another writer committed since its first read; restarting
as ``BEGIN IMMEDIATE`` waits instead. The cost is PostgreSQL's READ COMMITTED
semantics for what was read before the write lock (rows locked with ``FOR UPDATE`` are read after it),
which is what the code already relies on with PostgreSQL.
"""

from __future__ import annotations

import fcntl
import functools
import os
import sqlite3
import threading
import time
from pathlib import Path

from sqlalchemy import event, insert
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import ORMExecuteState
from sqlmodel import Session, create_engine

_WRITING = "dermalink_sqlite_writing"  # on the pooled connection's info: this transaction holds the lock
_WRITER = "dermalink_sqlite_writer"  # on the pooled connection's info: the process's writer lock
_HOLDS = "dermalink_sqlite_holds_writer"  # on the pooled connection's info: this connection holds it
BUSY_TIMEOUT_SECONDS = 30
SYNCHRONOUS = ("FULL", "NORMAL")


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, *, sqlite_synchronous: str = "NORMAL") -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_SECONDS}
        )
        _sqlite_pragmas(engine, sqlite_synchronous)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


class WriterLock:
    """One SQLite writer at a time: a thread lock for this process's threads and, for a database file,
    an advisory lock (``flock``) on ``<database>.writer-lock`` for the other server processes. The
    kernel drops the file lock of a process that dies, so a crash never leaves it held."""

    def __init__(self, database: str | None) -> None:
        self._threads = threading.Lock()
        self._path = f"{database}.writer-lock" if database and database != ":memory:" else None
        self._fd: int | None = None

    def acquire(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        if not self._threads.acquire(timeout=timeout):
            return False
        if self._path is None:
            return True
        try:
            if self._fd is None:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            pause = 0.0001
            while True:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        self._threads.release()
                        return False
                    time.sleep(pause)
                    pause = min(pause * 2, 0.001)
        except BaseException:
            self._threads.release()
            raise

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()


def _sqlite_pragmas(engine: Engine, synchronous: str) -> None:
    """WAL, foreign keys, a busy timeout so writers queue instead of failing, and deferred BEGIN."""
    if synchronous not in SYNCHRONOUS:
        raise ValueError(f"sqlite synchronous must be one of {SYNCHRONOUS}, not {synchronous!r}")

    writer = WriterLock(engine.url.database)  # one writer at a time, handed over without SQLite's polling

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # let SQLAlchemy's begin event issue BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_SECONDS * 1000}")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.close()
        record.info[_WRITER] = writer

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:  # type: ignore[no-untyped-def]
        _release_writer(connection.info)  # a connection kept open after its writing transaction
        connection.exec_driver_sql("BEGIN")
        connection.info[_WRITING] = False

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_connection, record) -> None:  # type: ignore[no-untyped-def]
        if record is not None:  # None: a connection detached from the pool
            _release_writer(record.info)

    @event.listens_for(engine, "savepoint")
    def _savepoint(connection, _name) -> None:  # type: ignore[no-untyped-def]
        # A savepoint is opened to write inside it: take the write lock before it exists, since upgrading
        # the transaction later (COMMIT, BEGIN IMMEDIATE) would end the savepoint with it.
        _upgrade_to_writing(connection)


def _upgrade_to_writing(connection) -> None:  # type: ignore[no-untyped-def]
    """Turn this SQLite connection's read transaction into a writing one (``BEGIN IMMEDIATE``)."""
    if connection.info.get(_WRITING):
        return
    writer = connection.info.get(_WRITER)
    if writer is not None and not connection.info.get(_HOLDS):
        # Bounded, so that a connection left holding it can only slow writers down to SQLite's own wait.
        connection.info[_HOLDS] = writer.acquire(timeout=BUSY_TIMEOUT_SECONDS)
    raw = connection.connection.dbapi_connection
    try:
        raw.execute("COMMIT")  # ends a snapshot that has only read
        raw.execute("BEGIN IMMEDIATE")
    except BaseException:
        _release_writer(connection.info)
        raise
    connection.info[_WRITING] = True


def _release_writer(info: dict) -> None:  # type: ignore[type-arg]
    if info.pop(_HOLDS, False):
        info[_WRITER].release()


def take_write_lock(session: Session) -> None:
    """On SQLite, make the session's transaction a writing one (``BEGIN IMMEDIATE``) unless it is already.

    Called by the hooks below before the first write; a no-op on PostgreSQL, whose row locks and MVCC
    need nothing of the kind."""
    bind = session.get_bind()
    if bind.dialect.name != "sqlite":
        return
    _upgrade_to_writing(session.connection())


@event.listens_for(Session, "do_orm_execute")
def _lock_before_writing_statements(state: ORMExecuteState) -> None:
    locking = state.is_select and getattr(state.statement, "_for_update_arg", None) is not None
    if locking or state.is_update or state.is_delete or state.is_insert:
        take_write_lock(state.session)
        if locking:
            state.update_execution_options(populate_existing=True)


@event.listens_for(Session, "before_flush")
def _lock_before_flushing(session: Session, _context: object, _instances: object) -> None:
    if session.new or session.dirty or session.deleted:
        take_write_lock(session)


# One INSERT statement per table, built once: its construction and cache key cost more than the insert.
_insert = functools.cache(insert)


def insert_rows(session: Session, rows: list) -> None:  # type: ignore[type-arg]
    """Insert complete model instances of one table, not in the session, with one multi-row INSERT
    (SQLAlchemy Core): for hot paths where the ORM's unit of work costs more Python than the insert.
    The instances stay transient. Runs on the session's connection, below the ORM's statement layer
    (nothing there is needed for a plain INSERT), having taken SQLite's write lock as the hooks would."""
    table = type(rows[0]).__table__
    take_write_lock(session)
    session.connection().execute(
        _insert(table), [{c.key: getattr(row, c.key) for c in table.columns} for row in rows]
    )


def insert_in_order(session: Session, rows: list, order: tuple[type, ...]) -> None:  # type: ignore[type-arg]
    """`insert_rows` for instances of several tables: one multi-row INSERT per type, in ``order`` (parents
    before children); rows of a type not in ``order`` are not inserted."""
    for kind in order:
        of_kind = [row for row in rows if type(row) is kind]
        if of_kind:
            insert_rows(session, of_kind)


def is_lock_timeout(exc: BaseException) -> bool:
    """Whether a database error means "the lock was not granted in time" (the server is busy, the request
    was fine): SQLite's ``database is locked`` after the busy timeout, PostgreSQL's ``lock_not_available``."""
    orig = exc.orig if isinstance(exc, OperationalError) else exc  # the write-lock upgrade runs raw SQL
    if isinstance(orig, sqlite3.OperationalError):
        return "locked" in str(orig)  # "database is locked", "database table is locked"
    return getattr(orig, "sqlstate", None) == "55P03"


def end_read_transaction(session: Session) -> None:
    """End a transaction that has only read, so that slow work (decoding images, inference) holds no
    snapshot or connection state; the next statement begins a fresh transaction.

    Refuses (RuntimeError) when the session holds changes or queued audit events: ending the
    transaction would commit them, and committing belongs to the request's unit of work."""
    from backend.audit.service import has_pending

    if session.new or session.dirty or session.deleted or has_pending(session):
        raise RuntimeError("end_read_transaction on a session with unsaved changes")
    if session.in_transaction():
        session.commit()  # nothing to write: this only ends the transaction


class Database:
    """The engine plus what every session needs to know (the audit chain's HMAC key)."""

    def __init__(self, url: str, *, audit_key: bytes, sqlite_synchronous: str = "NORMAL") -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(url, sqlite_synchronous=sqlite_synchronous)
        self.audit_key = audit_key

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def session(self) -> Session:
        from backend.audit.service import AUDIT_KEY

        return Session(self.engine, expire_on_commit=False, info={AUDIT_KEY: self.audit_key})

    def dispose(self) -> None:
        self.engine.dispose()
