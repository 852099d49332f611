"""`dermalink keys rotate` and `dermalink admin resume-erasures` as an operator runs them, and a
rotation after some patients' data keys were destroyed by erasure."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from backend.crypto.models import DataKey, KeyEncryptionKey
from backend.patients.models import Patient
from tests.backend.clinical.conftest import IDENTITY
from tests.backend.conftest import audit_rows

ERASE = {"reason": "Patient asked for erasure in writing (ticket 77)", "basis": "patient_request"}


@pytest.fixture
def cli(app, settings, monkeypatch, settings_cache):  # type: ignore[no-untyped-def]
    from backend.cli import _register_all
    from backend.cli import app as cli_app

    monkeypatch.setattr("backend.commands._context", lambda: (settings, app.state.keyring, app.state.db))
    _register_all()
    runner = CliRunner()
    return lambda *args: runner.invoke(cli_app, list(args))


def _another_patient(client, patient, mrn: str, name: str) -> uuid.UUID:  # type: ignore[no-untyped-def]
    response = client.post(
        "/api/v1/patients",
        headers=patient["clinic"].clinician.headers,
        json={**IDENTITY, "medical_record_number": mrn, "full_name": name},
    )
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


def test_rotation_from_the_cli_after_some_data_keys_were_destroyed(app, client, patient, cli):
    kept = _another_patient(client, patient, "MRN-0102", "Grace Hopper")
    erased = uuid.UUID(patient["id"])
    assert (
        client.post(
            f"/api/v1/patients/{erased}/erase", headers=patient["admin"].headers, json=ERASE
        ).status_code
        == 200
    )
    with app.state.db.session() as session:
        before = session.exec(select(KeyEncryptionKey.id)).all()

    result = cli("keys", "rotate", "--batch-size", "1")
    assert result.exit_code == 0, result.output
    with app.state.db.session() as session:
        (new_kek,) = [k for k in session.exec(select(KeyEncryptionKey.id)).all() if k not in before]
        keys = {k.owner_id: k for k in session.exec(select(DataKey))}
        assert keys[kept].kek_id == new_kek  # re-wrapped
        assert keys[erased].kek_id is None and keys[erased].wrapped is None  # still destroyed, skipped
        assert session.get(KeyEncryptionKey, before[-1]).retired_at is not None
    assert f"key-encryption key {new_kek} is current; 1 data keys re-wrapped, 0 remaining" in result.output
    (event,) = audit_rows(app, action="keys.rotate")
    assert (event.actor_role, event.actor_id, event.outcome, event.resource_id) == (
        "cli",
        None,
        "allowed",
        str(new_kek),
    )
    assert json.loads(event.detail) == {"rewrapped": 1, "remaining": 0}
    read = client.get(f"/api/v1/patients/{kept}", headers=patient["clinic"].clinician.headers)
    assert read.json()["identity"]["full_name"] == "Grace Hopper"  # decrypts under the new key
    # nothing left to do: a second run starts a new rotation of the one live key
    again = cli("keys", "rotate")
    assert again.exit_code == 0 and "1 data keys re-wrapped, 0 remaining" in again.output


NOTHING = "0 erasure(s) re-applied from the ledger\n0 erasure(s) completed"


def test_resume_erasures_from_the_cli_finishes_an_interrupted_erasure(app, client, patient, cli, monkeypatch):
    pid = uuid.UUID(patient["id"])
    blobs = app.state.blobs
    blobs.put(f"patients/{pid}/images/a.bin", b"ciphertext")
    assert cli("admin", "resume-erasures").output.strip() == NOTHING

    def down(
        prefix: str,
    ) -> int:  # the store fails mid-erasure (the S3 run of test_s3_store stops a real one)
        raise ConnectionError("blob store unreachable")

    monkeypatch.setattr(blobs, "delete_prefix", down)
    with pytest.raises(ConnectionError):
        client.post(f"/api/v1/patients/{pid}/erase", headers=patient["admin"].headers, json=ERASE)
    monkeypatch.undo()
    monkeypatch.setattr(
        "backend.commands._context", lambda: (app.state.settings, app.state.keyring, app.state.db)
    )

    result = cli("admin", "resume-erasures")
    # the erasure was written to the ledger before the store failed: re-applying the ledger finishes it
    expected = "1 erasure(s) re-applied from the ledger\n0 erasure(s) completed"
    assert result.exit_code == 0 and result.output.strip() == expected, result.output
    assert list(blobs.iter_keys(f"patients/{pid}/")) == []
    with app.state.db.session() as session:
        assert session.get(Patient, pid).erased_at is not None
    (erase,) = audit_rows(app, action="patient.erase")
    assert (erase.patient_id, erase.outcome) == (str(pid), "allowed")
    assert cli("admin", "resume-erasures").output.strip() == NOTHING
