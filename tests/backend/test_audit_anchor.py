"""Truncating the audit trail: the authenticated head and the checkpoints outside the database.

Each test plays an attacker with write access to the database only (not the blob store, not the
master key), as docs/security.md describes.
"""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import text
from sqlmodel import select

from backend.audit.anchor import PREFIX
from backend.audit.models import AuditChainHead
from backend.audit.service import AuditChainBroken, record
from backend.audit.verify import verify_chain
from backend.core.actor import AuditContext
from backend.users.models import Role
from tests.backend.conftest import audit_rows, make_settings
from tests.backend.storage.seaweedfs import seaweedfs  # noqa: F401

GENESIS = "0" * 64


def _events(app, n: int) -> None:  # type: ignore[no-untyped-def]
    with app.state.db.session() as session:
        for i in range(n):
            record(session, AuditContext(actor_role="system"), f"test.event{i}", resource_id=i)
        session.commit()


def _sql(app, statement: str, **params) -> None:  # type: ignore[no-untyped-def]
    with app.state.db.engine.begin() as conn:
        conn.execute(text(statement), params)


def _head(app) -> dict:  # type: ignore[no-untyped-def]
    with app.state.db.engine.connect() as conn:
        return dict(conn.execute(text("SELECT seq, hash, mac FROM audit_chain_head")).mappings().one())


def _hash_of(app, seq: int) -> str:  # type: ignore[no-untyped-def]
    with app.state.db.engine.connect() as conn:
        return conn.execute(text("SELECT hash FROM audit_event WHERE seq = :s"), {"s": seq}).scalar_one()


def _checkpoint(app):  # type: ignore[no-untyped-def]
    with app.state.db.session() as session:
        return app.state.services.checkpoints.checkpoint_now(session)


def _verify(app, *, anchored: bool = True):  # type: ignore[no-untyped-def]
    scan = app.state.services.checkpoints.scan() if anchored else None
    with app.state.db.session() as session:
        return verify_chain(session, app.state.db.audit_key, scan)


def _kinds(result) -> set[str]:  # type: ignore[no-untyped-def]
    return {f.kind for f in result.findings}


def test_an_intact_anchored_trail_verifies(app):
    _events(app, 5)
    written = _checkpoint(app)
    _events(app, 2)  # events after the newest checkpoint are fine
    result = _verify(app)
    assert result.ok, result.findings
    assert result.checkpoint.newest_seq == written.seq == 5
    assert result.checkpoint.events_present and result.checkpoint.checkpoints == 1


def test_cutting_the_end_off_and_moving_the_head_back_is_detected(app):
    _events(app, 6)
    _sql(app, "DELETE FROM audit_event WHERE seq >= 5")
    _sql(app, "UPDATE audit_chain_head SET seq = 4, hash = :h", h=_hash_of(app, 4))
    result = _verify(app, anchored=False)  # the database alone tells: the head's MAC does not match
    assert not result.ok and "head_forged" in _kinds(result)


def test_a_deleted_head_row_is_detected_and_nothing_is_appended(app):
    _events(app, 3)
    _sql(app, "DELETE FROM audit_chain_head")
    result = _verify(app, anchored=False)
    assert not result.ok and "head_deleted" in _kinds(result)
    with app.state.db.session() as session, pytest.raises(AuditChainBroken):
        record(session, AuditContext(actor_role="system"), "test.after")
        session.commit()


def test_a_forged_head_is_never_extended(app):
    """Appending to a forged head would re-authenticate it; the append is refused instead."""
    _events(app, 4)
    _sql(app, "DELETE FROM audit_event WHERE seq = 4")
    _sql(app, "UPDATE audit_chain_head SET seq = 3, hash = :h", h=_hash_of(app, 3))
    with app.state.db.session() as session, pytest.raises(AuditChainBroken):
        record(session, AuditContext(actor_role="system"), "test.after")
        session.commit()
    assert audit_rows(app, action="test.after") == []
    assert _checkpoint(app) is None  # nor is a forged head ever anchored


def test_replaying_an_older_authentic_head_is_caught_by_the_checkpoint(app):
    _events(app, 4)
    old_head = _head(app)  # the attacker saw the head row when the trail had 4 events
    _events(app, 3)
    _checkpoint(app)  # the server anchors event 7 in the blob store
    _sql(app, "DELETE FROM audit_event WHERE seq > 4")
    _sql(app, "UPDATE audit_chain_head SET seq = :seq, hash = :hash, mac = :mac", **old_head)
    assert _verify(app, anchored=False).ok  # the database alone cannot tell...
    result = _verify(app)  # ...the checkpoint can
    assert not result.ok and [f.seq for f in result.findings if f.kind == "truncated"] == [7]
    assert result.checkpoint.newest_seq == 7 and not result.checkpoint.events_present


def test_everything_deleted_and_the_head_reset_to_genesis_is_detected(app):
    _events(app, 5)
    _checkpoint(app)
    _sql(app, "DELETE FROM audit_event")
    _sql(app, "UPDATE audit_chain_head SET seq = 0, hash = :h, mac = NULL", h=GENESIS)
    _events(app, 2)  # the trail even carries on, from a genesis head that looks new
    result = _verify(app)
    assert not result.ok and "truncated" in _kinds(result)
    assert not result.checkpoint.events_present


