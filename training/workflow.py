"""Train, predict and evaluate from files: what `hotline train|predict|evaluate` run.

Labels are resolved with the category catalogue (codes, paths or names become paths) unless the
model is trained on free labels; the classifier itself never sees the catalogue.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from classifier import HotlineClassifier, load_metadata, load_model, save_model
from classifier.errors import DatasetError
from classifier.model import split_label
from fixtures import DATA_DIR
from router.catalogue import default_catalogue, set_default_directory
from training.datasets import Dataset, load_dataset, write_rows
from training.evaluation import evaluate
from training.labels import LabelResolver

__all__ = [
    "TrainResult",
    "default_user_dict",
    "evaluate_model",
    "predict_file",
    "resolver_for",
    "routed_department",
    "train_model",
]

ProgressFactory = Callable[[str, int], Any]


def default_user_dict() -> str | None:
    """The reference jieba user dictionary shipped with the fixtures, if present."""
    try:
        from fixtures.generator import USER_DICT_PATH
    except ImportError:
        return None
    return str(USER_DICT_PATH) if Path(USER_DICT_PATH).is_file() else None


def resolver_for(kind: str) -> LabelResolver:
    """A resolver with the default catalogue, or none for free labels."""
    if kind == "free":
        return LabelResolver(None)
    # The shipped reference data, unless the application named its own folder.
    set_default_directory(DATA_DIR, replace=False)
    return LabelResolver(default_catalogue())


@dataclass
class TrainResult:
    model_dir: Path
    rows: int
    dropped: int
    label_kind: str
    classes: int
    depth: int
    seconds: float
    metrics: dict[str, Any] | None


def routed_department(suggestion: Any, info: dict[str, str | None]) -> str | None:
    """The department a suggestion routes to without a place: the learned one, else the
    catalogue's lead of the predicted category (or of its nearest ancestor with one), so that a
    model trained on level-1 labels alone still names a department."""
    if suggestion.department is not None:
        return str(suggestion.department[0])
    return info["lead_department"]


def _routed_department_metrics(
    model: HotlineClassifier,
    texts: Sequence[str],
    gold: Sequence[str | None] | None,
    resolver: LabelResolver,
) -> dict[str, Any] | None:
    """Accuracy of `routed_department` on the rows with a gold department (taxonomy models)."""
    rows = [i for i, d in enumerate(gold or []) if d]
    if gold is None or not rows or resolver.catalogue is None:
        return None
    suggestions = model.suggest_batch([texts[i] for i in rows], k=1, explain=False)
    routed = [routed_department(s, resolver.describe(s.label)) for s in suggestions]
    learned = sum(s.department is not None for s in suggestions)
    return {
        "rows": len(rows),
        "accuracy": float(np.mean([r == gold[i] for r, i in zip(routed, rows, strict=True)])),
        "from_catalogue": 1.0 - learned / len(rows),
    }


def _split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_test = round(n * fraction)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def train_model(
    data: Sequence[str | Path],
    *,
    text_column: str,
    label_column: str,
    out: str | Path,
    department_column: str | None = None,
    free_labels: bool = False,
    holdout: float = 0.1,
    user_dict: str | None = None,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    progress: Callable[[str, float], None] | None = None,
) -> TrainResult:
    """Train on the files, evaluate on a held-out share (metrics go to metadata.json), save.

    The saved model is the one trained without the held-out rows, so its metrics are honest.
    """
    started = time.perf_counter()
    dataset = load_dataset(
        data,
        text_column=text_column,
        label_column=label_column,
        department_column=department_column,
    )
    assert dataset.labels is not None
    resolver = resolver_for("free" if free_labels else "auto")
    resolved = resolver.resolve(dataset.labels)
    paths = resolved.paths
    if len({split_label(p)[0] for p in paths if split_label(p)}) < 2:
        raise DatasetError(
            "the label set has a single class; need at least two first-level classes"
        )
    if not 0 <= holdout < 0.5:
        raise DatasetError("--holdout must be in [0, 0.5)")
    n = len(paths)
    fit_rows, test_rows = (
        _split(n, holdout, seed) if holdout > 0 and n >= 50 else (np.arange(n), None)
    )
    texts = dataset.texts
    depts = dataset.departments
    if user_dict is None and resolved.kind == "taxonomy":
        user_dict = default_user_dict()
    model = HotlineClassifier(user_dict=user_dict, random_state=seed, **(params or {}))
    model.fit(
        [texts[i] for i in fit_rows],
        [paths[i] for i in fit_rows],
        [depts[i] for i in fit_rows] if depts else None,
        progress=progress,
    )
    metrics = None
    if test_rows is not None and len(test_rows):
        metrics = evaluate(
            model,
            [texts[i] for i in test_rows],
            [paths[i] for i in test_rows],
            [depts[i] for i in test_rows] if depts else None,
        )
        metrics["routed_department"] = _routed_department_metrics(
            model,
            [texts[i] for i in test_rows],
            [depts[i] for i in test_rows] if depts else None,
            resolver,
        )
        metrics["split"] = {
            "holdout": holdout,
            "seed": seed,
            "train_rows": len(fit_rows),
            "test_rows": len(test_rows),
        }
    seconds = time.perf_counter() - started
    save_model(
        model,
        out,
        metadata_extra={
            "label_kind": resolved.kind,
            "text_column": text_column,
            "label_column": label_column,
            "department_column": department_column,
            "data_files": dataset.files,
            "dataset_fingerprint": dataset.fingerprint(),
            "rows": n,
            "train_rows": len(fit_rows),
            "dropped_rows": dataset.dropped,
            "train_seconds": round(seconds, 2),
            "metrics": metrics or {},
        },
    )
    return TrainResult(
        model_dir=Path(out),
        rows=n,
        dropped=dataset.dropped,
        label_kind=resolved.kind,
        classes=len(model.classes_),
        depth=int(model.depth_),
        seconds=seconds,
        metrics=metrics,
    )


def predict_file(
    *,
    model_dir: str | Path,
    input_path: str | Path,
    text_column: str,
    output_path: str | Path,
    batch_size: int = 2000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the input rows plus the predictions; returns the number of rows written."""
    meta = load_metadata(model_dir)
    model = load_model(model_dir)
    dataset = load_dataset([input_path], text_column=text_column, keep_rows=True)
    taxonomy = meta.get("label_kind") == "taxonomy"
    resolver = resolver_for("auto" if taxonomy else "free")
    added = ["predicted_label", "confidence"]
    if taxonomy:
        added += ["category_code", "category_path"]
    if taxonomy or model.departments_ is not None:
        added += ["department_code"]
    added += ["department_confidence", "alternatives", "terms"]
    out_rows: list[dict[str, Any]] = []
    for start in range(0, len(dataset.texts), batch_size):
        batch = dataset.texts[start : start + batch_size]
        for row, s in zip(dataset.rows[start:], model.suggest_batch(batch, k=5), strict=False):
            out: dict[str, Any] = dict(row)
            out["predicted_label"] = s.label
            out["confidence"] = round(s.confidence, 4)
            if taxonomy:
                info = resolver.describe(s.label)
                out["category_code"] = info["category_code"]
                out["category_path"] = info["category_path"]
                out["department_code"] = routed_department(s, info)
            elif s.department is not None:
                out["department_code"] = s.department[0]
            out["department_confidence"] = round(s.department[1], 4) if s.department else None
            out["alternatives"] = "|".join(f"{p}:{c:.3f}" for p, c in s.alternatives[1:])
            out["terms"] = " ".join(t for t, _ in s.terms)
            out_rows.append(out)
        if progress is not None:
            progress(len(batch))
    columns = [c for c in dataset.columns if c not in added] + added
    write_rows(output_path, columns, out_rows)
    return len(out_rows)


def evaluate_model(
    *,
    model_dir: str | Path,
    data: Sequence[str | Path],
    text_column: str,
    label_column: str,
    department_column: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Metrics of a saved model on labelled files, as a report dict (see `training.report`)."""
    meta = load_metadata(model_dir)
    model = load_model(model_dir)
    dataset: Dataset = load_dataset(
        data,
        text_column=text_column,
        label_column=label_column,
        department_column=department_column,
    )
    assert dataset.labels is not None
    kind = meta.get("label_kind", "free")
    resolved = resolver_for(kind).resolve(dataset.labels, kind=kind)
    if len({split_label(p)[0] for p in resolved.paths}) < 2:
        raise DatasetError("the evaluation labels have a single class; need at least two")
    metrics = evaluate(model, dataset.texts, resolved.paths, dataset.departments, progress=progress)
    if kind == "taxonomy":
        metrics["routed_department"] = _routed_department_metrics(
            model, dataset.texts, dataset.departments, resolver_for(kind)
        )
    return {
        "model": str(model_dir),
        "data": dataset.files,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "data_fingerprint": dataset.fingerprint(),
        "model_data_fingerprint": meta.get("data_fingerprint"),
        "metrics": metrics,
    }
