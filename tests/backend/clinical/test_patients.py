"""Patients: encrypted identity, blind-index look-up, the role/clinic matrix, break-glass, audit."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from backend.users.models import Role
from tests.backend.clinical.conftest import IDENTITY
from tests.backend.conftest import audit_rows


def test_identity_is_encrypted_at_rest(app, client, patient):
    with app.state.db.engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM patient")).mappings().one()
    raw = b"".join(v if isinstance(v, bytes) else str(v).encode() for v in row.values())
    for value in IDENTITY.values():
        assert value.encode() not in raw
    assert row["mrn_index"] and len(row["mrn_index"]) == 64


def test_clinician_reads_own_clinic_and_finds_by_mrn(app, client, patient):
    headers = patient["clinic"].clinician.headers
    read = client.get(f"/api/v1/patients/{patient['id']}", headers=headers)
    assert read.status_code == 200 and read.json()["identity"]["full_name"] == "Ada Lovelace"
    found = client.get("/api/v1/patients", headers=headers, params={"mrn": " mrn-0001 "})
    assert [p["id"] for p in found.json()] == [patient["id"]]
    assert client.get("/api/v1/patients", headers=headers, params={"mrn": "MRN-9999"}).json() == []
    actions = [e.action for e in audit_rows(app, patient_id=patient["id"])]
    assert actions.count("patient.create") == 1 and actions.count("patient.read") == 1
    searches = audit_rows(app, action="patient.search")
    assert [(e.actor_id, e.outcome) for e in searches] == [
        (patient["clinic"].clinician.user.id, "allowed")
    ] * 2


def test_duplicate_mrn_in_a_clinic_is_409(client, patient):
    again = client.post("/api/v1/patients", headers=patient["clinic"].clinician.headers, json=IDENTITY)
    assert again.status_code == 409


def test_other_clinics_dermatologists_and_admins_cannot_read(app, client, patient, make_clinic, make_user):
    other = make_clinic("South Clinic")
    dermatologist = make_user(Role.dermatologist)
    admin = patient["admin"]
    path = f"/api/v1/patients/{patient['id']}"
    assert client.get(path, headers=other.clinician.headers).status_code == 404
    assert client.get(path, headers=dermatologist.headers).status_code == 404  # no case routed to them
    assert client.get(path, headers=admin.headers).status_code == 403
    assert (
        client.get("/api/v1/patients", headers=other.clinician.headers, params={"mrn": "MRN-0001"}).json()
        == []
    )
    denied = [e for e in audit_rows(app, patient_id=patient["id"]) if e.outcome == "denied"]
    assert len(denied) == 2  # the two reads of a patient they may not see
    assert client.get(f"/api/v1/patients/{uuid.uuid4()}", headers=other.clinician.headers).status_code == 404


def test_clinician_without_clinic_cannot_register(client, make_user):
    loner = make_user(Role.clinician)
    response = client.post("/api/v1/patients", headers=loner.headers, json=IDENTITY)
    assert response.status_code == 403 and "clinic" in response.json()["detail"]


def test_update_re_encrypts(app, client, patient):
    headers = patient["clinic"].clinician.headers
    response = client.patch(
        f"/api/v1/patients/{patient['id']}", headers=headers, json={"contact": "ada@example.org"}
    )
    assert response.status_code == 200 and response.json()["identity"]["contact"] == "ada@example.org"
    assert (
        client.get(f"/api/v1/patients/{patient['id']}", headers=headers).json()["identity"]["contact"]
        == "ada@example.org"
    )
    (update,) = audit_rows(app, action="patient.update")
    assert (update.actor_id, update.patient_id, update.outcome) == (
        patient["clinic"].clinician.user.id,
        patient["id"],
        "allowed",
    )


def test_break_glass_needs_a_reason_and_is_audited(app, client, patient):
    admin = patient["admin"]
    path = f"/api/v1/patients/{patient['id']}/break-glass"
    assert client.post(path, headers=admin.headers, json={}).status_code == 422
    assert client.post(path, headers=admin.headers, json={"reason": "short"}).status_code == 422
    reason = "Patient unconscious in ED; treating physician requested identity"
    response = client.post(path, headers=admin.headers, json={"reason": reason})
    assert response.status_code == 200 and response.json()["identity"]["medical_record_number"] == "MRN-0001"
    (event,) = audit_rows(app, action="patient.break_glass")
    assert event.reason == reason and event.actor_id == admin.user.id and event.patient_id == patient["id"]
    clinician = patient["clinic"].clinician
    assert client.post(path, headers=clinician.headers, json={"reason": reason}).status_code == 403


def test_audit_trail_never_holds_identifying_fields(app, client, patient):
    client.get(f"/api/v1/patients/{patient['id']}", headers=patient["clinic"].clinician.headers)
    for row in audit_rows(app):
        flat = " ".join(str(v) for v in row.__dict__.values())
        assert "Ada Lovelace" not in flat and "MRN-0001" not in flat and "1815-12-10" not in flat
