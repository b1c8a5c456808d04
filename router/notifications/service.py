"""Notifications to departments and to the centre's supervisors: sending and listing them.

A notification is an inbox row, not a delivery: pages and APIs read the unread rows of their
recipient. Functions only flush; the request or task wrapper commits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from router.notifications.models import Notification, NotificationKind, RecipientKind
from router.orm import utcnow
from router.workorders.models import WorkOrder

__all__ = ["list_notifications", "notify"]


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
