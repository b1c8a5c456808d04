"""Notifications to departments and to the centre's supervisors: sending and listing them.

A notification is an inbox row, not a delivery: pages and APIs read the unread rows of their
recipient. Functions only flush; the request or task wrapper commits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from router.errors import Forbidden, NotFound
from router.notifications.models import Notification, NotificationKind, RecipientKind
from router.orm import utcnow
from router.workorders.models import WorkOrder

__all__ = ["inbox", "list_notifications", "mark_read", "notify"]


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


def inbox(
    *,
    db_session: Session,
    department_scope: str | None,
    unread: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> list[tuple[Notification, str]]:
    """(notification, work-order number) pairs, newest first: a department's own notifications,
    or every notification for the centre (`department_scope` None)."""
    query = select(Notification, WorkOrder.number).join(
        WorkOrder, Notification.work_order_id == WorkOrder.id
    )
    if department_scope is not None:
        query = query.where(
            Notification.recipient_kind == RecipientKind.DEPARTMENT.value,
            Notification.recipient_code == department_scope,
        )
    if unread:
        query = query.where(Notification.read_at.is_(None))
    rows = db_session.execute(query.order_by(Notification.id.desc()).limit(limit).offset(offset))
    return [(row, number) for row, number in rows]


def mark_read(
    *, db_session: Session, notification_id: int, department_scope: str | None, now: datetime
) -> tuple[Notification, str]:
    """Mark one notification read (the first time is kept) and return it with its order's number.

    Raises:
        NotFound: no such notification, or not this department's.
        Forbidden: the centre marking a department's notification (that would hide it from the
            department that has to act on it).
    """
    row = db_session.get(Notification, notification_id)
    if row is None or (
        department_scope is not None
        and (
            row.recipient_kind != RecipientKind.DEPARTMENT.value
            or row.recipient_code != department_scope
        )
    ):
        raise NotFound(f"notification {notification_id} not found")
    if department_scope is None and row.recipient_kind != RecipientKind.SUPERVISORS.value:
        raise Forbidden("只能由接收部门标记该通知为已读")
    if row.read_at is None:
        row.read_at = now
        db_session.flush()
    number = db_session.scalar(select(WorkOrder.number).where(WorkOrder.id == row.work_order_id))
    return row, number or ""
