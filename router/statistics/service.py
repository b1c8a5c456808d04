"""Supervisors' figures over a period of local dates: volumes, on-time rates, satisfaction, and
the rows of the CSV export.

The population of a period is every work order whose appeal was received between the first and
the last local date (Asia/Shanghai, both included); what the figures say about those orders is
where they stand at ``now``. Counts and lists:

    appeals      orders received in the period
    dispatched   of those, sent to a department at least once (``dispatched_at`` set)
    closed       in ``closed`` or ``callback_done``
    overdue      still at a department (``AT_DEPARTMENT``) with the handling deadline passed
    escalated    escalated (督办) at least once
    returned     returned (退单) at least once
    merged       merged into another order (并单)

Rates (floats 0..1, None when there is nothing to rate):

    on_time_dispatch_rate  orders signed for (签收) within the sign-for deadline, and
    on_time_closure_rate   orders replied to (办结回复) within the handling deadline, both exactly
                           as :func:`router.deadlines.service.on_time_figures` defines them (orders
                           *dispatched* in the period; one still waiting is late once its deadline
                           has passed, and not rated before)
    satisfaction_rate      satisfied + basically satisfied callbacks over answered callbacks
                           (``unreachable`` ones are left out) of the period's orders
    auto_dispatch_rate     orders dispatched by the router without an agent (``triage_auto``)
                           over the appeals received

Everything is plain SQLAlchemy ``select()`` and runs on SQLite and PostgreSQL; the only dialect
difference is how a UTC timestamp becomes a local date (:func:`_local_date`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    exists,
    func,
    select,
)
from sqlalchemy.orm import Session, aliased

from router.calendar import DEFAULT_CALENDAR
from router.callbacks.models import Callback
from router.catalogue.models import Category, Department
from router.deadlines.service import OnTime, dispatched_orders, on_time_figures, on_time_rate
from router.errors import InvalidInput
from router.workorders.models import Appeal, WorkOrder, WorkOrderEvent
from router.workorders.workflow import AT_DEPARTMENT, Action, CallbackOutcome, State

__all__ = [
    "DEFAULT_DAYS",
    "EXPORT_COLUMNS",
    "MAX_DAYS",
    "CallbackResult",
    "Period",
    "PeriodStatistics",
    "default_period",
    "export_rows",
    "make_period",
    "period_callbacks",
    "period_statistics",
    "satisfaction_rate",
]

DEFAULT_DAYS = 30
MAX_DAYS = 366
TOP_CATEGORIES = 10
TOP_RETURN_REASONS = 10
LIST_LIMIT = 100
_EARLIEST = date(2000, 1, 1)
_LATEST = date(2099, 12, 31)

_SATISFIED = (CallbackOutcome.SATISFIED.value, CallbackOutcome.BASICALLY_SATISFIED.value)
_ANSWERED = (*_SATISFIED, CallbackOutcome.UNSATISFIED.value)
_CLOSED = (State.CLOSED.value, State.CALLBACK_DONE.value)
_RUNNING = sorted(state.value for state in AT_DEPARTMENT)


@dataclass(frozen=True)
class Period:
    """Local dates ``date_from``..``date_to`` (both included) in ``tz``; UTC ``[since, until)``."""

    date_from: date
    date_to: date
    tz: tzinfo

    @property
    def since(self) -> datetime:
        return datetime.combine(self.date_from, time(0), tzinfo=self.tz).astimezone(UTC)

    @property
    def until(self) -> datetime:
        next_day = self.date_to + timedelta(days=1)
        return datetime.combine(next_day, time(0), tzinfo=self.tz).astimezone(UTC)


def make_period(
    date_from: date, date_to: date, *, tz: tzinfo = DEFAULT_CALENDAR.tz, max_days: int = MAX_DAYS
) -> Period:
    """A validated period; `InvalidInput` (400) when it is reversed, too long or out of range."""
    for value, name in ((date_from, "date_from"), (date_to, "date_to")):
        if not _EARLIEST <= value <= _LATEST:
            raise InvalidInput(
                f"{name} must be between {_EARLIEST.isoformat()} and {_LATEST.isoformat()}",
                field=name,
            )
    if date_from > date_to:
        raise InvalidInput("date_from must not be later than date_to", field="date_from")
    if (date_to - date_from).days + 1 > max_days:
        raise InvalidInput(f"the period may cover at most {max_days} days", field="date_from")
    return Period(date_from, date_to, tz)


def default_period(
    now: datetime, *, days: int = DEFAULT_DAYS, tz: tzinfo = DEFAULT_CALENDAR.tz
) -> Period:
    """The last `days` local dates, today included."""
    today = now.astimezone(tz).date()
    return Period(today - timedelta(days=days - 1), today, tz)


@dataclass
class PeriodStatistics:
    """The statistics document (the shape of ``GET /api/v1/statistics``)."""

    date_from: str
    date_to: str
    totals: dict[str, int]
    rates: dict[str, float | None]
    daily: list[dict[str, Any]]
    by_category: list[dict[str, Any]]
    by_department: list[dict[str, Any]]
    by_district: list[dict[str, Any]]
    returns: list[dict[str, Any]]
    overdue: list[dict[str, Any]]
    escalated: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- building blocks ------------------------------------------------------------------------------


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _rate(numerator: int, denominator: int) -> float | None:
    return None if denominator == 0 else round(numerator / denominator, 4)


def _in_period(period: Period) -> ColumnElement[bool]:
    return and_(Appeal.received_at >= period.since, Appeal.received_at < period.until)


def _orders(period: Period, *columns: Any) -> Select[Any]:
    """``select(*columns)`` over the period's work orders (joined to their appeals)."""
    return (
        select(*columns)
        .select_from(WorkOrder)
        .join(Appeal, WorkOrder.appeal_id == Appeal.id)
        .where(_in_period(period))
    )


