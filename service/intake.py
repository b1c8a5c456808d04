"""Intake: store the appeal first, then classify, check for duplicates and route it in a second
transaction.

The appeal is committed before the classifier runs, so a crash or a missing model never loses
it: it stays `received` and `dispatch.triage_pending` routes it later.

Duplicate detection (并单) runs between classification and routing: the new order is compared
with the orders of the last ``duplicate_window_days`` through a process-wide
:class:`DuplicateDetector` (one :class:`router.duplicates.DuplicateIndex` per database). The
index is a cache, the database the truth: it is filled from the database on first use and,
before every check, caught up with the orders any process committed since (by receive time,
with a slack for transactions that commit late), so API processes, channel consumers and
workers all see each other's appeals. Candidates are stored on the order for the agent; above
``duplicate_auto_merge_threshold``, with ``duplicate_auto_merge`` on, the order is merged into
its master instead of being routed. A failing check is logged and never blocks intake.
"""

from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from classifier.errors import ClassifierError
from router import merges, workorders
from router.catalogue import default_catalogue
from router.duplicates import (
    Action,
    AppealRecord,
    DuplicateCheck,
    DuplicateConfig,
    DuplicateIndex,
)
from router.merges import DuplicateCandidate
from router.models import Appeal, WorkOrder
from router.orm import utcnow
from router.routing import RouteDecision, RoutingPolicy
from service import classification
from service.config import Settings
from service.db import Database
from service.dispatching import record_deliveries

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IntakeResult:
    number: str
    state: str
    created: bool
    decision: RouteDecision | None
    suggestion: dict[str, object] | None
    duplicate_action: str = "none"
    """``none``, ``suggest`` (candidates stored for the agent) or ``auto_merge`` (merged)."""
    master_number: str | None = None
    """The master order when the appeal was merged automatically."""


# ----------------------------------------------------------------------------- duplicates

CATCH_UP_SLACK = timedelta(minutes=2)
"""How late a transaction may commit an appeal and still be caught up by other processes."""
RESCAN_EVERY = timedelta(seconds=10)
"""How often the slack window is read again (between rescans only new ids are read)."""
PRUNE_EVERY = timedelta(hours=1)
ACTIVE_MASTER_STATES = frozenset(
    {"received", "review", "dispatched", "accepted", "extension_requested", "returned", "reopened"}
)
"""Masters an appeal may be merged into automatically: a closed problem needs a person."""


def duplicate_config(settings: Settings) -> DuplicateConfig:
    auto = max(settings.duplicate_auto_merge_threshold, settings.duplicate_suggest_threshold)
    return DuplicateConfig(
        suggest_threshold=settings.duplicate_suggest_threshold,
        auto_merge_threshold=auto if settings.duplicate_auto_merge else None,
        candidate_floor=min(0.2, settings.duplicate_suggest_threshold),
        window=timedelta(days=settings.duplicate_window_days),
    )


class DuplicateDetector:
    """The recent orders of one database in a :class:`DuplicateIndex`, kept in step with it.

    Thread-safe (one lock around catch-up, check and add). The first check loads the whole
    window (about a minute and 1 GiB at 1.5 million orders); later ones read only the orders
    received since the previous check.
    """

    def __init__(self, config: DuplicateConfig) -> None:
        self.config = config
        self.index = DuplicateIndex(config)
        self._lock = threading.Lock()
        self._since: datetime | None = None  # the last full (re)scan
        self._max_id = 0
        self._seen: dict[int, datetime] = {}
        self._pruned_at: datetime | None = None

    def check(
        self, *, db_session: Session, work_order: WorkOrder, record: AppealRecord | None = None
    ) -> DuplicateCheck:
        """Check `work_order` (its appeal already committed) and add it to the index.

        `record` is the order's :func:`merges.record_of`, when the caller has it already."""
        if record is None:
            record = merges.record_of(work_order, default_catalogue())
        work_order.site = record.site or ""  # so that other processes need no gazetteer
        with self._lock:
            now = utcnow()
            # An order another check already caught up (a late triage) is not added twice.
            indexed = work_order.id in self._seen
            self._seen[work_order.id] = record.received_at
            self._catch_up(db_session, now)
            result = self.index.check(record)
            if not indexed:
                self.index.add(record)
            return result

    def warm_up(self, database: Database) -> int:
        """Load the window now (say in a thread at start-up, so that no appeal waits for it);
        returns how many orders were added."""
        with self._lock, database.session() as db_session:
            before = len(self.index)
            self._catch_up(db_session, utcnow())
            return len(self.index) - before

    def _catch_up(self, db_session: Session, now: datetime) -> None:
        """Add the orders other processes committed since the last check.

        Most checks read only the ids above the highest one seen (cheap at any rate). Every
        RESCAN_EVERY the orders received since the previous rescan minus CATCH_UP_SLACK are read
        again, for the few whose lower id was committed after a higher one.
        """
        catalogue = default_catalogue()
        rescan = self._since is None or now - self._since >= RESCAN_EVERY
        if self._since is None:
            condition = Appeal.received_at >= now - self.config.window
        elif rescan:
            condition = Appeal.received_at >= self._since - CATCH_UP_SLACK
        else:
            condition = WorkOrder.id > self._max_id
        rows = db_session.execute(
            select(*merges.RECORD_COLUMNS)
            .join(Appeal, Appeal.id == WorkOrder.appeal_id)
            .where(condition)
            .order_by(Appeal.received_at, WorkOrder.id)
            .execution_options(yield_per=5_000)
        )
        pending = []
        for row in rows:
            self._max_id = max(self._max_id, row[0])
            if row[0] in self._seen:
                continue
            fields = dict(zip(_RECORD_FIELDS, row, strict=True))
            pending.append(merges.appeal_record(**fields, catalogue=catalogue))
        # Only now (nothing failed) are they marked as seen.
        self.index.extend(pending)
        self._seen.update((record.id, record.received_at) for record in pending)
        if rescan:
            self._since = now
        if len(self._seen) > 1_000 and self._since is not None:
            # The next rescan reads from _since - CATCH_UP_SLACK on: older ids cannot come back.
            horizon = self._since - CATCH_UP_SLACK
            self._seen = {i: at for i, at in self._seen.items() if at >= horizon}
        if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY:
            self.index.prune(now)
            self._pruned_at = now


