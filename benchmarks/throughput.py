"""Sustained intake -> classification -> dispatch -> department queue, on PostgreSQL and RabbitMQ.

    python -m benchmarks.throughput [--duration 60] [--rate 200] [--producers 2] [--threads 64]
        [--workers 1] [--worker-concurrency 2] [--database-url URL] [--amqp-url URL]
        [--model-dir DIR] [--observability off|on] [--compare-observability PAIRS]

URLs default to HOTLINE_TEST_POSTGRES_URL and HOTLINE_TEST_AMQP_URL (what `scripts/services.sh
start` prints). Use private instances: the department queues are purged before the run and
drained after it to count what arrived.

What runs, as in production: `--producers` processes submit appeals at `--rate` in total from
`--threads` threads each (as the request threads of `hotline serve --workers 2` do) through
`service.intake.submit`, which group-commits the appeals that arrive together (store, classify
with the active model, check duplicates, route, record deliveries and the outbox row, publish
the `dispatch.deliver_batch` task after commit), with the
auto-dispatch threshold at 0 so that every appeal is dispatched; `--workers` real Celery workers
(`hotline worker --queues dispatch`) publish each delivery to the department's quorum queue with
publisher confirms. After `--duration` seconds the producers stop, the pipeline drains (the outbox
relay runs as beat would), and the department queues are read back.

Prints a table: appeals accepted and their rate, deliveries recorded and sent, messages that
reached department queues (unique message ids, duplicates, lead-department messages, which must
equal the appeals accepted), how many were delivered within the window, the drain time, intake
latency and intake-to-queue latency percentiles, and CPU seconds per stage. Exit status 1 when
delivered != accepted.

`--observability on` runs it as production runs with metrics and JSON logs: Prometheus metrics in
multi-process mode, JSON logs at INFO (one line per appeal, the workers' task lines) written to
files; off (the default) records no metrics and logs warnings only. `--compare-observability
PAIRS` runs off then on PAIRS times, prints the intake and worker CPU per appeal of each run and
the median difference, and measures the observability code alone (the intake metrics and one
masked JSON log line per appeal, in a loop in a separate process), which a shared machine's noise
cannot blur.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

CHANNELS = ("phone", "web", "wechat")


@dataclass
class ProducerReport:
    accepted: int = 0
    dispatched: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0
    last_error: str = ""
    batches: int = 0
    items: int = 0


def _texts(count: int, seed: int) -> list[tuple[str, str]]:
    from fixtures.generator import generate_appeals

    return [(row["channel"], row["text"]) for row in generate_appeals(count, seed)]


def _producer(
    index: int,
    producers: int,
    threads: int,
    run_seed: str,
    rate: float,
    duration: float,
    texts: list[tuple[str, str]],
    ready: Any,
    go: Any,
    results: Any,
) -> None:
    """Load the model and the duplicate index, say ready, wait for the start, then submit at
    `rate` per second in total from `threads` threads (as an API process's request threads do,
    so that intake can group the appeals that arrive together)."""
    import threading

    from router.workorders.service import AppealInput
    from service import classification, intake, runtime
    from service.config import get_settings

    runtime.reset()
    settings = get_settings()
    if settings.log_format == "json":  # observability on: log as `hotline serve` does, to a file
        from service.observability import logs

        sys.stderr = open(os.environ["BENCH_LOG_FILE"], "a", buffering=1)  # noqa: SIM115
        logs.configure(level=settings.log_level, log_format=settings.log_format)
    database = runtime.get_database()
    classification.suggest(model_dir=settings.model_dir, text=texts[0][1])  # load the model
    intake.warm_duplicate_index(database, settings)  # as the API does at start-up
    report = ProducerReport()
    lock = threading.Lock()
    ready.put(index)
    go.wait()
    cpu_before = time.process_time()
    start_at = time.monotonic()
    stop_at = start_at + duration
    interval = threads / rate

    def submit_loop(thread: int) -> None:
        rng = random.Random(f"{run_seed}-{index}-{thread}")
        due = start_at + thread * interval / threads
        n = 0
        while True:
            now = time.monotonic()
            if now >= stop_at:
                break
            if due > now:
                time.sleep(due - now)
            due += interval
            # every thread its own texts, none repeated until all were used
            slot = index * threads + thread + n * threads * producers
            channel, text = texts[slot % len(texts)]
            n += 1
            appeal = AppealInput(
                channel=channel if channel in CHANNELS else "web",
                text=text,
                caller_phone=f"1{rng.randrange(3, 10)}{rng.randrange(10**9):09d}",
            )
            began = time.perf_counter()
            try:
                result = intake.submit(
                    database=database,
                    settings=settings,
                    appeal=appeal,
                    actor="bench",
                    role="system",
                )
            except Exception as exc:  # count and go on: a benchmark reports failures, not stops
                with lock:
                    report.errors += 1
                    report.last_error = f"{type(exc).__name__}: {exc}"[:300]
                continue
            with lock:
                report.latencies.append(time.perf_counter() - began)
                report.accepted += 1
                report.dispatched += result.state == "dispatched"

    workers = [threading.Thread(target=submit_loop, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    report.cpu_seconds = time.process_time() - cpu_before
    report.batches = intake._committer.batches
    report.items = intake._committer.items
    results.put(report)


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _department_codes() -> list[str]:
    from router.catalogue import default_catalogue

    return [department.code for department in default_catalogue().departments.values()]


def _purge_department_queues(amqp_url: str, codes: list[str]) -> None:
    import pika

    from service.delivery.rabbitmq import connection_parameters, declare_department_queue

    connection = pika.BlockingConnection(connection_parameters(amqp_url))
    channel = connection.channel()
    for code in codes:
        channel.queue_purge(declare_department_queue(channel, code))
    connection.close()


def _drain_department_queues(amqp_url: str, codes: list[str]) -> list[str]:
    """Every message id waiting in the department queues (the queues are emptied)."""
    import pika

    from service.delivery.rabbitmq import connection_parameters, routing_key

    connection = pika.BlockingConnection(connection_parameters(amqp_url))
    channel = connection.channel()
    ids: list[str] = []
    for code in codes:
        queue = routing_key(code)
        while True:
            method, properties, _body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                break
            ids.append(str(properties.message_id))
            channel.basic_ack(method.delivery_tag, multiple=False)
    connection.close()
    return ids


def _wait_for_workers(count: int, timeout: float = 90.0) -> None:
    from service.worker.app import celery_app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = celery_app.control.ping(timeout=1.0)
        if len(replies) >= count:
            return
    raise SystemExit(f"error: {count} worker(s) did not come up within {timeout:.0f}s")


def _process_cpu(pid: int) -> float:
    """CPU seconds of a process and its children so far (Linux /proc)."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(child) for child in children]
    except OSError:
        pass
    for one in pids:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _tree_cpu(marker: str) -> float | None:
    """CPU seconds of the processes whose command line contains `marker`, and their children
    (our PostgreSQL and RabbitMQ: their data directories are under the services directory).

    Children that have exited count through their parent's cutime/cstime: PostgreSQL runs one
    short-lived backend per connection, whose CPU would otherwise vanish with it."""
    if not marker:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu = sum(int(value) for value in fields[11:15]) / ticks
        stats[int(entry.name)] = (int(fields[1]), cpu, command)
    chosen = {pid for pid, (_, _, command) in stats.items() if marker in command}
    grew = True
    while grew:
        children = {pid for pid, (parent, _, _) in stats.items() if parent in chosen} - chosen
        grew = bool(children)
        chosen |= children
    return sum(stats[pid][1] for pid in chosen)


