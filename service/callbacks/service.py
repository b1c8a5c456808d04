"""Callbacks in the service: policies from the settings, placing gateway calls, the periodic scan.

`scan()` is what the `callbacks.scan` beat task runs: it claims the gateway callbacks that are due
(`calling`) and enqueues one `callbacks.place` task each through the outbox, and counts a call
whose asynchronous report never came (after `callback_result_timeout_minutes`) as unreachable.
`place()` is the body of `callbacks.place`. Functions only flush; the task wrapper commits.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from router.callbacks import service as callbacks
from router.callbacks.models import Callback, CallbackStatus
from router.orm import utcnow
from router.workorders import workflow
from router.workorders.models import Appeal, WorkOrder, WorkOrderEvent
from service import outbox
from service.auth.masking import mask_text
from service.callbacks.providers import (
    AgentQueueProvider,
    CallbackProvider,
    CallRequest,
    GatewayProvider,
    gateway_secret,
)
from service.config import Settings
from service.delivery.errors import PermanentDeliveryError, TransientDeliveryError
from service.worker import names

__all__ = [
    "GATEWAY_ACTOR",
    "GATEWAY_RETRY",
    "PLACE_TASK",
    "callback_policy",
    "place",
    "provider_for",
    "record",
    "reply_summary",
    "scan",
    "schedule_after_close",
    "workflow_policy",
]

log = logging.getLogger(__name__)

PLACE_TASK = names.PLACE_CALLBACK
GATEWAY_ACTOR = "callback-gateway"
GATEWAY_RETRY = timedelta(minutes=15)
"""When the gateway could not take a call (down, overloaded), try again this much later."""
SUMMARY_LENGTH = 200


def callback_policy(settings: Settings) -> callbacks.CallbackPolicy:
    return callbacks.CallbackPolicy(
        delay=timedelta(hours=settings.callback_delay_hours),
        retry_delay=timedelta(hours=settings.callback_retry_hours),
        provider=settings.callback_provider,
    )


def workflow_policy(settings: Settings) -> workflow.WorkflowPolicy:
    return workflow.WorkflowPolicy(max_callback_attempts=settings.callback_max_attempts)


def provider_for(settings: Settings, name: str, *, client: httpx.Client) -> CallbackProvider:
    if name == "gateway":
        return GatewayProvider(
            settings.callback_gateway_url,
            gateway_secret(settings.secret_key.get_secret_value()),
            client=client,
            timeout=settings.callback_gateway_timeout,
            report_url=settings.callback_gateway_report_url,
        )
    return AgentQueueProvider()


def schedule_after_close(
    *, db_session: Session, work_order: WorkOrder, settings: Settings, now: datetime
) -> list[Callback]:
    """Schedule the callbacks of a closure (call in the closing transaction)."""
    return callbacks.schedule_callbacks(
        db_session=db_session, work_order=work_order, policy=callback_policy(settings), now=now
    )


def record(
    *,
    db_session: Session,
    callback_id: int,
    outcome: str,
    actor: str,
    settings: Settings,
    note: str = "",
    now: datetime | None = None,
) -> callbacks.RecordedResult:
    """Record one result with the configured policies (`router.callbacks.service.record_result`)."""
    return callbacks.record_result(
        db_session=db_session,
        callback_id=callback_id,
        outcome=outcome,
        actor=actor,
        note=note,
        policy=callback_policy(settings),
        workflow_policy=workflow_policy(settings),
        now=now,
    )


def reply_summary(*, db_session: Session, work_order_id: int) -> str:
    """The department's latest reply to the order, masked and shortened, for the caller."""
    data = db_session.scalar(
        select(WorkOrderEvent.data)
        .where(
            WorkOrderEvent.work_order_id == work_order_id,
            WorkOrderEvent.action == workflow.Action.REPLY.value,
        )
        .order_by(WorkOrderEvent.id.desc())
        .limit(1)
    )
    text = str((data or {}).get("result") or "")
    return mask_text(text[:SUMMARY_LENGTH]) or ""


def scan(*, db_session: Session, settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    """Claim due gateway callbacks and enqueue their calls; time out unanswered calls."""
    at = now or utcnow()
    due = db_session.scalars(
        select(Callback.id)
        .where(
            Callback.provider == "gateway",
            Callback.status == CallbackStatus.PENDING.value,
            Callback.due_at <= at,
        )
        .order_by(Callback.due_at, Callback.id)
        .limit(500)
    ).all()
    placed = 0
    for callback_id in due:
        if callbacks.claim_for_call(db_session=db_session, callback_id=callback_id, now=at):
            outbox.enqueue(db_session, PLACE_TASK, callback_id=callback_id)
            placed += 1
    cutoff = at - timedelta(minutes=settings.callback_result_timeout_minutes)
    stale = db_session.scalars(
        select(Callback.id).where(
            Callback.status == CallbackStatus.CALLING.value,
            Callback.last_attempt_at < cutoff,
        )
    ).all()
    for callback_id in stale:
        record(
            db_session=db_session,
            callback_id=callback_id,
            outcome=workflow.CallbackOutcome.UNREACHABLE.value,
            actor=GATEWAY_ACTOR,
            settings=settings,
            note="语音网关未回报结果",
            now=at,
        )
    db_session.flush()
    return {"placed": placed, "timed_out": len(stale)}


def place(
    *,
    db_session: Session,
    callback_id: int,
    settings: Settings,
    client: httpx.Client,
    now: datetime | None = None,
) -> str:
    """Place one claimed gateway call; returns what happened (for the task log)."""
    at = now or utcnow()
    row = callbacks.get_callback(db_session=db_session, callback_id=callback_id)
    if row is None or row.status != CallbackStatus.CALLING.value:
        return "not calling"  # a redelivered task after the result came: nothing to do
    appeal = db_session.get_one(Appeal, row.appeal_id)
    order = db_session.get_one(WorkOrder, row.work_order_id)
    request = CallRequest(
        callback_id=row.id,
        attempt=row.attempts + 1,
        phone=appeal.caller_phone or "",
        work_order_number=order.number,
        reply_summary=reply_summary(db_session=db_session, work_order_id=order.id),
    )
    provider = provider_for(settings, row.provider, client=client)
    try:
        outcome = provider.place(request)
    except TransientDeliveryError as exc:
        log.warning("callback %s: gateway did not take the call: %s", row.id, exc)
        callbacks.release_call(
            db_session=db_session, callback=row, retry_at=at + GATEWAY_RETRY, note=str(exc)
        )
        return "gateway unavailable"
    except PermanentDeliveryError as exc:
        log.error("callback %s: gateway refused the call, handed to agents: %s", row.id, exc)
        row.provider = "agent"
        callbacks.release_call(
            db_session=db_session, callback=row, retry_at=at, note=f"语音网关拒绝：{exc}"
        )
        return "handed to agents"
    if outcome is None:
        return "awaiting report"
    record(
        db_session=db_session,
        callback_id=row.id,
        outcome=outcome,
        actor=GATEWAY_ACTOR,
        settings=settings,
        now=at,
    )
    return outcome
