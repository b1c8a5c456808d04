"""Evaluate duplicate detection (并单) on real messages: how it groups them, and how precise the
suggested merges are against a hand-labelled sample.

    python -m benchmarks.duplicates_eval [--data CSV] [--labels CSV] [--threshold T]
    python -m benchmarks.duplicates_eval --write-sample OUT.csv [--seed S]

The data is tipdm2020_messages_unlabeled.csv (a contest task on finding hot issues: many
messages there describe the same problems). Each message becomes an appeal with its title +
detail as text, its time, its author as the caller, and the place the gazetteer finds in it.
The messages carry no category, so the category relation is "unknown" for every pair.
``--write-sample`` draws the pairs to label (see fixtures/eval/README.md).
"""

from __future__ import annotations

import argparse
import csv
import random
import re
import statistics
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from router.duplicates.index import AppealRecord, Candidate, DuplicateConfig, find_clusters

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "tipdm2020_messages_unlabeled.csv"
LABELS = ROOT / "fixtures" / "eval" / "merge_pairs_labelled.csv"
TZ = ZoneInfo("Asia/Shanghai")
_DISTRICT = re.compile(r"[A-Z]\d*[区县市]")
LABEL_FIELDS = ["new_id", "earlier_id", "score", "band", "new_title", "earlier_title", "label"]


