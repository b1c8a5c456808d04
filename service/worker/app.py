"""The worker's Celery application (see `service.worker.factory` for how it is built) and what a
worker process does after the fork."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_process_init

from service.config import get_settings
from service.runtime import get_database
from service.worker import names
from service.worker.factory import QUEUES, create_celery

__all__ = ["QUEUES", "QUIET_TASKS", "celery_app"]

celery_app = create_celery(get_settings())

QUIET_TASKS = (names.RELAY_OUTBOX,)
"""Tasks beat runs every few seconds: Celery's "sending due task", "received" and "succeeded"
lines about them would be most of an idle system's log, so they appear only at DEBUG (the task
itself logs at INFO when it has done something)."""
CELERY_TASK_LOGGERS = ("celery.beat", "celery.worker.strategy", "celery.app.trace")


class _QuietTasksFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO or logging.getLogger(record.name).isEnabledFor(
            logging.DEBUG
        ):
            return True
        message = record.getMessage()
        return not any(task in message for task in QUIET_TASKS)


for _name in CELERY_TASK_LOGGERS:
    logging.getLogger(_name).addFilter(_QuietTasksFilter())


@worker_process_init.connect
def _fresh_connections_after_fork(**_kwargs: Any) -> None:
    """A forked pool child must not use the database connections its parent opened (the
    start-up checks): drop them from this process's pool without closing the parent's sockets."""
    get_database().engine.dispose(close=False)
