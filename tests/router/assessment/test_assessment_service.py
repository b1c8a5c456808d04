"""The scorecard of a seeded month (November 2025), built through the real workflow functions,
against a hand count of every figure; and the dashboard's figures equal the scorecard's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

from router.assessment import service as assessment
from router.assessment.scoring import AssessmentPolicy, Figure, UnitKind
from router.callbacks import service as callbacks
from router.catalogue.models import Category, Department
from router.statistics import service as statistics
from router.workorders import actions
from router.workorders import service as workorders
from router.workorders.models import WorkOrder
from service.db import Database

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2025, 12, 10, 12, 0, tzinfo=SHANGHAI)
NOVEMBER = statistics.make_period(date(2025, 11, 1), date(2025, 11, 30))
# Red below 60, yellow below 90: the three departments land on three different lists.
POLICY = AssessmentPolicy(red_below=60, yellow_below=90)
EAST = {"district": "A1", "street": "S1"}
WEST = {"district": "A2", "street": "S2"}


def local(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, month, day, hour, minute, tzinfo=SHANGHAI)


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    database = Database(database_url)
    with database.session() as db_session:
        db_session.add_all(
            [
                Department(code="D1", name="住建局", kind="city"),
                Department(code="D2", name="城管局", kind="city"),
                Department(code="D3", name="水务局", kind="city"),
                Department(code="A1", name="甲区", kind="district"),
                Department(code="A2", name="乙区", kind="district"),
                Department(code="S1", name="东街道", kind="street", parent_code="A1"),
                Department(code="S2", name="西街道", kind="street", parent_code="A2"),
            ]
        )
        db_session.flush()
        db_session.add_all(
            [
                Category(code="01", name="城乡建设", level=1, path="城乡建设"),
                Category(code="0101", name="市政", level=2, parent_code="01", path="城乡建设/市政"),
            ]
        )
        db_session.flush()
        for code, name, lead in (("010101", "路灯", "D1"), ("010102", "井盖", "D2")):
            db_session.add(
                Category(
                    code=code,
                    name=name,
                    level=3,
                    parent_code="0101",
                    path=f"城乡建设/市政/{name}",
                    lead_department_code=lead,
                    deadline_value=5,
                    deadline_unit="working_days",
                )
            )
        db_session.add(
            Category(
                code="010103",
                name="供水",
                level=3,
                parent_code="0101",
                path="城乡建设/市政/供水",
                lead_department_code="D3",
                deadline_value=5,
                deadline_unit="working_days",
            )
        )
        db_session.flush()
        yield db_session
    database.dispose()


class Seeder:
    """Drives orders through the real lifecycle functions at chosen instants."""

    def __init__(self, db_session: Session) -> None:
        self.db = db_session

    def receive(
        self,
        at: datetime,
        phone: str,
        *,
        district: str | None = None,
        street: str | None = None,
        site: str | None = None,
    ) -> WorkOrder:
        order, _ = workorders.receive_appeal(
            db_session=self.db,
            appeal=workorders.AppealInput(channel="phone", text="诉求内容", caller_phone=phone),
            now=at,
        )
        # What routing and duplicate detection store on the order.
        order.district_code, order.street_code, order.site = district, street, site
        self.db.flush()
        return order

    def _do(self, fn: Any, order: WorkOrder, role: str, at: datetime, **kw: Any) -> None:
        fn(db_session=self.db, order=order, actor=role, role=role, now=at, **kw)
        self.db.flush()

    def dispatch(
        self, order: WorkOrder, at: datetime, category: str, department: str | None = None
    ) -> None:
        self._do(
            actions.dispatch,
            order,
            "agent",
            at,
            category_code=category,
            department_code=department,
        )

    def accept(self, order: WorkOrder, at: datetime) -> None:
        self._do(actions.accept, order, "department", at)

    def return_(self, order: WorkOrder, at: datetime) -> None:
        self._do(actions.return_order, order, "department", at, reason="不属于本单位职责")

    def extension(self, order: WorkOrder, asked: datetime, approved: datetime) -> None:
        assert order.deadline_at is not None
        self._do(
            actions.request_extension,
            order,
            "department",
            asked,
            reason="需协调施工",
            new_deadline=order.deadline_at + timedelta(days=3),
        )
        self._do(actions.approve_extension, order, "supervisor", approved)

    def escalate(self, order: WorkOrder, at: datetime) -> None:
        self._do(actions.escalate, order, "supervisor", at, reason="超期未办结")

    def reply(self, order: WorkOrder, at: datetime) -> None:
        self._do(actions.reply, order, "department", at, result="已处理")

    def close(self, order: WorkOrder, at: datetime, result: str | None = None) -> None:
        self._do(actions.close, order, "agent", at)
        rows = callbacks.schedule_callbacks(db_session=self.db, work_order=order, now=at)
        if result is not None:
            callbacks.record_result(
                db_session=self.db,
                callback_id=rows[0].id,
                outcome=result,
                actor="agent",
                now=at + timedelta(days=1),
            )
        self.db.flush()


def seed_month(db_session: Session) -> dict[str, WorkOrder]:
    s = Seeder(db_session)
    o: dict[str, WorkOrder] = {}
    # o0 (October, the previous period): D1 accepts in time, replies late (deadline Oct 27).
    o["o0"] = s.receive(local(10, 20, 10), "13900000000", **EAST)
    s.dispatch(o["o0"], local(10, 20, 10), "010101")
    s.accept(o["o0"], local(10, 20, 10, 30))
    s.reply(o["o0"], local(10, 31, 10))
    s.close(o["o0"], local(10, 31, 11))
    # o1: D1, accepted 30 min after dispatch (in time), replied next day, closed, satisfied.
    o["o1"] = s.receive(
        local(11, 3, 10), "13900000001", district="A1", street="S1", site="幸福小区"
    )
    s.dispatch(o["o1"], local(11, 3, 10), "010101")
    s.accept(o["o1"], local(11, 3, 10, 30))
    s.reply(o["o1"], local(11, 4, 10))
    s.close(o["o1"], local(11, 4, 11), "satisfied")
    # o2: D1 accepts 2 days late, asks for an extension (approved), replies, closed; the caller
    # is unsatisfied: reopened to D1 and escalated on Nov 7 (fresh clocks from Nov 7, never
    # accepted or replied again, so both deadlines are late by Dec 10).
    o["o2"] = s.receive(local(11, 3, 10), "13900000002", **EAST)
    s.dispatch(o["o2"], local(11, 3, 10), "010101")
    s.accept(o["o2"], local(11, 5, 10))
    s.extension(o["o2"], local(11, 5, 11), local(11, 5, 14))
    s.reply(o["o2"], local(11, 6, 10))
    s.close(o["o2"], local(11, 6, 15), "unsatisfied")
    # o3: D1 accepts in time, never replies (deadline ~Nov 17); a supervisor escalates on Nov 18.
    # Same street and site as o1, 6 days after o1 closed: o1 is a repeat (重复诉求).
    o["o3"] = s.receive(
        local(11, 10, 10), "13900000003", district="A1", street="S1", site="幸福小区"
    )
    s.dispatch(o["o3"], local(11, 10, 10), "010101")
    s.accept(o["o3"], local(11, 10, 10, 30))
    s.escalate(o["o3"], local(11, 18, 10))
    # o4: sent to D1, which returns it; the agent sends it to D2: a justified return (D1).
    # D2 accepts and replies in time; basically satisfied.
    o["o4"] = s.receive(local(11, 10, 10), "13900000004", **EAST)
    s.dispatch(o["o4"], local(11, 10, 10), "010101")
    s.return_(o["o4"], local(11, 10, 10, 30))
    s.dispatch(o["o4"], local(11, 10, 11), "010101", department="D2")
    s.accept(o["o4"], local(11, 10, 11, 30))
    s.reply(o["o4"], local(11, 11, 10))
    s.close(o["o4"], local(11, 11, 11), "basically_satisfied")
    # o5: D2 returns it, the agent sends it back to D2: an unjustified return (D2). Accepted two
    # days late, replied on Nov 28 (deadline ~Nov 19: late), closed; callback still pending.
    # The caller calls again on Dec 3 (another spelling of the number): a repeat.
    o["o5"] = s.receive(local(11, 12, 10), "13900000005", **WEST)
    s.dispatch(o["o5"], local(11, 12, 10), "010102")
    s.return_(o["o5"], local(11, 12, 10, 30))
    s.dispatch(o["o5"], local(11, 12, 11), "010102")
    s.accept(o["o5"], local(11, 14, 11))
    s.reply(o["o5"], local(11, 28, 10))
    s.close(o["o5"], local(11, 28, 11))
    # o6: D2 returns it; still in review (a pending return). Its sign-for and handling
    # deadlines from the Nov 20 dispatch passed unmet: late by the dashboard's rule.
    o["o6"] = s.receive(local(11, 20, 10), "13900000006", **WEST)
    s.dispatch(o["o6"], local(11, 20, 10), "010102")
    s.return_(o["o6"], local(11, 20, 10, 30))
    # o7: D3, everything in time, satisfied; another caller reports the same site on Dec 1.
    o["o7"] = s.receive(
        local(11, 25, 10), "13900000007", district="A2", street="S2", site="阳光花园"
    )
    s.dispatch(o["o7"], local(11, 25, 10), "010103")
    s.accept(o["o7"], local(11, 25, 10, 30))
    s.reply(o["o7"], local(11, 26, 10))
    s.close(o["o7"], local(11, 26, 11), "satisfied")
    # December appeals (outside the period): the repeats, and one just outside o2's window
    # (o2 closed Nov 6 15:00; 30 days end Dec 6 15:00).
    s.receive(local(12, 1, 10), "13900000009", **WEST, site="阳光花园")
    s.receive(local(12, 3, 10), "+86 139 0000 0005", **WEST)
    s.receive(local(12, 7, 10), "13900000002", **EAST)
    return o


def by_code(card: assessment.Scorecard) -> dict[str, dict[str, Any]]:
    return {row["code"]: row for row in card.rows}


def test_department_scorecard_of_a_seeded_month_matches_the_hand_count(session: Session) -> None:
    seed_month(session)
    card = assessment.scorecard(
        db_session=session, period=NOVEMBER, now=NOW, unit=UnitKind.DEPARTMENT, policy=POLICY
    )
    rows = by_code(card)
    assert set(rows) == {"D1", "D2", "D3"}
    d1, d2, d3 = rows["D1"], rows["D2"], rows["D3"]

    # 受理量 (received in Nov, by current department): D1 o1 o2 o3; D2 o4 o5 o6; D3 o7.
    assert (d1["received"], d2["received"], d3["received"]) == (3, 3, 1)
    # 派单量 (routing events to the department in Nov): D1 o1 o2 o3 o4; D2 o4 o5 o5 o6; D3 o7.
    assert (d1["dispatches"], d2["dispatches"], d3["dispatches"]) == (4, 4, 1)
    # 签收及时率 (latest dispatch in Nov): D1 o1 on time, o2 late (reopened), o3 on time = 2/3;
    # D2 o4 on time, o5 late, o6 late (returned, never signed for) = 1/3; D3 o7 = 1/1.
    assert (d1["accepted_on_time"], d1["accepted_late"]) == (2, 1)
    assert (d2["accepted_on_time"], d2["accepted_late"]) == (1, 2)
    assert [r["accept_on_time_rate"] for r in (d1, d2, d3)] == [0.6667, 0.3333, 1.0]
    # 按时办结率: D1 o1 on time, o2 late (reopened, no new reply), o3 late = 1/3;
    # D2 o4 on time, o5 late, o6 late = 1/3; D3 1/1.
    assert (d1["replied_on_time"], d1["replied_late"]) == (1, 2)
    assert [r["closure_on_time_rate"] for r in (d1, d2, d3)] == [0.3333, 0.3333, 1.0]
    # 满意率: D1 o1 satisfied, o2 unsatisfied = 1/2; D2 o4 basically satisfied (o5 pending,
    # not counted) = 1/1; D3 o7 = 1/1.
    assert (d1["satisfied"], d1["answered"], d2["answered"]) == (1, 2, 1)
    assert [r["satisfaction_rate"] for r in (d1, d2, d3)] == [0.5, 1.0, 1.0]
    # 退单: D1 returned o4, re-routed to D2: justified, 1/4 dispatches; not justified 0/4.
    # D2 returned o5 (back to D2: unjustified) and o6 (pending): 2/4; not justified 2/4.
    assert (d1["returns"], d1["justified_returns"], d1["unjustified_returns"]) == (1, 1, 0)
    assert (d2["returns"], d2["justified_returns"], d2["unjustified_returns"]) == (2, 0, 1)
    assert d2["pending_returns"] == 1
    assert [r["return_rate"] for r in (d1, d2, d3)] == [0.25, 0.5, 0.0]
    assert [r["unjustified_return_rate"] for r in (d1, d2, d3)] == [0.0, 0.5, 0.0]
    # 延期率 (of the accept orders): D1 o2 = 1/3; D2 0/3; D3 0/1.
    assert [r["extension_rate"] for r in (d1, d2, d3)] == [0.3333, 0.0, 0.0]
    # 重复诉求率 (latest closure in Nov): D1 o1 (o3 same site, 6 days later: repeat), o2 (the
    # caller again on Dec 7, past the 30 days: no) = 1/2; D2 o4 no, o5 (Dec 3, same caller) yes
    # = 1/2; D3 o7 (Dec 1, same site) = 1/1.
    assert [(r["closed"], r["repeated"]) for r in (d1, d2, d3)] == [(2, 1), (2, 1), (1, 1)]
    assert [r["repeat_rate"] for r in (d1, d2, d3)] == [0.5, 0.5, 1.0]
    # 督办: D1 o2 (unsatisfied callback) and o3 (supervisor) = 2; none elsewhere.
    assert [r["escalations"] for r in (d1, d2, d3)] == [2, 0, 0]

    # 综合得分 with the default weights (accept 10, closure 25, satisfaction 30, returns not
    # justified 10, extensions 5, repeats 10, escalations per dispatch 10), in points:
    # D1: (66.67*10 + 33.33*25 + 50*30 + 100*10 + 66.67*5 + 50*10 + 50*10) / 100 = 53.33
    # D2: (33.33*10 + 33.33*25 + 100*30 + 50*10 + 100*5 + 50*10 + 100*10) / 100 = 66.67
    # D3: (100*10 + 100*25 + 100*30 + 100*10 + 100*5 + 0*10 + 100*10) / 100 = 90.0
    assert d1["score"] == pytest.approx(53.33, abs=0.01)
    assert d2["score"] == pytest.approx(66.67, abs=0.01)
    assert d3["score"] == pytest.approx(90.0, abs=0.01)
    assert [row["code"] for row in card.rows] == ["D3", "D2", "D1"]
    assert [r["rank"] for r in (d3, d2, d1)] == [1, 2, 3]
    # Red below 60, yellow below 90.
    assert (card.red, card.yellow) == (["D1"], ["D2"])
    assert d3["level"] == "green"
    # October (the previous month): D1 had o0 only: accept 100, closure 0, no callback, no
    # return, no extension, no repeat, no escalation: (100*10 + 0*25 + 100*(10+5+10+10)) / 70.
    assert d1["previous_score"] == pytest.approx(4500 / 70, abs=0.01)
    assert d1["trend"] == "down"
    assert d2["previous_score"] is None and d2["trend"] is None
    assert (card.previous_from, card.previous_to) == ("2025-10-01", "2025-10-31")

    # The total row counts every fact: 7 received, 9 dispatches, accept 4/7, closure 3/7,
    # satisfaction 3/4, 3 returns (1 justified), 3 repeats of 5 closures, 2 escalations.
    total = card.total
    assert (total["received"], total["dispatches"], total["escalations"]) == (7, 9, 2)
    assert (total["accept_on_time_rate"], total["closure_on_time_rate"]) == (0.5714, 0.4286)
    assert total["satisfaction_rate"] == 0.75
    assert (total["returns"], total["justified_returns"]) == (3, 1)
    assert (total["closed"], total["repeated"]) == (5, 3)


def test_district_and_street_scorecards_group_by_the_orders_place(session: Session) -> None:
    seed_month(session)
    for unit, first, second in ((UnitKind.DISTRICT, "A1", "A2"), (UnitKind.STREET, "S1", "S2")):
        card = assessment.scorecard(
            db_session=session, period=NOVEMBER, now=NOW, unit=unit, policy=POLICY
        )
        rows = by_code(card)
        assert set(rows) == {first, second}
        one, two = rows[first], rows[second]
        assert (one["name"], two["name"]) in {("甲区", "乙区"), ("东街道", "西街道")}
        # received: o1 o2 o3 o4 | o5 o6 o7; dispatches: o1 o2 o3 o4 o4 | o5 o5 o6 o7
        assert (one["received"], two["received"]) == (4, 3)
        assert (one["dispatches"], two["dispatches"]) == (5, 4)
        # accept: o1 o3 o4 on time, o2 late = 3/4 | o7 on time, o5 o6 late = 1/3
        assert (one["accept_on_time_rate"], two["accept_on_time_rate"]) == (0.75, 0.3333)
        # returns: o4 (justified) | o5 (unjustified), o6 (pending)
        assert (one["returns"], one["justified_returns"]) == (1, 1)
        assert (two["returns"], two["unjustified_returns"], two["pending_returns"]) == (2, 1, 1)
        # escalations: o2, o3 | none
        assert (one["escalations"], two["escalations"]) == (2, 0)


def test_drill_down_lists_the_orders_behind_a_figure(session: Session) -> None:
    o = seed_month(session)

    def drill(figure: Figure, code: str | None) -> list[tuple[str, str]]:
        facts = assessment.drill_down(
            db_session=session,
            period=NOVEMBER,
            now=NOW,
            unit=UnitKind.DEPARTMENT,
            figure=figure,
            code=code,
            policy=POLICY,
        )
        return [(fact.number, fact.outcome) for fact in facts]

    assert drill(Figure.ACCEPT, "D1") == [
        (o["o1"].number, "on_time"),
        (o["o2"].number, "late"),
        (o["o3"].number, "on_time"),
    ]
    assert drill(Figure.RETURNS, "D2") == [
        (o["o5"].number, "unjustified"),
        (o["o6"].number, "pending"),
    ]
    assert drill(Figure.RETURNS, "D1") == [(o["o4"].number, "justified")]
    assert sorted(drill(Figure.REPEATS, None)) == sorted(
        [
            (o["o1"].number, "repeated"),
            (o["o2"].number, "not_repeated"),
            (o["o4"].number, "not_repeated"),
            (o["o5"].number, "repeated"),
            (o["o7"].number, "repeated"),
        ]
    )
    assert drill(Figure.ESCALATIONS, "D1") == [
        (o["o2"].number, "escalated"),
        (o["o3"].number, "escalated"),
    ]
    assert drill(Figure.ACCEPT, "D9") == []


def test_dashboard_figures_equal_the_scorecard_figures(session: Session) -> None:
    seed_month(session)
    dashboard = statistics.period_statistics(db_session=session, period=NOVEMBER, now=NOW)
    card = assessment.scorecard(
        db_session=session, period=NOVEMBER, now=NOW, unit=UnitKind.DEPARTMENT, policy=POLICY
    )

    assert dashboard.rates["on_time_dispatch_rate"] == card.total["accept_on_time_rate"]
    assert dashboard.rates["on_time_closure_rate"] == card.total["closure_on_time_rate"]
    assert dashboard.rates["satisfaction_rate"] == card.total["satisfaction_rate"]
    assert dashboard.totals["appeals"] == card.total["received"]
    rows = by_code(card)
    assert {row["code"] for row in dashboard.by_department} == set(rows)
    for row in dashboard.by_department:
        assert row["on_time_closure_rate"] == rows[row["code"]]["closure_on_time_rate"]
        assert row["satisfaction_rate"] == rows[row["code"]]["satisfaction_rate"]
        assert row["count"] == rows[row["code"]]["received"]


def test_month_and_previous_periods() -> None:
    november = assessment.month_period("2025-11")
    assert (november.date_from, november.date_to) == (date(2025, 11, 1), date(2025, 11, 30))
    before = assessment.previous_period(november)
    assert (before.date_from, before.date_to) == (date(2025, 10, 1), date(2025, 10, 31))
    week = statistics.make_period(date(2025, 11, 10), date(2025, 11, 16))
    last_week = assessment.previous_period(week)
    assert (last_week.date_from, last_week.date_to) == (date(2025, 11, 3), date(2025, 11, 9))
    march = assessment.previous_period(assessment.month_period("2024-03"))
    assert (march.date_from, march.date_to) == (date(2024, 2, 1), date(2024, 2, 29))
