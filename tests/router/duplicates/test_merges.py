"""Persisted merges (并单), duplicate suggestions and repeat callers, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from router.catalogue.models import Department
from router.duplicates import service as merges
from router.duplicates.index import (
    Action,
    Candidate,
    CategoryRelation,
    DuplicateCheck,
    PlaceRelation,
)
from router.duplicates.models import MergeRecord
from router.errors import Conflict, Forbidden
from router.workorders import service as workorders
from router.workorders.models import WorkOrder, WorkOrderEvent
from service.db import Database

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


def new_order(
    db_session: Session, text: str, *, phone: str, minutes: int = 0, state: str = "received"
) -> WorkOrder:
    order, _ = workorders.receive_appeal(
        db_session=db_session,
        appeal=workorders.AppealInput(channel="web", text=text, caller_phone=phone),
        now=T0 + timedelta(minutes=minutes),
    )
    if state != "received":
        workorders.act(
            db_session=db_session,
            work_order=order,
            action="send_to_review",
            actor="router",
            role="system",
            now=T0 + timedelta(minutes=minutes),
        )
    if state == "dispatched":
        if s_get_department(db_session) is None:
            db_session.add(Department(code="LIGHTS", name="路灯管理处", kind="city"))
            db_session.flush()
        order.department_code = "LIGHTS"
        workorders.act(
            db_session=db_session,
            work_order=order,
            action="dispatch",
            actor="agent",
            role="agent",
            now=T0 + timedelta(minutes=minutes),
        )
    return order


def s_get_department(db_session: Session) -> Department | None:
    return db_session.get(Department, "LIGHTS")


def actions(db_session: Session, order: WorkOrder) -> list[str]:
    return [e.action for e in workorders.events(db_session=db_session, work_order=order)]


def test_merge_and_unmerge_round_trip_keeps_every_callers_record(db: Database) -> None:
    with db.session() as s:
        master = new_order(s, "路灯坏了", phone="13800000001", state="review")
        second = new_order(s, "路灯又坏了", phone="13800000002", minutes=5, state="dispatched")
        third = new_order(s, "门口路灯不亮", phone="13800000003", minutes=9)
        merges.merge_work_order(
            db_session=s, work_order=second, into=master, actor="agent", role="agent", score=0.7
        )
        merges.merge_work_order(
            db_session=s, work_order=third, into=master, actor="duplicates", role="system"
        )
        ids = master.id, second.id, third.id
    with db.session() as s:
        master, second, third = (s.get_one(WorkOrder, i) for i in ids)
        assert (second.state, second.master_id) == ("merged", master.id)
        assert (third.state, third.master_id) == ("merged", master.id)
        assert master.state == "review"
        group = merges.merge_group(db_session=s, master=master)
        phones = [r.caller for r in group.callback_recipients()]
        assert phones == ["13800000001", "13800000002", "13800000003"]
        assert actions(s, master).count(merges.MERGE_MEMBER) == 2
        assert actions(s, second)[-1] == "merge"
        merges.unmerge_work_order(db_session=s, work_order=second, actor="agent", role="agent")
        merges.unmerge_work_order(db_session=s, work_order=third, actor="agent", role="agent")
    with db.session() as s:
        master, second, third = (s.get_one(WorkOrder, i) for i in ids)
        # The dispatched order goes back to its department with a fresh sign-for deadline;
        # the one merged before routing waits for an agent.
        assert (second.state, second.master_id) == ("dispatched", None)
        assert second.accept_deadline_at is not None
        assert actions(s, second)[-2:] == ["unmerge", "dispatch"]
        assert (third.state, third.master_id) == ("review", None)
        assert merges.members_of(db_session=s, master=master) == []
        assert actions(s, master).count(merges.UNMERGE_MEMBER) == 2
        assert [o.appeal.caller_phone for o in (master, second, third)] == [
            "13800000001",
            "13800000002",
            "13800000003",
        ]
        history = s.scalars(select(MergeRecord).order_by(MergeRecord.id)).all()
        assert [(r.kind, r.work_order_id, r.previous_state) for r in history] == [
            ("merge", second.id, "dispatched"),
            ("merge", third.id, "received"),
            ("unmerge", second.id, "merged"),
            ("unmerge", third.id, "merged"),
        ]
        assert history[0].score == pytest.approx(0.7)
        assert not history[0].automatic


def test_merging_into_a_merged_order_goes_to_its_master_and_groups_never_chain(
    db: Database,
) -> None:
    with db.session() as s:
        a = new_order(s, "噪音", phone="13800000011", state="review")
        b = new_order(s, "噪音扰民", phone="13800000012", minutes=1, state="review")
        c = new_order(s, "施工噪音", phone="13800000013", minutes=2, state="review")
        d = new_order(s, "夜间施工噪音", phone="13800000014", minutes=3, state="review")
        merges.merge_work_order(db_session=s, work_order=b, into=a, actor="x", role="agent")
        # c into b, which is merged: c follows a
        master = merges.merge_work_order(
            db_session=s, work_order=c, into=b, actor="x", role="agent"
        )
        assert master.id == a.id
        # a (a master with members) into d: a's members move along to d
        merges.merge_work_order(db_session=s, work_order=a, into=d, actor="x", role="agent")
        assert {o.master_id for o in (a, b, c)} == {d.id}
        assert [m.id for m in merges.members_of(db_session=s, master=d)] == [a.id, b.id, c.id]


def test_illegal_merges_are_refused(db: Database) -> None:
    with db.session() as s:
        a = new_order(s, "积水", phone="13800000021", state="review")
        b = new_order(s, "积水严重", phone="13800000022", minutes=1, state="review")
        with pytest.raises(Conflict):
            merges.merge_work_order(db_session=s, work_order=a, into=a, actor="x", role="agent")
        with pytest.raises(Forbidden):  # the system merges only orders nobody has seen yet
            merges.merge_work_order(db_session=s, work_order=b, into=a, actor="x", role="system")
        with pytest.raises(Forbidden):
            merges.merge_work_order(
                db_session=s, work_order=b, into=a, actor="x", role="department"
            )
        with pytest.raises(Conflict):
            merges.unmerge_work_order(db_session=s, work_order=b, actor="x", role="agent")
        merges.merge_work_order(db_session=s, work_order=b, into=a, actor="x", role="agent")
        with pytest.raises(Conflict):  # already merged
            merges.merge_work_order(db_session=s, work_order=b, into=a, actor="x", role="agent")
        events = s.scalars(select(WorkOrderEvent).where(WorkOrderEvent.work_order_id == b.id))
        assert [e.action for e in events] == ["receive", "send_to_review", "merge"]


def candidate(order: WorkOrder, score: float, *, same_caller: bool = False) -> Candidate:
    return Candidate(
        appeal_id=order.id,
        score=score,
        text_similarity=score,
        place=PlaceRelation.SAME_SITE,
        category=CategoryRelation.SAME,
        hours_apart=1.0,
        same_caller=same_caller,
        reasons=("text similarity",),
    )


def test_stored_check_keeps_candidates_and_flags_a_repeat_caller(db: Database) -> None:
    with db.session() as s:
        first = new_order(s, "垃圾没人清理", phone="13800000031")
        other = new_order(s, "垃圾堆积", phone="13800000032", minutes=1)
        again = new_order(s, "垃圾还是没人清理", phone="13800000031", minutes=60)
        check = DuplicateCheck(
            appeal_id=again.id,
            action=Action.SUGGEST,
            master_id=first.id,
            candidates=(
                candidate(first, 0.8, same_caller=True),
                candidate(other, 0.3),
                replace(candidate(other, 0.2), appeal_id=10**9),
            ),
            repeat_of=(first.id,),
        )
        rows = merges.store_check(db_session=s, work_order=again, check=check)
        # the third candidate's order does not exist (a stale index): skipped
        assert [(r.candidate_id, r.action) for r in rows] == [
            (first.id, "suggest"),
            (other.id, "none"),
        ]
        assert again.repeat_of_id == first.id
        stored = merges.candidates_of(db_session=s, work_order=again)
        assert [o.id for _, o in stored] == [first.id, other.id]
