"""The case flow with DERMALINK_INFERENCE=triton against the real Triton server, and a Triton outage:
cases wait (visible status, /readyz says why) and complete once Triton is back. Nothing is lost."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from backend.cases.models import AnalysisJob
from backend.core.clock import utcnow
from backend.inference.triton_server import TritonServer
from tests.backend.cases.conftest import ANALYSIS_WAIT_S, submit
from tests.backend.conftest import make_settings
from tests.triton.conftest import (  # noqa: F401
    derived_repo,
    exported_repo,
    restart_on_same_ports,
    start_fresh,
    triton_install,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.triton
MODEL = "ham10000_mobilenetv2"


@pytest.fixture(scope="module")
def triton(triton_install, derived_repo, tmp_path_factory):  # noqa: F811
    server = TritonServer(
        derived_repo,
        model_control="explicit",
        load_models=[MODEL],
        build_dir=tmp_path_factory.mktemp("triton"),
        exit_timeout_s=2,
    )
    start_fresh(server)
    yield server
    server.stop()


@pytest.fixture
def settings(database_url, tmp_path, exported_repo, triton, monkeypatch):  # noqa: F811
    monkeypatch.setenv("DERMALINK_TRITON_URL", triton.grpc_url)
    monkeypatch.setenv("DERMALINK_TRITON_TIMEOUT_S", "3")
    monkeypatch.setenv("DERMALINK_TRITON_RETRIES", "1")
    return make_settings(
        database_url,
        tmp_path,
        model_repository=exported_repo,
        inference="triton",
        analysis_wait_seconds=ANALYSIS_WAIT_S,
    )


def _wait_done(client, case_id, headers):  # type: ignore[no-untyped-def]
    def done():  # type: ignore[no-untyped-def]
        read = client.get(f"/api/v1/cases/{case_id}", headers=headers).json()
        return read if read["analysis"]["status"] == "done" else None

    return wait_until(done, timeout=120, message=f"case {case_id}'s analysis to complete")


def test_case_flow_through_triton_and_recovery_after_an_outage(
    app, client, consenting, dermatologist, lesion_jpeg, triton
):
    headers = consenting["clinic"].clinician.headers
    case = submit(client, consenting, [lesion_jpeg], concern="high").json()
    assert case["analysis"]["status"] == "done", case["analysis"]
    (result,) = case["analysis"]["results"]
    assert result["model_name"] == MODEL and result["model_version"] == "1"
    assert case["state"] == "awaiting_specialist"
    assert client.post(f"/api/v1/queue/{case['id']}/claim", headers=dermatologist.headers).status_code == 200
    assert "triton" in client.get("/readyz").json()["checks"]["model"]["detail"]

    triton.stop()  # Triton goes away mid-run
    waiting = submit(client, consenting, [lesion_jpeg]).json()
    assert waiting["state"] == "received" and waiting["analysis"]["status"] == "pending"
    assert waiting["analysis"]["last_error"] and "unavailable" in waiting["analysis"]["last_error"]
    not_ready = client.get("/readyz")
    assert not_ready.status_code == 503 and not not_ready.json()["checks"]["model"]["ok"]

    restart_on_same_ports(triton)  # back on the same ports
    with app.state.db.session() as session:  # do not wait out the backoff
        for job in session.exec(select(AnalysisJob).where(AnalysisJob.status == "pending")):
            job.next_attempt_at = utcnow() - timedelta(seconds=1)
            session.add(job)
        session.commit()
    app.state.dispatcher.submit(None)
    done = _wait_done(client, waiting["id"], headers)
    assert done["analysis"]["status"] == "done" and done["analysis"]["attempts"] >= 2
    assert done["analysis"]["results"][0]["model_name"] == MODEL
    assert client.get("/readyz").status_code == 200
