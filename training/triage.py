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
    max_flagged_accuracy: float = 0.5,
    version: str = "1",
    groups: np.ndarray | None = None,
) -> dict:
    """Thresholds for the case workflow, from validation predictions only.

    * Referral: the highest threshold on p(mel)+p(bcc)+p(akiec) whose validation sensitivity for the
      malignant classes is at least ``target_sensitivity``.
    * Low confidence: the highest top-class probability ``t`` (grid 0.30-0.95) such that the validation
      cases below ``t`` are, as a group, correct at most ``max_flagged_accuracy`` of the time: the cases
      flagged for review are those the model gets wrong more often than right. A coverage/accuracy
      table for other thresholds is included so the workflow can choose differently.
    * With ``groups`` (the validation images' lesion ids): also the learned referral rule
      (``referral_model``), which the case workflow prefers to the summed threshold; see
      :func:`referral_model`.
    """
    score = malignant_score(probs)
    positive = is_malignant(y)
    t_ref = referral_threshold(score, positive, target_sensitivity)
    mel = y == LABELS.index("mel")
    top = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    grid = np.round(np.arange(0.30, 0.951, 0.01), 2)
    t_low = float(grid[0])
    for t in grid:
        below = top < t
        if below.sum() >= 10 and correct[below].mean() <= max_flagged_accuracy:
            t_low = float(t)
    keep = top >= t_low
    trade_off = []
    for t in np.round(np.arange(0.3, 0.96, 0.1), 2):
        k = top >= t
        trade_off.append(
            {
                "threshold": float(t),
                "fraction_flagged": float((~k).mean()),
                "accuracy_flagged": float(correct[~k].mean()) if (~k).any() else None,
                "accuracy_not_flagged": float(correct[k].mean()) if k.any() else None,
            }
        )
    result = {
        "model": MODEL_NAME,
        "version": version,
        "malignant_classes": list(MALIGNANT),
        "malignant_threshold": round(t_ref, 6),
        "target_sensitivity": target_sensitivity,
        "low_confidence_threshold": round(t_low, 6),
        "low_confidence_rule": (
            f"highest top-class probability t such that validation cases below t are correct at most "
            f"{max_flagged_accuracy:.0%} of the time (probabilities are temperature-calibrated)"
        ),
        "chosen_on": "validation split (lesion-grouped); never the test split",
        "validation": {
            "n": len(y),
            "malignant_referral": operating_point(score, positive, t_ref),
            "melanoma_sensitivity_at_referral": float((score[mel] >= t_ref).mean()) if mel.any() else None,
            "low_confidence": {
                "fraction_flagged_for_review": float((~keep).mean()),
                "accuracy_flagged": float(correct[~keep].mean()) if (~keep).any() else None,
                "accuracy_not_flagged": float(correct[keep].mean()) if keep.any() else None,
                "trade_off": trade_off,
            },
        },
    }
    if groups is not None:
        try:
            learned = referral_model(probs, y, groups, target_sensitivity)
        except ValueError as exc:  # tiny validation sets (tests, smoke runs): the summed rule only
            result["referral_model_skipped"] = str(exc)
            return result
        # Shipped only where it refers fewer benign lesions than the summed rule at the same target: its
        # out-of-fold specificity against the summed rule's in-sample one (a comparison that favours the
        # summed rule, so the learned one must win clearly enough to beat an optimistic estimate).
        summed = result["validation"]["malignant_referral"]["specificity"]
        if learned["validation_out_of_fold"]["benign_specificity"] > summed:
            result["referral_model"] = learned
        else:
            result["referral_model_skipped"] = (
                f"the learned rule's out-of-fold benign specificity "
                f"{learned['validation_out_of_fold']['benign_specificity']:.3f} does not beat the summed "
                f"rule's {summed:.3f} on validation"
            )
            result["referral_model_not_shipped"] = learned
    return result


REFERRAL_FOLDS = 5


def referral_model(probs: np.ndarray, y: np.ndarray, groups: np.ndarray, target_sensitivity: float) -> dict:
    """The learned referral rule as `backend.cases.triage.ReferralModel` reads it.

    A logistic regression on the 7 log-probabilities (balanced class weights) fitted on all validation
    images; its threshold is the highest whose *out-of-fold* malignant sensitivity (5 lesion-grouped
    folds) reaches ``target_sensitivity``, so the threshold is not chosen on scores of the data the
    weights saw. The out-of-fold operating point is the honest validation estimate."""
    from training.decision import fit_referral
    from training.decision import operating_point as referral_point

    positive = is_malignant(y)
    for kind, lesions in (("malignant", groups[positive]), ("benign", groups[~positive])):
        if len(set(lesions.tolist())) < REFERRAL_FOLDS:
            raise ValueError(
                f"the learned referral rule needs at least {REFERRAL_FOLDS} {kind} lesions in validation"
            )
    model, oof = fit_referral(probs, y, groups, target_sensitivity, k=REFERRAL_FOLDS)
    return {
        "kind": "logistic regression on the log-probabilities",
        "labels": list(LABELS),
        "coefficients": [round(float(c), 6) for c in model.coef],
        "intercept": round(float(model.intercept), 6),
        "threshold": round(float(model.threshold), 6),
        "target_sensitivity": target_sensitivity,
        "rule": "refer (urgent) when sigmoid(intercept + sum coefficients * log p) >= threshold on any image",
        "validation_out_of_fold": referral_point(oof >= model.threshold, y),
    }
