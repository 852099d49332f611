"""Consent withdrawal and erasure reach every read a dermatologist makes; consent given late routes."""

from __future__ import annotations

from backend.users.models import Role
from tests.backend.cases.conftest import submit
from tests.backend.conftest import audit_rows


def _consent(client, patient, document, scopes):  # type: ignore[no-untyped-def]
    response = client.post(
        f"/api/v1/patients/{patient['id']}/consents",
        headers=patient["clinic"].clinician.headers,
        json={
            "document_id": document["id"],
            "scopes": scopes,
            "method": "verbal",
            "witness_name": "Nurse Joy",
        },
    )
    assert response.status_code == 201, response.text


def _withdraw(client, patient, scopes):  # type: ignore[no-untyped-def]
    response = client.post(
        f"/api/v1/patients/{patient['id']}/consents/withdraw",
        headers=patient["clinic"].clinician.headers,
        json={"scopes": scopes, "reason": "patient changed their mind"},
    )
    assert response.status_code == 200, response.text


def _queue(client, account) -> list[str]:  # type: ignore[no-untyped-def]
    response = client.get("/api/v1/queue", headers=account.headers)
    assert response.status_code == 200
    return [item["case_id"] for item in response.json()["items"]]


def test_withdrawn_sharing_consent_hides_the_patient_from_the_dermatologist(
    app, client, consenting, lesion_jpeg, dermatologist, make_user
):
    pid = consenting["id"]
    claimed_case = submit(client, consenting, [lesion_jpeg], concern="high").json()
    waiting_case = submit(client, consenting, [lesion_jpeg], wants_specialist=True).json()
    assert claimed_case["state"] == waiting_case["state"] == "awaiting_specialist"
    other = make_user(Role.dermatologist)
    assert (
        client.post(f"/api/v1/queue/{claimed_case['id']}/claim", headers=dermatologist.headers).status_code
        == 200
    )
    assert client.get(f"/api/v1/patients/{pid}", headers=dermatologist.headers).status_code == 200
    assert waiting_case["id"] in _queue(client, other)

    _withdraw(client, consenting, ["specialist_sharing"])

    for path in (
        f"/api/v1/patients/{pid}",
        f"/api/v1/patients/{pid}/consents",
        f"/api/v1/cases/{claimed_case['id']}",
    ):
        response = client.get(path, headers=dermatologist.headers)
        assert response.status_code == 404, (path, response.text)
        assert "Ada" not in response.text
    listed = client.get("/api/v1/cases", headers=dermatologist.headers).json()["items"]
    assert listed == []
    assert _queue(client, other) == [] and _queue(client, dermatologist) == []
    claim = client.post(f"/api/v1/queue/{waiting_case['id']}/claim", headers=other.headers)
    assert claim.status_code in (404, 409) and claim.json()["type"] in ("not_found", "consent_required")
    denied = [e for e in audit_rows(app, action="patient.read", outcome="denied") if e.patient_id == pid]
    assert denied  # the refused reads are in the trail
    # The clinician still reads their patient; consent again and the dermatologist is back.
    assert (
        client.get(f"/api/v1/patients/{pid}", headers=consenting["clinic"].clinician.headers).status_code
        == 200
    )


def test_consent_recorded_after_analysis_routes_the_case(
    app, client, patient, document, lesion_jpeg, dermatologist
):
    _consent(client, patient, document, ["ai_analysis"])
    case = submit(client, patient, [lesion_jpeg], concern="high").json()
    assert case["state"] == "analysed" and case["triage"]["sharing_consent_missing"] is True
    assert _queue(client, dermatologist) == []

    _consent(client, patient, document, ["specialist_sharing"])

    read = client.get(f"/api/v1/cases/{case['id']}", headers=patient["clinic"].clinician.headers).json()
    assert read["state"] == "awaiting_specialist" and read["triage"]["sharing_consent_missing"] is False
    assert read["triage"]["message"] is None
    assert _queue(client, dermatologist) == [case["id"]]
    routed = audit_rows(app, action="case.route", resource_id=case["id"])
    assert [e.outcome for e in routed] == ["denied", "allowed"]  # refused by the job, routed on consent
    assert any(
        e.action == "case.transition" and "awaiting_specialist" in e.detail
        for e in audit_rows(app, resource_id=case["id"])
    )


def test_erased_patients_cases_leave_the_queue_and_cannot_be_claimed(
    app, client, consenting, lesion_jpeg, dermatologist, make_user
):
    waiting = submit(client, consenting, [lesion_jpeg], concern="high").json()
    held = submit(client, consenting, [lesion_jpeg], wants_specialist=True).json()
    assert client.post(f"/api/v1/queue/{held['id']}/claim", headers=dermatologist.headers).status_code == 200
    image_url = f"/api/v1/cases/{held['id']}/images/{held['images'][0]['id']}"
    assert client.get(image_url, headers=dermatologist.headers).status_code == 200
    admin = make_user(Role.admin)
    erased = client.post(
        f"/api/v1/patients/{consenting['id']}/erase",
        headers=admin.headers,
        json={"reason": "Patient asked for erasure in writing (ticket 9)", "basis": "patient_request"},
    )
    assert erased.status_code == 200

    assert _queue(client, dermatologist) == []
    claim = client.post(f"/api/v1/queue/{waiting['id']}/claim", headers=dermatologist.headers)
    assert claim.status_code == 410 and claim.json()["type"] == "erased"
    clinician = consenting["clinic"].clinician
    for account in (clinician, dermatologist):
        image = client.get(image_url, headers=account.headers)
        assert image.status_code in (404, 410), image.text
        assert "patients/" not in image.text and ".enc" not in image.text
    image = client.get(image_url, headers=clinician.headers)
    assert image.status_code == 410 and image.json()["type"] == "erased"
    assert client.get(f"/api/v1/cases/{held['id']}", headers=clinician.headers).status_code == 410
    assert client.get("/api/v1/cases", headers=clinician.headers).json()["items"] == []
    assert audit_rows(app, action="case.claim", outcome="denied")
