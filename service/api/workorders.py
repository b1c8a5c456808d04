"""Work orders: the lists, the review queue, one order with its log and duplicates, and every
lifecycle action of agents, departments and supervisors (including merge and unmerge).

Each route loads the order (locked when it acts), calls the domain function
(`router.workorders.actions`, `router.duplicates.service`), carries out what the action asks
for (deliveries after a dispatch, callbacks after a closure), writes the audit log and answers.
A department only ever sees its own orders: another department's order answers exactly like a
missing number (404); merges and duplicates are the centre's business (403 for departments).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from router.duplicates import service as merges
from router.orm import utcnow
from router.workorders import actions, queries
from router.workorders import service as workorders
from router.workorders.actions import ActionResult, Effect
from router.workorders.models import WorkOrder, WorkOrderEvent
from router.workorders.workflow import DeadlineStatus, Role, State, allowed_actions
from service.api.deps import DbSession, Offset
from service.api.security import CurrentActor, department_scope, require_roles
from service.auth import audit
from service.auth.masking import Purpose, can_see_personal_data, mask_name, mask_phone, mask_text
from service.auth.security import Actor
from service.callbacks import service as callback_service
from service.config import get_settings
from service.dispatching import record_deliveries

router = APIRouter(prefix="/api/v1", tags=["work-orders"])

EXCERPT_LENGTH = 120
# Where an excerpt may end: after a clause or sentence, or at a space.
_CLAUSE_END = frozenset("，。；！？、：,.;!?:) ）》」\n")
AgentActor = Annotated[Actor, Depends(require_roles(Role.AGENT, Role.SUPERVISOR))]
CentreActor = Annotated[Actor, Depends(require_roles(Role.AGENT, Role.SUPERVISOR, Role.ADMIN))]
DepartmentActor = Annotated[Actor, Depends(require_roles(Role.DEPARTMENT))]
SupervisorActor = Annotated[Actor, Depends(require_roles(Role.SUPERVISOR))]
DeadlineStatusName = Literal["normal", "warning", "overdue"]
_STATUS_NAMES: dict[DeadlineStatus, DeadlineStatusName] = {
    DeadlineStatus.OK: "normal",
    DeadlineStatus.WARNING: "warning",
    DeadlineStatus.OVERDUE: "overdue",
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


class DuplicateRead(BaseModel):
    number: str
    score: float
    action: str
    """``suggest`` / ``auto_merge`` for the candidate the check chose, else ``none``."""
    place_relation: str
    category_relation: str
    text: str
    received_at: datetime
    state: str
    text_similarity: float
    same_caller: bool
    reasons: list[str]
    master_number: str | None
    """Where a merge into this candidate would go (its master when it is merged itself)."""


class DuplicateList(BaseModel):
    items: list[DuplicateRead]
    repeat_of: str | None
    """The same caller's latest earlier order about the same problem (重复来电)."""


class MergeCreate(BaseModel):
    into: str = Field(min_length=1, max_length=32)
    reason: str = Field(default="", max_length=500)


class UnmergeCreate(BaseModel):
    reason: str = Field(default="", max_length=500)


class MergeRead(BaseModel):
    number: str
    state: str
    master_number: str | None
    members: list[str]
    """The orders merged into this order's master (every caller is called back)."""


class AppealDetailRead(BaseModel):
    """What the citizen said and how to reach them; personal data masked unless
    ``personal_data_masked`` is false (the lead department, and the centre, see it whole)."""

    title: str
    text: str
    caller_name: str | None
    caller_phone: str | None
    address: str | None
    personal_data_masked: bool


class EventRead(BaseModel):
    at: datetime
    actor: str
    role: str
    action: str
    from_state: str | None
    to_state: str
    reason: str
    data: dict[str, Any]


