"""Signed webhook delivery, against a real HTTP server on 127.0.0.1 that checks the signature."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from router.catalogue.models import Department
from router.workorders.models import WorkOrder
from router.workorders.service import AppealInput, act, receive_appeal
from service import outbox
from service.db import Database
from service.delivery import service as delivery
from service.delivery.errors import PermanentDeliveryError, TransientDeliveryError
from service.delivery.models import Delivery
from service.delivery.webhook import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    deliver_webhook,
    department_secret,
    sign,
    verify_signature,
)

SECRET = "department-secret"
SIGNING_KEY = "test-signing-key"


@dataclass
class Receiver:
    """A department's webhook endpoint: verifies each request, answers as told."""

    secret: str
    url: str = ""
    status: int = 200
    delay: float = 0.0
    received: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(secret=SECRET)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if state.delay:
                time.sleep(state.delay)
            valid = verify_signature(
                state.secret,
                self.headers.get(TIMESTAMP_HEADER, ""),
                body,
                self.headers.get(SIGNATURE_HEADER, ""),
            )
            if not valid:
                state.rejected += 1
                self._answer(401, b"bad signature")
                return
            if state.status == 200:
                state.received.append(
                    {"delivery": self.headers.get(DELIVERY_HEADER), "body": json.loads(body)}
                )
            self._answer(state.status, b"ok" if state.status == 200 else b"nope")

        def _answer(self, status: int, text: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hotline"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as http:
        yield http


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = '{"text":"路灯不亮"}'
    expected = hmac.new(b"s3cret", f"1700000000.{body}".encode(), hashlib.sha256).hexdigest()
    assert sign("s3cret", 1700000000, body) == expected
    assert sign(b"s3cret", "1700000000", body.encode()) == expected


def test_verification_refuses_tampered_bodies_and_stale_timestamps() -> None:
    signature = "sha256=" + sign(SECRET, 1000, b"{}")
    assert verify_signature(SECRET, "1000", b"{}", signature, now=1010)
    assert not verify_signature(SECRET, "1000", b'{"x":1}', signature, now=1010)
    assert not verify_signature("other", "1000", b"{}", signature, now=1010)
    assert not verify_signature(SECRET, "1000", b"{}", signature, now=1000 + 301)
    assert not verify_signature(SECRET, "not-a-time", b"{}", signature, now=1010)


def test_departments_get_distinct_secrets() -> None:
    assert department_secret(SIGNING_KEY, "housing") != department_secret(SIGNING_KEY, "water")
    assert department_secret(SIGNING_KEY, "water") == department_secret(SIGNING_KEY, "water")


def test_signed_delivery_is_accepted_by_a_verifying_endpoint(
    receiver: Receiver, client: httpx.Client
) -> None:
    payload = {"delivery_id": "20261123-0000001:1:water:webhook", "text": "停水三天"}
    status = deliver_webhook(
        receiver.url, payload, SECRET, client=client, delivery_id=payload["delivery_id"]
    )
    assert status == 200
    assert receiver.received == [{"delivery": payload["delivery_id"], "body": payload}]


@pytest.mark.parametrize("status", [500, 503, 429, 408])
def test_server_errors_and_throttling_are_transient(
    receiver: Receiver, client: httpx.Client, status: int
) -> None:
    receiver.status = status
    with pytest.raises(TransientDeliveryError, match=str(status)) as caught:
        deliver_webhook(receiver.url, {"a": 1}, SECRET, client=client)
    assert isinstance(caught.value, ConnectionError)  # what the task decorator retries


@pytest.mark.parametrize("status", [400, 404, 410])
def test_client_errors_are_permanent(receiver: Receiver, client: httpx.Client, status: int) -> None:
    receiver.status = status
    with pytest.raises(PermanentDeliveryError, match=str(status)) as caught:
        deliver_webhook(receiver.url, {"a": 1}, SECRET, client=client)
    assert not isinstance(caught.value, ConnectionError)


def test_a_wrong_secret_is_refused_permanently(receiver: Receiver, client: httpx.Client) -> None:
    with pytest.raises(PermanentDeliveryError, match="401"):
        deliver_webhook(receiver.url, {"a": 1}, "not-the-secret", client=client)
    assert receiver.rejected == 1


def test_a_slow_endpoint_times_out_as_transient(receiver: Receiver, client: httpx.Client) -> None:
    receiver.delay = 1.0
    with pytest.raises(TransientDeliveryError, match="timed out"):
        deliver_webhook(receiver.url, {"a": 1}, SECRET, client=client, timeout=0.2)


def test_an_unreachable_endpoint_is_transient(client: httpx.Client) -> None:
    import socket

    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransientDeliveryError, match="unreachable"):
        deliver_webhook(f"http://127.0.0.1:{port}/", {"a": 1}, SECRET, client=client)


def test_a_malformed_url_is_permanent(client: httpx.Client) -> None:
    with pytest.raises(PermanentDeliveryError):
        deliver_webhook("ftp://example.invalid/hook", {"a": 1}, SECRET, client=client)


# --- through the delivery service, on each database ----------------------------------------


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()


def dispatch_to_webhook(database: Database, url: str, code: str = "water") -> int:
    """A webhook department, an order dispatched to it; returns the delivery id."""
    with database.session() as session:
        session.add(
            Department(code=code, name="市水务局", kind="city", delivery="webhook", webhook_url=url)
        )
        order, _ = receive_appeal(
            db_session=session, appeal=AppealInput(channel="web", text="小区停水三天了")
        )
        order.department_code = code
        act(db_session=session, work_order=order, action="dispatch", actor="a1", role="agent")
        (row,) = delivery.record_dispatch(
            db_session=session, work_order=order, department_code=code
        )
        assert row.channel == "webhook"
        return row.id


