"""Envelope encryption: tampering, record swapping, rotation (and resuming it), erasure."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlmodel import select

from backend.crypto.envelope import DecryptionFailed, KeyDestroyed
from backend.crypto.models import DataKey, KeyEncryptionKey
from backend.patients.models import Patient
from backend.patients.service import IDENTITY_RECORD
from tests.backend.clinical.conftest import IDENTITY
from tests.backend.conftest import audit_rows


def _two_patients(client, patient):  # type: ignore[no-untyped-def]
    other = client.post(
        "/api/v1/patients",
        headers=patient["clinic"].clinician.headers,
        json={**IDENTITY, "medical_record_number": "MRN-0002", "full_name": "Grace Hopper"},
    )
    return uuid.UUID(patient["id"]), uuid.UUID(other.json()["id"])


def test_tampered_or_truncated_ciphertext_fails(app, patient):
    vault, pid = app.state.vault, uuid.UUID(patient["id"])
    with app.state.db.session() as session:
        sealed = session.get(Patient, pid).identity_sealed
        flipped = sealed[:-1] + bytes([sealed[-1] ^ 1])
        for bad in (flipped, sealed[:20], b"", b"XYZ" + sealed[3:]):
            with pytest.raises(DecryptionFailed):
                vault.decrypt(session, pid, IDENTITY_RECORD, bad)


def test_ciphertext_moved_to_another_record_or_patient_fails(app, client, patient):
    vault = app.state.vault
    first, second = _two_patients(client, patient)
    with app.state.db.session() as session:
        sealed = session.get(Patient, first).identity_sealed
        with pytest.raises(DecryptionFailed):
            vault.decrypt(session, first, "patient:other-record", sealed)
        with pytest.raises(DecryptionFailed):
            vault.decrypt(session, second, IDENTITY_RECORD, sealed)
    # Swap the stored rows directly in the database: the API refuses to decrypt either.
    with app.state.db.engine.begin() as conn:
        conn.execute(
            text("UPDATE patient SET identity_sealed = :s WHERE id = :id"),
            {"s": sealed, "id": second if "postgresql" in app.state.db.url else second.hex},
        )
    response = client.get(f"/api/v1/patients/{second}", headers=patient["clinic"].clinician.headers)
    assert response.status_code == 500 and response.json()["type"] == "decryption_failed"


def test_rotation_rewraps_every_key_and_old_ciphertexts_still_decrypt(app, client, patient):
    first, second = _two_patients(client, patient)
    vault, db = app.state.vault, app.state.db
    result = vault.rotate(db.session)
    assert result.rewrapped == 2 and result.remaining == 0
    with db.session() as session:
        assert {k.kek_id for k in session.exec(select(DataKey))} == {result.kek_id}
        assert session.get(KeyEncryptionKey, result.kek_id - 1).retired_at is not None
    headers = patient["clinic"].clinician.headers
    assert (
        client.get(f"/api/v1/patients/{first}", headers=headers).json()["identity"]["full_name"]
        == "Ada Lovelace"
    )
    assert (
        client.get(f"/api/v1/patients/{second}", headers=headers).json()["identity"]["full_name"]
        == "Grace Hopper"
    )


def test_interrupted_rotation_resumes(app, client, patient, monkeypatch):
    _two_patients(client, patient)
    vault, db = app.state.vault, app.state.db
    calls = {"n": 0}

    def crash_after_first_batch(done: int, total: int) -> None:
        calls["n"] += 1
        raise KeyboardInterrupt("power cut")

    with pytest.raises(KeyboardInterrupt):
        vault.rotate(db.session, batch_size=1, on_batch=crash_after_first_batch)
    with db.session() as session:
        keks = {k.kek_id for k in session.exec(select(DataKey))}
    assert len(keks) == 2  # half re-wrapped
    resumed = vault.rotate(db.session, batch_size=1)
    assert resumed.rewrapped == 1 and resumed.remaining == 0  # resumed, no new key-encryption key
    with db.session() as session:
        assert {k.kek_id for k in session.exec(select(DataKey))} == {resumed.kek_id}
    assert (
        client.get(
            f"/api/v1/patients/{patient['id']}", headers=patient["clinic"].clinician.headers
        ).status_code
        == 200
    )


def test_erasure_crypto_shreds_the_patient(app, client, patient, document):
    headers = patient["clinic"].clinician.headers
    pid = uuid.UUID(patient["id"])
    client.post(
        f"/api/v1/patients/{pid}/consents",
        headers=headers,
        json={
            "document_id": document["id"],
            "scopes": ["research"],
            "method": "verbal",
            "witness_name": "Nurse Joy",
        },
    )
    blobs = app.state.blobs
    blob_key = f"patients/{pid}/images/lesion.bin"
    with app.state.db.session() as session:
        blobs.put(blob_key, app.state.vault.encrypt(session, pid, f"blob:{blob_key}", b"lesion pixels"))
        sealed_identity = session.get(Patient, pid).identity_sealed
    raw_blob = blobs.get(blob_key)
    admin = patient["admin"]
    body = {"reason": "Patient asked for erasure in writing (ticket 42)", "basis": "consent_withdrawn"}
    refused = client.post(f"/api/v1/patients/{pid}/erase", headers=admin.headers, json=body)
    assert refused.status_code == 409 and "research" in refused.json()["detail"]
    erased = client.post(
        f"/api/v1/patients/{pid}/erase", headers=admin.headers, json={**body, "basis": "patient_request"}
    )
    assert erased.status_code == 200 and erased.json()["blobs_deleted"] >= 1

    assert list(blobs.iter_keys(f"patients/{pid}/")) == []
    with app.state.db.session() as session:
        row = session.exec(select(DataKey).where(DataKey.owner_id == pid)).one()
        assert row.wrapped is None and row.destroyed_at is not None
        assert session.get(Patient, pid).identity_sealed is None
        for stored, record in ((raw_blob, f"blob:{blob_key}"), (sealed_identity, IDENTITY_RECORD)):
            with pytest.raises(KeyDestroyed):  # even with copies of the bytes taken before
                app.state.vault.decrypt(session, pid, record, stored)
    assert client.get(f"/api/v1/patients/{pid}", headers=headers).status_code == 404
    actions = {e.action for e in audit_rows(app, patient_id=str(pid))}
    assert {"patient.create", "consent.grant", "patient.erase_requested", "patient.erase"} <= actions
    again = client.post(
        f"/api/v1/patients/{pid}/erase", headers=admin.headers, json={**body, "basis": "patient_request"}
    )
    assert again.status_code == 200  # idempotent


def test_erasure_interrupted_by_the_blob_store_completes_on_resume(app, client, patient, monkeypatch):
    pid = uuid.UUID(patient["id"])
    blobs = app.state.blobs
    blobs.put(f"patients/{pid}/images/a.bin", b"ciphertext")

    def down(prefix: str) -> int:
        raise ConnectionError("blob store unreachable")

    monkeypatch.setattr(blobs, "delete_prefix", down)
    body = {"reason": "Patient asked for erasure in writing (ticket 43)", "basis": "patient_request"}
    with pytest.raises(ConnectionError):
        client.post(f"/api/v1/patients/{pid}/erase", headers=patient["admin"].headers, json=body)
    with app.state.db.session() as session:
        stored = session.get(Patient, pid)
        assert stored.erasure_requested_at is not None and stored.erased_at is None
        assert (
            session.exec(select(DataKey).where(DataKey.owner_id == pid)).one().wrapped is None
        )  # already shredded
    monkeypatch.undo()
    assert app.state.erasure.resume_pending(app.state.db.session) == 1
    assert list(blobs.iter_keys(f"patients/{pid}/")) == []
