"""Notifications for departments and supervisors.

    GET  /api/v1/notifications?unread=true   a department sees its own; supervisors and admins
                                             see every notification (departments' and theirs)
    POST /api/v1/notifications/{id}/read     mark one read (a department: its own; supervisors:
                                             the supervisors' ones)

Another department's notification answers exactly like a missing one (404).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from router.notifications import service as notifications
from router.notifications.models import Notification
from router.orm import utcnow
from router.workorders.workflow import Role
from service.api.deps import DbSession, Offset
from service.api.security import department_scope, require_roles
from service.auth.security import Actor

router = APIRouter(prefix="/api/v1", tags=["notifications"])

ReaderActor = Annotated[Actor, Depends(require_roles(Role.DEPARTMENT, Role.SUPERVISOR, Role.ADMIN))]
ERRORS: dict[int | str, dict[str, Any]] = {401: {}, 403: {}, 404: {}}


class NotificationRead(BaseModel):
    id: int
    kind: str
    recipient_kind: str
    recipient_code: str | None
    work_order_number: str
    created_at: datetime
    read_at: datetime | None
    message: str


class NotificationList(BaseModel):
    items: list[NotificationRead]


def _read(row: Notification, number: str) -> NotificationRead:
    return NotificationRead(
        id=row.id,
        kind=row.kind,
        recipient_kind=row.recipient_kind,
        recipient_code=row.recipient_code,
        work_order_number=number,
        created_at=row.created_at,
        read_at=row.read_at,
        message=row.message,
    )


@router.get("/notifications", response_model=NotificationList, responses=ERRORS)
def list_notifications(
    db_session: DbSession,
    actor: ReaderActor,
    unread: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> NotificationList:
    """Newest first."""
    rows = notifications.inbox(
        db_session=db_session,
        department_scope=department_scope(actor),
        unread=unread,
        limit=limit,
        offset=offset,
    )
    return NotificationList(items=[_read(row, number) for row, number in rows])


@router.post(
    "/notifications/{notification_id}/read", response_model=NotificationRead, responses=ERRORS
)
def mark_read(notification_id: int, db_session: DbSession, actor: ReaderActor) -> NotificationRead:
    """Idempotent: marking a read notification again keeps the first time."""
    row, number = notifications.mark_read(
        db_session=db_session,
        notification_id=notification_id,
        department_scope=department_scope(actor),
        now=utcnow(),
    )
    return _read(row, number)
