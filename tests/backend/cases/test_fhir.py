"""FHIR R4 exports: a case as a Bundle, and the audit trail as BALP-shaped AuditEvents.

Every resource is parsed back with the `fhir.resources` R4B model of its type (the round trip), and
the values that matter to the hospital (probabilities, the answer, the consent) are compared with what
the JSON API says about the same case.
"""

from __future__ import annotations

import json

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from backend.fhir import codes
from backend.users.models import Role
from tests.backend.cases.conftest import IDENTITY, submit
from tests.backend.conftest import audit_rows

BASE = "https://dermalink.example.org/fhir"


def parse(body: bytes) -> tuple[Bundle, dict[str, list]]:
    """Parse a Bundle, validate every entry again with its own model, and group resources by type."""
    bundle = Bundle.model_validate_json(body)
    by_type: dict[str, list] = {}
    for entry in bundle.entry or []:
        resource = entry.resource
        model = get_fhir_model_class(resource.get_resource_type())
        model.model_validate(resource.model_dump(mode="json", exclude_none=True))
        by_type.setdefault(resource.get_resource_type(), []).append(resource)
    return bundle, by_type


@pytest.fixture
def answered_case(client, consenting, dermatologist, lesion_jpeg):  # type: ignore[no-untyped-def]
    case = submit(client, consenting, [lesion_jpeg], concern="high").json()
    assert case["state"] == "awaiting_specialist", case
    claim = client.post(f"/api/v1/queue/{case['id']}/claim", headers=dermatologist.headers)
    answer = {
        "diagnosis": "bcc",
        "management": "monitor",
        "follow_up_weeks": 6,
        "note": "Pearly border; review in six weeks.",
    }
    response = client.post(
        f"/api/v1/cases/{case['id']}/answer",
        headers={**dermatologist.headers, "If-Match": claim.headers["ETag"]},
        json=answer,
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_case_bundle_round_trip(app, client, consenting, dermatologist, answered_case):
    clinician = consenting["clinic"].clinician
    case_id = answered_case["id"]
    response = client.get(f"/api/v1/cases/{case_id}/fhir", headers=clinician.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    bundle, resources = parse(response.content)
    assert bundle.type == "collection"
    assert {"Patient", "Organization", "Consent", "Media", "Device", "Observation"} <= set(resources)
    assert {"DiagnosticReport", "Provenance", "Practitioner"} <= set(resources)
    full_urls = {e.fullUrl for e in bundle.entry}

    # Patient: the clinician may see the identity; the MRN carries the clinic's system.
    (patient,) = resources["Patient"]
    mrn = [i for i in patient.identifier if i.type and i.type.text == "MRN"]
    assert [i.value for i in mrn] == [IDENTITY["medical_record_number"]]
    assert mrn[0].system == f"{BASE}/clinic/{consenting['clinic'].id}/mrn"
    assert patient.name[0].text == IDENTITY["full_name"]

    # Media: by reference to the authenticated image URL, never inline; the URL serves the image.
    (media,) = resources["Media"]
    assert media.content.data is None
    image_id = answered_case["images"][0]["id"]
    assert media.content.url.endswith(f"/api/v1/cases/{case_id}/images/{image_id}")
    path = media.content.url.split("://", 1)[1].split("/", 1)[1]
    assert client.get("/" + path).status_code == 401
    assert client.get("/" + path, headers=clinician.headers).content[:2] == b"\xff\xd8"
    assert {c.code for c in media.bodySite.coding} >= {"back", "77568009"}

    # Observation: the 7 probabilities survive, with the model as the device and the triage level.
    (observation,) = resources["Observation"]
    (result,) = answered_case["analysis"]["results"]
    probabilities = {}
    triage = None
    for component in observation.component:
        local = component.code.coding[0]
        if component.valueQuantity is not None:
            assert component.valueQuantity.system == codes.UCUM and component.valueQuantity.code == "1"
            probabilities[local.code] = float(component.valueQuantity.value)
        else:
            triage = component.valueCodeableConcept.coding[0].code
    assert probabilities.keys() == result["probabilities"].keys()
    for label, p in result["probabilities"].items():
        assert probabilities[label] == pytest.approx(p, abs=1e-6)
    assert triage == answered_case["triage"]["level"]
    assert observation.valueCodeableConcept.coding[0].code == result["top_label"]
    assert "decision support" in observation.note[0].text.lower()
    (device,) = resources["Device"]
    assert observation.device.reference == f"urn:uuid:{device.id}"
    assert device.deviceName[0].name == result["model_name"]
    assert device.version[0].value == result["model_version"]
    assert observation.derivedFrom[0].reference == f"urn:uuid:{media.id}"

    # DiagnosticReport: the dermatologist's answer (diagnosis coded, management, note) survives.
    (report,) = resources["DiagnosticReport"]
    conclusion = {(c.system, c.code) for c in report.conclusionCode[0].coding}
    assert (f"{BASE}/CodeSystem/lesion-class", "bcc") in conclusion and (
        codes.SNOMED,
        "254701007",
    ) in conclusion
    management = {e.url.rsplit("/", 1)[1]: e for e in report.extension}
    assert management["management"].valueCoding.code == "monitor"
    assert management["follow-up"].valueDuration.value == 6
    assert "Pearly border" in report.conclusion
    assert report.result[0].reference == f"urn:uuid:{observation.id}"
    assert report.performer[0].reference in full_urls

    # Consent: scopes, method, document version and period.
    consents = {c.provision.code[0].coding[0].code: c for c in resources["Consent"]}
    assert set(consents) == {"ai_analysis", "specialist_sharing"}
    for consent in consents.values():
        assert consent.status == "active" and consent.provision.period.start is not None
        assert consent.provision.period.end is None
        assert consent.extension[0].valueCode == "verbal"
        assert "(version 2026.1)" in consent.sourceAttachment.title
        assert consent.patient.reference == f"urn:uuid:{patient.id}"

    # Provenance: every target and agent resolves inside the bundle.
    for provenance in resources["Provenance"]:
        for target in provenance.target:
            assert target.reference in full_urls
        assert provenance.agent[0].who.reference in full_urls

    # The dermatologist who answered reads the same case (the same resources, the same answer).
    theirs = client.get(f"/api/v1/cases/{case_id}/fhir", headers=dermatologist.headers)
    assert theirs.status_code == 200, theirs.text
    _, their_resources = parse(theirs.content)
    assert their_resources["DiagnosticReport"][0].conclusion == report.conclusion
    assert {r.id for r in their_resources["Observation"]} == {observation.id}

    # Audited like the JSON read, plus the identity read.
    views = [e for e in audit_rows(app, action="case.view", resource_id=case_id)]
    assert any(
        json.loads(e.detail).get("format") == "fhir" and e.actor_id == clinician.user.id for e in views
    )
    assert any(e.actor_id == clinician.user.id for e in audit_rows(app, action="patient.read"))


def test_withdrawn_consent_is_inactive_with_an_end(client, consenting, dermatologist, answered_case):
    clinician = consenting["clinic"].clinician
    withdrawn = client.post(
        f"/api/v1/patients/{consenting['id']}/consents/withdraw",
        headers=clinician.headers,
        json={"scopes": ["specialist_sharing"], "reason": "changed their mind"},
    )
    assert withdrawn.status_code == 200, withdrawn.text
    response = client.get(f"/api/v1/cases/{answered_case['id']}/fhir", headers=clinician.headers)
    _, resources = parse(response.content)
    consents = {c.provision.code[0].coding[0].code: c for c in resources["Consent"]}
    assert consents["specialist_sharing"].status == "inactive"
    assert consents["specialist_sharing"].provision.period.end is not None
    assert consents["ai_analysis"].status == "active"


def test_unanswered_case_has_no_report_and_refusals_are_audited(
    app, client, consenting, make_user, lesion_jpeg
):
    clinician = consenting["clinic"].clinician
    case = submit(client, consenting, [lesion_jpeg]).json()
    response = client.get(f"/api/v1/cases/{case['id']}/fhir", headers=clinician.headers)
    _, resources = parse(response.content)
    assert "DiagnosticReport" not in resources and len(resources["Observation"]) == 1
    # A dermatologist the case was never routed to, and another clinic's clinician: not found, audited.
    other = make_user(Role.dermatologist)
    assert client.get(f"/api/v1/cases/{case['id']}/fhir", headers=other.headers).status_code == 404
    denied = audit_rows(app, action="case.view", outcome="denied")
    assert any(e.actor_id == other.user.id and e.resource_id == case["id"] for e in denied)


def test_audit_events_as_balp_audit_events(app, client, consenting, answered_case):
    admin = consenting["admin"]
    response = client.get("/api/v1/audit/events.fhir", params={"limit": 500}, headers=admin.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    bundle, resources = parse(response.content)
    assert bundle.type == "searchset" and set(resources) == {"AuditEvent"}
    events = resources["AuditEvent"]
    rows = {str(r.id): r for r in audit_rows(app)}
    assert {e.id for e in events} <= set(rows)
    for event in events:
        row = rows[event.id]
        assert event.meta.profile == [codes.BALP_PROFILE]
        assert event.outcome == {"allowed": "0", "denied": "4", "failed": "8"}[row.outcome]
        assert event.subtype[-1].code == row.action
        assert event.agent[0].requestor is True
        patients = [e for e in event.entity if e.role and e.role.code == "1"]
        if row.patient_id:
            assert patients[0].what.reference == f"Patient/{row.patient_id}"
        else:
            assert patients == []
    answer = next(e for e in events if e.subtype[-1].code == "case.answer")
    assert answer.action == "C" and answer.type.code == "rest"
    login = next(e for e in events if e.subtype[-1].code == "auth.login")
    assert login.type.code == "110114" and login.subtype[0].code == "110122"

    # Filters and the cursor work as on the JSON route; the export itself is audited.
    page = client.get(
        "/api/v1/audit/events.fhir", params={"action": "case.", "limit": 2}, headers=admin.headers
    )
    first, _ = parse(page.content)
    assert len(first.entry) == 2 and all(e.resource.subtype[-1].code.startswith("case.") for e in first.entry)
    next_url = first.link[0].url
    second, _ = parse(client.get(next_url, headers=admin.headers).content)
    assert {e.resource.id for e in second.entry}.isdisjoint({e.resource.id for e in first.entry})
    searches = audit_rows(app, action="audit.search")
    assert any(json.loads(s.detail).get("format") == "fhir" for s in searches)