def _parse_time(value: str) -> datetime:
    value = value.strip().replace("-", "/")
    for fmt in ("%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=TZ)
        except ValueError:
            continue
    raise ValueError(f"unparseable time {value!r}")


def load_messages(path: Path = DATA) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def to_records(rows: list[dict[str, str]]) -> list[AppealRecord]:
    """Messages as appeals, with the place the catalogue's gazetteer resolves in them."""
    from router.catalogue import default_catalogue

    catalogue = default_catalogue()
    records = []
    for row in rows:
        text = f"{row['title']}。{row['detail']}"
        match = catalogue.resolve_place(row["title"]) or catalogue.resolve_place(text)
        site = street = district = None
        names: set[str] = set(_DISTRICT.findall(text))
        if match is not None:
            district = match.district_code
            street = match.street_code
            if match.kind in ("compound", "landmark", "road"):
                site = match.name
            names.add(match.name)
        records.append(
            AppealRecord(
                id=int(row["msg_id"]),
                received_at=_parse_time(row["time"]),
                text=text,
                title=row["title"],
                site=site,
                street=street,
                district=district,
                caller=row["user"] or None,
                place_names=tuple(names),
            )
        )
    return records


def run_clustering(
    records: list[AppealRecord], config: DuplicateConfig
) -> tuple[list[list[int]], list[tuple[int, int, Candidate]]]:
    return find_clusters(records, config)


def print_cluster_report(
    rows: list[dict[str, str]],
    records: list[AppealRecord],
    clusters: list[list[int]],
    links: list[tuple[int, int, Candidate]],
    config: DuplicateConfig,
) -> None:
    titles = {int(r["msg_id"]): r["title"] for r in rows}
    by_id = {r.id: r for r in records}
    placed = Counter(
        "site" if r.site else "street" if r.street else "district" if r.district else "none"
        for r in records
    )
    in_clusters = sum(len(c) for c in clusters)
    sizes = Counter(len(c) for c in clusters)
    print(f"messages: {len(records)}; most specific place found: {dict(placed)}")
    print(
        f"suggest_threshold {config.suggest_threshold}, window {config.window.days} d: "
        f"{len(links)} suggested merges, {len(clusters)} clusters holding {in_clusters} messages "
        f"({in_clusters / len(records):.1%})"
    )
    print("cluster sizes: " + ", ".join(f"{s}: {n}" for s, n in sorted(sizes.items())))
    relations = Counter(c.place.value for _, _, c in links)
    print(
        "place relation of suggested merges: " + ", ".join(f"{k} {v}" for k, v in relations.items())
    )
    callers = [len({by_id[i].caller for i in c}) for c in clusters]
    if callers:
        print(
            f"distinct callers per cluster: median {statistics.median(callers)}, max {max(callers)}"
        )
    print("\nthe 10 largest clusters:")
    for n, cluster in enumerate(clusters[:10], 1):
        days = sorted(by_id[i].received_at for i in cluster)
        span = (days[-1] - days[0]).days
        distinct = len({by_id[i].caller for i in cluster})
        print(f"{n:2}. {len(cluster)} messages, {distinct} callers, over {span} days")
        for appeal_id in cluster[:5]:
            print(f"      {appeal_id}  {titles[appeal_id][:60]}")
        if len(cluster) > 5:
            print(f"      ... and {len(cluster) - 5} more")


def print_caller_hotspots(
    rows: list[dict[str, str]], records: list[AppealRecord], threshold: float
) -> None:
    """Problems reported by many distinct callers: clusters linked at `threshold`, the
    30-day window of the index, and hotspot detection over the whole year."""
    from router.hotspots.detection import HotspotAppeal, HotspotConfig, caller_hotspots

    config = DuplicateConfig(suggest_threshold=threshold, candidate_floor=min(0.2, threshold))
    clusters, _ = find_clusters(records, config)
    titles = {int(r["msg_id"]): r["title"] for r in rows}
    appeals = [
        HotspotAppeal(r.id, r.received_at, r.site or r.street or r.district, None, r.caller)
        for r in records
    ]
    now = max(r.received_at for r in records) + timedelta(seconds=1)
    hot_config = HotspotConfig(bucket=timedelta(days=7), baseline_buckets=60)
    hotspots = caller_hotspots(clusters, appeals, now=now, config=hot_config)
    print(
        f"\nmany-caller hotspots (clusters linked at {threshold}, >= "
        f"{hot_config.min_distinct_callers} distinct callers): {len(hotspots)}"
    )
    for hot in hotspots[:10]:
        first = min(r.received_at for r in records if r.id in set(hot.appeal_ids))
        print(
            f"  {hot.distinct_callers} callers, {hot.count} messages, from {first:%Y-%m-%d}, "
            f"place {hot.place}: {titles[hot.appeal_ids[0]][:50]}"
        )


def write_sample(
    path: Path,
    rows: list[dict[str, str]],
    records: list[AppealRecord],
    config: DuplicateConfig,
    seed: int,
    suggested: int = 80,
    near: int = 25,
    low: int = 20,
) -> None:
    """Draw, unlabelled, `suggested` pairs at random from the suggested merges, `near` pairs
    from the band just below the threshold (suggest_threshold - 0.1 .. suggest_threshold) and
    `low` pairs from below that (candidate_floor .. suggest_threshold - 0.1)."""
    from router.duplicates.index import DuplicateIndex

    titles = {int(r["msg_id"]): r["title"] for r in rows}
    above: list[tuple[int, int, float]] = []
    below: list[tuple[int, int, float]] = []
    lower: list[tuple[int, int, float]] = []
    index = DuplicateIndex(config)
    for record in sorted(records, key=lambda r: r.received_at):
        best = index.candidates(record, k=1)
        if best:
            pair = (record.id, best[0].appeal_id, best[0].score)
            if best[0].score >= config.suggest_threshold:
                above.append(pair)
            elif best[0].score >= config.suggest_threshold - 0.1:
                below.append(pair)
            else:
                lower.append(pair)
        index.add(record)
    rng = random.Random(seed)
    sample = [(*p, "suggested") for p in rng.sample(above, min(suggested, len(above)))]
    sample += [(*p, "near_threshold") for p in rng.sample(below, min(near, len(below)))]
    sample += [(*p, "low") for p in rng.sample(lower, min(low, len(lower)))]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*LABEL_FIELDS, "reason"])
        for new_id, earlier_id, score, band in sample:
            writer.writerow(
                [
                    new_id,
                    earlier_id,
                    f"{score:.3f}",
                    band,
                    titles[new_id],
                    titles[earlier_id],
                    "",
                    "",
                ]
            )
    print(
        f"wrote {len(sample)} pairs (of {len(above)} suggested, {len(below)} near the threshold, "
        f"{len(lower)} low) to {path}"
    )


