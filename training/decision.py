"""Decision rules on top of a trained model's probabilities, fitted on validation data only.

* :func:`fit_logit_offsets`: per-class additive offsets on the log-probabilities (logit adjustment) that
  maximise balanced accuracy. Adding ``b`` to ``log p`` and re-normalising equals adding ``b`` to the
  logits, so the offsets can be baked into the exported model's last bias like the temperature.
* :class:`ReferralModel`: a logistic regression on the 7 log-probabilities that scores "malignant"
  (mel, bcc, akiec), with its referral threshold chosen for a target sensitivity on *out-of-fold*
  validation scores (lesion-grouped folds), so the threshold is not chosen on the data the weights saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training import LABELS
from training.triage import is_malignant, referral_threshold


def log_probs(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probs, 1e-12, 1.0))


def apply_offsets(probs: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """softmax(log p + offsets): the probabilities of a model whose logits are shifted by ``offsets``."""
    z = log_probs(probs) + offsets
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def balanced_accuracy(y: np.ndarray, pred: np.ndarray, n_classes: int = len(LABELS)) -> float:
    present = [c for c in range(n_classes) if (y == c).any()]
    return float(np.mean([(pred[y == c] == c).mean() for c in present]))


def fit_logit_offsets(
    probs: np.ndarray,
    y: np.ndarray,
    grid: np.ndarray | None = None,
    sweeps: int = 4,
    reference: int = LABELS.index("nv"),
) -> np.ndarray:
    """Coordinate ascent on per-class offsets (``reference`` class fixed at 0) maximising balanced accuracy.

    A coarse grid and a few sweeps: the objective is a step function, and fine steps only fit the noise
    of a 1,500-image validation set. Ties keep the smaller absolute offset (the identity is the prior).
    """
    grid = np.round(np.arange(-2.0, 2.0001, 0.1), 2) if grid is None else grid
    lp = log_probs(probs)
    b = np.zeros(probs.shape[1])
    best = balanced_accuracy(y, lp.argmax(1))
    for _ in range(sweeps):
        changed = False
        for c in range(probs.shape[1]):
            if c == reference:
                continue
            for v in sorted(grid, key=abs):
                trial = b.copy()
                trial[c] = v
                score = balanced_accuracy(y, (lp + trial).argmax(1))
                if score > best + 1e-12:
                    best, b, changed = score, trial, True
        if not changed:
            break
    return b


def grouped_folds(groups: np.ndarray, k: int = 5, seed: int = 0) -> np.ndarray:
    """Fold index per sample; all samples of one group (lesion) share a fold."""
    uniq = np.unique(groups)
    rng = np.random.default_rng(seed)
    fold_of = dict(zip(rng.permutation(uniq), np.arange(len(uniq)) % k, strict=True))
    return np.array([fold_of[g] for g in groups])


@dataclass
class ReferralModel:
    """Logistic regression on log-probabilities -> P(malignant); refer when the score >= ``threshold``."""

    coef: np.ndarray
    intercept: float
    threshold: float

    def score(self, probs: np.ndarray) -> np.ndarray:
        z = log_probs(probs) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def refer(self, probs: np.ndarray) -> np.ndarray:
        return self.score(probs) >= self.threshold

    def to_json(self) -> dict:
        return {
            "features": [f"log p({c})" for c in LABELS],
            "coef": [round(float(c), 6) for c in self.coef],
            "intercept": round(float(self.intercept), 6),
            "threshold": round(float(self.threshold), 6),
        }


def _fit_lr(x: np.ndarray, t: np.ndarray, c: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, class_weight="balanced", max_iter=2000).fit(x, t)


def fit_referral(
    probs: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    target_sensitivity: float = 0.95,
    c: float = 1.0,
    k: int = 5,
) -> tuple[ReferralModel, np.ndarray]:
    """Fit on all of ``probs`` (validation); threshold from lesion-grouped out-of-fold scores.

    Returns the model and the out-of-fold scores (an honest estimate of its validation operating point).
    """
    x, t = log_probs(probs), is_malignant(y)
    folds = grouped_folds(groups, k)
    oof = np.empty(len(y))
    for f in range(k):
        m = folds == f
        lr = _fit_lr(x[~m], t[~m], c)
        oof[m] = lr.predict_proba(x[m])[:, 1]
    lr = _fit_lr(x, t, c)
    thr = referral_threshold(oof, t, target_sensitivity)
    return ReferralModel(lr.coef_[0].astype(float), float(lr.intercept_[0]), thr), oof


def operating_point(refer: np.ndarray, y: np.ndarray) -> dict:
    pos = is_malignant(y)
    mel = y == LABELS.index("mel")
    return {
        "malignant_sensitivity": float(refer[pos].mean()),
        "mel_sensitivity": float(refer[mel].mean()),
        "benign_specificity": float((~refer[~pos]).mean()),
        "fraction_referred": float(refer.mean()),
    }
