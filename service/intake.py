"""Intake: store the appeal first, then classify and route it in a second transaction.

The appeal is committed before the classifier runs, so a crash or a missing model never loses
it: it stays `received` and `dispatch.triage_pending` routes it later.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from classifier.errors import ClassifierError
from router import workorders
from router.models import WorkOrder
from router.orm import utcnow
from router.routing import RouteDecision, RoutingPolicy
from service import classification
from service.config import Settings
from service.db import Database
from service.dispatching import record_deliveries

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IntakeResult:
    number: str
    state: str
    created: bool
    decision: RouteDecision | None
    suggestion: dict[str, object] | None


def triage(*, db_session: Session, work_order: WorkOrder, settings: Settings) -> RouteDecision:
    """Classify and route one `received` order (the caller owns the transaction)."""
    appeal = work_order.appeal
    decision, version = classification.suggest(
        model_dir=settings.model_dir,
        text=appeal.text,
        title=appeal.title,
        address=appeal.address,
        policy=RoutingPolicy(auto_dispatch_threshold=settings.auto_dispatch_threshold),
    )
    workorders.apply_route(
        db_session=db_session, work_order=work_order, decision=decision, model_version=version
    )
    if work_order.state == "dispatched":
        record_deliveries(db_session=db_session, work_order=work_order, settings=settings)
    return decision


def submit(
    *,
    database: Database,
    settings: Settings,
    appeal: workorders.AppealInput,
    actor: str,
    role: str,
) -> IntakeResult:
    with database.session() as db_session:
        order, created = workorders.receive_appeal(
            db_session=db_session, appeal=appeal, actor=actor, role=role
        )
        order_id = order.id
    if not created:
        with database.session() as db_session:
            order = db_session.get_one(WorkOrder, order_id)
            return IntakeResult(order.number, order.state, False, None, order.suggestion or None)
    decision = None
    try:
        with database.session() as db_session:
            order = db_session.get_one(WorkOrder, order_id, with_for_update=True)
            if order.state == "received":
                decision = triage(db_session=db_session, work_order=order, settings=settings)
            number, state = order.number, order.state
    except ClassifierError as exc:
        log.warning("appeal stored as %s but not routed yet: %s", order_id, exc)
        with database.session() as db_session:
            order = db_session.get_one(WorkOrder, order_id)
            number, state = order.number, order.state
    return IntakeResult(number, state, True, decision, decision.to_dict() if decision else None)


def triage_pending(
    *, db_session: Session, settings: Settings, older_than: timedelta = timedelta(seconds=30)
) -> int:
    """Route orders still `received` after `older_than` (the caller owns the transaction)."""
    cutoff = utcnow() - older_than
    query = (
        select(WorkOrder)
        .where(WorkOrder.state == "received", WorkOrder.created_at <= cutoff)
        .order_by(WorkOrder.id)
        .limit(200)
    )
    if db_session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    routed = 0
    for order in db_session.scalars(query):
        triage(db_session=db_session, work_order=order, settings=settings)
        routed += 1
    return routed
