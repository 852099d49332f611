"""The committed model version in model_repository/ is consistent and loads as the backend loads it.

Runs with the base dependencies (onnxruntime); the config.pbtxt check needs tritonclient[grpc]
(the `triton` extra) and skips clearly where it is absent.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

from training import LABELS, MALIGNANT, MODEL_NAME

REPO = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO / "model_repository" / MODEL_NAME


@pytest.fixture(scope="module")
def session():
    import onnxruntime as ort

    path = MODEL_DIR / "1" / "model.onnx"
    if not path.exists():
        missing = f"no shipped model at {path}"
        if os.environ.get("CI"):
            pytest.fail(f"{missing}: CI must test the model it ships", pytrace=False)
        pytest.skip(missing)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_labels_match_output_width(session):
    labels = (MODEL_DIR / "labels.txt").read_text().split()
    assert labels == list(LABELS)
    out = session.get_outputs()[0]
    assert out.shape[-1] == len(labels)
    inp = session.get_inputs()[0]
    assert inp.type == "tensor(uint8)"
    assert list(inp.shape[1:]) == [224, 224, 3]
    assert not isinstance(inp.shape[0], int)  # dynamic batch dimension
    assert out.type == "tensor(float)"


def test_config_pbtxt_parses_with_tritons_schema(session):
    model_config_pb2 = pytest.importorskip(
        "tritonclient.grpc.model_config_pb2", reason="needs tritonclient[grpc] (the `triton` extra)"
    )
    from google.protobuf import text_format

    cfg = text_format.Parse((MODEL_DIR / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert cfg.name == MODEL_NAME
    assert cfg.platform == "onnxruntime_onnx"
    assert cfg.max_batch_size >= 8
    assert list(cfg.dynamic_batching.preferred_batch_size)
    assert all(b <= cfg.max_batch_size for b in cfg.dynamic_batching.preferred_batch_size)
    assert cfg.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    accel = cfg.optimization.execution_accelerators.gpu_execution_accelerator[0]
    assert accel.name == "tensorrt" and accel.parameters["precision_mode"] == "FP16"
    assert cfg.model_warmup
    (inp,) = cfg.input
    out, maps = cfg.output
    assert inp.name == session.get_inputs()[0].name and list(inp.dims) == [224, 224, 3]
    assert inp.data_type == model_config_pb2.TYPE_UINT8
    assert out.name == session.get_outputs()[0].name and list(out.dims) == [len(LABELS)]
    assert out.data_type == model_config_pb2.TYPE_FP32
    assert out.label_filename == "labels.txt"
    # the class-activation maps (heatmaps): 7x7 per class, named as in the graph, no labels of their own
    assert maps.name == session.get_outputs()[1].name == "class_maps"
    assert list(maps.dims) == [7, 7, len(LABELS)] and maps.data_type == model_config_pb2.TYPE_FP32
    assert not maps.label_filename
    warm = cfg.model_warmup[0]
    assert warm.batch_size <= cfg.max_batch_size and inp.name in warm.inputs


def test_config_pbtxt_names_match_the_graph(session):
    text = (MODEL_DIR / "config.pbtxt").read_text()
    assert f'name: "{session.get_inputs()[0].name}"' in text
    assert f'name: "{session.get_outputs()[0].name}"' in text
    assert 'platform: "onnxruntime_onnx"' in text and "KIND_GPU" in text


def test_triage_thresholds_are_sane(session):
    triage = json.loads((MODEL_DIR / "triage.json").read_text())
    assert triage["model"] == MODEL_NAME and triage["version"] == "1"
    assert sorted(triage["malignant_classes"]) == sorted(MALIGNANT)
    assert 0 < triage["malignant_threshold"] < 1
    assert 0 < triage["low_confidence_threshold"] <= 1
    ref = triage["validation"]["malignant_referral"]
    assert ref["sensitivity"] >= triage["target_sensitivity"]
    assert 0 < ref["fraction_flagged"] < 1
    assert "validation" in triage["chosen_on"] and "never the test" in triage["chosen_on"]


def test_label_order_is_the_training_order():
    """labels.txt is the output order: index i of the probabilities is LABELS[i], alphabetical HAM10000."""
    assert LABELS == ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
    assert (MODEL_DIR / "labels.txt").read_text().split() == list(LABELS)


ACCURACY_FLOOR = 0.6  # the shipped model gets 26/35 (74%) top-1 on these; a regression falls below


def test_backend_classifier_is_accurate_on_the_full_size_images(session):
    """All 35 full-size HAM10000 images, labelled by HAM10000_metadata.csv, through the backend's loader."""
    from backend.inference.onnx import OnnxClassifier
    from backend.inference.preprocess import batch, load_image

    shared = Path(os.environ.get("DERMALINK_SHARED", REPO.parent / "shared"))
    root = shared / "data" / "ham10000"
    files = sorted((root / "full_size").glob("*.jpg"))
    if len(files) != 35:
        pytest.fail(f"expected the 35 full-size images in {root / 'full_size'} (set DERMALINK_SHARED)")
    with open(root / "HAM10000_metadata.csv", newline="") as fh:
        truth = {r["image_id"]: r["dx"] for r in csv.DictReader(fh)}
    clf = OnnxClassifier(REPO / "model_repository", MODEL_NAME)
    assert clf.info.labels == LABELS
    preds = clf.predict_batch(batch([load_image(f) for f in files]))
    probs = np.array([[p.probabilities[lab] for lab in LABELS] for p in preds])
    assert np.allclose(probs.sum(1), 1, atol=1e-4)
    assert [p.top_label for p in preds] == [LABELS[i] for i in probs.argmax(1)]  # names follow the order
    correct = [p.top_label == truth[f.stem] for p, f in zip(preds, files, strict=True)]
    accuracy = sum(correct) / len(correct)
    assert accuracy >= ACCURACY_FLOOR, f"top-1 accuracy {accuracy:.2f} on the 35 full-size images"
    # with the labels in a wrong order the same outputs would score far lower: the order is tested too
    shuffled = [LABELS[(i + 1) % len(LABELS)] for i in probs.argmax(1)]
    assert sum(s == truth[f.stem] for s, f in zip(shuffled, files, strict=True)) / len(files) < 0.3
