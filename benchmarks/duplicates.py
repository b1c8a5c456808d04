"""Benchmark duplicate detection (并单) at city scale: build a 30-day index, time single checks.

    python -m benchmarks.duplicates [--days 30] [--per-day 50000] [--queries 2000] [--seed 8]
    python -m benchmarks.duplicates --small        # 3 days x 5,000 a day, under 30 s

Appeals are synthetic but made of real text: titles and clauses of the TipDM messages in
/work/shared/data (a tiny built-in phrase list when that is missing), placed in a city of 16
districts x 20 streets x 30 sites with Zipf-like popularity, categorised with the real leaf
codes of fixtures/data/categories.csv (one leaf per title), half of them with coordinates,
callers drawn from a million phone hashes, and 10 % re-reports of a recent appeal at the same
site. The queries are new appeals at the end of the window, a third of them re-reports.

Prints: appeals indexed, build time (bulk ``extend``) and one add on arrival, index memory
(arrays + posting lists, an estimate) and the process's peak RSS, and per-check wall-clock
latency p50 / p90 / p99 / max plus the CPU time of a check (wall clock includes waiting for a
core on a busy machine, so the load average is printed too).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import re
import resource
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from router.duplicates.index import AppealRecord, DuplicateConfig, DuplicateIndex

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
CATEGORIES = ROOT / "fixtures" / "data" / "categories.csv"
GAZETTEER = ROOT / "fixtures" / "data" / "gazetteer.csv"
_CLAUSE = re.compile(r"[^，。！？；,!?;]{6,40}")
_LEADING_PLACE = re.compile(r"^(关于)?(A市)?([A-Z]\d*[区县市])?")
_FALLBACK_TITLES = [
    "小区门口垃圾堆积无人清理",
    "夜间施工噪音扰民",
    "路灯损坏晚上出行不便",
    "小区停水三天无人处理",
    "占道经营堵塞交通",
    "商铺油烟扰民",
    "违章建筑无人查处",
    "公交站台设置不合理",
]
_FALLBACK_CLAUSES = [
    "希望相关部门尽快处理",
    "已经反映多次没有结果",
    "严重影响居民正常生活",
    "老人小孩出行很不安全",
    "物业不管不问",
    "请领导重视",
]


def _phrases() -> tuple[list[str], list[str]]:
    """Titles (place prefix removed) and detail clauses of the real messages, if present."""
    titles: list[str] = []
    clauses: list[str] = []
    for name in ("tipdm2020_messages_unlabeled.csv", "tipdm2020_testphase_unlabeled.csv"):
        path = DATA / name
        if not path.exists():
            continue
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                core = _LEADING_PLACE.sub("", row["title"]).strip()
                if len(core) >= 6:
                    titles.append(core)
                clauses.extend(_CLAUSE.findall(row["detail"]))
    if not titles:
        return _FALLBACK_TITLES, _FALLBACK_CLAUSES
    return titles, clauses


def _leaves() -> list[str]:
    with CATEGORIES.open(encoding="utf-8", newline="") as handle:
        return [row["code"] for row in csv.DictReader(handle) if row["level"] == "3"]


def _site_names(count: int) -> list[str]:
    with GAZETTEER.open(encoding="utf-8", newline="") as handle:
        base = [row["name"] for row in csv.DictReader(handle) if row["kind"] == "compound"]
    names = []
    for i in range(count):
        stem = base[i % len(base)]
        names.append(stem if i < len(base) else f"{stem}{i // len(base) + 1}期")
    return names


class City:
    """A synthetic city and a stream of appeals in it."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.titles, self.clauses = _phrases()
        leaves = _leaves()
        self.title_leaf = [leaves[self.rng.randrange(len(leaves))] for _ in self.titles]
        self.districts = [f"A{d}" for d in range(1, 17)]
        self.streets = [f"{d}-{s:02d}" for d in self.districts for s in range(1, 21)]
        self.sites = _site_names(len(self.streets) * 30)
        self.site_index = {name: i for i, name in enumerate(self.sites)}
        self.title_index = {title: i for i, title in enumerate(self.titles)}
        self.site_street = [self.streets[i // 30] for i in range(len(self.sites))]
        self.site_xy = [
            (28.0 + self.rng.random() * 0.5, 112.8 + self.rng.random() * 0.5) for _ in self.sites
        ]
        # Zipf-like popularity: a few sites and titles get most of the appeals.
        self.site_weights = [1.0 / (i + 1) ** 0.8 for i in range(len(self.sites))]
        self.rng.shuffle(self.site_weights)
        self.title_weights = [1.0 / (i + 1) ** 0.6 for i in range(len(self.titles))]
        self.rng.shuffle(self.title_weights)
        self._site_cum = _cumulative(self.site_weights)
        self._title_cum = _cumulative(self.title_weights)
        self.recent: list[AppealRecord] = []
        self.next_id = 1

    def _pick(self, cum: list[float]) -> int:
        import bisect

        return bisect.bisect_left(cum, self.rng.random() * cum[-1])

    def appeal(self, at: datetime, repeat_share: float = 0.1) -> AppealRecord:
        rng = self.rng
        if self.recent and rng.random() < repeat_share:
            return self._repeat(rng.choice(self.recent), at)
        site = self._pick(self._site_cum)
        title_index = self._pick(self._title_cum)
        return self._make(site, title_index, at, caller=f"c{rng.randrange(1_000_000)}")

    def _make(self, site: int, title_index: int, at: datetime, caller: str) -> AppealRecord:
        rng = self.rng
        name = self.sites[site]
        title = name + self.titles[title_index]
        body = "，".join(rng.choice(self.clauses) for _ in range(rng.randint(2, 4)))
        lat = lon = None
        if rng.random() < 0.5:
            y, x = self.site_xy[site]
            lat, lon = y + rng.gauss(0, 0.001), x + rng.gauss(0, 0.001)
        street = self.site_street[site]
        with_site = rng.random() < 0.7  # the gazetteer does not always find the compound
        record = AppealRecord(
            id=self.next_id,
            received_at=at,
            text=f"{title}。{body}",
            title=title,
            category_code=self.title_leaf[title_index],
            site=name if with_site else None,
            street=street,
            district=street.split("-")[0],
            latitude=lat,
            longitude=lon,
            caller=caller,
            place_names=(name,),
        )
        self.next_id += 1
        self.recent.append(record)
        if len(self.recent) > 20_000:
            del self.recent[:10_000]
        return record

    def _repeat(self, earlier: AppealRecord, at: datetime) -> AppealRecord:
        site = self.site_index[earlier.place_names[0]]
        title_index = self.title_index[earlier.title[len(earlier.place_names[0]) :]]
        return self._make(site, title_index, at, caller=f"c{self.rng.randrange(1_000_000)}")

    def stream(self, days: int, per_day: int, end: datetime) -> Iterator[AppealRecord]:
        start = end - timedelta(days=days)
        total = days * per_day
        step = (end - start) / total
        for i in range(total):
            yield self.appeal(start + step * i)


def _cumulative(weights: list[float]) -> list[float]:
    out, running = [], 0.0
    for w in weights:
        running += w
        out.append(running)
    return out


def _rss_mb() -> float:
    """Peak resident set size of this process."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _current_rss_mb() -> float:
    """Current resident set size (Linux), or the peak elsewhere."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:
        return _rss_mb()


def run(days: int, per_day: int, queries: int, seed: int) -> dict[str, float]:
    end = datetime(2026, 6, 30, tzinfo=UTC)
    city = City(seed)
    rss_before = _current_rss_mb()
    index = DuplicateIndex(DuplicateConfig(window=timedelta(days=days)))
    started = time.perf_counter()
    index.extend(city.stream(days, per_day, end))
    build = time.perf_counter() - started
    rss_after = _current_rss_mb()
    adds = []
    for i in range(200):
        record = city.appeal(end - timedelta(seconds=200 - i))
        t0 = time.perf_counter()
        index.add(record)
        adds.append((time.perf_counter() - t0) * 1000.0)
    latencies, cpu = [], []
    suggested = 0
    for i in range(queries):
        record = city.appeal(end + timedelta(seconds=i), repeat_share=1 / 3)
        t0, c0 = time.perf_counter(), time.thread_time()
        result = index.check(record)
        cpu.append((time.thread_time() - c0) * 1000.0)
        latencies.append((time.perf_counter() - t0) * 1000.0)
        suggested += result.action != "none"
    load = os.getloadavg()[0]
    latencies.sort()
    cpu.sort()

    def pct(p: float, values: list[float] = latencies) -> float:
        return values[min(len(values) - 1, int(p * len(values)))]

    return {
        "appeals": len(index),
        "build_s": build,
        "build_us_per_appeal": build / max(len(index), 1) * 1e6,
        "add_ms": statistics.median(adds),
        "index_mb": index.memory_bytes() / 2**20,
        "rss_peak_mb": _rss_mb(),
        "rss_before_mb": rss_before,
        "rss_after_mb": rss_after,
        "p50_ms": statistics.median(latencies),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": latencies[-1],
        "cpu_p50_ms": statistics.median(cpu),
        "cpu_p99_ms": pct(0.99, cpu),
        "queries": queries,
        "suggested": suggested,
        "load": load,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-day", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--small", action="store_true", help="3 days x 5,000 a day")
    args = parser.parse_args(argv)
    if args.small:
        args.days, args.per_day, args.queries = 3, 5_000, 500
    r = run(args.days, args.per_day, args.queries, args.seed)
    rows = [
        ("appeals in the window", f"{r['appeals']:,} ({args.days} d x {args.per_day:,}/d)"),
        ("index build", f"{r['build_s']:.1f} s ({r['build_us_per_appeal']:.0f} us/appeal)"),
        ("single add on arrival (p50)", f"{r['add_ms']:.2f} ms"),
        ("index memory (arrays + postings)", f"{r['index_mb']:.0f} MiB"),
        (
            "process RSS before / after build",
            f"{r['rss_before_mb']:.0f} / {r['rss_after_mb']:.0f} MiB (peak {r['rss_peak_mb']:.0f})",
        ),
        ("checks timed", f"{r['queries']:,} ({r['suggested']:,} suggested a merge)"),
        ("check latency p50", f"{r['p50_ms']:.2f} ms"),
        ("check latency p90", f"{r['p90_ms']:.2f} ms"),
        ("check latency p99", f"{r['p99_ms']:.2f} ms"),
        ("check latency max", f"{r['max_ms']:.2f} ms"),
        ("check CPU time p50 / p99", f"{r['cpu_p50_ms']:.2f} / {r['cpu_p99_ms']:.2f} ms"),
        ("load average (1 min) after the checks", f"{r['load']:.1f} on {os.cpu_count()} CPUs"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
