"""Delivery of dispatched work orders to departments, and the dead-letter list supervisors see.

How a dispatch reaches a department exactly once:

1. In the dispatch transaction, `record_deliveries()` (or `record_dispatch()` for one department)
   adds one `Delivery` row per department and channel (its unique `delivery_key` makes a
   repeated call find the same rows) and enqueues one outbox task for the dispatch:
   `dispatch.deliver_batch` with the ids of its RabbitMQ deliveries, and `dispatch.deliver` per
   webhook delivery (an endpoint that is down must not hold back the queue messages). Nothing
   leaves before the commit; if the broker is down then, the outbox relay publishes it later.
2. The task calls `deliver_many()` (or `deliver()`), which claims the rows (`pending` only),
   publishes or POSTs, and marks them `sent` in the task's transaction. A task that runs twice
   finds the rows `sent` and does nothing; a worker killed before its commit leaves them
   `pending`, and the redelivered task sends again with the same `delivery_key`, on which the
   department deduplicates.
3. Transient failures raise `TransientDeliveryError` (the task retries with backoff); permanent
   ones, and the last retry, mark the row `failed` and add a dead letter for supervisors. When
   part of a batch went out before a transient failure, the sent rows are kept and each one
   left is handed to its own `dispatch.deliver` task, so nothing is sent twice by a retry.

Functions only flush; the request or task wrapper owns the transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import httpx
from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from router.catalogue.models import Department
from router.errors import Conflict, InvalidInput, NotFound
from router.orm import utcnow
from router.workorders.models import Appeal, WorkOrder, WorkOrderEvent
from service import outbox
from service.delivery.errors import PermanentDeliveryError, TransientDeliveryError
from service.delivery.messages import MESSAGE_TYPE, build_message, encode
from service.delivery.models import CHANNELS, DEAD_LETTER_KINDS, DeadLetter, Delivery
from service.delivery.webhook import deliver_webhook, department_secret
from service.observability.context import bound, current_request_id
from service.worker import names

__all__ = [
    "DELIVER_BATCH_TASK",
    "DELIVER_TASK",
    "DISPATCH_ACTIONS",
    "Publisher",
    "channels_for",
    "dead_letter",
    "deliver",
    "deliver_many",
    "delivery_key",
    "fail_delivery",
    "get_dead_letter_or_raise",
    "get_delivery",
    "list_dead_letters",
    "list_deliveries",
    "record_dispatch",
    "record_dispatch_many",
    "record_dispatches",
    "requeue_delivery",
    "resolve_dead_letter",
]

log = logging.getLogger(__name__)

DELIVER_TASK = names.DELIVER
DELIVER_BATCH_TASK = names.DELIVER_BATCH
DISPATCH_ACTIONS = ("triage_auto", "dispatch", "redispatch")
"""Work-order actions that send the order to a department; each one is a new dispatch."""


class Publisher(Protocol):
    """What `deliver()` needs from a broker publisher (`rabbitmq.DepartmentPublisher`)."""

    def publish(
        self,
        department_code: str,
        body: bytes,
        *,
        message_id: str,
        correlation_id: str | None = None,
        message_type: str | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> None: ...


def channels_for(department: Department, *, rabbitmq: bool = True) -> tuple[str, ...]:
    """The delivery channels of a department, from its catalogue `delivery` mode.

    With `rabbitmq=False` (a deployment without RabbitMQ) queue departments get no push
    delivery and read their orders through the API.
    """
    if department.delivery == "webhook":
        return ("webhook",)
    return ("rabbitmq",) if rabbitmq else ()


def delivery_key(number: str, sequence: int, department_code: str, channel: str) -> str:
    """`<number>:<sequence>:<department>:<channel>`: the AMQP message id and webhook delivery id."""
    return f"{number}:{sequence}:{department_code}:{channel}"


def get_delivery(*, db_session: Session, delivery_id: int) -> Delivery | None:
    return db_session.get(Delivery, delivery_id)


def list_deliveries(*, db_session: Session, work_order_id: int) -> list[Delivery]:
    return list(
        db_session.scalars(
            select(Delivery).where(Delivery.work_order_id == work_order_id).order_by(Delivery.id)
        )
    )


def record_dispatch(
    *,
    db_session: Session,
    work_order: WorkOrder,
    department_code: str,
    channels: Iterable[str] | None = None,
) -> list[Delivery]:
    """Record the deliveries of the order's current dispatch to one department, once.

    Call it after the dispatch action is applied, in the same transaction, once for the lead
    department and once per assisting department. `channels` defaults to `channels_for()` the
    department. A repeated call for the same dispatch returns the existing rows and enqueues
    nothing.
    """
    department = db_session.get(Department, department_code)
    if department is None:
        raise NotFound(f"department {department_code} not found")
    wanted = tuple(channels_for(department) if channels is None else channels)
    return record_dispatch_many(
        db_session=db_session, work_order=work_order, channels={department_code: wanted}
    )


def record_dispatch_many(
    *,
    db_session: Session,
    work_order: WorkOrder,
    channels: Mapping[str, Iterable[str]],
) -> list[Delivery]:
    """Record the deliveries of the order's current dispatch to several departments at once.

    `channels` maps department codes to their channels; see `record_dispatches`.
    """
    return record_dispatches(db_session=db_session, dispatches=[(work_order, channels)])


def record_dispatches(
    *,
    db_session: Session,
    dispatches: Sequence[tuple[WorkOrder, Mapping[str, Iterable[str]]]],
) -> list[Delivery]:
    """Record the deliveries of the current dispatch of several orders (each with its
    departments' channels) at once.

    One dispatch-sequence query, one savepoint with one multi-row insert and one outbox row for
    all the queue deliveries cover every order of a group-committed intake; a repeated call (the
    keys exist already) falls back to finding the existing rows and enqueues only what was
    missing.
    """
    wanted = [
        (order, {code: tuple(dict.fromkeys(names)) for code, names in channels.items()})
        for order, channels in dispatches
    ]
    names = {name for _, by_code in wanted for names in by_code.values() for name in names}
    unknown = sorted(names - set(CHANNELS))
    if unknown:
        raise InvalidInput(f"unknown delivery channel(s): {', '.join(unknown)}")
    sequences = _current_sequences(db_session, {order.id for order, _ in wanted})
    specs = []
    for order, by_code in wanted:
        sequence = sequences.get(order.id, 0)
        if sequence == 0:
            raise Conflict(f"work order {order.number} has not been dispatched")
        specs += [(order, sequence, code, ch) for code, names in by_code.items() for ch in names]
    if not specs:
        return []
    rows = [_new_delivery(*spec) for spec in specs]
    try:
        with db_session.begin_nested():
            db_session.add_all(rows)
            db_session.flush()
    except IntegrityError:
        # Recorded before (a repeated call, or a concurrent transaction came first): the
        # savepoint dropped our rows; keep the existing ones and add only what is missing.
        rows, added = [], []
        for spec in specs:
            row = _new_delivery(*spec)
            existing = _insert_or_get(db_session, row)
            rows.append(existing)
            if existing is row:
                added.append(row)
        _enqueue_deliveries(db_session, added)
        return rows
    _enqueue_deliveries(db_session, rows)
    return rows


def _new_delivery(work_order: WorkOrder, sequence: int, code: str, channel: str) -> Delivery:
    return Delivery(
        work_order_id=work_order.id,
        department_code=code,
        channel=channel,
        dispatch_sequence=sequence,
        delivery_key=delivery_key(work_order.number, sequence, code, channel),
        status="pending",
        attempts=0,
        last_error="",
    )


def _insert_or_get(db_session: Session, row: Delivery) -> Delivery:
    existing = db_session.scalar(select(Delivery).where(Delivery.delivery_key == row.delivery_key))
    if existing is not None:
        return existing
    try:
        with db_session.begin_nested():
            db_session.add(row)
            db_session.flush()
    except IntegrityError:
        # A concurrent transaction recorded the same dispatch first: use its row.
        existing = db_session.scalar(
            select(Delivery).where(Delivery.delivery_key == row.delivery_key)
        )
        if existing is None:
            raise
        return existing
    return row


def _enqueue_deliveries(db_session: Session, rows: Sequence[Delivery]) -> None:
    """One outbox task for the dispatch's queue deliveries, one per webhook delivery (a slow or
    failing endpoint retries on its own and never holds back or repeats the queue messages)."""
    queued = [row.id for row in rows if row.channel == "rabbitmq"]
    if queued:
        outbox.enqueue(db_session, DELIVER_BATCH_TASK, delivery_ids=queued)
    for row in rows:
        if row.channel != "rabbitmq":
            outbox.enqueue(db_session, DELIVER_TASK, delivery_id=row.id)


def deliver(
    *,
    db_session: Session,
    delivery_id: int,
    publisher: Publisher | None,
    http_client: httpx.Client | None,
    signing_key: str = "",
    attempt: int = 1,
    max_attempts: int | None = None,
    webhook_timeout: float = 10.0,
) -> Delivery | None:
    """Send one delivery unless it is already done; returns the row (None if it is unknown).

    The row is claimed with a conditional update before anything is sent, so a duplicate task
    running at the same time waits for this transaction and then finds the row `sent`.
    `attempt` / `max_attempts` come from the task's retry count: on the last attempt a
    transient failure is dead-lettered instead of raised.
    """
    rows = deliver_many(
        db_session=db_session,
        delivery_ids=[delivery_id],
        publisher=publisher,
        http_client=http_client,
        signing_key=signing_key,
        attempt=attempt,
        max_attempts=max_attempts,
        webhook_timeout=webhook_timeout,
    )
    return rows[0] if rows else None


def deliver_many(
    *,
    db_session: Session,
    delivery_ids: Sequence[int],
    publisher: Publisher | None,
    http_client: httpx.Client | None,
    signing_key: str = "",
    attempt: int = 1,
    max_attempts: int | None = None,
    webhook_timeout: float = 10.0,
) -> list[Delivery]:
    """Send the deliveries of one dispatch that are still pending; returns the rows handled.

    Same contract as `deliver()`, for several rows with a handful of statements: one claiming
    update, one read of the rows with their orders and appeals, one dispatch-sequence query,
    one update of the sent rows. A transient failure before anything went out is raised (the
    task retries the batch); after part of the batch went out, the sent rows are kept and each
    remaining one is handed to its own `dispatch.deliver` task through the outbox.
    """
    ids = sorted(set(delivery_ids))  # one lock order for every task holding these ids
    if not ids:
        return []
    bumped = Delivery.attempts + 1
    claimed = set(
        db_session.scalars(
            update(Delivery)
            .where(Delivery.id.in_(ids), Delivery.status == "pending")
            .values(attempts=case((bumped < attempt, attempt), else_=bumped))
            .returning(Delivery.id),
            execution_options={"synchronize_session": False},
        )
    )
    found = db_session.execute(
        select(Delivery, WorkOrder, Appeal)
        .join(WorkOrder, WorkOrder.id == Delivery.work_order_id)
        .join(Appeal, Appeal.id == WorkOrder.appeal_id)
        .where(Delivery.id.in_(ids))
        .order_by(Delivery.id)
        .execution_options(populate_existing=True)
    )
    todo, handled = [], []
    for row, work_order, appeal in found:
        handled.append(row)
        if row.id in claimed:
            todo.append((row, work_order, appeal))
        else:
            log.info("delivery %s is already %s", row.delivery_key, row.status)
    if len(handled) < len(ids):
        log.warning("deliveries %s do not exist", sorted(set(ids) - {r.id for r in handled}))
    current = _current_sequences(db_session, {row.work_order_id for row, _, _ in todo})
    sent: list[Delivery] = []
    for index, (row, work_order, appeal) in enumerate(todo):
        with bound(work_order=work_order.number):  # the logs of this delivery name it
            sequence = current.get(row.work_order_id, 0)
            if row.dispatch_sequence < sequence:
                row.status = "superseded"
                row.last_error = f"superseded by dispatch {sequence} before it was sent"
                continue
            try:
                _send(
                    db_session,
                    row,
                    work_order,
                    publisher=publisher,
                    http_client=http_client,
                    signing_key=signing_key,
                    webhook_timeout=webhook_timeout,
                    appeal=appeal,
                )
            except PermanentDeliveryError as exc:
                _fail(db_session, row, str(exc))
                continue
            except TransientDeliveryError as exc:
                if max_attempts is not None and attempt >= max_attempts:
                    _fail(db_session, row, f"gave up after {attempt} attempts: {exc}")
                    continue
                log.warning("delivery %s attempt %d failed: %s", row.delivery_key, attempt, exc)
                if not sent:
                    raise  # nothing went out: the whole batch is retried with backoff
                _mark_sent(db_session, sent)
                for rest, _, _ in todo[index:]:
                    outbox.enqueue(db_session, DELIVER_TASK, delivery_id=rest.id)
                return handled
            sent.append(row)
    _mark_sent(db_session, sent)
    return handled


def _current_sequences(db_session: Session, work_order_ids: set[int]) -> dict[int, int]:
    """How many times each order has been dispatched (1 after the first dispatch)."""
    if not work_order_ids:
        return {}
    counts = db_session.execute(
        select(WorkOrderEvent.work_order_id, func.count())
        .where(
            WorkOrderEvent.work_order_id.in_(sorted(work_order_ids)),
            WorkOrderEvent.action.in_(DISPATCH_ACTIONS),
        )
        .group_by(WorkOrderEvent.work_order_id)
    )
    return {work_order_id: int(count) for work_order_id, count in counts}


def _mark_sent(db_session: Session, rows: Sequence[Delivery]) -> None:
    now = utcnow()
    for row in rows:
        row.status = "sent"
        row.sent_at = now
        row.last_error = ""
        log.info("delivery %s sent", row.delivery_key)
    db_session.flush()


def _send(
    db_session: Session,
    row: Delivery,
    work_order: WorkOrder,
    *,
    publisher: Publisher | None,
    http_client: httpx.Client | None,
    signing_key: str,
    webhook_timeout: float,
    appeal: Appeal | None = None,
) -> None:
    if appeal is None:
        appeal = db_session.get(Appeal, work_order.appeal_id)
    if appeal is None:
        raise NotFound(f"appeal {work_order.appeal_id} not found")
    request_id = current_request_id()  # of the request that dispatched it (a task header)
    message = build_message(
        delivery_id=row.delivery_key,
        dispatch_id=row.dispatch_id,
        department_code=row.department_code,
        work_order=work_order,
        appeal=appeal,
    )
    if row.channel == "rabbitmq":
        if publisher is None:
            raise PermanentDeliveryError("no RabbitMQ publisher is configured")
        publisher.publish(
            row.department_code,
            encode(message),
            message_id=row.delivery_key,
            correlation_id=work_order.number,
            message_type=MESSAGE_TYPE,
            headers={
                "x-hotline-dispatch-id": row.dispatch_id,
                "x-hotline-work-order": work_order.number,
                "x-hotline-department": row.department_code,
                **({"x-request-id": request_id} if request_id else {}),
            },
        )
        return
    department = db_session.get(Department, row.department_code)
    url = department.webhook_url if department is not None else ""
    if not url:
        raise PermanentDeliveryError(f"department {row.department_code} has no webhook URL")
    if http_client is None:
        raise PermanentDeliveryError("no HTTP client is configured for webhooks")
    if not signing_key:
        raise PermanentDeliveryError("no webhook signing key is configured")
    deliver_webhook(
        url,
        message,
        department_secret(signing_key, row.department_code),
        client=http_client,
        timeout=webhook_timeout,
        delivery_id=row.delivery_key,
        request_id=request_id,
    )


def _fail(db_session: Session, row: Delivery, reason: str) -> None:
    row.status = "failed"
    row.last_error = reason[:2000]
    log.error("delivery %s failed: %s", row.delivery_key, reason)
    dead_letter(
        db_session=db_session,
        kind="delivery",
        reference=row.delivery_key,
        reason=reason,
        payload={
            "delivery_id": row.id,
            "delivery_key": row.delivery_key,
            "work_order_id": row.work_order_id,
            "department_code": row.department_code,
            "channel": row.channel,
            "attempts": row.attempts,
        },
    )


def fail_delivery(*, db_session: Session, delivery_id: int, reason: str) -> Delivery | None:
    """Dead-letter a delivery that is still pending (the task's retries ran out); idempotent."""
    row = db_session.get(Delivery, delivery_id, with_for_update=True)
    if row is None or row.status != "pending":
        return row
    _fail(db_session, row, reason)
    return row


def requeue_delivery(*, db_session: Session, delivery_id: int, actor: str) -> Delivery:
    """A supervisor sends a failed delivery again (after fixing its cause); resolves its letters."""
    row = db_session.get(Delivery, delivery_id, with_for_update=True)
    if row is None:
        raise NotFound(f"delivery {delivery_id} not found")
    if row.status != "failed":
        raise Conflict(f"delivery {row.delivery_key} is {row.status}, not failed")
    row.status = "pending"
    row.last_error = ""
    open_letters = db_session.scalars(
        select(DeadLetter).where(
            DeadLetter.kind == "delivery",
            DeadLetter.reference == row.delivery_key,
            DeadLetter.resolved_at.is_(None),
        )
    )
    for letter in open_letters:
        letter.resolved_at = utcnow()
        letter.resolved_by = actor
    db_session.flush()
    outbox.enqueue(db_session, DELIVER_TASK, delivery_id=row.id)
    return row


def dead_letter(
    *,
    db_session: Session,
    kind: str,
    reference: str,
    reason: str,
    payload: Mapping[str, Any] | None = None,
) -> DeadLetter:
    """Add an entry to the dead-letter list (`kind` is `delivery` or `intake`)."""
    if kind not in DEAD_LETTER_KINDS:
        raise InvalidInput(f"dead-letter kind must be one of {DEAD_LETTER_KINDS}, not {kind!r}")
    letter = DeadLetter(
        kind=kind,
        reference=reference[:200],
        reason=reason,
        payload=dict(payload or {}),
        created_at=utcnow(),
    )
    db_session.add(letter)
    db_session.flush()
    return letter


def list_dead_letters(
    *,
    db_session: Session,
    kind: str | None = None,
    include_resolved: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> list[DeadLetter]:
    """Dead letters for the supervisors' list, newest first."""
    query = select(DeadLetter)
    if kind is not None:
        query = query.where(DeadLetter.kind == kind)
    if not include_resolved:
        query = query.where(DeadLetter.resolved_at.is_(None))
    query = query.order_by(DeadLetter.created_at.desc(), DeadLetter.id.desc())
    return list(db_session.scalars(query.limit(limit).offset(offset)))


def get_dead_letter_or_raise(*, db_session: Session, dead_letter_id: int) -> DeadLetter:
    letter = db_session.get(DeadLetter, dead_letter_id)
    if letter is None:
        raise NotFound(f"dead letter {dead_letter_id} not found")
    return letter


def resolve_dead_letter(
    *, db_session: Session, dead_letter_id: int, resolved_by: str
) -> DeadLetter:
    """Mark a dead letter handled; resolving it again keeps the first resolution."""
    letter = get_dead_letter_or_raise(db_session=db_session, dead_letter_id=dead_letter_id)
    if letter.resolved_at is None:
        letter.resolved_at = utcnow()
        letter.resolved_by = resolved_by
        db_session.flush()
    return letter
