"""Work-order persistence: intake of an appeal, routing onto an order, clocks, and state changes
with their events.

Every state change goes through `act()`, which asks the state machine
(`router.workorders.workflow`) whether the action is legal, stores the new state and appends the
event, all in the caller's transaction. Functions only flush; the request or task wrapper commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from router.calendar import DEFAULT_CALENDAR, WorkingCalendar
from router.catalogue.models import Category, Department
from router.errors import Conflict, InvalidInput
from router.orm import utcnow
from router.routing import RouteDecision
from router.workorders import workflow
from router.workorders.models import Appeal, WorkOrder, WorkOrderEvent
from router.workorders.workflow import Role

CHANNELS = ("phone", "web", "wechat", "open311", "agent")
URGENT_ACCEPT_HOURS = 0.5


@dataclass(frozen=True, kw_only=True)
class AppealInput:
    """What a channel hands over; validated by the transport layer before it gets here."""

    channel: str
    text: str
    title: str = ""
    appeal_type: str | None = None
    caller_phone: str | None = None
    caller_name: str | None = None
    address: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    idempotency_key: str | None = None
    external_id: str | None = None


def work_order_number(received_at: datetime, appeal_id: int) -> str:
    """Human-readable and unique: the intake date plus the appeal id, e.g. 20261123-0000042."""
    return f"{received_at:%Y%m%d}-{appeal_id:07d}"


def _record(db_session: Session, work_order: WorkOrder, event: workflow.Event) -> WorkOrderEvent:
    row = _event_row(event)
    row.work_order_id = work_order.id
    db_session.add(row)
    return row


def _event_row(event: workflow.Event) -> WorkOrderEvent:
    return WorkOrderEvent(
        at=event.at,
        actor=event.actor,
        role=event.role.value,
        action=event.action.value,
        from_state=None if event.from_state is None else event.from_state.value,
        to_state=event.to_state.value,
        reason=event.reason,
        data=dict(event.data),
    )


def find_by_idempotency_key(*, db_session: Session, key: str) -> WorkOrder | None:
    return db_session.scalar(
        select(WorkOrder)
        .join(Appeal, WorkOrder.appeal_id == Appeal.id)
        .where(Appeal.idempotency_key == key)
    )


def receive_appeal(
    *,
    db_session: Session,
    appeal: AppealInput,
    actor: str = "intake",
    role: str = Role.SYSTEM,
    now: datetime | None = None,
) -> tuple[WorkOrder, bool]:
    """Store an appeal and its work order in state `received`; returns (order, created).

    With an idempotency key that was seen before, the first order is returned and nothing is
    written (also when two requests with the same key race: the loser's insert is rolled back to
    a savepoint and the winner's order returned).
    """
    if appeal.idempotency_key:
        existing = find_by_idempotency_key(db_session=db_session, key=appeal.idempotency_key)
        if existing is not None:
            return existing, False
    at = now or utcnow()
    event = workflow.receive_event(actor=actor, role=role, at=at, data={"channel": appeal.channel})
    row = _appeal_row(appeal, at)
    if not appeal.idempotency_key:
        # Nothing to race on: no savepoint (two round trips per appeal).
        db_session.add(row)
        db_session.flush()
    else:
        try:
            with db_session.begin_nested():
                db_session.add(row)
                db_session.flush()
        except IntegrityError:
            existing = find_by_idempotency_key(db_session=db_session, key=appeal.idempotency_key)
            if existing is not None:
                return existing, False
            raise
    order = _new_order(row, event)
    db_session.add(order)
    db_session.flush()
    return order, True


def receive_appeals(
    *,
    db_session: Session,
    items: Sequence[tuple[AppealInput, str, str]],
    now: datetime | None = None,
) -> list[tuple[WorkOrder, bool]]:
    """`receive_appeal` for many (appeal, actor, role) at once, in two flushes: one multi-row
    INSERT per table instead of a few statements per appeal (group-committed intake).

    A key seen before, or earlier in the same batch, gives that order back, not created. A key
    another transaction inserts meanwhile raises IntegrityError: the caller rolls back and takes
    the appeals one by one through `receive_appeal`, which resolves the race.
    """
    keys = sorted({appeal.idempotency_key for appeal, _, _ in items if appeal.idempotency_key})
    known: dict[str, WorkOrder] = {}
    if keys:
        query = (
            select(Appeal.idempotency_key, WorkOrder)
            .join(WorkOrder, WorkOrder.appeal_id == Appeal.id)
            .where(Appeal.idempotency_key.in_(keys))
        )
        known = {str(key): order for key, order in db_session.execute(query)}
    at = now or utcnow()
    new: list[tuple[int, Appeal, workflow.Event]] = []
    repeated: list[tuple[int, str]] = []
    results: list[tuple[WorkOrder, bool] | None] = [None] * len(items)
    claimed: set[str] = set()
    for index, (appeal, actor, role) in enumerate(items):
        key = appeal.idempotency_key
        if key and key in known:
            results[index] = (known[key], False)
        elif key and key in claimed:
            repeated.append((index, key))
        else:
            if key:
                claimed.add(key)
            data = {"channel": appeal.channel}
            event = workflow.receive_event(actor=actor, role=role, at=at, data=data)
            new.append((index, _appeal_row(appeal, at), event))
    db_session.add_all([row for _, row, _ in new])
    db_session.flush()
    for index, row, event in new:
        order = _new_order(row, event)
        db_session.add(order)
        results[index] = (order, True)
        if row.idempotency_key:
            known[row.idempotency_key] = order
    db_session.flush()
    for index, key in repeated:
        results[index] = (known[key], False)
    return [result for result in results if result is not None]


def _appeal_row(appeal: AppealInput, at: datetime) -> Appeal:
    return Appeal(
        channel=appeal.channel,
        title=appeal.title,
        text=appeal.text,
        appeal_type=appeal.appeal_type,
        caller_phone=appeal.caller_phone,
        caller_name=appeal.caller_name,
        address=appeal.address,
        latitude=appeal.latitude,
        longitude=appeal.longitude,
        attachments=list(appeal.attachments),
        idempotency_key=appeal.idempotency_key,
        external_id=appeal.external_id,
        received_at=at,
    )


def _new_order(appeal: Appeal, event: workflow.Event) -> WorkOrder:
    """The `received` order of a flushed appeal, its receive event attached (one flush writes
    both through the relationship)."""
    at = appeal.received_at
    order = WorkOrder(
        number=work_order_number(at, appeal.id),
        appeal_id=appeal.id,
        state=event.to_state.value,
        created_at=at,
        updated_at=at,
    )
    order.events.append(_event_row(event))
    return order


def act(
    *,
    db_session: Session,
    work_order: WorkOrder,
    action: str,
    actor: str,
    role: str,
    reason: str = "",
    data: Mapping[str, Any] | None = None,
    now: datetime | None = None,
    flush: bool = True,
) -> WorkOrderEvent:
    """Apply one lifecycle action: check it, change the state, append the event.

    `flush=False` leaves the flush to callers that change the order further first."""
    at = now or utcnow()
    event = workflow.perform(
        work_order.state, action, actor=actor, role=role, at=at, reason=reason, data=data
    )
    work_order.state = event.to_state.value
    work_order.updated_at = at
    if event.action is workflow.Action.ESCALATE:
        work_order.escalated = True
    row = _record(db_session, work_order, event)
    if flush:
        db_session.flush()
    return row


def events(*, db_session: Session, work_order: WorkOrder) -> list[WorkOrderEvent]:
    return list(
        db_session.scalars(
            select(WorkOrderEvent)
            .where(WorkOrderEvent.work_order_id == work_order.id)
            .order_by(WorkOrderEvent.id)
        )
    )


def store_route(work_order: WorkOrder, decision: RouteDecision, model_version: str | None) -> None:
    """Copy a routing decision onto the order (category, departments, place, priority and the
    suggestion as the agent will see it), without acting on it."""
    work_order.category_code = decision.category_code
    work_order.department_code = decision.department_code
    work_order.assisting_department_codes = list(decision.assisting_department_codes)
    work_order.district_code = decision.district_code
    work_order.street_code = decision.street_code
    work_order.priority = decision.priority
    work_order.confidence = decision.confidence
    work_order.routing_source = decision.department_source
    work_order.suggestion = decision.to_dict()
    work_order.model_version = model_version


def apply_route(
    *,
    db_session: Session,
    work_order: WorkOrder,
    decision: RouteDecision,
    model_version: str | None,
    calendar: WorkingCalendar = DEFAULT_CALENDAR,
    policy: workflow.WorkflowPolicy = workflow.DEFAULT_POLICY,
    now: datetime | None = None,
    flush: bool = True,
) -> WorkOrderEvent:
    """Store the routing decision on a `received` order, then dispatch it or send it to review.

    `flush=False` leaves the flush to the caller (a batch of orders flushes once)."""
    at = now or utcnow()
    store_route(work_order, decision, model_version)
    confidence = round(decision.confidence, 4)
    if decision.auto_dispatch:
        action, reason = "triage_auto", ""
        data: dict[str, Any] = {
            "department_code": decision.department_code,
            "confidence": confidence,
        }
    else:
        action = "send_to_review"
        reason = "置信度低于自动派单阈值" if decision.category_code else "无法确定事项分类"
        data = {"confidence": confidence}
    event = act(
        db_session=db_session,
        work_order=work_order,
        action=action,
        actor="router",
        role=Role.SYSTEM,
        reason=reason,
        data=data,
        now=at,
        flush=False,
    )
    if decision.auto_dispatch:
        # One flush for the state, the event and the deadlines.
        start_department_clock(
            work_order=work_order,
            priority=decision.priority,
            deadline_value=decision.deadline_value,
            deadline_unit=decision.deadline_unit,
            calendar=calendar,
            policy=policy,
            now=at,
        )
    if flush:
        db_session.flush()
    return event


def start_department_clock(
    *,
    work_order: WorkOrder,
    priority: str,
    deadline_value: int,
    deadline_unit: str,
    calendar: WorkingCalendar = DEFAULT_CALENDAR,
    policy: workflow.WorkflowPolicy = workflow.DEFAULT_POLICY,
    now: datetime,
) -> None:
    """Set the sign-for and handling deadlines of a freshly dispatched order.

    The handling deadline is left as it is when `deadline_value` is 0 (no category deadline).
    """
    work_order.dispatched_at = now
    if priority == "urgent":
        # Urgent safety matters are signed for around the clock, not in office hours.
        work_order.accept_deadline_at = calendar.add_calendar_hours(now, URGENT_ACCEPT_HOURS)
    else:
        work_order.accept_deadline_at = workflow.accept_deadline(
            now, policy=policy, calendar=calendar
        )
    if deadline_value > 0:
        work_order.deadline_at = calendar.deadline_for(now, deadline_value, deadline_unit)


def get_leaf_category_or_raise(*, db_session: Session, code: str) -> Category:
    """An active level-3 category; InvalidInput (400) names the field otherwise."""
    category = db_session.get(Category, code)
    if category is None or not category.active:
        raise InvalidInput(f"unknown category {code!r}", field="category_code")
    if category.level != 3:
        raise InvalidInput(
            f"category {code!r} is not a leaf (level {category.level}); choose a level-3 category",
            field="category_code",
        )
    return category


def get_department_or_raise(*, db_session: Session, code: str) -> Department:
    """An active department; InvalidInput (400) names the field otherwise."""
    department = db_session.get(Department, code)
    if department is None or not department.active:
        raise InvalidInput(f"unknown department {code!r}", field="department_code")
    return department


def handling_deadline_rule(*, db_session: Session, order: WorkOrder) -> tuple[int, str]:
    """(value, unit) of the order's handling deadline: the urgent deadline the router chose when
    urgent keywords forced it (kept in the stored suggestion), else the category's, else (0, ...).
    """
    suggestion = order.suggestion or {}
    if order.priority == "urgent" and suggestion.get("urgent_keywords"):
        try:
            value = int(suggestion.get("deadline_value") or 0)
        except (TypeError, ValueError):
            value = 0
        unit = str(suggestion.get("deadline_unit") or "")
        if value > 0 and unit:
            return value, unit
    category = db_session.get(Category, order.category_code) if order.category_code else None
    if category is None:
        return 0, "working_days"
    return category.deadline_value, category.deadline_unit


def restart_department_clock(
    *,
    db_session: Session,
    order: WorkOrder,
    now: datetime,
    calendar: WorkingCalendar = DEFAULT_CALENDAR,
    policy: workflow.WorkflowPolicy = workflow.DEFAULT_POLICY,
) -> None:
    """New sign-for and handling deadlines from `now` (redispatch, reopen).

    The handling deadline follows :func:`handling_deadline_rule`, so an order made urgent by an
    urgent keyword keeps the urgent deadline rather than falling back to its category's.
    """
    value, unit = handling_deadline_rule(db_session=db_session, order=order)
    start_department_clock(
        work_order=order,
        priority=order.priority,
        deadline_value=value,
        deadline_unit=unit,
        calendar=calendar,
        policy=policy,
        now=now,
    )
    order.warned_at = None


def reopen(
    *,
    db_session: Session,
    order: WorkOrder,
    actor: str,
    reason: str,
    role: str = Role.SYSTEM,
    escalate: bool = False,
    data: Mapping[str, Any] | None = None,
    calendar: WorkingCalendar = DEFAULT_CALENDAR,
    policy: workflow.WorkflowPolicy = workflow.DEFAULT_POLICY,
    now: datetime | None = None,
) -> list[WorkOrderEvent]:
    """Reopen a closed order to the same department (and escalate it) with fresh clocks.

    The department must sign for it again: a new sign-for deadline and a new handling deadline
    start at `now`. An order no department had (answered at intake) goes to the review queue.
    """
    at = now or utcnow()
    events = [
        act(
            db_session=db_session,
            work_order=order,
            action=workflow.Action.REOPEN.value,
            actor=actor,
            role=role,
            reason=reason,
            data={"department_code": order.department_code, **dict(data or {})},
            now=at,
        )
    ]
    order.closed_at = None

    def system(action: workflow.Action, data: dict[str, Any] | None = None) -> WorkOrderEvent:
        return act(
            db_session=db_session,
            work_order=order,
            action=action.value,
            actor=actor,
            role=Role.SYSTEM,
            reason=reason,
            data=data,
            now=at,
        )

    if order.department_code is None:
        # Answered at intake (直接办结): no department to reopen to, so an agent dispatches it.
        events.append(system(workflow.Action.SEND_TO_REVIEW))
    else:
        restart_department_clock(
            db_session=db_session, order=order, now=at, calendar=calendar, policy=policy
        )
    if escalate:
        events.append(system(workflow.Action.ESCALATE, dict(data or {})))
    return events


def returning_departments(*, db_session: Session, work_order: WorkOrder) -> set[str]:
    """Every department that has returned (退单) the order so far."""
    rows = db_session.scalars(
        select(WorkOrderEvent.data).where(
            WorkOrderEvent.work_order_id == work_order.id,
            WorkOrderEvent.action == workflow.Action.RETURN.value,
        )
    )
    return {str(d["department_code"]) for d in rows if d and d.get("department_code")}


def responsible_department(*, db_session: Session, category_code: str) -> str | None:
    """The lead department of a category or of its nearest ancestor that has one."""
    code: str | None = category_code
    for _ in range(8):  # the catalogue has three levels; the cap guards a cyclic table
        if code is None:
            return None
        category = db_session.get(Category, code)
        if category is None:
            return None
        if category.lead_department_code:
            return category.lead_department_code
        code = category.parent_code
    return None


def next_best_alternative(
    *, db_session: Session, suggestion: Mapping[str, Any], excluded_departments: set[str]
) -> dict[str, Any] | None:
    """The classifier's best alternative whose responsible department is none of
    `excluded_departments` (for a returned order: every department that returned it), with
    that department as ``department_code``. Suggestions stored before alternatives carried
    their department are resolved against the catalogue."""
    for alternative in suggestion.get("alternatives") or []:
        if not isinstance(alternative, dict) or not alternative.get("category_code"):
            continue
        department = alternative.get("department_code") or responsible_department(
            db_session=db_session, category_code=str(alternative["category_code"])
        )
        if department and department not in excluded_departments:
            return {**alternative, "department_code": department}
    return None


def requested_extension_deadline(*, db_session: Session, order: WorkOrder) -> datetime:
    """The deadline asked for in the order's latest extension request."""
    data = db_session.scalar(
        select(WorkOrderEvent.data)
        .where(
            WorkOrderEvent.work_order_id == order.id,
            WorkOrderEvent.action == workflow.Action.REQUEST_EXTENSION.value,
        )
        .order_by(WorkOrderEvent.id.desc())
        .limit(1)
    )
    try:
        return datetime.fromisoformat(str((data or {})["requested_deadline"]))
    except (KeyError, ValueError):
        raise Conflict(
            f"work order {order.number} has no readable extension request",
            current_state=order.state,
        ) from None
