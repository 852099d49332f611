"""Triton gone (crashed, or stopped): `InferenceUnavailable` and ready() false with a reason; back: the same
client objects work again without being recreated."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from backend.inference.base import InferenceUnavailable
from backend.inference.triton import TritonClassifier
from backend.inference.triton_server import TritonServer, live_processes
from tests.triton.conftest import restart_on_same_ports, start_fresh

pytestmark = pytest.mark.triton
MODEL = "ham10000_mobilenetv2"


@pytest.fixture
def own_server(triton_install, derived_repo, tmp_path):
    server = TritonServer(
        derived_repo, model_control="explicit", load_models=[MODEL], build_dir=tmp_path, exit_timeout_s=2
    )
    start_fresh(server)
    yield server
    server.stop()


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_outage_and_recovery(own_server, lesion_images, how):
    grpc = TritonClassifier(own_server.grpc_url, MODEL, timeout_s=2, retries=2)
    http = TritonClassifier(own_server.http_url, MODEL, protocol="http", timeout_s=2, retries=2)
    before = {name: c.predict_batch(lesion_images[:4]) for name, c in (("grpc", grpc), ("http", http))}

    own_server.kill() if how == "kill" else own_server.stop()
    # nothing of it is left behind: no python backend stub processes, no shared-memory regions
    backend_dir = str(own_server.build_dir / "triton_backends")
    stubs = [cmd for _, _, cmd in live_processes() if backend_dir in cmd]
    assert not stubs, stubs
    assert not list(Path("/dev/shm").glob(f"{own_server.shm_prefix}*"))
    for clf in (grpc, http):
        ok, why = clf.ready()
        assert not ok and "cannot reach Triton" in why and own_server.host in why, why
        start = time.monotonic()
        with pytest.raises(InferenceUnavailable) as info:
            clf.predict_batch(lesion_images[:4])
        # fails instead of hanging: far below a hang, far above 2 attempts of 2 s on a loaded machine
        assert info.value.retryable and time.monotonic() - start < 60
        seen = clf.info  # never raises: the last model seen, marked unavailable
        assert seen.name == MODEL and len(seen.labels) == 7 and seen.extra["available"] is False
    with pytest.raises(InferenceUnavailable):
        asyncio.run(grpc.predict_batch_async(lesion_images[:1]))

    fresh = TritonClassifier(own_server.grpc_url, MODEL, retries=1)
    assert fresh.info.extra["available"] is False and fresh.info.name == MODEL

    restart_on_same_ports(own_server)
    for name, clf in (("grpc", grpc), ("http", http)):
        assert clf.ready()[0], clf.ready()[1]  # at once: no waiting out a reconnect backoff
        after = clf.predict_batch(lesion_images[:4])
        np.testing.assert_allclose(
            [list(p.probabilities.values()) for p in after],
            [list(p.probabilities.values()) for p in before[name]],
            rtol=0,
            atol=1e-6,
        )


def test_built_from_app_settings_and_readiness_says_why(own_server, exported_repo, monkeypatch):
    """With `DERMALINK_INFERENCE=triton` the backend builds the classifier from its application settings
    plus `DERMALINK_TRITON_*`; its readiness report (ready() then info, what /readyz shows) explains an
    outage and never raises."""
    from backend.config import Settings

    monkeypatch.setenv("DERMALINK_TRITON_URL", own_server.grpc_url)
    monkeypatch.setenv("DERMALINK_TRITON_TIMEOUT_S", "2")
    monkeypatch.setenv("DERMALINK_TRITON_RETRIES", "1")
    clf = TritonClassifier.from_settings(Settings(model_repository=exported_repo, model_name=MODEL))
    assert clf.model_name == MODEL and clf.url == own_server.grpc_url and clf.timeout_s == 2

    def readiness() -> tuple[bool, str]:
        ok, detail = clf.ready()
        info = clf.info
        return ok, f"{info.name} v{info.version}: {detail}"

    ok, why = readiness()
    assert ok and why.startswith(f"{MODEL} v1: Triton at {own_server.grpc_url} serves"), why
    own_server.kill()
    ok, why = readiness()
    assert not ok and "cannot reach Triton" in why, why
    restart_on_same_ports(own_server)
    assert readiness()[0]