def print_precision(labels: Path, config: DuplicateConfig, messages: list[dict[str, str]]) -> None:
    """Precision of suggested merges (pairs at or above the threshold) among the labelled."""
    with labels.open(encoding="utf-8", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["label"] in ("duplicate", "different")]
    author = {r["msg_id"]: r["user"] for r in messages}
    same_author = sum(author[r["new_id"]] == author[r["earlier_id"]] for r in rows)
    print(
        f"\nhand-labelled pairs: {len(rows)} ({labels.relative_to(ROOT)}); "
        f"{same_author} of them by the same author"
    )
    thresholds = sorted({config.suggest_threshold, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6})
    print("threshold  pairs  duplicates  precision")
    for threshold in thresholds:
        chosen = [r for r in rows if float(r["score"]) >= threshold]
        good = sum(r["label"] == "duplicate" for r in chosen)
        share = f"{good / len(chosen):.3f}" if chosen else "n/a"
        print(f"{threshold:9.2f}  {len(chosen):5}  {good:10}  {share}")
    for band in ("suggested", "near_threshold", "low"):
        chosen = [r for r in rows if r["band"] == band]
        good = sum(r["label"] == "duplicate" for r in chosen)
        if chosen:
            low = _wilson_lower(good, len(chosen))
            print(
                f"band {band}: {good}/{len(chosen)} duplicates ({good / len(chosen):.3f}, "
                f"95% Wilson lower bound {low:.3f})"
            )


def print_label_drift(labels: Path, links: list[tuple[int, int, Candidate]]) -> None:
    """Whether today's code still suggests the labelled pairs: the labels hold the scores of
    the code that drew the sample, so a changed scorer must be checked against them."""
    with labels.open(encoding="utf-8", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["band"] == "suggested"]
    now = {(new, earlier): c.score for new, earlier, c in links}
    kept = [r for r in rows if (int(r["new_id"]), int(r["earlier_id"])) in now]
    drift = [abs(now[(int(r["new_id"]), int(r["earlier_id"]))] - float(r["score"])) for r in kept]
    good = sum(r["label"] == "duplicate" for r in kept)
    print(
        f"labelled suggested pairs still suggested by this code: {len(kept)}/{len(rows)} "
        f"({good} of them duplicates); largest score change "
        f"{max(drift, default=0.0):.3f}"
    )


def _wilson_lower(successes: int, n: int, z: float = 1.96) -> float:
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * ((p * (1 - p) + z * z / (4 * n)) / n) ** 0.5
    return (centre - spread) / (1 + z * z / n)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument("--threshold", type=float, default=DuplicateConfig().suggest_threshold)
    parser.add_argument(
        "--hotspot-threshold",
        type=float,
        default=0.25,
        help="link threshold of the clusters used for many-caller hotspots",
    )
    parser.add_argument("--write-sample", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args(argv)
    if not args.data.exists():
        raise SystemExit(f"error: {args.data} not found")
    config = DuplicateConfig(suggest_threshold=args.threshold)
    rows = load_messages(args.data)
    records = to_records(rows)
    if args.write_sample:
        if args.write_sample.exists():
            raise SystemExit(f"error: {args.write_sample} exists; refusing to overwrite labels")
        write_sample(args.write_sample, rows, records, config, args.seed)
        return
    clusters, links = run_clustering(records, config)
    print_cluster_report(rows, records, clusters, links, config)
    print_caller_hotspots(rows, records, args.hotspot_threshold)
    if args.labels.exists():
        print_precision(args.labels, config, rows)
        print_label_drift(args.labels, links)
    else:
        print(f"\nno labels at {args.labels}: precision not measured")


if __name__ == "__main__":
    main()
