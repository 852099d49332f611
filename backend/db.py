"""Database engine and sessions. SQLite is the embedded default; PostgreSQL via DERMALINK_DATABASE_URL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _sqlite_pragmas(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _sqlite_pragmas(engine: Engine) -> None:
    """WAL, foreign keys, and BEGIN IMMEDIATE so concurrent writers queue instead of failing."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # let SQLAlchemy's begin event issue BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:  # type: ignore[no-untyped-def]
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """The engine plus what every session needs to know (the audit chain's HMAC key)."""

    def __init__(self, url: str, *, audit_key: bytes) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(url)
        self.audit_key = audit_key

    def session(self) -> Session:
        from backend.audit.service import AUDIT_KEY

        return Session(self.engine, expire_on_commit=False, info={AUDIT_KEY: self.audit_key})

    def dispose(self) -> None:
        self.engine.dispose()
