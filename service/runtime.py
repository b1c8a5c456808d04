"""Process-wide objects built from the settings: the database and the task publisher."""

from __future__ import annotations

import contextlib
from functools import lru_cache
from typing import Any, cast

from celery import Celery

from service import outbox
from service.config import get_settings
from service.db import Database
from service.delivery.rabbitmq import DepartmentPublisher
from service.duplicate_server import RemoteDetector, address_of, authkey_of
from service.observability import tracing
from service.worker.factory import create_celery


@lru_cache(maxsize=4)
def _publisher(broker_url: str) -> Celery:  # cached per URL: tests switch brokers
    """A Celery application used only to publish (workers have their own, `service.worker.app`)."""
    return create_celery(get_settings())


def send_task(name: str, kwargs: dict[str, Any], task_id: str) -> None:
    """Publish one task to the configured broker (used by the outbox)."""
    _publisher(get_settings().broker_url).send_task(name, kwargs=kwargs, task_id=task_id)


def publish_committed(messages: list[tuple[int, str, dict[str, Any]]]) -> None:
    outbox.publish_committed(get_database().engine, send_task, messages)


@lru_cache(maxsize=1)
def get_database() -> Database:
    settings = get_settings()
    database = Database(settings.database_url, publish_committed=publish_committed)
    tracing.instrument_engine(database.engine, settings)
    return database


_clients: dict[str, Any] = {}


def department_publisher() -> Any:
    """This process's RabbitMQ publisher for department deliveries (created after the fork)."""
    settings = get_settings()
    url = settings.delivery_amqp_url
    if not url:
        return None
    publisher = _clients.get("publisher")
    if publisher is None or publisher.url != url:
        publisher = _clients["publisher"] = DepartmentPublisher(
            url, queue_type=settings.rabbitmq_queue_type
        )
    return publisher


def duplicate_client() -> RemoteDetector:
    """This process's client of `hotline duplicate-server` (`HOTLINE_DUPLICATE_SERVER`)."""
    settings = get_settings()
    address = address_of(settings.duplicate_server)
    client = _clients.get("duplicates")
    if client is None or client.address != address:
        client = _clients["duplicates"] = RemoteDetector(
            address, authkey_of(settings.secret_key.get_secret_value())
        )
    return cast(RemoteDetector, client)


def http_client() -> Any:
    import httpx

    client = _clients.get("http")
    if client is None:
        client = _clients["http"] = httpx.Client(follow_redirects=False)
    return client


def reset() -> None:
    """Forget cached settings and connections (tests, and after a fork)."""
    if get_database.cache_info().currsize:
        get_database().dispose()
    get_database.cache_clear()
    get_settings.cache_clear()
    _publisher.cache_clear()
    for client in _clients.values():
        with contextlib.suppress(Exception):  # closing a dead connection must not stop a reset
            client.close()
    _clients.clear()
