"""The case flow with images on a real S3 server (SeaweedFS), and a real blob-store outage: the server
is stopped while an analysis waits, the job is postponed with the reason, and completes when it is back."""

from __future__ import annotations

import pytest
from sqlmodel import select

from backend.cases.models import AnalysisJob, CaseImage
from backend.core.clock import utcnow
from backend.users.models import Role
from tests.backend.cases.conftest import ANALYSIS_WAIT_S, hold_jobs, submit
from tests.backend.conftest import audit_rows, make_settings
from tests.backend.storage.seaweedfs import own_seaweedfs  # noqa: F401
from tests.waiting import wait_until

pytestmark = pytest.mark.servers


@pytest.fixture
def settings(database_url, tmp_path, model_repository, own_seaweedfs):  # noqa: F811
    return make_settings(
        database_url,
        tmp_path,
        model_repository=model_repository,
        blob_store_url=own_seaweedfs.server.url(),
        analysis_wait_seconds=ANALYSIS_WAIT_S,
    )


def test_the_whole_flow_on_s3(app, client, consenting, make_user, nevus_jpeg):
    """Submission, analysis, the dermatologist's image view and the answer, with every image on S3."""
    dermatologist = make_user(Role.dermatologist)
    assert type(app.state.blobs).__name__ == "S3BlobStore"
    case = submit(client, consenting, [nevus_jpeg], concern="high").json()
    assert case["analysis"]["status"] == "done" and case["state"] == "awaiting_specialist"
    with app.state.db.session() as session:
        (image,) = session.exec(select(CaseImage)).all()
    assert not app.state.blobs.get(image.blob_key).startswith(b"\xff\xd8")  # on the S3 server, encrypted
    claim = client.post(f"/api/v1/queue/{case['id']}/claim", headers=dermatologist.headers)
    view = client.get(f"/api/v1/cases/{case['id']}/images/{image.id}", headers=dermatologist.headers)
    assert view.status_code == 200 and view.content[:2] == b"\xff\xd8"
    answered = client.post(
        f"/api/v1/cases/{case['id']}/answer",
        headers={**dermatologist.headers, "If-Match": claim.headers["ETag"]},
        json={"diagnosis": "nv", "management": "reassure"},
    )
    assert answered.status_code == 200 and answered.json()["state"] == "answered"
    (viewed,) = audit_rows(app, action="case.image_view")
    assert (viewed.actor_id, viewed.patient_id, viewed.outcome) == (
        dermatologist.user.id,
        consenting["id"],
        "allowed",
    )


def test_a_stopped_blob_store_postpones_the_analysis_until_it_is_back(
    app,
    client,
    consenting,
    nevus_jpeg,
    own_seaweedfs,  # noqa: F811
):
    analyzer = app.state.services.analyzer
    hold_jobs(app)  # the test runs the job
    case = submit(client, consenting, [nevus_jpeg]).json()
    assert case["analysis"]["status"] == "pending"

    own_seaweedfs.stop()  # the store goes away after the upload, before the analysis reads it
    (job_id,) = analyzer.run_due()
    with app.state.db.session() as session:
        job = session.get(AnalysisJob, job_id)
        assert job.status == "pending" and job.attempts == 1
        assert "BlobStoreUnavailable" in job.last_error and "unreachable" in job.last_error
        job.next_attempt_at = utcnow()  # do not wait out the backoff
        session.add(job)
        session.commit()
    read = client.get(f"/api/v1/cases/{case['id']}", headers=consenting["clinic"].clinician.headers).json()
    assert read["state"] == "received" and "unreachable" in read["analysis"]["last_error"]

    own_seaweedfs.start()  # back, same ports, same data

    def retried_until_done() -> bool:
        """A worker's later attempts (backoff skipped): the store may still answer 500 while its volume
        server comes back, which postpones the job again, as it should."""
        with app.state.db.session() as session:
            job = session.get(AnalysisJob, job_id)
            job.next_attempt_at = utcnow()
            session.add(job)
            session.commit()
        analyzer.run_due()
        return analyzer.status(job_id) == "done"

    wait_until(retried_until_done, timeout=120, interval=1, message="the analysis after the store came back")
    read = client.get(f"/api/v1/cases/{case['id']}", headers=consenting["clinic"].clinician.headers).json()
    assert read["analysis"]["status"] == "done" and read["analysis"]["attempts"] >= 2
    assert read["state"] == "analysed" and read["analysis"]["last_error"] is None
    assert len(read["analysis"]["results"]) == 1
