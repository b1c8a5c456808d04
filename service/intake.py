"""Intake: store the appeal first, then classify, check for duplicates and route it in a second
transaction.

The appeal is committed before the classifier runs, so a crash or a missing model never loses
it: it stays `received` and `dispatch.triage_pending` routes it later.

Duplicate detection (并单) runs between classification and routing: the new order is compared
with the orders of the last ``duplicate_window_days`` through this process's
:class:`router.duplicates.detector.DuplicateDetector` for the database (or the host's, through
:mod:`service.duplicate_server`). Candidates are stored on
the order for the agent; above ``duplicate_auto_merge_threshold``, with ``duplicate_auto_merge``
on, the order is merged into its master instead of being routed. A failing check is logged and
never blocks intake.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import partial
from typing import cast

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, joinedload

from classifier.errors import ClassifierError
from router.catalogue import default_catalogue
from router.duplicates import detector
from router.duplicates import service as merges
from router.duplicates.detector import DuplicateDetector
from router.duplicates.index import (
    Action,
    DuplicateCheck,
    DuplicateConfig,
)
from router.duplicates.models import DuplicateCandidate
from router.orm import utcnow
from router.routing import RouteDecision, RoutingPolicy
from router.workorders import service as workorders
from router.workorders.models import WorkOrder
from router.workorders.workflow import Role, State
from service import classification
from service.batching import GroupCommit
from service.config import Settings
from service.db import Database
from service.dispatching import record_deliveries_many
from service.duplicate_server import RemoteDetector
from service.observability import metrics
from service.observability.context import current_request_id
from service.runtime import get_database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IntakeResult:
    number: str
    state: str
    created: bool
    decision: RouteDecision | None
    suggestion: dict[str, object] | None
    duplicate_action: str = "none"
    """``none``, ``suggest`` (candidates stored for the agent) or ``auto_merge`` (merged)."""
    master_number: str | None = None
    """The master order when the appeal was merged automatically."""


# ----------------------------------------------------------------------------- duplicates

ACTIVE_MASTER_STATES = frozenset(
    {
        State.RECEIVED,
        State.REVIEW,
        State.DISPATCHED,
        State.ACCEPTED,
        State.EXTENSION_REQUESTED,
        State.RETURNED,
        State.REOPENED,
    }
)
"""Masters an appeal may be merged into automatically: a closed problem needs a person."""


def duplicate_config(settings: Settings) -> DuplicateConfig:
    auto = max(settings.duplicate_auto_merge_threshold, settings.duplicate_suggest_threshold)
    return DuplicateConfig(
        suggest_threshold=settings.duplicate_suggest_threshold,
        auto_merge_threshold=auto if settings.duplicate_auto_merge else None,
        candidate_floor=min(0.2, settings.duplicate_suggest_threshold),
        window=timedelta(days=settings.duplicate_window_days),
    )


def detector_for(database: Database, settings: Settings) -> DuplicateDetector | RemoteDetector:
    """This process's detector for `database` (rebuilt when the duplicate settings change), or
    the client of the host's `hotline duplicate-server` when `HOTLINE_DUPLICATE_SERVER` is set
    (then this process holds no index)."""
    if settings.duplicate_server:
        from service.runtime import duplicate_client

        return duplicate_client()
    return detector.detector_for(database, duplicate_config(settings))


def warm_duplicate_index(database: Database, settings: Settings) -> int:
    """Fill this process's duplicate index from the database ahead of the first appeal."""
    return detector_for(database, settings).warm_up(database.session)


def _find_duplicates(
    *,
    db_session: Session,
    work_orders: Sequence[WorkOrder],
    settings: Settings,
    database: Database | None = None,
) -> list[DuplicateCheck] | None:
    """Check new orders against the recent ones (and each against those before it); None when
    the check failed. Nothing is flushed: the orders' routing fields go out later in one UPDATE
    each."""
    try:
        detector = detector_for(database or get_database(), settings)
        catalogue = default_catalogue()
        records = [merges.record_of(order, catalogue) for order in work_orders]
        for order, record in zip(work_orders, records, strict=True):
            order.site = record.site or ""  # so that other processes need no gazetteer
        with db_session.no_autoflush:
            return detector.check_many(db_session=db_session, records=records)
    except DBAPIError:
        # Not advice failing: the database refused or went away, and the transaction (outside
        # any savepoint) is dead; swallowed, the next flush failed with a 500. Raised, the API
        # answers 503, the client retries, and triage_pending routes the stored order.
        raise
    except Exception:  # duplicate detection is advice: it must never block an appeal
        numbers = ", ".join(order.number for order in work_orders)
        log.exception("duplicate check failed for work order(s) %s", numbers)
        return None