class WorkOrderRead(BaseModel):
    number: str
    state: str
    channel: str
    category_code: str | None
    department_code: str | None
    priority: str
    escalated: bool
    confidence: float | None
    routing_source: str | None
    created_at: datetime
    accept_deadline: datetime | None
    deadline: datetime | None
    suggestion: dict[str, Any]
    appeal: AppealDetailRead
    allowed_actions: list[str]
    """What the signed-in user may do to the order in its state (the workflow's rules)."""
    events: list[EventRead]
    master_number: str | None = None
    """The order this one is merged into (state ``merged``)."""
    merged_numbers: list[str] = Field(default_factory=list)
    """Orders merged into this one: each caller gets the callback."""
    repeat_of: str | None = None
    """The same caller's latest earlier order about the same problem (重复来电)."""
    duplicate_suggestion: dict[str, Any] | None = None
    """The best earlier order duplicate detection found: {"number", "score", "action"}."""


# -- helpers ------------------------------------------------------------------------------------


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


def _summary(order: WorkOrder, units: dict[str, str], now: datetime) -> dict[str, Any]:
    appeal = order.appeal
    status = queries.deadline_status_of(order, units, now)
    return {
        "number": order.number,
        "state": order.state,
        "category_code": order.category_code,
        "department_code": order.department_code,
        "priority": order.priority,
        "escalated": order.escalated,
        "deadline": order.deadline_at,
        "accept_deadline": order.accept_deadline_at,
        "deadline_status": None if status is None else _STATUS_NAMES[status],
        "created_at": order.created_at,
        # Lists are masked for everybody (service.auth.masking, purpose LIST).
        "title": mask_text(appeal.title) or "",
        "excerpt": excerpt(mask_text(appeal.text) or ""),
        "caller_phone": mask_phone(appeal.caller_phone),
    }


def excerpt(text: str, limit: int = EXCERPT_LENGTH) -> str:
    """The start of an (already masked) text for a list: whole when short, else cut after the
    last clause that fits, with an ellipsis; never inside a word of letters or digits (a masked
    number stays whole)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = text[:limit]
    clause = max((i for i, char in enumerate(head) if char in _CLAUSE_END), default=-1)
    if clause >= limit // 2:
        return head[: clause + 1].rstrip() + "…"
    cut = limit
    while cut > 0 and _in_word(text[cut - 1]) and _in_word(text[cut]):
        cut -= 1
    if cut == 0:  # one long run of letters or digits: nothing better than the limit
        cut = limit
    return head[:cut].rstrip() + "…"


def _in_word(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char in "*-_@.+")


def _appeal_view(
    db_session: Session, actor: Actor, order: WorkOrder, now: datetime
) -> AppealDetailRead:
    """The appeal as this actor may see it; every unmasked view is audited.

    The masking policy's HANDLING purpose decides (service.auth.masking); a department sees the
    personal data only of the order it leads (checked here too, not only by the 404 of
    `department_scope`, so that widening that scope to assisting departments keeps them masked).
    """
    appeal = order.appeal
    whole = can_see_personal_data(actor.role, Purpose.HANDLING) and (
        actor.role != Role.DEPARTMENT or order.department_code == actor.department_code
    )
    if whole:
        fields = ["text", "caller_name", "caller_phone", "address"]
        shown = [name for name in fields if getattr(appeal, name)]
        # Its own family, not `work_order.*` (the lifecycle actions an order went through).
        audit.record(
            db_session=db_session,
            actor=actor,
            action="personal_data.view",
            target_type="work_order",
            target_id=order.number,
            detail={"fields": shown},
            at=now,
        )
        return AppealDetailRead(
            title=appeal.title,
            text=appeal.text,
            caller_name=appeal.caller_name,
            caller_phone=appeal.caller_phone,
            address=appeal.address,
            personal_data_masked=False,
        )
    return AppealDetailRead(
        title=mask_text(appeal.title) or "",
        text=mask_text(appeal.text) or "",
        caller_name=mask_name(appeal.caller_name),
        caller_phone=mask_phone(appeal.caller_phone),
        address=appeal.address,  # the policy leaves addresses unmasked: they locate the problem
        personal_data_masked=True,
    )


def _masked_data(data: dict[str, Any]) -> dict[str, Any]:
    """An event's details with personal data in its texts (a reply, a note) masked."""
    return {key: mask_text(v) if isinstance(v, str) else v for key, v in data.items()}