def test_a_forged_checkpoint_is_reported(app):
    _events(app, 2)
    body = {"seq": 2, "hash": _hash_of(app, 2), "written_at": "2026-01-01T00:00:00+00:00", "mac": "0" * 64}
    store = app.state.services.checkpoints.blobs
    store.put(f"{PREFIX}/000000000000002-forged.json", json.dumps(body).encode())
    result = _verify(app)
    assert "checkpoint_forged" in _kinds(result) and result.checkpoint.forged == 1


def test_a_pre_0004_head_is_authenticated_once_at_start_up(app, client):  # type: ignore[no-untyped-def]
    """A head written before heads had a MAC is sealed at the first start (no checkpoint exists yet);
    once checkpoints exist, a head stripped of its MAC stays a finding."""
    _events(app, 3)
    _sql(app, "UPDATE audit_chain_head SET mac = NULL")
    store = app.state.services.checkpoints.blobs
    for key in list(store.iter_keys(PREFIX)):
        store.delete(key)
    app.state.services.anchor.start_up()
    assert _head(app)["mac"] is not None and _verify(app).ok
    _sql(app, "UPDATE audit_chain_head SET mac = NULL")
    app.state.services.anchor.start_up()  # a checkpoint exists now: no re-sealing
    assert _head(app)["mac"] is None and "head_forged" in _kinds(_verify(app))


def test_the_server_writes_checkpoints_while_running_and_at_shutdown(
    database_url, tmp_path, model_repository
):
    from fastapi.testclient import TestClient

    from backend.main import create_app
    from tests.backend.conftest import wipe

    settings = make_settings(
        database_url,
        tmp_path,
        model_repository=model_repository,
        audit_checkpoint_events=3,
        audit_checkpoint_minutes=0.02,  # polls every ~1 s
    )
    app = create_app(settings)
    wipe(app)
    try:
        with TestClient(app):
            _events(app, 4)
            deadline = time.monotonic() + 60
            while app.state.services.checkpoints.newest_seq() < 4 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert app.state.services.checkpoints.newest_seq() == 4
            _events(app, 1)
        assert app.state.services.checkpoints.newest_seq() == 5  # the shutdown checkpoint
    finally:
        wipe(app)
        app.state.db.dispose()


def test_api_verify_reports_the_newest_checkpoint_and_truncation(app, client, make_user):
    admin = make_user(Role.admin)
    written = _checkpoint(app)
    body = client.get("/api/v1/audit/verify", headers=admin.headers).json()
    assert body["ok"] is True
    assert body["checkpoint"]["newest_seq"] == written.seq and body["checkpoint"]["events_present"] is True
    _sql(app, "DELETE FROM audit_event")
    _sql(app, "UPDATE audit_chain_head SET seq = 0, hash = :h, mac = NULL", h=GENESIS)
    body = client.get("/api/v1/audit/verify", headers=admin.headers).json()
    assert body["ok"] is False and "truncated" in {f["kind"] for f in body["findings"]}
    assert body["checkpoint"]["events_present"] is False


def test_cli_verify_and_checkpoint(app, settings, monkeypatch):  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from backend.cli import _register_all
    from backend.cli import app as cli
    from backend.config import get_settings

    _events(app, 3)
    monkeypatch.setattr("backend.commands._context", lambda: (settings, app.state.keyring, app.state.db))
    get_settings.cache_clear()
    _register_all()
    runner = CliRunner()
    written = runner.invoke(cli, ["audit", "checkpoint"])
    assert written.exit_code == 0 and "checkpoint of event 3" in written.output
    ok = runner.invoke(cli, ["audit", "verify"])
    assert ok.exit_code == 0 and "newest checkpoint: event 3" in ok.output and "all present" in ok.output
    _sql(app, "DELETE FROM audit_event WHERE seq = 3")
    with app.state.db.session() as session:
        head = session.exec(select(AuditChainHead)).one()
        assert head.seq == 3
    broken = runner.invoke(cli, ["audit", "verify"])
    assert broken.exit_code == 1 and "NOT all present" in broken.output


def test_object_locked_checkpoints_survive_an_intruder_in_the_bucket(app, seaweedfs):  # noqa: F811
    """With Object Lock (SeaweedFS supports it), someone who can write the bucket cannot make a
    checkpoint go away: deleting the key only adds a delete marker, deleting the version is refused, and
    an overwrite is a new version next to the locked one."""
    import uuid as uuid_module

    from botocore.exceptions import ClientError

    from backend.audit.anchor import CheckpointStore
    from backend.storage import make_blob_store

    bucket = f"lock-{uuid_module.uuid4().hex[:12]}"
    raw = seaweedfs.client()
    raw.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    store = CheckpointStore(
        make_blob_store(seaweedfs.url(bucket), app.state.settings.data_dir),
        app.state.db.audit_key,
        lock_days=1,
    )
    _events(app, 5)
    with app.state.db.session() as session:
        written = store.checkpoint_now(session)
    version = raw.head_object(Bucket=bucket, Key=written.key)["VersionId"]
    assert raw.get_object_retention(Bucket=bucket, Key=written.key)["Retention"]["Mode"] == "COMPLIANCE"
    with pytest.raises(ClientError):
        raw.delete_object(Bucket=bucket, Key=written.key, VersionId=version)
    raw.delete_object(Bucket=bucket, Key=written.key)  # a delete marker hides it from plain listings
    raw.put_object(Bucket=bucket, Key=written.key, Body=b'{"seq": 1}')  # and an overwrite
    _sql(app, "DELETE FROM audit_event WHERE seq > 2")
    with app.state.db.session() as session:
        result = verify_chain(session, app.state.db.audit_key, store.scan())
    assert "truncated" in _kinds(result) and result.checkpoint.newest_seq == 5
