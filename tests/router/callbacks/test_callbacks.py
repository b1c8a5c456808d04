"""Satisfaction callbacks in the domain: scheduling after closure, results, merged callers,
reopening with fresh clocks, and the urgent deadline surviving a clock restart."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from router.calendar import DEFAULT_CALENDAR
from router.callbacks import service as callbacks
from router.callbacks.models import Callback
from router.catalogue.models import Category, Department
from router.errors import Conflict
from router.notifications.models import Notification
from router.workorders import service as workorders
from router.workorders.models import WorkOrder, WorkOrderEvent
from router.workorders.workflow import WorkflowPolicy
from service.db import Database

# Friday 2026-10-09 18:30 Beijing time (a working day after the National Day week).
CLOSED_AT = datetime(2026, 10, 9, 10, 30, tzinfo=UTC)
POLICY = callbacks.CallbackPolicy(delay=timedelta(hours=2), retry_delay=timedelta(hours=4))


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    database = Database(database_url)
    with database.session() as db_session:
        db_session.add_all(
            [
                Department(code="D1", name="住建局", kind="city", parent_code=None),
                Category(
                    code="010101",
                    name="路灯",
                    level=1,
                    path="城建/路灯",
                    deadline_value=5,
                    deadline_unit="working_days",
                ),
            ]
        )
        db_session.flush()
        yield db_session
    database.dispose()


def closed_order(
    session: Session, *, phone: str | None = "13812345678", at: datetime = CLOSED_AT
) -> WorkOrder:
    """An order dispatched to D1, accepted, replied and closed at `at`."""
    order, _ = workorders.receive_appeal(
        db_session=session,
        appeal=workorders.AppealInput(channel="phone", text="路灯坏了", caller_phone=phone),
        now=at - timedelta(days=3),
    )
    order.department_code = "D1"
    order.category_code = "010101"
    steps = [("dispatch", "agent"), ("accept", "department"), ("reply", "department")]
    for step, (action, role) in enumerate(steps):
        workorders.act(
            db_session=session,
            work_order=order,
            action=action,
            actor="x",
            role=role,
            now=at - timedelta(days=3 - step),
        )
    order.accepted_at = at - timedelta(days=2)
    close(session, order, at)
    return order


def close(session: Session, order: WorkOrder, at: datetime) -> list[Callback]:
    workorders.act(
        db_session=session, work_order=order, action="close", actor="agent1", role="agent", now=at
    )
    return callbacks.schedule_callbacks(db_session=session, work_order=order, policy=POLICY, now=at)


def merged_member(session: Session, master: WorkOrder, phone: str | None) -> WorkOrder:
    member, _ = workorders.receive_appeal(
        db_session=session,
        appeal=workorders.AppealInput(channel="web", text="路灯又坏了", caller_phone=phone),
        now=CLOSED_AT - timedelta(days=2),
    )
    workorders.act(
        db_session=session,
        work_order=member,
        action="merge",
        actor="agent1",
        role="agent",
        now=CLOSED_AT - timedelta(days=2),
    )
    member.master_id = master.id
    session.flush()
    return member


def actions(session: Session, order: WorkOrder) -> list[str]:
    return [e.action for e in workorders.events(db_session=session, work_order=order)]


def test_closure_schedules_one_callback_within_calling_hours(session: Session) -> None:
    order = closed_order(session)
    (row,) = session.scalars(select(Callback)).all()
    # Closed 18:30 Beijing time + 2 h = 20:30, after calling hours (09:00-20:00): next morning.
    assert row.due_at == datetime(2026, 10, 10, 1, 0, tzinfo=UTC)
    assert (row.work_order_id, row.appeal_id, row.round) == (order.id, order.appeal_id, 1)
    assert (row.status, row.provider, row.attempts, row.result) == ("pending", "agent", 0, None)
    again = callbacks.schedule_callbacks(
        db_session=session, work_order=order, policy=POLICY, now=CLOSED_AT
    )
    assert [r.id for r in again] == [row.id]


def test_due_list_holds_only_callbacks_whose_time_has_come(session: Session) -> None:
    closed_order(session)
    before = datetime(2026, 10, 10, 0, 59, tzinfo=UTC)
    assert callbacks.list_callbacks(db_session=session, status="due", now=before) == []
    (due,) = callbacks.list_callbacks(db_session=session, status="due", now=before + timedelta(1))
    assert due.status == "pending"


def test_satisfied_callback_completes_the_order(session: Session) -> None:
    order = closed_order(session)
    (row,) = session.scalars(select(Callback)).all()
    at = CLOSED_AT + timedelta(days=1)
    recorded = callbacks.record_result(
        db_session=session, callback_id=row.id, outcome="basically_satisfied", actor="a", now=at
    )
    assert not recorded.retry
    assert (row.status, row.result, row.attempts, row.completed_at) == (
        "completed",
        "basically_satisfied",
        1,
        at,
    )
    assert order.state == "callback_done"
    assert actions(session, order)[-1] == "record_callback"
    with pytest.raises(Conflict, match="already completed"):
        callbacks.record_result(
            db_session=session, callback_id=row.id, outcome="satisfied", actor="a"
        )


def test_unreachable_is_retried_then_closed_after_the_last_attempt(session: Session) -> None:
    order = closed_order(session)
    (row,) = session.scalars(select(Callback)).all()
    policy = WorkflowPolicy(max_callback_attempts=3)
    at = datetime(2026, 10, 10, 11, 30, tzinfo=UTC)  # 19:30 Beijing time
    retries = []
    for attempt in (1, 2):
        recorded = callbacks.record_result(
            db_session=session,
            callback_id=row.id,
            outcome="unreachable",
            actor="a",
            policy=POLICY,
            workflow_policy=policy,
            now=at,
        )
        assert recorded.retry
        assert (row.status, row.attempts, row.result) == ("pending", attempt, None)
        assert row.due_at == DEFAULT_CALENDAR.next_calling_time(at + POLICY.retry_delay)
        assert order.state == "closed"
        at = row.due_at
        retries.append(at.astimezone(DEFAULT_CALENDAR.tz).strftime("%d %H:%M"))
    # 19:30 + 4 h is after calling hours: the first retry is the next morning at 09:00.
    assert retries == ["11 09:00", "11 13:00"]
    last = callbacks.record_result(
        db_session=session,
        callback_id=row.id,
        outcome="unreachable",
        actor="a",
        workflow_policy=policy,
        now=at,
    )
    assert not last.retry
    assert (row.status, row.result, row.attempts) == ("completed", "unreachable", 3)
    assert order.state == "callback_done"


def test_unsatisfied_reopens_to_the_same_department_with_escalation_and_new_clocks(
    session: Session,
) -> None:
    order = closed_order(session)
    old_accept_deadline, old_deadline = order.accept_deadline_at, order.deadline_at
    (row,) = session.scalars(select(Callback)).all()
    at = datetime(2026, 10, 12, 2, 0, tzinfo=UTC)  # Monday 10:00 Beijing time
    recorded = callbacks.record_result(
        db_session=session,
        callback_id=row.id,
        outcome="unsatisfied",
        actor="a",
        note="没修好",
        now=at,
    )
    assert [e.action for e in recorded.events] == ["reopen", "escalate"]
    assert (order.state, order.department_code, order.escalated) == ("reopened", "D1", True)
    assert order.dispatched_at == at
    assert order.accept_deadline_at == DEFAULT_CALENDAR.add_working_hours(at, 2)
    assert order.deadline_at == DEFAULT_CALENDAR.add_working_days(at, 5)
    assert (order.accept_deadline_at, order.deadline_at) != (old_accept_deadline, old_deadline)
    assert "没修好" in recorded.events[0].reason
    notes = session.scalars(select(Notification).order_by(Notification.id)).all()
    assert [(n.recipient_kind, n.recipient_code, n.kind) for n in notes] == [
        ("department", "D1", "callback_reopened"),
        ("supervisors", None, "callback_reopened"),
    ]
    # The department signs for it again, replies, the centre closes: a second round of calls.
    for action, role in (("accept", "department"), ("reply", "department")):
        workorders.act(db_session=session, work_order=order, action=action, actor="d", role=role)
    (second,) = close(session, order, at + timedelta(days=1))
    assert second.round == 2 and second.id != row.id


def test_every_merged_caller_is_called_and_one_unsatisfied_cancels_the_rest(
    session: Session,
) -> None:
    order = closed_order(session, at=CLOSED_AT)
    (own,) = session.scalars(select(Callback)).all()
    # Members merged into the order: two new callers, a repeat caller and one without a phone.
    members = [
        merged_member(session, order, phone)
        for phone in ("13900000001", "13900000002", "13812345678", None)
    ]
    workorders.act(
        db_session=session,
        work_order=order,
        action="reopen",
        actor="s",
        role="supervisor",
        reason="复查",
        now=CLOSED_AT,
    )
    for action, role in (("accept", "department"), ("reply", "department")):
        workorders.act(db_session=session, work_order=order, action=action, actor="d", role=role)
    rows = close(session, order, CLOSED_AT + timedelta(hours=1))
    assert [r.appeal_id for r in rows] == [
        order.appeal_id,
        members[0].appeal_id,
        members[1].appeal_id,
    ]
    assert {r.round for r in rows} == {2} and own.round == 1
    satisfied = callbacks.record_result(
        db_session=session, callback_id=rows[1].id, outcome="satisfied", actor="a"
    )
    assert satisfied.events == [] and order.state == "closed"  # others still to be called
    unhappy = callbacks.record_result(
        db_session=session, callback_id=rows[2].id, outcome="unsatisfied", actor="a"
    )
    assert unhappy.cancelled == 1 and order.state == "reopened"
    assert rows[0].status == "cancelled"
    with pytest.raises(Conflict):
        callbacks.record_result(
            db_session=session, callback_id=rows[0].id, outcome="satisfied", actor="a"
        )


def test_all_merged_callers_answered_completes_the_order(session: Session) -> None:
    order, _ = workorders.receive_appeal(
        db_session=session,
        appeal=workorders.AppealInput(channel="phone", text="噪音", caller_phone="13800000000"),
        now=CLOSED_AT - timedelta(days=3),
    )
    member = merged_member(session, order, "13900000009")
    order.department_code = "D1"
    for action, role in (("dispatch", "agent"), ("accept", "department"), ("reply", "department")):
        workorders.act(db_session=session, work_order=order, action=action, actor="x", role=role)
    rows = close(session, order, CLOSED_AT)
    assert [r.appeal_id for r in rows] == [order.appeal_id, member.appeal_id]
    callbacks.record_result(
        db_session=session, callback_id=rows[0].id, outcome="satisfied", actor="a"
    )
    assert order.state == "closed"
    callbacks.record_result(
        db_session=session,
        callback_id=rows[1].id,
        outcome="unreachable",
        actor="a",
        workflow_policy=WorkflowPolicy(max_callback_attempts=1),
    )
    assert order.state == "callback_done"
    event = session.scalars(
        select(WorkOrderEvent).where(WorkOrderEvent.action == "record_callback")
    ).one()
    assert event.data["results"] == {str(rows[0].id): "satisfied", str(rows[1].id): "unreachable"}


def test_an_order_without_a_phone_number_gets_no_callback(session: Session) -> None:
    order = closed_order(session, phone=None)
    assert session.scalars(select(Callback)).all() == []
    assert order.state == "closed"


def test_restarting_the_clock_keeps_the_urgent_keyword_deadline(session: Session) -> None:
    order, _ = workorders.receive_appeal(
        db_session=session,
        appeal=workorders.AppealInput(channel="phone", text="闻到煤气味"),
        now=CLOSED_AT,
    )
    order.category_code = "010101"  # 5 working days normally
    order.priority = "urgent"
    order.suggestion = {"urgent_keywords": ["煤气"], "deadline_value": 2, "deadline_unit": "hours"}
    at = datetime(2026, 10, 10, 14, 0, tzinfo=UTC)  # Saturday 22:00 Beijing time
    workorders.restart_department_clock(db_session=session, order=order, now=at)
    assert order.deadline_at == at + timedelta(hours=2)
    assert order.accept_deadline_at == at + timedelta(minutes=30)
    # Without the urgent keyword the category's deadline applies.
    order.suggestion = {}
    workorders.restart_department_clock(db_session=session, order=order, now=at)
    assert order.deadline_at == DEFAULT_CALENDAR.add_working_days(at, 5)


def test_callback_figures_count_due_callbacks_and_recent_results(session: Session) -> None:
    orders = [closed_order(session, phone=f"1381234567{i}") for i in range(4)]
    rows = [
        session.scalars(select(Callback).where(Callback.work_order_id == order.id)).one()
        for order in orders
    ]
    due_at = rows[0].due_at
    answered = due_at + timedelta(hours=1)
    for row, outcome in zip(rows[:3], ("satisfied", "unsatisfied", "satisfied"), strict=True):
        callbacks.record_result(
            db_session=session, callback_id=row.id, outcome=outcome, actor="agent1", now=answered
        )
    session.flush()

    due, results = callbacks.callback_figures(
        db_session=session, now=answered, since=answered - timedelta(days=30)
    )
    assert due == 1  # the fourth, still open
    assert results == {"satisfied": 2, "unsatisfied": 1}
    none_yet, _ = callbacks.callback_figures(
        db_session=session, now=due_at - timedelta(seconds=1), since=answered
    )
    assert none_yet == 0
    _, older = callbacks.callback_figures(
        db_session=session, now=answered, since=answered + timedelta(seconds=1)
    )
    assert older == {}
