"""Hotspots (热点): the places and problems the periodic scan found far above their usual level.

Departments see none of this (403): a hotspot spans departments.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel
from sqlalchemy.orm import Session

from router.hotspots import service as hotspots
from router.hotspots.models import HotspotRow
from router.workorders.workflow import Role
from service.api.deps import DbSession
from service.api.security import require_roles
from service.auth.security import Actor

router = APIRouter(prefix="/api/v1", tags=["hotspots"])

CentreActor = Annotated[Actor, Depends(require_roles(Role.AGENT, Role.SUPERVISOR, Role.ADMIN))]
ERRORS: dict[int | str, dict[str, Any]] = {400: {}, 403: {}, 404: {}}


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


def _reads(db_session: Session, rows: list[HotspotRow]) -> list[HotspotRead]:
    names = hotspots.names_of(db_session=db_session, rows=rows)
    return [
        HotspotRead(
            id=row.id,
            kind=row.kind,
            place_code=row.place_code,
            place_name=names.place_names.get(row.place_code or "", row.place_code),
            category_code=row.category_code,
            category_path=names.category_paths.get(row.category_code or ""),
            count=row.count,
            distinct_callers=row.distinct_callers,
            baseline=row.baseline,
            score=row.score,
            trend=[TrendPoint.model_validate(point) for point in row.trend or []],
            first_seen=row.first_seen,
            last_seen=row.last_seen,
            appeal_numbers=names.appeal_numbers[row.id],
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
    return HotspotList(
        items=_reads(db_session, hotspots.latest(db_session=db_session, limit=limit))
    )


@router.get("/hotspots/{hotspot_id}", response_model=HotspotRead, responses=ERRORS)
def get_hotspot(
    hotspot_id: Annotated[int, Path(ge=1, le=2**63 - 1)], db_session: DbSession, actor: CentreActor
) -> HotspotRead:
    row = hotspots.get_or_raise(db_session=db_session, hotspot_id=hotspot_id)
    return _reads(db_session, [row])[0]
