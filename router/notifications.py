"""Notifications to departments and to the centre's supervisors: a table and its queries.

A notification is an inbox row, not a delivery: pages and APIs read the unread rows of their
recipient. Functions only flush; the request or task wrapper commits.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from router.models import WorkOrder
from router.orm import Base, BigId, utcnow

__all__ = [
    "Notification",
    "NotificationKind",
    "RecipientKind",
    "list_notifications",
    "notify",
]


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


def notify(
    *,
    db_session: Session,
    work_order: WorkOrder,
    recipient_kind: str,
    kind: str,
    message: str,
    recipient_code: str | None = None,
    now: datetime | None = None,
) -> Notification:
    """Add one notification about ``work_order``.

    Raises:
        ValueError: an unknown recipient or notification kind, or a department notification
            without a department code.
    """
    recipient = RecipientKind(recipient_kind)
    NotificationKind(kind)
    if recipient is RecipientKind.DEPARTMENT and not recipient_code:
        raise ValueError("a department notification needs the department's code")
    row = Notification(
        created_at=now or utcnow(),
        recipient_kind=recipient.value,
        recipient_code=recipient_code if recipient is RecipientKind.DEPARTMENT else None,
        work_order_id=work_order.id,
        kind=kind,
        message=message,
    )
    db_session.add(row)
    db_session.flush()
    return row


def list_notifications(
    *,
    db_session: Session,
    recipient_kind: str,
    recipient_code: str | None = None,
    work_order_id: int | None = None,
    unread_only: bool = False,
    limit: int = 100,
) -> list[Notification]:
    """A recipient's notifications, newest first (``recipient_code`` selects the department)."""
    recipient = RecipientKind(recipient_kind)
    query = select(Notification).where(Notification.recipient_kind == recipient.value)
    if recipient is RecipientKind.DEPARTMENT and recipient_code is not None:
        query = query.where(Notification.recipient_code == recipient_code)
    if work_order_id is not None:
        query = query.where(Notification.work_order_id == work_order_id)
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    query = query.order_by(Notification.id.desc()).limit(limit)
    return list(db_session.scalars(query))
