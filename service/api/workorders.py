"""Acting on work orders: lists, the review queue, and the lifecycle actions of agents,
departments and supervisors.

Every action goes through `router.workorders.act` (an illegal transition is a 409 naming the
current state) and is written to the audit log. A department only ever sees its own orders:
another department's order answers exactly like a missing number (404).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, selectinload

from router import workflow, workorders
from router.errors import InvalidInput
from router.models import Category, WorkOrder, WorkOrderEvent
from router.orm import utcnow
from service.api.deps import DbSession, Offset
from service.api.security import CurrentActor, department_scope, require_roles
from service.auth import audit
from service.auth.masking import mask_phone, mask_text
from service.auth.security import Actor
from service.callbacks import service as callback_service
from service.config import get_settings
from service.dispatching import record_deliveries

router = APIRouter(prefix="/api/v1", tags=["work-orders"])

EXCERPT_LENGTH = 80
AgentActor = Annotated[Actor, Depends(require_roles("agent", "supervisor"))]
ReviewerActor = Annotated[Actor, Depends(require_roles("agent", "supervisor", "admin"))]
DepartmentActor = Annotated[Actor, Depends(require_roles("department"))]
SupervisorActor = Annotated[Actor, Depends(require_roles("supervisor"))]
DeadlineStatusName = Literal["normal", "warning", "overdue"]
_STATUS_NAMES: dict[workflow.DeadlineStatus, DeadlineStatusName] = {
    workflow.DeadlineStatus.OK: "normal",
    workflow.DeadlineStatus.WARNING: "warning",
    workflow.DeadlineStatus.OVERDUE: "overdue",
}
ERRORS: dict[int | str, dict[str, Any]] = {400: {}, 403: {}, 404: {}, 409: {}}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DispatchCreate(_Body):
    category_code: str | None = Field(default=None, min_length=1, max_length=16)
    department_code: str | None = Field(default=None, min_length=1, max_length=32)
    reason: str = Field(default="", max_length=500)


class ReturnCreate(_Body):
    reason: str = Field(min_length=1, max_length=500)


class ExtensionCreate(_Body):
    reason: str = Field(min_length=1, max_length=500)
    new_deadline: AwareDatetime


class DecisionCreate(_Body):
    reason: str = Field(default="", max_length=500)


class ReplyCreate(_Body):
    result: str = Field(min_length=1, max_length=5000)


class ReasonCreate(_Body):
    """For actions the other party must be told the reason of (escalate, deny an extension)."""

    reason: str = Field(min_length=1, max_length=500)


class ReassignCreate(_Body):
    department_code: str = Field(min_length=1, max_length=32)
    reason: str = Field(min_length=1, max_length=500)


class WorkOrderSummaryRead(BaseModel):
    number: str
    state: str
    category_code: str | None
    department_code: str | None
    priority: str
    escalated: bool
    deadline: datetime | None
    accept_deadline: datetime | None
    deadline_status: DeadlineStatusName | None
    created_at: datetime
    title: str
    excerpt: str
    caller_phone: str | None


class WorkOrderList(BaseModel):
    items: list[WorkOrderSummaryRead]
    total: int


class ReviewItemRead(WorkOrderSummaryRead):
    suggestion: dict[str, Any]


class ReviewQueueList(BaseModel):
    items: list[ReviewItemRead]
    total: int


class ActionRead(BaseModel):
    number: str
    state: str
    action: str
    department_code: str | None
    category_code: str | None
    escalated: bool
    deadline: datetime | None
    accept_deadline: datetime | None
    data: dict[str, Any]


# -- helpers ------------------------------------------------------------------------------------


def _load(db_session: Session, number: str, actor: Actor) -> WorkOrder:
    order = workorders.get_by_number_or_raise(
        db_session=db_session, number=number, department_code=department_scope(actor)
    )
    # Lock the row (PostgreSQL) so that two concurrent actions on one order queue up.
    db_session.refresh(order, with_for_update=True)
    return order


def _act(
    db_session: Session,
    order: WorkOrder,
    actor: Actor,
    action: workflow.Action,
    *,
    reason: str = "",
    data: dict[str, Any] | None = None,
    now: datetime,
    system: bool = False,
    audit_detail: dict[str, Any] | None = None,
) -> WorkOrderEvent:
    """One lifecycle action; what the actor did (not what the system did next) is audited."""
    event = workorders.act(
        db_session=db_session,
        work_order=order,
        action=action.value,
        actor="system" if system else actor.username,
        role="system" if system else actor.role,
        reason=reason,
        data=data,
        now=now,
    )
    if not system:
        detail = {"from_state": event.from_state, "to_state": event.to_state, "reason": reason}
        audit.record(
            db_session=db_session,
            actor=actor,
            action=f"work_order.{action.value}",
            target_type="work_order",
            target_id=order.number,
            detail=detail | ((data or {}) if audit_detail is None else audit_detail),
            at=now,
        )
    return event


def _read(order: WorkOrder, event: WorkOrderEvent) -> ActionRead:
    return ActionRead(
        number=order.number,
        state=order.state,
        action=event.action,
        department_code=order.department_code,
        category_code=order.category_code,
        escalated=order.escalated,
        deadline=order.deadline_at,
        accept_deadline=order.accept_deadline_at,
        data=event.data or {},
    )


def _deadline_status(
    order: WorkOrder, units: dict[str, str], now: datetime
) -> DeadlineStatusName | None:
    """None while no handling clock runs (not at a department, or no deadline)."""
    if order.deadline_at is None or order.dispatched_at is None:
        return None
    if order.state not in workflow.AT_DEPARTMENT:
        return None
    status = workflow.deadline_status(
        order.dispatched_at,
        order.deadline_at,
        now,
        unit=units.get(order.category_code or "", "working_days"),
    )
    return _STATUS_NAMES[status]


def _summary(order: WorkOrder, units: dict[str, str], now: datetime) -> dict[str, Any]:
    appeal = order.appeal
    return {
        "number": order.number,
        "state": order.state,
        "category_code": order.category_code,
        "department_code": order.department_code,
        "priority": order.priority,
        "escalated": order.escalated,
        "deadline": order.deadline_at,
        "accept_deadline": order.accept_deadline_at,
        "deadline_status": _deadline_status(order, units, now),
        "created_at": order.created_at,
        # Lists are masked for everybody (service.auth.masking, purpose LIST).
        "title": mask_text(appeal.title) or "",
        "excerpt": mask_text(appeal.text[:EXCERPT_LENGTH]) or "",
        "caller_phone": mask_phone(appeal.caller_phone),
    }


def _units(db_session: Session, orders: list[WorkOrder]) -> dict[str, str]:
    codes = {o.category_code for o in orders if o.category_code}
    if not codes:
        return {}
    rows = db_session.execute(
        select(Category.code, Category.deadline_unit).where(Category.code.in_(codes))
    )
    return {code: unit for code, unit in rows}


def _page(
    db_session: Session, query: Select[WorkOrder], limit: int, offset: int
) -> tuple[list[WorkOrder], int]:
    total = db_session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db_session.scalars(
        query.options(selectinload(WorkOrder.appeal))
        .order_by(WorkOrder.created_at.desc(), WorkOrder.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), total


# -- lists --------------------------------------------------------------------------------------


@router.get("/work-orders", response_model=WorkOrderList)
def list_work_orders(
    db_session: DbSession,
    actor: CurrentActor,
    state: Annotated[workflow.State | None, Query()] = None,
    department_code: Annotated[str | None, Query(max_length=32)] = None,
    overdue: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> WorkOrderList:
    """Work orders, newest first; a department sees only its own."""
    now = utcnow()
    query = select(WorkOrder)
    scope = department_scope(actor)
    if scope is not None:
        query = query.where(WorkOrder.department_code == scope)
    if department_code is not None:
        query = query.where(WorkOrder.department_code == department_code)
    if state is not None:
        query = query.where(WorkOrder.state == state.value)
    running = WorkOrder.state.in_([s.value for s in workflow.AT_DEPARTMENT])
    if overdue is True:
        query = query.where(running, WorkOrder.deadline_at < now)
    elif overdue is False:
        query = query.where(
            or_(~running, WorkOrder.deadline_at.is_(None), WorkOrder.deadline_at >= now)
        )
    orders, total = _page(db_session, query, limit, offset)
    units = _units(db_session, orders)
    return WorkOrderList(
        items=[WorkOrderSummaryRead.model_validate(_summary(o, units, now)) for o in orders],
        total=total,
    )


@router.get("/review-queue", response_model=ReviewQueueList)
def review_queue(
    db_session: DbSession,
    actor: ReviewerActor,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> ReviewQueueList:
    """Orders waiting for an agent, with the classifier's stored suggestion."""
    now = utcnow()
    query = select(WorkOrder).where(WorkOrder.state == workflow.State.REVIEW.value)
    orders, total = _page(db_session, query, limit, offset)
    units = _units(db_session, orders)
    return ReviewQueueList(
        items=[
            ReviewItemRead.model_validate(
                _summary(o, units, now) | {"suggestion": o.suggestion or {}}
            )
            for o in orders
        ],
        total=total,
    )


