"""Satisfaction callbacks: the agents' callback queue and results, and the gateway's reports.

GET  /api/v1/callbacks?status=due        agents and supervisors: calls to make now
POST /api/v1/callbacks/{id}/result       an agent records what the citizen said
POST /api/v1/callbacks/gateway/report    the SMS/IVR gateway reports an asynchronous result,
                                         signed like the requests it receives (no login)
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from router.callbacks import service as callbacks
from router.callbacks.models import CallbackStatus
from router.errors import Conflict, InvalidInput, Unauthorized
from router.workorders.workflow import CallbackOutcome, Role
from service.api.deps import DbSession, Offset
from service.api.security import require_roles
from service.auth import audit
from service.auth.masking import mask_phone
from service.auth.security import Actor
from service.callbacks import service
from service.callbacks.providers import gateway_secret
from service.config import get_settings
from service.delivery.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature

router = APIRouter(prefix="/api/v1", tags=["callbacks"])

CallbackActor = Annotated[Actor, Depends(require_roles(Role.AGENT, Role.SUPERVISOR))]
StatusFilter = Literal["due", "pending", "calling", "completed", "cancelled", "all"]
ERRORS: dict[int | str, dict[str, Any]] = {400: {}, 401: {}, 403: {}, 404: {}, 409: {}}


class CallbackRead(BaseModel):
    id: int
    number: str
    master_number: str | None
    status: str
    provider: str
    result: str | None
    attempts: int
    due_at: datetime
    completed_at: datetime | None
    caller_phone: str | None
    reply_summary: str


class CallbackList(BaseModel):
    items: list[CallbackRead]


class ResultCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    result: CallbackOutcome
    note: str = Field(default="", max_length=1000)


class GatewayReport(BaseModel):
    callback_id: int
    attempt: int = Field(ge=1)
    result: CallbackOutcome
    note: str = Field(default="", max_length=1000)
    request_id: str = ""


class ResultRead(BaseModel):
    id: int
    status: str
    result: str | None
    attempts: int
    due_at: datetime
    retry: bool
    work_order_number: str
    work_order_state: str
    actions: list[str]


@router.get("/callbacks", response_model=CallbackList, responses=ERRORS)
def list_callbacks(
    db_session: DbSession,
    actor: CallbackActor,
    status: StatusFilter = "due",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> CallbackList:
    """Callbacks by status, earliest due first; ``due`` = pending and due now (the work list)."""
    rows = callbacks.list_callbacks(
        db_session=db_session, status=status, limit=limit, offset=offset
    )
    contexts = callbacks.contexts_of(db_session=db_session, rows=rows)
    summaries = {
        order_id: service.reply_summary(db_session=db_session, work_order_id=order_id)
        for order_id in {row.work_order_id for row in rows}
    }
    items = []
    for row in rows:
        context = contexts[row.id]
        number, master = context.number, context.master_number
        items.append(
            CallbackRead(
                id=row.id,
                number=number,
                master_number=None if master == number else master,
                status=row.status,
                provider=row.provider,
                result=row.result,
                attempts=row.attempts,
                due_at=row.due_at,
                completed_at=row.completed_at,
                caller_phone=mask_phone(context.caller_phone),
                reply_summary=summaries[row.work_order_id],
            )
        )
    return CallbackList(items=items)


def _read(recorded: callbacks.RecordedResult) -> ResultRead:
    return ResultRead.model_validate(recorded.to_dict())


@router.post("/callbacks/{callback_id}/result", response_model=ResultRead, responses=ERRORS)
def record_result(
    callback_id: int, body: ResultCreate, db_session: DbSession, actor: CallbackActor
) -> ResultRead:
    """Record an agent's call: unsatisfied reopens the order, unreachable is tried again."""
    row = callbacks.get_callback_or_raise(db_session=db_session, callback_id=callback_id)
    if row.status == CallbackStatus.CALLING.value:
        raise Conflict(
            f"callback {callback_id} is being placed by the gateway", current_status=row.status
        )
    recorded = service.record(
        db_session=db_session,
        callback_id=callback_id,
        outcome=body.result.value,
        actor=actor.username,
        settings=get_settings(),
        note=body.note,
    )
    audit.record(
        db_session=db_session,
        actor=actor,
        action="callback.result",
        target_type="work_order",
        target_id=recorded.work_order.number,
        detail={"callback_id": callback_id, "result": body.result.value, "retry": recorded.retry},
    )
    return _read(recorded)


async def _raw_body(request: Request) -> bytes:
    return await request.body()


@router.post("/callbacks/gateway/report", response_model=ResultRead, responses=ERRORS)
def gateway_report(
    body: Annotated[bytes, Depends(_raw_body)],
    db_session: DbSession,
    timestamp: Annotated[str, Header(alias=TIMESTAMP_HEADER)] = "",
    signature: Annotated[str, Header(alias=SIGNATURE_HEADER)] = "",
) -> ResultRead:
    """The gateway's asynchronous result of one call; a repeated report is a 409."""
    secret = gateway_secret(get_settings().secret_key.get_secret_value())
    if not verify_signature(secret, timestamp, body, signature):
        raise Unauthorized("签名无效或已过期")
    try:
        report = GatewayReport.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidInput(f"invalid gateway report: {exc.errors()[0].get('msg', '')}") from None
    row = callbacks.get_callback_or_raise(db_session=db_session, callback_id=report.callback_id)
    db_session.refresh(row, with_for_update=True)
    if row.status != CallbackStatus.CALLING.value or report.attempt != row.attempts + 1:
        raise Conflict(
            f"callback {row.id} attempt {report.attempt} is not awaiting a result",
            current_status=row.status,
            attempts=row.attempts,
        )
    recorded = service.record(
        db_session=db_session,
        callback_id=row.id,
        outcome=report.result.value,
        actor=service.GATEWAY_ACTOR,
        settings=get_settings(),
        note=report.note,
    )
    return _read(recorded)
