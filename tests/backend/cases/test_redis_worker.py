"""`dermalink worker` with Redis (RQ): a real worker process completes jobs, including jobs Redis lost."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from redis import Redis
from sqlmodel import select

from backend.core.clock import utcnow
from tests.backend.cases.conftest import submit
from tests.conftest import MASTER_KEY, REPO

REDIS_SERVER = os.environ.get("DERMALINK_TEST_REDIS_SERVER", "redis://127.0.0.1:6379")
TEST_DATABASES = range(8, 16)  # 0 is the application's default; the rest are left to other users


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis database of this run's own: test runs on one machine (and one Redis) must not flush each
    other's queues. A run holds an exclusive lock on its database number for the whole session."""
    if override := os.environ.get("DERMALINK_TEST_REDIS_URL"):
        yield override
        return
    for number in TEST_DATABASES:
        lock = open(Path(tempfile.gettempdir()) / f"dermalink-test-redis-{number}.lock", "w")  # noqa: SIM115
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        try:
            yield f"{REDIS_SERVER}/{number}"
        finally:
            lock.close()
        return
    pytest.fail(f"every test Redis database ({TEST_DATABASES}) is held by another test run")


@pytest.fixture
def settings(database_url, tmp_path, model_repository, redis_url):  # type: ignore[no-untyped-def]
    from tests.backend.conftest import make_settings

    return make_settings(
        database_url,
        tmp_path,
        model_repository=model_repository,
        queue="redis",
        redis_url=redis_url,
        analysis_wait_seconds=0,
    )


@pytest.fixture(autouse=True)
def clean_redis(redis_url):  # type: ignore[no-untyped-def]
    Redis.from_url(redis_url).flushdb()
    yield
    Redis.from_url(redis_url).flushdb()


def _run_worker(settings) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    env = {
        **os.environ,
        "DERMALINK_ENVIRONMENT": "test",
        "DERMALINK_DATABASE_URL": str(settings.database_url),
        "DERMALINK_MASTER_KEY": MASTER_KEY,
        "DERMALINK_DATA_DIR": str(settings.data_dir),
        "DERMALINK_MODEL_REPOSITORY": str(settings.model_repository),
        "DERMALINK_QUEUE": "redis",
        "DERMALINK_REDIS_URL": str(settings.redis_url),
    }
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", "worker", "--burst"],
        cwd=REPO,
        env=env,
        capture_output=True,
        check=False,  # the caller asserts on the exit code and output
        text=True,
        timeout=300,
    )


def test_worker_process_completes_queued_and_lost_jobs(app, client, consenting, lesion_jpeg):
    first = submit(client, consenting, [lesion_jpeg]).json()
    assert first["analysis"]["status"] == "pending"  # queued in Redis; no worker runs yet
    Redis.from_url(
        app.state.settings.redis_url
    ).flushdb()  # Redis restarts and forgets everything (it keeps nothing on disk)
    second = submit(client, consenting, [lesion_jpeg]).json()
    result = _run_worker(app.state.settings)
    assert result.returncode == 0, result.stderr[-2000:]
    headers = consenting["clinic"].clinician.headers
    for case in (first, second):
        read = client.get(f"/api/v1/cases/{case['id']}", headers=headers).json()
        assert read["analysis"]["status"] == "done", (case["id"], read["analysis"])
        assert read["state"] in ("analysed", "awaiting_specialist")
    assert uuid.UUID(first["id"]) != uuid.UUID(second["id"])


def _slow_repository(path):  # type: ignore[no-untyped-def]
    """A model in the shipped layout whose inference takes seconds (a chain of large MatMuls), so a worker
    can be killed in the middle of it."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model_dir = path / "ham10000_mobilenetv2"
    (model_dir / "1").mkdir(parents=True)
    labels = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    (model_dir / "labels.txt").write_text("\n".join(labels) + "\n")
    rng = np.random.default_rng(0)
    width, steps = 4096, 600  # each step reads a 64 MB matrix: seconds per image on a small CPU
    inits = [
        numpy_helper.from_array(np.array([-1, 224 * 224 * 3], np.int64), "flat"),
        numpy_helper.from_array(np.array([0], np.int64), "start"),
        numpy_helper.from_array(np.array([width], np.int64), "end"),
        numpy_helper.from_array(np.array([1], np.int64), "axis"),
        numpy_helper.from_array(np.array(1 / 255, np.float32), "scale"),
        numpy_helper.from_array((np.eye(width) * 0.999).astype(np.float32), "W"),
        numpy_helper.from_array((rng.standard_normal((width, 7)) * 1e-2).astype(np.float32), "Wout"),
    ]
    nodes = [
        helper.make_node("Cast", ["image"], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["xf", "flat"], ["x"]),
        helper.make_node("Slice", ["x", "start", "end", "axis"], ["xs"]),
        helper.make_node("Mul", ["xs", "scale"], ["h0"]),
    ]
    for i in range(steps):
        nodes.append(helper.make_node("MatMul", [f"h{i}", "W"], [f"h{i + 1}"]))
    nodes += [
        helper.make_node("MatMul", [f"h{steps}", "Wout"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "slow",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, [None, 224, 224, 3])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 7])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, model_dir / "1" / "model.onnx")
    return path


def test_a_worker_killed_mid_analysis_loses_nothing(app, client, consenting, lesion_jpeg, tmp_path):
    import signal

    from backend.cases.models import AnalysisJob
    from tests.waiting import wait_until

    settings = app.state.settings.model_copy(update={"model_repository": _slow_repository(tmp_path / "slow")})
    case = submit(client, consenting, [lesion_jpeg]).json()
    env = {
        **os.environ,
        "DERMALINK_ENVIRONMENT": "test",
        "DERMALINK_DATABASE_URL": str(settings.database_url),
        "DERMALINK_MASTER_KEY": MASTER_KEY,
        "DERMALINK_DATA_DIR": str(settings.data_dir),
        "DERMALINK_MODEL_REPOSITORY": str(settings.model_repository),
        "DERMALINK_QUEUE": "redis",
        "DERMALINK_REDIS_URL": str(settings.redis_url),
        # a lease that cannot run out while the test looks; the test expires it by moving it back in time
        "DERMALINK_ANALYSIS_LEASE_SECONDS": "3600",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "worker"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def job_status() -> str:
            with app.state.db.session() as session:
                return session.exec(select(AnalysisJob.status)).one()

        # the worker is inside the (slow) inference
        wait_until(lambda: job_status() == "running", timeout=120, message="the worker to claim the job")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    with app.state.db.session() as session:
        job = session.exec(select(AnalysisJob)).one()
        assert job.status == "running" and job.attempts == 1  # killed mid-job: nothing recorded as done
        job.lease_expires_at = utcnow() - timedelta(seconds=1)  # the dead worker's lease runs out
        session.add(job)
        session.commit()
    # The restarted worker serves the shipped model: the slow one only had to be slow enough to be killed
    # mid-inference, and running it to the end took over 5 minutes on a loaded 2-core machine.
    result = _run_worker(app.state.settings)
    assert result.returncode == 0, result.stderr[-2000:]
    read = client.get(f"/api/v1/cases/{case['id']}", headers=consenting["clinic"].clinician.headers).json()
    assert read["analysis"]["status"] == "done" and read["analysis"]["attempts"] == 2
    assert len(read["analysis"]["results"]) == 1  # one result, not two
