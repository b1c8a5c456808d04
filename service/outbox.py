"""Transactional outbox: tasks are recorded in the same transaction as the change that needs them.

`enqueue()` adds a row and flushes; the unit of work publishes the rows after its commit, and the
`system.relay_outbox` beat task republishes whatever is still unsent (the broker was down, the
process died between commit and publish). Publishing is at-least-once; every task is idempotent,
so a message that is published twice does its work once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Engine, Integer, String, Text, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from router.orm import Base, BigId, utcnow

log = logging.getLogger(__name__)

Sender = Callable[[str, dict[str, Any], str], None]
"""Publishes one task: (task name, keyword arguments, task id)."""


class OutboxMessage(Base):
    __tablename__ = "outbox_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    task: Mapped[str] = mapped_column(String(64))
    kwargs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")

    @property
    def task_id(self) -> str:
        return f"outbox-{self.id}"


def enqueue(session: Session, task: str, **kwargs: Any) -> OutboxMessage:
    """Record a task to publish once the current transaction commits."""
    message = OutboxMessage(task=task, kwargs=kwargs)
    session.add(message)
    session.flush()
    session.info.setdefault("outbox_ids", []).append(message.id)
    session.info.setdefault("outbox_messages", []).append(message)
    return message


def publish_committed(
    engine: Engine, send: Sender, messages: list[tuple[int, str, dict[str, Any]]]
) -> int:
    """Publish messages a transaction has just committed, then mark them sent; returns the count.

    The unit of work's after-commit path: the messages come from memory, so one UPDATE on a
    pooled connection replaces an ORM session with a locking SELECT. A relay running at the same
    moment may publish one of them too (at-least-once; the tasks are idempotent).
    """
    sent: list[int] = []
    failed: tuple[int, str] | None = None
    for message_id, task, kwargs in messages:
        try:
            send(task, dict(kwargs), f"outbox-{message_id}")
        except Exception as exc:
            failed = (message_id, f"{type(exc).__name__}: {exc}"[:1000])
            log.warning("outbox: publishing outbox-%s failed: %s", message_id, failed[1])
            break  # the broker is most likely down: leave the rest for the relay
        sent.append(message_id)
    with engine.begin() as connection:
        if sent:
            connection.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(sent), OutboxMessage.sent_at.is_(None))
                .values(attempts=OutboxMessage.attempts + 1, sent_at=utcnow(), last_error="")
            )
        if failed is not None:
            connection.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == failed[0])
                .values(attempts=OutboxMessage.attempts + 1, last_error=failed[1])
            )
    return len(sent)


def publish(
    session: Session,
    send: Sender,
    *,
    ids: list[int] | None = None,
    older_than: timedelta | None = None,
    limit: int = 500,
) -> int:
    """Publish unsent messages (the given ids, or all older than `older_than`); returns the count.

    Rows are claimed with `FOR UPDATE SKIP LOCKED` where the database supports it, so concurrent
    relays do not publish the same row at the same time. The caller owns the transaction.
    """
    # Plain columns and one UPDATE for the sent rows: this runs after every intake commit.
    query = select(OutboxMessage.id, OutboxMessage.task, OutboxMessage.kwargs).where(
        OutboxMessage.sent_at.is_(None)
    )
    if ids is not None:
        query = query.where(OutboxMessage.id.in_(ids))
    if older_than is not None:
        query = query.where(OutboxMessage.created_at <= utcnow() - older_than)
    query = query.order_by(OutboxMessage.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    sent: list[int] = []
    for message_id, task, kwargs in session.execute(query).all():
        try:
            send(task, dict(kwargs), f"outbox-{message_id}")
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:1000]
            log.warning("outbox: publishing outbox-%s failed: %s", message_id, error)
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message_id)
                .values(attempts=OutboxMessage.attempts + 1, last_error=error),
                execution_options={"synchronize_session": False},
            )
            break  # the broker is most likely down: leave the rest for the next relay
        sent.append(message_id)
    if sent:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(sent))
            .values(attempts=OutboxMessage.attempts + 1, sent_at=utcnow(), last_error=""),
            execution_options={"synchronize_session": False},
        )
    return len(sent)


def pending_count(session: Session) -> int:
    from sqlalchemy import func

    return (
        session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.sent_at.is_(None))
        )
        or 0
    )
