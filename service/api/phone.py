"""Phone transcripts over HTTP: `POST /api/v1/phone/transcripts`.

The same JSON payload as the RabbitMQ queue `intake.phone` (see `service.channels.phone_queue`),
in UTF-8 or GB18030/GBK; the `call_id` is the idempotency key shared with the queue, so a call
sent both ways, or twice, is one work order (201 the first time, 200 with the first result after).

Callers: the call-centre system with an API key of a department listed in
`HOTLINE_INTAKE_SYSTEM_DEPARTMENTS` (default `hotline`, the 12345 centre), or a signed-in agent,
supervisor or admin.
"""

from __future__ import annotations

from typing import Annotated, Any, get_args

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from router.errors import AppError, Forbidden, Unauthorized
from router.workorders.workflow import Role
from service.api import appeals
from service.api.appeals import (
    AppealCreated,
    AppealType,
    refused_text,
)
from service.api.security import (
    NOT_AUTHENTICATED,
    ApiKeySecret,
    BearerToken,
    SessionToken,
    remote_addr,
    resolve_actor,
)
from service.auth.security import Actor
from service.channels.limits import MAX_TEXT_LENGTH
from service.channels.phone_queue import (
    PoisonMessage,
    RefusedText,
    parse_transcript,
    to_appeal_input,
)
from service.config import get_settings
from service.runtime import get_database

router = APIRouter(prefix="/api/v1/phone", tags=["phone"])

APPEAL_TYPES = get_args(AppealType)
PEOPLE = frozenset({Role.AGENT.value, Role.SUPERVISOR.value, Role.ADMIN.value})

TRANSCRIPT_EXAMPLE = {
    "call_id": "C20261123-0001",
    "text": "您好，我家小区门口的路灯坏了半个多月了，晚上一片漆黑，请尽快派人维修。",
    "caller_phone": "13800138000",
    "address": "A3区联丰路米兰春天小区",
    "started_at": "2026-11-23T09:15:00+08:00",
    "duration_seconds": 95,
    "asr_confidence": 0.93,
}


class InvalidTranscript(AppError):
    """The transcript cannot become an appeal (the reason says why)."""


def require_transcript_source(
    request: Request, bearer: BearerToken, api_key: ApiKeySecret, session_token: SessionToken
) -> Actor:
    # Its own short transaction, not the request's DbSession: checking an API key records its
    # use (a write), and on SQLite that lock would be held while intake writes the appeal.
    with get_database().session() as db_session:
        actor = resolve_actor(
            db_session=db_session,
            bearer=bearer,
            api_key=api_key,
            session_token=session_token,
            address=remote_addr(request),
        )
    if actor is None:
        raise Unauthorized(NOT_AUTHENTICATED)
    if actor.role in PEOPLE:
        return actor
    systems = {
        code.strip() for code in get_settings().intake_system_departments.split(",") if code.strip()
    }
    if actor.kind == "api_key" and actor.department_code in systems:
        return actor
    raise Forbidden("只有呼叫中心系统或坐席可以提交通话记录")


TranscriptSource = Annotated[Actor, Depends(require_transcript_source)]


@router.post(
    "/transcripts",
    status_code=201,
    response_model=AppealCreated,
    responses={
        200: {"model": AppealCreated, "description": "Replay of a call_id"},
        400: {"description": "Not a transcript (the reason is in `detail`)"},
        422: {"description": "The text has no Chinese character (not an appeal)"},
        413: {"description": "Request too large"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["call_id", "text"],
                        "properties": {
                            "call_id": {"type": "string", "maxLength": 100},
                            "text": {"type": "string", "maxLength": MAX_TEXT_LENGTH},
                            "caller_phone": {"type": "string"},
                            "caller_name": {"type": "string"},
                            "address": {"type": "string"},
                            "title": {"type": "string"},
                            "appeal_type": {"type": "string"},
                            "agent_id": {"type": "string"},
                            "recording_url": {"type": "string"},
                            "started_at": {"type": "string", "format": "date-time"},
                            "duration_seconds": {"type": "number"},
                            "asr_confidence": {"type": "number", "minimum": 0, "maximum": 1},
                        },
                    },
                    "example": TRANSCRIPT_EXAMPLE,
                }
            },
        }
    },
)
async def submit_transcript(request: Request, actor: TranscriptSource) -> Any:
    """Store one call's transcript as an appeal, then classify and route it."""
    body = await request.body()
    return await run_in_threadpool(
        _submit, body=body, content_type=request.headers.get("content-type"), actor=actor
    )


def _submit(*, body: bytes, content_type: str | None, actor: Actor) -> JSONResponse:
    try:
        transcript = parse_transcript(body, content_type=content_type)
    except RefusedText as exc:  # the same 422 as POST /api/v1/appeals
        raise refused_text(exc.code) from None
    except PoisonMessage as exc:
        raise InvalidTranscript(exc.reason) from None
    except OverflowError:  # started_at of year 1 has no UTC form
        raise InvalidTranscript("started_at is out of range") from None
    texts = (
        transcript.call_id,
        transcript.text,
        transcript.title,
        transcript.caller_phone,
        transcript.caller_name,
        transcript.address,
        transcript.appeal_type,
    )
    if any(value and "\x00" in value for value in texts):
        # PostgreSQL text cannot hold NUL: a 400 here, not a database error.
        raise InvalidTranscript("text fields must not contain NUL characters")
    if len(transcript.text) > MAX_TEXT_LENGTH:
        raise InvalidTranscript(f"text is longer than {MAX_TEXT_LENGTH} characters")
    appeal = to_appeal_input(transcript)
    _check_lengths(appeal.caller_phone, appeal.caller_name, appeal.address, appeal.title)
    if appeal.appeal_type is not None and appeal.appeal_type not in APPEAL_TYPES:
        raise InvalidTranscript(f"appeal_type must be one of {', '.join(APPEAL_TYPES)}")
    return appeals.submit(appeal, actor)


def _check_lengths(phone: str | None, name: str | None, address: str | None, title: str) -> None:
    # The columns' sizes: a longer value would be a database error (a 500), not a 400.
    for field, value, limit in (
        ("caller_phone", phone, 32),
        ("caller_name", name, 64),
        ("address", address, 300),
        ("title", title, 200),
    ):
        if value is not None and len(value) > limit:
            raise InvalidTranscript(f"{field} is longer than {limit} characters")