# -- the centre: dispatch, close, escalate, reassign ----------------------------------------------


@router.post("/work-orders/{number}/dispatch", response_model=ActionRead, responses=ERRORS)
def dispatch(
    number: str, body: DispatchCreate, db_session: DbSession, actor: AgentActor
) -> ActionRead:
    """Confirm the suggestion or override it; the choice is stored as a training label."""
    now = utcnow()
    order = _load(db_session, number, actor)
    suggestion = order.suggestion or {}
    suggested_category = suggestion.get("category_code")
    suggested_department = suggestion.get("department_code")
    category = workorders.get_leaf_category_or_raise(
        db_session=db_session, code=body.category_code or order.category_code or ""
    )
    if body.department_code is not None:
        department_code = workorders.get_department_or_raise(
            db_session=db_session, code=body.department_code
        ).code
    elif category.code != order.category_code and category.lead_department_code:
        department_code = category.lead_department_code
    elif order.department_code:
        department_code = order.department_code
    elif category.lead_department_code:
        department_code = category.lead_department_code
    else:
        raise InvalidInput("no department to dispatch to; give department_code")
    overridden = (category.code, department_code) != (suggested_category, suggested_department)
    data = {
        "label_source": "agent_override" if overridden else "agent_confirm",
        "category_code": category.code,
        "department_code": department_code,
        "suggested_category_code": suggested_category,
        "suggested_department_code": suggested_department,
    }
    event = _act(
        db_session, order, actor, workflow.Action.DISPATCH, reason=body.reason, data=data, now=now
    )
    if category.code != order.category_code:
        # The old category's assisting departments would otherwise receive the order too.
        order.assisting_department_codes = [
            code for code in category.assisting_department_codes if code != department_code
        ]
        order.category_code = category.code
        if order.priority != "urgent":
            order.priority = category.priority
    order.department_code = department_code
    workorders.restart_department_clock(db_session=db_session, order=order, now=now)
    record_deliveries(db_session=db_session, work_order=order, settings=get_settings())
    return _read(order, event)


