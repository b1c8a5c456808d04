"""The deployment of docs/deployment.md survives losing one process of each kind.

Real PostgreSQL and RabbitMQ, real processes on two "hosts", each with its duplicate server: two
`hotline serve`, two workers, two schedulers (one runs beat, the other is its standby). Appeals
with idempotency keys are streamed alternately through both APIs, a client retrying with the
same key (on the other API) when a connection fails. Mid-stream one API, one worker and the
active scheduler are killed with SIGKILL. Then: every accepted appeal is stored exactly once with
one work order, every order reaches `review` or `dispatched`, and every dispatch reaches its
department's RabbitMQ queue (once after the department's deduplication on the message id).

The scenario runs once per module; the metrics comparison is its own test so that it can be
skipped on its own when the API has no `/metrics` endpoint.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pika
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from router.workorders.models import Appeal, WorkOrder
from router.workorders.workflow import State
from service.db import Database, create_db_engine
from service.delivery.models import Delivery
from service.delivery.rabbitmq import connection_parameters, routing_key
from service.delivery.service import DELIVER_BATCH_TASK
from service.outbox import OutboxMessage
from tests.conftest import AMQP_URL, DEMO_PASSWORD, POSTGRES_URL, _need
from tests.support import wait_for

# The scenario (set up by the first test) takes about 2 minutes on an idle 2-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

APPEALS = 120
METRICS_TOKEN = "multi-host-metrics-token"
KILL_AFTER = 40
CLIENT_THREADS = 4
SETTLED = ("review", "dispatched")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        with self.log.open("ab") as output:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "service.cli", *self.args],
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        assert self.popen is not None
        os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


@dataclass
class Scenario:
    database: Database
    token: str
    apis: list[str]
    live_apis: list[str]
    accepted: dict[str, str] = field(default_factory=dict)  # idempotency key -> number
    retries: int = 0
    messages: Counter[str] = field(default_factory=Counter)  # department message id -> count
    killed: list[str] = field(default_factory=list)
    accepted_at_kill: int = 0
    logs: dict[str, str] = field(default_factory=dict)


def _texts(count: int) -> list[str]:
    from fixtures.generator import generate_appeals

    return [row["text"] for row in generate_appeals(count, seed=17)]


def _wait_ready(url: str, process: Process) -> None:
    def ready() -> bool:
        assert process.popen is not None and process.popen.poll() is None, process.output()[-3000:]
        try:
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    assert wait_for(ready, timeout=180, interval=0.5), process.output()[-3000:]


def _token(url: str) -> str:
    form = {"username": "agent", "password": DEMO_PASSWORD}
    response = httpx.post(f"{url}/api/v1/auth/token", data=form, timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


class Stream:
    """Clients posting appeals alternately through the APIs, each retrying a failed request with
    the same idempotency key on the next API."""

    def __init__(self, scenario: Scenario, texts: list[str], bearer: str) -> None:
        self.scenario = scenario
        self.items = list(enumerate(texts))
        self.lock = threading.Lock()
        self.bearer = bearer
        self.errors: list[str] = []

    def _next(self) -> tuple[int, str] | None:
        with self.lock:
            return self.items.pop(0) if self.items else None

    def _post(self, index: int, text_: str) -> None:
        key = f"{self.scenario.token}-{index}"
        body = {"channel": "web", "text": text_, "caller_name": self.scenario.token}
        headers = {"Authorization": f"Bearer {self.bearer}", "Idempotency-Key": key}
        apis = self.scenario.apis
        for attempt in range(20):
            url = apis[(index + attempt) % len(apis)]
            try:
                response = httpx.post(
                    f"{url}/api/v1/appeals", json=body, headers=headers, timeout=30
                )
            except httpx.TransportError:
                with self.lock:
                    self.scenario.retries += 1
                time.sleep(0.2)
                continue
            if response.status_code in (200, 201):
                with self.lock:
                    self.scenario.accepted[key] = response.json()["number"]
                return
            self.errors.append(f"{key}: {response.status_code} {response.text[:200]}")
            return
        self.errors.append(f"{key}: no API answered")

    def run(self) -> None:
        while (item := self._next()) is not None:
            self._post(*item)


def _drain_ours(url: str, queues: set[str], ours: set[str]) -> Counter[str]:
    """Take our messages (message id in `ours`) off the department queues; leave the others (the
    broker is shared): they stay unacknowledged until the channel closes, then go back."""
    seen: Counter[str] = Counter()
    connection = pika.BlockingConnection(connection_parameters(url))
    try:
        for queue in sorted(queues):
            channel = connection.channel()
            while True:
                method, properties, _ = channel.basic_get(queue)
                if method is None:
                    break
                if properties.message_id in ours:
                    seen[properties.message_id] += 1
                    channel.basic_ack(method.delivery_tag)
            channel.close()  # requeues what was not ours
    finally:
        connection.close()
    return seen


def _delete_task_queues(url: str, prefix: str) -> None:
    from service.worker.factory import QUEUES

    connection = pika.BlockingConnection(connection_parameters(url))
    try:
        for name in QUEUES:
            connection.channel().queue_delete(prefix + name)
        connection.channel().exchange_delete(prefix + "hotline.tasks")
    finally:
        connection.close()


@pytest.fixture(scope="module")
def scenario(
    _templates: object, demo_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    base_url = _need(POSTGRES_URL, "PostgreSQL")
    amqp_url = _need(AMQP_URL, "RabbitMQ")
    # A database of our own, copied from the seeded template (migrated once, like a release).
    template_url = _templates.postgresql(base_url, seeded=True)  # type: ignore[attr-defined]
    template = make_url(template_url).database
    name = f"{make_url(base_url).database}_multihost_{os.getpid()}"
    admin = create_db_engine(base_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    database_url = make_url(base_url).set(database=name).render_as_string(False)

    root = tmp_path_factory.mktemp("multi-host")
    token = f"mh-{uuid.uuid4().hex[:10]}"
    # Task queues of our own: the test broker is shared with other runs and their workers.
    prefix = f"{token}."
    base_env = {
        "HOTLINE_TASK_QUEUE_PREFIX": prefix,
        **os.environ,
        "HOTLINE_DATABASE_URL": database_url,
        "HOTLINE_BROKER_URL": amqp_url,
        "HOTLINE_MODEL_DIR": str(demo_model_dir),
        "HOTLINE_OUTBOX_RELAY_SECONDS": "1",
        "HOTLINE_SEED_DEMO": "false",
        "HOTLINE_LOG_LEVEL": "INFO",
        "HOTLINE_METRICS_TOKEN": METRICS_TOKEN,
        "HOTLINE_METRICS_CACHE_SECONDS": "0",
    }

    # Two "hosts", each with its duplicate server (a Unix socket path must be short).
    sockets = [f"{tempfile.mkdtemp(prefix='mh-', dir='/tmp')}/index.sock" for _ in range(2)]

    def host(name: str, number: int, *args: str, **extra: str) -> Process:
        var = root / name
        env = {
            **base_env,
            "HOTLINE_VAR_DIR": str(var),
            "HOTLINE_DUPLICATE_SERVER": sockets[number],
            **extra,
        }
        return Process(name, list(args), env, root / f"{name}.log")

    ports = [free_port(), free_port()]
    duplicate_servers = [host(f"duplicates{i}", i, "duplicate-server") for i in range(2)]
    apis = [
        host(f"api{i}", i, "serve", "--port", str(port), HOTLINE_HOST="127.0.0.1")
        for i, port in enumerate(ports)
    ]
    workers = [host(f"worker{i}", i, "worker", "--pool", "solo") for i in range(2)]
    schedulers = [host(f"scheduler{i}", i, "scheduler") for i in range(2)]
    processes = [*duplicate_servers, *apis, *workers, *schedulers]
    database = Database(database_url)
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    result = Scenario(database, token, urls, list(urls))
    try:
        for server in duplicate_servers:
            server.start()
        for server in duplicate_servers:
            warmed = wait_for(lambda s=server: "index warmed" in s.output(), timeout=120)
            assert warmed, server.output()
        for process in processes[len(duplicate_servers) : -1]:
            process.start()
        active, standby = schedulers
        assert wait_for(lambda: "holding the" in active.output(), timeout=120), active.output()
        standby.start()
        assert wait_for(lambda: "standby" in standby.output(), timeout=120), standby.output()
        for url, api in zip(urls, apis, strict=True):
            _wait_ready(url, api)

        stream = Stream(result, _texts(APPEALS), _token(urls[0]))
        threads = [threading.Thread(target=stream.run) for _ in range(CLIENT_THREADS)]
        for thread in threads:
            thread.start()
        assert wait_for(lambda: len(result.accepted) >= KILL_AFTER, timeout=300), stream.errors
        result.accepted_at_kill = len(result.accepted)
        for process in (apis[0], workers[0], active):
            process.kill()
            result.killed.append(process.name)
        result.live_apis = [urls[1]]
        for thread in threads:
            thread.join(timeout=600)
        assert not stream.errors, stream.errors[:5]
        assert wait_for(lambda: "holding the" in standby.output(), timeout=60), standby.output()

        def settled() -> bool:
            with database.session() as session:
                waiting = session.scalar(
                    select(func.count())
                    .select_from(WorkOrder)
                    .where(WorkOrder.state.not_in(SETTLED))
                )
                pending = session.scalar(
                    select(func.count()).select_from(Delivery).where(Delivery.status != "sent")
                )
            return waiting == 0 and pending == 0

        # Orders left `received` by the killed API are routed by beat's triage (every minute).
        assert wait_for(settled, timeout=240, interval=1.0), [p.output()[-2000:] for p in workers]
        with database.session() as session:
            deliveries = session.execute(
                select(Delivery.delivery_key, Delivery.department_code)
            ).all()
        ours = {key for key, _ in deliveries}
        queues = {routing_key(code) for _, code in deliveries}

        def all_arrived() -> bool:
            result.messages.update(_drain_ours(amqp_url, queues, ours))
            return set(result.messages) == ours

        wait_for(all_arrived, timeout=60, interval=1.0)
        time.sleep(1.0)  # let a stray duplicate arrive before the last count
        result.messages.update(_drain_ours(amqp_url, queues, ours))
        result.logs = {process.name: process.output() for process in processes}
        yield result
    finally:
        for process in processes:
            process.stop()
        for socket_ in sockets:
            shutil.rmtree(Path(socket_).parent, ignore_errors=True)
        _delete_task_queues(amqp_url, prefix)
        database.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_every_accepted_appeal_is_stored_once_and_routed(scenario: Scenario) -> None:
    assert len(scenario.accepted) == APPEALS
    assert scenario.killed == ["api0", "worker0", "scheduler0"]
    assert scenario.accepted_at_kill < APPEALS, "the stream ended before the kills"
    with scenario.database.session() as session:
        stored = session.execute(
            select(Appeal.idempotency_key, WorkOrder.number, WorkOrder.state)
            .join(WorkOrder, WorkOrder.appeal_id == Appeal.id)
            .where(Appeal.caller_name == scenario.token)
        ).all()
        appeals = session.scalar(select(func.count()).select_from(Appeal))
        orders_per_appeal = session.execute(
            select(WorkOrder.appeal_id, func.count()).group_by(WorkOrder.appeal_id)
        ).all()
    assert appeals == APPEALS  # nothing stored twice, nothing extra
    assert {key: number for key, number, _ in stored} == scenario.accepted
    assert all(count == 1 for _, count in orders_per_appeal)  # no duplicate work orders
    assert Counter(state for _, _, state in stored).keys() <= set(SETTLED)
    # Every duplicate check went to the host's duplicate server, and none failed.
    assert not any("duplicate check failed" in log for log in scenario.logs.values())
    print(
        f"killed after {scenario.accepted_at_kill} of {APPEALS} appeals; "
        f"{scenario.retries} retries after connection errors; "
        f"states {dict(Counter(state for _, _, state in stored))}"
    )


def test_every_dispatch_reaches_its_department_once(scenario: Scenario) -> None:
    with scenario.database.session() as session:
        dispatched = session.scalar(
            select(func.count()).select_from(WorkOrder).where(WorkOrder.state == "dispatched")
        )
        sent = session.execute(
            select(Delivery.delivery_key, Delivery.work_order_id).where(Delivery.status == "sent")
        ).all()
        statuses = session.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
        by_status = dict(statuses.all())
        batches = session.scalars(
            select(OutboxMessage.kwargs).where(OutboxMessage.task == DELIVER_BATCH_TASK)
        ).all()
        key_of = dict(session.execute(select(Delivery.id, Delivery.delivery_key)).all())
    assert dispatched and by_status == {"sent": len(sent)}
    assert len({order for _, order in sent}) == dispatched  # every dispatched order delivered
    assert set(scenario.messages) == {key for key, _ in sent}  # nothing lost
    # Published twice (same id, the department drops the second) only what the killed worker's
    # task had sent before it could commit: deliveries of one batch task (one group commit).
    twice = {key for key, count in scenario.messages.items() if count > 1}
    assert max(scenario.messages.values()) <= 2, scenario.messages.most_common(3)
    assert any(twice <= {key_of[i] for i in batch["delivery_ids"]} for batch in batches), sorted(
        twice
    )
    print(f"{len(twice)} message(s) published twice, all of one batch task")


def metrics_agree_with_database(api_url: str, database: Database) -> None:
    """Compare the surviving API's `/metrics` with the database: `hotline_work_orders{state}`
    must equal the number of work orders in each state, and the outbox backlog the unsent
    outbox rows."""
    from prometheus_client.parser import text_string_to_metric_families

    headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    response = httpx.get(f"{api_url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text[:300]
    with database.session() as session:
        counts = dict(
            session.execute(select(WorkOrder.state, func.count()).group_by(WorkOrder.state)).all()
        )
        backlog = session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.sent_at.is_(None))
        )
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    by_state = {s.labels["state"]: s.value for s in families["hotline_work_orders"].samples}
    assert by_state == {state.value: float(counts.get(state.value, 0)) for state in State}
    assert [s.value for s in families["hotline_outbox_backlog"].samples] == [float(backlog or 0)]


def test_metrics_agree_with_the_database(scenario: Scenario) -> None:
    metrics_agree_with_database(scenario.live_apis[0], scenario.database)
