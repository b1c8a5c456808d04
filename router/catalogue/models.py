"""Tables of the reference catalogue: departments and the category taxonomy."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from router.orm import Base


class Department(Base):
    """A body that receives work orders: a city department, a utility, a district or a street."""

    __tablename__ = "departments"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16), index=True)
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("departments.code"))
    phone: Mapped[str] = mapped_column(String(64), default="")
    delivery: Mapped[str] = mapped_column(String(16), default="queue")
    webhook_url: Mapped[str] = mapped_column(String(512), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Category(Base):
    """One node of the three-level event taxonomy; routing attributes are set on leaves."""

    __tablename__ = "categories"
    __table_args__ = (CheckConstraint("level BETWEEN 1 AND 3", name="level_range"),)

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    level: Mapped[int] = mapped_column(Integer)
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("categories.code"))
    path: Mapped[str] = mapped_column(String(400), index=True)
    lead_department_code: Mapped[str | None] = mapped_column(ForeignKey("departments.code"))
    assisting_department_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    handling_scope: Mapped[str] = mapped_column(String(8), default="city")
    appeal_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    deadline_value: Mapped[int] = mapped_column(Integer, default=0)
    deadline_unit: Mapped[str] = mapped_column(String(16), default="working_days")
    priority: Mapped[str] = mapped_column(String(8), default="normal")
    urgent_keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