@router.post("/work-orders/{number}/close", response_model=ActionRead, responses=ERRORS)
def close(
    number: str, db_session: DbSession, actor: AgentActor, body: DecisionCreate | None = None
) -> ActionRead:
    now = utcnow()
    order = _load(db_session, number, actor)
    reason = body.reason if body else ""
    event = _act(db_session, order, actor, workflow.Action.CLOSE, reason=reason, now=now)
    order.closed_at = now
    # The satisfaction callbacks of this closure: the caller's and every merged caller's.
    callback_service.schedule_after_close(
        db_session=db_session, work_order=order, settings=get_settings(), now=now
    )
    return _read(order, event)


@router.post("/work-orders/{number}/escalate", response_model=ActionRead, responses=ERRORS)
def escalate(
    number: str, body: ReasonCreate, db_session: DbSession, actor: SupervisorActor
) -> ActionRead:
    now = utcnow()
    order = _load(db_session, number, actor)
    event = _act(db_session, order, actor, workflow.Action.ESCALATE, reason=body.reason, now=now)
    return _read(order, event)


@router.post("/work-orders/{number}/reassign", response_model=ActionRead, responses=ERRORS)
def reassign(
    number: str, body: ReassignCreate, db_session: DbSession, actor: AgentActor
) -> ActionRead:
    """Redispatch (改派) to another department; its deadlines start again."""
    now = utcnow()
    order = _load(db_session, number, actor)
    department = workorders.get_department_or_raise(
        db_session=db_session, code=body.department_code
    )
    if department.code == order.department_code:
        raise InvalidInput(f"work order {number} is already with {department.code}")
    data = {"from_department_code": order.department_code, "department_code": department.code}
    event = _act(
        db_session, order, actor, workflow.Action.REDISPATCH, reason=body.reason, data=data, now=now
    )
    order.department_code = department.code
    workorders.restart_department_clock(db_session=db_session, order=order, now=now)
    record_deliveries(db_session=db_session, work_order=order, settings=get_settings())
    return _read(order, event)


# -- departments ----------------------------------------------------------------------------------


@router.post("/work-orders/{number}/accept", response_model=ActionRead, responses=ERRORS)
def accept(number: str, db_session: DbSession, actor: DepartmentActor) -> ActionRead:
    now = utcnow()
    order = _load(db_session, number, actor)
    event = _act(db_session, order, actor, workflow.Action.ACCEPT, now=now)
    order.accepted_at = now
    return _read(order, event)


