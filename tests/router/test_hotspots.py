"""Hotspots (热点预警): volume far above a cell's usual level, and many distinct callers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from router.errors import InvalidInput
from router.hotspots import (
    HotspotAppeal,
    HotspotConfig,
    caller_hotspots,
    detect_hotspots,
    tail_probability,
    volume_hotspots,
)

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
