"""Benchmark the department assessment (考核) on a month of orders: scorecard and drill-down time.

    python -m benchmarks.assessment [--per-day 3000] [--days 30] [--seed 3] [--database-url URL]
    python -m benchmarks.assessment --small          # 30 days x 300 a day, a few seconds

Builds a migrated database (a temporary SQLite file unless ``--database-url`` names an empty
PostgreSQL database) with the shipped departments, then bulk-inserts a month of orders with the
event history a scorecard reads: every order dispatched to a city department in district/street
of the gazetteer, most signed for and replied (a share late), 5 % returned and re-routed (half to
another department), 3 % with an extension request, 4 % escalated, closures with callbacks, and
callers who call again. Rows go in with bulk INSERTs, not through the workflow functions: the
benchmark measures reading, not writing.

Prints one table: orders, events, then per unit kind the wall-clock time of a scorecard (the
period and the previous one) and of one drill-down (one figure of one unit), the process's
peak RSS and the load average (wall clock includes waiting for a core on a busy machine).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from router.assessment import service as assessment
from router.assessment.scoring import AssessmentPolicy, Figure, UnitKind
from router.callbacks.models import Callback
from router.catalogue.models import Department
from router.statistics.service import make_period
from router.workorders.models import Appeal, WorkOrder, WorkOrderEvent
from service import migrate
from service.bootstrap import load_reference_data
from service.db import Database

FIRST = datetime(2025, 11, 1, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai


def _departments(database: Database) -> tuple[list[str], list[tuple[str, str]]]:
    with database.session() as db_session:
        rows = db_session.execute(select(Department.code, Department.kind, Department.parent_code))
        city = []
        streets = []
        for code, kind, parent in rows:
            if kind == "city":
                city.append(code)
            elif kind == "street" and parent:
                streets.append((parent, code))
    return sorted(city), sorted(streets)


def _seed(database: Database, *, days: int, per_day: int, seed: int) -> tuple[int, int]:
    rng = random.Random(seed)
    city, streets = _departments(database)
    appeals: list[dict[str, Any]] = []
    orders: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    callbacks: list[dict[str, Any]] = []
    next_id = 1
    for day in range(days):
        for _ in range(per_day):
            at = FIRST + timedelta(days=day, minutes=rng.randrange(8 * 60))
            district, street = rng.choice(streets)
            department = rng.choice(city)
            order_id = next_id
            next_id += 1
            phone = f"139{rng.randrange(10**7, 10**8)}"  # about 1 in 30 callers call again
            if rng.random() < 0.03:
                phone = f"139{10**7 + rng.randrange(per_day)}"
            appeals.append(
                {
                    "id": order_id,
                    "channel": "phone",
                    "text": "诉求",
                    "caller_phone": phone,
                    "received_at": at,
                }
            )
            order: dict[str, Any] = {
                "id": order_id,
                "number": f"{at:%Y%m%d}-{order_id:07d}",
                "appeal_id": order_id,
                "state": "callback_done",
                "department_code": department,
                "district_code": district,
                "street_code": street,
                "site": f"site-{rng.randrange(300)}" if rng.random() < 0.5 else "",
                "dispatched_at": at,
                "accept_deadline_at": at + timedelta(hours=2),
                "deadline_at": at + timedelta(days=7),
                "extension_count": 0,
                "created_at": at,
                "updated_at": at,
            }

            def event(action: str, when: datetime, **data: Any) -> None:
                events.append(
                    {
                        "work_order_id": order_id,  # noqa: B023  (used at once)
                        "at": when,
                        "actor": "bench",
                        "role": "system",
                        "action": action,
                        "from_state": None,
                        "to_state": "x",
                        "reason": "",
                        "data": data,
                    }
                )

            event("receive", at)
            event("triage_auto", at, department_code=department)
            if rng.random() < 0.05:
                event("return", at + timedelta(minutes=30), department_code=department)
                if rng.random() < 0.5:
                    department = rng.choice(city)
                order["department_code"] = department
                event("dispatch", at + timedelta(hours=1), department_code=department)
            order["accepted_at"] = at + timedelta(minutes=rng.choice((20, 40, 200)))
            if rng.random() < 0.03:
                order["extension_count"] = 1
                event("request_extension", at + timedelta(days=1))
            replied = at + timedelta(days=rng.choice((1, 2, 3, 9)))
            order["replied_at"] = replied
            order["closed_at"] = replied + timedelta(hours=2)
            event("close", replied + timedelta(hours=2))
            if rng.random() < 0.04:
                event("escalate", at + timedelta(days=2))
            orders.append(order)
            if rng.random() < 0.8:
                callbacks.append(
                    {
                        "work_order_id": order_id,
                        "appeal_id": order_id,
                        "round": 1,
                        "provider": "agent",
                        "status": "completed",
                        "result": rng.choice(
                            ("satisfied", "satisfied", "basically_satisfied", "unsatisfied")
                        ),
                        "attempts": 1,
                        "due_at": replied + timedelta(days=1),
                        "completed_at": replied + timedelta(days=1),
                    }
                )
    with database.session() as db_session:
        for table, rows in (
            (Appeal, appeals),
            (WorkOrder, orders),
            (WorkOrderEvent, events),
            (Callback, callbacks),
        ):
            for start in range(0, len(rows), 5000):
                db_session.execute(insert(table), rows[start : start + 5000])
    return len(orders), len(events)


def _timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-day", type=int, default=3000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--small", action="store_true", help="30 days x 300 a day")
    args = parser.parse_args()
    per_day = 300 if args.small else args.per_day
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        migrate.upgrade(url)
        database = Database(url)
        load_reference_data(database)
        seconds, (n_orders, n_events) = _timed(
            partial(_seed, database, days=args.days, per_day=per_day, seed=args.seed)
        )
        period = make_period(FIRST.date(), (FIRST + timedelta(days=args.days - 1)).date())
        now = FIRST + timedelta(days=args.days + 15)
        policy = AssessmentPolicy()
        dialect = database.engine.dialect.name
        print(f"{dialect}: {n_orders:,} orders, {n_events:,} events (inserted in {seconds:.1f} s)")
        print(f"{'unit':<12}{'units':>7}{'scorecard s':>13}{'drill-down s':>14}")
        for unit in UnitKind:
            with database.session() as db_session:
                took, card = _timed(
                    partial(
                        assessment.scorecard,
                        db_session=db_session,
                        period=period,
                        now=now,
                        unit=unit,
                        policy=policy,
                    )
                )
                drill, _ = _timed(
                    partial(
                        assessment.drill_down,
                        db_session=db_session,
                        period=period,
                        now=now,
                        unit=unit,
                        figure=Figure.CLOSURE,
                        code=card.rows[0]["code"],
                        policy=policy,
                    )
                )
            print(f"{unit.value:<12}{len(card.rows):>7}{took:>13.2f}{drill:>14.2f}")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
        print(f"peak RSS {peak:.0f} MiB; load average {load} on {os.cpu_count()} CPUs")
        database.dispose()


if __name__ == "__main__":
    main()
