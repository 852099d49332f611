"""An erasure must hold after the database (and the blobs) are restored from a backup taken before it.

The backup is a copy of every row (the same on SQLite and PostgreSQL) and of the blob folder; the
erasure ledger lives in the anchor store, which restores leave alone (docs/security.md).
"""

from __future__ import annotations

import shutil
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from backend.crypto.envelope import KeyDestroyed
from backend.main import create_app
from backend.models import metadata
from backend.users.models import Role
from tests.backend.cases.conftest import submit
from tests.backend.conftest import audit_rows


def _dump(engine) -> dict[str, list[dict]]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return {
            t.name: [dict(r) for r in conn.execute(t.select()).mappings()] for t in metadata.sorted_tables
        }


def _restore(engine, dump: dict[str, list[dict]]) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
        for table in metadata.sorted_tables:
            if dump[table.name]:
                conn.execute(table.insert(), dump[table.name])


def test_erasure_survives_a_restore_of_the_database_and_blobs(
    app, client, consenting, lesion_jpeg, make_user, settings, tmp_path
):
    clinician = consenting["clinic"].clinician
    pid = uuid.UUID(consenting["id"])
    created = submit(client, consenting, [lesion_jpeg])
    assert created.status_code == 201, created.text
    case = created.json()
    image = case["images"][0]
    image_url = f"/api/v1/cases/{case['id']}/images/{image['id']}"
    plain = client.get(image_url, headers=clinician.headers)
    assert plain.status_code == 200

    # The backup: every row, and the blob folder.
    backup_rows = _dump(app.state.db.engine)
    blobs_dir = settings.data_dir / "blobs"
    shutil.copytree(blobs_dir, tmp_path / "backup-blobs")
    with app.state.db.engine.connect() as conn:
        blob_key = conn.execute(text("SELECT blob_key FROM case_image")).scalar_one()
    backed_up_ciphertext = app.state.blobs.get(blob_key)

    admin = make_user(Role.admin)
    erased = client.post(
        f"/api/v1/patients/{pid}/erase",
        headers=admin.headers,
        json={"reason": "Patient asked for erasure in writing (ticket 7)", "basis": "patient_request"},
    )
    assert erased.status_code == 200, erased.text

    # Disaster recovery: the database and the blobs go back to the backup.
    _restore(app.state.db.engine, backup_rows)
    shutil.rmtree(blobs_dir)
    shutil.copytree(tmp_path / "backup-blobs", blobs_dir)

    restored = create_app(settings)
    try:
        with restored.state.db.session() as session:  # the restored copy alone would decrypt again...
            assert restored.state.vault.decrypt(session, pid, f"blob:{blob_key}", backed_up_ciphertext)
        with TestClient(restored) as again:  # ...until the platform starts on it
            with restored.state.db.session() as session, pytest.raises(KeyDestroyed):
                restored.state.vault.decrypt(session, pid, f"blob:{blob_key}", backed_up_ciphertext)
            response = again.get(image_url, headers=clinician.headers)
            assert response.status_code in (404, 410), response.text
            assert "patients/" not in response.text
            assert again.get(f"/api/v1/patients/{pid}", headers=clinician.headers).status_code == 404
            assert not restored.state.blobs.exists(blob_key)
        assert audit_rows(restored, action="patient.erase_reapplied", patient_id=str(pid))
    finally:
        restored.state.db.dispose()


def test_resume_erasures_command_reapplies_the_ledger(
    app, client, consenting, make_user, settings, monkeypatch
):
    from typer.testing import CliRunner

    from backend.cli import _register_all
    from backend.cli import app as cli
    from backend.config import get_settings
    from backend.patients.models import Patient

    pid = uuid.UUID(consenting["id"])
    backup_rows = _dump(app.state.db.engine)
    admin = make_user(Role.admin)
    body = {"reason": "Patient asked for erasure in writing (ticket 8)", "basis": "patient_request"}
    assert client.post(f"/api/v1/patients/{pid}/erase", headers=admin.headers, json=body).status_code == 200
    _restore(app.state.db.engine, backup_rows)
    with app.state.db.session() as session:  # restored: the identity decrypts again
        sealed = session.get(Patient, pid).identity_sealed
        assert app.state.patients.identity(session, session.get(Patient, pid)).full_name

    monkeypatch.setattr("backend.commands._context", lambda: (settings, app.state.keyring, app.state.db))
    get_settings.cache_clear()
    _register_all()
    result = CliRunner().invoke(cli, ["admin", "resume-erasures"])
    assert result.exit_code == 0 and "1 erasure(s) re-applied" in result.output, result.output
    with app.state.db.session() as session, pytest.raises(KeyDestroyed):
        app.state.vault.decrypt(session, pid, "patient:identity", sealed)
    assert CliRunner().invoke(cli, ["admin", "resume-erasures"]).output.startswith("0 erasure(s) re-applied")


def test_a_forged_ledger_record_erases_nobody(app, client, consenting, settings):
    """Someone who can write the anchor store but lacks the master key cannot make the server destroy a
    patient's data."""
    import json

    pid = uuid.UUID(consenting["id"])
    record = {"patient_id": str(pid), "requested_at": "2026-01-01T00:00:00+00:00", "mac": "0" * 64}
    app.state.erasure.ledger.store.put(f"erasures/{pid}.json", json.dumps(record).encode())
    assert app.state.erasure.reapply_ledger(app.state.db.session) == 0
    headers = consenting["clinic"].clinician.headers
    assert client.get(f"/api/v1/patients/{pid}", headers=headers).status_code == 200