def _services_cpu(services_dir: str) -> tuple[float, float] | None:
    """CPU seconds so far of our PostgreSQL and of our RabbitMQ (None without a directory)."""
    if not services_dir:
        return None
    root = services_dir.rstrip("/")
    return _tree_cpu(f"{root}/pg/") or 0.0, _tree_cpu(f"{root}/rabbitmq") or 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of intake")
    parser.add_argument("--rate", type=float, default=200.0, help="appeals per second offered")
    parser.add_argument("--producers", type=int, default=2, help="intake processes")
    parser.add_argument(
        "--threads",
        type=int,
        default=64,
        help="submitting threads per intake process (HOTLINE_API_THREADS of an API process)",
    )
    parser.add_argument("--workers", type=int, default=1, help="Celery worker processes")
    parser.add_argument(
        "--worker-concurrency", type=int, default=2, help="as `hotline worker` by default"
    )
    parser.add_argument("--worker-pool", default="prefork", choices=("prefork", "threads", "solo"))
    parser.add_argument("--database-url", default=os.environ.get("HOTLINE_TEST_POSTGRES_URL", ""))
    parser.add_argument("--amqp-url", default=os.environ.get("HOTLINE_TEST_AMQP_URL", ""))
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument(
        "--texts",
        type=int,
        default=15000,
        help="distinct appeal texts (more than a run submits, so that a text repeats only as "
        "often as the generator's own near-duplicates do)",
    )
    parser.add_argument("--drain-timeout", type=float, default=180.0)
    parser.add_argument(
        "--services-dir",
        default=os.environ.get("HOTLINE_TEST_SERVICES_DIR", ""),
        help="directory of the PostgreSQL/RabbitMQ data, to measure their CPU (optional)",
    )
    parser.add_argument(
        "--observability",
        choices=("off", "on"),
        default="off",
        help="on: Prometheus metrics (multi-process mode) and JSON logs at INFO, as in production",
    )
    parser.add_argument(
        "--compare-observability",
        type=int,
        default=0,
        metavar="PAIRS",
        help="run PAIRS times with observability off then on, and print the CPU per appeal of "
        "each and the difference",
    )
    args = parser.parse_args(argv)
    if not args.database_url.startswith("postgresql") or not args.amqp_url.startswith("amqp"):
        parser.error(
            "give --database-url (PostgreSQL) and --amqp-url (RabbitMQ), or export "
            "HOTLINE_TEST_POSTGRES_URL and HOTLINE_TEST_AMQP_URL"
        )
    if not args.compare_observability:
        return 0 if _run(args, observe=args.observability == "on")["ok"] else 1
    runs: list[tuple[bool, dict[str, Any]]] = []
    for _ in range(args.compare_observability):
        for observe in (False, True):
            runs.append((observe, _run(args, observe=observe)))
            args.model_dir = Path(runs[-1][1]["model_dir"])  # trained once
    _print_comparison(runs, _observability_micro_cost())
    return 0 if all(run["ok"] for _, run in runs) else 1


