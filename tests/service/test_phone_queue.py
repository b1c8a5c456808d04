"""Phone transcripts from the `intake.phone` queue: parsing, acks, poison, and a killed consumer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pika
import pytest
from sqlalchemy import func, select

from router.errors import InvalidInput
from router.workorders.models import Appeal
from router.workorders.service import receive_appeal
from service.channels.phone_queue import (
    PhoneTranscript,
    PoisonedTranscript,
    PoisonMessage,
    dead_letter_recorder,
    parse_transcript,
    run_phone_consumer,
    serve_phone_queue,
    to_appeal_input,
)
from service.config import ConfigurationError
from service.db import Database
from service.delivery.rabbitmq import connection_parameters
from service.delivery.service import list_dead_letters
from tests.support import drain, queue_length, wait_for

TRANSCRIPT = {
    "call_id": "C-0001",
    "text": "我家楼下的路灯坏了一个星期",
    "caller_phone": "13800000000",
}


# --- parsing, without a broker ---------------------------------------------------------------


def test_utf8_transcript_is_parsed() -> None:
    transcript = parse_transcript(json.dumps(TRANSCRIPT, ensure_ascii=False).encode())
    assert transcript.call_id == "C-0001"
    assert transcript.text == TRANSCRIPT["text"]
    assert transcript.caller_phone == "13800000000"


@pytest.mark.parametrize(
    ("codec", "content_type", "content_encoding"),
    [
        ("gbk", None, "gbk"),
        ("gb18030", "application/json; charset=GB18030", None),
        ("gb2312", "application/json; charset=gb2312", None),
        ("gbk", None, None),  # detected
        ("utf-8-sig", None, None),  # a byte-order mark is tolerated
    ],
)
def test_chinese_encodings_are_decoded(
    codec: str, content_type: str | None, content_encoding: str | None
) -> None:
    body = json.dumps(TRANSCRIPT, ensure_ascii=False).encode(codec)
    transcript = parse_transcript(
        body, content_type=content_type, content_encoding=content_encoding
    )
    assert transcript.text == TRANSCRIPT["text"]


def test_optional_fields_are_typed_and_unknown_ones_kept() -> None:
    transcript = parse_transcript(
        json.dumps(
            {
                "call_id": 42,
                "text": " 噪音扰民 ",
                "started_at": "2026-11-23T08:00:00",
                "asr_confidence": 0.93,
                "queue_name": "night",
            }
        ).encode()
    )
    assert transcript.call_id == "42"
    assert transcript.text == "噪音扰民"
    assert transcript.started_at is not None
    assert transcript.started_at.isoformat() == "2026-11-23T00:00:00+00:00"  # naive = UTC+8
    assert transcript.asr_confidence == 0.93
    assert transcript.extra == {"queue_name": "night"}


@pytest.mark.parametrize(
    ("body", "properties", "reason"),
    [
        (b"{not json", {}, "not JSON"),
        (b"[1, 2]", {}, "not a JSON object"),
        (json.dumps({"call_id": "C1"}).encode(), {}, "text is missing"),
        (json.dumps({"call_id": "C1", "text": "  "}).encode(), {}, "text is missing"),
        (json.dumps({"text": "路灯"}).encode(), {}, "call_id is missing"),
        (json.dumps({"call_id": {"a": 1}, "text": "x"}).encode(), {}, "call_id must be"),
        (b'{"call_id": "C1", "text": "\xff\xfe"}', {}, "neither UTF-8 nor GB18030"),
        ("路灯".encode("gbk"), {"content_encoding": "utf-8"}, "not valid utf-8"),
        (b"{}", {"content_encoding": "gzip"}, "unsupported encoding"),
        (
            json.dumps({"call_id": "C1", "text": "x", "started_at": "yesterday"}).encode(),
            {},
            "started_at",
        ),
        (
            json.dumps({"call_id": "C1", "text": "x", "started_at": "0001-01-01T00:00"}).encode(),
            {},
            "out of range",
        ),
        (json.dumps({"call_id": "C1", "text": "路灯\u0000坏了"}).encode(), {}, "NUL"),
        (json.dumps({"call_id": "C1", "text": "路" * 5001}).encode(), {}, "longer than 5000"),
    ],
)
def test_poison_messages_are_refused_with_a_reason(
    body: bytes, properties: dict[str, str], reason: str
) -> None:
    with pytest.raises(PoisonMessage, match=reason):
        parse_transcript(body, **properties)


def test_a_transcript_becomes_an_idempotent_phone_appeal() -> None:
    appeal = to_appeal_input(PhoneTranscript(call_id="C9", text="路灯坏了"))
    assert appeal.channel == "phone"
    assert appeal.idempotency_key == "phone:C9"
    assert appeal.external_id == "C9"


# --- on the real RabbitMQ --------------------------------------------------------------------


@pytest.fixture
def queue(amqp_url: str) -> Iterator[str]:
    """A private phone queue (and its `.dead` queue) on a private dead-letter exchange."""
    name = f"test.intake.phone.{uuid.uuid4().hex[:10]}"
    yield name
    connection = pika.BlockingConnection(connection_parameters(amqp_url))
    channel = connection.channel()
    channel.queue_delete(name)
    channel.queue_delete(f"{name}.dead")
    channel.exchange_delete(f"{name}.dlx")
    connection.close()


def publish(url: str, queue: str, body: bytes, **properties: Any) -> None:
    """What the call centre does: a persistent message to the queue, via the default exchange."""
    connection = pika.BlockingConnection(connection_parameters(url))
    channel = connection.channel()
    channel.confirm_delivery()
    channel.basic_publish(
        "", queue, body, pika.BasicProperties(delivery_mode=2, **properties), mandatory=True
    )
    connection.close()


class Consumer:
    """`run_phone_consumer` in a thread, stopped at the end of the test."""

    def __init__(
        self, url: str, queue: str, handler: Callable[[PhoneTranscript], str], **options: Any
    ):
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=run_phone_consumer,
            args=(url, handler),
            kwargs={
                "stop_event": self.stop,
                "queue": queue,
                "dead_letter_exchange": f"{queue}.dlx",
                "retry_delay": 0.05,
                **options,
            },
        )
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive()


def declare(url: str, queue: str, **options: Any) -> None:
    from service.channels.phone_queue import declare_phone_queue

    connection = pika.BlockingConnection(connection_parameters(url))
    declare_phone_queue(
        connection.channel(), queue=queue, dead_letter_exchange=f"{queue}.dlx", **options
    )
    connection.close()


def test_a_transcript_is_acked_after_the_handler_returns(amqp_url: str, queue: str) -> None:
    handled: list[PhoneTranscript] = []

    def handler(transcript: PhoneTranscript) -> str:
        handled.append(transcript)
        return "20261123-0000001"

    declare(amqp_url, queue)
    publish(
        amqp_url,
        queue,
        json.dumps(TRANSCRIPT, ensure_ascii=False).encode("gbk"),
        content_type="application/json; charset=gbk",
    )
    consumer = Consumer(amqp_url, queue, handler)
    try:
        assert wait_for(lambda: len(handled) == 1)
    finally:
        consumer.close()
    assert handled[0].text == TRANSCRIPT["text"]
    assert queue_length(amqp_url, queue) == 0


def test_a_failing_handler_gets_the_message_again(amqp_url: str, queue: str) -> None:
    calls: list[str] = []

    def handler(transcript: PhoneTranscript) -> str:
        calls.append(transcript.call_id)
        if len(calls) == 1:
            raise ConnectionError("database unavailable")
        return "20261123-0000001"

    declare(amqp_url, queue)
    publish(amqp_url, queue, json.dumps(TRANSCRIPT).encode())
    consumer = Consumer(amqp_url, queue, handler)
    try:
        assert wait_for(lambda: len(calls) == 2)
        time.sleep(0.2)
    finally:
        consumer.close()
    assert calls == ["C-0001", "C-0001"]
    assert queue_length(amqp_url, queue) == 0
    assert queue_length(amqp_url, f"{queue}.dead") == 0


def test_poison_goes_to_the_dead_letter_queue_with_its_reason(amqp_url: str, queue: str) -> None:
    handled: list[str] = []
    poisoned: list[PoisonedTranscript] = []

    def handler(transcript: PhoneTranscript) -> str:
        if transcript.call_id == "C-refused":
            raise InvalidInput("text is longer than 5000 characters")
        handled.append(transcript.call_id)
        return "20261123-0000001"

    declare(amqp_url, queue)
    publish(amqp_url, queue, b"{broken", message_id="m-broken")
    publish(amqp_url, queue, json.dumps({"call_id": "C-no-text"}).encode())
    publish(amqp_url, queue, b'{"call_id": "C-bytes", "text": "\xff"}')
    refused = {"call_id": "C-refused", "text": "路灯坏了"}  # Chinese: it reaches the handler
    publish(amqp_url, queue, json.dumps(refused, ensure_ascii=False).encode())
    publish(amqp_url, queue, json.dumps(TRANSCRIPT).encode())
    consumer = Consumer(amqp_url, queue, handler, on_poison=poisoned.append)
    try:
        assert wait_for(lambda: handled == ["C-0001"])
    finally:
        consumer.close()
    assert queue_length(amqp_url, queue) == 0
    dead = drain(amqp_url, f"{queue}.dead")
    reasons = [properties.headers["x-hotline-reason"] for properties, _ in dead]
    assert len(reasons) == 4
    assert "not JSON" in reasons[0]
    assert reasons[1] == "text is missing or empty"
    assert reasons[2] == "the body is neither UTF-8 nor GB18030/GBK"
    assert reasons[3] == "InvalidInput: text is longer than 5000 characters"
    assert dead[0][0].message_id == "m-broken"
    assert dead[0][1] == b"{broken"
    assert [p.reference for p in poisoned] == ["m-broken", "C-no-text", "(no call_id)", "C-refused"]


def test_a_transcript_without_chinese_is_acked_and_dead_lettered_not_requeued(
    amqp_url: str, queue: str
) -> None:
    handled: list[str] = []
    poisoned: list[PoisonedTranscript] = []

    def handler(transcript: PhoneTranscript) -> str:
        handled.append(transcript.call_id)
        return "20261123-0000001"

    declare(amqp_url, queue)
    publish(
        amqp_url, queue, json.dumps({"call_id": "C-en", "text": "my streetlight is out"}).encode()
    )
    publish(amqp_url, queue, json.dumps(TRANSCRIPT).encode())
    consumer = Consumer(amqp_url, queue, handler, on_poison=poisoned.append)
    try:
        assert wait_for(lambda: handled == ["C-0001"])
    finally:
        consumer.close()
    assert queue_length(amqp_url, queue) == 0
    ((properties, _),) = drain(amqp_url, f"{queue}.dead")
    assert "no Chinese character" in properties.headers["x-hotline-reason"]
    assert [p.reference for p in poisoned] == ["C-en"]


def test_a_message_that_keeps_failing_is_dead_lettered_by_the_broker(
    amqp_url: str, queue: str
) -> None:
    calls: list[str] = []

    def handler(transcript: PhoneTranscript) -> str:
        calls.append(transcript.call_id)
        raise RuntimeError("a bug that this transcript triggers")

    declare(amqp_url, queue, delivery_limit=2)
    publish(amqp_url, queue, json.dumps(TRANSCRIPT).encode())
    consumer = Consumer(amqp_url, queue, handler, delivery_limit=2)
    try:
        assert wait_for(lambda: queue_length(amqp_url, f"{queue}.dead") == 1)
    finally:
        consumer.close()
    assert len(calls) == 3  # the first delivery and two redeliveries
    ((properties, _),) = drain(amqp_url, f"{queue}.dead")
    assert properties.headers["x-death"][0]["reason"] == "delivery_limit"


# --- with a real database --------------------------------------------------------------------


def test_poison_is_listed_for_supervisors(database_url: str, amqp_url: str, queue: str) -> None:
    database = Database(database_url)
    declare(amqp_url, queue)
    publish(amqp_url, queue, json.dumps({"call_id": "C-77"}).encode())
    consumer = Consumer(amqp_url, queue, lambda t: "", on_poison=dead_letter_recorder(database))
    try:
        assert wait_for(lambda: queue_length(amqp_url, f"{queue}.dead") == 1)
    finally:
        consumer.close()
    with database.session() as session:
        (letter,) = list_dead_letters(db_session=session, kind="intake")
        assert letter.reference == "phone:C-77"
        assert letter.reason == "text is missing or empty"
        assert json.loads(letter.payload["body_text"]) == {"call_id": "C-77"}
    database.dispose()


CONSUMER_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, threading
    from router.workorders.service import receive_appeal
    from service.channels.phone_queue import run_phone_consumer, to_appeal_input
    from service.db import Database

    url, queue, database_url = sys.argv[1:4]
    database = Database(database_url)

    def handler(transcript):
        with database.session() as session:
            order, _ = receive_appeal(db_session=session, appeal=to_appeal_input(transcript))
            number = order.number
        print("committed", number, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # killed after the commit, before the ack
        return number

    run_phone_consumer(
        url, handler, stop_event=threading.Event(), queue=queue, dead_letter_exchange=queue + ".dlx"
    )
    """
)


