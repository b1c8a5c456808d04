"""The worker's Celery application (see `service.worker.factory` for how it is built) and what a
worker process does after the fork."""

from __future__ import annotations

from typing import Any

from celery.signals import worker_process_init

from service.config import get_settings
from service.runtime import get_database
from service.worker.factory import QUEUES, create_celery

__all__ = ["QUEUES", "celery_app"]

celery_app = create_celery(get_settings())


@worker_process_init.connect
def _fresh_connections_after_fork(**_kwargs: Any) -> None:
    """A forked pool child must not use the database connections its parent opened (the
    start-up checks): drop them from this process's pool without closing the parent's sockets."""
    get_database().engine.dispose(close=False)
