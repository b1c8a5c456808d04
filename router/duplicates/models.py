"""Tables of merged appeals (并单): the merge history and the duplicate candidates of an order."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from router.orm import Base, BigId, utcnow

__all__ = ["DuplicateCandidate", "MergeRecord"]


class MergeRecord(Base):
    """One merge or unmerge, append-only: who, when, into which master, from which state."""

    __tablename__ = "merge_records"
    __table_args__ = (CheckConstraint("kind IN ('merge', 'unmerge')", name="kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(8))
    master_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id"), index=True)
    work_order_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id"), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    automatic: Mapped[bool] = mapped_column(Boolean, default=False)
    score: Mapped[float | None] = mapped_column(Float)
    previous_state: Mapped[str] = mapped_column(String(24))
    """The merged order's state before the merge (unmerge restores it) or before the unmerge."""
    note: Mapped[str] = mapped_column(Text, default="")


class DuplicateCandidate(Base):
    """An earlier order that duplicate detection found similar to a new one, and why."""

    __tablename__ = "duplicate_candidates"
    __table_args__ = (UniqueConstraint("work_order_id", "candidate_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    work_order_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id"), index=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id"), index=True)
    score: Mapped[float] = mapped_column(Float)
    text_similarity: Mapped[float] = mapped_column(Float)
    action: Mapped[str] = mapped_column(String(16))
    """``suggest`` / ``auto_merge`` for the best candidate above the thresholds, else ``none``."""
    place_relation: Mapped[str] = mapped_column(String(16))
    category_relation: Mapped[str] = mapped_column(String(16))
    same_caller: Mapped[bool] = mapped_column(Boolean, default=False)
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
