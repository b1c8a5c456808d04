"""Prometheus metrics: `/metrics` behind its token, figures that agree with the database, task
metrics from a real worker, and multi-process aggregation."""

from __future__ import annotations

import os
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from router.workorders.models import WorkOrder
from service import runtime
from service.config import get_settings
from service.delivery import service as delivery_service
from service.delivery.models import DeadLetter, Delivery
from service.outbox import OutboxMessage
from tests.support import wait_for

TOKEN = "metrics-token-for-tests-0123456789"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
Login = Callable[[str], dict[str, str]]

APPEAL_TEXTS = [
    "小区门口路灯坏了好几天了，晚上很黑，希望尽快修理",
    "楼上住户装修噪音太大，每天早上七点就开始施工",
    "公交站台的遮雨棚破损，下雨天没法等车",
    "学校附近的道路经常有大货车超速行驶，很危险",
    "菜市场的下水道堵塞了，污水横流，气味很大",
]


def samples(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def metrics_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_METRICS_TOKEN", TOKEN)
    monkeypatch.setenv("HOTLINE_METRICS_CACHE_SECONDS", "0")
    get_settings.cache_clear()


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


def test_metrics_are_refused_without_the_token(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    response = client.get("/metrics")
    assert response.status_code == 404  # no token configured: not served on the API port
    assert response.json()["error"] == "NotFound"
    monkeypatch.setenv("HOTLINE_METRICS_TOKEN", TOKEN)
    get_settings.cache_clear()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "Unauthorized"
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_scrape_agrees_with_the_database(
    client: TestClient, login: Login, metrics_on: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = scrape(client)
    agent = login("agent")
    for text in APPEAL_TEXTS[:2]:  # the demo model is not sure enough: review
        assert client.post("/api/v1/appeals", json={"channel": "web", "text": text}, headers=agent)
    monkeypatch.setenv("HOTLINE_AUTO_DISPATCH_THRESHOLD", "0")
    get_settings.cache_clear()
    for text in APPEAL_TEXTS[2:]:
        response = client.post(
            "/api/v1/appeals", json={"channel": "phone", "text": text}, headers=agent
        )
        assert response.status_code == 201, response.text
    refused = client.post(
        "/api/v1/appeals", json={"channel": "wechat", "text": "hello world"}, headers=agent
    )
    assert refused.status_code == 422

    with runtime.get_database().session() as session:
        by_state = dict(
            session.execute(select(WorkOrder.state, func.count()).group_by(WorkOrder.state)).all()
        )
        # deliveries of the dispatched orders (the embedded broker has no department queues):
        # one dead-lettered, the others pending; and one outbox message not sent
        orders = session.scalars(select(WorkOrder).where(WorkOrder.state == "dispatched")).all()
        rows = [
            Delivery(
                work_order_id=order.id,
                department_code=order.department_code,
                channel="rabbitmq",
                dispatch_sequence=1,
                delivery_key=delivery_service.delivery_key(
                    order.number, 1, str(order.department_code), "rabbitmq"
                ),
            )
            for order in orders
        ]
        session.add_all(rows)
        session.flush()
        delivery_service.fail_delivery(
            db_session=session, delivery_id=rows[0].id, reason="test: refused by broker"
        )
        session.add(OutboxMessage(task="system.probe", kwargs={"probe_id": "x"}))
    after = scrape(client)

    def delta(channel: str, outcome: str) -> float:
        name = "hotline_appeals_total"
        return value(after, name, channel=channel, outcome=outcome) - value(
            before, name, channel=channel, outcome=outcome
        )

    assert delta("web", "review") == by_state.get("review", 0) == 2
    assert delta("phone", "auto_dispatched") == by_state.get("dispatched", 0) == 3
    assert delta("wechat", "refused") == 1
    confidence = "hotline_classification_confidence_count"
    assert value(after, confidence) - value(before, confidence) == 5

    with runtime.get_database().session() as session:
        unsent = session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.sent_at.is_(None))
        )
        pending = dict(
            session.execute(
                select(Delivery.department_code, func.count())
                .where(Delivery.status == "pending")
                .group_by(Delivery.department_code)
            ).all()
        )
        dead = session.execute(
            select(Delivery.department_code)
            .join(DeadLetter, DeadLetter.reference == Delivery.delivery_key)
            .where(DeadLetter.resolved_at.is_(None))
        ).all()
    assert unsent >= 1
    assert value(after, "hotline_outbox_backlog") == unsent
    assert value(after, "hotline_outbox_oldest_age_seconds") >= 0
    for code, count in pending.items():
        assert value(after, "hotline_deliveries_pending", department=code) == count
    assert len(dead) == 1
    assert value(after, "hotline_dead_letters", kind="delivery", department=dead[0][0]) == 1
    assert value(after, "hotline_ready", check="database") == 1
    route = {"method": "POST", "route": "/api/v1/appeals", "status": "201"}
    count = "hotline_http_request_duration_seconds_count"
    assert value(after, count, **route) - value(before, count, **route) == 5


def test_a_request_id_is_kept_when_sane_and_made_up_otherwise(client: TestClient) -> None:
    kept = client.get("/healthz", headers={"X-Request-ID": "call-42.a:b"})
    assert kept.headers["x-request-id"] == "call-42.a:b"
    for bad in (b"x" * 129, b"has space", "电话13812345678".encode()):
        made = client.get("/healthz", headers={"X-Request-ID": bad})
        assert made.headers["x-request-id"].encode() != bad
        assert len(made.headers["x-request-id"]) == 32
    assert client.get("/no/such/page").headers["x-request-id"]


def test_metrics_port_serves_the_same_figures_without_the_token(
    seeded_env: str, tmp_path: Path, python: str
) -> None:
    """`HOTLINE_METRICS_PORT`: a separate exporter in the command's process (multi-process mode)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = textwrap.dedent(
        """
        import sys, time, urllib.request
        from service.cli import ops
        from service.config import get_settings
        settings = get_settings()
        ops._prepare_metrics(settings, port=settings.metrics_port, database=True)
        from service.observability import metrics
        metrics.record_refused("web")
        url = f"http://127.0.0.1:{settings.metrics_port}/metrics"
        sys.stdout.write(urllib.request.urlopen(url, timeout=10).read().decode())
        """
    )
    env = {
        **os.environ,
        "HOTLINE_METRICS_PORT": str(port),
        "HOTLINE_METRICS_DIR": str(tmp_path / "metrics"),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    done = subprocess.run(
        [python, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = samples(done.stdout)
    assert value(found, "hotline_appeals_total", channel="web", outcome="refused") == 1
    assert value(found, "hotline_ready", check="database") == 1
    assert ("hotline_outbox_backlog", ()) in found


AGGREGATE = textwrap.dedent(
    """
    import sys
    from service.observability import metrics
    for _ in range(int(sys.argv[1])):
        metrics.record_refused("web")
    metrics.TASK_DURATION.labels("system.probe", "SUCCESS").observe(0.01)
    """
)


def test_multi_process_mode_adds_up_two_processes(tmp_path: Path, python: str) -> None:
    from service.observability import multiprocess

    directory = tmp_path / "metrics"
    directory.mkdir()
    stale = directory / "counter_999999999.db"  # a process that no longer exists
    stale.write_bytes(b"")
    env = {
        **os.environ,
        multiprocess.ENV: str(directory),
        "HOTLINE_VAR_DIR": str(tmp_path / "var"),
    }
    for count in ("3", "4"):
        done = subprocess.run(
            [python, "-c", AGGREGATE, count], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr[-3000:]
    assert len(list(directory.glob("counter_*.db"))) == 3
    # the command's start-up removes the dead processes' files ...
    script = (
        "import sys; from pathlib import Path; from service.observability import multiprocess; "
        "multiprocess.prepare(Path(sys.argv[1]))"
    )
    subprocess.run([python, "-c", script, str(directory)], env=env, check=True, timeout=60)
    assert not stale.exists()
    # ... which are these two too (they have exited): read them before, as a scrape would
    env_dir = tmp_path / "kept"
    env_dir.mkdir()
    env[multiprocess.ENV] = str(env_dir)
    for count in ("3", "4"):
        subprocess.run([python, "-c", AGGREGATE, count], env=env, check=True, timeout=60)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(env_dir))
    found: Samples = {}
    for family in registry.collect():
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    assert value(found, "hotline_appeals_total", channel="web", outcome="refused") == 7
    task = {"task": "system.probe", "state": "SUCCESS"}
    assert value(found, "hotline_task_duration_seconds_count", **task) == 2
    assert not any(name.startswith("hotline_outbox") for name, _ in found)


@pytest.mark.slow
@pytest.mark.parametrize("broker_url", ["sqla"], indirect=True)
def test_a_task_run_by_a_real_worker_is_counted(
    seeded_env: str, broker_url: str, tmp_path: Path, python: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics_dir = tmp_path / "metrics"
    monkeypatch.setenv("HOTLINE_BROKER_URL", broker_url)
    runtime.reset()
    env = {
        **os.environ,
        "HOTLINE_DATABASE_URL": seeded_env,
        "HOTLINE_BROKER_URL": broker_url,
        "HOTLINE_METRICS_DIR": str(metrics_dir),
        "HOTLINE_LOG_FORMAT": "json",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [python, "-m", "service.cli", "worker", "--concurrency", "1", "--pool", "prefork"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            from service.api.app import create_app

            client = TestClient(create_app())
            form = {"username": "admin", "password": os.environ["HOTLINE_DEMO_PASSWORD"]}
            token = client.post("/api/v1/auth/token", data=form).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}", "X-Request-ID": "probe-request-1"}
            probe_id = client.post("/api/v1/system/probes", headers=headers).json()["id"]

            def executed() -> bool:
                body = client.get(f"/api/v1/system/probes/{probe_id}", headers=headers).json()
                return body["state"] == "executed"

            assert wait_for(executed, timeout=60, interval=0.3), log_path.read_text()[-3000:]

            def counted() -> float:
                registry = CollectorRegistry()
                MultiProcessCollector(registry, path=str(metrics_dir))
                for family in registry.collect():
                    for sample in family.samples:
                        if (
                            sample.name == "hotline_task_duration_seconds_count"
                            and sample.labels == {"task": "system.probe", "state": "SUCCESS"}
                        ):
                            return sample.value
                return 0.0

            # the pool child writes the files; the worker is still running (as a scrape finds it)
            assert wait_for(counted, timeout=10) == 1
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    import json

    # every line is JSON but Celery's own farewell, printed by its signal handler
    text = log_path.read_text().replace("worker: Warm shutdown (MainProcess)", "")
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    started = [line for line in lines if line["logger"] == "service.worker.tasks"]
    assert started, lines[-5:]
    assert {line["request_id"] for line in started} == {"probe-request-1"}


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_serve_with_two_workers_reports_both_processes_in_every_scrape(
    seeded_env: str, tmp_path: Path, python: str
) -> None:
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "HOTLINE_DATABASE_URL": seeded_env,
        "HOTLINE_METRICS_TOKEN": TOKEN,
        "HOTLINE_METRICS_DIR": str(tmp_path / "metrics"),
        "HOTLINE_PORT": str(port),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    base = f"http://127.0.0.1:{port}"

    def get(path: str, **headers: str) -> tuple[int, str]:
        request = urllib.request.Request(base + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except OSError:
            return 0, ""

    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [python, "-m", "service.cli", "serve", "--workers", "2"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            assert wait_for(lambda: get("/healthz")[0] == 200, timeout=90, interval=0.5), (
                log_path.read_text()[-3000:]
            )
            from concurrent.futures import ThreadPoolExecutor

            # concurrent connections: both processes take some
            with ThreadPoolExecutor(8) as pool:
                statuses = list(pool.map(lambda _: get("/healthz")[0], range(200)))
            assert statuses == [200] * 200
            served = [
                path
                for path in (tmp_path / "metrics").glob("histogram_*.db")
                if b"/healthz" in path.read_bytes()
            ]
            assert len(served) == 2, f"not both processes served requests: {served}"
            counts = set()
            for _ in range(6):
                status, body = get("/metrics", Authorization=f"Bearer {TOKEN}")
                assert status == 200
                route = {"method": "GET", "route": "/healthz", "status": "200"}
                counts.add(
                    value(samples(body), "hotline_http_request_duration_seconds_count", **route)
                )
            assert counts == {201.0}, counts  # whichever process answers: the sum of both
        finally:
            server.terminate()
            server.wait(timeout=30)
