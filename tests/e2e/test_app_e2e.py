"""The web app end to end in real headless Chromium against the real backend (see conftest.py)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import run_scenario, start_server, stop_server

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
    # Signed out, a clinical route shows sign-in, and asks the API for nothing but (at most) who is here.
    assert result["guarded"] == "/sign-in", result["guarded"]
    assert "My cases" not in result["visible"]
    assert all("/api/v1/auth/" in url or url.endswith("/users/me") for url in result["apiCalls"])


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


def test_a_follow_up_photo_shows_the_change_since_the_last_photo(server, screenshots, lesion_image):
    result = run_scenario("follow_up", server, screenshots, mrn="E2E-FOLLOW-1", image=str(lesion_image))
    with server.api("clinician") as clinician:
        first = clinician.get(f"/cases/{result['firstCaseId']}").json()
        follow_up = clinician.get(f"/cases/{result['caseId']}").json()
    assert (
        first["lesion_id"] == result["lesionId"] == follow_up["lesion_id"]
    )  # the same lesion, chosen on screen
    change = follow_up["lesion_change"]
    assert change["baseline_case_id"] == first["id"] and change["followup_case_id"] == follow_up["id"]
    if change["status"] == "measured":
        significant = bool(change["measurements"]["significant"])
        assert result["status"] == ("Significant change" if significant else "No significant change")
        area = round(change["measurements"]["area_ratio"] * 100)
        worded = (f"Area: {area}% of the last photo", f"Area: about the same as the last photo ({area}%)")
        assert any(words in result["text"] for words in worded), result["text"]
        assert change["disclaimer"] in result["text"]
    else:
        assert result["status"] == "Not compared"
        assert "could not be compared" in result["text"]


def _cases_of(server, patient_id: str) -> list[dict]:  # type: ignore[no-untyped-def]
    with server.api("clinician") as clinician:
        items = clinician.get("/cases", params={"limit": 100}).json()["items"]
    return [c for c in items if c["patient_id"] == patient_id]


def test_a_case_submitted_offline_is_kept_and_sent_exactly_once(server, screenshots, lesion_image):
    result = run_scenario("offline", server, screenshots, mrn="E2E-OFFLINE-1", image=str(lesion_image))
    assert result["lost"] == 1  # the second submission's first answer was really lost
    keys = result["posts"]
    assert len(set(keys)) == 2, keys  # two submissions, each with its own Idempotency-Key...
    assert len(keys) >= 3, keys  # ...and the second one sent again with the same key after the lost answer
    assert len(_cases_of(server, result["patientId"])) == 2  # one case per submission, no duplicate


@pytest.fixture(scope="module")
def short_token_server(e2e_tools, tmp_path_factory):  # type: ignore[no-untyped-def]
    """A server whose access tokens live one minute, so the scenario can outlive one."""
    running = start_server(tmp_path_factory.mktemp("e2e-short"), DERMALINK_ACCESS_TOKEN_MINUTES="1")
    yield running
    stop_server(running.process)


def test_an_expired_session_refreshes_or_returns_to_sign_in_keeping_the_case(
    short_token_server, screenshots, lesion_image
):
    result = run_scenario(
        "session",
        short_token_server,
        screenshots,
        mrn="E2E-SESSION-1",
        image=str(lesion_image),
        accessTokenSeconds=60,
    )
    assert result["refreshedWhileWorking"] >= 1
    assert len(_cases_of(short_token_server, result["patientId"])) == 1  # the kept case, sent once
