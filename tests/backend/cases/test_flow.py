"""The whole case flow, intake safety, idempotency, consent, faults and the queue's rules."""

from __future__ import annotations

import io
import json
import uuid
from datetime import timedelta

from PIL import Image
from sqlalchemy import func
from sqlmodel import select

from backend.cases.models import AnalysisJob, Case, CaseImage
from backend.core.clock import utcnow
from backend.inference.base import InferenceUnavailable
from tests.backend.cases.conftest import hold_jobs, jpeg_with_gps, submit
from tests.backend.conftest import audit_rows
from tests.waiting import wait_until


def _count(app, model) -> int:  # type: ignore[no-untyped-def]
    with app.state.db.session() as session:
        return session.exec(select(func.count()).select_from(model)).one()


def test_whole_flow_from_submission_to_answer(app, client, consenting, dermatologist, lesion_jpeg):
    clinician = consenting["clinic"].clinician
    response = submit(client, consenting, [lesion_jpeg], concern="high", notes="grew over 3 months")
    assert response.status_code == 201, response.text
    case = response.json()
    assert case["analysis"]["status"] == "done"
    (result,) = case["analysis"]["results"]
    assert set(result["probabilities"]) == {"akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"}
    assert abs(sum(result["probabilities"].values()) - 1) < 1e-4
    assert result["model_name"] == "ham10000_mobilenetv2" and result["inference_ms"] > 0
    assert "does not replace" in case["analysis"]["disclaimer"]
    assert case["triage"]["level"] == "urgent" and case["state"] == "awaiting_specialist"
    assert [t["to_state"] for t in case["transitions"]] == ["received", "analysed", "awaiting_specialist"]

    queue = client.get("/api/v1/queue", headers=dermatologist.headers).json()["items"]
    assert [q["case_id"] for q in queue] == [case["id"]] and "does not replace" in queue[0]["disclaimer"]
    claimed = client.post(f"/api/v1/queue/{case['id']}/claim", headers=dermatologist.headers)
    assert claimed.status_code == 200 and claimed.json()["notes"] == "grew over 3 months"
    etag = claimed.headers["ETag"]
    image_id = claimed.json()["images"][0]["id"]
    image = client.get(f"/api/v1/cases/{case['id']}/images/{image_id}", headers=dermatologist.headers)
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert (
        client.get(f"/api/v1/patients/{consenting['id']}", headers=dermatologist.headers).status_code == 200
    )

    answer = {"diagnosis": "mel", "management": "urgent_referral", "note": "Atypical network; refer."}
    answered = client.post(
        f"/api/v1/cases/{case['id']}/answer", headers={**dermatologist.headers, "If-Match": etag}, json=answer
    )
    assert answered.status_code == 200, answered.text
    read = client.get(f"/api/v1/cases/{case['id']}", headers=clinician.headers).json()
    assert read["state"] == "answered" and read["answer"]["diagnosis"] == "mel"
    assert read["answer"]["note"] == "Atypical network; refer."
    assert client.get("/api/v1/queue", headers=dermatologist.headers).json()["items"] == []

    actions = {e.action for e in audit_rows(app, patient_id=consenting["id"])}
    assert {
        "case.create",
        "case.analyse",
        "case.transition",
        "case.claim",
        "case.view",
        "case.image_view",
        "case.answer",
        "patient.read",
    } <= actions
    with app.state.db.session() as session:
        from backend.audit.verify import verify_chain

        assert verify_chain(session, app.state.db.audit_key).ok


def test_stored_image_has_no_gps_and_is_encrypted(app, client, consenting, lesion_jpeg):
    response = submit(client, consenting, [jpeg_with_gps(lesion_jpeg)])
    assert response.status_code == 201
    with app.state.db.session() as session:
        image = session.exec(select(CaseImage)).one()
        raw = app.state.blobs.get(image.blob_key)
        assert not raw.startswith(b"\xff\xd8")  # ciphertext at rest
        plain = app.state.vault.decrypt(session, uuid.UUID(consenting["id"]), f"blob:{image.blob_key}", raw)
    with Image.open(io.BytesIO(plain)) as decoded:
        assert decoded.format == "JPEG" and len(decoded.getexif()) == 0
    assert b"Exif" not in plain and b"PhoneMaker" not in plain


def test_idempotent_retry_never_creates_a_second_case(app, client, consenting, lesion_jpeg):
    first = submit(client, consenting, [lesion_jpeg], key="retry-key-0001")
    again = submit(client, consenting, [lesion_jpeg], key="retry-key-0001")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    different = submit(client, consenting, [lesion_jpeg], key="retry-key-0001", site="face")
    assert different.status_code == 409
    assert _count(app, Case) == 1