def _overdue(now: datetime) -> ColumnElement[bool]:
    return and_(
        WorkOrder.state.in_(_RUNNING),
        WorkOrder.deadline_at.is_not(None),
        WorkOrder.deadline_at < now,
    )


def _local_date(db_session: Session, column: Any, tz: tzinfo, at: datetime) -> Any:
    """SQL for the local calendar date of a UTC timestamp column."""
    if db_session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone(getattr(tz, "key", "Asia/Shanghai"), column))
    # SQLite stores UTC text; shift by the zone's offset in the period (Asia/Shanghai has no
    # daylight saving time, so one offset is exact for any period).
    offset = at.astimezone(tz).utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    return func.date(column, f"{minutes:+d} minutes")


@dataclass(frozen=True)
class CallbackResult:
    """One answered or unreachable callback of an order received in a period."""

    number: str
    department_code: str | None
    district_code: str | None
    street_code: str | None
    result: str


def period_callbacks(*, db_session: Session, period: Period) -> list[CallbackResult]:
    """Every callback with a result of the period's orders (the satisfaction population)."""
    rows = db_session.execute(
        select(
            WorkOrder.number,
            WorkOrder.department_code,
            WorkOrder.district_code,
            WorkOrder.street_code,
            Callback.result,
        )
        .select_from(Callback)
        .join(WorkOrder, Callback.work_order_id == WorkOrder.id)
        .join(Appeal, WorkOrder.appeal_id == Appeal.id)
        .where(_in_period(period), Callback.result.is_not(None))
        .order_by(Callback.id)
    )
    return [
        CallbackResult(number, department, district, street, str(result))
        for number, department, district, street, result in rows
    ]


def satisfaction_rate(results: Iterable[str]) -> float | None:
    """Satisfied + basically satisfied over answered callbacks (unreachable ones left out)."""
    counts = Counter(results)
    satisfied = sum(counts[value] for value in _SATISFIED)
    return _rate(satisfied, sum(counts[value] for value in _ANSWERED))


def _satisfaction(db_session: Session, period: Period) -> dict[str | None, float | None]:
    """Satisfaction rate overall (key None) and per current department of the order."""
    callbacks = period_callbacks(db_session=db_session, period=period)
    by_department: dict[str | None, list[str]] = defaultdict(list)
    for callback in callbacks:
        by_department[callback.department_code].append(callback.result)
    rates = {code: satisfaction_rate(results) for code, results in by_department.items()}
    rates[None] = satisfaction_rate(callback.result for callback in callbacks)
    return rates


def _closure_on_time_by_department(
    db_session: Session, period: Period, now: datetime
) -> dict[str, float | None]:
    """Per department, the reply rate of `on_time_figures` (the same orders and rule)."""
    statuses: dict[str, list[OnTime]] = defaultdict(list)
    for order in dispatched_orders(db_session=db_session, since=period.since, until=period.until):
        if order.department_code is not None:
            statuses[order.department_code].append(order.reply_status(now))
    return {code: on_time_rate(values) for code, values in statuses.items()}


# -- the figures ----------------------------------------------------------------------------------


