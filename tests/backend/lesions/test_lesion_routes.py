"""Lesions over the API: authorization, follow-ups that come due, measured change in triage, erasure."""

from __future__ import annotations

import time
import uuid

import pytest
from fhir.resources.R4B.bundle import Bundle
from sqlmodel import select

from backend.audit.models import AuditEvent
from backend.lesions.models import Lesion, LesionChange
from backend.users.models import Role
from tests.backend.cases.conftest import submit
from tests.backend.clinical.conftest import IDENTITY

MISSING = str(uuid.uuid4())
# Every lesion route, for the route-coverage check in tests/backend/test_routes.py; each is walked through
# 401 -> 403 -> 404 -> ok by the tests below.
LESION_MATRIX = [
    ("POST", "/api/v1/patients/{patient}/lesions"),
    ("GET", "/api/v1/patients/{patient}/lesions"),
    ("GET", "/api/v1/lesions/due"),
    ("GET", "/api/v1/lesions/{lesion}"),
    ("GET", "/api/v1/lesions/{lesion}/changes/{case}/image"),
]
LESION = {"site": "back", "label": "left shoulder blade", "body_view": "back", "body_x": 0.3, "body_y": 0.25}


def wait_analysed(client, case_id, headers, seconds=180.0):  # type: ignore[no-untyped-def]
    """Poll the case until its analysis has finished (generous: a follow-up also measures change)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        case = client.get(f"/api/v1/cases/{case_id}", headers=headers).json()
        if case["analysis"]["status"] in ("done", "failed"):
            return case
        time.sleep(0.2)
    raise AssertionError(f"case {case_id} was not analysed within {seconds} s: {case['analysis']}")


@pytest.mark.parametrize(("method", "path"), LESION_MATRIX)
def test_lesion_routes_need_a_token(client, method, path):
    response = client.request(method, path.format(patient=MISSING, lesion=MISSING, case=MISSING), json=LESION)
    assert response.status_code == 401 and response.json()["type"] == "not_authenticated"


def test_lesion_routes_walk_401_403_404_ok(client, consenting, make_user):
    clinician = consenting["clinic"].clinician
    admin = make_user(Role.admin)
    path = f"/api/v1/patients/{consenting['id']}/lesions"
    assert client.post(path, json=LESION).status_code == 401
    assert client.post(path, headers=admin.headers, json=LESION).status_code == 403
    missing = client.post(f"/api/v1/patients/{MISSING}/lesions", headers=clinician.headers, json=LESION)
    assert missing.status_code == 404 and missing.json()["type"] == "not_found"
    created = client.post(path, headers=clinician.headers, json=LESION)
    assert created.status_code == 201, created.text
    lesion = created.json()
    assert {k: lesion[k] for k in LESION} == LESION

    assert client.get(f"/api/v1/lesions/{lesion['id']}").status_code == 401
    assert client.get(f"/api/v1/lesions/{lesion['id']}", headers=admin.headers).status_code == 403
    assert client.get(f"/api/v1/lesions/{MISSING}", headers=clinician.headers).status_code == 404
    # A dermatologist sees a lesion only once one of its cases is routed to them.
    outsider = make_user(Role.dermatologist)
    assert client.get(f"/api/v1/lesions/{lesion['id']}", headers=outsider.headers).status_code == 404
    read = client.get(f"/api/v1/lesions/{lesion['id']}", headers=clinician.headers)
    assert read.status_code == 200 and read.json()["visits"] == [] and read.json()["label"] == LESION["label"]
    listed = client.get(path, headers=clinician.headers).json()
    assert [x["id"] for x in listed] == [lesion["id"]]
    assert client.get("/api/v1/lesions/due", headers=admin.headers).status_code == 403
    bad = client.post(path, headers=clinician.headers, json={**LESION, "body_x": 1.5})
    assert bad.status_code == 422 and bad.json()["type"] == "validation_error"


def test_another_clinic_cannot_see_or_follow_up_the_lesion(
    client, consenting, document, make_clinic, lesion_jpeg
):
    clinician = consenting["clinic"].clinician
    lesion = client.post(
        f"/api/v1/patients/{consenting['id']}/lesions", headers=clinician.headers, json=LESION
    ).json()
    other = make_clinic("South Clinic")
    assert client.get(f"/api/v1/lesions/{lesion['id']}", headers=other.clinician.headers).status_code == 404
    # A follow-up naming another patient's lesion is refused with a clear message, and nothing is stored.
    second = client.post(
        "/api/v1/patients", headers=clinician.headers, json={**IDENTITY, "medical_record_number": "MRN-2"}
    )
    assert second.status_code == 201, second.text
    sibling = {"id": second.json()["id"], "clinic": consenting["clinic"]}
    consent = client.post(
        f"/api/v1/patients/{sibling['id']}/consents",
        headers=clinician.headers,
        json={
            "document_id": document["id"],
            "scopes": ["ai_analysis"],
            "method": "verbal",
            "witness_name": "N. Joy",
        },
    )
    assert consent.status_code == 201, consent.text
    for lesion_id in (lesion["id"], MISSING):
        refused = submit(client, sibling, [lesion_jpeg], lesion_id=lesion_id)
        assert refused.status_code == 422, refused.text
        assert "not one of this patient's lesions" in refused.json()["detail"]
    assert client.get("/api/v1/cases", headers=clinician.headers).json()["items"] == []


def test_follow_up_comes_due_is_compared_and_a_grown_lesion_goes_to_review(
    app, client, consenting, dermatologist, lesion_jpeg, followups
):
    clinician = consenting["clinic"].clinician
    baseline = submit(client, consenting, [lesion_jpeg], concern="high")
    assert baseline.status_code == 201, baseline.text
    baseline = wait_analysed(client, baseline.json()["id"], clinician.headers)
    lesion_id = baseline["lesion_id"]
    assert lesion_id is not None and baseline["lesion_change"] is None  # a first visit has nothing to compare

    claim = client.post(f"/api/v1/queue/{baseline['id']}/claim", headers=dermatologist.headers)
    assert claim.status_code == 200, claim.text
    answer = {"diagnosis": "nv", "management": "monitor", "follow_up_weeks": 12}
    answered = client.post(
        f"/api/v1/cases/{baseline['id']}/answer",
        headers={**dermatologist.headers, "If-Match": claim.headers["ETag"]},
        json=answer,
    )
    assert answered.status_code == 200, answered.text

    assert client.get("/api/v1/lesions/due", headers=clinician.headers).json() == []  # due in 12 weeks
    due = client.get("/api/v1/lesions/due?within_days=90", headers=clinician.headers).json()
    assert [d["id"] for d in due] == [lesion_id] and -85 <= due[0]["overdue_days"] <= -83

    followup = submit(client, consenting, [followups["grown"]], lesion_id=lesion_id, site="back")
    assert followup.status_code == 201, followup.text
    followup = wait_analysed(client, followup.json()["id"], clinician.headers)
    assert followup["lesion_id"] == lesion_id
    change = followup["lesion_change"]
    assert change["status"] == "measured", change
    assert change["measurements"]["area_ratio"] > 1.25
    assert "area_ratio" in change["measurements"]["significant"]
    assert set(change["probability_change"]) == {"akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"}
    assert "not a diagnosis" in change["disclaimer"]
    assert (followup["triage"]["level"], followup["triage"]["rule"]) == ("review", "lesion_changed")
    assert followup["state"] == "awaiting_specialist"
    # The follow-up that was due has arrived.
    assert client.get("/api/v1/lesions/due?within_days=90", headers=clinician.headers).json() == []

    detail = client.get(f"/api/v1/lesions/{lesion_id}", headers=clinician.headers).json()
    assert [v["case_id"] for v in detail["visits"]] == [baseline["id"], followup["id"]]
    assert [c["followup_case_id"] for c in detail["changes"]] == [followup["id"]]

    # FHIR: the lesion is a BodyStructure, the change an Observation of its measurements focused on it.
    bundle = client.get(f"/api/v1/cases/{followup['id']}/fhir", headers=clinician.headers)
    assert bundle.status_code == 200, bundle.text
    parsed = Bundle.model_validate(bundle.json())
    resources = {(e.resource.get_resource_type(), e.resource.id): e.resource for e in parsed.entry}
    structure = resources[("BodyStructure", lesion_id)]
    assert structure.location.text == "back"
    (observation,) = [
        r
        for (kind, _), r in resources.items()
        if kind == "Observation" and r.code.coding[0].code == "lesion-change"
    ]
    values = {c.code.coding[0].code: float(c.valueQuantity.value) for c in observation.component}
    assert values["area-ratio"] == pytest.approx(change["measurements"]["area_ratio"], rel=1e-5)
    assert observation.focus[0].reference == f"urn:uuid:{lesion_id}"

    image = client.get(
        f"/api/v1/lesions/{lesion_id}/changes/{followup['id']}/image", headers=clinician.headers
    )
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG") and image.headers["cache-control"] == "no-store"
    not_a_followup = client.get(
        f"/api/v1/lesions/{lesion_id}/changes/{baseline['id']}/image", headers=clinician.headers
    )
    assert not_a_followup.status_code == 404
    with app.state.db.session() as session:
        events = list(session.exec(select(AuditEvent).where(AuditEvent.action == "lesion.comparison_view")))
        assert [(str(e.actor_id), str(e.patient_id), e.outcome) for e in events] == [
            (str(clinician.user.id), consenting["id"], "allowed")
        ]


def test_photos_that_cannot_be_compared_say_so_and_leave_triage_alone(
    client, consenting, lesion_jpeg, followups
):
    clinician = consenting["clinic"].clinician
    first = wait_analysed(client, submit(client, consenting, [lesion_jpeg]).json()["id"], clinician.headers)
    second = submit(client, consenting, [followups["flat"]], lesion_id=first["lesion_id"])
    assert second.status_code == 201, second.text
    second = wait_analysed(client, second.json()["id"], clinician.headers)
    change = second["lesion_change"]
    assert change["status"] == "not_comparable" and change["measurements"] == {}
    assert change["reason"]
    assert second["triage"]["rule"] != "lesion_changed"
    image = client.get(
        f"/api/v1/lesions/{first['lesion_id']}/changes/{second['id']}/image", headers=clinician.headers
    )
    assert image.status_code == 422 and "could not be made" in image.json()["detail"]


def test_erasure_removes_the_patients_lesions(app, client, consenting, lesion_jpeg, followups):
    clinician = consenting["clinic"].clinician
    first = wait_analysed(client, submit(client, consenting, [lesion_jpeg]).json()["id"], clinician.headers)
    second = submit(client, consenting, [followups["moved"]], lesion_id=first["lesion_id"])
    wait_analysed(client, second.json()["id"], clinician.headers)
    admin = consenting["admin"]
    erased = client.post(
        f"/api/v1/patients/{consenting['id']}/erase",
        headers=admin.headers,
        json={"reason": "Patient asked for erasure in writing (ticket 7)", "basis": "patient_request"},
    )
    assert erased.status_code == 200, erased.text
    assert client.get(f"/api/v1/lesions/{first['lesion_id']}", headers=clinician.headers).status_code == 404
    with app.state.db.session() as session:
        assert (
            session.exec(select(Lesion).where(Lesion.patient_id == uuid.UUID(consenting["id"]))).all() == []
        )
        assert session.exec(select(LesionChange)).all() == []
