"""The learned referral rule: fitted by training (`training.triage.choose_thresholds` with lesion groups),
written into triage.json, and scored identically by the case workflow (`backend.cases.triage`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backend.cases.triage import TriageRules
from training import LABELS, MALIGNANT
from training.decision import ReferralModel
from training.triage import choose_thresholds, is_malignant


def synthetic_validation(n_lesions: int = 120, seed: int = 0):
    """Two images per lesion; malignant lesions put more mass on their own class, with noise."""
    rng = np.random.default_rng(seed)
    y = np.repeat(rng.integers(0, len(LABELS), n_lesions), 2)
    groups = np.repeat(np.arange(n_lesions), 2)
    logits = rng.normal(0, 1.0, (len(y), len(LABELS)))
    logits[np.arange(len(y)), y] += 1.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probs, y, groups


def test_choose_thresholds_with_groups_ships_a_referral_model_the_backend_reads(tmp_path):
    probs, y, groups = misleading_sum()
    triage = choose_thresholds(probs, y, groups=groups)
    block = triage["referral_model"]
    assert block["labels"] == list(LABELS) and len(block["coefficients"]) == len(LABELS)
    # the threshold was chosen for the target on out-of-fold scores, and that operating point is reported
    assert block["validation_out_of_fold"]["malignant_sensitivity"] >= block["target_sensitivity"]

    path = tmp_path / "triage.json"
    path.write_text(json.dumps(triage))
    served = TriageRules.from_file(path).referral
    assert served is not None and served.threshold == block["threshold"]
    trained = ReferralModel(np.array(block["coefficients"]), block["intercept"], block["threshold"])
    expected = trained.score(probs)
    got = [served.score(dict(zip(LABELS, row.tolist(), strict=True))) for row in probs]
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)  # training and serving agree


def misleading_sum(n_lesions: int = 300, seed: int = 1):
    """Benign keratoses with much akiec/bcc mass (a high summed malignant probability) next to melanomas
    the model half-confuses with nevi (a similar sum, but far more melanoma mass)."""
    rng = np.random.default_rng(seed)
    base = {  # logits per kind, in LABELS order: akiec, bcc, bkl, df, mel, nv, vasc
        "bkl": [1.0, 1.0, 2.0, 0.0, -1.5, 0.0, -1.0],
        "nv": [-1.0, -1.0, -1.0, -1.0, 0.0, 3.0, -1.0],
        "mel": [-1.0, -1.0, -1.0, -1.0, 1.2, 1.5, -1.0],
    }
    kinds = rng.choice(list(base), n_lesions)
    y = np.repeat([LABELS.index(k) for k in kinds], 2)
    logits = np.repeat(np.array([base[k] for k in kinds]), 2, axis=0) + rng.normal(0, 0.4, (len(y), 7))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probs, y, np.repeat(np.arange(n_lesions), 2)


def test_the_learned_rule_beats_the_summed_one_where_the_sum_is_misleading():
    """At the same (out-of-fold) sensitivity the learned rule refers far fewer of those keratoses."""
    probs, y, groups = misleading_sum()
    triage = choose_thresholds(probs, y, groups=groups)
    oof = triage["referral_model"]["validation_out_of_fold"]
    summed = triage["validation"]["malignant_referral"]
    assert oof["malignant_sensitivity"] >= 0.95 and summed["sensitivity"] >= 0.95
    assert oof["benign_specificity"] > summed["specificity"] + 0.1


def test_too_few_lesions_ship_the_summed_rule_only():
    probs, y, groups = synthetic_validation(n_lesions=6)
    y[:] = [LABELS.index(MALIGNANT[0])] * 2 + [LABELS.index("nv")] * (len(y) - 2)
    triage = choose_thresholds(probs, y, groups=groups)
    assert "referral_model" not in triage
    assert "at least 5 malignant lesions" in triage["referral_model_skipped"]
    assert is_malignant(y).sum() == 2


def test_without_groups_nothing_changes():
    probs, y, _ = synthetic_validation()
    assert "referral_model" not in choose_thresholds(probs, y)


def test_the_shipped_model_carries_its_referral_rule():
    from training.paths import model_repository

    rules = TriageRules.from_file(model_repository() / "ham10000_mobilenetv2" / "triage.json")
    assert rules.referral is not None and set(rules.referral.coefficients) == set(LABELS)
    assert 0 < rules.referral.threshold < 1


@pytest.mark.parametrize("seed", [2, 3])
def test_scores_are_probabilities(seed):
    probs, y, groups = misleading_sum(seed=seed)
    block = choose_thresholds(probs, y, groups=groups)["referral_model"]
    trained = ReferralModel(np.array(block["coefficients"]), block["intercept"], block["threshold"])
    s = trained.score(probs)
    assert np.all((s > 0) & (s < 1))


def test_the_learned_rule_ships_only_where_it_beats_the_summed_one():
    """Where the summed probability already separates malignant from benign best (here: malignant mass
    that is pure signal), the learned rule is kept out of triage.json, with the reason."""
    rng = np.random.default_rng(7)
    y = np.repeat(rng.integers(0, 7, 200), 2)
    positive = is_malignant(y)
    probs = rng.dirichlet(np.ones(7), len(y))
    # summed malignant mass: high for malignant lesions, low for benign, the rest spread at random
    mass = np.where(positive, rng.uniform(0.5, 0.9, len(y)), rng.uniform(0.0, 0.45, len(y)))
    idx = [LABELS.index(c) for c in MALIGNANT]
    rest = [i for i in range(7) if i not in idx]
    probs[:, idx] *= (mass / probs[:, idx].sum(1))[:, None]
    probs[:, rest] *= ((1 - mass) / probs[:, rest].sum(1))[:, None]
    triage = choose_thresholds(probs, y, groups=np.repeat(np.arange(200), 2))
    assert triage["validation"]["malignant_referral"]["specificity"] == 1.0  # the sum is perfect here
    assert "referral_model" not in triage and "does not beat" in triage["referral_model_skipped"]
    assert triage["referral_model_not_shipped"]["labels"] == list(LABELS)  # kept for the record