@router.post("/work-orders/{number}/return", response_model=ActionRead, responses=ERRORS)
def return_order(
    number: str, body: ReturnCreate, db_session: DbSession, actor: DepartmentActor
) -> ActionRead:
    """Return (退单) within the window; the order goes back to review with the next-best
    suggestion, and is escalated once it has been returned too often."""
    now = utcnow()
    order = _load(db_session, number, actor)
    if order.state in (workflow.State.DISPATCHED, workflow.State.ACCEPTED) and order.dispatched_at:
        workflow.check_return_window(order.dispatched_at, now)
    returning = order.department_code
    event = _act(
        db_session,
        order,
        actor,
        workflow.Action.RETURN,
        reason=body.reason,
        data={"department_code": returning},
        now=now,
    )
    order.return_count += 1
    next_best = workorders.next_best_alternative(order.suggestion or {}, order.category_code)
    # A new dict, so that the JSON column is seen as changed.
    order.suggestion = {**(order.suggestion or {}), "next_best": next_best}
    _act(
        db_session,
        order,
        actor,
        workflow.Action.SEND_TO_REVIEW,
        reason=f"承办单位退单：{body.reason}",
        data={"next_best": next_best, "returned_by": returning},
        now=now,
        system=True,
    )
    if workflow.should_escalate_after_return(order.return_count):
        _act(
            db_session,
            order,
            actor,
            workflow.Action.ESCALATE,
            reason="多次退单",
            data={"return_count": order.return_count},
            now=now,
            system=True,
        )
    return _read(order, event)


@router.post("/work-orders/{number}/extension", response_model=ActionRead, responses=ERRORS)
def request_extension(
    number: str, body: ExtensionCreate, db_session: DbSession, actor: DepartmentActor
) -> ActionRead:
    now = utcnow()
    order = _load(db_session, number, actor)
    floor = order.deadline_at or now
    if body.new_deadline <= floor:
        raise InvalidInput(
            f"new_deadline must be later than {floor.isoformat()}", field="new_deadline"
        )
    workflow.check_extension_request(order.extension_count)
    event = _act(
        db_session,
        order,
        actor,
        workflow.Action.REQUEST_EXTENSION,
        reason=body.reason,
        data={
            "requested_deadline": body.new_deadline.isoformat(),
            "current_deadline": order.deadline_at.isoformat() if order.deadline_at else None,
        },
        now=now,
    )
    order.extension_count += 1
    return _read(order, event)


@router.post("/work-orders/{number}/extension/approve", response_model=ActionRead, responses=ERRORS)
def approve_extension(
    number: str,
    db_session: DbSession,
    actor: SupervisorActor,
    body: DecisionCreate | None = None,
) -> ActionRead:
    now = utcnow()
    order = _load(db_session, number, actor)
    if order.state != workflow.State.EXTENSION_REQUESTED:
        # Let the state machine give the usual 409 before reading the request.
        workflow.transition(order.state, workflow.Action.APPROVE_EXTENSION, role=actor.role)
    new_deadline = workorders.requested_extension_deadline(db_session=db_session, order=order)
    data = {
        "previous_deadline": order.deadline_at.isoformat() if order.deadline_at else None,
        "new_deadline": new_deadline.isoformat(),
    }
    event = _act(
        db_session,
        order,
        actor,
        workflow.Action.APPROVE_EXTENSION,
        reason=body.reason if body else "",
        data=data,
        now=now,
    )
    order.deadline_at = new_deadline
    order.warned_at = None
    return _read(order, event)


@router.post("/work-orders/{number}/extension/deny", response_model=ActionRead, responses=ERRORS)
def deny_extension(
    number: str, body: ReasonCreate, db_session: DbSession, actor: SupervisorActor
) -> ActionRead:
    now = utcnow()
    order = _load(db_session, number, actor)
    event = _act(
        db_session, order, actor, workflow.Action.DENY_EXTENSION, reason=body.reason, now=now
    )
    return _read(order, event)


@router.post("/work-orders/{number}/reply", response_model=ActionRead, responses=ERRORS)
def reply(
    number: str, body: ReplyCreate, db_session: DbSession, actor: DepartmentActor
) -> ActionRead:
    now = utcnow()
    order = _load(db_session, number, actor)
    event = _act(
        db_session,
        order,
        actor,
        workflow.Action.REPLY,
        data={"result": body.result},
        now=now,
        # The reply may quote the citizen's personal data: the audit log keeps only its size.
        audit_detail={"result_length": len(body.result)},
    )
    order.replied_at = now
    return _read(order, event)
