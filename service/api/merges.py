"""Duplicate suggestions, merge and unmerge (并单), hotspots (热点).

Departments see none of this (403): a merge is the centre's decision, and a hotspot spans
departments.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from router import merges, workorders
from router.errors import NotFound
from router.merges import HotspotAppealRow, HotspotRow
from router.models import Appeal, Category, Department, WorkOrder
from router.orm import utcnow
from service.api.deps import DbSession
from service.api.security import require_roles
from service.auth import audit
from service.auth.masking import mask_text
from service.auth.security import Actor
from service.config import get_settings
from service.dispatching import record_deliveries

router = APIRouter(prefix="/api/v1", tags=["merges"])

CentreActor = Annotated[Actor, Depends(require_roles("agent", "supervisor", "admin"))]
MergeActor = Annotated[Actor, Depends(require_roles("agent", "supervisor"))]
ERRORS: dict[int | str, dict[str, Any]] = {400: {}, 403: {}, 404: {}, 409: {}}


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


class TrendPoint(BaseModel):
    at: datetime
    count: int


class HotspotRead(BaseModel):
    id: int
    kind: str
    place_code: str | None
    place_name: str | None
    category_code: str | None
    category_path: str | None
    count: int
    distinct_callers: int
    baseline: float
    score: float
    trend: list[TrendPoint]
    first_seen: datetime
    last_seen: datetime
    appeal_numbers: list[str]


class HotspotList(BaseModel):
    items: list[HotspotRead]


def _order(db_session: Session, number: str) -> WorkOrder:
    return workorders.get_by_number_or_raise(db_session=db_session, number=number)


def _number(db_session: Session, order_id: int | None) -> str | None:
    if order_id is None:
        return None
    return db_session.scalar(select(WorkOrder.number).where(WorkOrder.id == order_id))


@router.get("/work-orders/{number}/duplicates", response_model=DuplicateList, responses=ERRORS)
def list_duplicates(number: str, db_session: DbSession, actor: CentreActor) -> DuplicateList:
    """Earlier orders that duplicate detection found similar to this one, best first."""
    order = _order(db_session, number)
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
    return DuplicateList(items=items, repeat_of=_number(db_session, order.repeat_of_id))


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
def merge(number: str, body: MergeCreate, db_session: DbSession, actor: MergeActor) -> MergeRead:
    """Merge this order into another (its master when that one is merged itself)."""
    now = utcnow()
    order = _order(db_session, number)
    into = _order(db_session, body.into)
    db_session.refresh(order, with_for_update=True)
    score = db_session.scalar(
        select(merges.DuplicateCandidate.score).where(
            merges.DuplicateCandidate.work_order_id == order.id,
            merges.DuplicateCandidate.candidate_id == into.id,
        )
    )
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
    audit.record(
        db_session=db_session,
        actor=actor,
        action="work_order.merge",
        target_type="work_order",
        target_id=order.number,
        detail={"master": master.number, "score": score, "reason": body.reason},
        at=now,
    )
    return _merge_read(db_session, order)


@router.post("/work-orders/{number}/unmerge", response_model=MergeRead, responses=ERRORS)
def unmerge(
    number: str, db_session: DbSession, actor: MergeActor, body: UnmergeCreate | None = None
) -> MergeRead:
    """Take this order out of its group; it goes back to where it was before the merge."""
    now = utcnow()
    order = _order(db_session, number)
    db_session.refresh(order, with_for_update=True)
    master_number = _number(db_session, order.master_id)
    reason = body.reason if body else ""
    merges.unmerge_work_order(
        db_session=db_session,
        work_order=order,
        actor=actor.username,
        role=actor.role,
        note=reason,
        now=now,
    )
    if order.state == "dispatched":
        record_deliveries(db_session=db_session, work_order=order, settings=get_settings())
    audit.record(
        db_session=db_session,
        actor=actor,
        action="work_order.unmerge",
        target_type="work_order",
        target_id=order.number,
        detail={"master": master_number, "to_state": order.state, "reason": reason},
        at=now,
    )
    return _merge_read(db_session, order)


def _hotspot_reads(db_session: Session, rows: list[HotspotRow]) -> list[HotspotRead]:
    if not rows:
        return []
    ids = [row.id for row in rows]
    numbers: dict[int, list[str]] = {i: [] for i in ids}
    for hotspot_id, number in db_session.execute(
        select(HotspotAppealRow.hotspot_id, WorkOrder.number)
        .join(WorkOrder, WorkOrder.id == HotspotAppealRow.work_order_id)
        .join(Appeal, Appeal.id == WorkOrder.appeal_id)
        .where(HotspotAppealRow.hotspot_id.in_(ids))
        .order_by(Appeal.received_at, WorkOrder.id)
    ):
        numbers[hotspot_id].append(number)
    places = {r.place_code for r in rows if r.place_code}
    names: dict[str, str] = {}
    if places:
        query = select(Department.code, Department.name).where(Department.code.in_(places))
        names = {code: name for code, name in db_session.execute(query)}
    codes = {r.category_code for r in rows if r.category_code}
    paths: dict[str, str] = {}
    if codes:
        query = select(Category.code, Category.path).where(Category.code.in_(codes))
        paths = {code: path for code, path in db_session.execute(query)}
    return [
        HotspotRead(
            id=row.id,
            kind=row.kind,
            place_code=row.place_code,
            place_name=names.get(row.place_code or "", row.place_code),
            category_code=row.category_code,
            category_path=paths.get(row.category_code or ""),
            count=row.count,
            distinct_callers=row.distinct_callers,
            baseline=row.baseline,
            score=row.score,
            trend=[TrendPoint.model_validate(point) for point in row.trend or []],
            first_seen=row.first_seen,
            last_seen=row.last_seen,
            appeal_numbers=numbers[row.id],
        )
        for row in rows
    ]


@router.get("/hotspots", response_model=HotspotList, responses=ERRORS)
def list_hotspots(
    db_session: DbSession,
    actor: CentreActor,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> HotspotList:
    """Hotspots, most recently seen first."""
    rows = list(
        db_session.scalars(
            select(HotspotRow)
            .order_by(HotspotRow.last_seen.desc(), HotspotRow.score.desc(), HotspotRow.id.desc())
            .limit(limit)
        )
    )
    return HotspotList(items=_hotspot_reads(db_session, rows))


@router.get("/hotspots/{hotspot_id}", response_model=HotspotRead, responses=ERRORS)
def get_hotspot(
    hotspot_id: Annotated[int, Path(ge=1, le=2**63 - 1)], db_session: DbSession, actor: CentreActor
) -> HotspotRead:
    row = db_session.get(HotspotRow, hotspot_id)
    if row is None:
        raise NotFound(f"hotspot {hotspot_id} not found")
    return _hotspot_reads(db_session, [row])[0]
