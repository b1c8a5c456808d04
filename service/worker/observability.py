"""Celery signal handlers: the request id travels from publisher to task, and task metrics.

`before_task_publish` puts the publishing context's request id (a new one when there is none,
as for beat's periodic tasks) into the message header `hotline_request_id`; `task_prerun` binds
it for the task's logs (and so for the delivery messages the task publishes). `task_prerun` /
`task_postrun` time each run by task name and final state, `task_failure` and `task_retry` count
failures and retries. Connected once, by importing this module (the worker app and the
publishers' app both do, through `service.worker.factory`).
"""

from __future__ import annotations

import threading
import time
from contextvars import Token
from typing import Any

from celery.signals import (
    before_task_publish,
    setup_logging,
    task_failure,
    task_postrun,
    task_prerun,
    task_retry,
)

from service.observability import context, metrics

__all__: list[str] = []

_runs: dict[str, tuple[float, Token[str | None]]] = {}
_lock = threading.Lock()


@setup_logging.connect(dispatch_uid="hotline-logging")
def _keep_our_logging(**_kwargs: Any) -> None:
    """Celery leaves logging alone when this signal has a receiver: the command has set it up
    (`service.observability.logs`), and the pool's children inherit it."""


@before_task_publish.connect(dispatch_uid="hotline-request-id-publish")
def _add_request_id(headers: dict[str, Any] | None = None, **_kwargs: Any) -> None:
    if headers is not None and not headers.get(context.TASK_HEADER):
        headers[context.TASK_HEADER] = context.current_request_id() or context.new_request_id()


@task_prerun.connect(dispatch_uid="hotline-task-prerun")
def _task_started(task_id: str = "", task: Any = None, **_kwargs: Any) -> None:
    request = getattr(task, "request", None)
    given = getattr(request, context.TASK_HEADER, None) or (
        (getattr(request, "headers", None) or {}).get(context.TASK_HEADER)
    )
    token = context.set_request_id(context.sane_request_id(given) or context.new_request_id())
    with _lock:
        _runs[task_id] = (time.perf_counter(), token)


@task_postrun.connect(dispatch_uid="hotline-task-postrun")
def _task_finished(
    task_id: str = "", task: Any = None, state: str | None = None, **_kwargs: Any
) -> None:
    with _lock:
        began, token = _runs.pop(task_id, (None, None))
    if token is not None:
        context.reset_request_id(token)
    if began is not None and metrics.enabled():
        name = getattr(task, "name", None) or "unknown"
        metrics.TASK_DURATION.labels(name, state or "UNKNOWN").observe(time.perf_counter() - began)


@task_failure.connect(dispatch_uid="hotline-task-failure")
def _task_failed(sender: Any = None, **_kwargs: Any) -> None:
    if metrics.enabled():
        metrics.TASK_FAILURES.labels(getattr(sender, "name", None) or "unknown").inc()


@task_retry.connect(dispatch_uid="hotline-task-retry")
def _task_retried(sender: Any = None, **_kwargs: Any) -> None:
    if metrics.enabled():
        metrics.TASK_RETRIES.labels(getattr(sender, "name", None) or "unknown").inc()
