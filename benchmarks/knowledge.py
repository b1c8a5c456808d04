"""Benchmark the knowledge base's answer retrieval at 10,000 and 100,000 articles.

    python -m benchmarks.knowledge [--sizes 10000 100000] [--queries 1000] [--seed 3]
    python -m benchmarks.knowledge --sizes 2000 --queries 200      # under a minute

Articles are made of real text: the 2,763 real messages with an official reply
(fixtures/data/real, segmented once with the classifier's text pipeline); article i pairs the
question of one message with the reply of another (drawn at random), so the vocabulary and the
lengths are real while the articles differ; each gets a random leaf category of
fixtures/data/categories.csv. Queries are held-out real messages (messages_unlabeled, not in
any article), cut to their first 60 characters (what an agent has typed after a few seconds),
with a random leaf category as the classifier's prediction. A query's time covers segmenting
the typed text, scoring, the category boost and the top 3.

Prints per size: build time of the index from segmented articles (what a rebuild costs: the
searcher keeps each article's terms), the segmentation rate (what the first build costs on
top), the index's arrays, the process's peak RSS, and per-query latency p50 / p95 / p99 / max
for `AnswerIndex.search` (wall clock, and the p99 of its CPU time: the machine is shared) and
for `KnowledgeSearcher.search` against a SQLite database holding the articles (adds the change
check, one query). The load average is printed too.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert

from classifier.text import TextPipeline
from fixtures import real
from router.knowledge.models import KnowledgeArticle
from router.knowledge.retrieval import TERM_SEPARATOR, AnswerIndex, Document, join_terms
from router.knowledge.searcher import KnowledgeSearcher

ROOT = Path(__file__).resolve().parent.parent
CATEGORIES = ROOT / "fixtures" / "data" / "categories.csv"
TYPED = 60


def _leaves() -> list[str]:
    with CATEGORIES.open(encoding="utf-8") as fh:
        return [row["code"] for row in csv.DictReader(fh) if row["level"] == "3"]


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _timings(
    call: Callable[[str, str], object], queries: list[tuple[str, str]]
) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds of each query."""
    wall, cpu = [], []
    for text, category in queries:
        started, started_cpu = time.perf_counter(), time.thread_time()
        call(text, category)
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.thread_time() - started_cpu) * 1000)
    return wall, cpu


def _database(articles: list[tuple[str, str, str | None]]) -> tuple[object, Path]:
    from service.bootstrap import load_reference_data
    from service.db import Database

    folder = Path(tempfile.mkdtemp(prefix="kb-bench-"))
    url = f"sqlite:///{folder / 'kb.sqlite3'}"
    from service import migrate

    migrate.upgrade(url)
    database = Database(url)
    load_reference_data(database)  # the categories the articles name
    now = datetime.now(UTC)
    rows = [
        {
            "state": "approved",
            "category_code": category,
            "category_path": "",
            "question": question,
            "answer": answer,
            "source": "manual",
            "source_ref": str(i),
            "created_by": "bench",
            "updated_by": "bench",
            "created_at": now,
            "updated_at": now,
            "revision": 1,
        }
        for i, (question, answer, category) in enumerate(articles)
    ]
    with database.session() as db_session:
        for start in range(0, len(rows), 5000):
            db_session.execute(insert(KnowledgeArticle), rows[start : start + 5000])
    return database, folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--no-database", action="store_true", help="skip the searcher rows")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    pipeline = TextPipeline()
    leaves = _leaves()

    messages = [m for m in real.reply_messages() if m.reply]
    started = time.perf_counter()
    questions = [join_terms(pipeline.tokens(f"{m.title}\n{m.detail}")) for m in messages]
    answers = [join_terms(pipeline.tokens(m.reply)) for m in messages]
    segmenting = time.perf_counter() - started
    characters = sum(len(m.title) + len(m.detail) + len(m.reply) for m in messages)
    per_thousand = segmenting / len(messages) * 1000
    unlabeled = real.unlabeled_texts()
    queries = [(text[:TYPED], rng.choice(leaves)) for text in rng.sample(unlabeled, args.queries)]

    print(f"segmenter {pipeline.backend}; {len(messages)} real message/reply pairs")
    print(
        f"segmenting: {segmenting:.1f} s for {characters / 1e6:.1f} M characters"
        f" = {per_thousand:.2f} s per 1,000 articles (first build only)"
    )
    print(f"queries: {len(queries)} held-out real messages cut to {TYPED} characters")
    print(
        "| articles | build (terms known) | index arrays | peak RSS | search p50 | p95 | p99 | max"
        " | CPU p99 | searcher p50 | searcher p99 | searcher CPU p99 |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        pairs = [(rng.randrange(len(messages)), rng.randrange(len(messages))) for _ in range(size)]
        documents = [
            Document(
                id=i + 1,
                text="",
                category_code=rng.choice(leaves),
                terms=questions[q] + TERM_SEPARATOR + answers[a],
            )
            for i, (q, a) in enumerate(pairs)
        ]
        started = time.perf_counter()
        index = AnswerIndex(pipeline.tokens).fit(documents)
        build = time.perf_counter() - started
        for text, category in queries[:20]:  # warm the segmenter's caches
            index.search(text, category_code=category)
        search, cpu = _timings(
            lambda t, c, index=index: index.search(t, category_code=c, k=3), queries
        )
        searcher_cells = "– | – | –"
        if not args.no_database:
            articles = [
                (f"{messages[q].title}\n{messages[q].detail}", messages[a].reply, d.category_code)
                for (q, a), d in zip(pairs, documents, strict=True)
            ]
            database, _folder = _database(articles)
            searcher = KnowledgeSearcher(tokenize=pipeline.tokens)
            with database.session() as db_session:  # type: ignore[attr-defined]
                searcher.refresh(db_session)  # first build (segments every article)
                timed, timed_cpu = _timings(
                    lambda t, c, s=searcher, db=db_session: s.search(db, t, category_code=c, k=3),
                    queries,
                )
            searcher_cells = (
                f"{statistics.median(timed):.2f} ms | {_percentile(timed, 0.99):.2f} ms"
                f" | {_percentile(timed_cpu, 0.99):.2f} ms"
            )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"| {size:,} | {build:.2f} s | {index.nbytes / 2**20:.0f} MiB | {peak:.0f} MiB"
            f" | {statistics.median(search):.2f} ms | {_percentile(search, 0.95):.2f} ms"
            f" | {_percentile(search, 0.99):.2f} ms | {max(search):.2f} ms"
            f" | {_percentile(cpu, 0.99):.2f} ms | {searcher_cells} |"
        )
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