def test_no_analysis_without_consent_and_no_routing_without_sharing(
    app, client, patient, document, lesion_jpeg
):
    refused = submit(client, patient, [lesion_jpeg])
    assert refused.status_code == 409 and "ai_analysis" in refused.json()["detail"]
    assert _count(app, Case) == 0
    client.post(
        f"/api/v1/patients/{patient['id']}/consents",
        headers=patient["clinic"].clinician.headers,
        json={
            "document_id": document["id"],
            "scopes": ["ai_analysis"],
            "method": "verbal",
            "witness_name": "Nurse Joy",
        },
    )
    case = submit(client, patient, [lesion_jpeg], concern="high").json()
    assert case["triage"]["level"] == "urgent" and case["state"] == "analysed"
    assert (
        case["triage"]["sharing_consent_missing"] is True
        and "specialist_sharing" in case["triage"]["message"]
    )


# Hostile uploads through the API: the corpus in tests/backend/cases/test_hostile_corpus.py.


def test_bad_submissions_get_precise_errors(client, consenting, lesion_jpeg):
    too_many = submit(client, consenting, [lesion_jpeg] * 5)
    assert too_many.status_code == 422 and "between 1 and 4" in too_many.json()["detail"]
    bad_site = submit(client, consenting, [lesion_jpeg], site="elbow")
    assert bad_site.status_code == 422 and bad_site.json()["detail"][0]["loc"][:2] == ["metadata", "site"]
    no_key = client.post(
        "/api/v1/cases",
        headers=consenting["clinic"].clinician.headers,
        data={"metadata": "{}"},
        files=[("images", ("a.jpg", lesion_jpeg, "image/jpeg"))],
    )
    assert no_key.status_code == 422
    other_patient = submit(client, {**consenting, "id": str(uuid.uuid4())}, [lesion_jpeg])
    assert other_patient.status_code == 404


def test_inference_outage_delays_the_case_and_it_completes_later(
    app, client, consenting, lesion_jpeg, monkeypatch
):
    provider = app.state.services.classifier

    def down():  # type: ignore[no-untyped-def]
        raise InferenceUnavailable("inference server at 127.0.0.1:1 refused the connection")

    monkeypatch.setattr(app.state.services.analyzer, "classifier", down)
    case = submit(client, consenting, [lesion_jpeg]).json()
    assert case["state"] == "received" and case["analysis"]["status"] == "pending"
    assert "refused the connection" in case["analysis"]["last_error"]
    assert case["analysis"]["next_attempt_at"] is not None

    monkeypatch.setattr(app.state.services.analyzer, "classifier", provider)  # the service is back
    with app.state.db.session() as session:  # skip the backoff wait
        job = session.exec(select(AnalysisJob)).one()
        job.next_attempt_at = utcnow()
        session.add(job)
        session.commit()
    app.state.dispatcher.submit(job.id)

    def analysed():  # type: ignore[no-untyped-def]
        read = client.get(f"/api/v1/cases/{case['id']}", headers=consenting["clinic"].clinician.headers)
        return read.json() if read.json()["analysis"]["status"] == "done" else None

    read = wait_until(analysed, message="the postponed analysis to complete")
    # the embedded runner may also have retried once while the service was still down
    assert read["state"] in ("analysed", "awaiting_specialist") and read["analysis"]["attempts"] >= 2
    assert read["analysis"]["last_error"] is None


def test_a_killed_workers_job_completes_after_restart(app, client, consenting, lesion_jpeg, monkeypatch):
    analyzer = app.state.services.analyzer
    # The path where analysis runs outside the request (RQ workers, Triton): the job is committed first.
    monkeypatch.setattr(app.state.dispatcher, "inline", False)
    hold_jobs(app)  # nobody runs it now
    case = submit(client, consenting, [lesion_jpeg]).json()
    (job_id,) = analyzer.claim_due()  # a worker takes the job... and is killed before finishing
    assert analyzer.status(job_id) == "running"
    assert analyzer.claim_due() == []  # its lease still holds
    with app.state.db.session() as session:
        job = session.get(AnalysisJob, job_id)
        job.lease_expires_at = utcnow() - timedelta(seconds=1)  # ...until it expires
        session.add(job)
        session.commit()
    assert analyzer.run_due() == [job_id]  # the restarted worker
    read = client.get(f"/api/v1/cases/{case['id']}", headers=consenting["clinic"].clinician.headers).json()
    assert read["analysis"]["status"] == "done" and read["analysis"]["attempts"] == 2


