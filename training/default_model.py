"""The recipe of the shipped default model: the synthetic leaf corpus and the real public messages.

Mixed depth: the synthetic appeals (`fixtures.generator`) are labelled down to the leaf and carry
the department that handled them; the real messages and titles (`fixtures.real`) carry a level-1
category only. `HotlineClassifier` trains each node on the rows labelled below it, so the real
rows teach the root (the level-1 decision, on real language), the synthetic rows teach every node
and the department model, which learns only from rows with a department. The temperatures are
fitted on real held-out rows where the labels reach (the level-1 decision), since synthetic rows
are far easier and would make the model overconfident on real text.

`hotline run` (`service.bootstrap.ensure_demo_model`) and `benchmarks.real_routing` both train
through `fit_default_model`, so the benchmark measures what is shipped.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from classifier import HotlineClassifier, save_model
from fixtures import real
from fixtures.generator import generate_appeals
from training.labels import LabelResolver
from training.workflow import TrainResult, default_user_dict, resolver_for

__all__ = [
    "DEFAULT_SYNTHETIC_COUNT",
    "SYNTHETIC_SEED",
    "TrainingSet",
    "default_training_set",
    "fit_default_model",
    "limited_real_training_set",
    "real_training_set",
    "synthetic_training_set",
    "train_default_model",
]

# Synthetic appeals in the default model. 40,000 keeps `hotline run` (corpus, training, start)
# within 3 minutes on 2 cores (see docs/models.md for the measured wall time).
DEFAULT_SYNTHETIC_COUNT = 40_000
SYNTHETIC_SEED = 12345


@dataclass
class TrainingSet:
    """Texts, "/"-joined category paths (any depth), departments (None: unknown), and whether each
    row is a real appeal (`real`: the calibration prefers those rows)."""

    texts: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    departments: list[str | None] = field(default_factory=list)
    real: list[bool] = field(default_factory=list)
    sources: Counter[str] = field(default_factory=Counter)

    def add(
        self,
        source: str,
        texts: Sequence[str],
        paths: Sequence[str],
        departments: Sequence[str | None] | None = None,
        *,
        real: bool,
    ) -> None:
        self.texts.extend(texts)
        self.paths.extend(paths)
        self.departments.extend(departments if departments is not None else [None] * len(texts))
        self.real.extend([real] * len(texts))
        self.sources[source] += len(texts)

    def __add__(self, other: TrainingSet) -> TrainingSet:
        return TrainingSet(
            self.texts + other.texts,
            self.paths + other.paths,
            self.departments + other.departments,
            self.real + other.real,
            self.sources + other.sources,
        )

    def __len__(self) -> int:
        return len(self.texts)


def _resolver() -> LabelResolver:
    return resolver_for("taxonomy")


def synthetic_training_set(
    count: int, *, seed: int = SYNTHETIC_SEED, resolver: LabelResolver | None = None
) -> TrainingSet:
    """`count` generated appeals labelled at the leaf, with their department."""
    resolver = resolver or _resolver()
    rows = list(generate_appeals(count, seed=seed))
    out = TrainingSet()
    out.add(
        "synthetic",
        [r["text"] for r in rows],
        resolver.resolve([r["category_code"] for r in rows], kind="taxonomy").paths,
        [r["department_code"] or None for r in rows],
        real=False,
    )
    return out


def real_training_set(
    *,
    messages: tuple[Sequence[str], Sequence[str]] | None = None,
    titles: tuple[Sequence[str], Sequence[str]] | None = None,
    resolver: LabelResolver | None = None,
) -> TrainingSet:
    """Real texts with level-1 labels (names such as 城乡建设 or codes), no department.

    `messages` and `titles` are (texts, labels); None takes all the shipped ones
    (`fixtures.real`), an empty pair none.
    """
    resolver = resolver or _resolver()
    if messages is None:
        m = real.labelled_messages()
        messages = (m.texts, m.labels)
    if titles is None:
        t = real.labelled_titles()
        titles = (t.texts, t.labels)
    out = TrainingSet()
    for source, (texts, labels) in (("real_messages", messages), ("real_titles", titles)):
        if len(texts):
            paths = resolver.resolve(list(labels), kind="taxonomy").paths
            out.add(source, list(texts), paths, real=True)
    return out


def _every_nth(pair: tuple[list[str], list[str]], limit: int) -> tuple[list[str], list[str]]:
    step = max(1, -(-len(pair[0]) // max(limit, 1)))
    return pair[0][::step], pair[1][::step]


def default_training_set(
    *,
    synthetic_count: int = DEFAULT_SYNTHETIC_COUNT,
    synthetic_seed: int = SYNTHETIC_SEED,
    real_limit: int | None = None,
) -> TrainingSet:
    """What the default model learns from: the synthetic corpus and the shipped real rows.

    `real_limit` caps the real messages and the real titles at about that many each (every n-th
    row), for small demo models; None takes them all.
    """
    resolver = _resolver()
    return synthetic_training_set(
        synthetic_count, seed=synthetic_seed, resolver=resolver
    ) + limited_real_training_set(real_limit, resolver=resolver)


def limited_real_training_set(
    limit: int | None, *, resolver: LabelResolver | None = None
) -> TrainingSet:
    """The shipped real messages and titles, about `limit` of each at most (every n-th row;
    None: all of them)."""
    m, t = real.labelled_messages(), real.labelled_titles()
    messages, titles = (m.texts, m.labels), (t.texts, t.labels)
    if limit is not None:
        messages, titles = _every_nth(messages, limit), _every_nth(titles, limit)
    return real_training_set(messages=messages, titles=titles, resolver=resolver)


def fit_default_model(
    training_set: TrainingSet,
    *,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> HotlineClassifier:
    """Fit the default model's classifier on `training_set` (calibrated on its real rows)."""
    options: dict[str, Any] = {"n_jobs": -1, "user_dict": default_user_dict(), **(params or {})}
    model = HotlineClassifier(random_state=seed, **options)
    departments = training_set.departments if any(training_set.departments) else None
    return model.fit(
        training_set.texts,
        training_set.paths,
        departments,
        calibrate_on=training_set.real if any(training_set.real) else None,
        progress=progress,
    )


