"""Model registry: versions, training jobs, activation and rollback (supervisors and admins).

Training runs on the worker (`training.run`, queue `training`): `POST /models/train` records a
job and queues it through the outbox; `GET /models/jobs/{id}` shows its progress and outcome.
Every change is audited (`model.train`, `model.activate`, `model.rollback`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from router.errors import InvalidInput
from router.orm import utcnow
from router.workorders.workflow import Role
from service import outbox
from service.api.deps import DbSession
from service.api.security import require_roles
from service.auth import audit
from service.auth.security import Actor
from service.worker import names
from training import registry
from training.models import ModelVersion, TrainingJob

router = APIRouter(prefix="/api/v1/models", tags=["models"])

SupervisorActor = Annotated[Actor, Depends(require_roles(Role.SUPERVISOR, Role.ADMIN))]
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown version or job"},
    409: {"description": "Illegal activation or rollback"},
}
"""A queued or running job without progress for this long no longer blocks a new one."""


class CoveragePoint(BaseModel):
    threshold: float | None
    coverage: float | None
    accuracy: float | None


class ModelVersionRead(BaseModel):
    version: str
    created_at: datetime
    active: bool
    status: str
    source: str
    metrics: dict[str, Any]
    coverage_curve: list[CoveragePoint]
    activated_at: datetime | None
    previous_version: str | None
    data_fingerprint: str
    holdout_fingerprint: str
    provenance: dict[str, Any]
    evaluation: dict[str, Any]
    notes: str


class ModelVersionList(BaseModel):
    items: list[ModelVersionRead]


class TrainingJobCreate(BaseModel):
    from_db: bool = Field(default=True, description="Learn from closed and corrected work orders")
    include_base: bool = Field(
        default=True, description="Add the base corpus (configured files or the demo corpus)"
    )


class TrainingJobCreated(BaseModel):
    job_id: str
    status: str


class TrainingJobRead(BaseModel):
    job_id: str
    status: str
    progress: float
    stage: str
    version: str | None
    message: str
    promoted: bool | None
    attempts: int
    requested_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def _version_read(row: ModelVersion) -> ModelVersionRead:
    return ModelVersionRead(
        version=row.version,
        created_at=row.created_at,
        active=row.status == registry.ACTIVE,
        status=row.status,
        source=row.source,
        metrics=row.metrics or {},
        coverage_curve=[CoveragePoint.model_validate(p) for p in row.coverage_curve or []],
        activated_at=row.activated_at,
        previous_version=row.previous_version,
        data_fingerprint=row.data_fingerprint,
        holdout_fingerprint=row.holdout_fingerprint,
        provenance=row.provenance or {},
        evaluation=row.evaluation or {},
        notes=row.notes,
    )


def _job_read(job: TrainingJob) -> TrainingJobRead:
    return TrainingJobRead(
        job_id=job.id,
        status=job.status,
        progress=job.progress,
        stage=job.stage,
        version=job.version,
        message=job.message,
        promoted=job.promoted,
        attempts=job.attempts,
        requested_by=job.requested_by,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


@router.get("", response_model=ModelVersionList)
def list_models(db_session: DbSession, actor: SupervisorActor) -> ModelVersionList:
    """Every registered version, newest first, with its held-out metrics and coverage curve."""
    rows = registry.list_versions(db_session=db_session)
    return ModelVersionList(items=[_version_read(row) for row in rows])


@router.post("/train", status_code=202, response_model=TrainingJobCreated, responses=ERRORS)
def train(
    db_session: DbSession, actor: SupervisorActor, body: TrainingJobCreate | None = None
) -> TrainingJobCreated:
    """Queue a retraining job; one job at a time (409 while another is queued or running)."""
    body = body or TrainingJobCreate()
    if not (body.from_db or body.include_base):
        raise InvalidInput("from_db 与 include_base 不能同时为 false：没有可训练的数据")
    now = utcnow()
    job = registry.queue_training_job(
        db_session=db_session,
        params={"from_db": body.from_db, "include_base": body.include_base, "source": "api"},
        requested_by=actor.username,
        now=now,
    )
    outbox.enqueue(db_session, names.RUN_TRAINING, job_id=job.id)
    audit.record(
        db_session=db_session,
        actor=actor,
        action="model.train",
        target_type="training_job",
        target_id=job.id,
        detail={"from_db": body.from_db, "include_base": body.include_base},
        at=now,
    )
    return TrainingJobCreated(job_id=job.id, status=job.status)


@router.get("/jobs/{job_id}", response_model=TrainingJobRead, responses=ERRORS)
def get_job(job_id: str, db_session: DbSession, actor: SupervisorActor) -> TrainingJobRead:
    return _job_read(registry.get_job_or_raise(db_session=db_session, job_id=job_id))


@router.post("/rollback", response_model=ModelVersionRead, responses=ERRORS)
def rollback(db_session: DbSession, actor: SupervisorActor) -> ModelVersionRead:
    """Reactivate the version that was active before the current one."""
    current = registry.get_active(db_session=db_session)
    row = registry.rollback(db_session=db_session)
    audit.record(
        db_session=db_session,
        actor=actor,
        action="model.rollback",
        target_type="model_version",
        target_id=row.version,
        detail={"from_version": current.version if current else None, "to_version": row.version},
    )
    return _version_read(row)


@router.post("/{version}/activate", response_model=ModelVersionRead, responses=ERRORS)
def activate(version: str, db_session: DbSession, actor: SupervisorActor) -> ModelVersionRead:
    """Serve this version from now on (409 for a rejected version or a missing artifact)."""
    current = registry.get_active(db_session=db_session)
    row = registry.activate(db_session=db_session, version=version)
    audit.record(
        db_session=db_session,
        actor=actor,
        action="model.activate",
        target_type="model_version",
        target_id=row.version,
        detail={"from_version": current.version if current else None, "to_version": row.version},
    )
    return _version_read(row)
