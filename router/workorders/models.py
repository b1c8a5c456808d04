"""Tables of work orders: appeals, work orders and their append-only event log.

An appeal (诉求) is what a citizen submitted, stored exactly once before anything else happens;
its work order (工单) is what the centre routes and tracks. The event log is append-only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from router.orm import Base, BigId, utcnow


class Appeal(Base):
    """A citizen's appeal as received from a channel; never changed after intake except links."""

    __tablename__ = "appeals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16), index=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    text: Mapped[str] = mapped_column(Text)
    appeal_type: Mapped[str | None] = mapped_column(String(16))
    caller_phone: Mapped[str | None] = mapped_column(String(32), index=True)
    caller_name: Mapped[str | None] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(String(300))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    attachments: Mapped[list[Any]] = mapped_column(JSON, default=list)
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    external_id: Mapped[str | None] = mapped_column(String(128), index=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    work_order: Mapped[WorkOrder | None] = relationship(
        back_populates="appeal", foreign_keys="WorkOrder.appeal_id", uselist=False
    )


class WorkOrder(Base):
    """The routed, tracked unit of work for one appeal (or a master for merged appeals)."""

    __tablename__ = "work_orders"
    __table_args__ = (
        Index("ix_work_orders_department_state", "department_code", "state"),
        Index("ix_work_orders_state_deadline", "state", "deadline_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    appeal_id: Mapped[int] = mapped_column(ForeignKey("appeals.id"), unique=True)
    state: Mapped[str] = mapped_column(String(24), index=True)
    category_code: Mapped[str | None] = mapped_column(ForeignKey("categories.code"))
    department_code: Mapped[str | None] = mapped_column(ForeignKey("departments.code"))
    assisting_department_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    district_code: Mapped[str | None] = mapped_column(String(32), index=True)
    street_code: Mapped[str | None] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(8), default="normal")
    confidence: Mapped[float | None] = mapped_column(Float)
    routing_source: Mapped[str | None] = mapped_column(String(16))
    suggestion: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    model_version: Mapped[str | None] = mapped_column(String(64))
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)
    return_count: Mapped[int] = mapped_column(Integer, default=0)
    extension_count: Mapped[int] = mapped_column(Integer, default=0)
    master_id: Mapped[int | None] = mapped_column(ForeignKey("work_orders.id"), index=True)
    repeat_of_id: Mapped[int | None] = mapped_column(ForeignKey("work_orders.id"))
    """The same caller's latest earlier order about the same problem (repeat caller, 重复来电)."""
    site: Mapped[str | None] = mapped_column(String(100))
    """The compound, road or landmark the appeal names, as duplicate detection resolved it
    ('' for none; None until checked)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    dispatched_at: Mapped[datetime | None]
    accept_deadline_at: Mapped[datetime | None]
    accepted_at: Mapped[datetime | None]
    deadline_at: Mapped[datetime | None]
    warned_at: Mapped[datetime | None]
    replied_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012  (SQLAlchemy reads it)

    appeal: Mapped[Appeal] = relationship(back_populates="work_order", foreign_keys=[appeal_id])
    events: Mapped[list[WorkOrderEvent]] = relationship(
        back_populates="work_order", order_by="WorkOrderEvent.id"
    )


class WorkOrderEvent(Base):
    """One entry of a work order's append-only history: who, when, from, to, why."""

    __tablename__ = "work_order_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    work_order_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(24))
    to_state: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    work_order: Mapped[WorkOrder] = relationship(back_populates="events")