def train_default_model(
    out: str | Path,
    *,
    seed: int = 0,
    synthetic_count: int = DEFAULT_SYNTHETIC_COUNT,
    real_limit: int | None = None,
    params: dict[str, Any] | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> TrainResult:
    """Build the default training set, fit, and save the model to `out` with its provenance.

    No rows are held out (every real row helps the shipped model); its measured quality on real
    held-out data is what `python -m benchmarks.real_routing` reports for the same recipe.
    """
    started = time.perf_counter()
    training_set = default_training_set(synthetic_count=synthetic_count, real_limit=real_limit)
    model = fit_default_model(training_set, seed=seed, params=params, progress=progress)
    seconds = time.perf_counter() - started
    save_model(
        model,
        out,
        metadata_extra={
            "label_kind": "taxonomy",
            "text_column": "text",
            "label_column": "category",
            "department_column": "department_code",
            "data_files": ["fixtures.generator", "fixtures/data/real"],
            "dataset_fingerprint": model.data_fingerprint_,
            "rows": len(training_set),
            "train_rows": len(training_set),
            "dropped_rows": 0,
            "train_seconds": round(seconds, 2),
            "default_model": {
                "synthetic_count": synthetic_count,
                "synthetic_seed": SYNTHETIC_SEED,
                "real_limit": real_limit,
                "sources": dict(training_set.sources),
                "calibration": "real rows where labelled (level 1), synthetic below",
            },
            "metrics": {},
        },
    )
    return TrainResult(
        model_dir=Path(out),
        rows=len(training_set),
        dropped=0,
        label_kind="taxonomy",
        classes=len(model.classes_),
        depth=int(model.depth_),
        seconds=seconds,
        metrics=None,
    )
