"""Department assessment (考核) over a period of local dates: the facts per department, district
or street, the scorecard with score, ranking, red/yellow lists and the trend against the previous
period, and the orders behind each figure (drill-down).

Which orders each figure counts (``[since, until)`` is the period, figures stand as at ``now``):

    received      orders whose appeal was received in the period (the dashboard's ``appeals``)
    dispatches    routing events (``triage_auto``, ``dispatch``, ``redispatch``) in the period;
                  the unit of a department scorecard is the department the event sent it to
    accept        签收及时率, the dashboard's 按时派单率: orders whose latest dispatch is in the
                  period, rated by :func:`router.deadlines.service.on_time_status`
    closure       按时办结率: the same orders, reply against the handling deadline
    satisfaction  满意率: callbacks with a result of the orders received in the period
    returns       return events (退单) in the period, by the returning department; ruled
                  ``justified`` when the order's next routing sent it to another department,
                  ``unjustified`` when back to the same one, ``pending`` until then
    extensions    延期率: of the ``accept`` orders, those with an extension request (延期申请)
    repeats       重复诉求率: orders whose latest closure (办结) in the period was followed, within
                  ``repeat_window_days``, by another appeal of the same caller (national phone
                  digits) or about the same place (same street and same named site)
    escalations   督办次数: escalation events in the period

Apart from ``dispatches`` and ``returns`` (whose department is the event's), a fact's unit is the
order's current department, district or street. The total row counts every fact, whatever its
unit, and equals the dashboard's figures for the same period.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from router.assessment.scoring import (
    AssessmentPolicy,
    Fact,
    Figure,
    ReturnRuling,
    UnitKind,
    figures_of,
    level_of,
    rank,
    score_of,
    trend_of,
)
from router.catalogue.models import Department
from router.deadlines.service import dispatched_orders
from router.errors import InvalidInput
from router.statistics.service import Period, make_period, period_callbacks
from router.workorders.models import Appeal, WorkOrder, WorkOrderEvent
from router.workorders.queries import national_number
from router.workorders.workflow import Action

__all__ = [
    "ROUTING_ACTIONS",
    "Scorecard",
    "collect_facts",
    "drill_down",
    "month_period",
    "previous_period",
    "scorecard",
]

ROUTING_ACTIONS = (Action.TRIAGE_AUTO.value, Action.DISPATCH.value, Action.REDISPATCH.value)
_UNIT_COLUMNS = {
    UnitKind.DEPARTMENT: WorkOrder.department_code,
    UnitKind.DISTRICT: WorkOrder.district_code,
    UnitKind.STREET: WorkOrder.street_code,
}


def month_period(month: str) -> Period:
    """The local dates of a calendar month given as ``YYYY-MM``; `InvalidInput` otherwise."""
    try:
        year, number = (int(part) for part in month.split("-"))
        first = date(year, number, 1)
    except ValueError:
        raise InvalidInput("month must be YYYY-MM, e.g. 2025-11", field="month") from None
    last = date(year, number, calendar.monthrange(year, number)[1])
    return make_period(first, last)


def previous_period(period: Period) -> Period:
    """The period just before: the previous calendar month for a whole month (月环比), else the
    same number of days ending the day before."""
    first, last = period.date_from, period.date_to
    is_month = first.day == 1 and (last + timedelta(days=1)).day == 1 and first.month == last.month
    if is_month:
        end = first - timedelta(days=1)
        return Period(end.replace(day=1), end, period.tz)
    days = (last - first).days + 1
    return Period(first - timedelta(days=days), first - timedelta(days=1), period.tz)


def _data_code(data: Any) -> str | None:
    code = (data or {}).get("department_code") if isinstance(data, dict) else None
    return str(code) if code else None


def _received(db_session: Session, period: Period, unit: UnitKind) -> Iterable[Fact]:
    column = _UNIT_COLUMNS[unit]
    rows = db_session.execute(
        select(WorkOrder.number, column)
        .join(Appeal, WorkOrder.appeal_id == Appeal.id)
        .where(Appeal.received_at >= period.since, Appeal.received_at < period.until)
        .order_by(WorkOrder.id)
    )
    for number, code in rows:
        yield Fact(Figure.RECEIVED, code, number, "received")


def _events(
    db_session: Session, period: Period, unit: UnitKind, actions: tuple[str, ...]
) -> list[tuple[Any, ...]]:
    """(event id, order id, number, unit of the order, event data) of events in the period."""
    column = _UNIT_COLUMNS[unit]
    return list(
        db_session.execute(
            select(
                WorkOrderEvent.id,
                WorkOrder.id,
                WorkOrder.number,
                column,
                WorkOrderEvent.data,
            )
            .join(WorkOrder, WorkOrderEvent.work_order_id == WorkOrder.id)
            .where(
                WorkOrderEvent.action.in_(actions),
                WorkOrderEvent.at >= period.since,
                WorkOrderEvent.at < period.until,
            )
            .order_by(WorkOrderEvent.id)
        )
    )


def _dispatches(db_session: Session, period: Period, unit: UnitKind) -> Iterable[Fact]:
    for _, _, number, code, data in _events(db_session, period, unit, ROUTING_ACTIONS):
        target = _data_code(data) if unit is UnitKind.DEPARTMENT else code
        yield Fact(Figure.DISPATCHES, target, number, "dispatched")


def _returns(db_session: Session, period: Period, unit: UnitKind) -> Iterable[Fact]:
    returns = _events(db_session, period, unit, (Action.RETURN.value,))
    if not returns:
        return
    returned = (
        select(WorkOrderEvent.work_order_id)
        .where(
            WorkOrderEvent.action == Action.RETURN.value,
            WorkOrderEvent.at >= period.since,
            WorkOrderEvent.at < period.until,
        )
        .scalar_subquery()
    )
    routings: dict[int, list[tuple[int, str | None]]] = defaultdict(list)
    for event_id, order_id, data in db_session.execute(
        select(WorkOrderEvent.id, WorkOrderEvent.work_order_id, WorkOrderEvent.data)
        .where(
            WorkOrderEvent.work_order_id.in_(returned),
            WorkOrderEvent.action.in_(ROUTING_ACTIONS),
        )
        .order_by(WorkOrderEvent.id)
    ):
        routings[order_id].append((event_id, _data_code(data)))
    for event_id, order_id, number, code, data in returns:
        returning = _data_code(data)
        following = [target for later, target in routings[order_id] if later > event_id]
        if not following:
            ruling = ReturnRuling.PENDING
        elif following[0] != returning:
            ruling = ReturnRuling.JUSTIFIED
        else:
            ruling = ReturnRuling.UNJUSTIFIED
        target = returning if unit is UnitKind.DEPARTMENT else code
        yield Fact(Figure.RETURNS, target, number, ruling.value)


def _dispatched(
    db_session: Session, period: Period, unit: UnitKind, now: datetime
) -> Iterable[Fact]:
    attribute = {
        UnitKind.DEPARTMENT: "department_code",
        UnitKind.DISTRICT: "district_code",
        UnitKind.STREET: "street_code",
    }[unit]
    for order in dispatched_orders(db_session=db_session, since=period.since, until=period.until):
        code = getattr(order, attribute)
        yield Fact(Figure.ACCEPT, code, order.number, order.accept_status(now).value)
        yield Fact(Figure.CLOSURE, code, order.number, order.reply_status(now).value)
        extended = "extended" if order.extension_count > 0 else "not_extended"
        yield Fact(Figure.EXTENSIONS, code, order.number, extended)


def _satisfaction(db_session: Session, period: Period, unit: UnitKind) -> Iterable[Fact]:
    attribute = f"{unit.value}_code"
    for callback in period_callbacks(db_session=db_session, period=period):
        yield Fact(
            Figure.SATISFACTION, getattr(callback, attribute), callback.number, callback.result
        )


def _site(street: str | None, site: str | None) -> tuple[str, str] | None:
    return (street, site) if street and site else None


def _repeats(
    db_session: Session, period: Period, unit: UnitKind, policy: AssessmentPolicy
) -> Iterable[Fact]:
    column = _UNIT_COLUMNS[unit]
    closures: dict[int, tuple[datetime, str, str | None, str, tuple[str, str] | None]] = {}
    for order_id, at, number, code, phone, street, site in db_session.execute(
        select(
            WorkOrder.id,
            WorkOrderEvent.at,
            WorkOrder.number,
            column,
            Appeal.caller_phone,
            WorkOrder.street_code,
            WorkOrder.site,
        )
        .join(WorkOrder, WorkOrderEvent.work_order_id == WorkOrder.id)
        .join(Appeal, WorkOrder.appeal_id == Appeal.id)
        .where(
            WorkOrderEvent.action == Action.CLOSE.value,
            WorkOrderEvent.at >= period.since,
            WorkOrderEvent.at < period.until,
        )
        .order_by(WorkOrderEvent.id)
    ):
        # The latest closure in the period counts (a reopened order is closed again later).
        closures[order_id] = (at, number, code, national_number(phone), _site(street, site))
    if not closures:
        return
    window = timedelta(days=policy.repeat_window_days)
    first = min(at for at, *_ in closures.values())
    last = max(at for at, *_ in closures.values()) + window
    by_phone: dict[str, list[tuple[int, datetime]]] = defaultdict(list)
    by_place: dict[tuple[str, str], list[tuple[int, datetime]]] = defaultdict(list)
    for order_id, received_at, phone, street, site in db_session.execute(
        select(
            WorkOrder.id,
            Appeal.received_at,
            Appeal.caller_phone,
            WorkOrder.street_code,
            WorkOrder.site,
        )
        .join(Appeal, WorkOrder.appeal_id == Appeal.id)
        .where(Appeal.received_at > first, Appeal.received_at <= last)
    ):
        if national := national_number(phone):
            by_phone[national].append((order_id, received_at))
        if place := _site(street, site):
            by_place[place].append((order_id, received_at))
    for order_id, (at, number, code, phone, place) in closures.items():
        candidates = (by_phone.get(phone, []) if phone else []) + (
            by_place.get(place, []) if place else []
        )
        repeated = any(
            other != order_id and at < received_at <= at + window
            for other, received_at in candidates
        )
        yield Fact(Figure.REPEATS, code, number, "repeated" if repeated else "not_repeated")


def _escalations(db_session: Session, period: Period, unit: UnitKind) -> Iterable[Fact]:
    for _, _, number, code, _ in _events(db_session, period, unit, (Action.ESCALATE.value,)):
        yield Fact(Figure.ESCALATIONS, code, number, "escalated")


def collect_facts(
    *,
    db_session: Session,
    period: Period,
    now: datetime,
    unit: UnitKind,
    policy: AssessmentPolicy,
    figures: frozenset[Figure] | None = None,
) -> list[Fact]:
    """Every fact of the period for a scorecard by `unit` (see the module docstring), or only
    those of `figures`."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    wanted = frozenset(Figure) if figures is None else figures
    facts: list[Fact] = []
    if Figure.RECEIVED in wanted:
        facts += _received(db_session, period, unit)
    if Figure.DISPATCHES in wanted:
        facts += _dispatches(db_session, period, unit)
    if wanted & {Figure.ACCEPT, Figure.CLOSURE, Figure.EXTENSIONS}:
        facts += (f for f in _dispatched(db_session, period, unit, now) if f.figure in wanted)
    if Figure.SATISFACTION in wanted:
        facts += _satisfaction(db_session, period, unit)
    if Figure.RETURNS in wanted:
        facts += _returns(db_session, period, unit)
    if Figure.REPEATS in wanted:
        facts += _repeats(db_session, period, unit, policy)
    if Figure.ESCALATIONS in wanted:
        facts += _escalations(db_session, period, unit)
    return facts


