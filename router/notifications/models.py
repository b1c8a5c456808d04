"""Tables of notifications to departments and to the centre's supervisors."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from router.orm import Base, BigId, utcnow

__all__ = ["Notification", "NotificationKind", "RecipientKind"]


class RecipientKind(StrEnum):
    DEPARTMENT = "department"  # the department holding the order (recipient_code is its code)
    SUPERVISORS = "supervisors"  # every supervisor of the centre (no recipient_code)


class NotificationKind(StrEnum):
    DEADLINE_WARNING = "deadline_warning"
    OVERDUE = "overdue"
    HOTSPOT = "hotspot"  # to supervisors: a surge at one place (the order is its latest appeal)
    CALLBACK_REOPENED = "callback_reopened"  # an unsatisfied citizen reopened the order


KIND_CHECK = "kind IN ({})".format(", ".join(f"'{kind.value}'" for kind in NotificationKind))


class Notification(Base):
    """One message to a department or to the supervisors about one work order."""

    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint("recipient_kind IN ('department', 'supervisors')", name="recipient_kind"),
        CheckConstraint(KIND_CHECK, name="kind"),
        Index("ix_notifications_recipient", "recipient_kind", "recipient_code", "read_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    recipient_kind: Mapped[str] = mapped_column(String(16))
    recipient_code: Mapped[str | None] = mapped_column(String(32))
    work_order_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    message: Mapped[str] = mapped_column(Text)
    read_at: Mapped[datetime | None]
