"""Rate limits over the shared counters (`rate_counters`), the same on SQLite and PostgreSQL.

A limit allows `limit` hits per `window` seconds for each key. It is estimated over a sliding
window from two fixed ones: the current window's count plus the previous window's count weighted
by the share of it still inside the sliding window (so a client cannot send twice the limit
across a window boundary). The estimate takes the previous window's hits as evenly spread, so
after a burst the wait can be up to one and a half windows. Counting is one atomic upsert
(`INSERT ... ON CONFLICT DO UPDATE`), so concurrent requests in any number of processes never
overshoot the limit.

    retry_after = hit(db_session=s, limit=Limit("intake.caller", 10, 60), key="phone:138...")
    if retry_after is not None: ...  # refused: try again in `retry_after` seconds

`hit` counts a hit only when it is allowed; `exceeded` only reads, and `record` always counts
(failed sign-ins are recorded, and checked before the next password is hashed). Keys are
truncated to 128 characters; callers hash keys that are secret (API keys). Like every service
function these only flush: call them in a short transaction of their own (`Database.session()`),
so that the count is committed whatever the request does next.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.throttle.models import RateCounter

__all__ = ["Limit", "exceeded", "hit", "record", "reset"]

PRUNE_PROBABILITY = 0.01
"""Share of hits that also delete expired counters (the table stays small without a job)."""


@dataclass(frozen=True)
class Limit:
    scope: str
    limit: int
    window: float  # seconds

    @property
    def size(self) -> int:
        """The window in whole seconds (the counters' windows start at whole seconds)."""
        return max(math.ceil(self.window), 1)

    def windows(self, now: float) -> tuple[int, int, float]:
        """(start of the current window, start of the previous one, the previous one's weight)."""
        size = self.size
        current = int(now // size) * size
        weight = 1.0 - (now - current) / size
        return current, current - size, weight


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def _counts(db_session: Session, limit: Limit, key: str, now: float) -> tuple[int, int, float]:
    current, previous, weight = limit.windows(now)
    rows = dict(
        db_session.execute(
            select(RateCounter.window_start, RateCounter.count).where(
                RateCounter.scope == limit.scope,
                RateCounter.key == key[:128],
                RateCounter.window_start.in_((current, previous)),
            )
        ).all()
    )
    return rows.get(current, 0), rows.get(previous, 0), weight


def _retry_after(limit: Limit, current: int, previous: int, weight: float, now: float) -> float:
    """Seconds until one more hit would be allowed (at least one)."""
    size = limit.size
    start, _, _ = limit.windows(now)
    until_next_window = start + size - now
    if current < limit.limit and previous > 0:
        # within this window only the previous one's weight falls
        wait = (weight - (limit.limit - current - 1) / previous) * size
        if wait < until_next_window:
            return max(math.ceil(wait), 1)
    # in the next window this one is the previous: wait until enough of it has slid out
    later = size * (1 - (limit.limit - 1) / current) if current >= limit.limit else 0.0
    return max(math.ceil(until_next_window + later), 1)


def _upsert(db_session: Session, limit: Limit, key: str, now: float, *, cap: int | None) -> bool:
    """Add one to the current window's counter (only below `cap` if given); whether it did."""
    current, _, _ = limit.windows(now)
    size = limit.size
    dialect = sqlite if db_session.get_bind().dialect.name == "sqlite" else postgresql
    statement = dialect.insert(RateCounter).values(
        scope=limit.scope,
        key=key[:128],
        window_start=current,
        count=1,
        expires_at=current + 2 * size,
    )
    table = RateCounter.__table__
    upsert = statement.on_conflict_do_update(
        index_elements=["scope", "key", "window_start"],
        set_={"count": table.c.count + 1},
        where=None if cap is None else table.c.count < cap,
    ).returning(table.c.count)
    counted = db_session.execute(upsert).first() is not None
    if random.random() < PRUNE_PROBABILITY:  # pruning, not security
        db_session.execute(delete(RateCounter).where(RateCounter.expires_at < int(now)))
    return counted


def hit(*, db_session: Session, limit: Limit, key: str, now: float | None = None) -> float | None:
    """Count one hit if allowed and return None; else the seconds to wait (nothing counted)."""
    at = _now(now)
    current, previous, weight = _counts(db_session, limit, key, at)
    # hits of the current window still allowed, given the previous window's weighted count
    cap = math.floor(limit.limit - previous * weight)
    if cap > 0 and _upsert(db_session, limit, key, at, cap=cap):
        return None
    current, previous, weight = _counts(db_session, limit, key, at)
    return _retry_after(limit, current, previous, weight, at)


def exceeded(
    *, db_session: Session, limit: Limit, key: str, now: float | None = None
) -> float | None:
    """None while the key has fewer than `limit` recorded hits, else the seconds to wait."""
    at = _now(now)
    current, previous, weight = _counts(db_session, limit, key, at)
    if current + previous * weight < limit.limit:
        return None
    return _retry_after(limit, current, previous, weight, at)


def record(*, db_session: Session, limit: Limit, key: str, now: float | None = None) -> None:
    """Count one hit, allowed or not."""
    _upsert(db_session, limit, key, _now(now), cap=None)


def reset(*, db_session: Session, limit: Limit, key: str) -> None:
    """Forget the key's hits (a successful sign-in clears the account's failures)."""
    db_session.execute(
        delete(RateCounter).where(RateCounter.scope == limit.scope, RateCounter.key == key[:128])
    )