def _store_duplicates(
    *,
    db_session: Session,
    checks: Sequence[tuple[WorkOrder, DuplicateCheck]],
    fresh: bool,
) -> list[list[DuplicateCandidate]] | None:
    """Store the candidates of the checks in one savepoint; None when that failed."""
    try:
        with db_session.begin_nested():
            return merges.store_checks(db_session=db_session, checks=checks, fresh=fresh)
    except Exception as exc:  # advice again: the orders are routed without their candidates
        if isinstance(exc, DBAPIError) and (
            exc.connection_invalidated or isinstance(exc, OperationalError)
        ):
            raise  # the connection is gone: no savepoint can save the transaction
        numbers = ", ".join(order.number for order, _ in checks)
        log.exception("storing duplicate candidates failed for work order(s) %s", numbers)
        return None


def triage(
    *,
    db_session: Session,
    work_order: WorkOrder,
    settings: Settings,
    database: Database | None = None,
) -> RouteDecision:
    """Classify one `received` order, check it for duplicates, then merge or route it (the
    caller owns the transaction)."""
    return _triage(
        db_session=db_session, work_orders=[work_order], settings=settings, database=database
    )[0][0]


def _triage(
    *,
    db_session: Session,
    work_orders: Sequence[WorkOrder],
    settings: Settings,
    database: Database | None = None,
    fresh: bool = False,
) -> list[tuple[RouteDecision, list[DuplicateCandidate] | None]]:
    """`triage` for several orders with one batch through the model, one duplicate check, one
    flush and one delivery batch; also returns each order's stored duplicate candidates (None
    when the check failed)."""
    decisions, version = classification.suggest_many(
        model_dir=settings.model_dir,
        appeals=[(o.appeal.text, o.appeal.title, o.appeal.address) for o in work_orders],
        policy=RoutingPolicy(auto_dispatch_threshold=settings.auto_dispatch_threshold),
    )
    for order, decision in zip(work_orders, decisions, strict=True):
        # Kept on a merged order, so that an unmerge finds it ready for review.
        workorders.store_route(order, decision, version)
    found = _find_duplicates(
        db_session=db_session, work_orders=work_orders, settings=settings, database=database
    )
    checks = list(zip(work_orders, found, strict=True)) if found is not None else []
    dispatched = []
    for index, (order, decision) in enumerate(zip(work_orders, decisions, strict=True)):
        check = checks[index][1] if checks else None
        if check is not None and _auto_merge(db_session, order, check):
            continue
        if check is not None and check.action is Action.AUTO_MERGE:
            # Not merged after all (the master is closed, say): the agent decides.
            checks[index] = (order, replace(check, action=Action.SUGGEST))
        workorders.apply_route(
            db_session=db_session,
            work_order=order,
            decision=decision,
            model_version=version,
            flush=False,
        )
        if order.state == State.DISPATCHED:
            dispatched.append(order)
    db_session.flush()  # one UPDATE per order, one INSERT for all their events
    stored = None
    if checks:
        stored = _store_duplicates(db_session=db_session, checks=checks, fresh=fresh)
    if dispatched:
        record_deliveries_many(db_session=db_session, work_orders=dispatched, settings=settings)
    rows: Sequence[list[DuplicateCandidate] | None] = stored or [None] * len(work_orders)
    return list(zip(decisions, rows, strict=True))


