"""Tables of satisfaction callbacks (回访): one row per caller and closure round."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from router.orm import Base, BigId, utcnow
from router.workorders import workflow

__all__ = ["OPEN_STATUSES", "PROVIDERS", "Callback", "CallbackStatus"]

PROVIDERS = ("agent", "gateway")


class CallbackStatus(StrEnum):
    PENDING = "pending"
    CALLING = "calling"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


OPEN_STATUSES = frozenset({CallbackStatus.PENDING, CallbackStatus.CALLING})

_OUTCOMES = tuple(outcome.value for outcome in workflow.CallbackOutcome)


def _one_of(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


class Callback(Base):
    """One satisfaction call to one caller about one closure of a work order.

    ``work_order_id`` is the order that was closed (the master of a merge group); ``appeal_id``
    is the appeal whose caller is called (the master's own or a merged one). ``round`` counts
    the order's closures, so that a reopened and closed-again order is called again.
    """

    __tablename__ = "callbacks"
    __table_args__ = (
        UniqueConstraint("work_order_id", "round", "appeal_id"),
        CheckConstraint(_one_of("status", [s.value for s in CallbackStatus]), name="status"),
        CheckConstraint(f"result IS NULL OR {_one_of('result', _OUTCOMES)}", name="result"),
        CheckConstraint(_one_of("provider", PROVIDERS), name="provider"),
        Index("ix_callbacks_status_due_at", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    work_order_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id"), index=True)
    appeal_id: Mapped[int] = mapped_column(ForeignKey("appeals.id"))
    round: Mapped[int] = mapped_column(Integer, default=1)
    provider: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=CallbackStatus.PENDING.value)
    result: Mapped[str | None] = mapped_column(String(24))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime]
    last_attempt_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
