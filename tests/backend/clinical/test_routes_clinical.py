"""The authorization matrix for the clinical routes: anonymous 401, wrong role 403, missing 404, valid."""

from __future__ import annotations

import uuid

import pytest

from backend.users.models import Role
from tests.backend.clinical.conftest import CONSENT_TEXT, IDENTITY

MISSING = str(uuid.uuid4())
C, D, A = "clinician", "dermatologist", "admin"
REASON = {"reason": "Documented emergency access for testing"}

# (method, path, allowed roles, body, success status, the path has an id that can be missing)
CLINICAL_MATRIX = [
    ("POST", "/api/v1/clinics", {A}, {"name": "Matrix Clinic"}, 201, False),
    ("GET", "/api/v1/clinics", {A}, None, 200, False),
    ("POST", "/api/v1/patients", {C}, {**IDENTITY, "medical_record_number": "MRN-NEW"}, 201, False),
    ("GET", "/api/v1/patients?mrn=MRN-0001", {C}, None, 200, False),
    ("GET", "/api/v1/patients/{patient}", {C, D}, None, 200, True),  # D: only through a routed case
    ("PATCH", "/api/v1/patients/{patient}", {C}, {"contact": "x@example.org"}, 200, True),
    ("POST", "/api/v1/patients/{patient}/break-glass", {A}, REASON, 200, True),
    ("GET", "/api/v1/patients/{patient}/consents", {C, D}, None, 200, True),
    (
        "POST",
        "/api/v1/patients/{patient}/consents",
        {C},
        {
            "document_id": "{document}",
            "scopes": ["research"],
            "method": "verbal",
            "witness_name": "Nurse Joy",
        },
        201,
        True,
    ),
    ("POST", "/api/v1/patients/{patient}/consents/withdraw", {C}, {"scopes": ["ai_analysis"]}, 200, True),
    ("POST", "/api/v1/patients/{patient}/erase", {A}, {**REASON, "basis": "patient_request"}, 200, True),
    (
        "POST",
        "/api/v1/consent-documents",
        {A},
        {"version": "9", "language": "en", "title": "T", "text": CONSENT_TEXT, "scopes": ["research"]},
        201,
        False,
    ),
    ("GET", "/api/v1/consent-documents", {C, D, A}, None, 200, False),
    ("GET", "/api/v1/consent-documents/{document}", {C, D, A}, None, 200, True),
    ("POST", "/api/v1/consent-documents/{document}/withdraw", {A}, None, 200, True),
]


def _fill(value, ids):  # type: ignore[no-untyped-def]
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


@pytest.fixture
def settings(database_url, tmp_path, model_repository):  # type: ignore[no-untyped-def]
    from tests.backend.conftest import make_settings

    return make_settings(
        database_url, tmp_path, model_repository=model_repository
    )  # one blob store is enough


@pytest.mark.parametrize("row", CLINICAL_MATRIX, ids=[f"{m} {p}" for m, p, *_ in CLINICAL_MATRIX])
def test_clinical_route_matrix(client, make_user, patient, document, row):
    method, path, allowed, body, success, has_id = row
    ids = {"patient": patient["id"], "document": document["id"]}
    anonymous = client.request(method, _fill(path, ids), json=_fill(body, ids))
    assert anonymous.status_code == 401
    actors = {C: patient["clinic"].clinician, D: make_user(Role.dermatologist), A: patient["admin"]}
    if path.endswith("/consents/withdraw"):  # something to withdraw
        client.post(
            f"/api/v1/patients/{patient['id']}/consents",
            headers=actors[C].headers,
            json={
                "document_id": document["id"],
                "scopes": ["ai_analysis"],
                "method": "verbal",
                "witness_name": "Nurse Joy",
            },
        )
    for role, account in actors.items():
        if role not in allowed:
            response = client.request(
                method, _fill(path, ids), headers=account.headers, json=_fill(body, ids)
            )
            assert response.status_code == 403, (role, response.text)
    actor = actors[min(allowed)]
    if has_id:
        missing = {k: MISSING for k in ids}
        response = client.request(method, _fill(path, missing), headers=actor.headers, json=_fill(body, ids))
        assert response.status_code == 404, response.text
    response = client.request(method, _fill(path, ids), headers=actor.headers, json=_fill(body, ids))
    assert response.status_code == success, response.text
