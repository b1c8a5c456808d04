"""Merged appeals (并单), duplicate suggestions and hotspots (热点): tables and their rules.

A merge moves a work order to state ``merged`` (through :func:`router.workflow.perform`) and
points its ``master_id`` at the order that is handled; the merged order keeps its own appeal
and caller, so that every caller of a group gets the callback (the group is the master plus
the orders whose ``master_id`` is the master). Unmerging puts the order back where it was.
Both sides get an event in their log, and :class:`MergeRecord` keeps the append-only history
with the score and whether it was automatic.

Duplicate detection results are stored per new order as :class:`DuplicateCandidate` rows (what
the agent is shown); :func:`store_check` also links and flags repeat callers
(``WorkOrder.repeat_of_id``). Hotspots found by the periodic scan are :class:`HotspotRow` with
their appeals (:class:`HotspotAppealRow`).

Functions only flush; the request or task wrapper commits. Errors (from :mod:`router.errors`):
``Conflict`` for an illegal merge (itself, a chain, a wrong state), ``NotFound`` when an order
is missing, ``Forbidden`` for the wrong role.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from router import workorders
from router.catalogue import Catalogue
from router.duplicates import (
    AppealRecord,
    CallerRecord,
    DuplicateCheck,
    MergeGroup,
    cluster_links,
)
from router.errors import Conflict, NotFound
from router.hotspots import Hotspot, HotspotAppeal, HotspotConfig, detect_hotspots
from router.models import Appeal, WorkOrder, WorkOrderEvent
from router.notifications import NotificationKind, RecipientKind, notify
from router.orm import Base, BigId, utcnow

__all__ = [
    "DuplicateCandidate",
    "HotspotAppealRow",
    "HotspotRow",
    "MergeRecord",
    "ScanResult",
    "appeal_record",
    "caller_key",
    "candidates_of",
    "hotspot_appeal_ids",
    "members_of",
    "merge_group",
    "merge_work_order",
    "record_of",
    "resolve_master",
    "scan_hotspots",
    "store_check",
    "unmerge_work_order",
]


MERGE_MEMBER = "merge_member"
"""Event action on the master when an order is merged into it (its state does not change)."""
UNMERGE_MEMBER = "unmerge_member"


class MergeRecord(Base):
    """One merge or unmerge, append-only: who, when, into which master, from which state."""

    __tablename__ = "merge_records"
    __table_args__ = (CheckConstraint("kind IN ('merge', 'unmerge')", name="kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(8))
    master_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id"), index=True)
    work_order_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id"), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    automatic: Mapped[bool] = mapped_column(Boolean, default=False)
    score: Mapped[float | None] = mapped_column(Float)
    previous_state: Mapped[str] = mapped_column(String(24))
    """The merged order's state before the merge (unmerge restores it) or before the unmerge."""
    note: Mapped[str] = mapped_column(Text, default="")


