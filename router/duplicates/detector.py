"""The duplicate detector of one database: the recent orders in a :class:`DuplicateIndex`, kept
in step with the database.

The index is a cache, the database the truth: it is filled from the database on first use and,
before every check, caught up with the orders any process committed since (by receive time,
with a slack for transactions that commit late), so API processes, channel consumers and
workers all see each other's appeals. One detector per database and process
(:func:`detector_for`).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from router.catalogue import default_catalogue
from router.duplicates import service as merges
from router.duplicates.index import AppealRecord, DuplicateCheck, DuplicateConfig, DuplicateIndex
from router.orm import utcnow
from router.workorders.models import Appeal, WorkOrder

__all__ = ["CATCH_UP_SLACK", "PRUNE_EVERY", "RESCAN_EVERY", "DuplicateDetector", "detector_for"]

CATCH_UP_SLACK = timedelta(minutes=2)
"""How late a transaction may commit an appeal and still be caught up by other processes."""
RESCAN_EVERY = timedelta(seconds=10)
"""How often the slack window is read again (between rescans only new ids are read)."""
PRUNE_EVERY = timedelta(hours=1)


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
        return self.check_many(db_session=db_session, records=[record])[0]

    def check_many(
        self, *, db_session: Session, records: Sequence[AppealRecord]
    ) -> list[DuplicateCheck]:
        """Check the records of new orders in turn, each against the window and the records
        before it, and add them to the index (one catch-up for all of them)."""
        with self._lock:
            now = utcnow()
            # An order another check already caught up (a late triage) is not added twice.
            indexed = [record.id in self._seen for record in records]
            self._seen.update((record.id, record.received_at) for record in records)
            self._catch_up(db_session, now)
            results = []
            for record, known in zip(records, indexed, strict=True):
                results.append(self.index.check(record))
                if not known:
                    self.index.add(record)
            return results

    def warm_up(self, session: Callable[[], AbstractContextManager[Session]]) -> int:
        """Load the window now (say in a thread at start-up, so that no appeal waits for it);
        returns how many orders were added. `session` opens a unit of work on the database."""
        with self._lock, session() as db_session:
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
_detectors: weakref.WeakKeyDictionary[Any, DuplicateDetector] = weakref.WeakKeyDictionary()
_detectors_lock = threading.Lock()


def detector_for(database: Any, config: DuplicateConfig) -> DuplicateDetector:
    """This process's detector for `database` (any weakly referable object standing for one
    database), rebuilt when the configuration changes."""
    with _detectors_lock:
        detector = _detectors.get(database)
        if detector is None or detector.config != config:
            detector = _detectors[database] = DuplicateDetector(config)
        return detector