def _auto_merge(db_session: Session, work_order: WorkOrder, check: DuplicateCheck) -> bool:
    if check.action is not Action.AUTO_MERGE or check.master_id is None:
        return False
    candidate = db_session.get(WorkOrder, check.master_id)
    if candidate is None:
        return False
    master = merges.resolve_master(db_session=db_session, work_order=candidate)
    if master.state not in ACTIVE_MASTER_STATES or master.id == work_order.id:
        return False
    merges.merge_work_order(
        db_session=db_session,
        work_order=work_order,
        into=master,
        actor="duplicates",
        role=Role.SYSTEM,
        score=check.candidates[0].score if check.candidates else None,
        automatic=True,
        note="自动并单：与已有工单高度相似",
    )
    return True


# ----------------------------------------------------------------------------- submission


@dataclass(frozen=True)
class Submission:
    """One appeal handed to intake, with who handed it over."""

    appeal: workorders.AppealInput
    actor: str
    role: str
    request_id: str | None = None
    """The request that handed it over (its log line carries it when another thread stores it)."""


MAX_BATCH = 64
"""The most appeals one group commit takes (about 30 ms of classification)."""


def submit(
    *,
    database: Database,
    settings: Settings,
    appeal: workorders.AppealInput,
    actor: str,
    role: str,
) -> IntakeResult:
    """Store an appeal, then classify, check and route it; returns what became of it.

    Appeals submitted at the same moment by other threads of this process (the API's request
    threads) are group-committed: one thread stores and routes all of them with a few
    multi-row statements (`submit_many`) while the others wait for their results. Alone, an
    appeal goes through on the caller's thread at once.
    """
    submission = Submission(appeal, actor, role, current_request_id())
    return _committer.submit(submission, key=(database, settings))


def _submit_batch(key: Hashable, batch: Sequence[Submission]) -> list[IntakeResult | Exception]:
    database, settings = cast(tuple[Database, Settings], key)
    return submit_many(database=database, settings=settings, submissions=batch)


_committer: GroupCommit[Submission, IntakeResult] = GroupCommit(_submit_batch, max_batch=MAX_BATCH)


def submit_many(
    *, database: Database, settings: Settings, submissions: Sequence[Submission]
) -> list[IntakeResult | Exception]:
    """Store the appeals in one transaction (nothing else happens before it commits), then
    classify, check and route the new ones in a second.

    Returns one result per submission, or the exception that one submission met (the others
    go on): when the batched insert fails, every appeal is stored on its own (so a bad appeal
    cannot take the others down); when batched routing fails, every stored order is routed on
    its own. A missing model leaves the orders `received` (`triage_pending` routes them later).
    """
    try:
        with database.session() as db_session:
            received = workorders.receive_appeals(
                db_session=db_session,
                items=[(s.appeal, s.actor, s.role) for s in submissions],
            )
            stored = [
                (order.id, created, _result_of(order, created)) for order, created in received
            ]
    except Exception:
        if len(submissions) == 1:
            raise
        log.warning("storing %d appeals together failed; storing each alone", len(submissions))
        results = [
            _outcome(partial(_submit_one, database=database, settings=settings, submission=one))
            for one in submissions
        ]
        _report(submissions, results)
        return results
    routed = _route(database, settings, [order_id for order_id, created, _ in stored if created])
    results = [routed[order_id] if created else result for order_id, created, result in stored]
    _report(submissions, results)
    return results


def _report(submissions: Sequence[Submission], results: Sequence[IntakeResult | Exception]) -> None:
    """One log line per new appeal (its request id and work-order number, never its text), and
    the intake metrics."""
    if log.isEnabledFor(logging.INFO):
        for submission, result in zip(submissions, results, strict=True):
            if isinstance(result, IntakeResult) and result.created:
                log.info(
                    "appeal from %s stored as work order %s: %s",
                    submission.appeal.channel,
                    result.number,
                    result.state,
                    extra={"request_id": submission.request_id, "work_order": result.number},
                )
    metrics.record_intake(
        (submission.appeal.channel, result)
        for submission, result in zip(submissions, results, strict=True)
    )