def _totals(db_session: Session, period: Period, now: datetime) -> dict[str, int]:
    row = db_session.execute(
        _orders(
            period,
            func.count(),
            _count_if(WorkOrder.dispatched_at.is_not(None)),
            _count_if(WorkOrder.state.in_(_CLOSED)),
            _count_if(_overdue(now)),
            _count_if(WorkOrder.escalated.is_(True)),
            _count_if(WorkOrder.return_count > 0),
            _count_if(WorkOrder.state == State.MERGED.value),
        )
    ).one()
    names = ("appeals", "dispatched", "closed", "overdue", "escalated", "returned", "merged")
    return {name: int(value) for name, value in zip(names, row, strict=True)}


def _auto_dispatched(db_session: Session, period: Period) -> int:
    auto = exists().where(
        WorkOrderEvent.work_order_id == WorkOrder.id,
        WorkOrderEvent.action == Action.TRIAGE_AUTO.value,
    )
    return int(db_session.scalar(_orders(period, func.count()).where(auto)) or 0)


def _daily(db_session: Session, period: Period) -> list[dict[str, Any]]:
    day = _local_date(db_session, Appeal.received_at, period.tz, period.since).label("day")
    rows = db_session.execute(
        _orders(period, day, Appeal.channel, func.count())
        .group_by(day, Appeal.channel)
        .order_by(day, Appeal.channel)
    )
    # PostgreSQL answers a date, SQLite its ISO text.
    return [
        {"date": str(value)[:10], "channel": channel, "count": int(n)} for value, channel, n in rows
    ]


def _by_category(db_session: Session, period: Period) -> list[dict[str, Any]]:
    count = func.count().label("n")
    rows = db_session.execute(
        _orders(period, Category.code, Category.path, count)
        .join(Category, WorkOrder.category_code == Category.code)
        .where(Category.level == 3)
        .group_by(Category.code, Category.path)
        .order_by(count.desc(), Category.code)
        .limit(TOP_CATEGORIES)
    )
    return [{"code": code, "path": path, "count": int(n)} for code, path, n in rows]


def _by_department(db_session: Session, period: Period, now: datetime) -> list[dict[str, Any]]:
    count = func.count().label("n")
    rows = db_session.execute(
        _orders(period, WorkOrder.department_code, Department.name, count, _count_if(_overdue(now)))
        .join(Department, WorkOrder.department_code == Department.code)
        .group_by(WorkOrder.department_code, Department.name)
        .order_by(count.desc(), WorkOrder.department_code)
    ).all()
    on_time = _closure_on_time_by_department(db_session, period, now)
    satisfaction = _satisfaction(db_session, period)
    return [
        {
            "code": code,
            "name": name,
            "count": int(n),
            "overdue": int(overdue),
            "on_time_closure_rate": on_time.get(code),
            "satisfaction_rate": satisfaction.get(code),
        }
        for code, name, n, overdue in rows
    ]


def _by_district(db_session: Session, period: Period) -> list[dict[str, Any]]:
    district = aliased(Department)
    count = func.count().label("n")
    name = func.coalesce(district.name, WorkOrder.district_code)
    rows = db_session.execute(
        _orders(period, WorkOrder.district_code, name, count)
        .outerjoin(district, WorkOrder.district_code == district.code)
        .where(WorkOrder.district_code.is_not(None))
        .group_by(WorkOrder.district_code, district.name)
        .order_by(count.desc(), WorkOrder.district_code)
    )
    return [{"code": code, "name": label, "count": int(n)} for code, label, n in rows]


def _returns(db_session: Session, period: Period) -> list[dict[str, Any]]:
    count = func.count().label("n")
    rows = db_session.execute(
        _orders(period, WorkOrderEvent.reason, count)
        .join(WorkOrderEvent, WorkOrderEvent.work_order_id == WorkOrder.id)
        .where(WorkOrderEvent.action == Action.RETURN.value)
        .group_by(WorkOrderEvent.reason)
        .order_by(count.desc(), WorkOrderEvent.reason)
        .limit(TOP_RETURN_REASONS)
    )
    return [{"reason": reason, "count": int(n)} for reason, n in rows]


def _overdue_orders(
    db_session: Session, period: Period, now: datetime, limit: int
) -> list[dict[str, Any]]:
    rows = db_session.execute(
        _orders(
            period,
            WorkOrder.number,
            WorkOrder.department_code,
            WorkOrder.deadline_at,
            WorkOrder.state,
        )
        .where(_overdue(now))
        .order_by(WorkOrder.deadline_at, WorkOrder.id)
        .limit(limit)
    )
    return [
        {"number": number, "department_code": code, "deadline": deadline, "state": state}
        for number, code, deadline, state in rows
    ]


