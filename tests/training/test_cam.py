"""CAM-capable ONNX derived from the shipped v1 model: parity, exactness, overlay and faithfulness.

Real images: the 35 full-size HAM10000 images in the shared folder.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.inference.cam import blank_cells, colourise, normalise, overlay, overlay_png, top_cells
from backend.inference.preprocess import load_image
from training import MODEL_NAME
from training.cam_export import CAM_OUTPUT, add_cam_output, cam_session, faithfulness, run_cam

MODEL_DIR = Path(__file__).resolve().parents[2] / "model_repository" / MODEL_NAME


@pytest.fixture(scope="module")
def full_size(shared):
    files = sorted((shared / "data" / "ham10000" / "full_size").glob("*.jpg"))
    if not files:
        pytest.skip("no full-size images in the shared folder")
    return np.stack([load_image(f) for f in files])


def without_cam(src: Path, dst: Path) -> Path:
    """``src`` without its class_maps output and the nodes that only feed it (v1 as first exported)."""
    import onnx

    model = onnx.load(str(src))
    keep = [o for o in model.graph.output if o.name != CAM_OUTPUT]
    del model.graph.output[:]
    model.graph.output.extend(keep)
    nodes = [n for n in model.graph.node if not n.name.startswith("cam/")]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.save(model, str(dst))
    return dst


@pytest.fixture(scope="module")
def cam_model(tmp_path_factory):
    shipped = MODEL_DIR / "1" / "model.onnx"
    if not shipped.exists():
        pytest.skip(f"no shipped model at {shipped}")
    tmp = tmp_path_factory.mktemp("cam")
    src = without_cam(shipped, tmp / "model_v1.onnx")
    return src, add_cam_output(src, tmp / "model_cam.onnx")


def test_shipped_model_serves_the_class_maps(cam_model, full_size):
    """The served model is the CAM-capable one: same outputs as a fresh derivation, bit for bit."""
    shipped = cam_session(MODEL_DIR / "1" / "model.onnx")
    assert [o.name for o in shipped.get_outputs()] == ["probabilities", CAM_OUTPUT]
    for got, want in zip(
        run_cam(shipped, full_size), run_cam(cam_session(cam_model[1]), full_size), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="already has"):
        add_cam_output(MODEL_DIR / "1" / "model.onnx", cam_model[1].with_name("again.onnx"))


def test_first_output_unchanged_and_maps_exact(cam_model, full_size):
    import onnxruntime as ort

    src, derived = cam_model
    ref_sess = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    (ref,) = ref_sess.run(None, {ref_sess.get_inputs()[0].name: full_size})
    sess = cam_session(derived)
    outputs = [o.name for o in sess.get_outputs()]
    assert outputs == [ref_sess.get_outputs()[0].name, CAM_OUTPUT]
    probs, maps = run_cam(sess, full_size)
    np.testing.assert_allclose(probs, ref, atol=1e-6)
    assert (probs.argmax(1) == ref.argmax(1)).all()
    assert maps.shape == (len(full_size), 7, 7, ref.shape[1])
    # GAP + dense: the spatial mean of the class maps is the logit vector, softmax gives the probabilities
    logits = maps.mean(axis=(1, 2))
    soft = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(soft / soft.sum(1, keepdims=True), probs, atol=1e-5)


def test_faithfulness_on_real_images(cam_model, full_size):
    """Blanking the hottest 10% of the predicted class's map hurts more than a random 10% on most images."""
    result = faithfulness(cam_session(cam_model[1]), full_size, cells=5, draws=4)
    assert result["n_images"] == len(full_size)
    assert result["fraction_top_hurts_more"] > 0.75
    assert result["median_drop_top"] > result["median_drop_random"]


def test_overlay_png_is_hot_where_the_map_is_high():
    image = np.full((150, 200, 3), 128, np.uint8)
    cam = np.zeros((7, 7), np.float32)
    cam[1, 5] = 3.0  # top right
    png = overlay_png(image, cam)
    decoded = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert decoded.shape == image.shape
    hot = decoded[150 * 1 // 7 + 10, 200 * 5 // 7 + 14].astype(int)
    cold = decoded[140, 10].astype(int)
    assert hot[0] > hot[2] and cold[2] > cold[0]  # red over the peak, blue far from it
    assert Image.open(io.BytesIO(png)).info.get("exif") is None


def test_cam_helpers():
    assert (normalise(np.ones((7, 7))) == 0).all()
    ramp = colourise(np.linspace(0, 1, 5))
    assert ramp.dtype == np.uint8 and ramp.shape == (5, 3)
    assert ramp[0, 2] > ramp[0, 0] and ramp[-1, 0] > ramp[-1, 2]
    cam = np.arange(49, dtype=float).reshape(7, 7)
    mask = top_cells(cam, 5)
    assert mask.sum() == 5 and mask[6, 6] and not mask[0, 0]
    img = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    out = blank_cells(img, mask)
    changed = (out != img).any(axis=2)
    assert changed[-1, -1] and not changed[0, 0]
    assert abs(changed.mean() - 5 / 49) < 0.02
    with pytest.raises(ValueError):
        overlay(img.astype(np.float32), cam)
