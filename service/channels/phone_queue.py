"""Phone transcripts (call centre / ASR) from the RabbitMQ queue `intake.phone`, one appeal each.

Topology (declared by the consumer; producers publish to the default exchange with routing key
`intake.phone`, persistent)::

    intake.phone        durable quorum queue; dead-letters to exchange `hotline.dead` with key
                        `intake.phone` what the broker gives up on (x-delivery-limit 5)
    intake.phone.dead   durable quorum queue bound to `hotline.dead` with key `intake.phone`

Message: a JSON object in UTF-8 or GB18030/GBK (named by the `charset` of `content_type` or by
`content_encoding`; detected when neither says)::

    {"call_id": "C20261123-0001", "text": "...",                        required
     "caller_phone", "caller_name", "address", "title", "appeal_type",
     "agent_id", "recording_url", "started_at" (ISO 8601; naive = UTC+8),
     "duration_seconds", "asr_confidence"}                              optional

The consumer takes one message at a time (prefetch 1) and acks it only after the handler has
returned, i.e. after the appeal is committed; the handler must be idempotent by `call_id`,
because a consumer killed between its commit and its ack gets the message again.

* Poison (not JSON, no `call_id` or `text`, undecodable bytes, a text without any Chinese
  character: `RefusedText`, the rule of `classifier.ood.intake_refusal`), or the handler raising
  `PoisonMessage` or an `AppError`: `on_poison` records a dead letter, a copy goes to
  `intake.phone.dead` with the reason in the `x-hotline-reason` header, and the original is acked.
  (`basic_nack(requeue=False)` would dead-letter it too, but without our reason.)
* Any other exception (database down...): nack with requeue, pause, try again. A message that
  keeps failing, or keeps killing its consumer, is dead-lettered by the broker after the delivery
  limit (header `x-death`, reason `delivery_limit`).
"""

from __future__ import annotations

import base64
import codecs
import json
import logging
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from types import FrameType
from typing import TYPE_CHECKING, Any

from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError, ChannelClosedByBroker
from pika.spec import Basic, BasicProperties

from classifier.ood import intake_refusal
from router.errors import AppError
from router.workorders.service import AppealInput
from service.channels.limits import MAX_TEXT_LENGTH
from service.config import ConfigurationError
from service.delivery.rabbitmq import (
    DEAD_LETTER_EXCHANGE,
    consume_queue,
    declare_dead_letter_queue,
    queue_arguments,
)
from service.delivery.service import dead_letter
from service.observability import metrics

if TYPE_CHECKING:
    from service.db import Database

__all__ = [
    "PHONE_DELIVERY_LIMIT",
    "PHONE_QUEUE",
    "PhoneTranscript",
    "PoisonMessage",
    "PoisonedTranscript",
    "RefusedText",
    "TranscriptHandler",
    "dead_letter_recorder",
    "declare_phone_queue",
    "parse_transcript",
    "run_phone_consumer",
    "serve_phone_queue",
    "to_appeal_input",
]

log = logging.getLogger(__name__)

PHONE_QUEUE = "intake.phone"
PHONE_DELIVERY_LIMIT = 5
REASON_HEADER = "x-hotline-reason"
CHINA_TIME = timezone(timedelta(hours=8))
MAX_CALL_ID = 100
_CHARSETS = {"utf-8": "utf-8", "ascii": "utf-8", "gb18030": "gb18030", "gbk": "gb18030"}
_CHARSETS["gb2312"] = "gb18030"  # GB18030 is a superset of GBK and GB2312: decode them as it
_NO_ENCODING = frozenset({"", "identity"})
_OPTIONAL_TEXT = (
    "caller_phone",
    "caller_name",
    "address",
    "title",
    "appeal_type",
    "agent_id",
    "recording_url",
)


