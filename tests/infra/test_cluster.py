"""The production topology on loopback (`dermalink cluster up`), broken under load, then taken down.

One cluster for the module (PostgreSQL run database, own Redis, SeaweedFS, Triton, 2 APIs behind HAProxy,
2 workers, Prometheus). While four clinicians submit real HAM10000 images at a steady, modest rate, the
test SIGKILLs an API process (and restarts it), SIGKILLs a worker in the middle of an analysis (and
restarts it), restarts Triton and restarts Redis. Clients retry failed attempts with the same
Idempotency-Key. Afterwards every submission exists once with its image and exactly one completed
analysis, the audit chain verifies, and the share of failed attempts during each fault is printed.
The last test takes the cluster down and checks that nothing is left behind.
"""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from backend.cluster.load import PASSWORD, LoadGenerator, load_images, prepare
from backend.cluster.topology import STATE_FILE, Cluster, ClusterSpec, group_members, up
from backend.config import REPO_ROOT
from backend.db import make_engine

pytestmark = [pytest.mark.slow, pytest.mark.triton, pytest.mark.timeout(900)]

RATE = 2.0  # submissions per second, all clinicians together
CLINICIANS = 4
MAX_SUBMISSIONS = 400  # a ceiling: the phases below take about 80 s at RATE


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Cluster:
    spec = ClusterSpec(
        apis=2,
        workers=2,
        run_dir=tmp_path_factory.mktemp("cluster") / "run",
        analysis_lease_seconds=15,  # a killed worker's job runs again after this long
        worker_sweep_seconds=3,
    )
    started = up(spec, log=lambda _msg: None)
    yield started
    if (started.run_dir / STATE_FILE).exists():  # the last test normally took it down already
        started.down()


def _wait(condition, seconds: float, what: str, step: float = 0.25):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    pytest.fail(f"timed out after {seconds:.0f} s waiting for {what}")