_RECORD_FIELDS = (
    "work_order_id",
    "received_at",
    "text",
    "title",
    "address",
    "latitude",
    "longitude",
    "caller_phone",
    "category_code",
    "street_code",
    "district_code",
    "site",
)
_detectors: weakref.WeakKeyDictionary[Database, DuplicateDetector] = weakref.WeakKeyDictionary()
_detectors_lock = threading.Lock()


def detector_for(database: Database, settings: Settings) -> DuplicateDetector:
    """This process's detector for `database` (rebuilt when the duplicate settings change)."""
    config = duplicate_config(settings)
    with _detectors_lock:
        detector = _detectors.get(database)
        if detector is None or detector.config != config:
            detector = _detectors[database] = DuplicateDetector(config)
        return detector


def warm_duplicate_index(database: Database, settings: Settings) -> int:
    """Fill this process's duplicate index from the database ahead of the first appeal."""
    return detector_for(database, settings).warm_up(database)


def check_duplicates(
    *,
    db_session: Session,
    work_order: WorkOrder,
    settings: Settings,
    database: Database | None = None,
) -> DuplicateCheck | None:
    """Check a new order against the recent ones and store the candidates; None on failure."""
    outcome = _check_duplicates(
        db_session=db_session, work_order=work_order, settings=settings, database=database
    )
    return None if outcome is None else outcome[0]


def _check_duplicates(
    *,
    db_session: Session,
    work_order: WorkOrder,
    settings: Settings,
    database: Database | None = None,
) -> tuple[DuplicateCheck, list[DuplicateCandidate]] | None:
    """`check_duplicates`, also returning the stored candidate rows."""
    from service.runtime import get_database

    try:
        detector = detector_for(database or get_database(), settings)
        # The site is set before the savepoint, so that the routing fields and the site go out
        # in one UPDATE.
        record = merges.record_of(work_order, default_catalogue())
        work_order.site = record.site or ""
        with db_session.begin_nested():
            check = detector.check(db_session=db_session, work_order=work_order, record=record)
            rows = merges.store_check(db_session=db_session, work_order=work_order, check=check)
    except Exception:  # duplicate detection is advice: it must never block an appeal
        log.exception("duplicate check failed for work order %s", work_order.number)
        return None
    return check, rows


def triage(
    *,
    db_session: Session,
    work_order: WorkOrder,
    settings: Settings,
    database: Database | None = None,
) -> RouteDecision:
    """Classify one `received` order, check it for duplicates, then merge or route it (the
    caller owns the transaction)."""
    return _triage(
        db_session=db_session, work_order=work_order, settings=settings, database=database
    )[0]


