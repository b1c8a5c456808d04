"""Hotspots (热点预警): places x categories whose recent volume is far above their usual level, and
problems reported by many distinct callers.

Pure domain code: the periodic job passes either the recent appeals (:func:`detect_hotspots`) or
counts per (place, category) and time bucket (:func:`volume_hotspots`, e.g. from one SQL
``GROUP BY``), plus the clusters of near-duplicates from :mod:`router.duplicates.index`, and
stores or shows the returned :class:`Hotspot` records.

Volume test: the last ``recent_buckets`` buckets of a cell are compared with its trailing
``baseline_buckets``. The expected count is the baseline mean (with ``prior_count`` pseudo
appeals, so a quiet cell is not "infinitely" surprised by its first appeal); when the baseline
is over-dispersed (variance > mean) the tail probability is negative-binomial, otherwise
Poisson. A cell is a hotspot when its recent count is at least ``min_count``, at least
``min_ratio`` times the expected count, and its tail probability is at most ``max_p_value``.

Errors: ``InvalidInput`` (from :mod:`router.errors`) for a bad configuration, a naive datetime
or counts of the wrong length.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np
from scipy import stats

from router.errors import InvalidInput

__all__ = [
    "Hotspot",
    "HotspotAppeal",
    "HotspotConfig",
    "caller_hotspots",
    "detect_hotspots",
    "tail_probability",
    "volume_hotspots",
]


@dataclass(frozen=True)
class HotspotConfig:
    bucket: timedelta = timedelta(days=1)
    recent_buckets: int = 1
    baseline_buckets: int = 28
    min_count: int = 5
    min_ratio: float = 3.0
    max_p_value: float = 1e-4
    """Strict, because a city has thousands of cells tested at every run."""
    prior_count: float = 1.0
    """Pseudo appeals spread over the baseline of every cell."""
    min_distinct_callers: int = 5
    """A cluster of duplicates with this many distinct callers is a hotspot."""

    def __post_init__(self) -> None:
        if self.bucket <= timedelta(0) or self.recent_buckets < 1 or self.baseline_buckets < 2:
            raise InvalidInput("bucket > 0, recent_buckets >= 1 and baseline_buckets >= 2")
        if self.min_count < 1 or self.min_ratio < 1 or not 0 < self.max_p_value < 1:
            raise InvalidInput("min_count >= 1, min_ratio >= 1 and max_p_value in (0, 1)")
        if self.prior_count <= 0 or self.min_distinct_callers < 2:
            raise InvalidInput("prior_count > 0 and min_distinct_callers >= 2")

    @property
    def buckets(self) -> int:
        return self.baseline_buckets + self.recent_buckets

    @property
    def span(self) -> timedelta:
        return self.bucket * self.buckets


@dataclass(frozen=True)
class HotspotAppeal:
    """What hotspot detection needs to know about one appeal.

    ``place`` is the key counted (a street code, or a compound for finer hotspots: run the
    job once per level); ``category`` likewise (a leaf or its level-2 group).
    """

    id: int
    received_at: datetime
    place: str | None
    category: str | None
    caller: str | None = None


@dataclass(frozen=True)
class Hotspot:
    kind: str  # "volume" | "many_callers"
    place: str | None
    category: str | None
    count: int
    """Appeals in the recent buckets (volume) or in the cluster (many_callers)."""
    expected: float
    """Expected recent count from the baseline (volume); 0 for many_callers."""
    p_value: float
    score: float
    """-log10(p_value) for volume; the number of distinct callers for many_callers."""
    distinct_callers: int
    """Known callers only; anonymous appeals are not counted."""
    appeal_ids: tuple[int, ...]
    trend: tuple[tuple[datetime, int], ...]
    """(bucket start, appeals) from the oldest baseline bucket to the newest."""


def tail_probability(
    observed: int, baseline: Sequence[float] | np.ndarray, recent_buckets: int, prior: float
) -> tuple[float, float]:
    """P(X >= observed) for the sum of `recent_buckets` buckets given the baseline counts;
    returns (probability, expected count)."""
    base = np.asarray(baseline, dtype=float)
    mean = (base.sum() + prior) / len(base)
    expected = mean * recent_buckets
    if observed <= 0:
        return 1.0, expected
    variance = base.var(ddof=1) if len(base) > 1 else 0.0
    if variance > mean:
        size = mean * mean / (variance - mean) * recent_buckets
        p = float(stats.nbinom.sf(observed - 1, size, size / (size + expected)))
    else:
        p = float(stats.poisson.sf(observed - 1, expected))
    return p, expected


def volume_hotspots(
    counts: Mapping[tuple[str | None, str | None], Sequence[int]],
    *,
    now: datetime,
    config: HotspotConfig | None = None,
) -> list[Hotspot]:
    """Hotspots from counts per cell: each sequence has ``config.buckets`` counts, oldest first,
    the last bucket ending at `now`. The records carry no appeal ids (counts have none)."""
    config = config or HotspotConfig()
    _check_aware(now)
    starts = _bucket_starts(now, config)
    found = []
    for (place, category), series in counts.items():
        if len(series) != config.buckets:
            raise InvalidInput(f"expected {config.buckets} counts for {(place, category)}")
        hotspot = _test_cell(place, category, series, starts, config)
        if hotspot is not None:
            found.append(hotspot)
    return sorted(found, key=lambda h: (-h.score, -h.count))


def detect_hotspots(
    appeals: Iterable[HotspotAppeal],
    *,
    now: datetime,
    config: HotspotConfig | None = None,
    clusters: Iterable[Sequence[int]] = (),
) -> list[Hotspot]:
    """Volume hotspots among `appeals` (those outside the config's span are ignored), then
    many-caller hotspots among `clusters` (lists of appeal ids from duplicate detection)."""
    config = config or HotspotConfig()
    _check_aware(now)
    appeals = list(appeals)
    start = now - config.span
    bucket_seconds = config.bucket.total_seconds()
    series: dict[tuple[str | None, str | None], np.ndarray] = {}
    members: dict[tuple[str | None, str | None], list[HotspotAppeal]] = {}
    for appeal in appeals:
        _check_aware(appeal.received_at)
        if not start <= appeal.received_at < now:
            continue
        cell = (appeal.place, appeal.category)
        b = int((appeal.received_at - start).total_seconds() // bucket_seconds)
        counts = series.get(cell)
        if counts is None:
            counts = series[cell] = np.zeros(config.buckets, np.int64)
        counts[min(b, config.buckets - 1)] += 1
        members.setdefault(cell, []).append(appeal)
    recent_start = now - config.bucket * config.recent_buckets
    found = []
    starts = _bucket_starts(now, config)
    for cell, counts in series.items():
        hotspot = _test_cell(cell[0], cell[1], counts, starts, config)
        if hotspot is None:
            continue
        recent = [a for a in members[cell] if a.received_at >= recent_start]
        found.append(_with_appeals(hotspot, recent))
    found.sort(key=lambda h: (-h.score, -h.count))
    return found + caller_hotspots(clusters, appeals, now=now, config=config)


def caller_hotspots(
    clusters: Iterable[Sequence[int]],
    appeals: Iterable[HotspotAppeal],
    *,
    now: datetime,
    config: HotspotConfig | None = None,
) -> list[Hotspot]:
    """Clusters of duplicates reported by at least ``min_distinct_callers`` distinct callers.
    Place and category are the cluster's most common ones."""
    config = config or HotspotConfig()
    _check_aware(now)
    by_id = {a.id: a for a in appeals}
    starts = _bucket_starts(now, config)
    start = starts[0]
    bucket_seconds = config.bucket.total_seconds()
    found = []
    for cluster in clusters:
        known = [by_id[i] for i in cluster if i in by_id]
        callers = {a.caller for a in known if a.caller}
        if len(callers) < config.min_distinct_callers:
            continue
        trend = np.zeros(config.buckets, np.int64)
        for a in known:
            if start <= a.received_at < now:
                b = int((a.received_at - start).total_seconds() // bucket_seconds)
                trend[min(b, config.buckets - 1)] += 1
        found.append(
            Hotspot(
                kind="many_callers",
                place=_most_common(a.place for a in known),
                category=_most_common(a.category for a in known),
                count=len(known),
                expected=0.0,
                p_value=1.0,
                score=float(len(callers)),
                distinct_callers=len(callers),
                appeal_ids=tuple(sorted(a.id for a in known)),
                trend=tuple(zip(starts, (int(c) for c in trend), strict=True)),
            )
        )
    return sorted(found, key=lambda h: (-h.score, -h.count))


# ----------------------------------------------------------------------------- internals


def _check_aware(moment: datetime) -> None:
    if moment.tzinfo is None:
        raise InvalidInput("datetimes must be timezone-aware")


def _bucket_starts(now: datetime, config: HotspotConfig) -> list[datetime]:
    first = now - config.span
    return [first + config.bucket * i for i in range(config.buckets)]


def _test_cell(
    place: str | None,
    category: str | None,
    series: Sequence[int] | np.ndarray,
    starts: list[datetime],
    config: HotspotConfig,
) -> Hotspot | None:
    counts = np.asarray(series, dtype=np.int64)
    observed = int(counts[config.baseline_buckets :].sum())
    if observed < config.min_count:
        return None
    p, expected = tail_probability(
        observed, counts[: config.baseline_buckets], config.recent_buckets, config.prior_count
    )
    if observed < config.min_ratio * expected or p > config.max_p_value:
        return None
    return Hotspot(
        kind="volume",
        place=place,
        category=category,
        count=observed,
        expected=round(expected, 3),
        p_value=p,
        score=round(min(-math.log10(max(p, 1e-300)), 300.0), 2),
        distinct_callers=0,
        appeal_ids=(),
        trend=tuple(zip(starts, (int(c) for c in counts), strict=True)),
    )


def _with_appeals(hotspot: Hotspot, recent: list[HotspotAppeal]) -> Hotspot:
    return replace(
        hotspot,
        appeal_ids=tuple(sorted(a.id for a in recent)),
        distinct_callers=len({a.caller for a in recent if a.caller}),
    )


def _most_common(values: Iterable[str | None]) -> str | None:
    counted = Counter(v for v in values if v is not None)
    return counted.most_common(1)[0][0] if counted else None
