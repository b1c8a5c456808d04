"""Building the Celery application: JSON only, late acks, one queue per kind of work.

Queues: `dispatch` (delivery of work orders), `deadlines` (warning/overdue scans), `callbacks`
(satisfaction callbacks), `training` (model training), and `default` (the outbox relay, probes,
hotspot scans). Task names (`service.worker.names`) are dotted and their first part chooses the
queue (`dispatch.deliver` → `dispatch`). On RabbitMQ the queues are durable quorum queues
(classic ones with `HOTLINE_RABBITMQ_QUEUE_TYPE=classic`) and publishes wait for the broker's
confirm. Used by the worker (`service.worker.app`) and by the publishers of other processes
(`service.runtime`).
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from service.config import Settings
from service.observability import tracing
from service.worker import names
from service.worker import observability as _observability  # noqa: F401  (connects the signals)

QUEUES = ("dispatch", "deadlines", "callbacks", "training", "default")


def queue_name(settings: Settings, name: str) -> str:
    """The broker's name of one of our `QUEUES` (`HOTLINE_TASK_QUEUE_PREFIX` + name)."""
    return settings.task_queue_prefix + name


def build_queues(settings: Settings) -> list[Queue]:
    # Classic queues are declared without the argument, exactly as a broker without it did.
    quorum = settings.uses_rabbitmq and settings.rabbitmq_queue_type == "quorum"
    arguments: dict[str, Any] = {"x-queue-type": "quorum"} if quorum else {}
    exchange = Exchange(queue_name(settings, "hotline.tasks"), type="direct", durable=True)
    return [
        Queue(
            queue_name(settings, name),
            exchange,
            routing_key=name,
            durable=True,
            queue_arguments=arguments or None,
        )
        for name in QUEUES
    ]


def create_celery(settings: Settings) -> Celery:
    tracing.instrument_celery(settings)  # nothing (and no import) unless HOTLINE_OTEL_ENABLED
    app = Celery(
        "hotline",
        broker=settings.broker_url,
        include=[
            "service.worker.tasks",
            "service.worker.callbacks",
            "service.worker.hotspots",
            "service.worker.training",
        ],
    )
    transport_options: dict[str, Any] = {}
    if settings.uses_rabbitmq:
        transport_options["confirm_publish"] = True
    else:
        # kombu passes these to create_engine(): wait for SQLite's write lock instead of failing.
        transport_options["connect_args"] = {"timeout": 30}
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        event_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_queues=build_queues(settings),
        task_default_queue=queue_name(settings, "default"),
        task_default_exchange=queue_name(settings, "hotline.tasks"),
        task_default_routing_key="default",
        task_routes={
            f"{name}.*": {"queue": queue_name(settings, name), "routing_key": name}
            for name in QUEUES
        },
        task_create_missing_queues=False,
        broker_transport_options=transport_options,
        broker_connection_timeout=settings.broker_connect_timeout,
        broker_connection_retry_on_startup=True,
        task_publish_retry=True,
        task_publish_retry_policy={
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        worker_enable_remote_control=settings.uses_rabbitmq,
        timezone=settings.timezone,  # beat schedules in local time
        enable_utc=True,
        beat_schedule={
            "outbox-relay": {
                "task": names.RELAY_OUTBOX,
                "schedule": settings.outbox_relay_seconds,
            },
            "deadline-scan": {"task": names.SCAN_DEADLINES, "schedule": 60.0},
            # Appeals stored but left `received` (the model was missing, the process died or the
            # database went away between intake's two transactions) are routed within a minute.
            "triage-pending": {"task": names.TRIAGE_PENDING, "schedule": 60.0},
            "callback-scan": {"task": names.SCAN_CALLBACKS, "schedule": 60.0},
            "hotspot-scan": {
                "task": names.SCAN_HOTSPOTS,
                "schedule": settings.hotspot_scan_minutes * 60.0,
            },
        },
    )
    return app
