"""The audit log: one append-only row per action, with the actor; and its search.

Action names are dotted, `<object>.<verb>`: `auth.login`, `auth.login_failed`, `auth.logout`,
`user.create`, `user.update`, `api_key.create`, `api_key.revoke`, the work-order actions the
API records (e.g. `work_order.dispatch`), and `personal_data.view` (a work order opened with the
citizen's name, phone and address unmasked). Functions only flush; the caller's unit of work
commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from router.orm import utcnow
from service.auth.models import AuditEntry
from service.auth.security import Actor

__all__ = ["record", "search"]


def record(
    *,
    db_session: Session,
    actor: Actor,
    action: str,
    target_type: str = "",
    target_id: str | int | None = None,
    detail: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """Append one entry. `detail` must be JSON-serialisable and must not hold secrets."""
    entry = AuditEntry(
        at=at or utcnow(),
        actor=actor.username[:64],
        role=actor.role[:16],
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id)[:64],
        detail=dict(detail or {}),
        remote_addr=actor.remote_addr[:64] if actor.remote_addr else None,
    )
    db_session.add(entry)
    db_session.flush()
    return entry


def search(
    *,
    db_session: Session,
    actor: str | None = None,
    action: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[AuditEntry], int]:
    """Entries matching every given filter, newest first, and the total count.

    `action` ending in "." matches a family (`user.` → `user.create`, `user.update`); `since` is
    inclusive and `until` exclusive.
    """
    query = select(AuditEntry)
    if actor is not None:
        query = query.where(AuditEntry.actor == actor)
    if action is not None:
        if action.endswith("."):
            query = query.where(AuditEntry.action.startswith(action, autoescape=True))
        else:
            query = query.where(AuditEntry.action == action)
    if target_type is not None:
        query = query.where(AuditEntry.target_type == target_type)
    if target_id is not None:
        query = query.where(AuditEntry.target_id == target_id)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    total = db_session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db_session.scalars(
        query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit).offset(offset)
    )
    return list(rows), total
