"""Celery tasks for satisfaction callbacks: the periodic scan and placing gateway calls."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from service.callbacks import service
from service.config import get_settings
from service.runtime import http_client
from service.worker import names
from service.worker.tasks import hotline_task


@hotline_task(names.SCAN_CALLBACKS, max_retries=0)
def scan_callbacks(db_session: Session) -> dict[str, Any]:
    """Enqueue the due gateway calls and time out unanswered ones (the next beat tick retries)."""
    return service.scan(db_session=db_session, settings=get_settings())


@hotline_task(names.PLACE_CALLBACK, max_retries=3)
def place_callback(db_session: Session, *, callback_id: int) -> str:
    """Place one claimed call through the gateway; a redelivered task finds it done."""
    return service.place(
        db_session=db_session,
        callback_id=callback_id,
        settings=get_settings(),
        client=http_client(),
    )
