"""Hotspots (热点预警): volume far above a cell's usual level, and many distinct callers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from router.errors import InvalidInput
from router.hotspots import service as hotspots_service
from router.hotspots.detection import (
    HotspotAppeal,
    HotspotConfig,
    caller_hotspots,
    detect_hotspots,
    tail_probability,
    volume_hotspots,
)
from router.hotspots.models import HotspotRow

NOW = datetime(2026, 5, 30, 0, 0, tzinfo=UTC)


class Appeals:
    """A factory of appeals with increasing ids."""

    def __init__(self) -> None:
        self.next_id = 1
        self.made: list[HotspotAppeal] = []

    def add(
        self,
        count: int,
        *,
        days_ago: float,
        place: str = "A3-01",
        category: str = "0201",
        caller: str | None = None,
    ) -> list[HotspotAppeal]:
        batch = []
        for i in range(count):
            at = NOW - timedelta(days=days_ago) + timedelta(minutes=10 * i)
            who = caller if caller is not None else f"caller-{self.next_id}"
            batch.append(HotspotAppeal(self.next_id, at, place, category, who))
            self.next_id += 1
        self.made.extend(batch)
        return batch


def test_a_burst_far_above_the_usual_level_is_a_hotspot() -> None:
    appeals = Appeals()
    for day in range(2, 29):
        appeals.add(1, days_ago=day)
    burst = appeals.add(12, days_ago=0.9)
    appeals.add(1, days_ago=0.5, place="A4-02")

    hotspots = detect_hotspots(appeals.made, now=NOW)

    assert len(hotspots) == 1
    hot = hotspots[0]
    assert (hot.kind, hot.place, hot.category, hot.count) == ("volume", "A3-01", "0201", 12)
    assert hot.appeal_ids == tuple(a.id for a in burst)
    assert hot.distinct_callers == 12
    assert hot.expected < 1.5 and hot.p_value < 1e-6 and hot.score > 6
    assert len(hot.trend) == HotspotConfig().buckets
    assert hot.trend[-1][1] == 12 and sum(c for _, c in hot.trend) == 12 + 27


def test_a_busy_cell_at_its_usual_level_is_not_a_hotspot() -> None:
    appeals = Appeals()
    for day in range(1, 29):
        appeals.add(10, days_ago=day + 0.5)
    appeals.add(14, days_ago=0.9)

    assert detect_hotspots(appeals.made, now=NOW) == []


def test_a_few_appeals_in_a_quiet_cell_are_below_the_minimum_count() -> None:
    appeals = Appeals()
    appeals.add(4, days_ago=0.5)

    assert detect_hotspots(appeals.made, now=NOW) == []
    assert detect_hotspots(appeals.made, now=NOW, config=HotspotConfig(min_count=4)) != []


def test_an_overdispersed_baseline_makes_the_same_burst_less_surprising() -> None:
    steady = [10] * 28
    bursty = [0, 20] * 14

    p_steady, expected_steady = tail_probability(25, steady, 1, prior=1.0)
    p_bursty, expected_bursty = tail_probability(25, bursty, 1, prior=1.0)

    assert expected_steady == pytest.approx(expected_bursty)
    assert p_bursty > 100 * p_steady


def test_counts_and_appeals_find_the_same_cells() -> None:
    appeals = Appeals()
    for day in range(2, 29):
        appeals.add(1, days_ago=day)
    appeals.add(12, days_ago=0.9)
    config = HotspotConfig()
    series = [0] * config.buckets
    start = NOW - config.span
    for a in appeals.made:
        series[int((a.received_at - start) / config.bucket)] += 1

    from_counts = volume_hotspots({("A3-01", "0201"): series}, now=NOW, config=config)
    from_appeals = detect_hotspots(appeals.made, now=NOW, config=config)

    assert [(h.place, h.count, h.p_value) for h in from_counts] == [
        (h.place, h.count, h.p_value) for h in from_appeals
    ]
    assert from_counts[0].appeal_ids == ()


def test_a_problem_reported_by_many_distinct_callers_is_a_hotspot() -> None:
    appeals = Appeals()
    crowd = appeals.add(6, days_ago=3)
    one_person = appeals.add(6, days_ago=3, place="A4-02", caller="same-phone")

    clusters = [[a.id for a in crowd], [a.id for a in one_person]]
    hotspots = caller_hotspots(clusters, appeals.made, now=NOW)

    assert len(hotspots) == 1
    hot = hotspots[0]
    assert hot.kind == "many_callers"
    assert hot.distinct_callers == 6 and hot.place == "A3-01"
    assert hot.appeal_ids == tuple(a.id for a in crowd)
    assert sum(c for _, c in hot.trend) == 6


def test_detect_hotspots_adds_many_caller_hotspots_after_volume_ones() -> None:
    appeals = Appeals()
    crowd = appeals.add(5, days_ago=20)

    hotspots = detect_hotspots(appeals.made, now=NOW, clusters=[[a.id for a in crowd]])

    assert [h.kind for h in hotspots] == ["many_callers"]


def test_bad_input_is_rejected() -> None:
    with pytest.raises(InvalidInput):
        volume_hotspots({("A3-01", "0201"): [1, 2, 3]}, now=NOW)
    with pytest.raises(InvalidInput):
        detect_hotspots([], now=datetime(2026, 5, 30))
    with pytest.raises(InvalidInput):
        HotspotConfig(min_ratio=0.5)


# ----------------------------------------------------------------------------- the stored scan


def _orders(db_session: Any, count: int, *, hours_ago: float, street: str, phone: str = "") -> None:
    from router.workorders import service as workorders

    for i in range(count):
        order, _ = workorders.receive_appeal(
            db_session=db_session,
            appeal=workorders.AppealInput(
                channel="web", text=f"路灯不亮 {i}", caller_phone=phone or f"1380000{i:04d}"
            ),
            now=NOW - timedelta(hours=hours_ago) + timedelta(minutes=i),
        )
        order.street_code = street
        order.category_code = "010501"
    db_session.flush()


@pytest.fixture
def scan_db(database_url: str) -> Iterator[Any]:
    from router.catalogue.models import Category
    from service.db import Database

    database = Database(database_url)
    with database.session() as db_session:
        db_session.add(Category(code="010501", name="路灯", level=3, path="城乡建设/市政/路灯"))
    yield database
    database.dispose()


SCAN_CONFIG = HotspotConfig(baseline_buckets=7, min_count=5, min_distinct_callers=3)


def test_a_scan_stores_a_surge_once_and_updates_it_on_the_next_scan(scan_db: Any) -> None:
    with scan_db.session() as db_session:
        _orders(db_session, 1, hours_ago=24 * 4, street="A3-01")  # the usual level: quiet
        _orders(db_session, 8, hours_ago=5, street="A3-01")  # today: a surge
        _orders(db_session, 2, hours_ago=5, street="A4-02")  # elsewhere: normal
    with scan_db.session() as db_session:
        first = hotspots_service.scan_hotspots(db_session=db_session, now=NOW, config=SCAN_CONFIG)
    assert (first.found, len(first.created), first.updated) == (1, 1, [])
    with scan_db.session() as db_session:
        _orders(db_session, 2, hours_ago=1, street="A3-01")
    with scan_db.session() as db_session:
        second = hotspots_service.scan_hotspots(db_session=db_session, now=NOW, config=SCAN_CONFIG)
        assert (second.created, second.updated) == ([], first.created)
        row = db_session.get_one(HotspotRow, first.created[0])
        assert (row.kind, row.place_code, row.category_code, row.count) == (
            "volume",
            "A3-01",
            "010501",
            10,
        )
        assert len(hotspots_service.hotspot_appeal_ids(db_session=db_session, hotspot=row)) == 10
        assert [point["count"] for point in row.trend][-1] == 10
        assert sum(point["count"] for point in row.trend) == 11
        assert row.distinct_callers == 8  # the two later callers had called before


def test_supervisors_are_notified_once_per_new_hotspot(scan_db: Any) -> None:
    from sqlalchemy import select

    from router.notifications.models import Notification

    with scan_db.session() as db_session:
        _orders(db_session, 8, hours_ago=5, street="A3-01")
    for _ in range(2):
        with scan_db.session() as db_session:
            hotspots_service.scan_hotspots(db_session=db_session, now=NOW, config=SCAN_CONFIG)
    with scan_db.session() as db_session:
        notes = db_session.scalars(select(Notification)).all()
        assert [(n.recipient_kind, n.kind) for n in notes] == [("supervisors", "hotspot")]
        assert "A3-01" in notes[0].message


def test_a_problem_merged_from_many_callers_is_a_hotspot(scan_db: Any) -> None:
    from router.duplicates import service as merges
    from router.workorders.models import WorkOrder

    with scan_db.session() as db_session:
        _orders(db_session, 4, hours_ago=24 * 3, street="A5-01")
        orders = db_session.scalars(select_orders()).all()
        master, *others = orders
        master.state = "review"
        for other in others:
            other.state = "review"
            merges.merge_work_order(
                db_session=db_session, work_order=other, into=master, actor="x", role="agent"
            )
        assert all(isinstance(o, WorkOrder) for o in orders)
    with scan_db.session() as db_session:
        result = hotspots_service.scan_hotspots(db_session=db_session, now=NOW, config=SCAN_CONFIG)
        rows = [db_session.get_one(HotspotRow, i) for i in result.created]
    assert [(r.kind, r.distinct_callers, r.count) for r in rows] == [("many_callers", 4, 4)]


def select_orders() -> Any:
    from sqlalchemy import select

    from router.workorders.models import WorkOrder

    return select(WorkOrder).order_by(WorkOrder.id)
