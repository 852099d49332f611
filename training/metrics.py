"""Classification metrics with lesion-clustered bootstrap confidence intervals."""

from __future__ import annotations

import numpy as np

from training import LABELS
from training.triage import is_malignant, malignant_score


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank (``scipy.stats.rankdata(method="average")``)."""
    order = np.argsort(x, kind="mergesort")
    inverse = np.empty(len(x), np.intp)
    inverse[order] = np.arange(len(x))
    xs = x[order]
    new = np.r_[True, xs[1:] != xs[:-1]]
    dense = np.cumsum(new)[inverse]
    bounds = np.r_[np.flatnonzero(new), len(x)]
    return 0.5 * (bounds[dense] + bounds[dense - 1] + 1)


def _safe_auc(y_bin: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic on average ranks: equal to sklearn's ``roc_auc_score``
    (ties count one half) but ~50x cheaper, which matters inside 1,000-resample bootstraps."""
    y_bin = np.asarray(y_bin, bool)
    n_pos = int(y_bin.sum())
    n_neg = len(y_bin) - n_pos
    if not n_pos or not n_neg:
        return float("nan")
    ranks = _average_ranks(np.asarray(score))
    return float((ranks[y_bin].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def point_metrics(y: np.ndarray, probs: np.ndarray, referral_threshold: float | None = None) -> dict:
    """Accuracy, balanced accuracy, macro AUC, melanoma sensitivity/specificity (and at the referral threshold)."""
    pred = probs.argmax(1)
    present = [c for c in range(len(LABELS)) if (y == c).any()]
    recalls = [float((pred[y == c] == c).mean()) for c in present]
    aucs = [_safe_auc(y == c, probs[:, c]) for c in present]
    mel = LABELS.index("mel")
    m = {
        "accuracy": float((pred == y).mean()),
        "balanced_accuracy": float(np.mean(recalls)),
        "macro_auc": float(np.nanmean(aucs)) if aucs else float("nan"),
        "mel_sensitivity_argmax": float((pred[y == mel] == mel).mean()) if (y == mel).any() else float("nan"),
        "mel_specificity_argmax": float((pred[y != mel] != mel).mean()) if (y != mel).any() else float("nan"),
    }
    if referral_threshold is not None:
        refer = malignant_score(probs) >= referral_threshold
        pos = is_malignant(y)
        m["mel_sensitivity_at_referral"] = float(refer[y == mel].mean()) if (y == mel).any() else float("nan")
        m["malignant_sensitivity_at_referral"] = float(refer[pos].mean()) if pos.any() else float("nan")
        m["benign_specificity_at_referral"] = float((~refer[~pos]).mean()) if (~pos).any() else float("nan")
        m["fraction_referred"] = float(refer.mean())
    return m


def per_class(y: np.ndarray, probs: np.ndarray) -> dict[str, dict]:
    from sklearn.metrics import precision_recall_fscore_support

    pred = probs.argmax(1)
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=list(range(len(LABELS))), zero_division=0)
    return {
        lab: {
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(s[i]),
            "auc": _safe_auc(y == i, probs[:, i]),
        }
        for i, lab in enumerate(LABELS)
    }


def bootstrap(
    y: np.ndarray,
    probs: np.ndarray,
    groups: np.ndarray | None,
    n_boot: int = 1000,
    seed: int = 0,
    referral_threshold: float | None = None,
) -> dict[str, tuple[float, float]]:
    """95% percentile intervals, resampling lesions (clusters) with replacement when ``groups`` is given."""
    rng = np.random.default_rng(seed)
    if groups is None:
        groups = np.arange(len(y))
    uniq, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(uniq))]
    samples: dict[str, list[float]] = {}
    for _ in range(n_boot):
        pick = rng.integers(0, len(uniq), len(uniq))
        idx = np.concatenate([members[g] for g in pick])
        for k, v in point_metrics(y[idx], probs[idx], referral_threshold).items():
            samples.setdefault(k, []).append(v)
    return {
        k: (float(np.nanpercentile(v, 2.5)), float(np.nanpercentile(v, 97.5))) for k, v in samples.items()
    }


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
    """McNemar's paired test on the same images: exact binomial when the discordant count is small."""
    from statsmodels.stats.contingency_tables import mcnemar as _mcnemar

    b = int((correct_a & ~correct_b).sum())
    c = int((~correct_a & correct_b).sum())
    table = [[int((correct_a & correct_b).sum()), b], [c, int((~correct_a & ~correct_b).sum())]]
    exact = b + c < 25
    res = _mcnemar(table, exact=exact, correction=not exact)
    return {
        "a_right_b_wrong": b,
        "a_wrong_b_right": c,
        "statistic": float(res.statistic),
        "p_value": float(res.pvalue),
        "exact": exact,
    }


def paired_bootstrap_difference(
    y: np.ndarray,
    probs_a: np.ndarray,
    probs_b: np.ndarray,
    groups: np.ndarray | None,
    n_boot: int = 1000,
    seed: int = 0,
    keys: tuple[str, ...] = ("accuracy", "balanced_accuracy", "macro_auc"),
) -> dict[str, dict[str, float]]:
    """Difference a - b on the same resampled lesions: point estimate, 95% interval and the share of
    resamples where a is not better (a one-sided bootstrap p-value)."""
    rng = np.random.default_rng(seed)
    if groups is None:
        groups = np.arange(len(y))
    uniq, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(uniq))]
    point_a, point_b = point_metrics(y, probs_a), point_metrics(y, probs_b)
    diffs: dict[str, list[float]] = {k: [] for k in keys}
    for _ in range(n_boot):
        idx = np.concatenate([members[g] for g in rng.integers(0, len(uniq), len(uniq))])
        ma, mb = point_metrics(y[idx], probs_a[idx]), point_metrics(y[idx], probs_b[idx])
        for k in keys:
            diffs[k].append(ma[k] - mb[k])
    out = {}
    for k in keys:
        d = np.asarray(diffs[k])
        out[k] = {
            "difference": float(point_a[k] - point_b[k]),
            "ci95": (float(np.nanpercentile(d, 2.5)), float(np.nanpercentile(d, 97.5))),
            "p_not_better": float(np.mean(d <= 0)) if n_boot else float("nan"),
        }
    return out


def cluster_bootstrap(
    stat, n: int, groups: np.ndarray | None, n_boot: int = 1000, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """95% percentile intervals of any ``stat(idx) -> {name: value}``, resampling lesions like :func:`bootstrap`.

    For rules that are not a threshold on the summed malignant probability (e.g. a learned referral
    score), so every rule's interval comes from the same lesion-clustered resampling scheme.
    """
    rng = np.random.default_rng(seed)
    if groups is None:
        groups = np.arange(n)
    uniq, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(uniq))]
    samples: dict[str, list[float]] = {}
    for _ in range(n_boot):
        idx = np.concatenate([members[g] for g in rng.integers(0, len(uniq), len(uniq))])
        for k, v in stat(idx).items():
            samples.setdefault(k, []).append(v)
    return {
        k: (float(np.nanpercentile(v, 2.5)), float(np.nanpercentile(v, 97.5))) for k, v in samples.items()
    }
