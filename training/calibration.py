"""Calibration: expected calibration error, reliability bins and temperature scaling."""

from __future__ import annotations

import numpy as np


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log(p) / T): the same as dividing the logits by T (log p = logits - logsumexp)."""
    logits = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def nll(probs: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0)).mean())


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising validation negative log-likelihood (bounded 1-D search on log T)."""
    from scipy.optimize import minimize_scalar

    res = minimize_scalar(
        lambda lt: nll(apply_temperature(probs, float(np.exp(lt))), y),
        bounds=(np.log(0.05), np.log(20.0)),
        method="bounded",
    )
    return float(np.exp(res.x))


def reliability(probs: np.ndarray, y: np.ndarray, n_bins: int = 15) -> dict:
    """Top-label confidence bins: mean confidence, accuracy, count; and the ECE (count-weighted gap)."""
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    bins = []
    ece = 0.0
    for b in range(n_bins):
        m = idx == b
        if m.any():
            gap = abs(conf[m].mean() - correct[m].mean())
            ece += m.mean() * gap
            bins.append(
                {
                    "lo": float(edges[b]),
                    "hi": float(edges[b + 1]),
                    "confidence": float(conf[m].mean()),
                    "accuracy": float(correct[m].mean()),
                    "count": int(m.sum()),
                }
            )
    return {"ece": float(ece), "bins": bins}


def ece(probs: np.ndarray, y: np.ndarray, n_bins: int = 15) -> float:
    return reliability(probs, y, n_bins)["ece"]
