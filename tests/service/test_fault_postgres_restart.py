"""PostgreSQL restarted under a stream of appeals: every stored appeal is routed.

A live API server takes 20 appeals/s from clients that retry (same idempotency key) on any
failure, like the channels do; mid-stream the test command's own PostgreSQL is crash-stopped and
started again (`scripts/services.sh pg-restart`). An appeal whose first transaction committed
while its client got an error stays `received`; the beat schedule's `dispatch.triage_pending`
must route it. At the end every appeal is stored once and is in review or dispatched.

It restarts only a PostgreSQL that `scripts/services.sh` started for this checkout (the one
`HOTLINE_TEST_SERVICES_DIR` names, as `make test` exports, on the port of
HOTLINE_TEST_POSTGRES_URL): never a server it does not own.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from router.workorders.models import Appeal, WorkOrder
from service import runtime
from tests.conftest import DEMO_PASSWORD, POSTGRES_URL

pytestmark = [
    pytest.mark.slow,
    # sockets the server cuts while PostgreSQL is away are reported when collected
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

ROOT = Path(__file__).resolve().parents[2]
RATE = 20  # appeals per second
DURATION = 12.0  # seconds of traffic
RESTART_AT = 4.0  # seconds into the stream
DOWN_FOR = 3  # seconds PostgreSQL stays down
TRIAGE_AGE = 30  # seconds: dispatch.triage_pending leaves younger orders to intake
TEXTS = (
    "小区门口的路灯坏了半个多月，晚上一片漆黑，请尽快维修。",
    "楼上邻居每天深夜装修，噪音很大，影响休息。",
    "公交站台的顶棚破损，下雨天无法避雨。",
    "小区垃圾清运不及时，已经堆了三天，气味很大。",
)


def owned_services_dir() -> str:
    """The services dir whose PostgreSQL serves the test URL; skip unless there is one."""
    services_dir = os.environ.get("HOTLINE_TEST_SERVICES_DIR", "")
    if not POSTGRES_URL or not services_dir:
        pytest.skip("needs the PostgreSQL `make test` starts (HOTLINE_TEST_SERVICES_DIR)")
    status = subprocess.run(
        [str(ROOT / "scripts" / "services.sh"), "status"],
        env=os.environ | {"HOTLINE_TEST_SERVICES_DIR": services_dir},
        capture_output=True,
        text=True,
    ).stdout
    running = re.search(r"postgres: running \(pid \d+\) on 127\.0\.0\.1:(\d+)", status)
    if running is None or int(running.group(1)) != make_url(POSTGRES_URL).port:
        pytest.skip(f"the PostgreSQL of {services_dir} is not the test database's server")
    return services_dir


@pytest.fixture
def durable_commits(seeded_env: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test server runs with `synchronous_commit = off` (speed); a crash then loses commits
    already acknowledged, by design of that setting. Production commits are durable: so are the
    service's here (a session setting, which needs no superuser)."""
    url = make_url(seeded_env).update_query_dict({"options": "-c synchronous_commit=on"})
    rendered = url.render_as_string(hide_password=False)
    monkeypatch.setenv("HOTLINE_DATABASE_URL", rendered)
    runtime.reset()
    return rendered


@pytest.fixture
def live_api(durable_commits: str) -> Iterator[str]:
    import uvicorn

    from service.api.app import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="error", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="uvicorn-fault", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


class Client:
    """Submits one appeal until it is accepted, retrying with the same key on any failure."""

    def __init__(self, base_url: str, token: str) -> None:
        self.http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        self.failures: Counter[str] = Counter()
        self.answers: dict[str, str] = {}  # key -> "next" of the accepted answer
        self.numbers: dict[str, tuple[int, str]] = {}  # key -> (status, order number)
        self.lock = threading.Lock()

    def submit(self, key: str, text: str) -> None:
        body = {"channel": "web", "text": text, "idempotency_key": key}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                response = self.http.post("/api/v1/appeals", json=body)
            except httpx.HTTPError as exc:
                self._failed(type(exc).__name__)
            else:
                if response.status_code in (200, 201):
                    with self.lock:
                        self.answers[key] = response.json()["next"]
                        self.numbers[key] = (response.status_code, response.json()["number"])
                    return
                self._failed(str(response.status_code))
            time.sleep(0.5)

    def _failed(self, kind: str) -> None:
        with self.lock:
            self.failures[kind] += 1


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_every_appeal_stored_across_a_postgres_restart_is_routed(live_api: str) -> None:
    from service.worker import tasks  # noqa: F401 - registers the tasks the beat names
    from service.worker.app import celery_app

    services_dir = owned_services_dir()
    schedule = celery_app.conf.beat_schedule["triage-pending"]
    assert schedule["task"] == "dispatch.triage_pending" and schedule["schedule"] <= 60
    token = httpx.post(
        f"{live_api}/api/v1/auth/token", data={"username": "agent", "password": DEMO_PASSWORD}
    ).json()["access_token"]
    client = Client(live_api, token)
    keys = [f"fault-{uuid.uuid4().hex[:12]}-{i}" for i in range(int(RATE * DURATION))]

    restart = threading.Timer(
        RESTART_AT,
        subprocess.run,
        args=([str(ROOT / "scripts" / "services.sh"), "pg-restart", str(DOWN_FOR)],),
        kwargs={
            "env": os.environ | {"HOTLINE_TEST_SERVICES_DIR": services_dir},
            "check": True,
            "capture_output": True,
        },
    )
    started = time.monotonic()
    restart.start()
    with ThreadPoolExecutor(max_workers=48) as pool:
        futures = []
        for i, key in enumerate(keys):
            time.sleep(max(0.0, started + i / RATE - time.monotonic()))
            futures.append(pool.submit(client.submit, key, TEXTS[i % len(TEXTS)]))
        for future in futures:
            future.result()
    restart.join()
    client.http.close()
    assert client.failures, "the restart must have been felt by the clients"
    assert not [kind for kind in client.failures if kind.startswith("5") and kind != "503"], (
        f"a database outage is a 503 (retry), never a 500: {dict(client.failures)}"
    )
    assert set(client.answers) == set(keys), "every appeal accepted in the end"

    with runtime.get_database().session() as db_session:
        rows = db_session.execute(
            select(Appeal.idempotency_key, WorkOrder.state, WorkOrder.created_at)
            .join(WorkOrder, WorkOrder.appeal_id == Appeal.id)
            .where(Appeal.idempotency_key.in_(keys))
        ).all()
    missing = {key: client.numbers[key] for key in set(keys) - {row[0] for row in rows}}
    assert not missing, f"answered but not stored: {missing}"
    assert len(rows) == len(keys), "each appeal stored exactly once"
    stuck = [key for key, state, _ in rows if state == "received"]
    replies = Counter(client.answers.values())
    print(f"failures seen by clients {dict(client.failures)}; answers {dict(replies)}; ")
    print(f"left received by intake: {len(stuck)}")

    # What the beat does every minute: dispatch.triage_pending, once its cut-off has passed.
    newest = max(created_at for _, _, created_at in rows).timestamp()
    time.sleep(max(0.0, newest + TRIAGE_AGE + 1 - time.time()))
    celery_app.tasks[schedule["task"]]()
    with runtime.get_database().session() as db_session:
        states = Counter(
            db_session.scalars(
                select(WorkOrder.state)
                .join(Appeal, WorkOrder.appeal_id == Appeal.id)
                .where(Appeal.idempotency_key.in_(keys))
            )
        )
    assert set(states) <= {"review", "dispatched"}, states
    assert sum(states.values()) == len(keys)
