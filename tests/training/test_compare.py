"""`python -m training.compare`: two models' cached served-path predictions side by side on one test split."""

from __future__ import annotations

import numpy as np
import pytest

from training import LABELS
from training.compare import compare, main


def fake_predictions(folder, y_val, y_test, skill: float, seed: int) -> None:
    """Cached predictions as `training.groundwork predict` writes them; higher ``skill``, better model."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for part, y in (("val", y_val), ("test", y_test)):
        logits = rng.normal(0, 1, (len(y), len(LABELS)))
        logits[np.arange(len(y)), y] += skill
        probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        arrays |= {
            f"{part}_views": probs[None],
            f"{part}_orig": probs,
            f"{part}_y": y,
            f"{part}_lesions": np.arange(len(y)) // 2,
            f"{part}_ids": np.array([f"{part}{i}" for i in range(len(y))]),
        }
    folder.mkdir()
    for part in ("val", "test"):
        np.savez_compressed(
            folder / f"v1_predictions_{part}.npz", **{k: v for k, v in arrays.items() if k.startswith(part)}
        )


@pytest.fixture
def two_models(tmp_path):
    rng = np.random.default_rng(0)
    y_val, y_test = (np.repeat(rng.integers(0, 7, 150), 2) for _ in range(2))
    fake_predictions(tmp_path / "a", y_val, y_test, skill=1.0, seed=1)
    fake_predictions(tmp_path / "b", y_val, y_test, skill=3.0, seed=2)
    return tmp_path


def test_the_better_model_wins_with_intervals_that_exclude_zero(two_models):
    res = compare(two_models / "a", two_models / "b", n_boot=50)
    diff = res["paired_b_minus_a"]["balanced_accuracy"]
    assert diff["difference"] > 0 and diff["ci95"][0] > 0
    assert res["b"]["test"]["macro_auc"]["value"] > res["a"]["test"]["macro_auc"]["value"]
    learned = res["b"]["learned_rule"]
    assert learned["validation_out_of_fold"]["malignant_sensitivity"] >= 0.95  # chosen on validation only
    assert set(res["goals"]) >= {"balanced_accuracy", "learned_fraction_referred"}
    assert all(isinstance(g["met"], bool) for g in res["goals"].values())


def test_cli_writes_json_and_a_markdown_table(two_models, capsys):
    main(
        [
            "--a",
            str(two_models / "a"),
            "--b",
            str(two_models / "b"),
            "--n-boot",
            "20",
            "--out",
            str(two_models / "out"),
        ]
    )
    md = (two_models / "out" / "compare.md").read_text()
    assert "| balanced accuracy |" in md and "| learned rule: fraction referred |" in md
    assert all(f"| {lab} |" in md for lab in LABELS)
    assert (two_models / "out" / "compare.json").exists() and "balanced accuracy" in capsys.readouterr().out


def test_predictions_of_different_images_are_refused(two_models, tmp_path):
    rng = np.random.default_rng(5)
    fake_predictions(
        tmp_path / "c", np.repeat(rng.integers(0, 7, 100), 2), np.repeat(rng.integers(0, 7, 100), 2), 1.0, 3
    )
    with pytest.raises(ValueError, match="not on the same"):
        compare(two_models / "a", tmp_path / "c", n_boot=5)


def test_triage_json_from_served_path_validation_predictions(two_models, tmp_path):
    """`python -m training.groundwork triage`: thresholds and the learned rule from validation only."""
    import json

    from backend.cases.triage import TriageRules
    from training.groundwork import main as groundwork

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "triage.json").write_text(json.dumps({"model": "m", "temperature_baked_into_model": 1.1}))
    groundwork(["triage", "--out", str(two_models / "b"), "--model-dir", str(model_dir), "--version", "2"])
    triage = json.loads((model_dir / "triage.json").read_text())
    assert triage["version"] == "2" and triage["temperature_baked_into_model"] == 1.1
    assert "served path" in triage["chosen_on"] and "never the test" in triage["chosen_on"]
    rules = TriageRules.from_file(model_dir / "triage.json")
    assert rules.malignant_threshold == triage["malignant_threshold"]
    # the learned rule ships only where it beats the summed one on validation; either way it is said
    assert (rules.referral is not None) == ("referral_model" in triage)
    assert ("referral_model" in triage) != ("referral_model_skipped" in triage)
