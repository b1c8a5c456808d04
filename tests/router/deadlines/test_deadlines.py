from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from router.calendar import DEFAULT_CALENDAR
from router.catalogue.models import Department
from router.deadlines import service as deadlines
from router.notifications.models import Notification
from router.notifications.service import list_notifications
from router.workorders import queries
from router.workorders import service as workorders
from router.workorders.models import WorkOrder, WorkOrderEvent
from service.db import Database

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)  # type: ignore[misc]


# Friday 16:30; 2 working hours (09:00-12:00, 13:30-17:30) -> one on Friday, one on Monday.
FRIDAY_DISPATCH = local(2025, 11, 21, 16, 30)
MONDAY_SIGN_FOR_DUE = local(2025, 11, 24, 10, 0)

# 2025 National Day: 1-8 October off, Saturday 11 October a working day (调休).
BEFORE_NATIONAL_DAY = local(2025, 9, 30, 10, 0)
AFTER_NATIONAL_DAY_DUE = local(2025, 10, 11, 17, 30)  # 3 working days


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    database = Database(database_url)
    with database.session() as db_session:
        db_session.add(Department(code="D1", name="住建局", kind="city", parent_code=None))
        db_session.flush()
        yield db_session
    database.dispose()


def dispatched_order(
    session: Session,
    at: datetime,
    *,
    accept_within_hours: float = 2,
    handle_within_days: int | None = None,
) -> WorkOrder:
    order, _ = workorders.receive_appeal(
        db_session=session,
        appeal=workorders.AppealInput(channel="web", text="小区路灯坏了一个月没人修"),
        now=at,
    )
    order.department_code = "D1"
    workorders.act(
        db_session=session, work_order=order, action="dispatch", actor="a", role="agent", now=at
    )
    order.dispatched_at = at
    order.accept_deadline_at = DEFAULT_CALENDAR.add_working_hours(at, accept_within_hours)
    if handle_within_days is not None:
        order.deadline_at = DEFAULT_CALENDAR.add_working_days(at, handle_within_days)
    session.flush()
    return order


def accept(session: Session, order: WorkOrder, at: datetime) -> None:
    workorders.act(
        db_session=session, work_order=order, action="accept", actor="d1", role="department", now=at
    )
    order.accepted_at = at
    session.flush()


def scan(session: Session, now: datetime) -> deadlines.ScanResult:
    return deadlines.scan_deadlines(db_session=session, now=now)


def hits(hit_list: list[deadlines.DeadlineHit]) -> list[tuple[str, str]]:
    return [(hit.number, hit.kind.value) for hit in hit_list]


def scan_events(session: Session, order: WorkOrder) -> list[tuple[str, str, str]]:
    return [
        (e.action, e.data.get("deadline_kind", ""), e.reason)
        for e in workorders.events(db_session=session, work_order=order)
        if e.actor == deadlines.SCAN_ACTOR
    ]


def notifications(session: Session, order: WorkOrder) -> list[tuple[str, str | None, str]]:
    rows = session.scalars(
        select(Notification).where(Notification.work_order_id == order.id).order_by(Notification.id)
    )
    return [(n.recipient_kind, n.recipient_code, n.kind) for n in rows]


def count(session: Session, table: type[WorkOrderEvent] | type[Notification]) -> int:
    return session.scalar(select(func.count()).select_from(table)) or 0


def test_sign_for_deadline_runs_over_the_weekend_then_warns_and_escalates(
    session: Session,
) -> None:
    order = dispatched_order(session, FRIDAY_DISPATCH)
    assert order.accept_deadline_at == MONDAY_SIGN_FOR_DUE

    saturday = scan(session, local(2025, 11, 22, 11, 0))
    assert (saturday.warned, saturday.escalated) == ([], [])
    assert order.warned_at is None

    # 80% of 2 hours is 96 minutes: 60 on Friday, 36 on Monday -> 09:36.
    monday_morning = scan(session, local(2025, 11, 24, 9, 40))
    assert hits(monday_morning.warned) == [(order.number, "accept")]
    assert monday_morning.escalated == []
    assert order.warned_at == local(2025, 11, 24, 9, 40)
    assert order.escalated is False
    assert scan_events(session, order) == [("deadline_warning", "accept", "临近签收时限")]
    warning = workorders.events(db_session=session, work_order=order)[-1]
    assert (warning.from_state, warning.to_state, warning.role) == (
        "dispatched",
        "dispatched",
        "system",
    )
    assert notifications(session, order) == [("department", "D1", "deadline_warning")]

    overdue = scan(session, local(2025, 11, 24, 10, 1))
    assert hits(overdue.escalated) == [(order.number, "accept")]
    assert overdue.warned == []
    assert order.escalated is True
    assert order.state == "dispatched"
    escalation = workorders.events(db_session=session, work_order=order)[-1]
    assert escalation.action == "escalate"
    assert escalation.reason == "超过签收时限"
    assert escalation.data == {
        "deadline_kind": "accept",
        "deadline": MONDAY_SIGN_FOR_DUE.astimezone(ZoneInfo("UTC")).isoformat(),
    }
    assert notifications(session, order)[1:] == [
        ("department", "D1", "overdue"),
        ("supervisors", None, "overdue"),
    ]
    (supervisor_note,) = list_notifications(db_session=session, recipient_kind="supervisors")
    assert supervisor_note.message == f"工单 {order.number} 已超过签收时限（截止 2025-11-24 10:00）"