def _escalated_orders(db_session: Session, period: Period, limit: int) -> list[dict[str, Any]]:
    rows = db_session.execute(
        _orders(period, WorkOrder.number, WorkOrder.department_code, WorkOrder.state)
        .where(WorkOrder.escalated.is_(True))
        .order_by(WorkOrder.id.desc())
        .limit(limit)
    )
    return [
        {"number": number, "department_code": code, "state": state} for number, code, state in rows
    ]


def period_statistics(
    *, db_session: Session, period: Period, now: datetime, list_limit: int = LIST_LIMIT
) -> PeriodStatistics:
    """Every figure of the statistics page for `period`, as it stands at `now`."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    totals = _totals(db_session, period, now)
    on_time = on_time_figures(
        db_session=db_session, since=period.since, until=period.until, now=now
    )
    satisfaction = _satisfaction(db_session, period)
    rates = {
        "on_time_dispatch_rate": on_time["accept"]["on_time_rate"],
        "on_time_closure_rate": on_time["reply"]["on_time_rate"],
        "satisfaction_rate": satisfaction.get(None),
        "auto_dispatch_rate": _rate(_auto_dispatched(db_session, period), totals["appeals"]),
    }
    return PeriodStatistics(
        date_from=period.date_from.isoformat(),
        date_to=period.date_to.isoformat(),
        totals=totals,
        rates=rates,
        daily=_daily(db_session, period),
        by_category=_by_category(db_session, period),
        by_department=_by_department(db_session, period, now),
        by_district=_by_district(db_session, period),
        returns=_returns(db_session, period),
        overdue=_overdue_orders(db_session, period, now, list_limit),
        escalated=_escalated_orders(db_session, period, list_limit),
    )


# -- export ---------------------------------------------------------------------------------------

EXPORT_COLUMNS = (
    "number",
    "received_at",
    "channel",
    "appeal_type",
    "state",
    "category_code",
    "category_path",
    "department_code",
    "department_name",
    "district_code",
    "caller_name",
    "caller_phone",
    "address",
    "title",
    "text",
    "dispatched_at",
    "accept_deadline_at",
    "accepted_at",
    "deadline_at",
    "replied_at",
    "closed_at",
    "escalated",
    "return_count",
    "callback_result",
)
"""Columns of one export row, in order; times are local (the period's zone) ISO strings."""


def _local_iso(value: datetime | None, tz: tzinfo) -> str:
    return "" if value is None else value.astimezone(tz).isoformat(timespec="seconds")


def export_rows(
    *, db_session: Session, period: Period, batch_size: int = 500
) -> Iterator[dict[str, Any]]:
    """One unmasked row per work order of the period, oldest first, read in batches.

    The caller masks personal data according to who asked (``service.auth.masking``).
    """
    # The order's latest answer (a merge group has one callback per distinct caller).
    latest = (
        select(Callback.result)
        .where(Callback.work_order_id == WorkOrder.id, Callback.result.is_not(None))
        .order_by(Callback.completed_at.desc(), Callback.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    query = (
        _orders(period, WorkOrder, Appeal, Category.path, Department.name, latest)
        .outerjoin(Category, WorkOrder.category_code == Category.code)
        .outerjoin(Department, WorkOrder.department_code == Department.code)
        .order_by(Appeal.received_at, WorkOrder.id)
        .execution_options(yield_per=batch_size)
    )
    tz = period.tz
    result = db_session.execute(query)
    try:
        for order, appeal, path, department_name, callback_result in result:
            yield {
                "number": order.number,
                "received_at": _local_iso(appeal.received_at, tz),
                "channel": appeal.channel,
                "appeal_type": appeal.appeal_type or "",
                "state": order.state,
                "category_code": order.category_code or "",
                "category_path": path or "",
                "department_code": order.department_code or "",
                "department_name": department_name or "",
                "district_code": order.district_code or "",
                "caller_name": appeal.caller_name or "",
                "caller_phone": appeal.caller_phone or "",
                "address": appeal.address or "",
                "title": appeal.title or "",
                "text": appeal.text,
                "dispatched_at": _local_iso(order.dispatched_at, tz),
                "accept_deadline_at": _local_iso(order.accept_deadline_at, tz),
                "accepted_at": _local_iso(order.accepted_at, tz),
                "deadline_at": _local_iso(order.deadline_at, tz),
                "replied_at": _local_iso(order.replied_at, tz),
                "closed_at": _local_iso(order.closed_at, tz),
                "escalated": order.escalated,
                "return_count": order.return_count,
                "callback_result": callback_result or "",
            }
    finally:
        # A reader that stops early (a dropped download) must not leave a server cursor open.
        result.close()
