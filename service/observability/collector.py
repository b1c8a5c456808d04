"""Figures read from the database at scrape time: one truth for every process.

Each scrape (at most once per `HOTLINE_METRICS_CACHE_SECONDS`; later scrapes within that time get
the cached figures) runs a handful of aggregate queries, each bounded by an index or a time
window: no rows leave the database, only counts. A process in multi-process mode does not write
these to its files, so N API processes and a worker pool never add them up; every exporter shows
the same values (alerts and dashboards take `max()` over exporters).

When the database cannot be read, the scrape still answers: `hotline_ready{check="database"}` is 0
and the database figures are left out.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta

from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from router.callbacks import service as callbacks
from router.deadlines import service as deadlines
from router.orm import utcnow
from router.statistics import service as statistics
from router.workorders.models import WorkOrder
from router.workorders.workflow import State
from service import classification, health
from service.config import Settings
from service.db import Database
from service.delivery.models import DeadLetter, Delivery
from service.outbox import OutboxMessage
from training.registry import get_active

__all__ = ["DUE_HORIZON", "RATE_WINDOW", "DatabaseCollector"]

log = logging.getLogger(__name__)

DUE_HORIZON = timedelta(hours=24)
"""A deadline is `due` when it passes within this time."""
RATE_WINDOW = timedelta(days=7)
"""On-time rates cover the orders dispatched within this window."""
SATISFACTION_WINDOW = timedelta(days=30)


class DatabaseCollector(Collector):
    """The database-derived gauges (see the module docstring)."""

    def __init__(self, database: Callable[[], Database], settings: Callable[[], Settings]) -> None:
        self._database = database
        self._settings = settings
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def describe(self) -> list[Metric]:
        return []  # nothing to check at registration: the figures need the database

    def collect(self) -> Iterator[Metric]:
        ttl = self._settings().metrics_cache_seconds
        with self._lock:
            if self._cached is None or time.monotonic() - self._cached[0] >= ttl:
                self._cached = (time.monotonic(), self._read())
            yield from self._cached[1]

    def _read(self) -> list[Metric]:
        settings = self._settings()
        ready = GaugeMetricFamily(
            "hotline_ready",
            "1 when the component is ready (as /readyz checks it).",
            labels=["check"],
        )
        model = health.check_model(classification.active_model_dir(settings.model_dir))
        ready.add_metric(["model"], 1.0 if model.ok else 0.0)
        began = time.perf_counter()
        try:
            with self._database().session() as db_session:
                figures = list(_figures(db_session))
        except Exception as exc:  # the scrape still answers, and says the database is down
            log.warning("metrics: database figures unavailable: %s", type(exc).__name__)
            ready.add_metric(["database"], 0.0)
            return [ready]
        ready.add_metric(["database"], 1.0)
        took = GaugeMetricFamily(
            "hotline_metrics_database_seconds", "Time the last scrape spent reading the database."
        )
        took.add_metric([], time.perf_counter() - began)
        return [ready, took, *figures]


def _figures(db_session: Session) -> Iterator[Metric]:
    now = utcnow()
    count, oldest = db_session.execute(
        select(func.count(), func.min(OutboxMessage.created_at)).where(
            OutboxMessage.sent_at.is_(None)
        )
    ).one()
    orders = GaugeMetricFamily(
        "hotline_work_orders", "Work orders by state (every state, 0 when none).", labels=["state"]
    )
    by_state = dict(
        db_session.execute(select(WorkOrder.state, func.count()).group_by(WorkOrder.state)).all()
    )
    for state in State:
        orders.add_metric([state.value], float(by_state.get(state.value, 0)))
    yield orders

    backlog = GaugeMetricFamily("hotline_outbox_backlog", "Outbox messages not published yet.")
    backlog.add_metric([], float(count or 0))
    yield backlog
    age = GaugeMetricFamily(
        "hotline_outbox_oldest_age_seconds",
        "Age of the oldest unpublished outbox message (0 when there is none).",
    )
    age.add_metric([], max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
    yield age

    pending = GaugeMetricFamily(
        "hotline_deliveries_pending",
        "Deliveries to departments not confirmed yet, by department.",
        labels=["department"],
    )
    for code, n in db_session.execute(
        select(Delivery.department_code, func.count())
        .where(Delivery.status == "pending")
        .group_by(Delivery.department_code)
    ):
        pending.add_metric([code], float(n))
    yield pending

    dead = GaugeMetricFamily(
        "hotline_dead_letters",
        "Unresolved dead letters by kind (delivery, intake) and department (none for intake).",
        labels=["kind", "department"],
    )
    for kind, code, n in db_session.execute(
        select(DeadLetter.kind, Delivery.department_code, func.count())
        .select_from(DeadLetter)
        .outerjoin(Delivery, Delivery.delivery_key == DeadLetter.reference)
        .where(DeadLetter.resolved_at.is_(None))
        .group_by(DeadLetter.kind, Delivery.department_code)
    ):
        dead.add_metric([kind, code or "none"], float(n))
    yield dead

    running = GaugeMetricFamily(
        "hotline_deadlines",
        "Running deadlines of orders in departments' hands: kind accept (签收) or handle (办理), "
        f"status overdue (passed) or due (passing within {DUE_HORIZON / timedelta(hours=1):g} h).",
        labels=["kind", "status"],
    )
    counts = deadlines.deadline_counts(db_session=db_session, now=now, horizon=DUE_HORIZON)
    for (kind, status), n in sorted(counts.items()):
        running.add_metric([kind, status], float(n))
    yield running

    on_time = GaugeMetricFamily(
        "hotline_on_time_ratio",
        f"On-time share of the orders dispatched in the last {RATE_WINDOW.days} days, by kind "
        "(absent when nothing can be rated yet).",
        labels=["kind"],
    )
    rates = deadlines.on_time_rates(db_session=db_session, since=now - RATE_WINDOW, now=now)
    for kind, rate in sorted(rates.items()):
        if rate is not None:
            on_time.add_metric([kind], rate)
    yield on_time

    due, results = callbacks.callback_figures(
        db_session=db_session, now=now, since=now - SATISFACTION_WINDOW
    )
    callbacks_due = GaugeMetricFamily("hotline_callbacks_due", "Open callbacks that are due.")
    callbacks_due.add_metric([], float(due))
    yield callbacks_due
    outcomes = GaugeMetricFamily(
        "hotline_callback_results",
        f"Callbacks completed in the last {SATISFACTION_WINDOW.days} days, by result.",
        labels=["result"],
    )
    for result, n in sorted(results.items()):
        outcomes.add_metric([result], float(n))
    yield outcomes
    rate = statistics.satisfaction_rate(Counter(results).elements())
    satisfaction = GaugeMetricFamily(
        "hotline_satisfaction_ratio",
        f"(Basically) satisfied share of the rated callbacks of the last "
        f"{SATISFACTION_WINDOW.days} days (absent when none was rated).",
    )
    if rate is not None:
        satisfaction.add_metric([], rate)
    yield satisfaction

    active = get_active(db_session=db_session)
    info = InfoMetricFamily("hotline_model", "The active model version of the registry.")
    if active is not None:
        info.add_metric([], {"version": active.version})
    yield info
