"""Intake and suggestion endpoints, and reading a work order."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from router import workorders
from router.models import WorkOrder
from service import classification, intake
from service.api.deps import DbSession
from service.api.security import CurrentActor, department_scope, require_roles
from service.auth.security import Actor
from service.channels.limits import MAX_TEXT_LENGTH
from service.config import get_settings
from service.runtime import get_database

router = APIRouter(prefix="/api/v1", tags=["appeals"])

MAX_TEXT = MAX_TEXT_LENGTH  # one limit for every channel
Channel = Literal["phone", "web", "wechat", "open311", "agent"]
NextStep = Literal["auto_dispatched", "awaiting_review", "awaiting_triage", "in_progress"]
IntakeActor = Annotated[Actor, Depends(require_roles("agent", "supervisor", "admin"))]
AppealType = Literal["consultation", "help", "complaint", "report", "suggestion"]


class AttachmentMeta(BaseModel):
    name: str = Field(max_length=200)
    content_type: str = Field(default="", max_length=100)
    size: int = Field(default=0, ge=0)
    url: str = Field(default="", max_length=500)


class Location(BaseModel):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class ClassifyRequest(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    title: str = Field(default="", max_length=200)
    address: str | None = Field(default=None, max_length=300)
    k: int = Field(default=5, ge=1, le=20)


class AlternativeRead(BaseModel):
    category_code: str
    category_path: str
    confidence: float


class SuggestionRead(BaseModel):
    category_code: str | None
    category_path: str | None
    department_code: str | None
    confidence: float
    alternatives: list[AlternativeRead]
    department_source: str
    assisting_department_codes: list[str]
    district_code: str | None
    street_code: str | None
    place: str | None
    priority: str
    urgent_keywords: list[str]
    deadline_value: int
    deadline_unit: str
    auto_dispatch: bool
    terms: list[tuple[str, float]]


class AppealCreate(BaseModel):
    channel: Channel
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    title: str = Field(default="", max_length=200)
    appeal_type: AppealType | None = None
    caller_phone: str | None = Field(default=None, max_length=32, pattern=r"^[0-9+\-() ]{3,32}$")
    caller_name: str | None = Field(default=None, max_length=64)
    address: str | None = Field(default=None, max_length=300)
    location: Location | None = None
    attachments: list[AttachmentMeta] = Field(default_factory=list, max_length=20)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=128)

    @model_validator(mode="after")
    def _refuse_nul(self) -> AppealCreate:
        # PostgreSQL text cannot hold NUL: a 422 here rather than a database error.
        texts = (self.text, self.title, self.caller_name, self.address, self.idempotency_key)
        if any(value and "\x00" in value for value in texts):
            raise ValueError("text fields must not contain NUL characters")
        return self


class AppealCreated(BaseModel):
    number: str
    state: str
    suggestion: SuggestionRead | None
    next: NextStep


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
    events: list[EventRead]
    master_number: str | None = None
    """The order this one is merged into (state ``merged``)."""
    merged_numbers: list[str] = Field(default_factory=list)
    """Orders merged into this one: each caller gets the callback."""
    repeat_of: str | None = None
    """The same caller's latest earlier order about the same problem (重复来电)."""
    duplicate_suggestion: dict[str, Any] | None = None
    """The best earlier order duplicate detection found: {"number", "score", "action"}."""


@router.post("/classify", response_model=SuggestionRead, responses={503: {}})
def classify(body: ClassifyRequest, actor: IntakeActor) -> SuggestionRead:
    """Suggest category, department and alternatives without storing anything."""
    decision, _version = classification.suggest(
        model_dir=get_settings().model_dir,
        text=body.text,
        title=body.title,
        address=body.address,
        k=body.k,
    )
    return SuggestionRead.model_validate(decision.to_dict())


def next_step(state: str) -> NextStep:
    if state == "dispatched":
        return "auto_dispatched"
    if state == "review":
        return "awaiting_review"
    if state == "received":
        return "awaiting_triage"
    return "in_progress"


@router.post(
    "/appeals",
    status_code=201,
    response_model=AppealCreated,
    responses={200: {"model": AppealCreated, "description": "Replay of an idempotency key"}},
)
def create_appeal(
    body: AppealCreate,
    actor: IntakeActor,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> Any:
    """Store an appeal (before anything else), then classify and route it."""
    appeal = workorders.AppealInput(
        channel=body.channel,
        text=body.text,
        title=body.title,
        appeal_type=body.appeal_type,
        caller_phone=body.caller_phone,
        caller_name=body.caller_name,
        address=body.address,
        latitude=body.location.latitude if body.location else None,
        longitude=body.location.longitude if body.location else None,
        attachments=[a.model_dump() for a in body.attachments],
        idempotency_key=body.idempotency_key or idempotency_key,
    )
    result = intake.submit(
        database=get_database(),
        settings=get_settings(),
        appeal=appeal,
        actor=actor.username,
        role="agent" if actor.role == "agent" else "system",
    )
    created = AppealCreated(
        number=result.number,
        state=result.state,
        suggestion=SuggestionRead.model_validate(result.suggestion) if result.suggestion else None,
        next=next_step(result.state),
    )
    return JSONResponse(created.model_dump(mode="json"), status_code=201 if result.created else 200)


@router.get("/work-orders/{number}", response_model=WorkOrderRead, responses={404: {}})
def get_work_order(number: str, db_session: DbSession, actor: CurrentActor) -> WorkOrderRead:
    order = workorders.get_by_number_or_raise(
        db_session=db_session, number=number, department_code=department_scope(actor)
    )
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
        # Merges and duplicate suggestions are the centre's business, not the department's.
        **(_duplicate_info(db_session, order) if department_scope(actor) is None else {}),
        events=[
            EventRead(
                at=e.at,
                actor=e.actor,
                role=e.role,
                action=e.action,
                from_state=e.from_state,
                to_state=e.to_state,
                reason=e.reason,
                data=e.data or {},
            )
            for e in workorders.events(db_session=db_session, work_order=order)
        ],
    )


def _duplicate_info(db_session: Session, order: WorkOrder) -> dict[str, Any]:
    """Merge group, repeat-caller link and the best duplicate candidate of an order."""
    from router import merges

    def number(order_id: int | None) -> str | None:
        if order_id is None:
            return None
        return db_session.scalar(select(WorkOrder.number).where(WorkOrder.id == order_id))

    members = merges.members_of(db_session=db_session, master=order)
    stored = merges.candidates_of(db_session=db_session, work_order=order)
    best = None
    if stored:
        candidate, other = stored[0]
        best = {"number": other.number, "score": candidate.score, "action": candidate.action}
    return {
        "master_number": number(order.master_id),
        "merged_numbers": [m.number for m in members],
        "repeat_of": number(order.repeat_of_id),
        "duplicate_suggestion": best,
    }
