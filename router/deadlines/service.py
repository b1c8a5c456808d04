"""Deadline scans: warn before the sign-for (签收) and handling deadlines, escalate (督办) after.

:func:`scan_deadlines` is what the periodic ``deadlines.scan`` task runs; it only flushes, so the
task wrapper owns the transaction. Each warning and each escalation happens once per deadline
kind and deadline instant: a re-scan adds nothing, but a deadline that moved (an approved
extension, a redispatch) is watched afresh. :func:`on_time_figures` reports how many orders were
accepted and replied to in time.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, func, not_, or_, select, true
from sqlalchemy.orm import Session

from router.calendar import DEFAULT_CALENDAR, DeadlineUnit, WorkingCalendar
from router.catalogue.models import Category
from router.notifications.models import NotificationKind, RecipientKind
from router.notifications.service import notify
from router.workorders import service as workorders
from router.workorders.models import WorkOrder, WorkOrderEvent
from router.workorders.workflow import (
    AT_DEPARTMENT,
    DEFAULT_POLICY,
    Action,
    DeadlineStatus,
    Role,
    State,
    WorkflowPolicy,
    deadline_status,
)

__all__ = [
    "SCAN_ACTOR",
    "WARNING_ACTION",
    "DeadlineHit",
    "DeadlineKind",
    "DispatchedOrder",
    "OnTime",
    "ScanResult",
    "dispatched_orders",
    "on_time_figures",
    "on_time_rate",
    "on_time_status",
    "scan_deadlines",
]

SCAN_ACTOR = "deadline-scan"
WARNING_ACTION = "deadline_warning"
"""Event action of a warning; not a lifecycle action (the state does not change)."""


class DeadlineKind(StrEnum):
    ACCEPT = "accept"  # sign-for deadline (签收时限), WorkOrder.accept_deadline_at
    HANDLE = "handle"  # handling deadline (办理时限), WorkOrder.deadline_at


_NAMES = {DeadlineKind.ACCEPT: "签收时限", DeadlineKind.HANDLE: "办理时限"}

_AWAITING_ACCEPTANCE = frozenset({State.DISPATCHED, State.REOPENED})
_AT_DEPARTMENT_FILTER = WorkOrder.state.in_(sorted(state.value for state in AT_DEPARTMENT))


@dataclass(frozen=True)
class DeadlineHit:
    """One deadline of one order that the scan warned about or escalated."""

    number: str
    kind: DeadlineKind
    deadline: datetime

    def to_dict(self) -> dict[str, str]:
        return {"number": self.number, "kind": self.kind.value, "deadline": _iso(self.deadline)}


@dataclass
class ScanResult:
    """What one scan did (nothing at all on a re-scan with the same clock)."""

    checked: int = 0
    warned: list[DeadlineHit] = field(default_factory=list)
    escalated: list[DeadlineHit] = field(default_factory=list)
    notifications: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "warned": [hit.to_dict() for hit in self.warned],
            "escalated": [hit.to_dict() for hit in self.escalated],
            "notifications": self.notifications,
        }


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")


def _handled(db_session: Session) -> dict[int, set[tuple[str, str, str]]]:
    """Per order, the (action, deadline kind, deadline) triples earlier scans already acted on."""
    done: dict[int, set[tuple[str, str, str]]] = defaultdict(set)
    rows = db_session.execute(
        select(WorkOrderEvent.work_order_id, WorkOrderEvent.action, WorkOrderEvent.data)
        .join(WorkOrder, WorkOrderEvent.work_order_id == WorkOrder.id)
        .where(
            _AT_DEPARTMENT_FILTER,
            WorkOrderEvent.action.in_([WARNING_ACTION, Action.ESCALATE.value]),
        )
    )
    for order_id, action, data in rows:
        kind = (data or {}).get("deadline_kind")
        deadline = (data or {}).get("deadline")
        if kind and deadline:
            done[order_id].add((action, kind, deadline))
    return done


def _deadlines(
    order: WorkOrder, category_unit: str | None
) -> list[tuple[DeadlineKind, datetime, str]]:
    """The running deadlines of an order in the department's hands, with their time unit."""
    found: list[tuple[DeadlineKind, datetime, str]] = []
    accepted_since_dispatch = (
        order.accepted_at is not None
        and order.dispatched_at is not None
        and order.accepted_at >= order.dispatched_at
    )
    if (
        order.state in _AWAITING_ACCEPTANCE
        and order.accept_deadline_at is not None
        and not accepted_since_dispatch
    ):
        # Urgent orders are signed for around the clock (see start_department_clock).
        unit = DeadlineUnit.HOURS if order.priority == "urgent" else DeadlineUnit.WORKING_HOURS
        found.append((DeadlineKind.ACCEPT, order.accept_deadline_at, unit.value))
    if order.deadline_at is not None:
        suggestion = order.suggestion or {}
        if order.priority == "urgent" and suggestion.get("urgent_keywords"):
            # An urgent keyword set the urgent deadline (see handling_deadline_rule), not the
            # category: measure the share in its unit.
            category_unit = str(suggestion.get("deadline_unit") or category_unit or "")
        found.append(
            (DeadlineKind.HANDLE, order.deadline_at, category_unit or DeadlineUnit.WORKING_DAYS)
        )
    return found


