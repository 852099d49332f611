"""Class-activation maps through the `Classifier` interface: present when the model has the output,
absent (None, nothing else changes) when it has not. No server needed."""

from __future__ import annotations

import numpy as np

from backend.inference.onnx import OnnxClassifier
from backend.inference.triton import TritonClassifier

MODEL = "ham10000_mobilenetv2"


def test_onnx_classifier_gives_the_top_class_map(exported_repo, lesion_images, uses_standin):
    import onnxruntime as ort

    preds = OnnxClassifier(exported_repo, MODEL).predict_batch(lesion_images[:4])
    if uses_standin:
        assert all(p.class_map is None for p in preds)
        return
    sess = ort.InferenceSession(str(exported_repo / MODEL / "1" / "model.onnx"))
    probs, maps = sess.run(["probabilities", "class_maps"], {"image": lesion_images[:4]})
    for i, p in enumerate(preds):
        assert p.class_map.shape == (7, 7) and p.class_map.dtype == np.float32
        np.testing.assert_array_equal(p.class_map, maps[i, ..., probs[i].argmax()])
        assert p.top_label == list(p.probabilities)[int(probs[i].argmax())]


def test_a_model_without_class_maps_still_classifies(tmp_path, lesion_images):
    from benchmarks.standin import build_repository

    repo = build_repository(tmp_path)
    preds = OnnxClassifier(repo, MODEL).predict_batch(lesion_images[:2])
    assert len(preds) == 2 and all(p.class_map is None for p in preds)
    assert abs(sum(preds[0].probabilities.values()) - 1) < 1e-4


def _metadata(*outputs):
    return {
        "name": MODEL,
        "versions": ["1"],
        "inputs": [{"name": "image", "datatype": "UINT8", "shape": ["-1", "224", "224", "3"]}],
        "outputs": [{"name": n, "datatype": "FP32", "shape": s} for n, s in outputs],
    }


def test_triton_client_finds_both_outputs_by_name_or_only_the_probabilities():
    clf = TritonClassifier("127.0.0.1:1", MODEL, labels=tuple("abcdefg"))
    config = {"config": {"max_batch_size": 8}}
    both = clf._build_meta(
        _metadata(("class_maps", ["-1", "7", "7", "7"]), ("probabilities", ["-1", "7"])), config
    )
    assert both.output_name == "probabilities" and both.maps_name == "class_maps"
    only = clf._build_meta(_metadata(("probabilities", ["-1", "7"])), config)
    assert only.output_name == "probabilities" and only.maps_name is None
