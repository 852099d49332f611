"""One tiny training run, checked for what matters after it: the model learned (better than chance on
its own training data), the triage thresholds are the ones the validation predictions give (recomputed
here, independently), TFLite export agrees with Keras, the SVM baseline and the model card are produced."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training import LABELS, MALIGNANT
from training.data import load_dataset
from training.split import make_split

tf = pytest.importorskip("tensorflow")

CHANCE = 1 / len(LABELS)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, shared):  # type: ignore[no-untyped-def]
    from tests.training.conftest import make_ham_layout
    from training.config import get_preset
    from training.export import export
    from training.paths import default_weights
    from training.train import train

    root = tmp_path_factory.mktemp("tiny")
    ds = load_dataset(make_ham_layout(root / "ham") / "HAM10000_metadata.csv")
    split = make_split(ds, seed=1)
    # Enough optimiser steps for the head to learn (3 epochs at the default 1e-3 are ~9 steps on these
    # 40 images: it stayed at chance); the cached strategy makes head epochs cheap.
    cfg = get_preset("default").replace(
        alpha=0.35,
        image_size=96,
        batch_size=8,
        head_epochs=12,
        head_lr=0.01,
        finetune_epochs=1,
        early_stopping_patience=0,
        finetune_after="block_15",
        strategy="cached",
        cached_views=2,
    )
    run = root / "run"
    train(cfg, ds, split, default_weights(0.35), run, cache_dir=root / "cache", run_eagerly=True, verbose=0)
    exported = export(run, root / "repo", "tiny", "1", ds, n_parity=8, tflite_dir=root / "tflite")
    (root / "report").mkdir()
    (root / "report" / "export.json").write_text(
        json.dumps({k: v for k, v in exported.items() if k != "text"}, indent=2)
    )
    return {"root": root, "ds": ds, "split": split, "run": run, "exported": exported}


def _evaluate(tiny_run, subset: str, **extra):  # type: ignore[no-untyped-def]
    from training.evaluate import evaluate

    root = tiny_run["root"]
    return evaluate(
        root / "repo" / "tiny",
        tiny_run["ds"],
        split_file=tiny_run["run"] / "split.csv",
        subset=subset,
        n_boot=20,
        cache_dir=root / "cache",
        **extra,
    )


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_model_learned_its_training_data(tiny_run):
    result = _evaluate(tiny_run, "train")
    confusion = np.array(result["confusion_matrix"])
    recalls = confusion.diagonal() / confusion.sum(axis=1)
    # recomputed from the confusion matrix rather than trusted
    assert result["metrics"]["balanced_accuracy"] == pytest.approx(recalls.mean(), abs=1e-9)
    assert result["metrics"]["accuracy"] == pytest.approx(confusion.trace() / confusion.sum(), abs=1e-9)
    assert result["metrics"]["balanced_accuracy"] >= 2 * CHANCE, result["metrics"]  # chance is 1/7


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_thresholds_are_recomputed_from_validation_predictions_only(tiny_run):
    run, split = tiny_run["run"], tiny_run["split"]
    saved = np.load(run / "val_predictions.npz")
    assert sorted(saved["image_ids"].tolist()) == sorted(split.ids("val"))  # validation, never test
    assert not set(saved["image_ids"].tolist()) & set(split.ids("test"))
    probs, y = saved["probs"], saved["y"]
    triage = json.loads((run / "triage.json").read_text())

    # referral: the highest threshold whose validation sensitivity is still >= the target
    malignant = probs[:, [LABELS.index(c) for c in MALIGNANT]].sum(axis=1)
    positive = np.isin(y, [LABELS.index(c) for c in MALIGNANT])
    candidates = sorted(set(malignant[positive].tolist()))
    sensitivity = {t: (malignant[positive] >= t).mean() for t in candidates}
    expected = max(t for t in candidates if sensitivity[t] >= triage["target_sensitivity"])
    assert triage["malignant_threshold"] == pytest.approx(expected, abs=1e-6)
    assert triage["validation"]["malignant_referral"]["sensitivity"] == pytest.approx(sensitivity[expected])

    # low confidence: the highest grid value below which (>= 10 cases) the model is right at most half the time
    top, correct = probs.max(axis=1), probs.argmax(axis=1) == y
    qualifying = [
        t
        for t in np.round(np.arange(0.30, 0.951, 0.01), 2)
        if (top < t).sum() >= 10 and correct[top < t].mean() <= 0.5
    ]
    assert triage["low_confidence_threshold"] == pytest.approx(max(qualifying, default=0.30))
    assert triage["validation"]["n"] == len(y)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_tflite_models_agree_with_keras(tiny_run):
    tflite = tiny_run["exported"]["tflite"]
    assert set(tflite) == {"float16", "int8_dynamic"}
    for kind, r in tflite.items():
        path = tiny_run["root"] / "tflite" / f"model_{kind}.tflite"
        assert path.stat().st_size > 100_000, kind
        assert r["n_images"] == 8 and r["ms_per_image"] > 0
        assert r["max_abs_diff_vs_keras"] <= (0.05 if kind == "float16" else 0.2), (kind, r)
        assert r["top1_agreement_vs_keras"] >= 0.75, (kind, r)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_svm_baseline_and_model_card(tiny_run):
    out = tiny_run["root"] / "report"
    result = _evaluate(tiny_run, "test", out=out, baseline=True, model_card=True, run_dir=tiny_run["run"])
    baseline = result["baseline"]
    n_test = len(tiny_run["split"].ids("test"))
    assert (
        baseline["features"] > 0
        and sum(baseline["per_class"][c]["support"] for c in baseline["per_class"]) == n_test
    )
    assert 0 < baseline["mcnemar_cnn_vs_svm"]["p_value"] <= 1
    card = (out / "MODEL_CARD.md").read_text()
    assert card.startswith("# Model card: ham10000_mobilenetv2, version 1")
    assert "decision support for clinicians" in card and "alpha 0.35" in card
    metrics = result["metrics"]
    assert f"{metrics['balanced_accuracy']:.3f}" in card  # the card reports this evaluation's numbers
    assert "McNemar" in card or "SVM" in card