def scan_deadlines(
    *,
    db_session: Session,
    now: datetime,
    calendar: WorkingCalendar = DEFAULT_CALENDAR,
    policy: WorkflowPolicy = DEFAULT_POLICY,
) -> ScanResult:
    """Warn about and escalate the deadlines of every order in a department's hands.

    A deadline with ``policy.warning_share`` of its allowed (working) time used gets one
    ``deadline_warning`` event, ``warned_at`` and a notification to the department; a deadline
    that has passed gets one ``escalate`` event (``escalated`` is set) and notifications to the
    department and the supervisors. The sign-for deadline counts only while the order waits to be
    accepted (``dispatched``/``reopened``); the handling deadline in every state of
    :data:`~router.workorders.workflow.AT_DEPARTMENT`.
    """
    _require_aware(now, "now")
    result = ScanResult()
    rows = db_session.execute(
        select(WorkOrder, Category.deadline_unit)
        .outerjoin(Category, WorkOrder.category_code == Category.code)
        .where(
            _AT_DEPARTMENT_FILTER,
            (WorkOrder.accept_deadline_at.is_not(None)) | (WorkOrder.deadline_at.is_not(None)),
        )
        .order_by(WorkOrder.id)
    ).all()
    handled = _handled(db_session)
    for order, category_unit in rows:
        result.checked += 1
        done = handled[order.id]
        for kind, deadline, unit in _deadlines(order, category_unit):
            key = _iso(deadline)
            if (Action.ESCALATE.value, kind.value, key) in done:
                continue
            if now > deadline:
                result.notifications += _escalate(
                    db_session, order, kind, deadline, now=now, calendar=calendar
                )
                result.escalated.append(DeadlineHit(order.number, kind, deadline))
                continue
            if (WARNING_ACTION, kind.value, key) in done:
                continue
            start = order.dispatched_at or deadline
            status = deadline_status(
                start, deadline, now, unit=unit, policy=policy, calendar=calendar
            )
            if status is DeadlineStatus.WARNING:
                share = calendar.elapsed_share(start, deadline, now, unit=unit)
                result.notifications += _warn(
                    db_session, order, kind, deadline, share, now=now, calendar=calendar
                )
                result.warned.append(DeadlineHit(order.number, kind, deadline))
    db_session.flush()
    return result


def _local(deadline: datetime, calendar: WorkingCalendar) -> str:
    return f"{deadline.astimezone(calendar.tz):%Y-%m-%d %H:%M}"


def _warn(
    db_session: Session,
    order: WorkOrder,
    kind: DeadlineKind,
    deadline: datetime,
    share: float,
    *,
    now: datetime,
    calendar: WorkingCalendar,
) -> int:
    # A warning is a note in the history, not a transition: it bypasses the state machine.
    db_session.add(
        WorkOrderEvent(
            work_order_id=order.id,
            at=now,
            actor=SCAN_ACTOR,
            role=Role.SYSTEM.value,
            action=WARNING_ACTION,
            from_state=order.state,
            to_state=order.state,
            reason=f"临近{_NAMES[kind]}",
            data={
                "deadline_kind": kind.value,
                "deadline": _iso(deadline),
                "share": round(share, 3),
            },
        )
    )
    order.warned_at = now
    order.updated_at = now
    message = f"工单 {order.number} 即将超过{_NAMES[kind]}（截止 {_local(deadline, calendar)}）"
    _notify_department(db_session, order, NotificationKind.DEADLINE_WARNING, message, now=now)
    return 1