@dataclass
class Scorecard:
    """The scorecard document (the shape of ``GET /api/v1/assessment/scorecard``)."""

    date_from: str
    date_to: str
    previous_from: str
    previous_to: str
    unit: str
    policy: dict[str, Any]
    rows: list[dict[str, Any]]
    total: dict[str, Any]
    red: list[str]
    yellow: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "date_from": self.date_from,
            "date_to": self.date_to,
            "previous": {"date_from": self.previous_from, "date_to": self.previous_to},
            "unit": self.unit,
            "policy": self.policy,
            "rows": self.rows,
            "total": self.total,
            "red": self.red,
            "yellow": self.yellow,
        }


def _scores(
    facts: list[Fact], policy: AssessmentPolicy
) -> tuple[dict[str, dict[str, Any]], dict[str, float | None]]:
    grouped: dict[str, list[Fact]] = defaultdict(list)
    for fact in facts:
        if fact.unit is not None:
            grouped[fact.unit].append(fact)
    figures = {code: figures_of(unit_facts) for code, unit_facts in grouped.items()}
    return figures, {code: score_of(values, policy) for code, values in figures.items()}


def scorecard(
    *,
    db_session: Session,
    period: Period,
    now: datetime,
    unit: UnitKind,
    policy: AssessmentPolicy,
) -> Scorecard:
    """Figures, score, rank and level per unit, red and yellow lists, and the previous period's
    score and rank of each unit (its trend), highest score first."""
    facts = collect_facts(db_session=db_session, period=period, now=now, unit=unit, policy=policy)
    figures, scores = _scores(facts, policy)
    ranks = rank(scores)
    before = previous_period(period)
    old_facts = collect_facts(
        db_session=db_session, period=before, now=now, unit=unit, policy=policy
    )
    _, old_scores = _scores(old_facts, policy)
    old_ranks = rank(old_scores)
    names = dict(
        db_session.execute(
            select(Department.code, Department.name).where(Department.code.in_(sorted(figures)))
        ).all()
    )
    rows = []
    for code, values in figures.items():
        score = scores[code]
        rows.append(
            {
                "code": code,
                "name": names.get(code, code),
                **values,
                "score": score,
                "rank": ranks[code],
                "level": level_of(score, policy),
                "previous_score": old_scores.get(code),
                "previous_rank": old_ranks.get(code),
                "trend": trend_of(score, old_scores.get(code)),
            }
        )
    rows.sort(key=lambda row: (row["rank"] is None, row["rank"] or 0, row["code"]))
    total = figures_of(facts)
    total_score = score_of(total, policy)
    previous_total = score_of(figures_of(old_facts), policy)
    total.update(
        score=total_score,
        previous_score=previous_total,
        trend=trend_of(total_score, previous_total),
    )
    return Scorecard(
        date_from=period.date_from.isoformat(),
        date_to=period.date_to.isoformat(),
        previous_from=before.date_from.isoformat(),
        previous_to=before.date_to.isoformat(),
        unit=unit.value,
        policy=policy.to_dict(),
        rows=rows,
        total=total,
        red=[row["code"] for row in rows if row["level"] == "red"],
        yellow=[row["code"] for row in rows if row["level"] == "yellow"],
    )


def drill_down(
    *,
    db_session: Session,
    period: Period,
    now: datetime,
    unit: UnitKind,
    figure: Figure,
    code: str | None,
    policy: AssessmentPolicy,
) -> list[Fact]:
    """The facts behind one figure of one unit (`code` None: of the total row), in the order
    the figure counted them; each names the order and how it counted."""
    facts = collect_facts(
        db_session=db_session,
        period=period,
        now=now,
        unit=unit,
        policy=policy,
        figures=frozenset({figure}),
    )
    return [fact for fact in facts if code is None or fact.unit == code]
