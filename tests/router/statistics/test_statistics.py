from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

from router.callbacks.models import Callback
from router.catalogue.models import Category, Department
from router.deadlines.service import on_time_figures
from router.errors import InvalidInput
from router.statistics import service as statistics
from router.workorders import service as workorders
from router.workorders.models import WorkOrder
from service.db import Database

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = date(2025, 11, 20)
NOW = datetime(2025, 11, 27, 12, 0, tzinfo=SHANGHAI)
ROUNDS = itertools.count(1)


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)  # type: ignore[misc]


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    database = Database(database_url)
    with database.session() as db_session:
        db_session.add_all(
            [
                Department(code="D1", name="住建局", kind="city"),
                Department(code="D2", name="城管局", kind="city"),
                Department(code="A1", name="A1区", kind="district"),
            ]
        )
        db_session.flush()
        db_session.add_all(
            [
                Category(code="01", name="城乡建设", level=1, path="城乡建设"),
                Category(code="0101", name="市政", level=2, parent_code="01", path="城乡建设/市政"),
                Category(
                    code="010101",
                    name="路灯",
                    level=3,
                    parent_code="0101",
                    path="城乡建设/市政/路灯",
                    lead_department_code="D1",
                ),
                Category(
                    code="010102",
                    name="井盖",
                    level=3,
                    parent_code="0101",
                    path="城乡建设/市政/井盖",
                    lead_department_code="D2",
                ),
            ]
        )
        db_session.flush()
        yield db_session
    database.dispose()


def receive(
    session: Session, at: datetime, *, channel: str = "web", phone: str | None = None
) -> WorkOrder:
    order, _ = workorders.receive_appeal(
        db_session=session,
        appeal=workorders.AppealInput(channel=channel, text="小区路灯坏了", caller_phone=phone),
        now=at,
    )
    return order


def act(
    session: Session, order: WorkOrder, action: str, role: str, at: datetime, **kw: str
) -> None:
    workorders.act(
        db_session=session,
        work_order=order,
        action=action,
        actor=role,
        role=role,
        now=at,
        reason=kw.get("reason", ""),
    )


def dispatch(
    session: Session,
    order: WorkOrder,
    at: datetime,
    department: str,
    *,
    category: str = "010101",
    auto: bool = False,
) -> None:
    order.category_code = category
    order.department_code = department
    order.district_code = "A1"
    if auto:
        act(session, order, "triage_auto", "system", at)
    else:
        act(session, order, "send_to_review", "system", at)
        act(session, order, "dispatch", "agent", at)
    order.dispatched_at = at
    order.accept_deadline_at = at + timedelta(hours=2)
    order.deadline_at = at + timedelta(days=3)


def callback(session: Session, order: WorkOrder, result: str | None, at: datetime) -> None:
    session.add(
        Callback(
            work_order_id=order.id,
            appeal_id=order.appeal_id,
            round=next(ROUNDS),  # unique per (order, round, appeal)
            provider="agent",
            status="completed" if result else "pending",
            result=result,
            attempts=1,
            due_at=at,
            completed_at=at if result else None,
        )
    )
    session.flush()


def period(first: date, last: date) -> statistics.Period:
    return statistics.make_period(first, last)


def test_days_are_local_dates_in_shanghai(session: Session) -> None:
    late_evening = receive(session, local(2025, 11, 20, 23, 30))  # 15:30 UTC on the 20th
    after_midnight = receive(session, local(2025, 11, 21, 0, 10), channel="phone")  # 16:10 UTC
    session.flush()

    one_day = statistics.period_statistics(
        db_session=session, period=period(date(2025, 11, 21), date(2025, 11, 21)), now=NOW
    )
    assert one_day.totals["appeals"] == 1
    assert one_day.daily == [{"date": "2025-11-21", "channel": "phone", "count": 1}]

    both = statistics.period_statistics(
        db_session=session, period=period(date(2025, 11, 20), date(2025, 11, 21)), now=NOW
    )
    assert both.daily == [
        {"date": "2025-11-20", "channel": "web", "count": 1},
        {"date": "2025-11-21", "channel": "phone", "count": 1},
    ]
    rows = list(
        statistics.export_rows(
            db_session=session, period=period(date(2025, 11, 20), date(2025, 11, 21))
        )
    )
    assert [row["number"] for row in rows] == [late_evening.number, after_midnight.number]
    assert rows[0]["received_at"] == "2025-11-20T23:30:00+08:00"


