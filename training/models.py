"""Tables of the model registry: trained model versions and training jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from router.orm import Base, BigId, utcnow


class ModelVersion(Base):
    """A trained classifier artifact known to the registry; at most one is active.

    `status`: candidate (registered, undecided), active (served), retired (was active), rejected
    (worse than the active model on the same held-out data; never activated). `previous_version`
    is the version that was active when this one was activated: what a rollback returns to.
    `evaluation` records the promotion decision with both models' scores.
    """

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(String(64), unique=True)
    path: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), default="candidate", index=True)
    source: Mapped[str] = mapped_column(String(32), default="")
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    coverage_curve: Mapped[list[Any]] = mapped_column(JSON, default=list)
    data_fingerprint: Mapped[str] = mapped_column(String(80), default="")
    holdout_fingerprint: Mapped[str] = mapped_column(String(80), default="")
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    evaluation: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    label_depth: Mapped[int] = mapped_column(Integer, default=3)
    previous_version: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    activated_at: Mapped[datetime | None]
    notes: Mapped[str] = mapped_column(Text, default="")


class TrainingJob(Base):
    """One supervisor retraining run (`training.run`): its parameters, progress and outcome."""

    __tablename__ = "training_jobs"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed')", name="status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stage: Mapped[str] = mapped_column(String(32), default="")
    message: Mapped[str] = mapped_column(Text, default="")
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    requested_by: Mapped[str] = mapped_column(String(64), default="")
    version: Mapped[str | None] = mapped_column(String(64))
    promoted: Mapped[bool | None] = mapped_column(Boolean)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
