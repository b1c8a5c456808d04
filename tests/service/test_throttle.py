"""The shared rate-limit store: counted in the database, so every process sees one count."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from service.db import Database
from service.throttle import service as throttle
from service.throttle.models import RateCounter

LIMIT = throttle.Limit("test.scope", 3, 60)
T0 = 1_800_000_000.0  # the start of a window (a multiple of 60)


@pytest.fixture
def databases(database_url: str) -> Iterator[tuple[Database, Database]]:
    """Two engines on one database: two API processes."""
    first, second = Database(database_url), Database(database_url)
    yield first, second
    first.dispose()
    second.dispose()


def hit(database: Database, key: str, now: float, limit: throttle.Limit = LIMIT) -> float | None:
    with database.session() as db_session:
        return throttle.hit(db_session=db_session, limit=limit, key=key, now=now)


def test_the_limit_holds_across_processes_and_keys_are_counted_apart(
    databases: tuple[Database, Database],
) -> None:
    first, second = databases
    assert hit(first, "ip:1", T0) is None
    assert hit(second, "ip:1", T0 + 1) is None
    assert hit(first, "ip:1", T0 + 2) is None
    refused = hit(second, "ip:1", T0 + 3)
    assert refused is not None and 1 <= refused <= 120
    assert hit(first, "ip:2", T0 + 3) is None, "another key has its own count"
    assert hit(first, "ip:1", T0 + 4, throttle.Limit("other.scope", 3, 60)) is None


def test_the_window_slides_so_a_boundary_does_not_double_the_limit(
    databases: tuple[Database, Database],
) -> None:
    database, _ = databases
    for second in (50, 55, 58):
        assert hit(database, "phone:1", T0 + second) is None
    # just after the boundary nearly all of the previous window still counts
    assert hit(database, "phone:1", T0 + 61) is not None
    # half a window later, half of it: one more hit is allowed, then none
    assert hit(database, "phone:1", T0 + 90) is None
    assert hit(database, "phone:1", T0 + 91) is not None
    # two windows later everything has slid out
    assert [hit(database, "phone:1", T0 + 180 + i) for i in range(3)] == [None, None, None]


def test_concurrent_hits_never_overshoot_the_limit(databases: tuple[Database, Database]) -> None:
    first, second = databases
    limit = throttle.Limit("test.race", 10, 3600)
    now = 1_800_000_000.0
    results: list[float | None] = []
    lock = threading.Lock()

    def worker(database: Database) -> None:
        for _ in range(10):
            outcome = hit(database, "ip:9", now, limit)
            with lock:
                results.append(outcome)

    threads = [threading.Thread(target=worker, args=(db,)) for db in (first, second) * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(result is None for result in results) == 10
    with first.session() as db_session:
        counted = db_session.scalar(
            select(func.sum(RateCounter.count)).where(RateCounter.scope == "test.race")
        )
    assert counted == 10


def test_recorded_failures_block_until_reset(databases: tuple[Database, Database]) -> None:
    database, _ = databases
    with database.session() as db_session:
        for _ in range(3):
            assert throttle.exceeded(db_session=db_session, limit=LIMIT, key="a", now=T0) is None
            throttle.record(db_session=db_session, limit=LIMIT, key="a", now=T0)
        assert throttle.exceeded(db_session=db_session, limit=LIMIT, key="a", now=T0) is not None
        throttle.reset(db_session=db_session, limit=LIMIT, key="a")
        assert throttle.exceeded(db_session=db_session, limit=LIMIT, key="a", now=T0) is None