def test_handling_deadline_does_not_run_during_national_day(session: Session) -> None:
    order = dispatched_order(session, BEFORE_NATIONAL_DAY, handle_within_days=3)
    accept(session, order, BEFORE_NATIONAL_DAY)
    assert order.deadline_at == AFTER_NATIONAL_DAY_DUE

    # Eight of eleven calendar days are gone, but only the working time of 30 September.
    last_holiday = scan(session, local(2025, 10, 8, 16, 0))
    assert (last_holiday.warned, last_holiday.escalated) == ([], [])
    friday = scan(session, local(2025, 10, 10, 17, 0))
    assert friday.warned == []

    # 27 working hours allowed; 80% is reached on the 调休 Saturday at 10:36.
    saturday = scan(session, local(2025, 10, 11, 11, 0))
    assert hits(saturday.warned) == [(order.number, "handle")]
    (note,) = list_notifications(
        db_session=session, recipient_kind="department", recipient_code="D1"
    )
    assert note.message == f"工单 {order.number} 即将超过办理时限（截止 2025-10-11 17:30）"

    sunday = scan(session, local(2025, 10, 12, 9, 0))
    assert hits(sunday.escalated) == [(order.number, "handle")]
    assert order.escalated is True
    assert order.state == "accepted"
    assert scan_events(session, order) == [
        ("deadline_warning", "handle", "临近办理时限"),
        ("escalate", "handle", "超过办理时限"),
    ]


def test_rescans_add_no_events_or_notifications(session: Session) -> None:
    order = dispatched_order(session, FRIDAY_DISPATCH)
    warned_at = local(2025, 11, 24, 9, 40)
    scan(session, warned_at)
    events_after_warning = count(session, WorkOrderEvent)
    notes_after_warning = count(session, Notification)

    again = scan(session, local(2025, 11, 24, 9, 50))
    assert (again.warned, again.escalated, again.notifications) == ([], [], 0)
    assert count(session, WorkOrderEvent) == events_after_warning
    assert count(session, Notification) == notes_after_warning
    assert order.warned_at == warned_at

    scan(session, local(2025, 11, 24, 10, 1))
    events_after_escalation = count(session, WorkOrderEvent)
    notes_after_escalation = count(session, Notification)
    for later in (local(2025, 11, 24, 10, 2), local(2025, 11, 25, 15, 0)):
        result = scan(session, later)
        assert (result.warned, result.escalated, result.notifications) == ([], [], 0)
    assert count(session, WorkOrderEvent) == events_after_escalation
    assert count(session, Notification) == notes_after_escalation
    assert [action for action, _, _ in scan_events(session, order)] == [
        "deadline_warning",
        "escalate",
    ]


def test_rescan_in_a_new_session_adds_nothing(database_url: str) -> None:
    database = Database(database_url)
    try:
        with database.session() as db_session:
            db_session.add(Department(code="D1", name="住建局", kind="city", parent_code=None))
            db_session.flush()
            dispatched_order(db_session, FRIDAY_DISPATCH)
        monday = local(2025, 11, 24, 10, 1)
        with database.session() as db_session:
            assert len(scan(db_session, monday).escalated) == 1
        with database.session() as db_session:
            result = scan(db_session, monday)
            assert (result.checked, result.escalated, result.notifications) == (1, [], 0)
    finally:
        database.dispose()


def test_a_moved_handling_deadline_is_watched_again(session: Session) -> None:
    order = dispatched_order(session, BEFORE_NATIONAL_DAY, handle_within_days=3)
    accept(session, order, BEFORE_NATIONAL_DAY)
    scan(session, local(2025, 10, 12, 9, 0))
    # An approved extension moves the deadline: the new one is escalated once more when missed.
    order.deadline_at = local(2025, 10, 17, 17, 30)
    session.flush()
    assert scan(session, local(2025, 10, 13, 9, 0)).escalated == []
    assert hits(scan(session, local(2025, 10, 18, 9, 0)).escalated) == [(order.number, "handle")]
    assert [a for a, _, _ in scan_events(session, order)] == ["escalate", "escalate"]


