"""Merged appeals (并单) and duplicate suggestions: the rules over their tables.

A merge moves a work order to state ``merged`` (through
:func:`router.workorders.workflow.perform`) and
points its ``master_id`` at the order that is handled; the merged order keeps its own appeal
and caller, so that every caller of a group gets the callback (the group is the master plus
the orders whose ``master_id`` is the master). Unmerging puts the order back where it was.
Both sides get an event in their log, and :class:`MergeRecord` keeps the append-only history
with the score and whether it was automatic.

Duplicate detection results are stored per new order as :class:`DuplicateCandidate` rows (what
the agent is shown); :func:`store_check` also links and flags repeat callers
(``WorkOrder.repeat_of_id``).

Functions only flush; the request or task wrapper commits. Errors (from :mod:`router.errors`):
``Conflict`` for an illegal merge (itself, a chain, a wrong state), ``NotFound`` when an order
is missing, ``Forbidden`` for the wrong role."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import (
    select,
)
from sqlalchemy.orm import Session

from router.catalogue import Catalogue
from router.duplicates.index import (
    AppealRecord,
    CallerRecord,
    DuplicateCheck,
    MergeGroup,
)
from router.duplicates.models import DuplicateCandidate, MergeRecord
from router.errors import Conflict
from router.orm import utcnow
from router.workorders import queries
from router.workorders import service as workorders
from router.workorders.models import Appeal, WorkOrder, WorkOrderEvent
from router.workorders.workflow import State

__all__ = [
    "appeal_record",
    "caller_key",
    "candidates_of",
    "members_of",
    "merge_group",
    "merge_work_order",
    "record_of",
    "resolve_master",
    "store_check",
    "unmerge_work_order",
]


MERGE_MEMBER = "merge_member"
"""Event action on the master when an order is merged into it (its state does not change)."""
UNMERGE_MEMBER = "unmerge_member"


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
    if work_order.state == State.MERGED and work_order.master_id is not None:
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
    if master.state == State.MERGED:
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
                previous_state=State.MERGED,
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
    if work_order.state != State.MERGED or work_order.master_id is None:
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
    previous = last_merge.previous_state if last_merge is not None else State.REVIEW
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
    if previous == State.DISPATCHED and work_order.department_code:
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
            previous_state=State.MERGED,
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


def candidate_score(
    *, db_session: Session, work_order: WorkOrder, candidate: WorkOrder
) -> float | None:
    """The duplicate score the check gave `candidate` for `work_order` (None if it found none)."""
    return db_session.scalar(
        select(DuplicateCandidate.score).where(
            DuplicateCandidate.work_order_id == work_order.id,
            DuplicateCandidate.candidate_id == candidate.id,
        )
    )


def duplicate_info(*, db_session: Session, work_order: WorkOrder) -> dict[str, Any]:
    """Merge group, repeat-caller link and the best duplicate candidate of an order."""
    members = members_of(db_session=db_session, master=work_order)
    stored = candidates_of(db_session=db_session, work_order=work_order)
    best = None
    if stored:
        candidate, other = stored[0]
        best = {"number": other.number, "score": candidate.score, "action": candidate.action}
    return {
        "master_number": queries.number_of(
            db_session=db_session, work_order_id=work_order.master_id
        ),
        "merged_numbers": [m.number for m in members],
        "repeat_of": queries.number_of(
            db_session=db_session, work_order_id=work_order.repeat_of_id
        ),
        "duplicate_suggestion": best,
    }
