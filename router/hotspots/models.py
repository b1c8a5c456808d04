"""Tables of hotspots (热点): the hotspots the periodic scan found and their appeals."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from router.orm import Base, BigId, utcnow

__all__ = ["HotspotAppealRow", "HotspotRow"]


class HotspotRow(Base):
    """A place x category with a surge of appeals, or a problem reported by many callers."""

    __tablename__ = "hotspots"
    __table_args__ = (
        CheckConstraint("kind IN ('volume', 'many_callers')", name="kind"),
        Index("ix_hotspots_key", "kind", "place_code", "category_code", "last_seen"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    place_code: Mapped[str | None] = mapped_column(String(32))
    category_code: Mapped[str | None] = mapped_column(String(16))
    count: Mapped[int] = mapped_column(Integer)
    distinct_callers: Mapped[int] = mapped_column(Integer, default=0)
    baseline: Mapped[float] = mapped_column(Float, default=0.0)
    """The expected count from the cell's usual level (volume hotspots)."""
    score: Mapped[float] = mapped_column(Float)
    p_value: Mapped[float] = mapped_column(Float, default=1.0)
    trend: Mapped[list[Any]] = mapped_column(JSON, default=list)
    """[{"at": ISO bucket start, "count": n}], oldest first."""
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    notified_at: Mapped[datetime | None]


class HotspotAppealRow(Base):
    """An order that belongs to a hotspot."""

    __tablename__ = "hotspot_appeals"

    hotspot_id: Mapped[int] = mapped_column(ForeignKey("hotspots.id"), primary_key=True)
    work_order_id: Mapped[int] = mapped_column(
        ForeignKey("work_orders.id"), primary_key=True, index=True
    )
