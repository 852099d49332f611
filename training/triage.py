"""Triage thresholds for the case workflow, chosen on validation data only (never test)."""

from __future__ import annotations

import numpy as np

from training import LABELS, MALIGNANT, MODEL_NAME


def malignant_score(probs: np.ndarray) -> np.ndarray:
    return probs[:, [LABELS.index(c) for c in MALIGNANT]].sum(axis=1)


def is_malignant(y: np.ndarray) -> np.ndarray:
    return np.isin(y, [LABELS.index(c) for c in MALIGNANT])


def referral_threshold(score: np.ndarray, positive: np.ndarray, target: float) -> float:
    """The highest threshold t with sensitivity P(score >= t | malignant) >= target."""
    pos = np.sort(score[positive])
    if not len(pos):
        raise ValueError("no malignant cases to choose a referral threshold on")
    k = int(np.floor((1.0 - target) * len(pos)))  # at most k positives may fall below t
    return float(pos[k])


def operating_point(score: np.ndarray, positive: np.ndarray, threshold: float) -> dict:
    flagged = score >= threshold
    return {
        "sensitivity": float(flagged[positive].mean()) if positive.any() else float("nan"),
        "specificity": float((~flagged[~positive]).mean()) if (~positive).any() else float("nan"),
        "fraction_flagged": float(flagged.mean()),
        "n_malignant": int(positive.sum()),
        "n_benign": int((~positive).sum()),
    }


def choose_thresholds(
    probs: np.ndarray,
    y: np.ndarray,
    target_sensitivity: float = 0.95,
    target_confident_accuracy: float = 0.90,
    version: str = "1",
) -> dict:
    """Referral threshold on the summed malignant probability reaching ``target_sensitivity`` on validation;
    low-confidence threshold: the smallest top-class probability above which validation accuracy reaches
    ``target_confident_accuracy`` (cases below it go to review)."""
    score = malignant_score(probs)
    positive = is_malignant(y)
    t_ref = referral_threshold(score, positive, target_sensitivity)
    mel = y == LABELS.index("mel")
    top = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    t_low = 1.0
    for t in np.unique(np.round(top, 3)):
        keep = top >= t
        if keep.sum() >= 20 and correct[keep].mean() >= target_confident_accuracy:
            t_low = float(t)
            break
    keep = top >= t_low
    return {
        "model": MODEL_NAME,
        "version": version,
        "malignant_classes": list(MALIGNANT),
        "malignant_threshold": round(t_ref, 6),
        "target_sensitivity": target_sensitivity,
        "low_confidence_threshold": round(t_low, 6),
        "target_confident_accuracy": target_confident_accuracy,
        "chosen_on": "validation split (lesion-grouped); never the test split",
        "validation": {
            "n": len(y),
            "malignant_referral": operating_point(score, positive, t_ref),
            "melanoma_sensitivity_at_referral": float((score[mel] >= t_ref).mean()) if mel.any() else None,
            "low_confidence": {
                "fraction_flagged_for_review": float((~keep).mean()),
                "accuracy_above_threshold": float(correct[keep].mean()) if keep.any() else None,
                "accuracy_below_threshold": float(correct[~keep].mean()) if (~keep).any() else None,
            },
        },
    }
