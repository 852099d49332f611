"""The authorization matrix for the case and queue routes."""

from __future__ import annotations

import json
import uuid

import pytest

from backend.users.models import Role
from tests.backend.cases.conftest import submit

MISSING = str(uuid.uuid4())
C, D, A = "clinician", "dermatologist", "admin"
ANSWER = {"diagnosis": "nv", "management": "reassure"}

# (method, path, allowed roles, json body, success status, has an id to miss, needs the case claimed first)
CASE_MATRIX = [
    ("GET", "/api/v1/cases", {C, D}, None, 200, False, False),
    ("GET", "/api/v1/cases/{case}", {C, D}, None, 200, True, False),
    ("GET", "/api/v1/cases/{case}/images/{image}", {C, D}, None, 200, True, False),
    ("GET", "/api/v1/cases/{case}/images/{image}/heatmap", {C, D}, None, 200, True, False),
    ("GET", "/api/v1/cases/{case}/fhir", {C, D}, None, 200, True, False),
    ("POST", "/api/v1/cases/{case}/answer", {D}, ANSWER, 200, True, True),
    ("POST", "/api/v1/cases/{case}/close", {C}, None, 200, True, False),
    ("GET", "/api/v1/queue", {D}, None, 200, False, False),
    ("POST", "/api/v1/queue/{case}/claim", {D}, None, 200, True, False),
    ("POST", "/api/v1/queue/{case}/release", {D}, None, 200, True, True),
]
# POST /api/v1/cases (multipart) is covered by test_flow.py and the anonymous/role checks below.


@pytest.mark.parametrize("row", CASE_MATRIX, ids=[f"{m} {p}" for m, p, *_ in CASE_MATRIX])
def test_case_route_matrix(client, consenting, make_user, lesion_jpeg, row):
    method, path, allowed, body, success, has_id, claimed = row
    closing = "/close" in path  # a clinician closes an analysed (routine) case; queued ones are urgent
    case = submit(client, consenting, [lesion_jpeg], concern="low" if closing else "high").json()
    assert case["state"] == ("analysed" if closing else "awaiting_specialist"), case["triage"]
    ids = {"case": case["id"], "image": case["images"][0]["id"]}
    actors = {C: consenting["clinic"].clinician, D: make_user(Role.dermatologist), A: make_user(Role.admin)}
    assert client.request(method, path.format(**ids), json=body).status_code == 401
    for role, account in actors.items():
        if role not in allowed:
            response = client.request(method, path.format(**ids), headers=account.headers, json=body)
            assert response.status_code == 403, (role, response.text)
    actor = (
        actors[D]
        if D in allowed and ("queue" in path or claimed or "/answer" in path)
        else actors[min(allowed)]
    )
    headers = dict(actor.headers)
    if actor is actors[D] and "{case}" in path and "claim" not in path:
        claim = client.post(f"/api/v1/queue/{case['id']}/claim", headers=actor.headers)
        headers["If-Match"] = claim.headers["ETag"]
    elif "/close" in path:
        headers["If-Match"] = f'"{case["version"]}"'
    if has_id:
        missing = client.request(method, path.format(case=MISSING, image=MISSING), headers=headers, json=body)
        assert missing.status_code == 404, missing.text
    response = client.request(method, path.format(**ids), headers=headers, json=body)
    assert response.status_code == success, response.text


def test_a_case_waiting_for_a_specialist_cannot_be_closed(client, consenting, lesion_jpeg):
    case = submit(client, consenting, [lesion_jpeg], concern="high").json()
    assert case["state"] == "awaiting_specialist"
    headers = {**consenting["clinic"].clinician.headers, "If-Match": f'"{case["version"]}"'}
    refused = client.post(f"/api/v1/cases/{case['id']}/close", headers=headers)
    assert refused.status_code == 409
    assert refused.json() == {
        "type": "conflict",
        "detail": "a case that is awaiting_specialist cannot be closed",
    }


def test_submission_route_roles(client, consenting, make_user, lesion_jpeg):
    files = [("images", ("lesion.jpg", lesion_jpeg, "image/jpeg"))]
    data = {"metadata": json.dumps({"patient_id": consenting["id"]})}
    assert client.post("/api/v1/cases", data=data, files=files).status_code == 401
    for role in (Role.dermatologist, Role.admin):
        headers = {**make_user(role).headers, "Idempotency-Key": uuid.uuid4().hex}
        assert client.post("/api/v1/cases", headers=headers, data=data, files=files).status_code == 403
