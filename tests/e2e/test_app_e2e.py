"""The web app end to end in real headless Chromium against the real backend (see conftest.py)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import run_scenario

pytestmark = pytest.mark.slow

# The words the app shows (mobile/src/components/format.ts), to check the screen against the API.
LESION_LABELS = {
    "akiec": "Actinic keratosis",
    "bcc": "Basal cell carcinoma",
    "bkl": "Benign keratosis",
    "df": "Dermatofibroma",
    "mel": "Melanoma",
    "nv": "Melanocytic naevus",
    "vasc": "Vascular lesion",
}
MANAGEMENT_MONITOR = "Monitor and review"


def test_every_role_signs_in_to_its_own_home(server, screenshots):
    result = run_scenario("sign_in", server, screenshots)
    assert result["homes"]["clinician"].startswith("/clinician")
    assert result["homes"]["dermatologist"].startswith("/dermatologist")
    assert result["homes"]["admin"].startswith("/admin")


def test_the_whole_walk_from_bedside_photo_to_audit_export(server, screenshots, lesion_image):
    result = run_scenario("walk", server, screenshots, mrn="E2E-WALK-1", image=str(lesion_image))
    with server.api("admin") as admin, server.api("clinician") as clinician:
        case = clinician.get(f"/cases/{result['caseId']}").json()
        assert case["patient_id"] == result["patientId"]
        assert case["state"] == "answered" and case["answer"]["diagnosis"] == "nv"
        assert case["analysis"]["status"] == "done"
        top = case["analysis"]["results"][0]["top_label"]
        assert LESION_LABELS[top] in result["topLabel"], (top, result["topLabel"])  # the model's top class
        assert MANAGEMENT_MONITOR in result["answer"]
        trail = admin.get("/audit/events", params={"patient_id": result["patientId"], "limit": 100}).json()
        actions = {event["action"] for event in trail["items"]}
        assert {"patient.create", "consent.grant", "case.create", "case.claim", "case.answer"} <= actions, (
            actions
        )
    assert result["events"], "the audit screen listed no event for the patient"
    header, *rows = result["csv"].strip().splitlines()
    assert "action" in header
    answered = [row for row in rows if "case.answer" in row]
    assert answered and result["patientId"] in answered[0]
