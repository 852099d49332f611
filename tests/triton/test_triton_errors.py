"""Clear errors: missing model, wrong tensor shape/type, a model that is not ready, a model that failed
to load, a deadline. Rejected (do not retry) vs Unavailable (retry later) is what the case flow relies on."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from backend.inference.base import InferenceRejected, InferenceUnavailable
from backend.inference.triton import TritonClassifier
from tests.triton.conftest import SLOW_MODEL_S
from tests.waiting import wait_until

pytestmark = pytest.mark.triton
MODEL = "ham10000_mobilenetv2"
SPARE = "spare_model"
PROTOCOLS = ["grpc", "http"]


def _url(server, protocol):
    return server.grpc_url if protocol == "grpc" else server.http_url


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_missing_model_is_rejected_with_its_name(triton_server, lesion_images, protocol):
    clf = TritonClassifier(_url(triton_server, protocol), "no_such_model", protocol=protocol)
    ok, why = clf.ready()
    assert not ok and "no_such_model" in why and "not in the repository" in why
    with pytest.raises(InferenceRejected, match="no_such_model.*not in the repository"):
        clf.predict_batch(lesion_images[:1])


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_wrong_shape_and_dtype_are_rejected(triton_server, lesion_images, protocol):
    clf = TritonClassifier(_url(triton_server, protocol), MODEL, protocol=protocol)
    with pytest.raises(InferenceRejected, match=r"shape \[-1, 224, 224, 3\], got \[2, 100, 224, 3\]"):
        clf.predict_batch(lesion_images[:2, :100])
    with pytest.raises(InferenceRejected, match="expects uint8"):
        clf.predict_batch(lesion_images[:2].astype(np.float32))
    with pytest.raises(InferenceRejected, match="shape"):
        clf.predict_batch(lesion_images[0])  # no batch dimension
    # the server's own check, when the client-side one is bypassed, maps to the same error type
    raw = TritonClassifier(_url(triton_server, protocol), MODEL, protocol=protocol, validate=False)
    with pytest.raises(InferenceRejected, match="unexpected shape"):
        raw.predict_batch(lesion_images[:2, :100])
    with pytest.raises(InferenceRejected, match="datatype"):
        raw.predict_batch(lesion_images[:2].astype(np.float32))
    assert len(clf.predict_batch(lesion_images[:2])) == 2  # and the server is fine afterwards


def test_model_not_ready_then_ready_again(triton_server, lesion_images):
    """On a copy of the model, so the session server's main model never changes under later tests."""
    admin = httpclient.InferenceServerClient(triton_server.http_url)
    admin.load_model(SPARE)
    try:
        grpc = TritonClassifier(triton_server.grpc_url, SPARE, retries=2)
        http = TritonClassifier(triton_server.http_url, SPARE, protocol="http", retries=2)
        assert len(grpc.predict_batch(lesion_images[:1])) == 1  # metadata cached before the unload
        admin.unload_model(SPARE)
        wait_until(lambda: not admin.is_model_ready(SPARE), message="the spare model to unload")
        for clf in (grpc, http):
            ok, why = clf.ready()
            assert not ok and "not ready" in why and ("UNAVAILABLE" in why or "UNLOADING" in why), why
            with pytest.raises(InferenceUnavailable, match="not ready"):
                clf.predict_batch(lesion_images[:1])
        with pytest.raises(InferenceUnavailable, match="not ready"):
            asyncio.run(_predict_async(grpc, lesion_images[:1]))
        admin.load_model(SPARE)
        for clf in (grpc, http):
            assert clf.ready()[0]
            assert len(clf.predict_batch(lesion_images[:3])) == 3
    finally:
        admin.unload_model(SPARE)
    assert TritonClassifier(triton_server.grpc_url, MODEL).ready()[0]  # untouched


async def _predict_async(clf, images):
    try:
        return await clf.predict_batch_async(images)
    finally:
        await clf.aclose()


def test_model_that_failed_to_load_reports_triton_reason(triton_server, lesion_images):
    admin = httpclient.InferenceServerClient(triton_server.http_url)
    try:
        with pytest.raises(InferenceServerException):
            admin.load_model("broken_model")
        clf = TritonClassifier(triton_server.grpc_url, "broken_model", retries=1)
        ok, why = clf.ready()
        assert not ok and "broken_model" in why and "UNAVAILABLE" in why
        assert "load" in why.lower() or "onnx" in why.lower() or "protobuf" in why.lower(), why
        with pytest.raises(InferenceUnavailable, match="broken_model"):
            clf.predict_batch(lesion_images[:1])
        # another model's failure does not make ours unready
        assert TritonClassifier(triton_server.grpc_url, MODEL).ready()[0]
    finally:
        admin.unload_model("broken_model")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_deadline_exceeded_is_unavailable_and_bounded(triton_server, lesion_images, protocol):
    clf = TritonClassifier(
        _url(triton_server, protocol), "slow_model", protocol=protocol, timeout_s=0.3, retries=2
    )
    assert clf.ready()[0]
    start = time.monotonic()
    with pytest.raises(InferenceUnavailable, match="(?i)deadline|timed out|timeout"):
        clf.predict_batch(lesion_images[:1])
    # two 0.3 s attempts plus backoff end long before the model would answer
    assert time.monotonic() - start < SLOW_MODEL_S * 0.75
