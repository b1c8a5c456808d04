"""The model registry: trained versions on disk and in `model_versions`, activation, rollback,
and promotion of a new version only when it is not worse than the active one on the same
held-out data.

Layout: `<versions dir>/<version>/` holds `model.joblib`, `metadata.json` (with a `registry`
entry: version, source, provenance) and, for retrained versions, the `holdout.csv` it was judged
on. Statuses::

    candidate --activate / promote--> active --(another one activated, rollback)--> retired
    candidate --worse than the active one on the held-out data--> rejected (never activated)

A rejected version, or one whose artifact is missing or does not match its checksum, cannot be
activated (`Conflict`, 409). `previous_version` on a row is the version that was active when the
row was activated, so `rollback()` walks back through the activation history. Functions taking
`db_session` only flush; `retrain()` and `promote_if_not_worse()` take a `session_scope` (the
caller's unit of work factory) because they evaluate and train outside any transaction.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from classifier import load_metadata, load_model
from classifier.errors import ArtifactError, ClassifierError, DatasetError
from router.errors import Conflict, NotFound
from router.orm import utcnow
from training.default_model import limited_real_training_set
from training.history import LabelledRow, collect_history, read_base_rows, write_split
from training.models import ModelVersion, TrainingJob
from training.workflow import evaluate_model, train_model

__all__ = [
    "ACTIVE",
    "CANDIDATE",
    "COMPARED_METRICS",
    "REJECTED",
    "RETIRED",
    "Decision",
    "RetrainOutcome",
    "RetrainSpec",
    "activate",
    "adopt_model_dir",
    "check_artifact",
    "compare",
    "coverage_curve",
    "evaluate_on",
    "get_active",
    "get_version",
    "get_version_or_raise",
    "list_versions",
    "promote_if_not_worse",
    "register",
    "retrain",
    "rollback",
    "summarize_metrics",
]

log = logging.getLogger(__name__)

CANDIDATE, ACTIVE, RETIRED, REJECTED = "candidate", "active", "retired", "rejected"
MODEL_FILE, METADATA_FILE, HOLDOUT_FILE = "model.joblib", "metadata.json", "holdout.csv"
COMPARED_METRICS = ("accuracy", "department_accuracy")
"""Category accuracy at the gold depth, and department accuracy: neither may get worse."""
DEMO_BASE_SEED = 2026  # the retraining base corpus; not the demo model's own corpus seed

SessionScope = Callable[[], AbstractContextManager[Session]]
Progress = Callable[[str, float], None]


# -- metrics -------------------------------------------------------------------------------------


def _finite(value: Any) -> Any:
    """JSON-safe copy: NaN and infinities become None (PostgreSQL's JSON refuses them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def summarize_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The figures a supervisor compares, from `training.evaluation.evaluate` output."""
    if not metrics:
        return {}
    levels = metrics.get("levels") or []
    deepest = levels[-1] if levels else {}
    department = metrics.get("department") or {}
    return _finite(
        {
            "rows": metrics.get("rows"),
            "accuracy": metrics.get("accuracy"),
            "macro_f1": deepest.get("macro_f1"),
            "top3_accuracy": deepest.get("top3_accuracy"),
            "department_accuracy": department.get("accuracy"),
            "ece": metrics.get("ece"),
            "levels": [
                {
                    key: level.get(key)
                    for key in ("level", "rows", "accuracy", "macro_f1", "top3_accuracy")
                }
                for level in levels
            ],
        }
    )


def coverage_curve(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    return _finite(
        [
            {
                "threshold": p.get("threshold"),
                "coverage": p.get("coverage"),
                "accuracy": p.get("accuracy"),
            }
            for p in metrics.get("coverage_curve") or []
        ]
    )


def compare(
    candidate: dict[str, Any], active: dict[str, Any], *, tolerance: float
) -> dict[str, Any]:
    """Is `candidate` not worse than `active` on every compared metric (within `tolerance`)?

    A metric the active model has and the candidate lacks counts as worse; one the active model
    lacks is not compared.
    """
    checks = []
    for name in COMPARED_METRICS:
        theirs, ours = active.get(name), candidate.get(name)
        if theirs is None:
            continue
        ok = ours is not None and ours >= theirs - tolerance - 1e-12
        checks.append({"metric": name, "candidate": ours, "active": theirs, "not_worse": ok})
    return {
        "tolerance": tolerance,
        "checks": checks,
        "not_worse": all(c["not_worse"] for c in checks),
    }


# -- reading -------------------------------------------------------------------------------------


def list_versions(*, db_session: Session) -> list[ModelVersion]:
    """Every version, newest first."""
    return list(
        db_session.scalars(
            select(ModelVersion).order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())
        )
    )


def get_version(*, db_session: Session, version: str) -> ModelVersion | None:
    return db_session.scalar(select(ModelVersion).where(ModelVersion.version == version))


def get_version_or_raise(*, db_session: Session, version: str) -> ModelVersion:
    row = get_version(db_session=db_session, version=version)
    if row is None:
        raise NotFound(f"模型版本 {version} 不存在")
    return row


def _actives(db_session: Session, *, lock: bool = False) -> list[ModelVersion]:
    query = (
        select(ModelVersion)
        .where(ModelVersion.status == ACTIVE)
        .order_by(ModelVersion.activated_at.desc(), ModelVersion.id.desc())
    )
    if lock:
        query = query.with_for_update()
    return list(db_session.scalars(query))


def get_active(*, db_session: Session) -> ModelVersion | None:
    """The active version (the latest activated, should a race ever have left two)."""
    actives = _actives(db_session)
    return actives[0] if actives else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_artifact(path: str | Path, *, load: bool = False) -> dict[str, Any]:
    """The metadata of a usable artifact; `Conflict` if it is missing or corrupt.

    With `load`, the model is loaded with every check `classifier.load_model` makes (checksum,
    library versions, label set), as the service will load it.
    """
    directory = Path(path)
    try:
        meta = load_metadata(directory)
        if not (directory / MODEL_FILE).is_file():
            raise ArtifactError(f"model file missing: {directory / MODEL_FILE}")
        if load:
            load_model(directory)
    except ArtifactError as exc:
        raise Conflict(f"模型文件不可用：{exc}") from None
    return meta


# -- writing -------------------------------------------------------------------------------------


def _version_name(db_session: Session, now: datetime, fingerprint: str) -> str:
    digest = fingerprint.split(":")[-1][:6] or "model"
    base = f"{now:%Y%m%d-%H%M%S}-{digest}"
    name, n = base, 1
    while get_version(db_session=db_session, version=name) is not None:
        n += 1
        name = f"{base}-{n}"
    return name


def _write_registry_metadata(directory: Path, entry: dict[str, Any]) -> None:
    meta_path = directory / METADATA_FILE
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["registry"] = entry
    tmp = meta_path.with_name(METADATA_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    tmp.replace(meta_path)


def register(
    *,
    db_session: Session,
    artifact_dir: str | Path,
    versions_dir: str | Path,
    source: str,
    provenance: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    holdout_fingerprint: str = "",
    move: bool = True,
    now: datetime | None = None,
) -> ModelVersion:
    """Move (or copy) a trained artifact into its version directory and add a `candidate` row.

    `metrics` are the evaluation metrics to show (default: the held-out metrics `train_model`
    wrote into metadata.json).
    """
    now = now or utcnow()
    meta = check_artifact(artifact_dir)
    fingerprint = str(meta.get("dataset_fingerprint") or meta.get("data_fingerprint") or "")
    version = _version_name(db_session, now, fingerprint)
    target = Path(versions_dir) / version
    if target.exists():
        raise Conflict(f"模型版本目录已存在：{target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    if move:
        shutil.move(str(artifact_dir), str(target))
    else:
        # The artifact's files only: `versions_dir` may well live inside `artifact_dir`.
        target.mkdir()
        for item in Path(artifact_dir).iterdir():
            if item.is_file():
                shutil.copy2(item, target / item.name)
    clean_provenance = _finite(dict(provenance or {}))
    _write_registry_metadata(
        target,
        {
            "version": version,
            "source": source,
            "holdout_fingerprint": holdout_fingerprint,
            "provenance": clean_provenance,
        },
    )
    raw = metrics if metrics is not None else (meta.get("metrics") or {})
    row = ModelVersion(
        version=version,
        path=str(target.resolve()),
        status=CANDIDATE,
        source=source[:32],
        metrics=summarize_metrics(raw),
        coverage_curve=coverage_curve(raw),
        data_fingerprint=fingerprint[:80],
        holdout_fingerprint=holdout_fingerprint[:80],
        provenance=clean_provenance,
        evaluation={},
        label_depth=int(meta.get("depth") or 3),
        created_at=now,
    )
    db_session.add(row)
    db_session.flush()
    log.info("registered model version %s (%s) at %s", version, source, target)
    return row


def activate(*, db_session: Session, version: str, now: datetime | None = None) -> ModelVersion:
    """Make `version` the active one; the one it replaces becomes `retired`.

    NotFound for an unknown version; Conflict for a rejected one or an unusable artifact.
    Activating the active version changes nothing.
    """
    row = get_version_or_raise(db_session=db_session, version=version)
    if row.status == REJECTED:
        raise Conflict(f"模型版本 {version} 已被拒绝（不优于当时的在用版本），不能启用")
    check_artifact(row.path, load=True)
    actives = _actives(db_session, lock=True)
    if actives and actives[0].id == row.id:
        return row
    for other in actives:
        other.status = RETIRED
    row.previous_version = actives[0].version if actives else None
    row.status = ACTIVE
    row.activated_at = now or utcnow()
    db_session.flush()
    log.info("model version %s activated (was %s)", version, row.previous_version)
    return row


def rollback(*, db_session: Session, now: datetime | None = None) -> ModelVersion:
    """Reactivate the version that was active before the current one; returns it.

    Its own `previous_version` is kept, so repeated rollbacks walk further back.
    """
    actives = _actives(db_session, lock=True)
    if not actives:
        raise Conflict("没有在用的模型版本，无法回滚")
    current = actives[0]
    if not current.previous_version:
        raise Conflict(f"模型版本 {current.version} 之前没有启用过其他版本，无法回滚")
    previous = get_version(db_session=db_session, version=current.previous_version)
    if previous is None or previous.status == REJECTED:
        raise Conflict(f"上一个版本 {current.previous_version} 不可用，无法回滚")
    check_artifact(previous.path, load=True)
    at = now or utcnow()
    for other in actives:
        other.status = RETIRED
    current.notes = (current.notes + "\n" if current.notes else "") + (
        f"rolled back to {previous.version} at {at.isoformat(timespec='seconds')}"
    )
    previous.status = ACTIVE
    previous.activated_at = at
    db_session.flush()
    log.info("model version %s rolled back to %s", current.version, previous.version)
    return previous


def adopt_model_dir(
    *,
    db_session: Session,
    model_dir: str | Path,
    versions_dir: str | Path,
    source: str = "model_dir",
    now: datetime | None = None,
) -> ModelVersion | None:
    """Register and activate the model in `model_dir` (the demo model, or one written by
    `hotline train --out`) when no version is active, so that the first retrained version is
    compared with what the service serves and a rollback can return to it."""
    if get_active(db_session=db_session) is not None:
        return None
    directory = Path(model_dir)
    if not (directory / MODEL_FILE).is_file() or not (directory / METADATA_FILE).is_file():
        return None
    row = register(
        db_session=db_session,
        artifact_dir=directory,
        versions_dir=versions_dir,
        source=source,
        provenance={"adopted_from": str(directory)},
        move=False,
        now=now,
    )
    return activate(db_session=db_session, version=row.version, now=now)


# -- promotion -----------------------------------------------------------------------------------

# Columns of the files `training.history.write_split` writes.
TEXT_COLUMN, LABEL_COLUMN, DEPARTMENT_COLUMN = "text", "label", "department_code"


def evaluate_on(model_dir: str | Path, holdout: str | Path) -> dict[str, Any]:
    """Raw metrics of a saved model on a held-out file written by `training.history`."""
    report = evaluate_model(
        model_dir=model_dir,
        data=[str(holdout)],
        text_column=TEXT_COLUMN,
        label_column=LABEL_COLUMN,
        department_column=DEPARTMENT_COLUMN,
    )
    metrics: dict[str, Any] = report["metrics"]
    return metrics


@dataclass
class Decision:
    version: str
    promoted: bool
    evaluation: dict[str, Any]
    message: str


def promote_if_not_worse(
    *,
    session_scope: SessionScope,
    version: str,
    holdout: str | Path,
    tolerance: float,
    candidate_metrics: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Decision:
    """Evaluate the candidate and the active version on the same held-out file; activate the
    candidate when it is not worse, else mark it `rejected`. Both scores and the decision are
    stored on the candidate (`evaluation`)."""
    holdout = Path(holdout)
    with session_scope() as db_session:
        row = get_version_or_raise(db_session=db_session, version=version)
        if row.status != CANDIDATE:
            raise Conflict(f"模型版本 {version} 的状态是 {row.status}，不是候选版本")
        candidate_path = row.path
        active = get_active(db_session=db_session)
        active_version, active_path = (active.version, active.path) if active else (None, None)
    holdout_fingerprint = "sha256:" + _sha256(holdout)
    ours = summarize_metrics(candidate_metrics or evaluate_on(candidate_path, holdout))
    evaluation: dict[str, Any] = {
        "holdout_file_sha256": holdout_fingerprint,
        "candidate": ours,
        "active_version": active_version,
        "active": None,
    }
    if active_path is None:
        promote, message = True, "没有在用版本，直接启用"
        evaluation["comparison"] = None
    else:
        try:
            theirs = summarize_metrics(evaluate_on(active_path, holdout))
        except ClassifierError as exc:
            # The service cannot load the active artifact either: a usable candidate is better.
            theirs = {}
            evaluation["active_error"] = str(exc)
        evaluation["active"] = theirs
        comparison = compare(ours, theirs, tolerance=tolerance)
        evaluation["comparison"] = comparison
        promote = comparison["not_worse"]
        figures = "; ".join(
            f"{c['metric']} {_fmt(c['candidate'])} vs {_fmt(c['active'])}"
            for c in comparison["checks"]
        )
        message = (
            f"不差于在用版本 {active_version}（{figures}），已启用"
            if promote
            else f"比在用版本 {active_version} 差（{figures}），未启用"
        )
    with session_scope() as db_session:
        row = get_version_or_raise(db_session=db_session, version=version)
        current = get_active(db_session=db_session)
        if (current.version if current else None) != active_version:
            promote = False
            message = "评估期间在用版本已变更，候选版本保留待人工处理"
            evaluation["decision"] = "undecided"
        else:
            evaluation["decision"] = "promoted" if promote else "rejected"
        evaluation["tolerance"] = tolerance
        evaluation["decided_at"] = (now or utcnow()).isoformat(timespec="seconds")
        row.evaluation = _finite(evaluation)
        row.metrics = ours
        if evaluation["decision"] == "promoted":
            activate(db_session=db_session, version=version, now=now)
        elif evaluation["decision"] == "rejected":
            row.status = REJECTED
        db_session.flush()
    return Decision(version, promote, evaluation, message)


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


# -- retraining ----------------------------------------------------------------------------------


@dataclass
class RetrainSpec:
    """What a retraining run learns from. Base rows come from `base_files`, or, when none are
    given, from a seeded demo corpus of `demo_corpus_size` rows and up to half as many shipped
    real messages and titles (level-1 labels; 0: no base corpus)."""

    base_files: Sequence[str | Path] = ()
    text_column: str = "text"
    label_column: str = "category_code"
    department_column: str | None = "department_code"
    demo_corpus_size: int = 0
    from_db: bool = True
    holdout_share: float = 0.15
    tolerance: float = 0.0
    seed: int = 0
    params: dict[str, Any] | None = None


@dataclass
class RetrainOutcome:
    version: str
    promoted: bool
    message: str
    evaluation: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=dict)


def _real_base_rows(*, limit: int) -> list[LabelledRow]:
    real = limited_real_training_set(limit)
    return [
        LabelledRow(text, path, None, "base", "fixtures/data/real")
        for text, path in zip(real.texts, real.paths, strict=True)
    ]


def _base_rows(spec: RetrainSpec, work_dir: Path) -> tuple[list[LabelledRow], dict[str, Any]]:
    if spec.base_files:
        rows = read_base_rows(
            spec.base_files,
            text_column=spec.text_column,
            label_column=spec.label_column,
            department_column=spec.department_column,
        )
        return rows, {"base_files": [str(p) for p in spec.base_files]}
    if spec.demo_corpus_size > 0:
        from fixtures.generator import write_corpus

        corpus = work_dir / "demo-corpus.csv"
        write_corpus(corpus, spec.demo_corpus_size, seed=DEMO_BASE_SEED, progress=False)
        rows = read_base_rows(
            [corpus],
            text_column="text",
            label_column="category_code",
            department_column="department_code",
        )
        # The real public messages too, as in the default model (level-1 labels, no department;
        # about half as many as synthetic rows at most, so small bases stay small).
        real = _real_base_rows(limit=spec.demo_corpus_size // 2)
        provenance = {
            "demo_corpus": {"rows": spec.demo_corpus_size, "seed": DEMO_BASE_SEED},
            "real_rows": len(real),
        }
        return rows + real, provenance
    return [], {}


def retrain(
    *,
    session_scope: SessionScope,
    spec: RetrainSpec,
    versions_dir: str | Path,
    work_dir: str | Path,
    fallback_model_dir: str | Path | None = None,
    source: str = "retrain",
    extra_provenance: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> RetrainOutcome:
    """Build the dataset (base corpus + work-order history), hold out a stable share, train,
    register the candidate, and promote it only if it is not worse than the active version on
    the held-out rows. Long: no transaction is open while it trains or evaluates."""
    report = progress or (lambda _stage, _fraction: None)
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    report("data", 0.0)
    rows, base_info = _base_rows(spec, work)
    history: list[LabelledRow] = []
    if spec.from_db:
        with session_scope() as db_session:
            history = collect_history(db_session=db_session)
    rows = rows + history
    if not rows:
        raise DatasetError("没有训练数据：既没有基础语料，也没有可用的历史工单")
    split = write_split(rows, work, holdout_share=spec.holdout_share)
    if split.holdout_rows == 0 or split.train_rows == 0:
        raise DatasetError(f"数据太少，无法留出评估集（共 {len(rows)} 行）")
    provenance: dict[str, Any] = {
        **base_info,
        "from_db": spec.from_db,
        "history_rows": len(history),
        "label_sources": split.sources,
        "train_rows": split.train_rows,
        "holdout_rows": split.holdout_rows,
        "holdout_share": spec.holdout_share,
        "seed": spec.seed,
        **(extra_provenance or {}),
    }
    report("train", 0.05)
    model_dir = work / "model"
    train_model(
        [str(split.train)],
        out=model_dir,
        holdout=0.1,
        seed=spec.seed,
        params=spec.params,
        progress=lambda stage, fraction: report(f"train:{stage}"[:32], 0.05 + 0.75 * fraction),
        text_column=TEXT_COLUMN,
        label_column=LABEL_COLUMN,
        department_column=DEPARTMENT_COLUMN,
    )
    report("evaluate", 0.8)
    candidate_metrics = evaluate_on(model_dir, split.holdout)
    shutil.copyfile(split.holdout, model_dir / HOLDOUT_FILE)
    with session_scope() as db_session:
        if fallback_model_dir is not None:
            adopt_model_dir(
                db_session=db_session, model_dir=fallback_model_dir, versions_dir=versions_dir
            )
        row = register(
            db_session=db_session,
            artifact_dir=model_dir,
            versions_dir=versions_dir,
            source=source,
            provenance=provenance,
            metrics=candidate_metrics,
            holdout_fingerprint=split.holdout_fingerprint,
        )
        version, holdout = row.version, Path(row.path) / HOLDOUT_FILE
    report("compare", 0.9)
    decision = promote_if_not_worse(
        session_scope=session_scope,
        version=version,
        holdout=holdout,
        tolerance=spec.tolerance,
        candidate_metrics=candidate_metrics,
    )
    report("done", 1.0)
    return RetrainOutcome(
        version=version,
        promoted=decision.promoted,
        message=decision.message,
        evaluation=decision.evaluation,
        provenance=provenance,
    )


STALE_JOB = timedelta(hours=2)
"""A queued or running job not updated for this long is taken as dead (a new one may start)."""


def queue_training_job(
    *,
    db_session: Session,
    params: dict[str, Any],
    requested_by: str,
    now: datetime | None = None,
    exclusive: bool = True,
) -> TrainingJob:
    """Add a queued training job (the caller runs it or enqueues `training.run`).

    Raises:
        Conflict: `exclusive` and another job is queued or running (and not stale).
    """
    at = now or utcnow()
    if exclusive:
        busy = db_session.scalar(
            select(TrainingJob)
            .where(
                TrainingJob.status.in_(("queued", "running")),
                TrainingJob.updated_at > at - STALE_JOB,
            )
            .limit(1)
        )
        if busy is not None:
            raise Conflict(
                f"训练任务 {busy.id} 正在进行（{busy.status}），请等待其结束", job_id=busy.id
            )
    job = TrainingJob(
        id=str(uuid.uuid4()),
        status="queued",
        params=params,
        requested_by=requested_by[:64],
        created_at=at,
        updated_at=at,
    )
    db_session.add(job)
    db_session.flush()
    return job


def get_job_or_raise(*, db_session: Session, job_id: str) -> TrainingJob:
    job = db_session.get(TrainingJob, job_id)
    if job is None:
        raise NotFound(f"训练任务 {job_id} 不存在")
    return job