def test_cluster_runs_every_part_with_production_settings(cluster):
    rows = {row["part"]: row for row in cluster.status()}
    assert set(rows) == {
        "postgresql",
        "redis",
        "s3",
        "triton",
        "api-1",
        "api-2",
        "worker-1",
        "worker-2",
        "lb",
        "prometheus",
    }
    assert all(row["healthy"] for row in rows.values()), rows
    env = cluster.env
    assert env["DERMALINK_ENVIRONMENT"] == "production" and env["DERMALINK_AUTO_MIGRATE"] == "false"
    assert env["DERMALINK_DATABASE_URL"].startswith("postgresql://")
    assert env["DERMALINK_INFERENCE"] == "triton" and env["DERMALINK_QUEUE"] == "redis"
    for secret in ("master.key", "secret_key", "metrics.token"):
        assert (cluster.run_dir / "secrets" / secret).stat().st_mode & 0o777 == 0o600
    assert (cluster.run_dir / STATE_FILE).stat().st_mode & 0o777 == 0o600
    with psycopg.connect(env["DERMALINK_DATABASE_URL"]) as conn:  # one `dermalink db upgrade` ran
        assert conn.execute("SELECT count(*) FROM alembic_version").fetchone()[0] == 1

    ready = httpx.get(f"{cluster.url}/readyz", timeout=5).json()
    assert ready["status"] == "ready" and "triton" in ready["checks"]["model"]["detail"]

    # `dermalink cluster status` prints each part with its PID and port.
    out = subprocess.run(
        [sys.executable, "-m", "backend.cli", "cluster", "status", "--run-dir", str(cluster.run_dir)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in rows:
        assert name in out
    assert str(cluster.parts["api-1"].pid) in out and str(cluster.parts["lb"].port) in out

    # Prometheus scrapes Triton (and HAProxy); the API's /metrics target is configured with a bearer token.
    prometheus = f"http://127.0.0.1:{cluster.parts['prometheus'].port}"

    def scraped() -> dict[str, str]:
        targets = httpx.get(f"{prometheus}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        return {t["labels"]["job"]: t["health"] for t in targets if t["health"] == "up"}

    _wait(lambda: {"triton", "haproxy"} <= set(scraped()), 60, "Prometheus to scrape Triton and HAProxy")
    config = (cluster.run_dir / "config" / "prometheus.yml").read_text()
    assert "credentials_file" in config and "dermalink-api" in config


def _busy_worker(cluster: Cluster, engine) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """A worker that is analysing right now: RQ names its current job, and the database row is running."""
    from redis import Redis
    from rq import Worker

    from backend.cases.models import AnalysisJob

    redis = Redis(host="127.0.0.1", port=cluster.parts["redis"].port)
    by_pid = {p.pid: p.name for p in cluster.named("worker")}

    def find():  # type: ignore[no-untyped-def]
        for worker in Worker.all(connection=redis):
            job = worker.get_current_job_id()
            if job and worker.pid in by_pid:
                with Session(engine) as session:
                    row = session.get(AnalysisJob, uuid.UUID(job.removeprefix("analysis-")))
                    if row is not None and row.status == "running":
                        return by_pid[worker.pid], job.removeprefix("analysis-")
        return None

    return _wait(find, 60, "a worker in the middle of an analysis", step=0.01)


def _kill_worker_mid_analysis(cluster: Cluster, engine) -> str:  # type: ignore[no-untyped-def]
    """SIGKILL a worker while its job is running, restart it, and return the job's id. If the job had
    already finished when the signal landed (a race of milliseconds), try again with another job."""
    from backend.cases.models import AnalysisJob

    for _ in range(5):
        victim, job_id = _busy_worker(cluster, engine)
        cluster.signal_part(victim, signal.SIGKILL)
        cluster.restart_part(victim, graceful=False)
        with Session(engine) as session:
            job = session.get(AnalysisJob, uuid.UUID(job_id))
            if job.status == "running" and job.lease_expires_at is not None:
                return job_id  # the dead worker still holds it: killed mid-analysis
    pytest.fail("could not catch a worker in the middle of an analysis in 5 tries")


def _report(load: LoadGenerator) -> str:
    lines = ["", "failed attempts per phase (clients retry with the same Idempotency-Key):"]
    lines.append(f"  {'phase':<16} {'attempts':>8} {'failed':>7} {'fraction':>9}  what failed")
    for phase, row in load.attempts_by_phase().items():
        lines.append(
            f"  {phase:<16} {row['attempts']:>8} {row['failed']:>7} {row['failed_fraction']:>9.1%}  "
            f"{json.dumps(row['kinds'])}"
        )
    healthy = load.latency_summary("healthy")
    lines.append(
        f"healthy phase: {healthy['submissions']} submissions, p50 {healthy['p50_ms']:.0f} ms, "
        f"p95 {healthy['p95_ms']:.0f} ms (upload to answer, including retries)"
    )
    return "\n".join(lines)


def test_faults_under_load_lose_nothing_and_duplicate_nothing(cluster, shared_dir, capsys):
    from backend.cases.models import AnalysisJob, AnalysisResult, Case, CaseImage
    from backend.users.models import User

    engine = make_engine(cluster.env["DERMALINK_DATABASE_URL"])
    clinicians = prepare(cluster.env, CLINICIANS)
    images = load_images(shared_dir / "data" / "ham10000" / "full_size")
    load = LoadGenerator(
        cluster.url, clinicians, images, rate=RATE, retry_deadline_s=150, max_submissions=MAX_SUBMISSIONS
    )
    load.start()
    try:
        time.sleep(10)  # healthy

        load.phase = "kill-api"  # SIGKILL: HAProxy's checks take it out; restarted on the same port
        cluster.signal_part("api-1", signal.SIGKILL)
        time.sleep(4)
        cluster.restart_part("api-1", graceful=False)
        time.sleep(3)  # HAProxy's `rise 2` at 1 s intervals

        load.phase = "kill-worker"
        job_id = _kill_worker_mid_analysis(cluster, engine)
        time.sleep(4)

        load.phase = "restart-triton"
        cluster.restart_part("triton")
        time.sleep(4)

        load.phase = (
            "restart-redis"  # it keeps nothing on disk: queued jobs are gone, the sweepers re-enqueue
        )
        cluster.restart_part("redis")
        time.sleep(4)

        load.phase = "after"
        time.sleep(6)
    finally:
        load.stop()
    with capsys.disabled():
        print(_report(load))

    subs = load.submissions
    assert subs and all(s.ok for s in subs), [
        (s.key, s.status, s.attempts[-1].error) for s in subs if not s.ok
    ]
    # Whether a fault lands while a request is in flight depends on timing (the report above shows the
    # failed attempts per phase); what must hold every time is that nothing is lost or duplicated.
    assert all(s.case_id and len(s.image_ids) == 1 for s in subs)

    def pending() -> int:
        with Session(engine) as session:
            return session.exec(
                select(func.count()).select_from(AnalysisJob).where(AnalysisJob.status != "done")
            ).one()

    _wait(lambda: pending() == 0, 180, "every analysis to complete (leases expire, sweepers re-enqueue)", 1)

    with Session(engine) as session:
        emails = {c.email for c in clinicians}
        users = {u.id: u.email for u in session.exec(select(User).where(User.email.in_(emails)))}  # type: ignore[attr-defined]
        cases = session.exec(select(Case).where(Case.created_by.in_(list(users)))).all()  # type: ignore[attr-defined]
        by_key = {(users[c.created_by], c.idempotency_key): c for c in cases}
        # No duplicates: one case per submission (retries included), and no case nobody asked for.
        assert len(cases) == len(subs) == len(by_key)
        assert set(by_key) == {(s.clinician, s.key) for s in subs}
        for sub in subs:
            case = by_key[(sub.clinician, sub.key)]
            assert str(case.id) == sub.case_id
            stored = session.exec(select(CaseImage).where(CaseImage.case_id == case.id)).all()
            assert [str(i.id) for i in stored] == sub.image_ids
            jobs = session.exec(select(AnalysisJob).where(AnalysisJob.case_id == case.id)).all()
            assert [j.status for j in jobs] == ["done"]
            results = session.exec(select(AnalysisResult).where(AnalysisResult.case_id == case.id)).all()
            assert sorted(str(r.image_id) for r in results) == sub.image_ids  # exactly one per image
        killed = session.get(AnalysisJob, uuid.UUID(job_id))
        assert killed.status == "done" and killed.attempts >= 2, "the killed worker's job ran again"
        digests = {
            str(i.id): i.sha256
            for i in session.exec(select(CaseImage).where(CaseImage.case_id.in_([c.id for c in cases])))  # type: ignore[attr-defined]
        }

    # Every image comes back through the API (decrypted from SeaweedFS) exactly as stored.
    for clinician in clinicians:
        with httpx.Client(base_url=cluster.url, timeout=30) as client:
            token = client.post(
                "/api/v1/auth/login", json={"email": clinician.email, "password": PASSWORD}
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            for sub in (s for s in subs if s.clinician == clinician.email):
                case = client.get(f"/api/v1/cases/{sub.case_id}", headers=headers).json()
                assert case["analysis"]["status"] == "done" and len(case["analysis"]["results"]) == 1
                (image_id,) = sub.image_ids
                image = client.get(f"/api/v1/cases/{sub.case_id}/images/{image_id}", headers=headers)
                assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
                assert hashlib.sha256(image.content).hexdigest() == digests[image_id]

    # In the S3 store the blobs are ciphertext, never the JPEGs.
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{cluster.parts['s3'].port}",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    objects = s3.list_objects_v2(Bucket=cluster.state["bucket"])["Contents"]
    assert len(objects) >= len(subs)
    body = s3.get_object(Bucket=cluster.state["bucket"], Key=objects[0]["Key"])["Body"].read()
    assert not body.startswith(b"\xff\xd8")

    verify = cluster.run_cli("audit", "verify")
    assert verify.returncode == 0 and "audit chain intact" in verify.stdout, verify.stdout + verify.stderr
    rows = cluster.status()
    assert all(row["healthy"] for row in rows), rows  # every part is back (workers survived Redis' restart)
    engine.dispose()


def _port_closed(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_down_stops_everything_and_leaves_nothing_behind(cluster):
    groups = [p.pid for p in cluster.parts.values()]
    ports = [port for p in cluster.parts.values() for port in [p.port, *p.ports.values()] if port]
    s3_ports = list(cluster.parts["s3"].ports.values())
    database, run_dir = cluster.state["database"], cluster.run_dir
    shm_prefix = cluster.state["triton_shm_prefix"]
    assert all(group_members(g) for g in groups)

    cluster.down()

    assert not [g for g in groups if group_members(g)], "a process group outlived `down`"
    assert not run_dir.exists()
    assert not list(Path("/dev/shm").glob(f"{shm_prefix}*"))
    assert not [s for p in s3_ports for s in Path("/tmp").glob(f"seaweedfs-*-{p}.sock")]
    with psycopg.connect(cluster.state["postgres_admin_url"]) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
    assert exists is None
    assert all(_port_closed(p) for p in ports)
