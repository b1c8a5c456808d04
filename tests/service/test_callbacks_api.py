"""Satisfaction callbacks through the API (agents' queue) and through a real HTTP gateway."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from router.calendar import DEFAULT_CALENDAR
from router.callbacks.models import Callback
from router.orm import utcnow
from service import outbox, runtime
from service.callbacks import service
from service.callbacks.providers import gateway_secret
from service.delivery.webhook import sign, verify_signature

Login = Callable[[str], dict[str, str]]

TEXT = "您好，我家小区门口的路灯坏了半个多月了，晚上一片漆黑，请尽快派人维修。"
PHONE = "13812345678"


def post(client: TestClient, login: Login, user: str, path: str, body: object = None) -> Any:
    return client.post(f"/api/v1{path}", json=body, headers=login(user))


def closed_order(client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch) -> str:
    """An appeal auto-dispatched, accepted, replied to and closed through the API."""
    monkeypatch.setenv("HOTLINE_AUTO_DISPATCH_THRESHOLD", "0")
    runtime.get_settings.cache_clear()
    created = post(
        client,
        login,
        "agent",
        "/appeals",
        {"channel": "phone", "text": TEXT, "caller_phone": PHONE},
    )
    assert created.status_code == 201, created.text
    number = created.json()["number"]
    order = client.get(f"/api/v1/work-orders/{number}", headers=login("supervisor")).json()
    dept = f"dept_{order['department_code'].lower()}"
    assert post(client, login, dept, f"/work-orders/{number}/accept").status_code == 200
    replied = post(
        client, login, dept, f"/work-orders/{number}/reply", {"result": f"已修复，联系人{PHONE}"}
    )
    assert replied.status_code == 200
    closed = post(client, login, "agent", f"/work-orders/{number}/close")
    assert closed.status_code == 200, closed.text
    return str(number)


def make_due() -> None:
    with runtime.get_database().session() as db_session:
        db_session.execute(update(Callback).values(due_at=utcnow() - timedelta(minutes=1)))


def the_callback() -> Callback:
    with runtime.get_database().session() as db_session:
        row = db_session.scalars(select(Callback)).one()
        db_session.expunge(row)
        return row


def test_agent_works_the_due_queue_and_unsatisfied_reopens_the_order(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    number = closed_order(client, login, monkeypatch)
    assert client.get("/api/v1/callbacks", headers=login("agent")).json() == {"items": []}
    make_due()
    listed = client.get("/api/v1/callbacks?status=due", headers=login("agent"))
    assert listed.status_code == 200, listed.text
    (item,) = listed.json()["items"]
    assert item["number"] == number and item["master_number"] is None
    assert (item["status"], item["attempts"], item["provider"]) == ("pending", 0, "agent")
    assert item["caller_phone"] == "138****5678"
    assert item["reply_summary"].startswith("已修复") and PHONE not in item["reply_summary"]
    before = client.get(f"/api/v1/work-orders/{number}", headers=login("supervisor")).json()

    unreachable = post(
        client, login, "agent", f"/callbacks/{item['id']}/result", {"result": "unreachable"}
    )
    assert unreachable.status_code == 200, unreachable.text
    assert (
        unreachable.json()["retry"] is True and unreachable.json()["work_order_state"] == "closed"
    )
    assert client.get("/api/v1/callbacks", headers=login("agent")).json() == {"items": []}

    result = post(
        client,
        login,
        "agent",
        f"/callbacks/{item['id']}/result",
        {"result": "unsatisfied", "note": "灯还是不亮"},
    )
    assert result.status_code == 200, result.text
    assert result.json()["actions"] == ["reopen", "escalate"]
    assert result.json()["attempts"] == 2
    after = client.get(f"/api/v1/work-orders/{number}", headers=login("supervisor")).json()
    assert (after["state"], after["department_code"]) == ("reopened", before["department_code"])
    # New clocks from the reopening: a working-day deadline may end on the same day as before.
    assert after["deadline"] >= before["deadline"]
    assert after["accept_deadline"] is not None and after["events"][-1]["action"] == "escalate"
    again = post(client, login, "agent", f"/callbacks/{item['id']}/result", {"result": "satisfied"})
    assert again.status_code == 409 and again.json()["error"] == "Conflict"
    # The department signs for the reopened order again.
    dept = f"dept_{after['department_code'].lower()}"
    assert post(client, login, dept, f"/work-orders/{number}/accept").json()["state"] == "accepted"


def test_callback_endpoints_check_roles_and_input(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    number = closed_order(client, login, monkeypatch)
    make_due()
    order = client.get(f"/api/v1/work-orders/{number}", headers=login("supervisor")).json()
    dept = f"dept_{order['department_code'].lower()}"
    assert client.get("/api/v1/callbacks", headers=login(dept)).status_code == 403
    row = the_callback()
    assert (
        post(
            client, login, dept, f"/callbacks/{row.id}/result", {"result": "satisfied"}
        ).status_code
        == 403
    )
    bad = post(client, login, "agent", f"/callbacks/{row.id}/result", {"result": "happy"})
    assert bad.status_code == 422 and bad.json()["error"] == "ValidationError"
    assert (
        post(
            client, login, "agent", "/callbacks/999999/result", {"result": "satisfied"}
        ).status_code
        == 404
    )
    done = post(client, login, "supervisor", f"/callbacks/{row.id}/result", {"result": "satisfied"})
    assert done.json()["work_order_state"] == "callback_done"
    completed = client.get("/api/v1/callbacks?status=completed", headers=login("supervisor"))
    assert [i["result"] for i in completed.json()["items"]] == ["satisfied"]


# --- the SMS/IVR gateway over HTTP --------------------------------------------------------


class Gateway:
    """A real HTTP server standing in for the SMS/IVR gateway: records and checks requests."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.requests: list[dict[str, Any]] = []
        self.reply: tuple[int, dict[str, Any]] = (200, {"result": "satisfied"})
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                signed = verify_signature(
                    gateway.secret,
                    self.headers["X-Hotline-Timestamp"],
                    body,
                    self.headers["X-Hotline-Signature"],
                )
                gateway.requests.append(
                    {"signed": signed, "id": self.headers["X-Hotline-Delivery"], **json.loads(body)}
                )
                status, payload = gateway.reply if signed else (401, {})
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/calls"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:
    server = Gateway(gateway_secret("test-secret-key-not-for-production"))
    monkeypatch.setenv("HOTLINE_CALLBACK_PROVIDER", "gateway")
    monkeypatch.setenv("HOTLINE_CALLBACK_GATEWAY_URL", server.url)
    monkeypatch.setenv("HOTLINE_CALLBACK_GATEWAY_REPORT_URL", "https://hotline.example/report")
    runtime.get_settings.cache_clear()
    yield server
    server.close()


