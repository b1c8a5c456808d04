"""A caller's earlier appeals, for the agent on the line (and supervisors).

    GET /api/v1/callers/{phone}/appeals?limit=20   newest first

Agents, supervisors and admins only (a department is refused with 403, as for every role
check; it reads its own orders through the work-order list). Numbers are matched in the common
spellings channels store them in (`13812345678`, `+86 138 1234 5678`, `138-1234-5678` ...). The
answer is a list, so texts are masked (`service.auth.masking`, purpose LIST); each lookup is in
the audit log, with the number masked.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from router.models import Category
from router.workorders.models import Appeal, WorkOrder
from router.workorders.workflow import Role
from service.api.deps import DbSession
from service.api.security import require_roles
from service.auth import audit
from service.auth.masking import mask_phone, mask_text
from service.auth.security import Actor

router = APIRouter(prefix="/api/v1/callers", tags=["callers"])

CallerActor = Annotated[Actor, Depends(require_roles(Role.AGENT, Role.SUPERVISOR, Role.ADMIN))]
ERRORS: dict[int | str, dict[str, Any]] = {401: {}, 403: {}}
Phone = Annotated[str, Path(min_length=3, max_length=32, pattern=r"^[0-9+\-() ]{3,32}$")]


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


def phone_spellings(phone: str) -> list[str]:
    """The ways one number may have been stored: as typed, digits only, with +86, grouped."""
    digits = re.sub(r"[^0-9]", "", phone)
    national = digits
    if len(digits) == 15 and digits.startswith("0086"):
        national = digits[4:]
    elif len(digits) == 13 and digits.startswith("86"):
        national = digits[2:]
    spellings = [phone.strip(), digits, national]
    if national:
        spellings += [f"+86{national}", f"+86 {national}", f"86{national}", f"0086{national}"]
    if len(national) == 11 and national.startswith("1"):
        groups = (national[:3], national[3:7], national[7:])
        for separator in ("-", " "):
            grouped = separator.join(groups)
            spellings += [grouped, f"+86 {grouped}", f"+86{separator}{grouped}"]
    return list(dict.fromkeys(s for s in spellings if s))


def caller_appeals(
    *, db_session: Session, phone: str, limit: int
) -> list[tuple[WorkOrder, Appeal, str | None]]:
    rows = db_session.execute(
        select(WorkOrder, Appeal, Category.path)
        .join(Appeal, WorkOrder.appeal_id == Appeal.id)
        .outerjoin(Category, WorkOrder.category_code == Category.code)
        .where(Appeal.caller_phone.in_(phone_spellings(phone)))
        .order_by(Appeal.received_at.desc(), Appeal.id.desc())
        .limit(limit)
    )
    return [(order, appeal, path) for order, appeal, path in rows]


@router.get("/{phone}/appeals", response_model=CallerAppealList, responses=ERRORS)
def list_caller_appeals(
    phone: Phone,
    db_session: DbSession,
    actor: CallerActor,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> CallerAppealList:
    """The caller's appeals, newest first, with where each one stands."""
    rows = caller_appeals(db_session=db_session, phone=phone, limit=limit)
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
