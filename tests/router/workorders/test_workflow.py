"""Work-order state machine: legal and illegal transitions, roles, events and lifecycle policy."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from router.calendar import WorkingCalendar
from router.errors import Conflict, Forbidden, InvalidInput
from router.workorders import workflow
from router.workorders.workflow import (
    WORKFLOW_ROLES,
    Action,
    CallbackOutcome,
    DeadlineStatus,
    Event,
    Role,
    State,
    WorkflowPolicy,
    allowed_actions,
    perform,
    transition,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


# The specification, written independently of router.workorders.workflow.RULES:
# (source states, action, target state or None for "unchanged", roles).
SPEC = [
    ("received", "triage_auto", "dispatched", "system"),
    ("received returned", "send_to_review", "review", "system agent"),
    ("reopened", "send_to_review", "review", "system"),
    ("received review", "dispatch", "dispatched", "agent supervisor"),
    ("dispatched returned", "redispatch", "dispatched", "agent supervisor"),
    ("accepted extension_requested reopened", "redispatch", "dispatched", "supervisor"),
    ("dispatched reopened", "accept", "accepted", "department"),
    ("dispatched accepted", "return", "returned", "department"),
    ("accepted", "request_extension", "extension_requested", "department"),
    ("extension_requested", "approve_extension", "accepted", "supervisor"),
    ("extension_requested", "deny_extension", "accepted", "supervisor"),
    ("accepted extension_requested", "reply", "replied", "department"),
    ("replied", "reject_reply", "accepted", "agent supervisor"),
    ("replied", "close", "closed", "agent supervisor system"),
    ("received", "answer", "closed", "agent supervisor"),
    ("closed", "record_callback", "callback_done", "agent system"),
    ("closed", "reopen", "reopened", "agent supervisor system"),
    ("callback_done", "reopen", "reopened", "supervisor"),
    ("received review dispatched returned", "merge", "merged", "agent supervisor"),
    ("received", "merge", "merged", "system"),
    ("merged", "unmerge", "review", "agent supervisor"),
    (
        "review dispatched accepted extension_requested returned reopened",
        "escalate",
        None,
        "supervisor system",
    ),
]

LEGAL: dict[tuple[str, str, str], str] = {
    (source, action, role): target or source
    for sources, action, target, roles in SPEC
    for source in sources.split()
    for role in roles.split()
}
LEGAL_PAIRS = {(state, action) for state, action, _ in LEGAL}
ALL_STATES = [s.value for s in State]
ALL_ACTIONS = [a.value for a in Action]
ALL_ROLES = [r.value for r in WORKFLOW_ROLES]


# -- the transition table -----------------------------------------------------------------------


def test_state_and_action_names_are_the_api_contract():
    assert ALL_STATES == [
        "received",
        "review",
        "dispatched",
        "accepted",
        "extension_requested",
        "returned",
        "replied",
        "closed",
        "callback_done",
        "reopened",
        "merged",
    ]
    assert set(ALL_ROLES) == {"agent", "department", "supervisor", "system"}
    assert "return" in ALL_ACTIONS
    assert "return_" not in ALL_ACTIONS


@pytest.mark.parametrize(("state", "action", "role"), sorted(LEGAL))
def test_every_allowed_transition(state, action, role):
    new_state = transition(state, action, role=role)
    assert new_state == LEGAL[state, action, role]
    assert isinstance(new_state, State)


def test_the_table_allows_nothing_beyond_the_specification():
    actual = {
        (state, action, role)
        for state in ALL_STATES
        for role in ALL_ROLES
        for action in allowed_actions(state, role)
    }
    assert actual == set(LEGAL)


ILLEGAL_PAIRS = sorted(
    (state, action)
    for state, action in itertools.product(ALL_STATES, ALL_ACTIONS)
    if (state, action) not in LEGAL_PAIRS
)


@pytest.mark.parametrize(("state", "action"), ILLEGAL_PAIRS)
@pytest.mark.parametrize("role", ALL_ROLES)
def test_every_illegal_transition_conflicts_and_names_the_state(state, action, role):
    with pytest.raises(Conflict) as raised:
        transition(state, action, role=role)
    assert f"in state '{state}'" in str(raised.value)
    assert raised.value.extra == {"current_state": state, "action": action}
    assert raised.value.status_code == 409


@pytest.mark.parametrize(
    ("state", "action", "message"),
    [
        ("closed", "accept", "cannot accept a work order in state 'closed'"),
        ("received", "accept", "cannot accept a work order in state 'received'"),
        ("callback_done", "reply", "cannot reply to a work order in state 'callback_done'"),
        ("replied", "return", "cannot return a work order in state 'replied'"),
        ("closed", "escalate", "cannot escalate a work order in state 'closed'"),
        ("merged", "dispatch", "cannot dispatch a work order in state 'merged'"),
        (
            "extension_requested",
            "request_extension",
            "cannot request an extension for a work order in state 'extension_requested'",
        ),
        (
            "accepted",
            "approve_extension",
            "cannot approve an extension for a work order in state 'accepted'",
        ),
        ("reopened", "return", "cannot return a work order in state 'reopened'"),
        ("closed", "close", "cannot close a work order in state 'closed'"),
        ("received", "receive", "cannot receive a work order in state 'received'"),
    ],
)
def test_illegal_transition_messages_read_well(state, action, message):
    with pytest.raises(Conflict, match=f"^{re.escape(message)}$"):
        transition(state, action, role="supervisor")


FORBIDDEN = sorted(
    (state, action, role)
    for state, action in LEGAL_PAIRS
    for role in ALL_ROLES
    if (state, action, role) not in LEGAL
)


@pytest.mark.parametrize(("state", "action", "role"), FORBIDDEN)
def test_a_legal_transition_by_the_wrong_role_is_forbidden(state, action, role):
    with pytest.raises(Forbidden) as raised:
        transition(state, action, role=role)
    assert f"role '{role}'" in str(raised.value)
    assert raised.value.extra["current_state"] == state
    assert raised.value.status_code == 403


@pytest.mark.parametrize(
    ("state", "action", "role"),
    [
        ("dispatched", "accept", "agent"),  # only the department signs for its orders
        ("accepted", "reply", "supervisor"),
        ("extension_requested", "approve_extension", "department"),  # no self-approval
        ("extension_requested", "approve_extension", "agent"),
        ("accepted", "escalate", "department"),
        ("accepted", "redispatch", "agent"),  # taking an accepted order away: supervisor
        ("callback_done", "reopen", "agent"),
        ("review", "merge", "system"),  # automatic merge only at intake
        ("received", "triage_auto", "agent"),
    ],
)
def test_role_checks(state, action, role):
    with pytest.raises(Forbidden):
        transition(state, action, role=role)


@pytest.mark.parametrize(
    ("state", "action", "role", "what"),
    [
        ("archived", "accept", "department", "unknown state 'archived'"),
        ("dispatched", "sign", "department", "unknown action 'sign'"),
        ("dispatched", "return_", "department", "unknown action 'return_'"),
        ("dispatched", "accept", "citizen", "unknown role 'citizen'"),
    ],
)
def test_unknown_names_are_invalid_input(state, action, role, what):
    with pytest.raises(InvalidInput, match=re.escape(what)):
        transition(state, action, role=role)


def test_transition_accepts_enum_members():
    assert transition(State.DISPATCHED, Action.ACCEPT, role=Role.DEPARTMENT) == "accepted"


@pytest.mark.parametrize(
    ("state", "role", "expected"),
    [
        ("dispatched", "department", ["accept", "return"]),
        ("accepted", "department", ["return", "request_extension", "reply"]),
        ("accepted", "supervisor", ["redispatch", "escalate"]),
        (
            "extension_requested",
            "supervisor",
            ["redispatch", "approve_extension", "deny_extension", "escalate"],
        ),
        ("received", "system", ["triage_auto", "send_to_review", "merge"]),
        ("replied", "agent", ["reject_reply", "close"]),
        ("closed", "system", ["record_callback", "reopen"]),
        ("callback_done", "agent", []),
        ("merged", "department", []),
    ],
)
def test_allowed_actions(state, role, expected):
    assert allowed_actions(state, role) == expected


def test_escalation_is_a_flag_not_a_state():
    for state in ("dispatched", "accepted", "extension_requested", "returned", "reopened"):
        assert transition(state, "escalate", role="supervisor") == state
    assert "escalated" not in ALL_STATES


def test_reopen_is_accepted_again_by_the_department():
    state = transition("closed", "reopen", role="system")
    assert state == "reopened"
    assert state in workflow.AT_DEPARTMENT
    assert transition(state, "accept", role="department") == "accepted"


def test_module_docstring_lists_exactly_the_rules():
    doc = workflow.__doc__ or ""
    listing = doc.split("Every edge and the roles")[1].split("Design choices:")[0]
    # Join continuation lines (a line starting with the arrow continues the previous sources).
    lines: list[str] = []
    for raw in listing.splitlines()[2:]:
        line = raw.strip()
        if not line:
            continue
        if line.startswith("--") and lines:
            lines[-1] += " " + line
        else:
            lines.append(line)
    documented = set()
    pattern = re.compile(
        r"^(?P<sources>[a-z_, ]+?)\s+--(?P<action>[a-z_]+)-*> (?P<target>\S+)\s+"
        r"(?P<roles>[a-z, ]+)$"
    )
    for line in lines:
        match = pattern.match(line)
        assert match, line
        for source in match["sources"].split(","):
            for role in match["roles"].split(","):
                target = match["target"]
                documented.add(
                    (
                        source.strip(),
                        match["action"],
                        role.strip(),
                        source.strip() if target == "(unchanged)" else target,
                    )
                )
    assert documented == {(s, a, r, t) for (s, a, r), t in LEGAL.items()}


# -- events -------------------------------------------------------------------------------------


def test_perform_returns_the_event_to_append():
    event = perform(
        "dispatched",
        "return",
        actor="dept:water",
        role="department",
        at=at(2025, 9, 29, 10),
        reason="  not our jurisdiction: the street is in the next district  ",
        data={"suggested_department": "district-b"},
    )
    assert event == Event(
        actor="dept:water",
        role=Role.DEPARTMENT,
        action=Action.RETURN,
        from_state=State.DISPATCHED,
        to_state=State.RETURNED,
        at=at(2025, 9, 29, 10),
        reason="not our jurisdiction: the street is in the next district",
        data={"suggested_department": "district-b"},
    )
    assert event.to_dict() == {
        "actor": "dept:water",
        "role": "department",
        "action": "return",
        "from_state": "dispatched",
        "to_state": "returned",
        "reason": "not our jurisdiction: the street is in the next district",
        "at": "2025-09-29T10:00:00+08:00",
        "data": {"suggested_department": "district-b"},
    }


@pytest.mark.parametrize(
    ("state", "action", "role"),
    [
        ("dispatched", "return", "department"),
        ("accepted", "request_extension", "department"),
        ("extension_requested", "deny_extension", "supervisor"),
        ("replied", "reject_reply", "agent"),
        ("closed", "reopen", "system"),
        ("accepted", "escalate", "supervisor"),
    ],
)
def test_perform_requires_a_reason_where_the_other_party_must_know_why(state, action, role):
    with pytest.raises(InvalidInput, match="a reason is required"):
        perform(state, action, actor="someone", role=role, at=at(2025, 9, 29, 10), reason=" ")


def test_perform_checks_the_transition_before_the_reason():
    with pytest.raises(Conflict):
        perform("closed", "return", actor="dept:water", role="department", at=at(2025, 9, 29))


def test_perform_copies_data_so_the_caller_cannot_change_the_event():
    data = {"department": "water"}
    event = perform(
        "review", "dispatch", actor="agent:7", role="agent", at=at(2025, 9, 29), data=data
    )
    data["department"] = "gas"
    assert event.data == {"department": "water"}


def test_events_need_an_aware_time_and_an_actor():
    with pytest.raises(ValueError, match="timezone-aware"):
        perform("review", "dispatch", actor="agent:7", role="agent", at=datetime(2025, 9, 29))
    with pytest.raises(InvalidInput, match="actor"):
        perform("review", "dispatch", actor="", role="agent", at=at(2025, 9, 29))


def test_receive_event_opens_the_log():
    event = workflow.receive_event(actor="channel:phone", role="system", at=at(2025, 9, 29, 8))
    assert (event.from_state, event.action, event.to_state) == (None, "receive", "received")
    assert event.to_dict()["from_state"] is None
    with pytest.raises(Forbidden):
        workflow.receive_event(actor="dept:water", role="department", at=at(2025, 9, 29, 8))


def test_a_whole_life_with_extension_unsatisfied_callback_and_reopen():
    steps = [
        ("triage_auto", "system", "", "dispatched"),
        ("accept", "department", "", "accepted"),
        ("request_extension", "department", "waiting for the contractor", "extension_requested"),
        ("approve_extension", "supervisor", "", "accepted"),
        ("reply", "department", "", "replied"),
        ("close", "agent", "", "closed"),
        ("reopen", "system", "citizen unsatisfied with the reply", "reopened"),
        ("escalate", "system", "citizen unsatisfied with the reply", "reopened"),
        ("accept", "department", "", "accepted"),
        ("reply", "department", "", "replied"),
        ("close", "system", "", "closed"),
        ("record_callback", "system", "", "callback_done"),
    ]
    state = "received"
    log = [workflow.receive_event(actor="channel:web", role="system", at=at(2025, 9, 29, 8))]
    for minute, (action, role, reason, expected) in enumerate(steps):
        event = perform(
            state, action, actor=role, role=role, at=at(2025, 9, 29, 9, minute), reason=reason
        )
        assert event.from_state == state
        state = event.to_state
        assert state == expected
        log.append(event)
    assert [e.action for e in log][:2] == ["receive", "triage_auto"]
    assert all(a.to_state == b.from_state for a, b in itertools.pairwise(log))


# -- policy -------------------------------------------------------------------------------------


def test_accept_deadline_is_two_working_hours_after_dispatch_by_default():
    # Dispatched on the eve of National Day 2025: the golden week does not count.
    assert workflow.accept_deadline(at(2025, 9, 30, 16)) == at(2025, 10, 9, 9, 30)


@pytest.mark.parametrize(
    ("now", "in_time"),
    [
        (at(2025, 9, 30, 17, 30), True),
        (at(2025, 10, 5, 12), True),  # the window is frozen over the holiday
        (at(2025, 10, 9, 11, 30), True),  # exactly at the end: still in time
        (at(2025, 10, 9, 11, 31), False),
        (datetime(2025, 10, 9, 3, 30, tzinfo=UTC), True),  # 11:30 in Shanghai
    ],
)
def test_return_window_counts_working_hours_from_dispatch(now, in_time):
    dispatched_at = at(2025, 9, 30, 16)  # 1.5 h on Sept 30, then 2.5 h on Oct 9 -> 11:30
    assert workflow.return_deadline(dispatched_at) == at(2025, 10, 9, 11, 30)
    if in_time:
        workflow.check_return_window(dispatched_at, now)
    else:
        with pytest.raises(Conflict, match="return window closed at 2025-10-09T11:30:00"):
            workflow.check_return_window(dispatched_at, now)


def test_return_window_uses_the_given_policy_and_calendar():
    policy = WorkflowPolicy(return_window_working_hours=8)
    local = WorkingCalendar(office_hours=[("09:00", "17:00")], extra_holidays=["2025-09-29"])
    deadline = workflow.return_deadline(at(2025, 9, 28, 16), policy=policy, calendar=local)
    assert deadline == at(2025, 9, 30, 16)
    with pytest.raises(ValueError, match="timezone-aware"):
        workflow.check_return_window(at(2025, 9, 28, 16), datetime(2025, 9, 30, 16))


@pytest.mark.parametrize(
    ("return_count", "threshold", "escalate"),
    [(1, 2, False), (2, 2, True), (3, 2, True), (1, 1, True), (2, 3, False)],
)
def test_repeated_returns_escalate(return_count, threshold, escalate):
    policy = WorkflowPolicy(escalate_after_returns=threshold)
    assert workflow.should_escalate_after_return(return_count, policy=policy) is escalate


def test_return_count_includes_the_current_return():
    with pytest.raises(ValueError):
        workflow.should_escalate_after_return(0)


@pytest.mark.parametrize(
    ("requests_so_far", "cap", "allowed"),
    [(0, 1, True), (1, 1, False), (1, 2, True), (2, 2, False), (0, 0, False)],
)
def test_extension_requests_are_capped_per_order(requests_so_far, cap, allowed):
    policy = WorkflowPolicy(max_extension_requests=cap)
    if allowed:
        workflow.check_extension_request(requests_so_far, policy=policy)
    else:
        with pytest.raises(Conflict, match=f"extension limit of {cap}"):
            workflow.check_extension_request(requests_so_far, policy=policy)


@pytest.mark.parametrize(
    ("outcome", "attempts", "actions", "retry"),
    [
        ("satisfied", 1, ["record_callback"], False),
        ("basically_satisfied", 2, ["record_callback"], False),
        ("unsatisfied", 1, ["reopen", "escalate"], False),
        ("unreachable", 1, [], True),
        ("unreachable", 2, [], True),
        ("unreachable", 3, ["record_callback"], False),
        ("unreachable", 4, ["record_callback"], False),
    ],
)
def test_decide_callback(outcome, attempts, actions, retry):
    decision = workflow.decide_callback(outcome, attempts=attempts)
    assert list(decision.actions) == actions
    assert decision.retry is retry
    assert decision.reason


def test_unsatisfied_callback_without_escalation_when_configured():
    policy = WorkflowPolicy(escalate_unsatisfied_callback=False)
    decision = workflow.decide_callback(CallbackOutcome.UNSATISFIED, attempts=1, policy=policy)
    assert decision.actions == (Action.REOPEN,)


def test_callback_actions_are_legal_on_a_closed_order():
    for outcome in CallbackOutcome:
        state = "closed"
        for action in workflow.decide_callback(outcome, attempts=3).actions:
            state = transition(state, action, role="system")
    assert state in ("callback_done", "reopened")


def test_decide_callback_rejects_bad_input():
    with pytest.raises(InvalidInput, match="unknown callback outcome"):
        workflow.decide_callback("angry", attempts=1)
    with pytest.raises(ValueError):
        workflow.decide_callback("satisfied", attempts=0)


@pytest.mark.parametrize(
    ("now", "status"),
    [
        (at(2025, 9, 30, 10), DeadlineStatus.OK),
        (at(2025, 10, 8, 23), DeadlineStatus.OK),  # 50 %: the holiday does not count
        (at(2025, 10, 9, 14, 41), DeadlineStatus.OK),
        (at(2025, 10, 9, 14, 42), DeadlineStatus.WARNING),  # 80 % of 14 working hours
        (at(2025, 10, 9, 17, 30), DeadlineStatus.WARNING),
        (at(2025, 10, 9, 17, 31), DeadlineStatus.OVERDUE),
    ],
)
def test_deadline_status(now, status):
    start, deadline = at(2025, 9, 30, 9), at(2025, 10, 9, 17, 30)
    assert workflow.deadline_status(start, deadline, now) is status


def test_deadline_status_in_calendar_hours():
    start = at(2025, 10, 1, 0)
    deadline = start + timedelta(hours=10)
    status = workflow.deadline_status(start, deadline, at(2025, 10, 1, 8), unit="hours")
    assert status is DeadlineStatus.WARNING


@pytest.mark.parametrize(
    "settings",
    [
        {"accept_within_working_hours": 0},
        {"return_window_working_hours": -1},
        {"escalate_after_returns": 0},
        {"max_extension_requests": -1},
        {"warning_share": 1.0},
        {"max_callback_attempts": 0},
    ],
)
def test_policy_rejects_nonsense(settings):
    with pytest.raises(ValueError):
        WorkflowPolicy(**settings)