def _actions_for(actor: Actor, order: WorkOrder) -> list[str]:
    if actor.role == Role.DEPARTMENT and order.department_code != actor.department_code:
        return []
    if actor.role not in {role.value for role in Role}:
        return []
    return [action.value for action in allowed_actions(order.state, actor.role)]


def _audit(
    db_session: Session,
    actor: Actor,
    order: WorkOrder,
    action: str,
    detail: dict[str, Any],
    at: datetime,
) -> None:
    audit.record(
        db_session=db_session,
        actor=actor,
        action=f"work_order.{action}",
        target_type="work_order",
        target_id=order.number,
        detail=detail,
        at=at,
    )


def _carry_out(
    db_session: Session, order: WorkOrder, effects: frozenset[Effect], now: datetime
) -> None:
    """What an action asks the transport layer to do in the same transaction."""
    if Effect.DELIVER in effects:
        record_deliveries(db_session=db_session, work_order=order, settings=get_settings())
    if Effect.SCHEDULE_CALLBACKS in effects:
        # The satisfaction callbacks of this closure: the caller's and every merged caller's.
        callback_service.schedule_after_close(
            db_session=db_session, work_order=order, settings=get_settings(), now=now
        )


def _perform(
    db_session: Session,
    number: str,
    actor: Actor,
    action: Callable[..., ActionResult],
    **arguments: Any,
) -> ActionRead:
    """Load and lock the order, act, carry out the effects, audit what the actor did, answer."""
    now = utcnow()
    order = queries.lock_by_number(
        db_session=db_session, number=number, department_code=department_scope(actor)
    )
    result = action(
        db_session=db_session,
        order=order,
        actor=actor.username,
        role=actor.role,
        now=now,
        **arguments,
    )
    _carry_out(db_session, order, result.effects, now)
    event = result.event
    detail = {"from_state": event.from_state, "to_state": event.to_state, "reason": event.reason}
    _audit(db_session, actor, order, event.action, detail | result.audit_detail, now)
    return _read(order, event)


# -- lists and one order ------------------------------------------------------------------------


