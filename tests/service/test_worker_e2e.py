"""A task published by the API is executed by a real worker process, on each broker and database."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service import outbox, runtime
from service.api.app import create_app
from tests.support import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def worker_env(seeded_env: str, broker_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("HOTLINE_BROKER_URL", broker_url)
    runtime.reset()
    return {**os.environ, "HOTLINE_DATABASE_URL": seeded_env, "HOTLINE_BROKER_URL": broker_url}


@pytest.fixture
def worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "worker", "--concurrency", "1", "--pool", "solo"],
        env=worker_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield process
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


def operator_client() -> TestClient:
    """A client signed in as the admin (probes are for operators)."""
    client = TestClient(create_app())
    form = {"username": "admin", "password": os.environ["HOTLINE_DEMO_PASSWORD"]}
    token = client.post("/api/v1/auth/token", data=form).json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def probe_state(client: TestClient, probe_id: str) -> str:
    return client.get(f"/api/v1/system/probes/{probe_id}").json()["state"]


def test_probe_published_by_api_is_executed_by_worker(
    worker: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    client = operator_client()
    response = client.post("/api/v1/system/probes")
    assert response.status_code == 202
    probe_id = response.json()["id"]
    executed = wait_for(
        lambda: probe_state(client, probe_id) == "executed", timeout=45, interval=0.3
    )
    assert executed, (tmp_path / "worker.log").read_text()[-3000:]
    body = client.get(f"/api/v1/system/probes/{probe_id}").json()
    assert body["runs"] == 1


@pytest.mark.parametrize("broker_url", ["rabbitmq"], indirect=True)
def test_probe_accepted_during_broker_outage_runs_after_relay(
    worker: subprocess.Popen[bytes],
    worker_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("HOTLINE_BROKER_URL", "amqp://nobody:nothing@127.0.0.1:9//")
    monkeypatch.setenv("HOTLINE_BROKER_CONNECT_TIMEOUT", "0.5")
    runtime.reset()
    client = operator_client()
    response = client.post("/api/v1/system/probes")
    assert response.status_code == 202  # accepted and stored although the broker is down
    probe_id = response.json()["id"]
    with runtime.get_database().session() as session:
        assert outbox.pending_count(session) == 1

    monkeypatch.setenv("HOTLINE_BROKER_URL", worker_env["HOTLINE_BROKER_URL"])
    runtime.reset()
    from datetime import timedelta

    with runtime.get_database().session() as session:
        assert outbox.publish(session, runtime.send_task, older_than=timedelta(0)) == 1
    client = operator_client()
    executed = wait_for(
        lambda: probe_state(client, probe_id) == "executed", timeout=45, interval=0.3
    )
    assert executed, (tmp_path / "worker.log").read_text()[-3000:]


def test_the_beat_routes_appeals_left_received_every_minute(settings_env: Path) -> None:
    # An order stored but never routed (the model missing, a crash or a database restart between
    # intake's two transactions) must not wait for a person to notice it (issue 16, item 1).
    from service.worker import names, tasks

    entry = tasks.celery_app.conf.beat_schedule["triage-pending"]
    assert entry == {"task": names.TRIAGE_PENDING, "schedule": 60.0}
    assert tasks.triage_pending.name == "dispatch.triage_pending"
    route = tasks.celery_app.amqp.router.route({}, names.TRIAGE_PENDING)
    assert route["queue"].name == "dispatch"