def _escalate(
    db_session: Session,
    order: WorkOrder,
    kind: DeadlineKind,
    deadline: datetime,
    *,
    now: datetime,
    calendar: WorkingCalendar,
) -> int:
    workorders.act(
        db_session=db_session,
        work_order=order,
        action=Action.ESCALATE.value,
        actor=SCAN_ACTOR,
        role=Role.SYSTEM.value,
        reason=f"超过{_NAMES[kind]}",
        data={"deadline_kind": kind.value, "deadline": _iso(deadline)},
        now=now,
    )
    message = f"工单 {order.number} 已超过{_NAMES[kind]}（截止 {_local(deadline, calendar)}）"
    _notify_department(db_session, order, NotificationKind.OVERDUE, message, now=now)
    notify(
        db_session=db_session,
        work_order=order,
        recipient_kind=RecipientKind.SUPERVISORS.value,
        kind=NotificationKind.OVERDUE.value,
        message=message,
        now=now,
    )
    return 2


def _notify_department(
    db_session: Session, order: WorkOrder, kind: NotificationKind, message: str, *, now: datetime
) -> None:
    # An order in a department's hands always has one; if not, the supervisors must hear of it.
    recipient = RecipientKind.DEPARTMENT if order.department_code else RecipientKind.SUPERVISORS
    notify(
        db_session=db_session,
        work_order=order,
        recipient_kind=recipient.value,
        recipient_code=order.department_code,
        kind=kind.value,
        message=message,
        now=now,
    )


def _rate(on_time: int, late: int) -> float | None:
    return None if on_time + late == 0 else round(on_time / (on_time + late), 4)


class OnTime(StrEnum):
    """How one deadline of one order stands: the single definition behind every on-time rate."""

    ON_TIME = "on_time"
    LATE = "late"
    PENDING = "pending"
    WITHOUT_DEADLINE = "without_deadline"


def on_time_status(done_at: datetime | None, deadline: datetime | None, now: datetime) -> OnTime:
    """Done by the deadline (the deadline itself is in time), late (also when still open past
    the deadline), pending (open, deadline ahead) or without a deadline."""
    if deadline is None:
        return OnTime.WITHOUT_DEADLINE
    if done_at is not None:
        return OnTime.ON_TIME if done_at <= deadline else OnTime.LATE
    return OnTime.LATE if now > deadline else OnTime.PENDING


def on_time_rate(statuses: Iterable[OnTime]) -> float | None:
    """On time / (on time + late), None when there is nothing to rate."""
    counts = Counter(statuses)
    return _rate(counts[OnTime.ON_TIME], counts[OnTime.LATE])


@dataclass(frozen=True)
class DispatchedOrder:
    """An order dispatched in a period with the two deadlines the on-time rates rate.

    ``accepted_at`` and ``replied_at`` are the ones of the latest dispatch: an acceptance or a
    reply from before it (the previous department's, or before a reopen) does not count.
    """

    number: str
    department_code: str | None
    district_code: str | None
    street_code: str | None
    accepted_at: datetime | None
    accept_deadline_at: datetime | None
    replied_at: datetime | None
    deadline_at: datetime | None
    extension_count: int

    def accept_status(self, now: datetime) -> OnTime:
        return on_time_status(self.accepted_at, self.accept_deadline_at, now)

    def reply_status(self, now: datetime) -> OnTime:
        return on_time_status(self.replied_at, self.deadline_at, now)


def _since(value: datetime | None, start: datetime | None) -> datetime | None:
    return value if value is not None and start is not None and value >= start else None


def dispatched_orders(
    *, db_session: Session, since: datetime, until: datetime
) -> list[DispatchedOrder]:
    """The orders whose latest dispatch (``dispatched_at``) is in ``[since, until)``."""
    for value, name in ((since, "since"), (until, "until")):
        _require_aware(value, name)
    rows = db_session.execute(
        select(
            WorkOrder.number,
            WorkOrder.department_code,
            WorkOrder.district_code,
            WorkOrder.street_code,
            WorkOrder.dispatched_at,
            WorkOrder.accepted_at,
            WorkOrder.accept_deadline_at,
            WorkOrder.replied_at,
            WorkOrder.deadline_at,
            WorkOrder.extension_count,
        )
        .where(WorkOrder.dispatched_at >= since, WorkOrder.dispatched_at < until)
        .order_by(WorkOrder.id)
    )
    return [
        DispatchedOrder(
            number=number,
            department_code=department,
            district_code=district,
            street_code=street,
            accepted_at=_since(accepted, dispatched),
            accept_deadline_at=accept_deadline,
            replied_at=_since(replied, dispatched),
            deadline_at=deadline,
            extension_count=int(extensions or 0),
        )
        for (
            number,
            department,
            district,
            street,
            dispatched,
            accepted,
            accept_deadline,
            replied,
            deadline,
            extensions,
        ) in rows
    ]


