"""The lifecycle actions of agents, departments and supervisors on one work order, with their
rules: what each action checks, how it changes the order, and what has to follow it.

Every action goes through :func:`router.workorders.service.act`, so the state machine
(:mod:`router.workorders.workflow`) decides whether it is legal (``Conflict`` naming the current
state, ``Forbidden`` for the wrong role). An action returns an :class:`ActionResult`: the event of
what the actor did (what the audit log records), the detail the audit log keeps, and the
:class:`Effect` s the transport layer must carry out in the same transaction (deliveries to the
departments after a dispatch, satisfaction callbacks after a closure), since those depend on the
service's settings. Functions only flush; the request owns the transaction.

Adding an action: a row in ``workflow.RULES`` (and its ``Action``), a function here, and a route
in ``service/api/workorders.py`` (see docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from router.errors import InvalidInput
from router.workorders import service
from router.workorders.models import WorkOrder, WorkOrderEvent
from router.workorders.workflow import (
    Action,
    Role,
    State,
    check_extension_request,
    check_return_window,
    should_escalate_after_return,
    transition,
)

__all__ = [
    "ActionResult",
    "Effect",
    "accept",
    "answer",
    "approve_extension",
    "close",
    "deny_extension",
    "dispatch",
    "escalate",
    "reassign",
    "reply",
    "request_extension",
    "return_order",
]


class Effect(StrEnum):
    DELIVER = "deliver"
    """The order went to (another) department: record its deliveries."""
    SCHEDULE_CALLBACKS = "schedule_callbacks"
    """The order was closed: schedule the satisfaction callbacks of this closure."""


@dataclass(frozen=True)
class ActionResult:
    event: WorkOrderEvent
    """The actor's own event (the system's follow-up events are in the order's log too)."""
    audit_detail: dict[str, Any]
    effects: frozenset[Effect] = field(default_factory=frozenset)


@dataclass(frozen=True)
class _Act:
    """Who acts, when; shared by the actions below."""

    db_session: Session
    order: WorkOrder
    actor: str
    role: str
    now: datetime

    def __call__(
        self,
        action: Action,
        *,
        reason: str = "",
        data: Mapping[str, Any] | None = None,
        system: bool = False,
    ) -> WorkOrderEvent:
        return service.act(
            db_session=self.db_session,
            work_order=self.order,
            action=action.value,
            actor="system" if system else self.actor,
            role=Role.SYSTEM.value if system else self.role,
            reason=reason,
            data=data,
            now=self.now,
        )


def _result(
    event: WorkOrderEvent,
    *,
    audit_detail: Mapping[str, Any] | None = None,
    effects: frozenset[Effect] = frozenset(),
) -> ActionResult:
    detail = dict(event.data or {}) if audit_detail is None else dict(audit_detail)
    return ActionResult(event=event, audit_detail=detail, effects=effects)


# -- the centre: dispatch, close, escalate, reassign ---------------------------------------------


def dispatch(
    *,
    db_session: Session,
    order: WorkOrder,
    actor: str,
    role: str,
    now: datetime,
    category_code: str | None = None,
    department_code: str | None = None,
    reason: str = "",
) -> ActionResult:
    """Confirm the suggestion or override it (派单); the choice is stored as a training label.

    Without `department_code` the department is the new category's lead when the category
    changes, else the order's department, else the category's lead."""
    act = _Act(db_session, order, actor, role, now)
    suggestion = order.suggestion or {}
    suggested_category = suggestion.get("category_code")
    suggested_department = suggestion.get("department_code")
    category = service.get_leaf_category_or_raise(
        db_session=db_session, code=category_code or order.category_code or ""
    )
    if department_code is not None:
        department = service.get_department_or_raise(db_session=db_session, code=department_code)
        chosen = department.code
    elif category.code != order.category_code and category.lead_department_code:
        chosen = category.lead_department_code
    elif order.department_code:
        chosen = order.department_code
    elif category.lead_department_code:
        chosen = category.lead_department_code
    else:
        raise InvalidInput("no department to dispatch to; give department_code")
    overridden = (category.code, chosen) != (suggested_category, suggested_department)
    data = {
        "label_source": "agent_override" if overridden else "agent_confirm",
        "category_code": category.code,
        "department_code": chosen,
        "suggested_category_code": suggested_category,
        "suggested_department_code": suggested_department,
    }
    event = act(Action.DISPATCH, reason=reason, data=data)
    if category.code != order.category_code:
        # The old category's assisting departments would otherwise receive the order too.
        order.assisting_department_codes = list(category.assisting_department_codes)
        order.category_code = category.code
        if order.priority != "urgent":
            order.priority = category.priority
    order.department_code = chosen
    _drop_lead_from_assisting(order)
    service.restart_department_clock(db_session=db_session, order=order, now=now)
    return _result(event, effects=frozenset({Effect.DELIVER}))


