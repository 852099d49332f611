"""Calibration, triage thresholds, metrics and class weights on controlled inputs."""

from __future__ import annotations

import numpy as np
import pytest

from training import LABELS
from training.calibration import apply_temperature, ece, reliability
from training.triage import choose_thresholds, malignant_score, referral_threshold

pytest.importorskip("scipy")
pytest.importorskip("sklearn")


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _calibrated_sample(n=4000, seed=0):
    """Labels drawn from softmax(logits): the probabilities are calibrated by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2.0, (n, len(LABELS)))
    p = _softmax(logits)
    y = np.array([rng.choice(len(LABELS), p=row) for row in p])
    return logits, p, y


def test_temperature_recovers_overconfidence():
    from training.calibration import fit_temperature

    logits, _p, y = _calibrated_sample()
    overconfident = _softmax(logits * 2.5)  # as if the logits were 2.5x too large
    t = fit_temperature(overconfident, y)
    assert 2.2 < t < 2.8
    fixed = apply_temperature(overconfident, t)
    assert ece(fixed, y) < ece(overconfident, y) / 2
    assert np.allclose(fixed.sum(1), 1)


def test_reliability_bins_count_everything():
    _, p, y = _calibrated_sample(1000, seed=1)
    rel = reliability(p, y, n_bins=10)
    assert sum(b["count"] for b in rel["bins"]) == 1000
    assert rel["ece"] < 0.06  # calibrated by construction


def test_referral_threshold_reaches_target_sensitivity():
    _, p, y = _calibrated_sample(3000, seed=3)
    t = referral_threshold(malignant_score(p), np.isin(y, [0, 1, 4]), 0.95)
    pos = np.isin(y, [0, 1, 4])
    sens = (malignant_score(p)[pos] >= t).mean()
    assert sens >= 0.95
    # the highest such threshold: nudging it up loses sensitivity below the target
    assert (malignant_score(p)[pos] >= t + 1e-6).mean() < 0.95 + 1.0 / pos.sum()
    tri = choose_thresholds(p, y)
    assert tri["validation"]["malignant_referral"]["sensitivity"] >= 0.95
    assert 0 < tri["low_confidence_threshold"] <= 1
    low = tri["validation"]["low_confidence"]
    assert low["accuracy_flagged"] <= 0.5 < low["accuracy_not_flagged"]
    # the highest such threshold: one grid step higher, the flagged group is right more often than not
    top = p.max(1)
    nxt = tri["low_confidence_threshold"] + 0.01
    assert nxt <= 0.95  # the sample is built so the threshold is inside the grid
    assert (p.argmax(1) == y)[top < nxt].mean() > 0.5


def test_point_metrics_and_mcnemar():
    from training.metrics import bootstrap, mcnemar, point_metrics

    y = np.array([0, 1, 2, 3, 4, 5, 6] * 10)
    perfect = np.eye(7)[y]
    m = point_metrics(y, perfect, referral_threshold=0.5)
    assert m["accuracy"] == 1 and m["balanced_accuracy"] == 1 and m["macro_auc"] == 1
    assert m["mel_sensitivity_at_referral"] == 1 and m["benign_specificity_at_referral"] == 1
    wrong = np.eye(7)[(y + 1) % 7]
    assert point_metrics(y, wrong)["accuracy"] == 0
    ci = bootstrap(y, perfect * 0.9 + 0.1 / 7, None, n_boot=50)
    assert ci["accuracy"] == (1.0, 1.0)
    a = np.array([True] * 30 + [False] * 10)
    b = np.array([True] * 10 + [False] * 30)
    t = mcnemar(a, b)
    assert t["a_right_b_wrong"] == 20 and t["a_wrong_b_right"] == 0 and t["p_value"] < 1e-4


def test_class_weights_balance_the_loss():
    pytest.importorskip("tensorflow")
    from training.train import class_weights

    y = np.array([5] * 90 + [4] * 8 + [0, 1, 2, 3, 6] * 2 + [0])
    w = class_weights(y, "balanced")
    contrib = {c: w[c] * (y == c).sum() for c in range(7)}
    assert max(contrib.values()) / min(contrib.values()) < 1.01  # every class weighs the same
    assert class_weights(y, "none") is None
    with pytest.raises(ValueError, match="vasc"):
        class_weights(np.array([0, 1, 2, 3, 4, 5]), "balanced")


def test_smoothed_loss_keeps_class_weights_per_sample():
    pytest.importorskip("tensorflow")
    import keras

    from training.train import _smoothed_loss

    loss = _smoothed_loss(0.05)
    y = np.array([0, 1, 1, 1])
    p = np.full((4, 7), 1 / 7, np.float32)
    p[0] = [0.01] * 6 + [0.94]
    per_sample = keras.ops.convert_to_numpy(loss(y, p))
    assert per_sample.shape == (4,)  # not reduced: keras can apply class/sample weights
    assert per_sample[0] > per_sample[1]
    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.Dense(7, activation="softmax")(inp))
    model.compile("sgd", loss=loss)
    x = np.random.default_rng(0).random((4, 3)).astype("float32")
    plain = model.evaluate(x, y, verbose=0)
    weighted = model.evaluate(x, y, sample_weight=np.array([10.0, 0, 0, 0]), verbose=0)
    assert abs(plain - weighted) > 0.1


def test_paired_bootstrap_difference_detects_the_better_model():
    from training.metrics import paired_bootstrap_difference

    rng = np.random.default_rng(5)
    y = rng.integers(0, 7, 400)
    good = np.eye(7)[y] * 0.7 + 0.3 / 7
    noisy = _softmax(rng.normal(0, 1, (400, 7)))
    d = paired_bootstrap_difference(y, good, noisy, np.arange(400) // 2, n_boot=100)
    assert d["balanced_accuracy"]["difference"] > 0.5
    assert d["balanced_accuracy"]["ci95"][0] > 0
    assert d["accuracy"]["p_not_better"] == 0.0
    same = paired_bootstrap_difference(y, good, good, None, n_boot=50)
    assert same["macro_auc"]["difference"] == 0.0