@pytest.mark.slow
def test_a_consumer_killed_before_its_ack_produces_exactly_one_appeal(
    database_url: str, amqp_url: str, queue: str, python: str, tmp_path: Path
) -> None:
    declare(amqp_url, queue)
    publish(amqp_url, queue, json.dumps(TRANSCRIPT, ensure_ascii=False).encode())
    first = subprocess.run(
        [python, "-c", CONSUMER_SCRIPT, amqp_url, queue, database_url],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert first.returncode == -9, first.stderr
    assert first.stdout.startswith("committed ")
    number = first.stdout.split()[1]
    assert wait_for(lambda: queue_length(amqp_url, queue) == 1)  # back in the queue, unacked

    database = Database(database_url)
    numbers: list[str] = []
    redelivered: list[PhoneTranscript] = []

    def handler(transcript: PhoneTranscript) -> str:
        redelivered.append(transcript)
        with database.session() as session:
            order, created = receive_appeal(db_session=session, appeal=to_appeal_input(transcript))
            assert not created
            numbers.append(order.number)
            return order.number

    consumer = Consumer(amqp_url, queue, handler)
    try:
        assert wait_for(lambda: numbers == [number])
    finally:
        consumer.close()
    assert queue_length(amqp_url, queue) == 0
    with database.session() as session:
        count = session.scalar(
            select(func.count()).select_from(Appeal).where(Appeal.external_id == "C-0001")
        )
        assert count == 1
    database.dispose()


def test_the_foreground_consumer_stops_on_sigterm(amqp_url: str, queue: str) -> None:
    handled: list[str] = []

    def send_sigterm_once_installed() -> None:
        deadline = time.monotonic() + 5
        while signal.getsignal(signal.SIGTERM) is signal.SIG_DFL and time.monotonic() < deadline:
            time.sleep(0.01)
        wait_for(lambda: len(handled) == 1)
        os.kill(os.getpid(), signal.SIGTERM)

    declare(amqp_url, queue)
    publish(amqp_url, queue, json.dumps(TRANSCRIPT).encode())
    killer = threading.Thread(target=send_sigterm_once_installed)
    killer.start()
    serve_phone_queue(
        amqp_url,
        lambda t: handled.append(t.call_id) or "n",
        queue=queue,
        dead_letter_exchange=f"{queue}.dlx",
    )
    killer.join()
    assert handled == ["C-0001"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored


def test_a_conflicting_queue_is_one_clear_configuration_error(amqp_url: str, queue: str) -> None:
    connection = pika.BlockingConnection(connection_parameters(amqp_url))
    connection.channel().queue_declare(queue, durable=True)  # a classic queue of the same name
    connection.close()
    with pytest.raises(ConfigurationError, match="RabbitMQ refused the queue"):
        serve_phone_queue(amqp_url, lambda t: "n", queue=queue)
