"""The hotspot scan (热点预警): detect over the recent orders, store new hotspots and notify the
supervisors once per hotspot.

Functions only flush; the task wrapper commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    select,
)
from sqlalchemy.orm import Session

from router.catalogue.models import Category, Department
from router.duplicates.index import (
    cluster_links,
)
from router.duplicates.models import DuplicateCandidate
from router.duplicates.service import caller_key
from router.errors import NotFound
from router.hotspots.detection import Hotspot, HotspotAppeal, HotspotConfig, detect_hotspots
from router.hotspots.models import HotspotAppealRow, HotspotRow
from router.notifications.models import NotificationKind, RecipientKind
from router.notifications.service import notify
from router.workorders.models import Appeal, WorkOrder

__all__ = ["ScanResult", "hotspot_appeal_ids", "scan_hotspots"]


# ----------------------------------------------------------------------------- hotspots


@dataclass(frozen=True)
class ScanResult:
    """What one hotspot scan did: hotspots found, and the ids of the rows created or updated."""

    found: int
    created: list[int]
    updated: list[int]

    def to_dict(self) -> dict[str, Any]:
        return {"found": self.found, "created": self.created, "updated": self.updated}


def scan_hotspots(
    *, db_session: Session, now: datetime, config: HotspotConfig | None = None
) -> ScanResult:
    """Find hotspots among the orders of the config's span and store them.

    Places are streets (the district when the street is unknown), categories are leaves. A
    hotspot still seen within two buckets of its last sighting is the same hotspot (updated);
    otherwise a new one is stored and the supervisors are notified once.
    """
    config = config or HotspotConfig()
    start = now - config.span
    rows = db_session.execute(
        select(
            WorkOrder.id,
            Appeal.received_at,
            WorkOrder.street_code,
            WorkOrder.district_code,
            WorkOrder.category_code,
            Appeal.caller_phone,
            WorkOrder.master_id,
        )
        .join(Appeal, Appeal.id == WorkOrder.appeal_id)
        .where(Appeal.received_at >= start, Appeal.received_at < now)
    )
    appeals = []
    links: list[tuple[int, int]] = []
    for order_id, received_at, street, district, category, phone, master_id in rows:
        appeals.append(
            HotspotAppeal(order_id, received_at, street or district, category, caller_key(phone))
        )
        if master_id is not None:
            links.append((order_id, master_id))
    links += db_session.execute(
        select(DuplicateCandidate.work_order_id, DuplicateCandidate.candidate_id).where(
            DuplicateCandidate.action != "none", DuplicateCandidate.created_at >= start
        )
    )
    found = detect_hotspots(appeals, now=now, config=config, clusters=cluster_links(links))
    created: list[int] = []
    updated: list[int] = []
    active_since = now - 2 * config.bucket
    for hotspot in found:
        row = db_session.scalar(
            select(HotspotRow)
            .where(
                HotspotRow.kind == hotspot.kind,
                _same(HotspotRow.place_code, hotspot.place),
                _same(HotspotRow.category_code, hotspot.category),
                HotspotRow.last_seen >= active_since,
            )
            .order_by(HotspotRow.id.desc())
            .limit(1)
        )
        is_new = row is None
        if row is None:
            row = HotspotRow(
                kind=hotspot.kind,
                place_code=hotspot.place,
                category_code=hotspot.category,
                first_seen=now,
            )
            db_session.add(row)
        row.count = hotspot.count
        row.distinct_callers = hotspot.distinct_callers
        row.baseline = hotspot.expected
        row.score = hotspot.score
        row.p_value = hotspot.p_value
        row.trend = [{"at": at.isoformat(), "count": n} for at, n in hotspot.trend]
        row.last_seen = now
        db_session.flush()
        known = set(
            db_session.scalars(
                select(HotspotAppealRow.work_order_id).where(HotspotAppealRow.hotspot_id == row.id)
            )
        )
        for order_id in hotspot.appeal_ids:
            if order_id not in known:
                db_session.add(HotspotAppealRow(hotspot_id=row.id, work_order_id=order_id))
        if row.notified_at is None and hotspot.appeal_ids:
            _notify_supervisors(db_session, row, hotspot, now)
        db_session.flush()
        (created if is_new else updated).append(row.id)
    return ScanResult(len(found), created, updated)


def _notify_supervisors(
    db_session: Session, row: HotspotRow, hotspot: Hotspot, now: datetime
) -> None:
    """Tell the supervisors about a new hotspot, once."""
    latest = db_session.get_one(WorkOrder, max(hotspot.appeal_ids))
    notify(
        db_session=db_session,
        work_order=latest,
        recipient_kind=RecipientKind.SUPERVISORS.value,
        kind=NotificationKind.HOTSPOT.value,
        message=_hotspot_message(hotspot),
        now=now,
    )
    row.notified_at = now


def _same(column: Any, value: str | None) -> Any:
    return column.is_(None) if value is None else column == value


def _hotspot_message(hotspot: Hotspot) -> str:
    where = hotspot.place or "未知地点"
    what = hotspot.category or "未分类"
    if hotspot.kind == "volume":
        return (
            f"热点预警：{where} 的 {what} 类诉求近期 {hotspot.count} 件，"
            f"通常约 {hotspot.expected:g} 件"
        )
    return f"热点预警：{where} 的同一问题已有 {hotspot.distinct_callers} 位不同来电人反映"


def hotspot_appeal_ids(*, db_session: Session, hotspot: HotspotRow) -> list[int]:
    return list(
        db_session.scalars(
            select(HotspotAppealRow.work_order_id)
            .where(HotspotAppealRow.hotspot_id == hotspot.id)
            .order_by(HotspotAppealRow.work_order_id)
        )
    )


def get_or_raise(*, db_session: Session, hotspot_id: int) -> HotspotRow:
    row = db_session.get(HotspotRow, hotspot_id)
    if row is None:
        raise NotFound(f"hotspot {hotspot_id} not found")
    return row


def latest(*, db_session: Session, limit: int) -> list[HotspotRow]:
    """Hotspots, most recently seen first."""
    return list(
        db_session.scalars(
            select(HotspotRow)
            .order_by(HotspotRow.last_seen.desc(), HotspotRow.score.desc(), HotspotRow.id.desc())
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class HotspotNames:
    """What a list of hotspots shows besides the rows: appeal numbers, place and category names."""

    appeal_numbers: dict[int, list[str]]
    place_names: dict[str, str]
    category_paths: dict[str, str]


def names_of(*, db_session: Session, rows: Sequence[HotspotRow]) -> HotspotNames:
    ids = [row.id for row in rows]
    numbers: dict[int, list[str]] = {i: [] for i in ids}
    if ids:
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
    return HotspotNames(numbers, names, paths)
