"""Decision rules (logit offsets, learned referral), Shades of Gray colour constancy, the served path."""

from __future__ import annotations

import numpy as np
import pytest

from backend.inference.preprocess import load_image, shades_of_gray
from training import LABELS
from training.decision import (
    apply_offsets,
    balanced_accuracy,
    fit_logit_offsets,
    fit_referral,
    grouped_folds,
)
from training.groundwork import served_pixels
from training.metrics import cluster_bootstrap
from training.triage import is_malignant


def _biased_probs(n: int = 1400, seed: int = 0):
    """Probabilities of a model that knows the class but is biased towards nv by a constant logit."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(LABELS), n)
    logits = rng.normal(0, 1.0, (n, len(LABELS)))
    logits[np.arange(n), y] += 1.5
    logits[:, LABELS.index("nv")] += 2.0
    p = np.exp(logits)
    return p / p.sum(1, keepdims=True), y


def test_logit_offsets_undo_a_known_bias():
    probs, y = _biased_probs()
    before = balanced_accuracy(y, probs.argmax(1))
    b = fit_logit_offsets(probs, y)
    after = balanced_accuracy(y, apply_offsets(probs, b).argmax(1))
    assert after > before + 0.1
    assert b[LABELS.index("nv")] == 0
    others = np.delete(b, LABELS.index("nv"))
    assert (others > 1.0).all()  # every other class is lifted by roughly the planted 2.0
    np.testing.assert_allclose(apply_offsets(probs, np.zeros(len(LABELS))), probs, atol=1e-9)


def test_referral_model_keeps_sensitivity_and_uses_grouped_folds():
    probs, y = _biased_probs(seed=1)
    groups = np.repeat(np.arange(len(y) // 2), 2)
    folds = grouped_folds(groups, 5)
    for g in np.unique(groups)[:50]:
        assert len(set(folds[groups == g])) == 1  # a lesion never straddles folds
    model, oof = fit_referral(probs, y, groups, target_sensitivity=0.95)
    pos = is_malignant(y)
    assert (oof[pos] >= model.threshold).mean() >= 0.95
    assert model.refer(probs)[pos].mean() >= 0.9
    assert model.to_json()["features"][0] == "log p(akiec)"


def test_cluster_bootstrap_interval_contains_the_point():
    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    groups = np.repeat(np.arange(200), 2)
    ci = cluster_bootstrap(lambda i: {"mean": float(x[i].mean())}, len(x), groups, n_boot=200)
    lo, hi = ci["mean"]
    assert lo < x.mean() < hi and hi - lo < 0.5


def test_shades_of_gray_removes_a_colour_cast():
    rng = np.random.default_rng(0)
    img = rng.integers(60, 200, (64, 64, 3)).astype(np.uint8)
    cast = np.clip(img * np.array([1.15, 1.0, 0.8]), 0, 255).astype(np.uint8)
    out = shades_of_gray(cast)
    assert out.dtype == np.uint8 and out.shape == cast.shape
    norms = np.power(np.mean(out.astype(float) ** 6, axis=(0, 1)), 1 / 6)
    assert norms.max() - norms.min() < 2.0  # the illuminant estimate is neutral afterwards
    # the same scene under two casts looks (nearly) the same after correction
    diff = np.abs(out.astype(int) - shades_of_gray(img).astype(int)).mean()
    assert diff < 3.0
    batch = shades_of_gray(np.stack([cast, img]))
    np.testing.assert_array_equal(batch[0], out)
    with pytest.raises(ValueError):
        shades_of_gray(cast.astype(np.float32))


def test_shades_of_gray_on_a_real_image(shared):
    path = min((shared / "data" / "ham10000" / "images_200x150").glob("*.jpg"))
    img = load_image(path)
    out = shades_of_gray(img)
    norms = np.power(np.mean(out.astype(float) ** 6, axis=(0, 1)), 1 / 6)
    assert norms.max() - norms.min() < 3.0
    assert abs(out.mean() - img.mean()) < 25  # brightness roughly kept


def test_served_pixels_are_the_reencoded_image(shared):
    path = min((shared / "data" / "ham10000" / "images_200x150").glob("*.jpg"))
    data = path.read_bytes()
    served = served_pixels(data)
    orig = load_image(data)
    assert served.shape == orig.shape == (224, 224, 3)
    mad = np.abs(served.astype(int) - orig.astype(int)).mean()
    assert 0 < mad < 3  # JPEG q95 4:4:4 moves pixels a little, not a lot


def test_rank_auc_equals_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    from training.metrics import _safe_auc

    rng = np.random.default_rng(0)
    y = rng.random(500) < 0.2
    score = np.round(rng.random(500) + y * 0.3, 1)  # coarse: many ties
    assert _safe_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert np.isnan(_safe_auc(np.ones(5, bool), np.arange(5.0)))


def test_tta_graph_averages_the_eight_views(tmp_path, shared):
    import onnxruntime as ort

    from training import MODEL_NAME
    from training.calibration import apply_temperature
    from training.groundwork import dihedral
    from training.paths import model_repository
    from training.tta_export import add_tta

    src = model_repository() / MODEL_NAME / "1" / "model.onnx"
    if not src.exists():
        pytest.skip(f"no shipped model at {src}")
    files = sorted((shared / "data" / "ham10000" / "full_size").glob("*.jpg"))[:2]
    x = np.stack([load_image(f) for f in files])
    plain = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    views = np.stack([plain.run(None, {"image": dihedral(x, k)})[0] for k in range(8)])
    geo = np.exp(np.log(views).mean(axis=0))
    expected = {
        ("mean", None): views.mean(axis=0),
        ("mean", 0.9): apply_temperature(views.mean(axis=0), 0.9),
        ("geo", None): geo / geo.sum(axis=1, keepdims=True),
        ("geo", 0.9): apply_temperature(geo, 0.9),
    }
    for (average, t), want in expected.items():
        path = add_tta(src, tmp_path / f"tta_{average}_{t}.onnx", t, average)
        tta = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        # the probabilities only: the class maps would come out per view, so add_tta drops them
        assert [o.name for o in tta.get_outputs()] == [plain.get_outputs()[0].name]
        np.testing.assert_allclose(tta.run(None, {"image": x})[0], want, atol=1e-5)
