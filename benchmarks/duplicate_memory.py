"""Memory of duplicate detection with N processes: an index in every process, or one duplicate
server per host (`HOTLINE_DUPLICATE_SERVER`, service/duplicate_server.py).

    python -m benchmarks.duplicate_memory [--appeals 300000] [--processes 1,2,4] [--queries 300]

For each N, two layouts run with N "checking" processes alive at the same time (as N API
processes, consumers or workers on one host):

- own index: each process builds its own 30-day `DuplicateIndex` of `--appeals` appeals (the
  synthetic city of benchmarks/duplicates.py, same seed) and runs `--queries` checks;
- duplicate server: one server process builds the index, and each of the N processes runs its
  checks through `RemoteDetector` over a Unix socket.

Prints, per layout and N: the resident set (VmRSS) and the proportional set (Pss, shared pages
divided among their users) of every process summed, the largest single process, and the check
latency p50 / p99 seen by the checking processes. Memory is read from /proc (Linux).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

END = datetime(2026, 6, 30, tzinfo=UTC)
DAYS = 30
AUTHKEY = b"benchmark only"


def _memory_mib() -> tuple[float, float]:
    """(VmRSS, Pss) of this process in MiB."""
    rss = pss = 0.0
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024.0
    with open("/proc/self/smaps_rollup") as handle:
        for line in handle:
            if line.startswith("Pss:"):
                pss = int(line.split()[1]) / 1024.0
    return rss, pss


def _build(appeals: int, seed: int) -> tuple[Any, Any]:
    from benchmarks.duplicates import City
    from router.duplicates.index import DuplicateConfig, DuplicateIndex

    city = City(seed)
    index = DuplicateIndex(DuplicateConfig(window=timedelta(days=DAYS)))
    index.extend(city.stream(DAYS, max(appeals // DAYS, 1), END))
    return city, index


def _queries(city: Any, count: int, offset: int) -> list[Any]:
    return [
        city.appeal(END + timedelta(seconds=offset * count + i), repeat_share=1 / 3)
        for i in range(count)
    ]


def _time_checks(check: Any, records: list[Any]) -> list[float]:
    latencies = []
    for record in records:
        t0 = time.perf_counter()
        check(record)
        latencies.append((time.perf_counter() - t0) * 1000.0)
    return latencies


def _own_index(appeals: int, seed: int, queries: int, number: int, pipe: Connection) -> None:
    city, index = _build(appeals, seed)

    def check(record: Any) -> None:
        index.check(record)
        index.add(record)

    latencies = _time_checks(check, _queries(city, queries, number))
    pipe.send((_memory_mib(), latencies))
    pipe.recv()  # stay alive until every process has been measured


def _server(appeals: int, seed: int, address: str, pipe: Connection) -> None:
    from service.duplicate_server import DuplicateServer

    _, index = _build(appeals, seed)
    lock = threading.Lock()  # as DuplicateDetector's: the index has one writer at a time

    def check_many(records: list[Any]) -> list[Any]:
        results = []
        with lock:
            for record in records:
                results.append(index.check(record))
                index.add(record)
        return results

    server = DuplicateServer(address, AUTHKEY, check_many, lambda: 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    pipe.send("ready")
    pipe.recv()  # measure
    pipe.send(_memory_mib())
    pipe.recv()
    server.close()


def _client(seed: int, queries: int, number: int, address: str, pipe: Connection) -> None:
    from benchmarks.duplicates import City
    from service.duplicate_server import RemoteDetector

    city = City(seed + 1 + number)  # the queries only; the index lives in the server
    remote = RemoteDetector(address, AUTHKEY)
    latencies = _time_checks(
        lambda record: remote.check_many(records=[record]), _queries(city, queries, number)
    )
    pipe.send((_memory_mib(), latencies))
    pipe.recv()
    remote.close()


def _collect(pipes: list[Connection]) -> list[Any]:
    return [pipe.recv() for pipe in pipes]


def run_own(n: int, appeals: int, seed: int, queries: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    pipes, procs = [], []
    for i in range(n):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_own_index, args=(appeals, seed, queries, i, child))
        proc.start()
        child.close()  # so that a crashed child is an EOFError here, not a hang
        pipes.append(parent)
        procs.append(proc)
    results = _collect(pipes)
    for pipe in pipes:
        pipe.send("done")
    for proc in procs:
        proc.join()
    memory = [m for m, _ in results]
    return _summary(memory, [lat for _, lats in results for lat in lats])


def run_server(n: int, appeals: int, seed: int, queries: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    address = str(Path(tempfile.mkdtemp(prefix="dupmem-", dir="/tmp")) / "index.sock")
    server_pipe, child = ctx.Pipe()
    server = ctx.Process(target=_server, args=(appeals, seed, address, child))
    server.start()
    child.close()
    assert server_pipe.recv() == "ready"
    pipes, procs = [], []
    for i in range(n):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_client, args=(seed, queries, i, address, child))
        proc.start()
        child.close()
        pipes.append(parent)
        procs.append(proc)
    results = _collect(pipes)
    server_pipe.send("measure")
    server_memory = server_pipe.recv()
    for pipe in pipes:
        pipe.send("done")
    server_pipe.send("done")
    for proc in [*procs, server]:
        proc.join()
    memory = [server_memory, *(m for m, _ in results)]
    return _summary(memory, [lat for _, lats in results for lat in lats])


def _summary(memory: list[tuple[float, float]], latencies: list[float]) -> dict[str, Any]:
    latencies.sort()
    return {
        "processes": len(memory),
        "rss_total": sum(rss for rss, _ in memory),
        "pss_total": sum(pss for _, pss in memory),
        "rss_max": max(rss for rss, _ in memory),
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appeals", type=int, default=300_000)
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args(argv)
    counts = [int(part) for part in args.processes.split(",")]
    print(f"{args.appeals:,} appeals in a {DAYS}-day index; {args.queries} checks per process")
    header = (
        f"{'layout':<18}{'N':>3}{'procs':>7}{'RSS sum MiB':>13}{'PSS sum MiB':>13}"
        f"{'largest MiB':>13}{'check p50 ms':>14}{'p99 ms':>9}"
    )
    print(header)
    for n in counts:
        for name, runner in (("own index", run_own), ("duplicate server", run_server)):
            r = runner(n, args.appeals, args.seed, args.queries)
            print(
                f"{name:<18}{n:>3}{r['processes']:>7}{r['rss_total']:>13.0f}"
                f"{r['pss_total']:>13.0f}{r['rss_max']:>13.0f}{r['p50']:>14.2f}{r['p99']:>9.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
