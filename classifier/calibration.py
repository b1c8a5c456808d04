"""Turning linear-model scores into calibrated probabilities, and measuring calibration.

Temperature scaling (one scalar per level) keeps prediction a single matrix product, which a
calibrated one-vs-rest wrapper with hundreds of classes is not.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import minimize_scalar

__all__ = [
    "expected_calibration_error",
    "fit_temperature",
    "reliability_bins",
    "softmax",
]


def softmax(scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of `scores / temperature` (1-D or 2-D)."""
    z = np.asarray(scores, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def fit_temperature(
    scores: Sequence[np.ndarray],
    targets: Sequence[int],
    *,
    bounds: tuple[float, float] = (0.01, 20),
) -> float:
    """The temperature minimising the negative log-likelihood of `targets`.

    `scores` is a list of 1-D score vectors (rows may differ in length: each comes from the node
    model of its own parent); `targets[i]` indexes the true class in `scores[i]`.
    """
    rows = [np.asarray(s, dtype=np.float64) for s in scores]
    rows_t = [(s, int(t)) for s, t in zip(rows, targets, strict=True) if len(s) > 1]
    if not rows_t:
        return 1.0
    # Group by width so each group is one vectorised log-softmax.
    groups: dict[int, tuple[list[np.ndarray], list[int]]] = {}
    for s, t in rows_t:
        g = groups.setdefault(len(s), ([], []))
        g[0].append(s)
        g[1].append(t)
    stacked = [(np.vstack(ss), np.asarray(tt)) for ss, tt in groups.values()]

    def nll(log_t: float) -> float:
        temperature = float(np.exp(log_t))
        total = 0.0
        for mat, tgt in stacked:
            z = mat / temperature
            z = z - z.max(axis=1, keepdims=True)
            log_norm = np.log(np.exp(z).sum(axis=1))
            total -= float((z[np.arange(len(tgt)), tgt] - log_norm).sum())
        return total

    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    result = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-3})
    return float(np.exp(result.x))


def reliability_bins(
    confidence: Sequence[float], correct: Sequence[bool], n_bins: int = 15
) -> list[dict[str, float]]:
    """Equal-width confidence bins: count, mean confidence and accuracy of each non-empty bin."""
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        mask = index == b
        if mask.any():
            bins.append(
                {
                    "lower": float(edges[b]),
                    "upper": float(edges[b + 1]),
                    "count": int(mask.sum()),
                    "confidence": float(conf[mask].mean()),
                    "accuracy": float(hit[mask].mean()),
                }
            )
    return bins


def expected_calibration_error(
    confidence: Sequence[float], correct: Sequence[bool], n_bins: int = 15
) -> float:
    """ECE: the count-weighted mean |accuracy - confidence| over equal-width bins."""
    n = len(confidence)
    if n == 0:
        return float("nan")
    bins = reliability_bins(confidence, correct, n_bins)
    return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins) / n)
