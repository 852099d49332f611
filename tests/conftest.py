"""Shared fixtures. The backend suite runs every database test on SQLite *and* PostgreSQL.

PostgreSQL is expected at 127.0.0.1:5432 with trust auth (override with DERMALINK_TEST_POSTGRES_URL);
each test run creates its own database and drops it at the end.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("DERMALINK_SHARED", REPO.parent / "shared")).resolve()
POSTGRES_ADMIN_URL = os.environ.get(
    "DERMALINK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
DATABASES = [d for d in os.environ.get("DERMALINK_TEST_DATABASES", "sqlite,postgresql").split(",") if d]
# One master key for the whole run: the audit chain spans every test that shares a database.
MASTER_KEY = base64.b64encode(os.urandom(32)).decode()


ON_CI = bool(os.environ.get("CI"))  # GitHub Actions and most CI services set CI=true


def standin_allowed(what: str) -> None:
    """Tests may fall back to the stand-in model on a developer's machine without the shipped one, but CI
    must test the model that ships: there, the fallback is a failure, not a silent substitution."""
    if ON_CI:
        pytest.fail(f"{what} is missing: CI must test the shipped model, not the stand-in", pytrace=False)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "data" / "ham10000").is_dir():
        pytest.fail(f"shared data not found at {SHARED} (set DERMALINK_SHARED)")
    return SHARED


def _postgres_database() -> Iterator[str]:
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"dermalink_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrated_database(kind: str, sqlite_file: Path) -> Iterator[str]:
    """A freshly migrated database: a SQLite file at ``sqlite_file``, or a scratch PostgreSQL database
    (dropped afterwards). For fixtures parametrised over `DATABASES`."""
    from backend import migrate

    if kind == "sqlite":
        url = f"sqlite:///{sqlite_file}"
        migrate.upgrade(url)
        yield url
    else:
        for url in _postgres_database():
            migrate.upgrade(url)
            yield url


@pytest.fixture(scope="session", params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from migrated_database(request.param, tmp_path_factory.mktemp("sqlite") / "test.db")


@pytest.fixture
def settings_cache() -> Iterator[None]:
    """For tests that set ``DERMALINK_*`` variables and run the CLI: `get_settings` is cached, so clear
    it before the test and, as a fixture teardown, after it even when the test fails."""
    from backend.config import get_settings

    get_settings.cache_clear()
    try:
        yield
    finally:
        get_settings.cache_clear()


# Markers by what a test really does, so that `-m "not slow"` is a quick loop and `-m servers` /
# `-m triton` select what needs those parts. A test that uses one of these fixtures starts a server.
SERVER_FIXTURES = {"seaweedfs", "own_seaweedfs", "triton_server", "own_server", "triton"}
STARTS_PROCESSES = ("test_redis_worker.py", "test_triton_serve.py")  # worker / `dermalink triton serve`
SLOW_SERVERS = {"own_seaweedfs", "triton_server", "own_server", "triton"}  # a start per test or module


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        on_s3 = (
            params.get("blob_store") == "s3" or params.get("blob_store_url") == "s3"
        )  # the session's SeaweedFS
        starts = bool(fixtures & SERVER_FIXTURES) or on_s3 or item.path.name in STARTS_PROCESSES
        if starts:
            item.add_marker(pytest.mark.servers)
        if fixtures & SLOW_SERVERS or item.path.name in STARTS_PROCESSES or "bench" in item.path.parts:
            item.add_marker(pytest.mark.slow)