def test_accepted_orders_are_not_escalated_for_the_sign_for_deadline(session: Session) -> None:
    on_time = dispatched_order(session, FRIDAY_DISPATCH)
    accept(session, on_time, local(2025, 11, 24, 9, 30))
    late = dispatched_order(session, FRIDAY_DISPATCH)
    scan(session, local(2025, 11, 24, 9, 40))  # warns `late` about its sign-for deadline
    accept(session, late, local(2025, 11, 24, 9, 45))

    result = scan(session, local(2025, 11, 25, 9, 0))
    assert (result.warned, result.escalated) == ([], [])
    assert (on_time.escalated, late.escalated) == (False, False)
    assert scan_events(session, on_time) == []


def test_reopened_order_waits_for_acceptance_against_its_sign_for_deadline(
    session: Session,
) -> None:
    order = dispatched_order(session, FRIDAY_DISPATCH)
    order.state = "reopened"  # as after an unsatisfied callback, before the department accepts
    session.flush()
    assert hits(scan(session, local(2025, 11, 24, 10, 1)).escalated) == [(order.number, "accept")]


def test_replied_and_closed_orders_are_ignored(session: Session) -> None:
    replied = dispatched_order(session, BEFORE_NATIONAL_DAY, handle_within_days=3)
    closed = dispatched_order(session, BEFORE_NATIONAL_DAY, handle_within_days=3)
    for order in (replied, closed):
        accept(session, order, BEFORE_NATIONAL_DAY)
        workorders.act(
            db_session=session,
            work_order=order,
            action="reply",
            actor="d1",
            role="department",
            now=BEFORE_NATIONAL_DAY,
        )
    workorders.act(
        db_session=session,
        work_order=closed,
        action="close",
        actor="a",
        role="agent",
        now=BEFORE_NATIONAL_DAY,
    )
    result = scan(session, local(2025, 12, 1, 9, 0))
    assert (result.checked, result.warned, result.escalated) == (0, [], [])
    assert count(session, Notification) == 0


def test_a_naive_clock_is_refused(session: Session) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        deadlines.scan_deadlines(db_session=session, now=datetime(2025, 11, 24, 10, 1))


def test_on_time_figures_count_acceptance_and_replies_against_their_deadlines(
    session: Session,
) -> None:
    day = local(2025, 11, 3, 9, 0)  # a Monday; sign-for due 11:00, handling due Thursday 17:30
    orders = [dispatched_order(session, day, handle_within_days=3) for _ in range(4)]
    early, late, silent, replied_late = orders
    early.accepted_at, early.replied_at = local(2025, 11, 3, 10, 0), local(2025, 11, 5, 12, 0)
    late.accepted_at, late.replied_at = local(2025, 11, 3, 14, 0), local(2025, 11, 6, 17, 0)
    replied_late.accepted_at = local(2025, 11, 3, 10, 30)
    replied_late.replied_at = local(2025, 11, 7, 9, 0)
    outside = dispatched_order(session, local(2025, 11, 10, 9, 0))
    outside.accepted_at = local(2025, 11, 10, 9, 5)
    session.flush()

    figures = deadlines.on_time_figures(
        db_session=session,
        since=local(2025, 11, 3, 0, 0),
        until=local(2025, 11, 10, 0, 0),
        now=local(2025, 11, 4, 9, 0),
    )
    assert figures["dispatched"] == 4
    assert figures["accept"] == {
        "on_time": 2,
        "late": 2,  # `late` and `silent`, whose sign-for deadline passed unaccepted
        "pending": 0,
        "without_deadline": 0,
        "on_time_rate": 0.5,
    }
    assert figures["reply"] == {
        "on_time": 2,
        "late": 1,
        "pending": 1,  # `silent`, still within its handling deadline on Tuesday
        "without_deadline": 0,
        "on_time_rate": 0.6667,
    }
    assert silent.replied_at is None


def test_on_time_rates_are_none_without_orders(session: Session) -> None:
    figures = deadlines.on_time_figures(
        db_session=session, since=local(2025, 1, 1, 0, 0), until=local(2025, 2, 1, 0, 0)
    )
    assert figures["dispatched"] == 0
    assert figures["accept"]["on_time_rate"] is None
    assert figures["reply"]["on_time_rate"] is None


def _tasks_module() -> Any:
    from service.worker import tasks

    return tasks


