"""Triton's probabilities equal in-process ONNX Runtime's on the real full-size lesion images."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from backend.inference.onnx import OnnxClassifier
from backend.inference.triton import TritonClassifier

pytestmark = pytest.mark.triton
MODEL = "ham10000_mobilenetv2"
TOL = 1e-5


@pytest.fixture(scope="module")
def reference(exported_repo, lesion_images) -> np.ndarray:
    preds = OnnxClassifier(exported_repo, MODEL).predict_batch(lesion_images)
    return np.array([list(p.probabilities.values()) for p in preds])


def test_class_maps_parity(triton_server, exported_repo, lesion_images, uses_standin):
    """Both outputs agree: the probabilities and the class-activation maps, in-process and via Triton
    (the full [N, 7, 7, 7] maps through tritonclient, and each prediction's top-class map)."""
    import onnxruntime as ort
    import tritonclient.grpc as grpcclient

    if uses_standin:
        pytest.skip("the stand-in model has no class_maps output")
    images = lesion_images[:6]
    sess = ort.InferenceSession(str(exported_repo / MODEL / "1" / "model.onnx"))
    probs, maps = sess.run(["probabilities", "class_maps"], {"image": images})
    client = grpcclient.InferenceServerClient(triton_server.grpc_url)
    try:
        inp = grpcclient.InferInput("image", list(images.shape), "UINT8")
        inp.set_data_from_numpy(images)
        outs = [grpcclient.InferRequestedOutput(n) for n in ("probabilities", "class_maps")]
        result = client.infer(MODEL, [inp], outputs=outs)
    finally:
        client.close()
    np.testing.assert_allclose(result.as_numpy("probabilities"), probs, rtol=0, atol=TOL)
    np.testing.assert_allclose(result.as_numpy("class_maps"), maps, rtol=0, atol=TOL)
    local = OnnxClassifier(exported_repo, MODEL).predict_batch(images)
    for protocol in ("grpc", "http"):
        url = triton_server.grpc_url if protocol == "grpc" else triton_server.http_url
        clf = TritonClassifier(url, MODEL, protocol=protocol)
        try:
            served = clf.predict_batch(images)
            assert clf.info.extra["class_maps"] == "class_maps"
        finally:
            clf.close()
        for i, (a, b) in enumerate(zip(local, served, strict=True)):
            assert a.class_map is not None and a.class_map.shape == (7, 7)
            np.testing.assert_allclose(b.class_map, a.class_map, rtol=0, atol=TOL)
            np.testing.assert_allclose(a.class_map, maps[i, ..., probs[i].argmax()], rtol=0, atol=TOL)
        np.testing.assert_allclose(_matrix(served), _matrix(local), rtol=0, atol=TOL)


def _matrix(preds) -> np.ndarray:
    return np.array([list(p.probabilities.values()) for p in preds])


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_batched_parity_and_served_model(triton_server, exported_repo, lesion_images, reference, protocol):
    url = triton_server.grpc_url if protocol == "grpc" else triton_server.http_url
    clf = TritonClassifier(url, MODEL, protocol=protocol)
    try:
        assert clf.ready()[0], clf.ready()[1]
        local = OnnxClassifier(exported_repo, MODEL).info
        assert clf.info.labels == local.labels and clf.info.name == MODEL
        preds = clf.predict_batch(lesion_images)  # 35 images > max_batch_size? chunks by the served config
        assert len(preds) == len(lesion_images) >= 30
        assert all(p.model_name == MODEL and p.model_version == local.version for p in preds)
        assert list(preds[0].probabilities) == list(local.labels)
        np.testing.assert_allclose(_matrix(preds), reference, rtol=0, atol=TOL)
        assert [p.top_label for p in preds] == [local.labels[i] for i in reference.argmax(axis=1)]
    finally:
        clf.close()


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_async_many_requests_in_flight(triton_server, lesion_images, reference, protocol):
    """One request per image, all in flight at once: dynamic batching merges them; results stay exact."""
    url = triton_server.grpc_url if protocol == "grpc" else triton_server.http_url
    clf = TritonClassifier(url, MODEL, protocol=protocol)

    async def main():
        try:
            ok, why = await clf.ready_async()
            assert ok, why
            results = await asyncio.gather(*(clf.predict_batch_async(img[None]) for img in lesion_images))
        finally:
            await clf.aclose()
        return [r[0] for r in results]

    preds = asyncio.run(main())
    np.testing.assert_allclose(_matrix(preds), reference, rtol=0, atol=TOL)


def test_small_max_batch_is_split_into_chunks(triton_server, lesion_images, reference):
    clf = TritonClassifier(triton_server.grpc_url, MODEL)
    n = clf.info.extra["max_batch_size"]
    many = np.concatenate([lesion_images] * (n // len(lesion_images) + 2))[: n + 3]
    preds = clf.predict_batch(many)
    assert len(preds) == n + 3
    expected = np.concatenate([reference] * (n // len(reference) + 2))[: n + 3]
    np.testing.assert_allclose(_matrix(preds), expected, rtol=0, atol=TOL)


def test_labels_from_label_filename_or_given_when_the_config_has_no_labels_parameter(
    triton_server, exported_repo, lesion_images, reference
):
    """The exported production config names labels.txt as `label_filename` only: the client asks Triton's
    classification extension for them. With no labels on the server at all, it needs them given."""
    import tritonclient.http as httpclient

    from backend.inference.base import InferenceRejected

    labels = OnnxClassifier(exported_repo, MODEL).info.labels
    admin = httpclient.InferenceServerClient(triton_server.http_url)
    admin.load_model("filelabels_model")
    admin.load_model("nolabels_model")
    try:
        for protocol in ("grpc", "http"):
            url = triton_server.grpc_url if protocol == "grpc" else triton_server.http_url
            clf = TritonClassifier(url, "filelabels_model", protocol=protocol)
            assert clf.info.labels == labels
            np.testing.assert_allclose(
                _matrix(clf.predict_batch(lesion_images[:5])), reference[:5], atol=TOL, rtol=0
            )
            bare = TritonClassifier(url, "nolabels_model", protocol=protocol)
            ok, why = bare.ready()
            assert not ok and "no labels" in why and "DERMALINK_TRITON_LABELS_FILE" in why
            with pytest.raises(InferenceRejected, match="no labels"):
                bare.predict_batch(lesion_images[:1])
            given = TritonClassifier(url, "nolabels_model", protocol=protocol, labels=labels)
            assert list(given.predict_batch(lesion_images[:1])[0].probabilities) == list(labels)
        with pytest.raises(InferenceRejected, match="8 labels"):
            TritonClassifier(
                triton_server.grpc_url, "nolabels_model", labels=(*labels, "extra")
            ).predict_batch(lesion_images[:1])
    finally:
        admin.unload_model("filelabels_model")
        admin.unload_model("nolabels_model")
