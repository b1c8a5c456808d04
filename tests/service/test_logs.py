"""Logs: JSON lines with the request id and work-order number, and no personal data from intake
through dispatch to delivery."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service import runtime
from service.delivery.models import Delivery
from service.delivery.rabbitmq import routing_key
from service.observability.logs import ContextFilter, JsonFormatter
from tests.support import drain, wait_for

PHONE = "13912345678"
ID_CARD = "430102199001011234"
NAME = "欧阳铁柱"


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Every record of this process at DEBUG, formatted as `HOTLINE_LOG_FORMAT=json` does."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def test_json_logs_are_one_masked_object_per_line(python: str) -> None:
    script = (
        "import logging; from service.observability import logs, context\n"
        "logs.configure(level='INFO', log_format='json')\n"
        "with context.bound(request_id='r-1', work_order='20261204-0000001'):\n"
        f"    logging.getLogger('x').info('caller %s id %s', '{PHONE}', '{ID_CARD}')\n"
        "try:\n"
        f"    raise ValueError('{PHONE}')\n"
        "except ValueError:\n"
        "    logging.getLogger('y').exception('failed')\n"
    )
    done = subprocess.run([python, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert len(lines) == 2
    assert lines[0]["message"] == "caller 139****5678 id 4301**********1234"
    assert (lines[0]["request_id"], lines[0]["work_order"]) == ("r-1", "20261204-0000001")
    assert lines[1]["request_id"] is None and "ValueError: 139****5678" in lines[1]["exc"]
    assert PHONE not in done.stderr and ID_CARD not in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("broker_url", ["rabbitmq"], indirect=True)
def test_no_personal_data_in_any_log_line_from_intake_to_delivery(
    seeded_env: str,
    broker_url: str,
    json_lines: io.StringIO,
    tmp_path: Path,
    python: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "HOTLINE_BROKER_URL": broker_url,
        "HOTLINE_AUTO_DISPATCH_THRESHOLD": "0",
        "HOTLINE_LOG_FORMAT": "json",
        "HOTLINE_LOG_LEVEL": "DEBUG",
        "HOTLINE_METRICS_DIR": str(tmp_path / "metrics"),
    }.items():
        monkeypatch.setenv(name, value)
    runtime.reset()
    env = {**os.environ, "HOTLINE_DATABASE_URL": seeded_env}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    worker_log = tmp_path / "worker.log"
    with worker_log.open("wb") as log:
        worker = subprocess.Popen(
            [python, "-m", "service.cli", "worker", "--queues", "dispatch", "--concurrency", "1"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            from service.api.app import create_app

            client = TestClient(create_app())
            form = {"username": "agent", "password": os.environ["HOTLINE_DEMO_PASSWORD"]}
            token = client.post("/api/v1/auth/token", data=form).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}", "X-Request-ID": "pii-test-1"}
            response = client.post(
                "/api/v1/appeals",
                json={
                    "channel": "phone",
                    "text": f"我叫{NAME}，身份证{ID_CARD}，电话{PHONE}，小区门口路灯坏了好几天了",
                    "caller_phone": PHONE,
                    "caller_name": NAME,
                },
                headers=headers,
            )
            assert response.status_code == 201, response.text
            body = response.json()
            number = body["number"]
            assert body["state"] == "dispatched"
            # the agent opens it (a logged request with the number in its path)
            assert client.get(f"/api/v1/work-orders/{number}", headers=headers).status_code == 200

            def sent() -> list[tuple[str, str]]:
                with runtime.get_database().session() as session:
                    rows = session.execute(select(Delivery.department_code, Delivery.status)).all()
                return (
                    [(c, s) for c, s in rows] if rows and all(s == "sent" for _, s in rows) else []
                )

            delivered = wait_for(sent, timeout=60, interval=0.3)
            assert delivered, worker_log.read_text()[-3000:]
        finally:
            worker.terminate()
            worker.wait(timeout=30)

    messages = [m for code, _ in delivered for m in drain(broker_url, routing_key(code))]
    assert messages, "the department queues hold the delivered message"
    assert all(p.headers.get("x-request-id") == "pii-test-1" for p, _ in messages)
    assert PHONE in messages[0][1].decode()  # the department gets the data: the test can fail

    text = worker_log.read_text().replace("worker: Warm shutdown (MainProcess)", "")
    ours = json_lines.getvalue()
    lines = [json.loads(line) for line in (ours + text).splitlines() if line.strip()]
    assert len(lines) > 10
    for line in lines:
        dumped = json.dumps(line, ensure_ascii=False)
        for secret in (PHONE, ID_CARD, NAME):
            assert secret not in dumped, dumped
    stored = [line for line in lines if line["work_order"] == number]
    assert any(line["request_id"] == "pii-test-1" for line in stored), ours[-2000:]
    in_worker = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert any(
        line["request_id"] == "pii-test-1" and "dispatch.deliver" in line["message"]
        for line in in_worker
    ), text[-2000:]