def scan_and_place() -> list[str]:
    """What beat and the worker do: scan, then run each enqueued `callbacks.place` task."""
    settings = runtime.get_settings()
    with runtime.get_database().session() as db_session:
        service.scan(db_session=db_session, settings=settings)
        tasks = [
            m.kwargs["callback_id"]
            for m in db_session.scalars(select(outbox.OutboxMessage))
            if m.task == service.PLACE_TASK and m.sent_at is None
        ]
        for message in db_session.scalars(select(outbox.OutboxMessage)):
            message.sent_at = utcnow()
    outcomes = []
    with httpx.Client() as http:
        for callback_id in tasks:
            with runtime.get_database().session() as db_session:
                outcomes.append(
                    service.place(
                        db_session=db_session,
                        callback_id=callback_id,
                        settings=settings,
                        client=http,
                    )
                )
    return outcomes


def test_gateway_answering_at_once_completes_the_callback(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch, gateway: Gateway
) -> None:
    number = closed_order(client, login, monkeypatch)
    assert scan_and_place() == []  # not due yet
    make_due()
    assert scan_and_place() == ["satisfied"]
    (request,) = gateway.requests
    assert request["signed"] is True
    assert request["id"] == request["request_id"] == f"cb-{the_callback().id}-1"
    assert (request["phone"], request["work_order_number"]) == (PHONE, number)
    assert request["report_url"] == "https://hotline.example/report"
    row = the_callback()
    assert (row.provider, row.status, row.result, row.attempts) == (
        "gateway",
        "completed",
        "satisfied",
        1,
    )
    order = client.get(f"/api/v1/work-orders/{number}", headers=login("supervisor")).json()
    assert order["state"] == "callback_done"
    assert scan_and_place() == []  # nothing is called twice


