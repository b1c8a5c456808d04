"""Celery task for model training: `training.run` retrains from a `training_jobs` row.

The job row is the task's state: a redelivered message (the worker died, `acks_late`) finds it
`running` and trains again; a job already `succeeded` or `failed` is not re-run. Progress is
committed in short transactions of its own, so `GET /api/v1/models/jobs/{id}` shows it while the
model trains; no transaction stays open during training.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from classifier.errors import ClassifierError
from router.errors import AppError
from router.orm import utcnow
from service.config import Settings, get_settings
from service.db import Database
from service.runtime import get_database
from service.worker import names
from service.worker.tasks import TRANSIENT_ERRORS, hotline_task
from training.models import TrainingJob
from training.registry import RetrainSpec, retrain

__all__ = ["retrain_spec", "run_job", "run_training"]

log = logging.getLogger(__name__)

FINISHED = ("succeeded", "failed")


def retrain_spec(params: dict[str, Any], settings: Settings) -> RetrainSpec:
    """The retraining inputs of a job: its parameters over the `HOTLINE_TRAINING_*` settings."""
    data_files = [Path(p) for p in params.get("data_files") or []]
    base_files = data_files or list(settings.training_base_files)
    include_base = bool(params.get("include_base", True))
    return RetrainSpec(
        base_files=base_files if include_base else [],
        text_column=params.get("text_column") or settings.training_text_column,
        label_column=params.get("label_column") or settings.training_label_column,
        department_column=params.get("department_column", settings.training_department_column)
        or None,
        demo_corpus_size=settings.training_demo_corpus_size
        if include_base and not base_files
        else 0,
        from_db=bool(params.get("from_db", True)),
        holdout_share=settings.training_holdout_share,
        tolerance=settings.model_promotion_tolerance,
        seed=settings.training_seed,
    )


class _ProgressWriter:
    """Commits progress at most every `interval` seconds (and at every new stage)."""

    def __init__(self, database: Database, job_id: str, interval: float = 1.0) -> None:
        self.database = database
        self.job_id = job_id
        self.interval = interval
        self._stage = ""
        self._at = 0.0

    def __call__(self, stage: str, fraction: float) -> None:
        now = time.monotonic()
        if stage == self._stage and now - self._at < self.interval:
            return
        self._stage, self._at = stage, now
        with self.database.session() as db_session:
            job = db_session.get(TrainingJob, self.job_id)
            if job is not None:
                job.stage = stage[:32]
                job.progress = round(min(max(fraction, 0.0), 1.0), 3)
                job.updated_at = utcnow()


def _finish(database: Database, job_id: str, **values: Any) -> None:
    with database.session() as db_session:
        job = db_session.get_one(TrainingJob, job_id)
        for name, value in values.items():
            setattr(job, name, value)
        job.finished_at = job.updated_at = utcnow()


def run_job(*, job_id: str, database: Database, settings: Settings) -> str | None:
    """Run one training job to the end; returns its final status (None for an unknown job)."""
    with database.session() as db_session:
        job = db_session.get(TrainingJob, job_id, with_for_update=True)
        if job is None:
            log.warning("training job %s not found", job_id)
            return None
        if job.status in FINISHED:
            log.info("training job %s already %s: not re-run", job_id, job.status)
            return job.status
        now = utcnow()
        job.status = "running"
        job.attempts += 1
        job.started_at = job.started_at or now
        job.updated_at = now
        job.stage, job.progress, job.message = "data", 0.0, ""
        params, requested_by = dict(job.params or {}), job.requested_by
    work_dir = settings.var_dir / "training" / job_id
    try:
        outcome = retrain(
            session_scope=database.session,
            spec=retrain_spec(params, settings),
            versions_dir=settings.model_versions_dir,
            work_dir=work_dir,
            fallback_model_dir=settings.model_dir,
            source=str(params.get("source") or "retrain"),
            extra_provenance={"job_id": job_id, "requested_by": requested_by},
            progress=_ProgressWriter(database, job_id),
        )
    except TRANSIENT_ERRORS:
        raise  # the task retries with backoff; the job stays `running`
    except (AppError, ClassifierError, OSError, ValueError) as exc:
        log.warning("training job %s failed: %s", job_id, exc)
        _finish(database, job_id, status="failed", message=str(exc)[:2000])
        return "failed"
    except Exception as exc:  # a bug: record it on the job rather than retrying forever
        log.exception("training job %s crashed", job_id)
        _finish(database, job_id, status="failed", message=f"{type(exc).__name__}: {exc}"[:2000])
        return "failed"
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    _finish(
        database,
        job_id,
        status="succeeded",
        progress=1.0,
        stage="done",
        version=outcome.version,
        promoted=outcome.promoted,
        message=outcome.message[:2000],
    )
    return "succeeded"


@hotline_task(names.RUN_TRAINING, max_retries=3)
def run_training(db_session: Session, *, job_id: str) -> str | None:
    """Retrain from the job's parameters; register the version; promote it if not worse."""
    del db_session  # long work: run_job commits in short units of its own
    return run_job(job_id=job_id, database=get_database(), settings=get_settings())