def test_the_beat_runs_the_scan_task_every_minute(settings_env: Path) -> None:
    tasks = _tasks_module()
    entry = tasks.celery_app.conf.beat_schedule["deadline-scan"]
    assert entry == {"task": "deadlines.scan", "schedule": 60.0}
    assert tasks.scan_deadlines.name == "deadlines.scan"
    route = tasks.celery_app.amqp.router.route({}, "deadlines.scan")
    assert route["queue"].name == "deadlines"


def test_the_scan_task_escalates_in_its_own_transaction(app_env: str) -> None:
    database = Database(app_env)
    try:
        with database.session() as db_session:
            db_session.add(Department(code="D1", name="住建局", kind="city", parent_code=None))
            db_session.flush()
            number = dispatched_order(db_session, FRIDAY_DISPATCH).number
        result = _tasks_module().scan_deadlines()  # runs the body here, through the wrapper
        assert result["escalated"] == [
            {"number": number, "kind": "accept", "deadline": "2025-11-24T02:00:00+00:00"}
        ]
        with database.session() as db_session:
            order = queries.get_by_number_or_raise(db_session=db_session, number=number)
            assert order.escalated is True
            assert len(list_notifications(db_session=db_session, recipient_kind="supervisors")) == 1
    finally:
        database.dispose()


def test_deadline_counts_sort_running_deadlines_into_overdue_and_due(session: Session) -> None:
    now = local(2025, 11, 3, 12, 0)
    hours = [timedelta(hours=n) for n in range(50)]
    late_sign, soon_sign = (dispatched_order(session, now - hours[5]) for _ in range(2))
    late_sign.accept_deadline_at = now - hours[1]
    soon_sign.accept_deadline_at = now + hours[2]
    later_sign = dispatched_order(session, now - hours[1])
    later_sign.accept_deadline_at = now + hours[30]  # beyond the 24 h horizon: neither
    late_work, soon_work, later_work, replied = (
        dispatched_order(session, now - hours[40]) for _ in range(4)
    )
    for order, due in ((late_work, -3), (soon_work, 20), (later_work, 49), (replied, -3)):
        accept(session, order, now - hours[39])
        order.deadline_at = now + timedelta(hours=due)
    workorders.act(
        db_session=session,
        work_order=replied,
        action="reply",
        actor="d1",
        role="department",
        now=now - hours[4],
        reason="已修复",
    )
    session.flush()

    counts = deadlines.deadline_counts(db_session=session, now=now, horizon=timedelta(hours=24))
    assert counts == {
        ("accept", "overdue"): 1,
        ("accept", "due"): 1,
        ("handle", "overdue"): 1,  # the replied order's deadline no longer runs
        ("handle", "due"): 1,
    }


def test_on_time_rates_agree_with_the_on_time_figures(session: Session) -> None:
    day = local(2025, 11, 3, 9, 0)
    orders = [dispatched_order(session, day, handle_within_days=3) for _ in range(4)]
    orders[0].accepted_at, orders[0].replied_at = local(2025, 11, 3, 10, 0), local(2025, 11, 5)
    orders[1].accepted_at, orders[1].replied_at = local(2025, 11, 3, 14, 0), local(2025, 11, 7)
    orders[2].accepted_at = local(2025, 11, 3, 10, 30)
    dispatched_order(session, local(2025, 10, 1, 9, 0))  # before the window
    session.flush()
    since, now = local(2025, 11, 1, 0, 0), local(2025, 11, 10, 0, 0)

    rates = deadlines.on_time_rates(db_session=session, since=since, now=now)
    figures = deadlines.on_time_figures(
        db_session=session, since=since, until=now + timedelta(days=1), now=now
    )
    assert rates == {
        "accept": figures["accept"]["on_time_rate"],
        "handle": figures["reply"]["on_time_rate"],
    }
    assert rates == {"accept": 0.5, "handle": 0.25}


def test_on_time_rates_leave_out_a_sign_for_and_reply_from_before_the_latest_dispatch(
    session: Session,
) -> None:
    """The previous department's (or pre-reopen) times do not rate the current dispatch, in the
    metrics' aggregate query as in the figures."""
    day = local(2025, 11, 3, 9, 0)
    order = dispatched_order(session, day, handle_within_days=3)
    order.accepted_at, order.replied_at = local(2025, 11, 2, 10, 0), local(2025, 11, 2, 16, 0)
    session.flush()
    since, now = local(2025, 11, 1, 0, 0), local(2025, 11, 10, 0, 0)

    rates = deadlines.on_time_rates(db_session=session, since=since, now=now)
    figures = deadlines.on_time_figures(
        db_session=session, since=since, until=now + timedelta(days=1), now=now
    )
    assert rates == {
        "accept": figures["accept"]["on_time_rate"],
        "handle": figures["reply"]["on_time_rate"],
    }
    assert rates == {"accept": 0.0, "handle": 0.0}  # both deadlines passed unmet
