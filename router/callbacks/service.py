"""Satisfaction callbacks (回访): scheduling after closure, and recording results.

When a work order is closed, :func:`schedule_callbacks` adds one callback per distinct caller of
the order's appeal and of every appeal merged into it (``WorkOrder.master_id``), due a configured
delay after closure and moved into calling hours. A callback is then worked by its provider:
agents through the callback queue, or the SMS/IVR gateway (``service.callbacks``). Every result
goes through :func:`record_result`, which applies
:func:`router.workorders.workflow.decide_callback`:

* satisfied / basically satisfied: this callback is done; once every callback of the closure is
  done, the order moves to ``callback_done`` (``record_callback``);
* unsatisfied: the order is reopened to the same department and escalated, with new sign-for
  and handling clocks; the other callbacks of that closure are cancelled (a new closure schedules
  new ones);
* unreachable: called again at the next calling time after ``retry_delay`` until
  ``max_callback_attempts`` calls, then done as unreachable.

Callback ``status``: ``pending`` (waiting for ``due_at``, or in the agents' queue once due),
``calling`` (handed to the gateway, result awaited), ``completed`` (``result`` is set),
``cancelled`` (the order was reopened by another caller's answer). Functions only flush."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    func,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from router.calendar import DEFAULT_CALENDAR, WorkingCalendar
from router.callbacks.models import OPEN_STATUSES, PROVIDERS, Callback, CallbackStatus
from router.errors import Conflict, InvalidInput, NotFound
from router.notifications.models import NotificationKind, RecipientKind
from router.notifications.service import notify
from router.orm import utcnow
from router.workorders import service as workorders
from router.workorders import workflow
from router.workorders.models import Appeal, WorkOrder, WorkOrderEvent

__all__ = [
    "CallbackContext",
    "CallbackPolicy",
    "RecordedResult",
    "claim_for_call",
    "closure_round",
    "contexts_of",
    "get_callback",
    "get_callback_or_raise",
    "list_callbacks",
    "record_result",
    "release_call",
    "schedule_callbacks",
]


@dataclass(frozen=True, kw_only=True)
class CallbackPolicy:
    """When and how callbacks are placed; ``max_callback_attempts`` is in the WorkflowPolicy.

    Attributes:
        delay: time after closure before the first call (then moved into calling hours).
        retry_delay: time after an unreachable call before the next one.
        provider: ``agent`` (the agents' callback queue) or ``gateway`` (SMS/IVR over HTTP).
    """

    delay: timedelta = timedelta(hours=24)
    retry_delay: timedelta = timedelta(hours=4)
    provider: str = "agent"

    def __post_init__(self) -> None:
        if self.delay < timedelta(0) or self.retry_delay <= timedelta(0):
            raise ValueError("delay must not be negative and retry_delay must be positive")
        if self.provider not in PROVIDERS:
            raise ValueError(f"provider must be one of {PROVIDERS}, not {self.provider!r}")


DEFAULT_CALLBACK_POLICY = CallbackPolicy()


def closure_round(*, db_session: Session, work_order: WorkOrder) -> int:
    """How many times the order has been closed (1 after the first closure); answering at
    intake (直接办结) is a closure too."""
    count = db_session.scalar(
        select(func.count())
        .select_from(WorkOrderEvent)
        .where(
            WorkOrderEvent.work_order_id == work_order.id,
            WorkOrderEvent.action.in_([workflow.Action.CLOSE.value, workflow.Action.ANSWER.value]),
        )
    )
    return int(count or 0)


def _callers(db_session: Session, work_order: WorkOrder) -> list[int]:
    """Appeal ids to call: the order's own and each merged one, one per distinct phone number."""
    rows = db_session.execute(
        select(Appeal.id, Appeal.caller_phone)
        .join(WorkOrder, WorkOrder.appeal_id == Appeal.id)
        .where((WorkOrder.id == work_order.id) | (WorkOrder.master_id == work_order.id))
        .order_by(WorkOrder.id != work_order.id, Appeal.received_at, Appeal.id)
    ).all()
    seen: set[str] = set()
    appeal_ids = []
    for appeal_id, phone in rows:
        key = (phone or "").strip()
        if not key or key in seen:
            continue  # nobody to call, or the same citizen already gets a call
        seen.add(key)
        appeal_ids.append(appeal_id)
    return appeal_ids


def schedule_callbacks(
    *,
    db_session: Session,
    work_order: WorkOrder,
    policy: CallbackPolicy = DEFAULT_CALLBACK_POLICY,
    calendar: WorkingCalendar = DEFAULT_CALENDAR,
    now: datetime | None = None,
) -> list[Callback]:
    """The callbacks of the order's latest closure, created once (a repeat returns them).

    Call it in the closing transaction, after the ``close`` action. Appeals without a phone
    number get no callback; an order none of whose callers can be called stays ``closed``.
    """
    if work_order.state != workflow.State.CLOSED.value:
        raise Conflict(
            f"work order {work_order.number} is {work_order.state}, not closed",
            current_state=work_order.state,
        )
    at = now or utcnow()
    round_ = max(closure_round(db_session=db_session, work_order=work_order), 1)
    due = calendar.next_calling_time(at + policy.delay)
    rows = []
    for appeal_id in _callers(db_session, work_order):
        existing = db_session.scalar(
            select(Callback).where(
                Callback.work_order_id == work_order.id,
                Callback.round == round_,
                Callback.appeal_id == appeal_id,
            )
        )
        if existing is not None:
            rows.append(existing)
            continue
        row = Callback(
            work_order_id=work_order.id,
            appeal_id=appeal_id,
            round=round_,
            provider=policy.provider,
            status=CallbackStatus.PENDING.value,
            attempts=0,
            due_at=due,
            note="",
            created_at=at,
        )
        try:
            with db_session.begin_nested():
                db_session.add(row)
                db_session.flush()
        except IntegrityError:
            # A concurrent transaction scheduled the same closure first: use its row.
            row = db_session.scalars(
                select(Callback).where(
                    Callback.work_order_id == work_order.id,
                    Callback.round == round_,
                    Callback.appeal_id == appeal_id,
                )
            ).one()
        rows.append(row)
    return rows


def get_callback(*, db_session: Session, callback_id: int) -> Callback | None:
    return db_session.get(Callback, callback_id)


def get_callback_or_raise(*, db_session: Session, callback_id: int) -> Callback:
    row = db_session.get(Callback, callback_id)
    if row is None:
        raise NotFound(f"callback {callback_id} not found")
    return row


def list_callbacks(
    *,
    db_session: Session,
    status: str = "due",
    provider: str | None = None,
    now: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[Callback]:
    """Callbacks by status, earliest due first. ``due`` means pending with ``due_at <= now``."""
    query = select(Callback)
    if status == "due":
        query = query.where(
            Callback.status == CallbackStatus.PENDING.value, Callback.due_at <= (now or utcnow())
        )
    elif status != "all":
        try:
            query = query.where(Callback.status == CallbackStatus(status).value)
        except ValueError:
            allowed = ", ".join(["due", "all", *(s.value for s in CallbackStatus)])
            raise InvalidInput(
                f"unknown callback status {status!r}; expected one of: {allowed}", field="status"
            ) from None
    if provider is not None:
        query = query.where(Callback.provider == provider)
    query = query.order_by(Callback.due_at, Callback.id).limit(limit).offset(offset)
    return list(db_session.scalars(query))


def claim_for_call(
    *, db_session: Session, callback_id: int, now: datetime | None = None
) -> Callback | None:
    """Move a due pending callback to ``calling`` (the gateway places it); None if not due.

    The row is locked, so two workers never place the same call twice.
    """
    at = now or utcnow()
    row = db_session.get(Callback, callback_id, with_for_update=True, populate_existing=True)
    if row is None or row.status != CallbackStatus.PENDING.value or row.due_at > at:
        return None
    row.status = CallbackStatus.CALLING.value
    row.last_attempt_at = at
    db_session.flush()
    return row


def release_call(
    *,
    db_session: Session,
    callback: Callback,
    retry_at: datetime,
    note: str,
    calendar: WorkingCalendar = DEFAULT_CALENDAR,
) -> None:
    """Put a ``calling`` callback back to pending: the call was never placed (gateway down)."""
    if callback.status != CallbackStatus.CALLING.value:
        return
    callback.status = CallbackStatus.PENDING.value
    callback.due_at = calendar.next_calling_time(retry_at)
    callback.note = note[:1000]
    db_session.flush()


@dataclass
class RecordedResult:
    """What recording one result did: the callback, and the order's events it caused."""

    callback: Callback
    work_order: WorkOrder
    retry: bool
    events: list[WorkOrderEvent] = field(default_factory=list)
    cancelled: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.callback.id,
            "status": self.callback.status,
            "result": self.callback.result,
            "attempts": self.callback.attempts,
            "due_at": self.callback.due_at.isoformat(),
            "retry": self.retry,
            "work_order_number": self.work_order.number,
            "work_order_state": self.work_order.state,
            "actions": [event.action for event in self.events],
        }


def record_result(
    *,
    db_session: Session,
    callback_id: int,
    outcome: str,
    actor: str,
    note: str = "",
    policy: CallbackPolicy = DEFAULT_CALLBACK_POLICY,
    workflow_policy: workflow.WorkflowPolicy = workflow.DEFAULT_POLICY,
    calendar: WorkingCalendar = DEFAULT_CALENDAR,
    now: datetime | None = None,
) -> RecordedResult:
    """Record the answer of one call and apply its consequences to the work order.

    Raises:
        NotFound: no such callback.
        Conflict: the callback is already completed or cancelled (a result counts once).
        InvalidInput: an unknown outcome.
    """
    at = now or utcnow()
    row = db_session.get(Callback, callback_id, with_for_update=True, populate_existing=True)
    if row is None:
        raise NotFound(f"callback {callback_id} not found")
    if row.status not in OPEN_STATUSES:
        raise Conflict(f"callback {callback_id} is already {row.status}", current_status=row.status)
    decision = workflow.decide_callback(outcome, attempts=row.attempts + 1, policy=workflow_policy)
    order = db_session.get_one(WorkOrder, row.work_order_id, with_for_update=True)
    row.attempts += 1
    row.last_attempt_at = at
    if note:
        row.note = note[:1000]
    recorded = RecordedResult(callback=row, work_order=order, retry=decision.retry)
    if decision.retry:
        row.status = CallbackStatus.PENDING.value
        row.due_at = calendar.next_calling_time(at + policy.retry_delay)
        db_session.flush()
        return recorded
    row.status = CallbackStatus.COMPLETED.value
    row.result = workflow.CallbackOutcome(outcome).value
    row.completed_at = at
    db_session.flush()
    if order.state != workflow.State.CLOSED.value or row.round != closure_round(
        db_session=db_session, work_order=order
    ):
        return recorded  # the order moved on (reopened by another caller): nothing more to do
    if workflow.Action.REOPEN in decision.actions:
        recorded.cancelled = _cancel_open(db_session, order, row.round, at)
        recorded.events = workorders.reopen(
            db_session=db_session,
            order=order,
            actor=actor,
            reason=f"回访不满意：{note}" if note else "回访不满意",
            escalate=workflow.Action.ESCALATE in decision.actions,
            data={"callback_id": row.id},
            calendar=calendar,
            policy=workflow_policy,
            now=at,
        )
        _notify_reopened(db_session, order, note, at)
        return recorded
    if _open_count(db_session, order, row.round) == 0:
        recorded.events.append(
            workorders.act(
                db_session=db_session,
                work_order=order,
                action=workflow.Action.RECORD_CALLBACK.value,
                actor=actor,
                role=workflow.Role.SYSTEM.value,
                reason=decision.reason,
                data={"results": _results(db_session, order, row.round)},
                now=at,
            )
        )
    return recorded


def _notify_reopened(db_session: Session, order: WorkOrder, note: str, at: datetime) -> None:
    """Tell the department and the supervisors that an unsatisfied citizen reopened the order."""
    message = f"工单 {order.number} 回访不满意，已重新交办" + (f"：{note}" if note else "")
    if order.department_code:
        notify(
            db_session=db_session,
            work_order=order,
            recipient_kind=RecipientKind.DEPARTMENT.value,
            recipient_code=order.department_code,
            kind=NotificationKind.CALLBACK_REOPENED.value,
            message=message,
            now=at,
        )
    notify(
        db_session=db_session,
        work_order=order,
        recipient_kind=RecipientKind.SUPERVISORS.value,
        kind=NotificationKind.CALLBACK_REOPENED.value,
        message=message,
        now=at,
    )


def _open_count(db_session: Session, order: WorkOrder, round_: int) -> int:
    return int(
        db_session.scalar(
            select(func.count())
            .select_from(Callback)
            .where(
                Callback.work_order_id == order.id,
                Callback.round == round_,
                Callback.status.in_([s.value for s in OPEN_STATUSES]),
            )
        )
        or 0
    )


def _results(db_session: Session, order: WorkOrder, round_: int) -> dict[str, str]:
    rows = db_session.execute(
        select(Callback.id, Callback.result).where(
            Callback.work_order_id == order.id,
            Callback.round == round_,
            Callback.status == CallbackStatus.COMPLETED.value,
        )
    )
    return {str(callback_id): str(result) for callback_id, result in rows}


def _cancel_open(db_session: Session, order: WorkOrder, round_: int, at: datetime) -> int:
    rows = db_session.scalars(
        select(Callback).where(
            Callback.work_order_id == order.id,
            Callback.round == round_,
            Callback.status.in_([s.value for s in OPEN_STATUSES]),
        )
    ).all()
    for other in rows:
        other.status = CallbackStatus.CANCELLED.value
        other.completed_at = at
        other.note = "另一位来电人回访不满意，工单已重办"
    db_session.flush()
    return len(rows)


@dataclass(frozen=True)
class CallbackContext:
    """What a callback list shows besides the row: the caller's phone, the number of the order
    of the caller's own appeal, and the number of the order that was handled (its master)."""

    caller_phone: str | None
    number: str
    master_number: str


def contexts_of(*, db_session: Session, rows: Sequence[Callback]) -> dict[int, CallbackContext]:
    """Each callback's context by callback id (two queries for the whole list)."""
    appeal_ids = {row.appeal_id for row in rows}
    order_ids = {row.work_order_id for row in rows}
    appeals = {
        appeal_id: (phone, number)
        for appeal_id, phone, number in db_session.execute(
            select(Appeal.id, Appeal.caller_phone, WorkOrder.number)
            .join(WorkOrder, WorkOrder.appeal_id == Appeal.id)
            .where(Appeal.id.in_(appeal_ids))
        )
    }
    masters = dict(
        db_session.execute(
            select(WorkOrder.id, WorkOrder.number).where(WorkOrder.id.in_(order_ids))
        ).all()
    )
    return {
        row.id: CallbackContext(
            caller_phone=appeals[row.appeal_id][0],
            number=appeals[row.appeal_id][1],
            master_number=masters[row.work_order_id],
        )
        for row in rows
    }


def callback_figures(
    *, db_session: Session, now: datetime, since: datetime
) -> tuple[int, dict[str, int]]:
    """Open callbacks due by `now`, and the results of the callbacks completed since `since`
    (result → count), by two aggregate queries (for the metrics)."""
    due = db_session.scalar(
        select(func.count()).where(
            Callback.status.in_(sorted(s.value for s in OPEN_STATUSES)), Callback.due_at <= now
        )
    )
    results = db_session.execute(
        select(Callback.result, func.count())
        .where(
            Callback.status == CallbackStatus.COMPLETED.value,
            Callback.completed_at >= since,
            Callback.result.is_not(None),
        )
        .group_by(Callback.result)
    ).all()
    return int(due or 0), {str(result): int(count) for result, count in results}