class DuplicateCandidate(Base):
    """An earlier order that duplicate detection found similar to a new one, and why."""

    __tablename__ = "duplicate_candidates"
    __table_args__ = (UniqueConstraint("work_order_id", "candidate_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    work_order_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id"), index=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id"), index=True)
    score: Mapped[float] = mapped_column(Float)
    text_similarity: Mapped[float] = mapped_column(Float)
    action: Mapped[str] = mapped_column(String(16))
    """``suggest`` / ``auto_merge`` for the best candidate above the thresholds, else ``none``."""
    place_relation: Mapped[str] = mapped_column(String(16))
    category_relation: Mapped[str] = mapped_column(String(16))
    same_caller: Mapped[bool] = mapped_column(Boolean, default=False)
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class HotspotRow(Base):
    """A place x category with a surge of appeals, or a problem reported by many callers."""

    __tablename__ = "hotspots"
    __table_args__ = (
        CheckConstraint("kind IN ('volume', 'many_callers')", name="kind"),
        Index("ix_hotspots_key", "kind", "place_code", "category_code", "last_seen"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    place_code: Mapped[str | None] = mapped_column(String(32))
    category_code: Mapped[str | None] = mapped_column(String(16))
    count: Mapped[int] = mapped_column(Integer)
    distinct_callers: Mapped[int] = mapped_column(Integer, default=0)
    baseline: Mapped[float] = mapped_column(Float, default=0.0)
    """The expected count from the cell's usual level (volume hotspots)."""
    score: Mapped[float] = mapped_column(Float)
    p_value: Mapped[float] = mapped_column(Float, default=1.0)
    trend: Mapped[list[Any]] = mapped_column(JSON, default=list)
    """[{"at": ISO bucket start, "count": n}], oldest first."""
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    notified_at: Mapped[datetime | None]


class HotspotAppealRow(Base):
    """An order that belongs to a hotspot."""

    __tablename__ = "hotspot_appeals"

    hotspot_id: Mapped[int] = mapped_column(ForeignKey("hotspots.id"), primary_key=True)
    work_order_id: Mapped[int] = mapped_column(
        ForeignKey("work_orders.id"), primary_key=True, index=True
    )


# ----------------------------------------------------------------------------- records

_DIGITS = re.compile(r"\D+")
_DISTRICT = re.compile(r"[A-Z]\d*[区县市]")
SITE_KINDS = ("compound", "landmark", "road")


def caller_key(phone: str | None) -> str | None:
    """A stable, non-reversible-at-a-glance key of a phone number (digits only), or None."""
    digits = _DIGITS.sub("", phone or "")
    if len(digits) < 3:
        return None
    return hashlib.sha256(digits.encode()).hexdigest()[:20]


def appeal_record(
    *,
    work_order_id: int,
    received_at: datetime,
    text: str,
    title: str = "",
    address: str | None = None,
    latitude: float | None = None,
    longitude: float | None = None,
    caller_phone: str | None = None,
    category_code: str | None = None,
    street_code: str | None = None,
    district_code: str | None = None,
    site: str | None = None,
    catalogue: Catalogue | None = None,
) -> AppealRecord:
    """What duplicate detection needs of one order: text, time, category, place and caller.

    The place is the most specific one the gazetteer finds in the address, else in the title,
    else in the text; the order's routed street and district take precedence over the ones the
    gazetteer implies. A `site` given (as stored on the order) skips the gazetteer.
    """
    street, district = street_code, district_code
    names: set[str] = set(_DISTRICT.findall(title + text))
    if site is not None:  # resolved before ('' = no site): no gazetteer look-up again
        site = site or None
        if site:
            names.add(site)
    elif catalogue is not None:
        match = None
        for source in (address, title, text):
            if source:
                match = catalogue.resolve_place(source)
                if match is not None:
                    break
        if match is not None:
            if match.kind in SITE_KINDS:
                site = match.name
            street = street or match.street_code
            district = district or match.district_code
            names.add(match.name)
    return AppealRecord(
        id=work_order_id,
        received_at=received_at,
        text=text,
        title=title,
        category_code=category_code,
        site=site,
        street=street,
        district=district,
        latitude=latitude,
        longitude=longitude,
        caller=caller_key(caller_phone),
        place_names=tuple(sorted(names)),
    )


RECORD_COLUMNS = (
    WorkOrder.id,
    Appeal.received_at,
    Appeal.text,
    Appeal.title,
    Appeal.address,
    Appeal.latitude,
    Appeal.longitude,
    Appeal.caller_phone,
    WorkOrder.category_code,
    WorkOrder.street_code,
    WorkOrder.district_code,
    WorkOrder.site,
)
"""The columns :func:`appeal_record` reads, in its keyword order (select them joined)."""


def record_of(work_order: WorkOrder, catalogue: Catalogue | None) -> AppealRecord:
    appeal = work_order.appeal
    return appeal_record(
        work_order_id=work_order.id,
        received_at=appeal.received_at,
        text=appeal.text,
        title=appeal.title,
        address=appeal.address,
        latitude=appeal.latitude,
        longitude=appeal.longitude,
        caller_phone=appeal.caller_phone,
        category_code=work_order.category_code,
        street_code=work_order.street_code,
        district_code=work_order.district_code,
        site=work_order.site,
        catalogue=catalogue,
    )


# ----------------------------------------------------------------------------- suggestions


def store_check(
    *,
    db_session: Session,
    work_order: WorkOrder,
    check: DuplicateCheck,
    now: datetime | None = None,
) -> list[DuplicateCandidate]:
    """Store a check's candidates on the new order (replacing earlier ones) and link it to the
    latest earlier order of the same caller about the same problem (repeat caller, 重复来电).

    Candidates whose order no longer exists (a stale index) are skipped."""
    return store_checks(db_session=db_session, checks=[(work_order, check)], now=now)[0]


def store_checks(
    *,
    db_session: Session,
    checks: Sequence[tuple[WorkOrder, DuplicateCheck]],
    now: datetime | None = None,
    fresh: bool = False,
) -> list[list[DuplicateCandidate]]:
    """`store_check` for several orders with one existence query and one flush. `fresh`: the
    orders were created in this transaction and have no earlier candidates to replace."""
    at = now or utcnow()
    ids = {c.appeal_id for _, check in checks for c in check.candidates}
    ids |= {i for _, check in checks for i in check.repeat_of}
    existing = (
        set(db_session.scalars(select(WorkOrder.id).where(WorkOrder.id.in_(ids)))) if ids else set()
    )
    if not fresh:
        orders = [work_order.id for work_order, _ in checks]
        for old in db_session.scalars(
            select(DuplicateCandidate).where(DuplicateCandidate.work_order_id.in_(orders))
        ):
            db_session.delete(old)
        db_session.flush()
    stored_rows = []
    for work_order, check in checks:
        rows = []
        stored: set[int] = set()
        for rank, candidate in enumerate(check.candidates):
            if candidate.appeal_id not in existing or candidate.appeal_id in stored:
                continue
            if candidate.appeal_id == work_order.id:
                continue
            stored.add(candidate.appeal_id)
            action = check.action.value if rank == 0 else "none"
            row = DuplicateCandidate(
                work_order_id=work_order.id,
                candidate_id=candidate.appeal_id,
                score=candidate.score,
                text_similarity=candidate.text_similarity,
                action=action,
                place_relation=candidate.place.value,
                category_relation=candidate.category.value,
                same_caller=candidate.same_caller,
                reasons=list(candidate.reasons),
                created_at=at,
            )
            db_session.add(row)
            rows.append(row)
        repeats = [i for i in check.repeat_of if i in existing and i != work_order.id]
        if repeats:
            work_order.repeat_of_id = max(repeats)  # the latest earlier appeal (ids grow with time)
        stored_rows.append(rows)
    db_session.flush()
    return stored_rows


def candidates_of(
    *, db_session: Session, work_order: WorkOrder
) -> list[tuple[DuplicateCandidate, WorkOrder]]:
    """The stored candidates of an order with their orders, best first."""
    rows = db_session.execute(
        select(DuplicateCandidate, WorkOrder)
        .join(WorkOrder, WorkOrder.id == DuplicateCandidate.candidate_id)
        .where(DuplicateCandidate.work_order_id == work_order.id)
        .order_by(DuplicateCandidate.score.desc(), DuplicateCandidate.id)
    )
    return [(candidate, order) for candidate, order in rows]


# ----------------------------------------------------------------------------- merges


def members_of(*, db_session: Session, master: WorkOrder) -> list[WorkOrder]:
    """The orders merged into `master`, oldest first."""
    return list(
        db_session.scalars(
            select(WorkOrder).where(WorkOrder.master_id == master.id).order_by(WorkOrder.id)
        )
    )


def merge_group(*, db_session: Session, master: WorkOrder) -> MergeGroup:
    """The master and its members as a :class:`MergeGroup` (every caller, for callbacks)."""

    def record(order: WorkOrder) -> CallerRecord:
        appeal = order.appeal
        return CallerRecord(order.id, appeal.caller_phone, appeal.received_at)

    members = members_of(db_session=db_session, master=master)
    return MergeGroup(master=record(master), members=tuple(record(m) for m in members))


def _master_event(
    db_session: Session,
    master: WorkOrder,
    *,
    action: str,
    actor: str,
    role: str,
    at: datetime,
    data: dict[str, Any],
) -> None:
    db_session.add(
        WorkOrderEvent(
            work_order_id=master.id,
            at=at,
            actor=actor,
            role=role,
            action=action,
            from_state=master.state,
            to_state=master.state,
            data=data,
        )
    )


def resolve_master(*, db_session: Session, work_order: WorkOrder) -> WorkOrder:
    """The order that is handled for `work_order`: itself, or its master when it is merged."""
    if work_order.state == "merged" and work_order.master_id is not None:
        return db_session.get_one(WorkOrder, work_order.master_id)
    return work_order


def merge_work_order(
    *,
    db_session: Session,
    work_order: WorkOrder,
    into: WorkOrder,
    actor: str,
    role: str,
    score: float | None = None,
    automatic: bool = False,
    note: str = "",
    now: datetime | None = None,
) -> WorkOrder:
    """Merge `work_order` into `into` (or into its master when `into` is merged); returns the
    master. Orders already merged into `work_order` move to the master too (no chains)."""
    at = now or utcnow()
    master = resolve_master(db_session=db_session, work_order=into)
    if master.id == work_order.id:
        raise Conflict(f"work order {work_order.number} cannot be merged into itself")
    if master.state == "merged":
        raise Conflict(f"work order {master.number} is merged but has no master")
    previous = work_order.state
    data: dict[str, Any] = {"master": master.number}
    if score is not None:
        data["score"] = round(score, 4)
    if automatic:
        data["automatic"] = True
    workorders.act(
        db_session=db_session,
        work_order=work_order,
        action="merge",
        actor=actor,
        role=role,
        reason=note,
        data=data,
        now=at,
    )
    work_order.master_id = master.id
    moved = members_of(db_session=db_session, master=work_order)
    # One record per order joining the master: this one, and the orders merged into it before.
    record = partial(
        MergeRecord, at=at, kind="merge", master_id=master.id, actor=actor, automatic=automatic
    )
    for member in moved:
        member.master_id = master.id
        db_session.add(
            record(
                work_order_id=member.id,
                previous_state="merged",
                note=f"moved with {work_order.number}",
            )
        )
    db_session.add(
        record(work_order_id=work_order.id, score=score, previous_state=previous, note=note)
    )
    _master_event(
        db_session,
        master,
        action=MERGE_MEMBER,
        actor=actor,
        role=role,
        at=at,
        data={
            "member": work_order.number,
            "moved": [m.number for m in moved],
            "automatic": automatic,
            **({"score": round(score, 4)} if score is not None else {}),
        },
    )
    db_session.flush()
    return master


def unmerge_work_order(
    *,
    db_session: Session,
    work_order: WorkOrder,
    actor: str,
    role: str,
    note: str = "",
    now: datetime | None = None,
) -> WorkOrder:
    """Take `work_order` out of its group and put it back where it was before the merge.

    The state machine moves it ``merged -> review``; an order that was ``dispatched`` is then
    dispatched again to the same department with fresh deadlines (the caller records the
    deliveries). ``received`` and ``returned`` orders stay in ``review``, where both would go
    next anyway. Returns the order."""
    at = now or utcnow()
    if work_order.state != "merged" or work_order.master_id is None:
        raise Conflict(
            f"work order {work_order.number} is not merged",
            current_state=work_order.state,
            action="unmerge",
        )
    master = db_session.get_one(WorkOrder, work_order.master_id)
    last_merge = db_session.scalar(
        select(MergeRecord)
        .where(MergeRecord.work_order_id == work_order.id, MergeRecord.kind == "merge")
        .order_by(MergeRecord.id.desc())
        .limit(1)
    )
    previous = last_merge.previous_state if last_merge is not None else "review"
    workorders.act(
        db_session=db_session,
        work_order=work_order,
        action="unmerge",
        actor=actor,
        role=role,
        reason=note,
        data={"master": master.number, "restores": previous},
        now=at,
    )
    work_order.master_id = None
    if previous == "dispatched" and work_order.department_code:
        workorders.act(
            db_session=db_session,
            work_order=work_order,
            action="dispatch",
            actor=actor,
            role=role,
            data={"department_code": work_order.department_code, "after": "unmerge"},
            now=at,
        )
        workorders.restart_department_clock(db_session=db_session, order=work_order, now=at)
    db_session.add(
        MergeRecord(
            at=at,
            kind="unmerge",
            master_id=master.id,
            work_order_id=work_order.id,
            actor=actor,
            previous_state="merged",
            note=note,
        )
    )
    _master_event(
        db_session,
        master,
        action=UNMERGE_MEMBER,
        actor=actor,
        role=role,
        at=at,
        data={"member": work_order.number},
    )
    db_session.flush()
    return work_order


def get_or_raise(*, db_session: Session, work_order_id: int) -> WorkOrder:
    order = db_session.get(WorkOrder, work_order_id)
    if order is None:
        raise NotFound(f"work order {work_order_id} not found")
    return order


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