def _submit_one(*, database: Database, settings: Settings, submission: Submission) -> IntakeResult:
    with database.session() as db_session:
        order, created = workorders.receive_appeal(
            db_session=db_session,
            appeal=submission.appeal,
            actor=submission.actor,
            role=submission.role,
        )
        order_id, result = order.id, _result_of(order, created)
    if not created:
        return result
    outcome = _route(database, settings, [order_id])[order_id]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def _route(
    database: Database, settings: Settings, order_ids: Sequence[int]
) -> dict[int, IntakeResult | Exception]:
    """Classify, check and route stored `received` orders in one transaction; on an error other
    than a missing model, each order on its own."""
    if not order_ids:
        return {}
    try:
        with database.session() as db_session:
            # The orders (locked) and their appeals in one statement.
            orders = list(
                db_session.scalars(
                    select(WorkOrder)
                    .options(joinedload(WorkOrder.appeal, innerjoin=True))
                    .where(WorkOrder.id.in_(order_ids))
                    .order_by(WorkOrder.id)
                    .with_for_update(key_share=True, of=WorkOrder)
                )
            )
            todo = [order for order in orders if order.state == State.RECEIVED]
            outcomes: dict[int, tuple[RouteDecision, list[DuplicateCandidate] | None]] = {}
            if todo:  # another process may have routed some meanwhile
                triaged = _triage(
                    db_session=db_session,
                    work_orders=todo,
                    settings=settings,
                    database=database,
                    fresh=True,
                )
                outcomes = {order.id: outcome for order, outcome in zip(todo, triaged, strict=True)}
            results: dict[int, IntakeResult | Exception] = {}
            for order in orders:
                decision, rows = outcomes.get(order.id, (None, None))
                action, master = _duplicate_outcome(db_session, order, rows)
                results[order.id] = _result_of(order, True, decision, action, master)
            return results
    except ClassifierError as exc:
        log.warning("appeals stored as %s but not routed yet: %s", list(order_ids), exc)
        with database.session() as db_session:
            stored = db_session.scalars(select(WorkOrder).where(WorkOrder.id.in_(order_ids)))
            return {order.id: _result_of(order, True) for order in stored}
    except Exception as exc:
        if len(order_ids) == 1:
            return {order_ids[0]: exc}
        log.warning("routing %d orders together failed; routing each alone", len(order_ids))
        return {one: _route(database, settings, [one])[one] for one in order_ids}


def _result_of(
    order: WorkOrder,
    created: bool,
    decision: RouteDecision | None = None,
    action: str = "none",
    master_number: str | None = None,
) -> IntakeResult:
    if decision is None and not created:
        suggestion = order.suggestion or None
    else:
        suggestion = decision.to_dict() if decision else None
    return IntakeResult(
        order.number,
        order.state,
        created,
        decision,
        suggestion,
        duplicate_action=action,
        master_number=master_number,
    )


def _outcome(call: Callable[[], IntakeResult]) -> IntakeResult | Exception:
    try:
        return call()
    except Exception as exc:  # handed back to the one caller it belongs to
        return exc


def _duplicate_outcome(
    db_session: Session, order: WorkOrder, rows: list[DuplicateCandidate] | None = None
) -> tuple[str, str | None]:
    """The duplicate action taken on `order`; `rows` are the candidates this transaction stored
    (read from the database when not given)."""
    if order.state == State.MERGED and order.master_id is not None:
        return "auto_merge", db_session.get_one(WorkOrder, order.master_id).number
    if rows is None:
        stored = [c for c, _ in merges.candidates_of(db_session=db_session, work_order=order)]
    else:  # the order of candidates_of: best score first
        stored = sorted(rows, key=lambda c: (-c.score, c.id))
    if stored and stored[0].action != "none":
        return stored[0].action, None
    return "none", None


def triage_pending(
    *, db_session: Session, settings: Settings, older_than: timedelta = timedelta(seconds=30)
) -> int:
    """Route orders still `received` after `older_than` (the caller owns the transaction)."""
    cutoff = utcnow() - older_than
    query = (
        select(WorkOrder)
        .where(WorkOrder.state == State.RECEIVED, WorkOrder.created_at <= cutoff)
        .order_by(WorkOrder.id)
        .limit(200)
    )
    if db_session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    orders = list(db_session.scalars(query))
    if orders:
        _triage(db_session=db_session, work_orders=orders, settings=settings)
    return len(orders)