def close(
    *, db_session: Session, order: WorkOrder, actor: str, role: str, now: datetime, reason: str = ""
) -> ActionResult:
    """Close (办结) a replied order; every caller of its merge group gets a callback."""
    event = _Act(db_session, order, actor, role, now)(Action.CLOSE, reason=reason)
    order.closed_at = now
    return _result(event, effects=frozenset({Effect.SCHEDULE_CALLBACKS}))


def answer(
    *,
    db_session: Session,
    order: WorkOrder,
    actor: str,
    role: str,
    now: datetime,
    answer: str,
    article_id: int | None = None,
    category_code: str | None = None,
) -> ActionResult:
    """Answer a consultation on the line and close it at intake (直接办结): the answer is the
    order's reply, the callback follows as after every closure. `category_code` (the article's,
    or the classifier's guess) is kept for the statistics; no department is involved."""
    answer = answer.strip()
    if not answer:
        raise InvalidInput("an answer is required to answer at intake", field="answer")
    if order.appeal.appeal_type != "consultation":
        raise InvalidInput(
            "only a consultation (咨询) can be answered at intake", field="appeal_type"
        )
    data: dict[str, Any] = {"answer": answer, "article_id": article_id}
    event = _Act(db_session, order, actor, role, now)(Action.ANSWER, data=data)
    if category_code is not None:
        order.category_code = category_code
    order.replied_at = order.closed_at = now
    # The answer may quote the caller's personal data: the audit log keeps only its size.
    detail = {"article_id": article_id, "answer_length": len(answer)}
    return _result(event, audit_detail=detail, effects=frozenset({Effect.SCHEDULE_CALLBACKS}))


def escalate(
    *, db_session: Session, order: WorkOrder, actor: str, role: str, now: datetime, reason: str
) -> ActionResult:
    """Escalate (督办): the order is flagged and the department is pressed to act."""
    return _result(_Act(db_session, order, actor, role, now)(Action.ESCALATE, reason=reason))


def reassign(
    *,
    db_session: Session,
    order: WorkOrder,
    actor: str,
    role: str,
    now: datetime,
    department_code: str,
    reason: str,
) -> ActionResult:
    """Redispatch (改派) to another department; its deadlines start again."""
    department = service.get_department_or_raise(db_session=db_session, code=department_code)
    if department.code == order.department_code:
        raise InvalidInput(f"work order {order.number} is already with {department.code}")
    data = {"from_department_code": order.department_code, "department_code": department.code}
    event = _Act(db_session, order, actor, role, now)(Action.REDISPATCH, reason=reason, data=data)
    order.department_code = department.code
    _drop_lead_from_assisting(order)
    service.restart_department_clock(db_session=db_session, order=order, now=now)
    return _result(event, effects=frozenset({Effect.DELIVER}))


def _drop_lead_from_assisting(order: WorkOrder) -> None:
    """The lead department is never also an assisting one (it would get the order twice, and
    keep an assisting department's view of it after it was taken away)."""
    codes = list(order.assisting_department_codes or [])
    if order.department_code in codes:
        # A new list, so that the JSON column is seen as changed.
        order.assisting_department_codes = [c for c in codes if c != order.department_code]


# -- departments ---------------------------------------------------------------------------------