def test_dispatch_is_posted_once_and_signed_with_the_department_secret(
    database: Database, receiver: Receiver, client: httpx.Client
) -> None:
    receiver.secret = department_secret(SIGNING_KEY, "water")
    delivery_id = dispatch_to_webhook(database, receiver.url)
    for _ in range(2):  # the task delivered twice
        with database.session() as session:
            delivery.deliver(
                db_session=session,
                delivery_id=delivery_id,
                publisher=None,
                http_client=client,
                signing_key=SIGNING_KEY,
            )
    assert len(receiver.received) == 1
    (request,) = receiver.received
    with database.session() as session:
        row = session.get(Delivery, delivery_id)
        order = session.scalars(select(WorkOrder)).one()
        assert row is not None and row.status == "sent" and row.attempts == 1
        assert request["delivery"] == row.delivery_key == f"{order.number}:1:water:webhook"
    body = request["body"]
    assert body["type"] == "work_order.dispatched"
    assert body["work_order"]["number"] == order.number
    assert body["appeal"]["text"] == "小区停水三天了"
    assert body["role"] == "lead"


def test_refused_delivery_lands_in_the_dead_letter_list_and_can_be_requeued(
    database: Database, receiver: Receiver, client: httpx.Client
) -> None:
    receiver.secret = department_secret(SIGNING_KEY, "water")
    receiver.status = 410
    delivery_id = dispatch_to_webhook(database, receiver.url)
    with database.session() as session:
        row = delivery.deliver(
            db_session=session,
            delivery_id=delivery_id,
            publisher=None,
            http_client=client,
            signing_key=SIGNING_KEY,
        )
        assert row is not None and row.status == "failed"
    with database.session() as session:
        (letter,) = delivery.list_dead_letters(db_session=session)
        assert letter.kind == "delivery"
        assert "410" in letter.reason
        assert letter.payload["delivery_id"] == delivery_id
    with database.session() as session:
        delivery.requeue_delivery(db_session=session, delivery_id=delivery_id, actor="sup1")
        assert outbox.pending_count(session) == 2  # the first dispatch's and the requeue's
    receiver.status = 200
    with database.session() as session:
        row = delivery.deliver(
            db_session=session,
            delivery_id=delivery_id,
            publisher=None,
            http_client=client,
            signing_key=SIGNING_KEY,
        )
        assert row is not None and row.status == "sent"
        assert delivery.list_dead_letters(db_session=session) == []
        (resolved,) = delivery.list_dead_letters(db_session=session, include_resolved=True)
        assert resolved.resolved_by == "sup1"
    assert len(receiver.received) == 1


def test_last_transient_failure_is_dead_lettered_instead_of_retried(
    database: Database, receiver: Receiver, client: httpx.Client
) -> None:
    receiver.secret = department_secret(SIGNING_KEY, "water")
    receiver.status = 503
    delivery_id = dispatch_to_webhook(database, receiver.url)
    options: dict[str, Any] = {
        "delivery_id": delivery_id,
        "publisher": None,
        "http_client": client,
        "signing_key": SIGNING_KEY,
        "max_attempts": 3,
    }
    for attempt in (1, 2):
        with pytest.raises(TransientDeliveryError), database.session() as session:
            delivery.deliver(db_session=session, attempt=attempt, **options)
    with database.session() as session:
        row = delivery.deliver(db_session=session, attempt=3, **options)
        assert row is not None and row.status == "failed" and row.attempts == 3
        (letter,) = delivery.list_dead_letters(db_session=session, kind="delivery")
        assert letter.reason.startswith("gave up after 3 attempts")


def test_a_delivery_overtaken_by_a_redispatch_is_never_sent(
    database: Database, receiver: Receiver, client: httpx.Client
) -> None:
    receiver.secret = department_secret(SIGNING_KEY, "water")
    first = dispatch_to_webhook(database, receiver.url)
    with database.session() as session:
        session.add(Department(code="housing", name="市住建局", kind="city", delivery="queue"))
        order = session.scalars(select(WorkOrder)).one()
        order.department_code = "housing"
        act(
            db_session=session, work_order=order, action="redispatch", actor="s1", role="supervisor"
        )
        (second,) = delivery.record_dispatch(
            db_session=session, work_order=order, department_code="housing"
        )
        assert second.delivery_key == f"{order.number}:2:housing:rabbitmq"
    with database.session() as session:
        row = delivery.deliver(
            db_session=session,
            delivery_id=first,
            publisher=None,
            http_client=client,
            signing_key=SIGNING_KEY,
        )
        assert row is not None and row.status == "superseded"
    assert receiver.received == []


def test_exhausted_retries_are_dead_lettered_once(database: Database) -> None:
    delivery_id = dispatch_to_webhook(database, "http://127.0.0.1:9/")
    for _ in range(2):
        with database.session() as session:
            delivery.fail_delivery(
                db_session=session, delivery_id=delivery_id, reason="MaxRetriesExceeded"
            )
    with database.session() as session:
        (letter,) = delivery.list_dead_letters(db_session=session)
        assert letter.reason == "MaxRetriesExceeded"
        row = session.get(Delivery, delivery_id)
        assert row is not None and row.status == "failed"
        resolved = delivery.resolve_dead_letter(
            db_session=session, dead_letter_id=letter.id, resolved_by="sup1"
        )
        assert resolved.resolved_at is not None