def test_gateway_reporting_later_is_checked_and_counted_once(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch, gateway: Gateway
) -> None:
    number = closed_order(client, login, monkeypatch)
    make_due()
    gateway.reply = (202, {})
    assert scan_and_place() == ["awaiting report"]
    row = the_callback()
    assert row.status == "calling"
    agent = post(client, login, "agent", f"/callbacks/{row.id}/result", {"result": "satisfied"})
    assert agent.status_code == 409  # the gateway holds the call

    def report(payload: dict[str, Any], secret: str = gateway.secret) -> Any:
        body = json.dumps(payload)
        timestamp = str(int(utcnow().timestamp()))
        return client.post(
            "/api/v1/callbacks/gateway/report",
            content=body,
            headers={
                "X-Hotline-Timestamp": timestamp,
                "X-Hotline-Signature": f"sha256={sign(secret, timestamp, body)}",
            },
        )

    payload = {"callback_id": row.id, "attempt": 1, "result": "unsatisfied", "note": "没修"}
    forged = report(payload, secret="not-the-secret")
    assert forged.status_code == 401 and forged.json()["error"] == "Unauthorized"
    assert report({"callback_id": row.id}).status_code == 400
    accepted = report(payload)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["actions"] == ["reopen", "escalate"]
    assert report(payload).status_code == 409  # a repeated report changes nothing
    order = client.get(f"/api/v1/work-orders/{number}", headers=login("supervisor")).json()
    assert order["state"] == "reopened"


def test_gateway_down_puts_the_call_back_and_a_refusal_hands_it_to_agents(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch, gateway: Gateway
) -> None:
    closed_order(client, login, monkeypatch)
    make_due()
    gateway.reply = (503, {})
    assert scan_and_place() == ["gateway unavailable"]
    row = the_callback()
    assert (row.status, row.attempts, row.provider) == ("pending", 0, "gateway")
    assert row.due_at >= utcnow() + service.GATEWAY_RETRY - timedelta(minutes=1)
    make_due()
    gateway.reply = (400, {"error": "bad number"})
    assert scan_and_place() == ["handed to agents"]
    row = the_callback()
    assert (row.status, row.provider) == ("pending", "agent")
    assert row.due_at <= DEFAULT_CALENDAR.next_calling_time(utcnow())  # no extra delay
    listed = client.get("/api/v1/callbacks?status=pending", headers=login("agent")).json()["items"]
    assert [(i["id"], i["provider"]) for i in listed] == [(row.id, "agent")]


def test_a_call_never_reported_counts_as_unreachable(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch, gateway: Gateway
) -> None:
    closed_order(client, login, monkeypatch)
    make_due()
    gateway.reply = (202, {})
    assert scan_and_place() == ["awaiting report"]
    settings = runtime.get_settings()
    later = utcnow() + timedelta(minutes=settings.callback_result_timeout_minutes + 1)
    with runtime.get_database().session() as db_session:
        assert service.scan(db_session=db_session, settings=settings, now=later)["timed_out"] == 1
    row = the_callback()
    assert (row.status, row.attempts, row.result) == ("pending", 1, None)


def test_the_scan_task_runs_in_its_own_transaction(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch, gateway: Gateway
) -> None:
    from service.worker import callbacks as tasks
    from service.worker.app import celery_app

    closed_order(client, login, monkeypatch)
    make_due()
    assert tasks.scan_callbacks() == {"placed": 1, "timed_out": 0}
    assert tasks.scan_callbacks.name == "callbacks.scan"
    assert celery_app.amqp.router.route({}, "callbacks.place")["queue"].name == "callbacks"
    assert the_callback().status == "calling"


def test_gateway_provider_needs_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from service.config import ConfigurationError, load_settings

    monkeypatch.setenv("HOTLINE_CALLBACK_PROVIDER", "gateway")
    monkeypatch.delenv("HOTLINE_CALLBACK_GATEWAY_URL", raising=False)
    with pytest.raises(ConfigurationError, match="HOTLINE_CALLBACK_GATEWAY_URL"):
        load_settings()
