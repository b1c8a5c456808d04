"""Metrics of a fitted classifier on labelled rows: per-level accuracy, macro-F1 and top-3,
department accuracy, calibration (ECE) and the accuracy/coverage curve for auto-dispatch.

Gold labels may stop at any depth; a prediction is judged at the gold label's depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import f1_score

from classifier.calibration import expected_calibration_error, reliability_bins
from classifier.model import HotlineClassifier, Suggestion, split_label

__all__ = ["THRESHOLDS", "coverage_curve", "evaluate", "evaluate_suggestions"]

THRESHOLDS = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99)
_TOP_K = 3


def coverage_curve(
    confidence: Sequence[float], correct: Sequence[bool], thresholds: Sequence[float] = THRESHOLDS
) -> list[dict[str, float]]:
    """For each threshold: the share of appeals auto-dispatched and the accuracy among them."""
    conf = np.asarray(confidence, dtype=float)
    hit = np.asarray(correct, dtype=bool)
    out = []
    for t in thresholds:
        mask = conf >= t
        covered = int(mask.sum())
        out.append(
            {
                "threshold": float(t),
                "coverage": covered / len(conf) if len(conf) else 0.0,
                "accuracy": float(hit[mask].mean()) if covered else float("nan"),
                "count": covered,
            }
        )
    return out


def _prefix(path: str, depth: int) -> str:
    return "/".join(split_label(path)[:depth])


def evaluate_suggestions(
    suggestions: Sequence[Suggestion],
    gold: Sequence[str],
    gold_departments: Sequence[str | None] | None = None,
) -> dict[str, Any]:
    gold_parts = [split_label(g) for g in gold]
    max_depth = max((len(p) for p in gold_parts), default=0)
    levels = []
    for depth in range(1, max_depth + 1):
        rows = [i for i, p in enumerate(gold_parts) if len(p) >= depth]
        if not rows:
            continue
        y_true = ["/".join(gold_parts[i][:depth]) for i in rows]
        y_pred = [_prefix(suggestions[i].label, depth) for i in rows]
        top3 = []
        for i, truth in zip(rows, y_true, strict=True):
            seen: list[str] = []
            for path, _ in suggestions[i].alternatives:
                p = _prefix(path, depth)
                if p not in seen:
                    seen.append(p)
            top3.append(truth in seen[:_TOP_K])
        conf = [_level_confidence(suggestions[i], depth) for i in rows]
        hits = [t == p for t, p in zip(y_true, y_pred, strict=True)]
        levels.append(
            {
                "level": depth,
                "rows": len(rows),
                "accuracy": float(np.mean(hits)),
                "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
                "top3_accuracy": float(np.mean(top3)),
                "ece": expected_calibration_error(conf, hits),
                "classes": len(set(y_true)),
            }
        )
    # Judged at the gold depth: what auto-dispatch would get right or wrong.
    conf_at_gold = [
        _level_confidence(s, len(p)) for s, p in zip(suggestions, gold_parts, strict=True)
    ]
    hit_at_gold = [
        _prefix(s.label, len(p)) == "/".join(p)
        for s, p in zip(suggestions, gold_parts, strict=True)
    ]
    result: dict[str, Any] = {
        "rows": len(gold),
        "levels": levels,
        "accuracy": float(np.mean(hit_at_gold)) if gold else float("nan"),
        "ece": expected_calibration_error(conf_at_gold, hit_at_gold),
        "reliability": reliability_bins(conf_at_gold, hit_at_gold, n_bins=10),
        "coverage_curve": coverage_curve(conf_at_gold, hit_at_gold),
        "department": None,
    }
    if gold_departments is not None:
        rows = [i for i, d in enumerate(gold_departments) if d]
        if rows and any(suggestions[i].department for i in rows):
            predicted = [suggestions[i].department or ("", 0.0) for i in rows]
            hits = [p[0] == gold_departments[i] for p, i in zip(predicted, rows, strict=True)]
            conf = [p[1] for p in predicted]
            top3 = [
                gold_departments[i] in [c for c, _ in suggestions[i].department_alternatives[:3]]
                for i in rows
            ]
            result["department"] = {
                "rows": len(rows),
                "accuracy": float(np.mean(hits)),
                "top3_accuracy": float(np.mean(top3)),
                "ece": expected_calibration_error(conf, hits),
            }
    return result


def _level_confidence(s: Suggestion, depth: int) -> float:
    if not s.levels:
        return s.confidence
    return s.levels[min(depth, len(s.levels)) - 1][1]


def evaluate(
    model: HotlineClassifier,
    texts: Sequence[str],
    gold: Sequence[str],
    gold_departments: Sequence[str | None] | None = None,
    *,
    batch_size: int = 2000,
    progress: Any = None,
) -> dict[str, Any]:
    """Suggest for every text (top-5, no explanations) and compute the metrics."""
    suggestions: list[Suggestion] = []
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        suggestions.extend(model.suggest_batch(batch, k=5, explain=False))
        if progress is not None:
            progress(len(batch))
    return evaluate_suggestions(suggestions, gold, gold_departments)