def _tally(statuses: list[OnTime]) -> dict[str, int | float | None]:
    counts = Counter(statuses)
    return {
        **{status.value: counts[status] for status in OnTime},
        "on_time_rate": on_time_rate(statuses),
    }


def on_time_figures(
    *, db_session: Session, since: datetime, until: datetime, now: datetime | None = None
) -> dict[str, Any]:
    """On-time acceptance and reply figures of the orders dispatched in ``[since, until)``.

    Each order is rated by :func:`on_time_status` over :func:`dispatched_orders` (acceptance:
    ``accepted_at`` against ``accept_deadline_at``; reply: ``replied_at`` against
    ``deadline_at``); one still waiting at ``now`` (default: the current time) is late once its
    deadline has passed and ``pending`` before. Rates are on time / (on time + late), None when
    there is nothing to rate.
    """
    at = now or datetime.now(UTC)
    _require_aware(at, "now")
    orders = dispatched_orders(db_session=db_session, since=since, until=until)
    return {
        "since": _iso(since),
        "until": _iso(until),
        "dispatched": len(orders),
        "accept": _tally([order.accept_status(at) for order in orders]),
        "reply": _tally([order.reply_status(at) for order in orders]),
    }


def deadline_counts(
    *, db_session: Session, now: datetime, horizon: timedelta
) -> dict[tuple[str, str], int]:
    """Running deadlines of the orders in departments' hands, counted in the database: for each
    (kind, status) with kind `accept` or `handle` and status `overdue` (passed) or `due` (passing
    within `horizon`). Two aggregate queries over the open states (indexed), for the metrics."""
    _require_aware(now, "now")
    soon = now + horizon
    counts: dict[tuple[str, str], int] = {}
    not_accepted = or_(
        WorkOrder.accepted_at.is_(None), WorkOrder.accepted_at < WorkOrder.dispatched_at
    )
    for kind, column, states, extra in (
        (DeadlineKind.ACCEPT, WorkOrder.accept_deadline_at, _AWAITING_ACCEPTANCE, not_accepted),
        (DeadlineKind.HANDLE, WorkOrder.deadline_at, AT_DEPARTMENT, true()),
    ):
        overdue, due = db_session.execute(
            select(
                func.count().filter(column < now),
                func.count().filter(column >= now, column < soon),
            ).where(WorkOrder.state.in_(sorted(s.value for s in states)), extra)
        ).one()
        counts[(kind.value, "overdue")] = int(overdue or 0)
        counts[(kind.value, "due")] = int(due or 0)
    return counts


def on_time_rates(
    *, db_session: Session, since: datetime, now: datetime
) -> dict[str, float | None]:
    """On-time rates of acceptance and handling (as `on_time_figures` counts them) of the orders
    dispatched since `since`, computed by one aggregate query (no rows leave the database)."""
    _require_aware(since, "since")
    _require_aware(now, "now")
    figures: dict[str, float | None] = {}
    rows: list[Any] = []
    for done, deadline in (
        (WorkOrder.accepted_at, WorkOrder.accept_deadline_at),
        (WorkOrder.replied_at, WorkOrder.deadline_at),
    ):
        # As `dispatched_orders`: a sign-for or reply from before the latest dispatch (another
        # department's, or before a reopen) does not count.
        counted = and_(done.is_not(None), done >= WorkOrder.dispatched_at)
        on_time = and_(counted, deadline.is_not(None), done <= deadline)
        late = and_(
            deadline.is_not(None),
            or_(and_(counted, done > deadline), and_(not_(counted), deadline < now)),
        )
        rows.extend((func.count().filter(on_time), func.count().filter(late)))
    counts = db_session.execute(select(*rows).where(WorkOrder.dispatched_at >= since)).one()
    figures[DeadlineKind.ACCEPT.value] = _rate(int(counts[0] or 0), int(counts[1] or 0))
    figures[DeadlineKind.HANDLE.value] = _rate(int(counts[2] or 0), int(counts[3] or 0))
    return figures