class PoisonMessage(Exception):
    """A message that can never become an appeal; `reason` says why (it goes to the header)."""

    def __init__(self, reason: str, *, call_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.call_id = call_id


class RefusedText(PoisonMessage):
    """A transcript whose text no channel accepts as an appeal (no Chinese character at all);
    `code` is `classifier.ood.intake_refusal`'s. Short Chinese text is not refused."""

    def __init__(self, code: str, *, call_id: str | None = None) -> None:
        super().__init__(f"text refused ({code}): it has no Chinese character", call_id=call_id)
        self.code = code


@dataclass(frozen=True, kw_only=True)
class PhoneTranscript:
    """One call's transcript, as the phone channel hands it to intake."""

    call_id: str
    text: str
    caller_phone: str | None = None
    caller_name: str | None = None
    address: str | None = None
    title: str = ""
    appeal_type: str | None = None
    agent_id: str | None = None
    recording_url: str | None = None
    started_at: datetime | None = None
    duration_seconds: float | None = None
    asr_confidence: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


TranscriptHandler = Callable[[PhoneTranscript], str]
"""Stores the appeal (committing) and returns its work-order number; idempotent by call_id."""


@dataclass(frozen=True, kw_only=True)
class PoisonedTranscript:
    """What `on_poison` receives to record a dead letter."""

    queue: str
    reason: str
    body: bytes
    call_id: str | None = None
    message_id: str | None = None
    content_type: str | None = None
    content_encoding: str | None = None

    @property
    def reference(self) -> str:
        return self.call_id or self.message_id or "(no call_id)"

    def as_payload(self) -> dict[str, Any]:
        """JSON-safe: the body as best-effort text and, byte-exact, as base64 (first 64 KiB)."""
        return {
            "queue": self.queue,
            "call_id": self.call_id,
            "message_id": self.message_id,
            "content_type": self.content_type,
            "content_encoding": self.content_encoding,
            "body_text": self.body[:65536].decode("utf-8", errors="replace"),
            "body_base64": base64.b64encode(self.body[:65536]).decode("ascii"),
        }


def _declared_charset(content_type: str | None, content_encoding: str | None) -> str | None:
    names = []
    if content_type:
        for parameter in content_type.split(";")[1:]:
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "charset":
                names.append(value.strip().strip('"'))
    encoding = (content_encoding or "").strip()
    if encoding.lower() not in _NO_ENCODING:
        names.append(encoding)
    for name in names:
        try:
            canonical = codecs.lookup(name).name
        except LookupError:
            canonical = name.lower()
        if canonical not in _CHARSETS:
            raise PoisonMessage(f"unsupported encoding {name!r} (use UTF-8 or GB18030/GBK)")
        return _CHARSETS[canonical]
    return None


def _decode(body: bytes, content_type: str | None, content_encoding: str | None) -> str:
    charset = _declared_charset(content_type, content_encoding)
    if charset is not None:
        try:
            return body.decode("utf-8-sig" if charset == "utf-8" else charset)
        except UnicodeDecodeError:
            raise PoisonMessage(f"the body is not valid {charset}") from None
    for candidate in ("utf-8-sig", "gb18030"):
        try:
            return body.decode(candidate)
        except UnicodeDecodeError:
            continue
    raise PoisonMessage("the body is neither UTF-8 nor GB18030/GBK")


def _text(data: Mapping[str, Any], name: str, call_id: str | None) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise PoisonMessage(f"{name} must be a string", call_id=call_id)
    if isinstance(value, str) and "\x00" in value:
        raise PoisonMessage(f"{name} contains a NUL character", call_id=call_id)
    return str(value).strip() or None


def _number(data: Mapping[str, Any], name: str, call_id: str | None) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PoisonMessage(f"{name} must be a number", call_id=call_id)
    return float(value)


def parse_transcript(
    body: bytes, *, content_type: str | None = None, content_encoding: str | None = None
) -> PhoneTranscript:
    """Decode and validate one transcript message; raises `PoisonMessage` with the reason.

    Also usable by the HTTP endpoint for the same payload.
    """
    text = _decode(body, content_type, content_encoding)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise PoisonMessage(f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PoisonMessage("the body is not a JSON object")
    raw_call_id = data.get("call_id")
    call_id = _text(data, "call_id", None) if raw_call_id is not None else None
    if not call_id:
        raise PoisonMessage("call_id is missing")
    if len(call_id) > MAX_CALL_ID:
        raise PoisonMessage(f"call_id is longer than {MAX_CALL_ID} characters")
    transcript_text = _text(data, "text", call_id)
    if not transcript_text:
        raise PoisonMessage("text is missing or empty", call_id=call_id)
    if len(transcript_text) > MAX_TEXT_LENGTH:
        raise PoisonMessage(f"text is longer than {MAX_TEXT_LENGTH} characters", call_id=call_id)
    started_at = None
    if data.get("started_at") is not None:
        raw = data["started_at"]
        try:
            started_at = datetime.fromisoformat(str(raw))
        except ValueError:
            raise PoisonMessage(f"started_at {raw!r} is not ISO 8601", call_id=call_id) from None
        if started_at.tzinfo is None:
            started_at = started_at.replace(tzinfo=CHINA_TIME)
        try:
            started_at = started_at.astimezone(UTC)
        except OverflowError:
            raise PoisonMessage(f"started_at {raw!r} is out of range", call_id=call_id) from None
    confidence = _number(data, "asr_confidence", call_id)
    if confidence is not None and not 0.0 <= confidence <= 1.0:
        raise PoisonMessage("asr_confidence must be between 0 and 1", call_id=call_id)
    known = {"call_id", "text", "started_at", "duration_seconds", "asr_confidence", *_OPTIONAL_TEXT}
    optional = {name: _text(data, name, call_id) for name in _OPTIONAL_TEXT}
    duration = _number(data, "duration_seconds", call_id)
    refusal = intake_refusal(transcript_text)  # last: the other reasons are reported first
    if refusal is not None:
        metrics.record_refused("phone")
        raise RefusedText(refusal, call_id=call_id)
    return PhoneTranscript(
        call_id=call_id,
        text=transcript_text,
        caller_phone=optional["caller_phone"],
        caller_name=optional["caller_name"],
        address=optional["address"],
        title=optional["title"] or "",
        appeal_type=optional["appeal_type"],
        agent_id=optional["agent_id"],
        recording_url=optional["recording_url"],
        started_at=started_at,
        duration_seconds=duration,
        asr_confidence=confidence,
        extra={key: value for key, value in data.items() if key not in known},
    )


def to_appeal_input(transcript: PhoneTranscript) -> AppealInput:
    """The appeal of a transcript; `phone:<call_id>` is its idempotency key."""
    return AppealInput(
        channel="phone",
        text=transcript.text,
        title=transcript.title,
        appeal_type=transcript.appeal_type,
        caller_phone=transcript.caller_phone,
        caller_name=transcript.caller_name,
        address=transcript.address,
        idempotency_key=f"phone:{transcript.call_id}",
        external_id=transcript.call_id,
    )


def declare_phone_queue(
    channel: BlockingChannel,
    *,
    queue: str = PHONE_QUEUE,
    dead_letter_exchange: str = DEAD_LETTER_EXCHANGE,
    delivery_limit: int = PHONE_DELIVERY_LIMIT,
) -> None:
    """Declare `queue`, its dead-letter queue `<queue>.dead` and the dead-letter exchange."""
    declare_dead_letter_queue(
        channel, f"{queue}.dead", queue, dead_letter_exchange=dead_letter_exchange
    )
    channel.queue_declare(
        queue,
        durable=True,
        arguments=queue_arguments(
            dead_letter_exchange=dead_letter_exchange,
            dead_letter_routing_key=queue,
            delivery_limit=delivery_limit,
        ),
    )


def run_phone_consumer(
    url: str,
    handler: TranscriptHandler,
    *,
    stop_event: threading.Event,
    on_poison: Callable[[PoisonedTranscript], None] | None = None,
    queue: str = PHONE_QUEUE,
    dead_letter_exchange: str = DEAD_LETTER_EXCHANGE,
    delivery_limit: int = PHONE_DELIVERY_LIMIT,
    retry_delay: float = 1.0,
) -> None:
    """Consume phone transcripts until `stop_event` is set (reconnecting when RabbitMQ goes)."""

    def declare(channel: BlockingChannel) -> None:
        declare_phone_queue(
            channel,
            queue=queue,
            dead_letter_exchange=dead_letter_exchange,
            delivery_limit=delivery_limit,
        )
        channel.confirm_delivery()  # the copy to the dead-letter queue must be confirmed

    def retry_later(channel: BlockingChannel, method: Basic.Deliver) -> None:
        channel.basic_nack(method.delivery_tag, requeue=True)
        stop_event.wait(retry_delay)

    def poison(
        channel: BlockingChannel,
        method: Basic.Deliver,
        properties: BasicProperties,
        body: bytes,
        reason: str,
        call_id: str | None,
    ) -> None:
        poisoned = PoisonedTranscript(
            queue=queue,
            reason=reason,
            body=body,
            call_id=call_id,
            message_id=properties.message_id,
            content_type=properties.content_type,
            content_encoding=properties.content_encoding,
        )
        log.warning("phone queue: dead-lettering %s: %s", poisoned.reference, reason)
        if on_poison is not None:
            try:
                on_poison(poisoned)
            except Exception:
                log.exception("phone queue: recording the dead letter failed; requeueing")
                retry_later(channel, method)
                return
        _forward_dead(channel, method, properties, body, poisoned, dead_letter_exchange)

    def handle(
        channel: BlockingChannel, method: Basic.Deliver, properties: BasicProperties, body: bytes
    ) -> None:
        try:
            transcript = parse_transcript(
                body,
                content_type=properties.content_type,
                content_encoding=properties.content_encoding,
            )
        except PoisonMessage as exc:
            poison(channel, method, properties, body, exc.reason, exc.call_id)
            return
        try:
            number = handler(transcript)
        except PoisonMessage as exc:
            poison(channel, method, properties, body, exc.reason, transcript.call_id)
        except AppError as exc:  # the intake refused it: trying again cannot help
            reason = f"{type(exc).__name__}: {exc}"
            poison(channel, method, properties, body, reason, transcript.call_id)
        except Exception:
            log.exception("phone queue: call %s failed; requeueing it", transcript.call_id)
            retry_later(channel, method)
        else:
            channel.basic_ack(method.delivery_tag)
            log.info("phone queue: call %s -> work order %s", transcript.call_id, number)

    consume_queue(
        url,
        queue,
        handle,
        stop_event=stop_event,
        declare=declare,
        name=f"phone-consumer:{queue}",
    )


def _forward_dead(
    channel: BlockingChannel,
    method: Basic.Deliver,
    properties: BasicProperties,
    body: bytes,
    poisoned: PoisonedTranscript,
    dead_letter_exchange: str,
) -> None:
    headers = dict(properties.headers or {})
    headers[REASON_HEADER] = poisoned.reason[:1000]
    headers["x-hotline-source-queue"] = poisoned.queue
    if poisoned.call_id:
        headers["x-hotline-call-id"] = poisoned.call_id
    copy = BasicProperties(
        content_type=properties.content_type,
        content_encoding=properties.content_encoding,
        delivery_mode=2,
        message_id=properties.message_id,
        correlation_id=properties.correlation_id,
        timestamp=properties.timestamp,
        app_id=properties.app_id,
        headers=headers,
    )
    try:
        channel.basic_publish(
            dead_letter_exchange, poisoned.queue, body, properties=copy, mandatory=True
        )
    except AMQPError as exc:
        if not channel.is_open:
            raise  # the connection went: the message comes back and is judged again
        # Unroutable or refused: let the broker dead-letter it (x-death, without our reason).
        log.error("phone queue: copying to the dead-letter queue failed (%s); rejecting", exc)
        channel.basic_nack(method.delivery_tag, requeue=False)
        return
    channel.basic_ack(method.delivery_tag)


def dead_letter_recorder(database: Database) -> Callable[[PoisonedTranscript], None]:
    """An `on_poison` that adds an `intake` entry to the supervisors' dead-letter list."""

    def record(poisoned: PoisonedTranscript) -> None:
        with database.session() as db_session:
            dead_letter(
                db_session=db_session,
                kind="intake",
                reference=f"phone:{poisoned.reference}",
                reason=poisoned.reason,
                payload=poisoned.as_payload(),
            )

    return record


def serve_phone_queue(
    url: str,
    handler: TranscriptHandler,
    *,
    on_poison: Callable[[PoisonedTranscript], None] | None = None,
    queue: str = PHONE_QUEUE,
    dead_letter_exchange: str = DEAD_LETTER_EXCHANGE,
) -> None:
    """Run the consumer in the foreground until SIGINT or SIGTERM (for `hotline phone-consumer`).

    Raises `ConfigurationError` (one clear line) when RabbitMQ refuses our queues.
    """
    stop_event = threading.Event()

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("phone queue: signal %d received; stopping after the current message", signum)
        stop_event.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        run_phone_consumer(
            url,
            handler,
            stop_event=stop_event,
            on_poison=on_poison,
            queue=queue,
            dead_letter_exchange=dead_letter_exchange,
        )
    except ChannelClosedByBroker as exc:
        raise ConfigurationError(
            f"RabbitMQ refused the queue {queue!r}: {exc.reply_code} {exc.reply_text}"
        ) from None
    finally:
        for sig, handler_before in previous.items():
            signal.signal(sig, handler_before)
