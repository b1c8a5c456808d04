"""Benchmark ``POST /api/v1/classify`` over HTTP at a fixed request rate (open loop).

    python -m benchmarks.api_classify [--rate 100] [--duration 30] [--warmup 3]
    python -m benchmarks.api_classify --url http://127.0.0.1:8000 --username agent --password …
    python -m benchmarks.api_classify --login-flood 9 [--no-login-throttle]

Without ``--url`` it prepares its own embedded deployment under ``var/bench-api-classify/``
(SQLite, reference data, demo accounts and a demo model trained from a seeded corpus of
``--corpus-size`` appeals, kept for the next run) and starts ``hotline serve`` (one uvicorn
process) on a free port. Request texts are seeded demo appeals in the three channel styles.

The client writes HTTP/1.1 on keep-alive connections itself (httpx would cost it several ms of
CPU per request on a busy machine, and a lagging client hides the server's latency). Open loop:
request *i* is sent at ``start + i / rate`` whether or not earlier ones have been
answered, and its latency is measured from that scheduled instant, so a stalled server shows up
as latency instead of silently lowering the rate (no coordinated omission). Prints the requests
sent, the rate achieved, errors (transport failures and non-200 answers), latency p50 / p95 /
p99 / max, the server process's CPU time per request, and the load average: the client shares
the machine, and so may other jobs.

``--login-flood N`` also sends N failed sign-ins per second (`admin` with wrong passwords, from
the same address) for the whole measurement, as a password-guessing attack would, and prints how
they were answered (401: a password was hashed; 429: refused by the sign-in throttle before
hashing). ``--no-login-throttle`` raises the throttle's limits out of reach in the server it
starts, which is how the service behaved before it had one.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = ROOT / "var" / "bench-api-classify"
DEMO_PASSWORD = "bench-demo-password"
TIMEOUT = 10.0  # seconds a request may take before it counts as an error


@dataclass
class Outcome:
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    samples: dict[str, str] = field(default_factory=dict)  # the first answer of each error
    late_sends: int = 0  # requests the client itself sent more than 5 ms after their slot

    def error(self, kind: str, sample: str = "") -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self.samples.setdefault(kind, sample[:300])


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environment(corpus_size: int, *, login_throttle: bool = True) -> dict[str, str]:
    env = dict(os.environ)
    if not login_throttle:
        env["HOTLINE_LOGIN_MAX_FAILURES_PER_ACCOUNT"] = "1000000000"
        env["HOTLINE_LOGIN_MAX_FAILURES_PER_ADDRESS"] = "1000000000"
    env.update(
        {
            "HOTLINE_ENVIRONMENT": "development",
            "HOTLINE_VAR_DIR": str(VAR_DIR),
            "HOTLINE_DEMO_PASSWORD": DEMO_PASSWORD,
            "HOTLINE_DEMO_CORPUS_SIZE": str(corpus_size),
            "HOTLINE_LOG_LEVEL": "WARNING",
        }
    )
    for name in ("HOTLINE_DATABASE_URL", "HOTLINE_BROKER_URL", "HOTLINE_MODEL_DIR"):
        env.pop(name, None)
    return env


def _prepare(env: dict[str, str]) -> None:
    """Migrate, load reference data, seed accounts, train the demo model once (in a child)."""
    script = (
        "import shutil\n"
        "from classifier import load_model\n"
        "from classifier.errors import ClassifierError\n"
        "from service.bootstrap import ensure_demo_model, load_reference_data, "
        "seed_demo_accounts\n"
        "from service.runtime import get_database, get_settings\n"
        "load_reference_data(get_database())\n"
        "seed_demo_accounts(get_database(), get_settings())\n"
        "model_dir = get_settings().model_dir\n"
        "try:\n"
        "    load_model(model_dir)\n"
        "except ClassifierError as exc:  # missing, or made by another classifier version\n"
        "    print(f'retraining the demo model: {exc}')\n"
        "    shutil.rmtree(model_dir, ignore_errors=True)\n"
        "ensure_demo_model(get_settings())\n"
    )
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # A fresh database each run (seconds); only the trained model is worth keeping.
    for stale in VAR_DIR.glob("hotline.sqlite3*"):
        stale.unlink()
    subprocess.run([sys.executable, "-m", "service.cli", "migrate"], env=env, check=True)
    subprocess.run([sys.executable, "-c", script], env=env, check=True, cwd=ROOT)


def _start_server(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"error: the server exited with code {server.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.terminate()
    raise SystemExit("error: the server did not start within 60 s")


def _texts(count: int, seed: int) -> list[str]:
    from fixtures.generator import write_corpus

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "texts.csv"
        write_corpus(path, count, seed=seed, progress=False)
        with path.open(encoding="utf-8") as handle:
            return [row["text"] for row in csv.DictReader(handle)]


def _token(base_url: str, username: str, password: str) -> str:
    response = httpx.post(
        f"{base_url}/api/v1/auth/token",
        data={"username": username, "password": password},
        timeout=10,
    )
    if response.status_code != 200:
        raise SystemExit(f"error: sign-in as {username} failed: {response.status_code}")
    token: str = response.json()["access_token"]
    return token


class _Connections:
    """Keep-alive HTTP/1.1 connections written by hand: the client must cost far less CPU than
    the server it measures (httpx spends milliseconds per request on a busy machine)."""

    def __init__(self, base_url: str) -> None:
        url = httpx.URL(base_url)
        self.host = url.host
        self.port = url.port or 80
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def request(self, payload: bytes) -> tuple[int, bytes]:
        # An idle connection may have been closed by the server (keep-alive timeout): then
        # the request goes again on a new one.
        for reuse in (bool(self.idle), False):
            if reuse:
                reader, writer = self.idle.pop()
            else:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            try:
                writer.write(payload)
                status_line = await reader.readline()
                if not status_line:
                    writer.close()
                    continue
                status = int(status_line.split()[1])
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
            except BaseException:
                writer.close()
                raise
            self.idle.append((reader, writer))
            return status, body
        raise ConnectionResetError("the server closed the connection without answering")

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


def _payloads(base_url: str, token: str, texts: list[str]) -> list[bytes]:
    host = httpx.URL(base_url).netloc.decode()
    encoded = []
    for text in texts:
        body = json.dumps({"text": text}, ensure_ascii=False).encode()
        head = (
            f"POST /api/v1/classify HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        encoded.append(head.encode() + body)
    return encoded


async def _load(
    base_url: str, payloads: list[bytes], rate: float, seconds: float
) -> tuple[Outcome, float]:
    """Send `rate * seconds` requests on schedule; returns the outcome and the elapsed time."""
    outcome = Outcome()
    total = int(rate * seconds)
    connections = _Connections(base_url)

    async def one(index: int, scheduled: float) -> None:
        try:
            status, body = await asyncio.wait_for(
                connections.request(payloads[index % len(payloads)]), timeout=TIMEOUT
            )
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            outcome.error(type(exc).__name__)
            return
        if status != 200:
            outcome.error(f"HTTP {status}", body.decode("utf-8", "replace"))
            return
        outcome.latencies_ms.append((time.perf_counter() - scheduled) * 1000)

    start = time.perf_counter() + 0.05
    tasks = []
    for index in range(total):
        scheduled = start + index / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.005:
            outcome.late_sends += 1
        tasks.append(asyncio.create_task(one(index, scheduled)))
    await asyncio.gather(*tasks)
    connections.close()
    return outcome, time.perf_counter() - start


def _flood_payloads(base_url: str, count: int) -> list[bytes]:
    host = httpx.URL(base_url).netloc.decode()
    encoded = []
    for index in range(count):
        body = f"username=admin&password=guess-{index:06d}".encode()
        head = (
            f"POST /api/v1/auth/token HTTP/1.1\r\nHost: {host}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        encoded.append(head.encode() + body)
    return encoded


async def _flood(base_url: str, rate: float, seconds: float, answers: dict[str, int]) -> None:
    """Failed sign-ins at `rate` per second for `seconds`, counting the answers by status."""
    total = int(rate * seconds)
    payloads = _flood_payloads(base_url, total)
    connections = _Connections(base_url)

    async def one(index: int) -> None:
        try:
            status, _ = await asyncio.wait_for(
                connections.request(payloads[index]), timeout=TIMEOUT * 3
            )
            kind = str(status)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            kind = type(exc).__name__
        answers[kind] = answers.get(kind, 0) + 1

    start = time.perf_counter()
    tasks = []
    for index in range(total):
        delay = start + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index)))
    await asyncio.gather(*tasks)
    connections.close()


async def _measure(
    base_url: str, payloads: list[bytes], rate: float, seconds: float, flood_rate: float
) -> tuple[Outcome, float, dict[str, int]]:
    answers: dict[str, int] = {}
    if flood_rate <= 0:
        outcome, elapsed = await _load(base_url, payloads, rate, seconds)
        return outcome, elapsed, answers
    (outcome, elapsed), _ = await asyncio.gather(
        _load(base_url, payloads, rate, seconds), _flood(base_url, flood_rate, seconds, answers)
    )
    return outcome, elapsed, answers


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first")
    parser.add_argument("--url", help="an already running server (default: start one)")
    parser.add_argument("--username", default="agent")
    parser.add_argument("--password", default=None, help="default: the benchmark's own")
    parser.add_argument("--corpus-size", type=int, default=20000, help="demo model corpus")
    parser.add_argument("--texts", type=int, default=2000, help="distinct request texts")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--login-flood", type=float, default=0.0, help="failed sign-ins per second meanwhile"
    )
    parser.add_argument(
        "--no-login-throttle",
        action="store_true",
        help="start the server with the sign-in throttle out of reach (the behaviour before it)",
    )
    args = parser.parse_args(argv)

    server = None
    if args.url:
        base_url = args.url.rstrip("/")
        password = args.password or os.environ.get("HOTLINE_DEMO_PASSWORD", "hotline12345")
    else:
        env = _environment(args.corpus_size, login_throttle=not args.no_login_throttle)
        _prepare(env)
        port = _free_port()
        server = _start_server(env, port)
        base_url = f"http://127.0.0.1:{port}"
        password = args.password or DEMO_PASSWORD
    try:
        texts = _texts(args.texts, args.seed)
        token = _token(base_url, args.username, password)
        # The first request loads the model (seconds): a cold start, not the steady state.
        httpx.post(
            f"{base_url}/api/v1/classify",
            json={"text": texts[0]},
            headers={"Authorization": f"Bearer {token}"},
            timeout=300,
        ).raise_for_status()
        payloads = _payloads(base_url, token, texts)
        if args.warmup > 0:
            asyncio.run(_load(base_url, payloads, args.rate, args.warmup))
        load_before = os.getloadavg()
        cpu_before = _cpu_seconds(server.pid) if server else None
        outcome, elapsed, flood = asyncio.run(
            _measure(base_url, payloads, args.rate, args.duration, args.login_flood)
        )
        cpu_after = _cpu_seconds(server.pid) if server else None
        load_after = os.getloadavg()
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:  # requests still queued inside it
                server.kill()
                server.wait()

    sent = int(args.rate * args.duration)
    ok = outcome.latencies_ms
    rows: list[tuple[str, str]] = [
        ("requests sent", f"{sent} at {args.rate:g}/s over {args.duration:g} s"),
        ("rate achieved", f"{sent / elapsed:.1f}/s ({outcome.late_sends} sent >5 ms late)"),
        ("answered 200", str(len(ok))),
        ("errors", ", ".join(f"{k}: {v}" for k, v in outcome.errors.items()) or "0"),
    ]
    if ok:
        rows += [
            (f"latency {name}", f"{_percentile(ok, share):.1f} ms")
            for name, share in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))
        ]
        rows.append(("latency max", f"{max(ok):.1f} ms"))
    if cpu_before is not None and cpu_after is not None:
        per_request = (cpu_after - cpu_before) / max(1, len(ok)) * 1000
        rows.append(("server CPU per request", f"{per_request:.2f} ms"))
    if args.login_flood > 0:
        throttle = "off (--no-login-throttle)" if args.no_login_throttle else "on"
        answered = ", ".join(f"{k}: {v}" for k, v in sorted(flood.items()))
        rows.append(
            (f"failed sign-ins at {args.login_flood:g}/s", f"{answered}; throttle {throttle}")
        )
    rows.append(("load average (1 min)", f"{load_before[0]:.2f} before, {load_after[0]:.2f} after"))
    rows.append(("CPU cores", str(os.cpu_count())))
    width = max(len(name) for name, _ in rows)
    print(f"\nPOST /api/v1/classify, open loop ({base_url})")
    print(f"{'measure':<{width}} | value")
    print(f"{'-' * width}-|------")
    for name, value in rows:
        print(f"{name:<{width}} | {value}")
    for kind, sample in outcome.samples.items():
        if sample:
            print(f"first {kind}: {sample}")
    return 0 if not outcome.errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