@router.get("/work-orders", response_model=WorkOrderList)
def list_work_orders(
    db_session: DbSession,
    actor: CurrentActor,
    state: Annotated[State | None, Query()] = None,
    department_code: Annotated[str | None, Query(max_length=32)] = None,
    overdue: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> WorkOrderList:
    """Work orders, newest first; a department sees only its own."""
    now = utcnow()
    page = queries.list_work_orders(
        db_session=db_session,
        now=now,
        department_scope=department_scope(actor),
        department_code=department_code,
        state=state,
        overdue=overdue,
        limit=limit,
        offset=offset,
    )
    units = queries.deadline_units(db_session=db_session, orders=page.orders)
    return WorkOrderList(
        items=[WorkOrderSummaryRead.model_validate(_summary(o, units, now)) for o in page.orders],
        total=page.total,
    )


@router.get("/review-queue", response_model=ReviewQueueList)
def review_queue(
    db_session: DbSession,
    actor: CentreActor,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> ReviewQueueList:
    """Orders waiting for an agent, with the classifier's stored suggestion."""
    now = utcnow()
    page = queries.review_queue(db_session=db_session, limit=limit, offset=offset)
    units = queries.deadline_units(db_session=db_session, orders=page.orders)
    return ReviewQueueList(
        items=[
            ReviewItemRead.model_validate(
                _summary(o, units, now) | {"suggestion": o.suggestion or {}}
            )
            for o in page.orders
        ],
        total=page.total,
    )


@router.get("/work-orders/{number}", response_model=WorkOrderRead, responses={404: {}})
def get_work_order(number: str, db_session: DbSession, actor: CurrentActor) -> WorkOrderRead:
    """One order with its appeal and event log. The department it is dispatched to (the lead),
    and the centre, see the citizen's words, name, phone and address (each such view is
    audited); any other department, assisting ones included, gets the 404 of a missing number
    (assisting departments learn of the order from its delivery message)."""
    now = utcnow()
    scope = department_scope(actor)
    order = queries.get_by_number_or_raise(
        db_session=db_session, number=number, department_code=scope
    )
    appeal = _appeal_view(db_session, actor, order, now)
    return WorkOrderRead(
        number=order.number,
        state=order.state,
        channel=order.appeal.channel,
        category_code=order.category_code,
        department_code=order.department_code,
        priority=order.priority,
        escalated=order.escalated,
        confidence=order.confidence,
        routing_source=order.routing_source,
        created_at=order.created_at,
        accept_deadline=order.accept_deadline_at,
        deadline=order.deadline_at,
        suggestion=order.suggestion or {},
        appeal=appeal,
        allowed_actions=_actions_for(actor, order),
        # Merges and duplicate suggestions are the centre's business, not the department's.
        **(merges.duplicate_info(db_session=db_session, work_order=order) if scope is None else {}),
        events=[
            EventRead(
                at=e.at,
                actor=e.actor,
                role=e.role,
                action=e.action,
                from_state=e.from_state,
                to_state=e.to_state,
                reason=(mask_text(e.reason) or "") if appeal.personal_data_masked else e.reason,
                data=_masked_data(e.data or {}) if appeal.personal_data_masked else (e.data or {}),
            )
            for e in workorders.events(db_session=db_session, work_order=order)
        ],
    )


@router.get("/work-orders/{number}/duplicates", response_model=DuplicateList, responses=ERRORS)
def list_duplicates(number: str, db_session: DbSession, actor: CentreActor) -> DuplicateList:
    """Earlier orders that duplicate detection found similar to this one, best first."""
    order = queries.get_by_number_or_raise(db_session=db_session, number=number)
    items = []
    for candidate, other in merges.candidates_of(db_session=db_session, work_order=order):
        master = merges.resolve_master(db_session=db_session, work_order=other)
        items.append(
            DuplicateRead(
                number=other.number,
                score=candidate.score,
                action=candidate.action,
                place_relation=candidate.place_relation,
                category_relation=candidate.category_relation,
                text=mask_text(other.appeal.text) or "",
                received_at=other.appeal.received_at,
                state=other.state,
                text_similarity=candidate.text_similarity,
                same_caller=candidate.same_caller,
                reasons=list(candidate.reasons or []),
                master_number=master.number,
            )
        )
    repeat_of = queries.number_of(db_session=db_session, work_order_id=order.repeat_of_id)
    return DuplicateList(items=items, repeat_of=repeat_of)


# -- the centre: dispatch, close, escalate, reassign, merge, unmerge -----------------------------


@router.post("/work-orders/{number}/dispatch", response_model=ActionRead, responses=ERRORS)
def dispatch(
    number: str, body: DispatchCreate, db_session: DbSession, actor: AgentActor
) -> ActionRead:
    """Confirm the suggestion or override it; the choice is stored as a training label."""
    return _perform(
        db_session,
        number,
        actor,
        actions.dispatch,
        category_code=body.category_code,
        department_code=body.department_code,
        reason=body.reason,
    )


@router.post("/work-orders/{number}/close", response_model=ActionRead, responses=ERRORS)
def close(
    number: str, db_session: DbSession, actor: AgentActor, body: DecisionCreate | None = None
) -> ActionRead:
    return _perform(db_session, number, actor, actions.close, reason=body.reason if body else "")


@router.post("/work-orders/{number}/escalate", response_model=ActionRead, responses=ERRORS)
def escalate(
    number: str, body: ReasonCreate, db_session: DbSession, actor: SupervisorActor
) -> ActionRead:
    return _perform(db_session, number, actor, actions.escalate, reason=body.reason)


@router.post("/work-orders/{number}/reassign", response_model=ActionRead, responses=ERRORS)
def reassign(
    number: str, body: ReassignCreate, db_session: DbSession, actor: AgentActor
) -> ActionRead:
    """Redispatch (改派) to another department; its deadlines start again."""
    return _perform(
        db_session,
        number,
        actor,
        actions.reassign,
        department_code=body.department_code,
        reason=body.reason,
    )


def _merge_read(db_session: Session, order: WorkOrder) -> MergeRead:
    master = merges.resolve_master(db_session=db_session, work_order=order)
    members = merges.members_of(db_session=db_session, master=master)
    return MergeRead(
        number=order.number,
        state=order.state,
        master_number=master.number if master.id != order.id else None,
        members=[m.number for m in members],
    )


@router.post("/work-orders/{number}/merge", response_model=MergeRead, responses=ERRORS)
def merge(number: str, body: MergeCreate, db_session: DbSession, actor: AgentActor) -> MergeRead:
    """Merge this order into another (its master when that one is merged itself)."""
    now = utcnow()
    order = queries.get_by_number_or_raise(db_session=db_session, number=number)
    into = queries.get_by_number_or_raise(db_session=db_session, number=body.into)
    db_session.refresh(order, with_for_update=True)
    score = merges.candidate_score(db_session=db_session, work_order=order, candidate=into)
    master = merges.merge_work_order(
        db_session=db_session,
        work_order=order,
        into=into,
        actor=actor.username,
        role=actor.role,
        score=score,
        note=body.reason,
        now=now,
    )
    detail = {"master": master.number, "score": score, "reason": body.reason}
    _audit(db_session, actor, order, "merge", detail, now)
    return _merge_read(db_session, order)


@router.post("/work-orders/{number}/unmerge", response_model=MergeRead, responses=ERRORS)
def unmerge(
    number: str, db_session: DbSession, actor: AgentActor, body: UnmergeCreate | None = None
) -> MergeRead:
    """Take this order out of its group; it goes back to where it was before the merge."""
    now = utcnow()
    order = queries.lock_by_number(db_session=db_session, number=number)
    master_number = queries.number_of(db_session=db_session, work_order_id=order.master_id)
    reason = body.reason if body else ""
    merges.unmerge_work_order(
        db_session=db_session,
        work_order=order,
        actor=actor.username,
        role=actor.role,
        note=reason,
        now=now,
    )
    if order.state == State.DISPATCHED:
        _carry_out(db_session, order, frozenset({Effect.DELIVER}), now)
    detail = {"master": master_number, "to_state": order.state, "reason": reason}
    _audit(db_session, actor, order, "unmerge", detail, now)
    return _merge_read(db_session, order)


# -- departments ----------------------------------------------------------------------------------


@router.post("/work-orders/{number}/accept", response_model=ActionRead, responses=ERRORS)
def accept(number: str, db_session: DbSession, actor: DepartmentActor) -> ActionRead:
    return _perform(db_session, number, actor, actions.accept)


@router.post("/work-orders/{number}/return", response_model=ActionRead, responses=ERRORS)
def return_order(
    number: str, body: ReturnCreate, db_session: DbSession, actor: DepartmentActor
) -> ActionRead:
    """Return (退单) within the window; the order goes back to review with the next-best
    suggestion, and is escalated once it has been returned too often."""
    return _perform(db_session, number, actor, actions.return_order, reason=body.reason)


@router.post("/work-orders/{number}/extension", response_model=ActionRead, responses=ERRORS)
def request_extension(
    number: str, body: ExtensionCreate, db_session: DbSession, actor: DepartmentActor
) -> ActionRead:
    return _perform(
        db_session,
        number,
        actor,
        actions.request_extension,
        reason=body.reason,
        new_deadline=body.new_deadline,
    )


@router.post("/work-orders/{number}/extension/approve", response_model=ActionRead, responses=ERRORS)
def approve_extension(
    number: str,
    db_session: DbSession,
    actor: SupervisorActor,
    body: DecisionCreate | None = None,
) -> ActionRead:
    reason = body.reason if body else ""
    return _perform(db_session, number, actor, actions.approve_extension, reason=reason)


@router.post("/work-orders/{number}/extension/deny", response_model=ActionRead, responses=ERRORS)
def deny_extension(
    number: str, body: ReasonCreate, db_session: DbSession, actor: SupervisorActor
) -> ActionRead:
    return _perform(db_session, number, actor, actions.deny_extension, reason=body.reason)


@router.post("/work-orders/{number}/reply", response_model=ActionRead, responses=ERRORS)
def reply(
    number: str, body: ReplyCreate, db_session: DbSession, actor: DepartmentActor
) -> ActionRead:
    return _perform(db_session, number, actor, actions.reply, result=body.result)