def test_totals_rates_and_breakdowns_of_a_period(session: Session) -> None:
    at = local(2025, 11, 20, 9, 0)
    # 1: dispatched by an agent, accepted and replied in time, closed, satisfied caller.
    done = receive(session, at)
    dispatch(session, done, at, "D1")
    act(session, done, "accept", "department", at + timedelta(hours=1))
    done.accepted_at = at + timedelta(hours=1)
    act(session, done, "reply", "department", at + timedelta(days=1))
    done.replied_at = at + timedelta(days=1)
    act(session, done, "close", "agent", at + timedelta(days=1, hours=1))
    done.closed_at = at + timedelta(days=1, hours=1)
    callback(session, done, "satisfied", at + timedelta(days=2))
    callback(session, done, "unreachable", at + timedelta(days=2))
    # 2: accepted late and now past its handling deadline: overdue, and escalated.
    late = receive(session, at, channel="phone")
    dispatch(session, late, at, "D1", category="010102")
    act(session, late, "accept", "department", at + timedelta(hours=5))
    late.accepted_at = at + timedelta(hours=5)
    act(session, late, "escalate", "supervisor", at + timedelta(days=4), reason="超期")
    # 3: returned by D2 (auto-dispatched there), back in review.
    returned = receive(session, at, channel="wechat")
    dispatch(session, returned, at, "D2", auto=True)
    act(session, returned, "return", "department", at + timedelta(hours=1), reason="不属于本单位")
    returned.return_count = 1
    act(session, returned, "send_to_review", "system", at + timedelta(hours=1))
    # 4: merged at intake.
    merged = receive(session, at)
    act(session, merged, "merge", "system", at)
    # 5: outside the period: counted nowhere.
    receive(session, local(2025, 11, 19, 23, 59))
    session.flush()

    figures = statistics.period_statistics(
        db_session=session, period=period(DAY, DAY), now=NOW
    ).to_dict()

    assert figures["totals"] == {
        "appeals": 4,
        "dispatched": 3,
        "closed": 1,
        "overdue": 1,
        "escalated": 1,
        "returned": 1,
        "merged": 1,
    }
    reference = on_time_figures(
        db_session=session, since=period(DAY, DAY).since, until=period(DAY, DAY).until, now=NOW
    )
    assert figures["rates"] == {
        "on_time_dispatch_rate": reference["accept"]["on_time_rate"],
        "on_time_closure_rate": reference["reply"]["on_time_rate"],
        "satisfaction_rate": 1.0,  # the unreachable callback is not an answer
        "auto_dispatch_rate": 0.25,
    }
    # Accepted: done on time, late late; returned never accepted and its deadline passed.
    assert figures["rates"]["on_time_dispatch_rate"] == round(1 / 3, 4)
    # Replied: done on time; late and returned past their handling deadline unreplied.
    assert figures["rates"]["on_time_closure_rate"] == round(1 / 3, 4)
    assert figures["by_category"] == [
        {"code": "010101", "path": "城乡建设/市政/路灯", "count": 2},
        {"code": "010102", "path": "城乡建设/市政/井盖", "count": 1},
    ]
    assert figures["by_department"] == [
        {
            "code": "D1",
            "name": "住建局",
            "count": 2,
            "overdue": 1,
            "on_time_closure_rate": 0.5,
            "satisfaction_rate": 1.0,
        },
        {
            "code": "D2",
            "name": "城管局",
            "count": 1,
            "overdue": 0,
            "on_time_closure_rate": 0.0,
            "satisfaction_rate": None,
        },
    ]
    assert figures["by_district"] == [{"code": "A1", "name": "A1区", "count": 3}]
    assert figures["returns"] == [{"reason": "不属于本单位", "count": 1}]
    assert figures["overdue"] == [
        {
            "number": late.number,
            "department_code": "D1",
            "deadline": late.deadline_at,
            "state": "accepted",
        }
    ]
    assert figures["escalated"] == [
        {"number": late.number, "department_code": "D1", "state": "accepted"}
    ]
    assert sorted(row["date"] for row in figures["daily"]) == ["2025-11-20"] * 3


def test_unsatisfied_answers_lower_the_satisfaction_rate(session: Session) -> None:
    at = local(2025, 11, 20, 9, 0)
    orders = [receive(session, at) for _ in range(4)]
    for order, result in zip(
        orders, ["satisfied", "basically_satisfied", "unsatisfied", None], strict=True
    ):
        dispatch(session, order, at, "D2")
        callback(session, order, result, at + timedelta(days=2))

    figures = statistics.period_statistics(db_session=session, period=period(DAY, DAY), now=NOW)

    assert figures.rates["satisfaction_rate"] == round(2 / 3, 4)
    assert figures.by_department[0]["satisfaction_rate"] == round(2 / 3, 4)
    callbacks = {
        row["callback_result"]
        for row in statistics.export_rows(db_session=session, period=period(DAY, DAY))
    }
    assert callbacks == {"satisfied", "basically_satisfied", "unsatisfied", ""}


def test_an_empty_period_has_zero_counts_and_no_rates(session: Session) -> None:
    figures = statistics.period_statistics(db_session=session, period=period(DAY, DAY), now=NOW)

    assert set(figures.totals.values()) == {0}
    assert set(figures.rates.values()) == {None}
    assert figures.daily == figures.by_department == figures.overdue == []


@pytest.mark.parametrize(
    ("first", "last"),
    [
        (date(2025, 11, 21), date(2025, 11, 20)),  # reversed
        (date(2024, 1, 1), date(2025, 6, 1)),  # longer than a year
        (date(1, 1, 1), date(1, 1, 2)),  # out of range
        (date(9999, 12, 30), date(9999, 12, 31)),
    ],
)
def test_bad_periods_are_refused(first: date, last: date) -> None:
    with pytest.raises(InvalidInput):
        statistics.make_period(first, last)


def test_default_period_is_the_last_30_local_days() -> None:
    # 20:00 UTC on the 22nd is already the 23rd in Shanghai.
    result = statistics.default_period(datetime(2025, 11, 22, 20, 0, tzinfo=ZoneInfo("UTC")))
    assert (result.date_from, result.date_to) == (date(2025, 10, 25), date(2025, 11, 23))
    assert result.since == local(2025, 10, 25, 0, 0)
    assert result.until == local(2025, 11, 24, 0, 0)
