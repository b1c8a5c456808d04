"""A caller's earlier appeals, for the agent on the line (and supervisors).

    POST /api/v1/callers/history   {"phone": "13812345678", "limit": 20}   newest first

The number is in the body, not the URL: URLs end up in access logs, proxies' logs and browser
history, a body does not. (The former `GET /api/v1/callers/{phone}/appeals` is removed; the
console page posts the number as it is typed.)

Agents, supervisors and admins only (a department is refused with 403, as for every role
check; it reads its own orders through the work-order list). Numbers are matched in the common
spellings channels store them in (`13812345678`, `+86 138 1234 5678`, `138-1234-5678` ...). The
answer is a list, so texts are masked (`service.auth.masking`, purpose LIST); each lookup is in
the audit log, with the number masked.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from router.workorders import queries
from router.workorders.workflow import Role
from service.api.deps import DbSession
from service.api.security import require_roles
from service.auth import audit
from service.auth.masking import mask_phone, mask_text
from service.auth.security import Actor

router = APIRouter(prefix="/api/v1/callers", tags=["callers"])

CallerActor = Annotated[Actor, Depends(require_roles(Role.AGENT, Role.SUPERVISOR, Role.ADMIN))]
ERRORS: dict[int | str, dict[str, Any]] = {401: {}, 403: {}}


class CallerHistoryQuery(BaseModel):
    phone: str = Field(min_length=3, max_length=32, pattern=r"^[0-9+\-() ]{3,32}$")
    limit: int = Field(default=20, ge=1, le=100)


class CallerAppealRead(BaseModel):
    number: str
    state: str
    received_at: datetime
    channel: str
    category_path: str | None
    department_code: str | None
    title: str
    text: str


class CallerAppealList(BaseModel):
    items: list[CallerAppealRead]


@router.post("/history", response_model=CallerAppealList, responses=ERRORS)
def list_caller_appeals(
    body: CallerHistoryQuery, db_session: DbSession, actor: CallerActor
) -> CallerAppealList:
    """The caller's appeals, newest first, with where each one stands (reads only: the POST
    keeps the number out of the URL)."""
    phone = body.phone
    rows = queries.caller_appeals(db_session=db_session, phone=phone, limit=body.limit)
    audit.record(
        db_session=db_session,
        actor=actor,
        action="caller.lookup",
        target_type="caller",
        target_id=mask_phone(phone),
        detail={"found": len(rows)},
    )
    return CallerAppealList(
        items=[
            CallerAppealRead(
                number=order.number,
                state=order.state,
                received_at=appeal.received_at,
                channel=appeal.channel,
                category_path=path,
                department_code=order.department_code,
                title=mask_text(appeal.title) or "",
                text=mask_text(appeal.text) or "",
            )
            for order, appeal, path in rows
        ]
    )
