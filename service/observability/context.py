"""The request id and the work-order number of the work in hand, carried in context variables.

The HTTP middleware binds a request id per request (the caller's `X-Request-ID` when it is sane,
else a new one); Celery tasks bind the id of the request that published them (a task header),
and delivery messages carry it on to departments. Log records pick both up
(`service.observability.logs.ContextFilter`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import cast

__all__ = [
    "HEADER",
    "TASK_HEADER",
    "bound",
    "current_request_id",
    "current_work_order",
    "new_request_id",
    "reset_request_id",
    "sane_request_id",
    "set_request_id",
]

HEADER = "X-Request-ID"
TASK_HEADER = "hotline_request_id"
"""The Celery message header that carries the request id into a task."""

_SANE = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_request_id: ContextVar[str | None] = ContextVar("hotline_request_id", default=None)
_work_order: ContextVar[str | None] = ContextVar("hotline_work_order", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex


def sane_request_id(value: object) -> str | None:
    """`value` when it can travel in logs and headers as it is (at most 128 characters of
    letters, digits and `._:-`), else None: a caller cannot inject log lines or personal data
    through it."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if isinstance(value, str) and _SANE.fullmatch(value):
        return value
    return None


def current_request_id() -> str | None:
    return _request_id.get()


def current_work_order() -> str | None:
    return _work_order.get()


def set_request_id(value: str | None) -> Token[str | None]:
    """Bind the request id until `reset_request_id(token)` (for hooks that start and end in two
    calls, as Celery's task_prerun and task_postrun)."""
    return _request_id.set(value)


def reset_request_id(token: Token[str | None]) -> None:
    try:
        _request_id.reset(token)
    except ValueError:  # set in another context (a thread of a pool): just forget it
        _request_id.set(None)


_UNSET = object()


@contextmanager
def bound(*, request_id: object = _UNSET, work_order: object = _UNSET) -> Iterator[None]:
    """Bind the request id and/or the work-order number for the duration of the block."""
    tokens: list[tuple[ContextVar[str | None], Token[str | None]]] = []
    for variable, value in ((_request_id, request_id), (_work_order, work_order)):
        if value is not _UNSET:
            tokens.append((variable, variable.set(cast(str | None, value))))
    try:
        yield
    finally:
        for variable, token in reversed(tokens):
            variable.reset(token)
