"""`dermalink worker` with Redis (RQ): a real worker process completes jobs, including jobs Redis lost."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from redis import Redis

from tests.backend.cases.conftest import submit
from tests.conftest import MASTER_KEY, REPO

REDIS_URL = os.environ.get("DERMALINK_TEST_REDIS_URL", "redis://127.0.0.1:6379/7")


@pytest.fixture
def settings(database_url, tmp_path, model_repository):  # type: ignore[no-untyped-def]
    from tests.backend.conftest import make_settings

    return make_settings(database_url, tmp_path, model_repository=model_repository, queue="redis",
                         redis_url=REDIS_URL, analysis_wait_seconds=0)  # fmt: skip


@pytest.fixture(autouse=True)
def clean_redis():  # type: ignore[no-untyped-def]
    Redis.from_url(REDIS_URL).flushdb()
    yield
    Redis.from_url(REDIS_URL).flushdb()


def _run_worker(settings) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    env = {**os.environ, "DERMALINK_ENVIRONMENT": "test", "DERMALINK_DATABASE_URL": str(settings.database_url),
           "DERMALINK_MASTER_KEY": MASTER_KEY, "DERMALINK_DATA_DIR": str(settings.data_dir),
           "DERMALINK_MODEL_REPOSITORY": str(settings.model_repository), "DERMALINK_QUEUE": "redis",
           "DERMALINK_REDIS_URL": REDIS_URL}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "backend.cli", "worker", "--burst"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=180)  # fmt: skip


def test_worker_process_completes_queued_and_lost_jobs(app, client, consenting, lesion_jpeg):
    first = submit(client, consenting, [lesion_jpeg]).json()
    assert first["analysis"]["status"] == "pending"  # queued in Redis; no worker runs yet
    Redis.from_url(REDIS_URL).flushdb()  # Redis restarts and forgets everything (it keeps nothing on disk)
    second = submit(client, consenting, [lesion_jpeg]).json()
    result = _run_worker(app.state.settings)
    assert result.returncode == 0, result.stderr[-2000:]
    headers = consenting["clinic"].clinician.headers
    for case in (first, second):
        read = client.get(f"/api/v1/cases/{case['id']}", headers=headers).json()
        assert read["analysis"]["status"] == "done", (case["id"], read["analysis"])
        assert read["state"] in ("analysed", "awaiting_specialist")
    assert uuid.UUID(first["id"]) != uuid.UUID(second["id"])