def _triage(
    *,
    db_session: Session,
    work_order: WorkOrder,
    settings: Settings,
    database: Database | None = None,
) -> tuple[RouteDecision, list[DuplicateCandidate] | None]:
    """`triage`, also returning the stored duplicate candidates (None when the check failed)."""
    appeal = work_order.appeal
    decision, version = classification.suggest(
        model_dir=settings.model_dir,
        text=appeal.text,
        title=appeal.title,
        address=appeal.address,
        policy=RoutingPolicy(auto_dispatch_threshold=settings.auto_dispatch_threshold),
    )
    # Kept on a merged order, so that an unmerge finds it ready for review.
    workorders.store_route(work_order, decision, version)
    outcome = _check_duplicates(
        db_session=db_session, work_order=work_order, settings=settings, database=database
    )
    check, rows = outcome if outcome is not None else (None, None)
    if check is not None and _auto_merge(db_session, work_order, check):
        return decision, rows
    if check is not None and check.action is Action.AUTO_MERGE:
        # Not merged after all (the master is closed, say): the agent decides.
        for candidate in rows or ():
            if candidate.action == Action.AUTO_MERGE.value:
                candidate.action = Action.SUGGEST.value
    workorders.apply_route(
        db_session=db_session, work_order=work_order, decision=decision, model_version=version
    )
    if work_order.state == "dispatched":
        record_deliveries(db_session=db_session, work_order=work_order, settings=settings)
    return decision, rows


def _auto_merge(db_session: Session, work_order: WorkOrder, check: DuplicateCheck) -> bool:
    if check.action is not Action.AUTO_MERGE or check.master_id is None:
        return False
    candidate = db_session.get(WorkOrder, check.master_id)
    if candidate is None:
        return False
    master = merges.resolve_master(db_session=db_session, work_order=candidate)
    if master.state not in ACTIVE_MASTER_STATES or master.id == work_order.id:
        return False
    merges.merge_work_order(
        db_session=db_session,
        work_order=work_order,
        into=master,
        actor="duplicates",
        role="system",
        score=check.candidates[0].score if check.candidates else None,
        automatic=True,
        note="自动并单：与已有工单高度相似",
    )
    return True


def submit(
    *,
    database: Database,
    settings: Settings,
    appeal: workorders.AppealInput,
    actor: str,
    role: str,
) -> IntakeResult:
    with database.session() as db_session:
        order, created = workorders.receive_appeal(
            db_session=db_session, appeal=appeal, actor=actor, role=role
        )
        order_id = order.id
    if not created:
        with database.session() as db_session:
            order = db_session.get_one(WorkOrder, order_id)
            return IntakeResult(order.number, order.state, False, None, order.suggestion or None)
    decision = None
    action, master_number = "none", None
    try:
        with database.session() as db_session:
            # The order (locked) and its appeal in one statement.
            order = db_session.execute(
                select(WorkOrder)
                .options(joinedload(WorkOrder.appeal, innerjoin=True))
                .where(WorkOrder.id == order_id)
                .with_for_update(key_share=True, of=WorkOrder)
            ).scalar_one()
            rows = None
            if order.state == "received":
                decision, rows = _triage(
                    db_session=db_session, work_order=order, settings=settings, database=database
                )
            number, state = order.number, order.state
            action, master_number = _duplicate_outcome(db_session, order, rows)
    except ClassifierError as exc:
        log.warning("appeal stored as %s but not routed yet: %s", order_id, exc)
        with database.session() as db_session:
            order = db_session.get_one(WorkOrder, order_id)
            number, state = order.number, order.state
    return IntakeResult(
        number,
        state,
        True,
        decision,
        decision.to_dict() if decision else None,
        duplicate_action=action,
        master_number=master_number,
    )


def _duplicate_outcome(
    db_session: Session, order: WorkOrder, rows: list[DuplicateCandidate] | None = None
) -> tuple[str, str | None]:
    """The duplicate action taken on `order`; `rows` are the candidates this transaction stored
    (read from the database when not given)."""
    if order.state == "merged" and order.master_id is not None:
        return "auto_merge", db_session.get_one(WorkOrder, order.master_id).number
    if rows is None:
        stored = [c for c, _ in merges.candidates_of(db_session=db_session, work_order=order)]
    else:  # the order of candidates_of: best score first
        stored = sorted(rows, key=lambda c: (-c.score, c.id))
    if stored and stored[0].action != "none":
        return stored[0].action, None
    return "none", None


def triage_pending(
    *, db_session: Session, settings: Settings, older_than: timedelta = timedelta(seconds=30)
) -> int:
    """Route orders still `received` after `older_than` (the caller owns the transaction)."""
    cutoff = utcnow() - older_than
    query = (
        select(WorkOrder)
        .where(WorkOrder.state == "received", WorkOrder.created_at <= cutoff)
        .order_by(WorkOrder.id)
        .limit(200)
    )
    if db_session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    routed = 0
    for order in db_session.scalars(query):
        triage(db_session=db_session, work_order=order, settings=settings)
        routed += 1
    return routed
