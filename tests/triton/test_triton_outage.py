"""Triton gone (crashed, or stopped): `InferenceUnavailable` and ready() false with a reason; back: the same
client objects work again without being recreated."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from backend.inference.base import InferenceUnavailable
from backend.inference.triton import TritonClassifier
from backend.inference.triton_server import TritonServer

pytestmark = pytest.mark.triton
MODEL = "ham10000_mobilenetv2"


@pytest.fixture
def own_server(triton_install, derived_repo, tmp_path):
    server = TritonServer(
        derived_repo, model_control="explicit", load_models=[MODEL], build_dir=tmp_path, exit_timeout_s=2
    )
    server.start(timeout=90)
    yield server
    server.stop()


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_outage_and_recovery(own_server, lesion_images, how):
    grpc = TritonClassifier(own_server.grpc_url, MODEL, timeout_s=2, retries=2)
    http = TritonClassifier(own_server.http_url, MODEL, protocol="http", timeout_s=2, retries=2)
    before = {name: c.predict_batch(lesion_images[:4]) for name, c in (("grpc", grpc), ("http", http))}

    own_server.kill() if how == "kill" else own_server.stop()
    for clf in (grpc, http):
        ok, why = clf.ready()
        assert not ok and "cannot reach Triton" in why and own_server.host in why, why
        start = time.monotonic()
        with pytest.raises(InferenceUnavailable) as info:
            clf.predict_batch(lesion_images[:4])
        assert info.value.retryable and time.monotonic() - start < 5
    with pytest.raises(InferenceUnavailable):
        asyncio.run(grpc.predict_batch_async(lesion_images[:1]))

    own_server.start(timeout=90)  # same ports
    for name, clf in (("grpc", grpc), ("http", http)):
        deadline = time.monotonic() + 10
        while not clf.ready()[0] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert clf.ready()[0], clf.ready()[1]
        after = clf.predict_batch(lesion_images[:4])
        np.testing.assert_allclose(
            [list(p.probabilities.values()) for p in after],
            [list(p.probabilities.values()) for p in before[name]],
            rtol=0,
            atol=1e-6,
        )
