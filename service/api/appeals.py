"""Intake and suggestion endpoints: classify a text, store and route an appeal."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from classifier.ood import intake_refusal
from router.workorders import service as workorders
from router.workorders.workflow import Role, State
from service import classification, intake
from service.api.responses import LocalTimeJSONResponse
from service.api.security import require_roles
from service.auth.security import Actor
from service.channels.limits import MAX_TEXT_LENGTH
from service.config import get_settings
from service.observability import metrics
from service.runtime import get_database

router = APIRouter(prefix="/api/v1", tags=["appeals"])

MAX_TEXT = MAX_TEXT_LENGTH  # one limit for every channel
Channel = Literal["phone", "web", "wechat", "open311", "agent"]
NextStep = Literal["auto_dispatched", "awaiting_review", "awaiting_triage", "in_progress"]
IntakeActor = Annotated[Actor, Depends(require_roles(Role.AGENT, Role.SUPERVISOR, Role.ADMIN))]
AppealType = Literal["consultation", "help", "complaint", "report", "suggestion"]
# Why an appeal text is refused (`classifier.ood.intake_refusal`), as the 422's `type` and `msg`.
REFUSED_TEXT = {
    "blank": "诉求内容为空，请用中文描述您的诉求（时间、地点、具体问题）。",
    "no_chinese": "诉求内容须包含中文，请用中文描述您的诉求（时间、地点、具体问题）。",
}


def refused_text(code: str) -> RequestValidationError:
    """The 422 of a text refused for `code` (see `REFUSED_TEXT`), as every intake path gives it:
    `{"error": "ValidationError", "detail": [{"loc": ["body", "text"], "msg", "type": code}]}`."""
    return RequestValidationError(
        [{"loc": ("body", "text"), "msg": REFUSED_TEXT[code], "type": code}]
    )


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
    department_code: str | None = None


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
    department_confidence: float = 0.0
    """The probability that the department is right; auto-dispatch compares it with the
    threshold (`router.routing`)."""
    terms: list[tuple[str, float]]
    ood: list[str] = Field(default_factory=list)
    """Out-of-distribution flags (`classifier.ood`): such an appeal always goes to review."""


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

    @field_validator("text")
    @classmethod
    def _refuse_non_chinese(cls, text: str, info: ValidationInfo) -> str:
        # Blank, English, emoji or digits only: not an appeal (short Chinese text is kept).
        code = intake_refusal(text)
        if code is not None:
            metrics.record_refused(str(info.data.get("channel") or "unknown"))
            raise PydanticCustomError(code, REFUSED_TEXT[code])
        return text

    @model_validator(mode="after")
    def _refuse_nul(self) -> AppealCreate:
        # PostgreSQL text cannot hold NUL: a 422 here rather than a database error.
        texts = (self.text, self.title, self.caller_name, self.address, self.idempotency_key)
        if any(value and "\x00" in value for value in texts):
            raise ValueError("text fields must not contain NUL characters")
        return self

    def to_input(self, idempotency_key: str | None) -> workorders.AppealInput:
        """The domain's intake record; the body's idempotency key wins over the header's."""
        return workorders.AppealInput(
            channel=self.channel,
            text=self.text,
            title=self.title,
            appeal_type=self.appeal_type,
            caller_phone=self.caller_phone,
            caller_name=self.caller_name,
            address=self.address,
            latitude=self.location.latitude if self.location else None,
            longitude=self.location.longitude if self.location else None,
            attachments=[a.model_dump() for a in self.attachments],
            idempotency_key=self.idempotency_key or idempotency_key,
        )


class AppealCreated(BaseModel):
    number: str
    state: str
    suggestion: SuggestionRead | None
    next: NextStep


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
    if state == State.DISPATCHED:
        return "auto_dispatched"
    if state == State.REVIEW:
        return "awaiting_review"
    if state == State.RECEIVED:
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
    return submit(body.to_input(idempotency_key), actor)


def submit(appeal: workorders.AppealInput, actor: Actor) -> LocalTimeJSONResponse:
    """Store and route one appeal (`service.intake.submit`) and answer as `POST /appeals` does:
    201 with the new order, or 200 with the stored one when its idempotency key is replayed."""
    result = intake.submit(
        database=get_database(),
        settings=get_settings(),
        appeal=appeal,
        actor=actor.username,
        role=Role.AGENT if actor.role == Role.AGENT else Role.SYSTEM,
    )
    created = AppealCreated(
        number=result.number,
        state=result.state,
        suggestion=SuggestionRead.model_validate(result.suggestion) if result.suggestion else None,
        next=next_step(result.state),
    )
    return LocalTimeJSONResponse(
        created.model_dump(mode="json"), status_code=201 if result.created else 200
    )