def _observability_micro_cost(count: int = 20_000) -> dict[str, Any]:
    """CPU microseconds per appeal of the observability code alone, in a separate process with
    multi-process metrics: the intake metrics and one JSON log line (masked) per appeal."""
    script = f"""
import io, logging, os, sys, tempfile, time
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp()
from types import SimpleNamespace
from service.observability import metrics
from service.observability.logs import ContextFilter, JsonFormatter
handler = logging.StreamHandler(io.StringIO())
handler.setFormatter(JsonFormatter()); handler.addFilter(ContextFilter())
log = logging.getLogger("bench"); log.addHandler(handler); log.setLevel(logging.INFO)
log.propagate = False
decision = SimpleNamespace(department_confidence=0.9)
result = SimpleNamespace(created=True, state="dispatched", decision=decision)
def once(i):
    log.info("appeal from %s stored as work order %s: %s", "web", "20261204-%07d" % i,
             "dispatched", extra={{"request_id": "r", "work_order": "20261204-%07d" % i}})
    metrics.record_intake([("web", result)])
for i in range(1000):
    once(i)
began = time.process_time()
for i in range({count}):
    once(i)
print((time.process_time() - began) / {count} * 1e6)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return {"per_appeal_us": float(done.stdout.strip().splitlines()[-1])}


def _print_comparison(runs: list[tuple[bool, dict[str, Any]]], micro: dict[str, Any]) -> None:
    def per_appeal(run: dict[str, Any], key: str) -> float:
        return run[key] / max(run["accepted"], 1) * 1000

    print()
    print("observability  accepted/s  intake CPU ms/appeal  worker CPU ms/appeal")
    for observe, run in runs:
        print(
            f"{'on' if observe else 'off':<13}  {run['accepted'] / run['duration']:>10.1f}  "
            f"{per_appeal(run, 'producer_cpu'):>20.3f}  {per_appeal(run, 'worker_cpu'):>20.3f}"
        )
    off = [per_appeal(run, "producer_cpu") for observe, run in runs if not observe]
    on = [per_appeal(run, "producer_cpu") for observe, run in runs if observe]
    off_median, on_median = statistics.median(off), statistics.median(on)
    print(
        f"intake CPU per appeal, median of {len(off)}: off {off_median:.3f} ms, on "
        f"{on_median:.3f} ms, difference {on_median - off_median:+.3f} ms "
        f"({(on_median - off_median) / off_median * 100:+.1f} %)"
    )
    print(
        f"observability code alone (intake metrics + one JSON log line): "
        f"{micro['per_appeal_us']:.1f} us per appeal = "
        f"{micro['per_appeal_us'] / 1000 / off_median * 100:.2f} % of the intake CPU per appeal"
    )


def _run(args: argparse.Namespace, *, observe: bool) -> dict[str, Any]:
    """One run of the pipeline; prints its table and returns the figures the comparison needs."""

    workdir = Path(tempfile.mkdtemp(prefix="hotline-throughput-"))
    print(f"observability {'on' if observe else 'off'}", flush=True)
    model_dir = args.model_dir or workdir / "model"
    os.environ.update(
        {
            "HOTLINE_DATABASE_URL": args.database_url,
            "HOTLINE_BROKER_URL": args.amqp_url,
            "HOTLINE_VAR_DIR": str(workdir / "var"),
            "HOTLINE_MODEL_DIR": str(model_dir),
            "HOTLINE_AUTO_DISPATCH_THRESHOLD": "0",
            "HOTLINE_LOG_LEVEL": "INFO" if observe else "WARNING",
            "HOTLINE_LOG_FORMAT": "json" if observe else "text",
            "HOTLINE_METRICS_ENABLED": "true" if observe else "false",
            "HOTLINE_METRICS_DIR": str(workdir / "metrics"),
            "BENCH_LOG_FILE": str(workdir / "producers.log"),
        }
    )
    if observe:  # the producers (spawned) and the workers write per-process metric files
        (workdir / "metrics").mkdir(parents=True, exist_ok=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(workdir / "metrics")
    else:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    from sqlalchemy import func, select

    from router.workorders.models import Appeal, WorkOrder
    from service import migrate, outbox, runtime
    from service.bootstrap import load_reference_data
    from service.delivery.models import Delivery

    runtime.reset()
    if not (model_dir / "model.joblib").is_file():
        from fixtures.generator import write_corpus
        from training.workflow import train_model

        print(f"training a demo model (4,000 appeals) into {model_dir} ...", flush=True)
        corpus = workdir / "corpus.csv"
        write_corpus(corpus, 4000, seed=5, progress=False)
        train_model(
            [corpus],
            text_column="text",
            label_column="category_code",
            department_column="department_code",
            out=model_dir,
            seed=0,
        )
    migrate.upgrade(args.database_url)
    database = runtime.get_database()
    load_reference_data(database)
    codes = _department_codes()
    _purge_department_queues(args.amqp_url, codes)
    # Texts and callers differ from run to run: an earlier run's appeals in the database are no
    # duplicates and no repeat callers of this one's.
    run_seed = os.urandom(8).hex()
    texts = _texts(args.texts, seed=int(run_seed[:8], 16))
    with database.session() as session:
        marker = session.scalar(select(func.coalesce(func.max(Appeal.id), 0))) or 0

    log = (workdir / "workers.log").open("ab")
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "service.cli",
                "worker",
                "--queues",
                "dispatch",
                "--concurrency",
                str(args.worker_concurrency),
                "--pool",
                args.worker_pool,
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for _ in range(args.workers)
    ]
    producers: list[Any] = []
    try:
        _wait_for_workers(args.workers)
        context = multiprocessing.get_context("spawn")
        results, ready, go = context.Queue(), context.Queue(), context.Event()
        producers = [
            context.Process(
                target=_producer,
                args=(
                    i,
                    args.producers,
                    args.threads,
                    run_seed,
                    args.rate / args.producers,
                    args.duration,
                    texts,
                    ready,
                    go,
                    results,
                ),
            )
            for i in range(args.producers)
        ]
        for process in producers:
            process.start()
        waiting = len(producers)
        while waiting:  # each producer has loaded the model
            try:
                ready.get(timeout=1.0)
                waiting -= 1
            except queue.Empty:
                if any(process.exitcode is not None for process in producers):
                    raise SystemExit("error: a producer died while starting (see above)") from None
        worker_cpu_before = sum(_process_cpu(w.pid) for w in workers)
        services_cpu_before = _services_cpu(args.services_dir)
        window_start = datetime.now(UTC)
        go.set()
        reports = [results.get(timeout=args.duration + 120) for _ in producers]
        window_end = window_start + timedelta(seconds=args.duration)
        for process in producers:
            process.join(timeout=30)
        drain_started = time.monotonic()
        deliveries_query = (
            select(func.count())
            .select_from(Delivery)
            .join(WorkOrder, Delivery.work_order_id == WorkOrder.id)
            .where(WorkOrder.appeal_id > marker)
        )
        last_relay = 0.0
        while True:
            with database.session() as session:
                pending = session.scalar(deliveries_query.where(Delivery.status == "pending"))
                if time.monotonic() - last_relay > 5:
                    outbox.publish(session, runtime.send_task, older_than=timedelta(seconds=5))
                    last_relay = time.monotonic()
            if not pending or time.monotonic() - drain_started > args.drain_timeout:
                break
            time.sleep(0.5)
        drain = time.monotonic() - drain_started
        worker_cpu = sum(_process_cpu(w.pid) for w in workers) - worker_cpu_before
        services_after = _services_cpu(args.services_dir)
        services_cpu = (
            None
            if services_after is None or services_cpu_before is None
            else (
                services_after[0] - services_cpu_before[0],
                services_after[1] - services_cpu_before[1],
            )
        )
    finally:
        for process in producers:
            if process.is_alive():
                process.terminate()
        for worker in workers:
            worker.terminate()
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        log.close()

    with database.session() as session:
        accepted = (
            session.scalar(select(func.count()).select_from(Appeal).where(Appeal.id > marker)) or 0
        )
        rows = session.execute(
            select(
                Delivery.delivery_key,
                Delivery.status,
                Delivery.sent_at,
                Delivery.department_code,
                WorkOrder.department_code,
                Appeal.received_at,
            )
            .join(WorkOrder, Delivery.work_order_id == WorkOrder.id)
            .join(Appeal, WorkOrder.appeal_id == Appeal.id)
            .where(Appeal.id > marker)
        ).all()
    received = _drain_department_queues(args.amqp_url, codes)
    keys = {row[0]: row for row in rows}
    unique = set(received)
    ours = unique & set(keys)
    lead_messages = sum(1 for key in ours if keys[key][3] == keys[key][4])
    sent = [row for row in rows if row[1] == "sent"]
    in_window = sum(1 for row in sent if row[2] is not None and row[2] <= window_end)
    end_to_end = [(row[2] - row[5]).total_seconds() for row in sent if row[2] is not None]
    latencies = [value for report in reports for value in report.latencies]
    errors = sum(report.errors for report in reports)
    producer_cpu = sum(report.cpu_seconds for report in reports)
    intake_rate = sum(report.accepted for report in reports) / args.duration

    table = [
        ("offered rate", f"{args.rate:.0f} appeals/s for {args.duration:.0f} s"),
        ("appeals accepted", f"{accepted}  ({intake_rate:.1f}/s)"),
        ("intake errors", f"{errors}" + (f"  last: {reports[-1].last_error}" if errors else "")),
        ("dispatched at intake", f"{sum(r.dispatched for r in reports)}"),
        (
            "intake group commits (appeals per batch)",
            f"{sum(r.batches for r in reports)} "
            f"({sum(r.items for r in reports) / max(sum(r.batches for r in reports), 1):.1f})",
        ),
        ("deliveries recorded / sent", f"{len(rows)} / {len(sent)}"),
        ("messages in department queues", f"{len(received)} ({len(unique)} unique ids)"),
        ("duplicates", f"{len(received) - len(unique)}"),
        ("lead-department messages", f"{lead_messages}  (must equal appeals accepted)"),
        ("deliveries sent within the window", f"{in_window}  ({in_window / args.duration:.1f}/s)"),
        ("drain after the window", f"{drain:.1f} s"),
        (
            "intake latency p50 / p99",
            f"{_percentile(latencies, 0.5) * 1000:.0f} / "
            f"{_percentile(latencies, 0.99) * 1000:.0f} ms",
        ),
        (
            "intake -> queue p50 / p99",
            f"{_percentile(end_to_end, 0.5):.2f} / {_percentile(end_to_end, 0.99):.2f} s",
        ),
        (
            "CPU s: producers / workers / PostgreSQL / RabbitMQ",
            " / ".join(f"{cpu:.1f}" for cpu in (producer_cpu, worker_cpu, *services_cpu))
            if services_cpu is not None
            else f"{producer_cpu:.1f} / {worker_cpu:.1f} / n/a / n/a",
        ),
        (
            "CPU ms per appeal: producers / workers / PostgreSQL / RabbitMQ",
            " / ".join(
                f"{cpu / max(accepted, 1) * 1000:.1f}"
                for cpu in (producer_cpu, worker_cpu, *(services_cpu or ()))
            )
            + ("" if services_cpu is not None else " / n/a / n/a"),
        ),
        (
            "CPU ms per appeal, all stages",
            f"{(producer_cpu + worker_cpu + sum(services_cpu or ())) / max(accepted, 1) * 1000:.1f}"
            + ("" if services_cpu is not None else " (without the services)"),
        ),
        ("load average (1 min) at the end", f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"),
    ]
    width = max(len(name) for name, _ in table)
    print()
    for name, value in table:
        print(f"{name:<{width}}  {value}")
    print(
        f"(worker log: {workdir / 'workers.log'}; peak RSS of this process "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; "
        f"median intake {statistics.median(latencies) * 1000 if latencies else 0:.0f} ms)"
    )
    ok = lead_messages == accepted and len(ours) == len(rows) and accepted > 0
    print("delivered == accepted: " + ("yes" if ok else "NO"))
    return {
        "ok": float(ok),
        "accepted": float(accepted),
        "duration": args.duration,
        "producer_cpu": producer_cpu,
        "worker_cpu": worker_cpu,
        "model_dir": str(model_dir),
    }


if __name__ == "__main__":
    raise SystemExit(main())
