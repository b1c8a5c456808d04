"""Dead-letter list for supervisors: what could not be delivered or taken in, and what to do.

    GET  /api/v1/dead-letters                 open letters, newest first (`include_resolved`)
    POST /api/v1/dead-letters/{id}/retry      send a failed delivery again (delivery letters)
    POST /api/v1/dead-letters/{id}/resolve    mark a letter handled

Supervisors and admins only; both actions are in the audit log. Letters may quote a citizen's
message (intake letters keep the transcript), so reasons and payloads are masked like any list.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel

from router.errors import Conflict
from router.orm import utcnow
from router.workorders.workflow import Role
from service.api.deps import DbSession, Offset
from service.api.security import require_roles
from service.auth import audit
from service.auth.masking import mask_text
from service.auth.security import Actor
from service.delivery import service as delivery
from service.delivery.models import DeadLetter

router = APIRouter(prefix="/api/v1/dead-letters", tags=["dead-letters"])

SupervisorActor = Annotated[Actor, Depends(require_roles(Role.SUPERVISOR, Role.ADMIN))]
ERRORS: dict[int | str, dict[str, Any]] = {401: {}, 403: {}, 404: {}, 409: {}}
LetterId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class DeadLetterRead(BaseModel):
    id: int
    kind: str
    reference: str
    reason: str
    payload: dict[str, Any]
    created_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    retryable: bool


class DeadLetterList(BaseModel):
    items: list[DeadLetterRead]


class RetryRead(BaseModel):
    dead_letter: DeadLetterRead
    delivery_id: int
    delivery_status: str


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item) for item in value]
    return value


def _delivery_id(letter: DeadLetter) -> int | None:
    value = (letter.payload or {}).get("delivery_id")
    return value if letter.kind == "delivery" and isinstance(value, int) else None


def _read(letter: DeadLetter) -> DeadLetterRead:
    return DeadLetterRead(
        id=letter.id,
        kind=letter.kind,
        reference=letter.reference,
        reason=mask_text(letter.reason) or "",
        payload=_masked(dict(letter.payload or {})),
        created_at=letter.created_at,
        resolved_at=letter.resolved_at,
        resolved_by=letter.resolved_by,
        retryable=letter.resolved_at is None and _delivery_id(letter) is not None,
    )


@router.get("", response_model=DeadLetterList, responses=ERRORS)
def list_dead_letters(
    db_session: DbSession,
    actor: SupervisorActor,
    kind: Literal["delivery", "intake"] | None = None,
    include_resolved: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
    offset: Offset = 0,
) -> DeadLetterList:
    """Open dead letters, newest first; `include_resolved` shows the handled ones too."""
    letters = delivery.list_dead_letters(
        db_session=db_session,
        kind=kind,
        include_resolved=include_resolved,
        limit=limit,
        offset=offset,
    )
    return DeadLetterList(items=[_read(letter) for letter in letters])


@router.post("/{letter_id}/retry", response_model=RetryRead, responses=ERRORS)
def retry_dead_letter(
    letter_id: LetterId, db_session: DbSession, actor: SupervisorActor
) -> RetryRead:
    """Send the failed delivery of a letter again (fix its cause first); resolves the letter.

    Intake letters cannot be retried here (409): the channel must send the message again.
    """
    now = utcnow()
    letter = delivery.get_dead_letter_or_raise(db_session=db_session, dead_letter_id=letter_id)
    delivery_id = _delivery_id(letter)
    if delivery_id is None:
        raise Conflict(f"dead letter {letter_id} is a {letter.kind} letter and cannot be retried")
    row = delivery.requeue_delivery(
        db_session=db_session, delivery_id=delivery_id, actor=actor.username
    )
    audit.record(
        db_session=db_session,
        actor=actor,
        action="dead_letter.retry",
        target_type="dead_letter",
        target_id=letter.id,
        detail={"delivery_id": row.id, "delivery_key": row.delivery_key},
        at=now,
    )
    return RetryRead(dead_letter=_read(letter), delivery_id=row.id, delivery_status=row.status)


@router.post("/{letter_id}/resolve", response_model=DeadLetterRead, responses=ERRORS)
def resolve_dead_letter(
    letter_id: LetterId, db_session: DbSession, actor: SupervisorActor
) -> DeadLetterRead:
    """Mark a letter handled (idempotent: the first resolution is kept)."""
    now = utcnow()
    letter = delivery.get_dead_letter_or_raise(db_session=db_session, dead_letter_id=letter_id)
    already = letter.resolved_at is not None
    letter = delivery.resolve_dead_letter(
        db_session=db_session, dead_letter_id=letter_id, resolved_by=actor.username
    )
    if not already:
        audit.record(
            db_session=db_session,
            actor=actor,
            action="dead_letter.resolve",
            target_type="dead_letter",
            target_id=letter.id,
            detail={"kind": letter.kind, "reference": letter.reference},
            at=now,
        )
    return _read(letter)
