"""Several API replicas starting on a fresh PostgreSQL database each create "the first" key-encryption
key; exactly one is stored and every replica uses it (found by the cluster test: a replica crashed)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
from sqlmodel import Session, select

from backend import migrate
from backend.crypto.envelope import KeyProvider, Vault
from backend.crypto.models import KeyEncryptionKey
from backend.db import make_engine
from tests.conftest import _postgres_database


@pytest.fixture
def fresh_postgres() -> Iterator[str]:
    """A database of its own: the session's shared one already has its first key."""
    for url in _postgres_database():
        migrate.upgrade(url)
        yield url


def test_replicas_creating_the_first_key_at_once_agree_on_one(fresh_postgres):
    engine = make_engine(fresh_postgres)
    vault = Vault(KeyProvider(os.urandom(32)))
    first_flushed, release = threading.Event(), threading.Event()
    results: dict[str, int | BaseException] = {}

    def winner() -> None:
        with Session(engine) as session:
            results["winner"] = vault.current_kek_id(session)  # inserted, not yet committed
            first_flushed.set()
            release.wait(30)
            session.commit()

    def loser() -> None:
        try:
            with Session(engine) as session:
                results["loser"] = vault.current_kek_id(session)  # blocks on the winner's row
                session.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            results["loser"] = exc

    a = threading.Thread(target=winner)
    a.start()
    assert first_flushed.wait(30)
    b = threading.Thread(target=loser)
    b.start()
    b.join(1.0)  # the loser waits on the uncommitted row (PostgreSQL's unique check) ...
    release.set()  # ... until the winner commits
    a.join(30)
    b.join(30)
    assert results == {"winner": 1, "loser": 1}
    with Session(engine) as session:
        assert len(session.exec(select(KeyEncryptionKey)).all()) == 1
    engine.dispose()
