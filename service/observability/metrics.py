"""Prometheus metrics of events in this process, and the scrape.

Counters and histograms here count what happens in a process (HTTP requests, intake outcomes,
classification confidence, Celery tasks); in multi-process mode (`multiprocess.prepare`) each
process writes them to its own files and a scrape adds them up. Figures that describe the
database (outbox backlog, pending deliveries, dead letters, deadlines, callbacks, the active
model) are not counted here: `service.observability.collector.DatabaseCollector` reads them at
scrape time, so every process reports the same truth and nothing is summed twice.

`HOTLINE_METRICS_ENABLED=false` turns the recording off (the functions return at once).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from service.config import get_settings
from service.observability.multiprocess import ENV

__all__ = [
    "APPEALS",
    "CONFIDENCE",
    "CONTENT_TYPE_LATEST",
    "HTTP_DURATION",
    "TASK_DURATION",
    "TASK_FAILURES",
    "TASK_RETRIES",
    "enabled",
    "record_intake",
    "record_refused",
    "render",
    "scrape_registry",
]

HTTP_DURATION = Histogram(
    "hotline_http_request_duration_seconds",
    "HTTP request latency by route template, method and status code.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
APPEALS = Counter(
    "hotline_appeals",
    "Appeals taken in, by channel and outcome: auto_dispatched, review, merged, received (stored, "
    "routed later), refused (not an appeal: blank or no Chinese).",
    ["channel", "outcome"],
)
CONFIDENCE = Histogram(
    "hotline_classification_confidence",
    "Confidence that the routed department is right (department_confidence), per routed appeal.",
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0),
)
TASK_DURATION = Histogram(
    "hotline_task_duration_seconds",
    "Celery task run time by task name and final state (SUCCESS, FAILURE, RETRY).",
    ["task", "state"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0, 600.0),
)
TASK_FAILURES = Counter(
    "hotline_task_failures", "Celery task runs that raised (after their retries).", ["task"]
)
TASK_RETRIES = Counter("hotline_task_retries", "Celery task retries scheduled.", ["task"])

_OUTCOMES = {"dispatched": "auto_dispatched", "review": "review", "merged": "merged"}


def enabled() -> bool:
    return get_settings().metrics_enabled


def record_intake(items: Iterable[tuple[str, Any]]) -> None:
    """Count intake results: (channel, `service.intake.IntakeResult` or an exception) pairs.

    Only appeals that were created count (a replayed idempotency key is not a new appeal)."""
    if not enabled():
        return
    for channel, result in items:
        if isinstance(result, BaseException) or not result.created:
            continue
        APPEALS.labels(channel, _OUTCOMES.get(result.state, "received")).inc()
        decision = result.decision
        if decision is not None and result.state != "merged":
            CONFIDENCE.observe(decision.department_confidence)


def record_refused(channel: str) -> None:
    """An appeal refused because its text is not one (`classifier.ood.intake_refusal`)."""
    if enabled():
        APPEALS.labels(channel, "refused").inc()


class _ProcessMetrics(Collector):
    """This process's metrics (the default registry), when there is no multi-process directory."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def scrape_registry(extra: Sequence[Collector] = ()) -> CollectorRegistry:
    """A registry of everything a scrape shows: the processes' metrics (every process of this
    host's multi-process directory, or this process) and `extra` collectors."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get(ENV):
        MultiProcessCollector(registry)
    else:
        registry.register(_ProcessMetrics())
    for collector in extra:
        registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
