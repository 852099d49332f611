"""A case's life after submission: close, release, consent withdrawn before the job runs, a non-retryable
inference error, the stale-lease write guard, and concurrency (one Idempotency-Key twice at once; two
dermatologists claiming at once)."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta

from sqlmodel import select

from backend.cases.models import AnalysisJob, AnalysisResult, Case
from backend.core.clock import utcnow
from backend.inference.base import InferenceRejected
from backend.users.models import Role
from tests.backend.cases.conftest import hold_jobs, submit
from tests.backend.conftest import audit_rows


def _read(client, case_id, headers):  # type: ignore[no-untyped-def]
    response = client.get(f"/api/v1/cases/{case_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response


def _one(app, **where):  # type: ignore[no-untyped-def]
    (row,) = audit_rows(app, **where)
    return row


def test_the_clinician_closes_a_routine_case_and_an_answered_one(
    app, client, consenting, make_user, nevus_jpeg
):
    clinician = consenting["clinic"].clinician
    routine = submit(client, consenting, [nevus_jpeg]).json()
    assert routine["state"] == "analysed" and routine["triage"]["level"] == "routine"
    path = f"/api/v1/cases/{routine['id']}/close"
    assert client.post(path, headers=clinician.headers).status_code == 412  # no If-Match
    etag = _read(client, routine["id"], clinician.headers).headers["ETag"]
    closed = client.post(path, headers={**clinician.headers, "If-Match": etag})
    assert closed.status_code == 200, closed.text
    assert closed.json()["state"] == "closed" and closed.headers["ETag"] != etag
    assert [t["to_state"] for t in closed.json()["transitions"]] == ["received", "analysed", "closed"]
    event = audit_rows(app, action="case.transition", resource_id=routine["id"])[-1]
    assert (event.actor_id, event.patient_id, event.outcome) == (
        clinician.user.id,
        consenting["id"],
        "allowed",
    )
    assert json.loads(event.detail) == {"from": "analysed", "to": "closed"}
    again = client.post(path, headers={**clinician.headers, "If-Match": closed.headers["ETag"]})
    assert again.status_code == 409 and "closed cannot be closed" in again.json()["detail"]

    dermatologist = make_user(Role.dermatologist)
    urgent = submit(client, consenting, [nevus_jpeg], concern="high").json()
    claim = client.post(f"/api/v1/queue/{urgent['id']}/claim", headers=dermatologist.headers)
    client.post(
        f"/api/v1/cases/{urgent['id']}/answer",
        headers={**dermatologist.headers, "If-Match": claim.headers["ETag"]},
        json={"diagnosis": "nv", "management": "reassure"},
    ).raise_for_status()
    etag = _read(client, urgent["id"], clinician.headers).headers["ETag"]
    closed = client.post(
        f"/api/v1/cases/{urgent['id']}/close", headers={**clinician.headers, "If-Match": etag}
    )
    assert closed.status_code == 200 and closed.json()["state"] == "closed"
    assert closed.json()["answer"]["diagnosis"] == "nv"  # the answer stays with the closed case


def test_release_returns_the_case_to_the_queue(app, client, consenting, make_user, nevus_jpeg):
    first, second = make_user(Role.dermatologist), make_user(Role.dermatologist)
    case = submit(client, consenting, [nevus_jpeg], concern="high").json()
    assert client.post(f"/api/v1/queue/{case['id']}/claim", headers=first.headers).status_code == 200
    assert client.get("/api/v1/queue", headers=second.headers).json()["items"] == []  # claimed: hidden
    released = client.post(f"/api/v1/queue/{case['id']}/release", headers=first.headers)
    assert released.status_code == 200 and released.json()["state"] == "awaiting_specialist"
    queue = client.get("/api/v1/queue", headers=second.headers).json()["items"]
    assert [i["case_id"] for i in queue] == [case["id"]]
    event = _one(app, action="case.release")
    assert (event.actor_id, event.resource_id, event.patient_id, event.outcome) == (
        first.user.id,
        case["id"],
        consenting["id"],
        "allowed",
    )
    # released means released: the first may no longer answer, the second may claim at once
    assert client.post(f"/api/v1/queue/{case['id']}/release", headers=first.headers).status_code == 404
    assert client.post(f"/api/v1/queue/{case['id']}/claim", headers=second.headers).status_code == 200
    with app.state.db.session() as session:
        assert session.get(Case, uuid.UUID(case["id"])).claimed_by == second.user.id


def _held_job(app, client, consenting, jpeg, monkeypatch, **metadata):  # type: ignore[no-untyped-def]
    """Submit with nobody running jobs, so the test decides when (and how) the job runs."""
    hold_jobs(app)
    case = submit(client, consenting, [jpeg], **metadata).json()
    assert case["analysis"]["status"] == "pending" and case["state"] == "received"
    return case


def test_consent_withdrawn_before_the_job_runs_stops_the_analysis(
    app, client, consenting, nevus_jpeg, monkeypatch
):
    clinician = consenting["clinic"].clinician
    case = _held_job(app, client, consenting, nevus_jpeg, monkeypatch)
    withdrawn = client.post(
        f"/api/v1/patients/{consenting['id']}/consents/withdraw",
        headers=clinician.headers,
        json={"scopes": ["ai_analysis"], "reason": "patient changed their mind"},
    )
    assert withdrawn.status_code == 200, withdrawn.text
    (job_id,) = app.state.services.analyzer.run_due()
    assert app.state.services.analyzer.status(job_id) == "failed"
    read = _read(client, case["id"], clinician.headers).json()
    assert read["analysis"]["status"] == "failed" and "ai_analysis" in read["analysis"]["last_error"]
    assert read["analysis"]["results"] == [] and read["state"] == "received"
    with app.state.db.session() as session:
        assert session.exec(select(AnalysisResult)).all() == []  # the model never saw the image
    failed = _one(app, action="case.analyse")
    assert (failed.outcome, failed.actor_id, failed.patient_id) == ("failed", None, consenting["id"])
    assert "ai_analysis" in failed.reason


def test_a_non_retryable_inference_error_fails_the_job_at_once(
    app, client, consenting, nevus_jpeg, monkeypatch
):
    case = _held_job(app, client, consenting, nevus_jpeg, monkeypatch)

    class Rejecting:
        def predict_batch(self, images):  # type: ignore[no-untyped-def]
            raise InferenceRejected("model expects shape [-1, 224, 224, 3]")

    monkeypatch.setattr(app.state.services.analyzer, "classifier", Rejecting)
    (job_id,) = app.state.services.analyzer.run_due()
    with app.state.db.session() as session:
        job = session.get(AnalysisJob, job_id)
        assert (job.status, job.attempts, job.lease_expires_at) == ("failed", 1, None)
        assert job.last_error == "inference rejected the request: model expects shape [-1, 224, 224, 3]"
    assert app.state.services.analyzer.run_due() == []  # not retried
    failed = _one(app, action="case.analyse")
    assert (failed.outcome, failed.resource_id, failed.patient_id) == ("failed", case["id"], consenting["id"])


def test_a_worker_whose_lease_was_taken_over_writes_nothing(app, client, consenting, nevus_jpeg, monkeypatch):
    """Worker A's inference outlives its lease; worker B takes the job over and finishes it; A's late
    write must not store a second set of results or change the job."""
    analyzer = app.state.services.analyzer
    case = _held_job(app, client, consenting, nevus_jpeg, monkeypatch)
    real = analyzer.classifier
    takeover = {"done": False}

    class SlowWorkerA:
        def predict_batch(self, images):  # type: ignore[no-untyped-def]
            if not takeover["done"]:  # while A is inside inference...
                takeover["done"] = True
                with app.state.db.session() as session:  # ...its lease runs out...
                    job = session.exec(select(AnalysisJob)).one()
                    job.lease_expires_at = utcnow() - timedelta(seconds=1)
                    session.add(job)
                    session.commit()
                assert analyzer.run_due() == [job.id]  # ...and worker B runs the job to the end
            return real().predict_batch(images)

    monkeypatch.setattr(analyzer, "classifier", SlowWorkerA)
    # B runs inside A's model call here, so they must not share the in-process batcher (two real workers
    # are two threads or processes; this test is about the lease guard, not batching)
    monkeypatch.setattr(analyzer, "batcher", None)
    (job_id,) = analyzer.claim_due()
    assert analyzer.run(job_id) == "done"  # A reports the job's state, B's result
    with app.state.db.session() as session:
        job = session.get(AnalysisJob, job_id)
        assert (job.status, job.attempts) == ("done", 2)
        assert len(session.exec(select(AnalysisResult)).all()) == 1  # B's only
    assert len(audit_rows(app, action="case.analyse")) == 1
    read = _read(client, case["id"], consenting["clinic"].clinician.headers).json()
    assert read["state"] == "analysed" and [t["to_state"] for t in read["transitions"]] == [
        "received",
        "analysed",
    ]


def test_one_idempotency_key_racing_twice_makes_one_case(app, client, consenting, nevus_jpeg, monkeypatch):
    """Both requests look the key up before either commits (forced here, so the race is certain): the
    loser's insert hits the unique index and it answers with the winner's case."""
    service = app.state.services.cases
    real = service._by_idempotency_key
    lookups = {"n": 0}

    def raced(session, actor, key):  # type: ignore[no-untyped-def]
        lookups["n"] += 1
        return None if lookups["n"] <= 2 else real(session, actor, key)  # both first looks see nothing

    monkeypatch.setattr(service, "_by_idempotency_key", raced)
    first = submit(client, consenting, [nevus_jpeg], key="race-key-000001")
    second = submit(client, consenting, [nevus_jpeg], key="race-key-000001")
    assert (first.status_code, second.status_code) == (201, 200), second.text
    assert second.json()["id"] == first.json()["id"]
    with app.state.db.session() as session:
        assert (
            len(session.exec(select(Case)).all()) == 1 and len(session.exec(select(AnalysisJob)).all()) == 1
        )
    assert list(app.state.blobs.iter_keys(f"patients/{consenting['id']}/images")) != []
    assert len(audit_rows(app, action="case.create")) == 1


def test_two_identical_submissions_at_once_make_one_case(app, client, consenting, nevus_jpeg):
    barrier, responses = threading.Barrier(2), []

    def send() -> None:
        barrier.wait(timeout=60)
        responses.append(submit(client, consenting, [nevus_jpeg], key="race-key-000002"))

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert sorted(r.status_code for r in responses) == [200, 201], [r.text for r in responses]
    assert responses[0].json()["id"] == responses[1].json()["id"]
    with app.state.db.session() as session:
        assert len(session.exec(select(Case)).all()) == 1


def test_two_dermatologists_claiming_at_once_one_wins(app, client, consenting, make_user, nevus_jpeg):
    dermatologists = [make_user(Role.dermatologist), make_user(Role.dermatologist)]
    case = submit(client, consenting, [nevus_jpeg], concern="high").json()
    barrier, responses = threading.Barrier(2), {}

    def claim(account) -> None:  # type: ignore[no-untyped-def]
        barrier.wait(timeout=60)
        responses[account.user.id] = client.post(f"/api/v1/queue/{case['id']}/claim", headers=account.headers)

    threads = [threading.Thread(target=claim, args=(d,)) for d in dermatologists]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    statuses = sorted(r.status_code for r in responses.values())
    assert statuses == [200, 409], {k: r.text for k, r in responses.items()}
    (winner,) = [uid for uid, r in responses.items() if r.status_code == 200]
    with app.state.db.session() as session:
        assert session.get(Case, uuid.UUID(case["id"])).claimed_by == winner
    assert [e.actor_id for e in audit_rows(app, action="case.claim")] == [winner]