def accept(
    *, db_session: Session, order: WorkOrder, actor: str, role: str, now: datetime
) -> ActionResult:
    """Sign for (签收) the order: the sign-for clock stops."""
    event = _Act(db_session, order, actor, role, now)(Action.ACCEPT)
    order.accepted_at = now
    return _result(event)


def return_order(
    *, db_session: Session, order: WorkOrder, actor: str, role: str, now: datetime, reason: str
) -> ActionResult:
    """Return (退单) within the window; the order goes back to review with the next-best
    suggestion (the best alternative whose department has not returned it), and is escalated
    once it has been returned too often."""
    act = _Act(db_session, order, actor, role, now)
    if order.state in (State.DISPATCHED, State.ACCEPTED) and order.dispatched_at:
        check_return_window(order.dispatched_at, now)
    returning = order.department_code
    event = act(Action.RETURN, reason=reason, data={"department_code": returning})
    order.return_count += 1
    # The flush makes this return one of the events that name the departments to skip.
    db_session.flush()
    excluded = service.returning_departments(db_session=db_session, work_order=order)
    next_best = service.next_best_alternative(
        db_session=db_session, suggestion=order.suggestion or {}, excluded_departments=excluded
    )
    # A new dict, so that the JSON column is seen as changed.
    order.suggestion = {**(order.suggestion or {}), "next_best": next_best}
    act(
        Action.SEND_TO_REVIEW,
        reason=f"承办单位退单：{reason}",
        data={"next_best": next_best, "returned_by": returning},
        system=True,
    )
    if should_escalate_after_return(order.return_count):
        act(
            Action.ESCALATE,
            reason="多次退单",
            data={"return_count": order.return_count},
            system=True,
        )
    return _result(event)


def request_extension(
    *,
    db_session: Session,
    order: WorkOrder,
    actor: str,
    role: str,
    now: datetime,
    reason: str,
    new_deadline: datetime,
) -> ActionResult:
    """Ask for a later handling deadline (延期); a supervisor approves or denies it."""
    floor = order.deadline_at or now
    if new_deadline <= floor:
        raise InvalidInput(
            f"new_deadline must be later than {floor.isoformat()}", field="new_deadline"
        )
    check_extension_request(order.extension_count)
    data = {
        "requested_deadline": new_deadline.isoformat(),
        "current_deadline": order.deadline_at.isoformat() if order.deadline_at else None,
    }
    event = _Act(db_session, order, actor, role, now)(
        Action.REQUEST_EXTENSION, reason=reason, data=data
    )
    order.extension_count += 1
    return _result(event)


def approve_extension(
    *, db_session: Session, order: WorkOrder, actor: str, role: str, now: datetime, reason: str = ""
) -> ActionResult:
    """The requested deadline becomes the order's handling deadline."""
    if order.state != State.EXTENSION_REQUESTED:
        # Let the state machine give the usual 409 before reading the request.
        transition(order.state, Action.APPROVE_EXTENSION, role=role)
    new_deadline = service.requested_extension_deadline(db_session=db_session, order=order)
    data = {
        "previous_deadline": order.deadline_at.isoformat() if order.deadline_at else None,
        "new_deadline": new_deadline.isoformat(),
    }
    event = _Act(db_session, order, actor, role, now)(
        Action.APPROVE_EXTENSION, reason=reason, data=data
    )
    order.deadline_at = new_deadline
    order.warned_at = None
    return _result(event)


def deny_extension(
    *, db_session: Session, order: WorkOrder, actor: str, role: str, now: datetime, reason: str
) -> ActionResult:
    """The deadline stays; the department is told why."""
    event = _Act(db_session, order, actor, role, now)(Action.DENY_EXTENSION, reason=reason)
    return _result(event)


def reply(
    *, db_session: Session, order: WorkOrder, actor: str, role: str, now: datetime, result: str
) -> ActionResult:
    """Reply (办复) with the handling result; the centre then closes the order."""
    event = _Act(db_session, order, actor, role, now)(Action.REPLY, data={"result": result})
    order.replied_at = now
    # The reply may quote the citizen's personal data: the audit log keeps only its size.
    return _result(event, audit_detail={"result_length": len(result)})