def test_claims_are_exclusive_expire_and_answers_need_the_current_version(
    app, client, consenting, make_user, lesion_jpeg
):
    from backend.users.models import Role

    first, second = make_user(Role.dermatologist), make_user(Role.dermatologist)
    case = submit(client, consenting, [lesion_jpeg], concern="high").json()
    claim = client.post(f"/api/v1/queue/{case['id']}/claim", headers=first.headers)
    assert claim.status_code == 200
    assert client.post(f"/api/v1/queue/{case['id']}/claim", headers=second.headers).status_code == 409
    assert client.get(f"/api/v1/cases/{case['id']}", headers=second.headers).status_code == 404
    answer = {"diagnosis": "nv", "management": "monitor", "follow_up_weeks": 12}
    path = f"/api/v1/cases/{case['id']}/answer"
    assert client.post(path, headers=first.headers, json=answer).status_code == 412  # no If-Match
    assert client.post(path, headers={**first.headers, "If-Match": '"999"'}, json=answer).status_code == 412
    assert (
        client.post(
            path, headers={**second.headers, "If-Match": claim.headers["ETag"]}, json=answer
        ).status_code
        == 404
    )

    with app.state.db.session() as session:  # the claim is abandoned and expires
        row = session.get(Case, uuid.UUID(case["id"]))
        row.claim_expires_at = utcnow() - timedelta(minutes=1)
        session.add(row)
        session.commit()
    expired = client.post(path, headers={**first.headers, "If-Match": claim.headers["ETag"]}, json=answer)
    assert expired.status_code == 409 and "expired" in expired.json()["detail"]
    assert [i["case_id"] for i in client.get("/api/v1/queue", headers=second.headers).json()["items"]] == [
        case["id"]
    ]
    reclaim = client.post(f"/api/v1/queue/{case['id']}/claim", headers=second.headers)
    assert reclaim.status_code == 200
    bad = client.post(
        path,
        headers={**second.headers, "If-Match": reclaim.headers["ETag"]},
        json={"diagnosis": "nv", "management": "monitor"},
    )
    assert bad.status_code == 422 and "follow_up_weeks" in bad.json()["detail"]
    ok = client.post(path, headers={**second.headers, "If-Match": reclaim.headers["ETag"]}, json=answer)
    assert ok.status_code == 200 and ok.json()["answer"]["follow_up_weeks"] == 12


def test_queue_orders_by_urgency_then_waiting_time(
    app, client, consenting, dermatologist, lesion_jpeg, monkeypatch
):
    from backend.cases.triage import TriageRules

    # Only the clinician's inputs decide here, whatever the model says about the image.
    monkeypatch.setattr(
        app.state.services.analyzer,
        "rules",
        TriageRules(malignant_threshold=1.01, low_confidence_threshold=0.0),
    )
    review = submit(client, consenting, [lesion_jpeg], wants_specialist=True).json()
    urgent = submit(client, consenting, [lesion_jpeg], concern="high").json()
    assert (review["triage"]["level"], urgent["triage"]["level"]) == ("review", "urgent")
    items = client.get("/api/v1/queue", headers=dermatologist.headers).json()["items"]
    ids = [i["case_id"] for i in items]
    assert ids == [urgent["id"], review["id"]]  # urgent first, although it waited less
    page = client.get("/api/v1/queue", headers=dermatologist.headers, params={"limit": 1}).json()
    rest = client.get(
        "/api/v1/queue", headers=dermatologist.headers, params={"limit": 1, "cursor": page["next_cursor"]}
    ).json()
    assert [i["case_id"] for i in page["items"] + rest["items"]] == ids


def test_research_export_only_with_research_consent(app, client, consenting, document, lesion_jpeg, tmp_path):
    from backend.research import export_research

    submit(client, consenting, [lesion_jpeg])
    without = export_research(app.state.services, tmp_path / "a")
    assert (without.patients, without.images, without.skipped_patients) == (0, 0, 1)
    client.post(
        f"/api/v1/patients/{consenting['id']}/consents",
        headers=consenting["clinic"].clinician.headers,
        json={
            "document_id": document["id"],
            "scopes": ["research"],
            "method": "verbal",
            "witness_name": "Nurse Joy",
        },
    )
    exported = export_research(app.state.services, tmp_path / "b")
    assert (exported.patients, exported.images) == (1, 1)
    (image,) = (tmp_path / "b" / "images").iterdir()
    assert consenting["id"] not in image.name and image.read_bytes()[:2] == b"\xff\xd8"
    (exported_event,) = audit_rows(
        app, action="research.export"
    )  # one per exported patient, only the second run
    assert (exported_event.patient_id, exported_event.outcome) == (consenting["id"], "allowed")
    assert json.loads(exported_event.detail) == {"images": 1}
