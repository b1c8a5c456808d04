"""Celery tasks. Tasks are thin: JSON ids in, re-read the rows, call a plain function.

`hotline_task` is the one project-wide decorator: it names the task, picks its queue from the
name, acknowledges late, retries transient failures with exponential backoff up to a cap, logs,
and runs the body inside the unit of work (so the task wrapper owns the transaction).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from router.deadlines import service as deadlines
from router.orm import utcnow
from service import diagnostics, intake, outbox
from service.config import get_settings
from service.delivery import service as delivery_service
from service.runtime import department_publisher, get_database, http_client, send_task
from service.worker import names
from service.worker.app import celery_app

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

DELIVERY_ATTEMPTS = 9  # the first try and `max_retries` retries of dispatch.deliver

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    DBAPIError,
    ConnectionError,
    TimeoutError,
)


def hotline_task(
    name: str, *, max_retries: int = 8, acks_late: bool = True, quiet: bool = False
) -> Callable[[F], Any]:
    """Register `fn(db_session, **kwargs)` as the Celery task `name`.

    The queue is the first part of the name (`task_routes` in service/worker/app.py). A `quiet`
    task (one that beat runs every few seconds) logs its start and end at DEBUG, and Celery's
    own lines about it are dropped below DEBUG (`QUIET_TASKS` in service/worker/app.py): it
    logs at INFO only when it did something.
    """

    def decorate(fn: F) -> Any:
        @celery_app.task(
            name=name,
            bind=True,
            acks_late=acks_late,
            reject_on_worker_lost=acks_late,
            autoretry_for=TRANSIENT_ERRORS,
            retry_backoff=2,
            retry_backoff_max=300,
            retry_jitter=True,
            max_retries=max_retries,
        )
        def task(self: Any, **kwargs: Any) -> Any:
            level = logging.DEBUG if quiet else logging.INFO
            log.log(level, "task %s[%s] started %s", name, self.request.id, kwargs)
            with get_database().session() as db_session:
                result = fn(db_session, **kwargs)
            log.log(level, "task %s[%s] done", name, self.request.id)
            return result

        task.__doc__ = fn.__doc__
        return task

    return decorate


@hotline_task(names.PROBE)
def probe(db_session: Session, *, probe_id: str) -> None:
    """Mark an end-to-end probe executed."""
    diagnostics.execute_probe(db_session=db_session, probe_id=probe_id)


def _delivery_options() -> dict[str, Any]:
    """What every delivery needs from this worker: its publisher and HTTP client, the signing key,
    and which attempt this is."""
    from celery import current_task

    settings = get_settings()
    request = current_task.request if current_task else None
    return {
        "publisher": department_publisher(),
        "http_client": http_client(),
        "signing_key": settings.secret_key.get_secret_value(),
        "attempt": (request.retries if request else 0) + 1,
        "max_attempts": DELIVERY_ATTEMPTS,
        "webhook_timeout": settings.webhook_timeout,
    }


@hotline_task(names.DELIVER, max_retries=8)
def deliver_work_order(db_session: Session, *, delivery_id: int) -> str | None:
    """Deliver one dispatched work order to one department over one channel, once."""
    row = delivery_service.deliver(
        db_session=db_session, delivery_id=delivery_id, **_delivery_options()
    )
    return None if row is None else row.status


@hotline_task(names.DELIVER_BATCH, max_retries=8)
def deliver_work_orders(db_session: Session, *, delivery_ids: list[int]) -> dict[str, int]:
    """Deliver the RabbitMQ deliveries of one dispatch over one confirmed channel, once each."""
    rows = delivery_service.deliver_many(
        db_session=db_session, delivery_ids=delivery_ids, **_delivery_options()
    )
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row.status] = statuses.get(row.status, 0) + 1
    return statuses


@hotline_task(names.TRIAGE_PENDING, max_retries=0)
def triage_pending(db_session: Session) -> int:
    """Route appeals left `received` (the model was missing or the process died mid-intake)."""
    return intake.triage_pending(db_session=db_session, settings=get_settings())


@hotline_task(names.RELAY_OUTBOX, max_retries=0, quiet=True)
def relay_outbox(db_session: Session) -> int:
    """Publish outbox messages that were not published right after their commit."""
    published = outbox.publish(db_session, send_task, older_than=timedelta(seconds=10))
    if published:
        log.info("outbox relay published %d message(s)", published)
    return published


@hotline_task(names.SCAN_DEADLINES, max_retries=0)
def scan_deadlines(db_session: Session) -> dict[str, Any]:
    """Warn about and escalate work-order deadlines (the next beat tick retries a failed scan)."""
    return deadlines.scan_deadlines(db_session=db_session, now=utcnow()).to_dict()
