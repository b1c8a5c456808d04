"""Work-order lifecycle: the state machine, who may act, the event record and lifecycle policy.

Pure domain code: it decides whether an action is legal and what the next state is; the service
layer loads the order, calls :func:`perform`, stores ``event.to_state`` and appends the
:class:`Event` to the append-only log in one transaction.

States (the lower-case values are an API contract)::

    received             the appeal is persisted, the order not routed yet
    review               waiting for an agent (low classifier confidence, or after a return)
    dispatched           sent to a department (派单), waiting for it to accept
    accepted             the department accepted (签收) and is handling it
    extension_requested  accepted, and the department asked for more time (延期申请)
    returned             the department returned it (退单); the centre re-triages
    replied              the department replied (办结回复); the centre reviews the reply
    closed               the centre closed it (办结), or the agent answered a consultation at
                         intake (直接办结); the satisfaction callback is due
    callback_done        the callback (回访) is recorded: final
    reopened             unsatisfied callback: back to the same department, to be accepted again
                         (an order answered at intake, which has none, goes on to review)
    merged               a duplicate that follows a master order (并单)

Diagram (shape only; the edge list below is complete)::

    received ---triage_auto, dispatch-------------------+
       |                                                |
       | send_to_review                                 v
       +--------------> review ------dispatch------> dispatched ---accept---> accepted
                          ^                           |   ^
                          |                    return |   | redispatch
                          |                           v   |
                          +-----send_to_review---- returned <---return--- accepted

                  accept                 request_extension
    dispatched ------------> accepted ----------------------> extension_requested
                             ^ | ^ ^                            |     |
                accept       | | | +--approve_extension,--------+     |
    reopened ----------------+ | |      deny_extension                |
       ^                       | | reject_reply                       |
       |                 reply | |                                    |
       |                       v |                                    |
       |                     replied <--------------reply-------------+
       |                       |
       |                 close |
       |                       v
       +-------reopen-------- closed ---record_callback---> callback_done
       |                                                          |
       +-------reopen---------------------------------------------+

Every edge and the roles that may take it (a test checks this list against :data:`RULES`)::

    received             --triage_auto--------> dispatched           system
    received, returned   --send_to_review-----> review               system, agent
    reopened             --send_to_review-----> review               system
    received, review     --dispatch-----------> dispatched           agent, supervisor
    dispatched, returned --redispatch---------> dispatched           agent, supervisor
    accepted, extension_requested, reopened
                         --redispatch---------> dispatched           supervisor
    dispatched, reopened --accept-------------> accepted             department
    dispatched, accepted --return-------------> returned             department
    accepted             --request_extension--> extension_requested  department
    extension_requested  --approve_extension--> accepted             supervisor
    extension_requested  --deny_extension-----> accepted             supervisor
    accepted, extension_requested
                         --reply--------------> replied              department
    replied              --reject_reply-------> accepted             agent, supervisor
    replied              --close--------------> closed               agent, supervisor, system
    received             --answer-------------> closed               agent, supervisor
    closed               --record_callback----> callback_done        agent, system
    closed               --reopen-------------> reopened             agent, supervisor, system
    callback_done        --reopen-------------> reopened             supervisor
    received, review, dispatched, returned
                         --merge--------------> merged               agent, supervisor
    received             --merge--------------> merged               system
    merged               --unmerge------------> review               agent, supervisor
    review, dispatched, accepted, extension_requested, returned, reopened
                         --escalate-----------> (unchanged)          supervisor, system

Design choices:

* **Escalation (督办) is a flag plus an event, not a state.** A centre escalates an order that
  stays ``accepted`` (or ``dispatched``, ``returned``...): a state would lose where the order is.
  ``escalate`` is a self-transition (the state does not change) allowed in every state where
  somebody still has to act (review, dispatched, accepted, extension_requested, returned,
  reopened) for supervisors and the system; the service sets ``WorkOrder.escalated`` and appends
  the event. Repeated escalation (二次督办) is allowed; each one is an event.
* **The extension request (延期申请) is a state**, a sub-state of ``accepted``: only one request
  can be pending; ``approve_extension``/``deny_extension`` are legal only while one is, which is
  exactly what the transition table enforces; and the supervisor's queue is a plain
  ``state = 'extension_requested'`` query. Both decisions go back to ``accepted`` (approval also
  moves the deadline, which the service computes). The department keeps working meanwhile and may
  ``reply`` directly, which drops the pending request. Code that counts "in progress" orders must
  use :data:`AT_DEPARTMENT` rather than ``state == 'accepted'``.
* ``reopened`` waits for the same department to accept again (a new sign-for clock), so that a
  reopened order is visible as such in the department's inbox; ``reopen`` keeps the department,
  ``redispatch`` (改派) changes it.
* The return action is stored and accepted as ``"return"`` (``Action.RETURN``), not ``"return_"``:
  the trailing underscore is only a Python-identifier workaround and has no place in the API.
* **Answering at intake (直接办结) is its own action**, ``answer``: ``received -> closed`` for an
  agent who answered a consultation on the line (the answer and the knowledge article used are
  the event's data). The order is stored first like every appeal, never routed, and gets its
  callback like any closed order. It has no department: reopened after an unsatisfied callback,
  it goes on to the review queue (``reopened --send_to_review--> review``) for an agent to
  dispatch, like a new appeal.
* Illegal transitions raise :class:`~router.errors.Conflict` (409) naming the current state and the
  action; a legal transition by the wrong role raises :class:`~router.errors.Forbidden` (403);
  unknown state, action or role names raise :class:`~router.errors.InvalidInput` (400).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from router.calendar import DEFAULT_CALENDAR, DeadlineUnit, WorkingCalendar
from router.errors import Conflict, Forbidden, InvalidInput

__all__ = [
    "AT_DEPARTMENT",
    "DEFAULT_POLICY",
    "FINAL_STATES",
    "REASON_REQUIRED",
    "RULES",
    "USER_ROLES",
    "WORKFLOW_ROLES",
    "Action",
    "CallbackDecision",
    "CallbackOutcome",
    "DeadlineStatus",
    "Event",
    "Role",
    "Rule",
    "State",
    "WorkflowPolicy",
    "accept_deadline",
    "allowed_actions",
    "check_extension_request",
    "check_return_window",
    "deadline_status",
    "decide_callback",
    "perform",
    "receive_event",
    "return_deadline",
    "should_escalate_after_return",
    "transition",
]


class State(StrEnum):
    RECEIVED = "received"
    REVIEW = "review"
    DISPATCHED = "dispatched"
    ACCEPTED = "accepted"
    EXTENSION_REQUESTED = "extension_requested"
    RETURNED = "returned"
    REPLIED = "replied"
    CLOSED = "closed"
    CALLBACK_DONE = "callback_done"
    REOPENED = "reopened"
    MERGED = "merged"


class Role(StrEnum):
    """Who acts: the one role vocabulary of the product (accounts, API, pages, workflow)."""

    AGENT = "agent"  # hotline centre staff (话务员/派单员)
    DEPARTMENT = "department"  # the department the order is dispatched to; sees only its orders
    SUPERVISOR = "supervisor"  # centre supervisor: extensions, escalation, reassignment, audit
    ADMIN = "admin"  # accounts, API keys, exports with personal data; no work-order actions
    SYSTEM = "system"  # automatic routing, deadline scanner, callback robot


USER_ROLES: tuple[Role, ...] = (Role.AGENT, Role.DEPARTMENT, Role.SUPERVISOR, Role.ADMIN)
"""The roles an account can have."""
WORKFLOW_ROLES: tuple[Role, ...] = (Role.AGENT, Role.DEPARTMENT, Role.SUPERVISOR, Role.SYSTEM)
"""The roles the state machine knows (an admin performs no lifecycle action)."""


class Action(StrEnum):
    RECEIVE = "receive"  # creation event only; not a transition
    TRIAGE_AUTO = "triage_auto"
    SEND_TO_REVIEW = "send_to_review"
    DISPATCH = "dispatch"
    REDISPATCH = "redispatch"
    ACCEPT = "accept"
    RETURN = "return"
    REQUEST_EXTENSION = "request_extension"
    APPROVE_EXTENSION = "approve_extension"
    DENY_EXTENSION = "deny_extension"
    REPLY = "reply"
    REJECT_REPLY = "reject_reply"
    CLOSE = "close"
    ANSWER = "answer"  # 直接办结: a consultation answered and closed at intake
    RECORD_CALLBACK = "record_callback"
    REOPEN = "reopen"
    MERGE = "merge"
    UNMERGE = "unmerge"
    ESCALATE = "escalate"


AT_DEPARTMENT: frozenset[State] = frozenset(
    {State.DISPATCHED, State.ACCEPTED, State.EXTENSION_REQUESTED, State.REOPENED}
)
"""States in which the department is expected to act and its deadlines run."""

FINAL_STATES: frozenset[State] = frozenset({State.CALLBACK_DONE, State.MERGED})
"""States with no further work (a supervisor may still reopen or unmerge)."""

REASON_REQUIRED: frozenset[Action] = frozenset(
    {
        Action.RETURN,
        Action.REQUEST_EXTENSION,
        Action.DENY_EXTENSION,
        Action.REJECT_REPLY,
        Action.REOPEN,
        Action.ESCALATE,
    }
)
"""Actions that :func:`perform` refuses without a reason: the other party must be told why."""


@dataclass(frozen=True)
class Rule:
    """``action`` moves an order from any of ``sources`` to ``target`` if done by one of ``roles``.

    ``target`` None means the state does not change (escalation).
    """

    action: Action
    sources: frozenset[State]
    target: State | None
    roles: frozenset[Role]


def _rule(action: Action, sources: Iterable[State], target: State | None, *roles: Role) -> Rule:
    return Rule(action, frozenset(sources), target, frozenset(roles))


S, R, A = State, Role, Action

RULES: tuple[Rule, ...] = (
    _rule(A.TRIAGE_AUTO, [S.RECEIVED], S.DISPATCHED, R.SYSTEM),
    _rule(A.SEND_TO_REVIEW, [S.RECEIVED, S.RETURNED], S.REVIEW, R.SYSTEM, R.AGENT),
    # A reopened order no department ever had (answered at intake, 直接办结) waits for dispatch.
    _rule(A.SEND_TO_REVIEW, [S.REOPENED], S.REVIEW, R.SYSTEM),
    _rule(A.DISPATCH, [S.RECEIVED, S.REVIEW], S.DISPATCHED, R.AGENT, R.SUPERVISOR),
    _rule(A.REDISPATCH, [S.DISPATCHED, S.RETURNED], S.DISPATCHED, R.AGENT, R.SUPERVISOR),
    # Taking an order away from a department that already accepted it is a supervisor's call.
    _rule(
        A.REDISPATCH,
        [S.ACCEPTED, S.EXTENSION_REQUESTED, S.REOPENED],
        S.DISPATCHED,
        R.SUPERVISOR,
    ),
    _rule(A.ACCEPT, [S.DISPATCHED, S.REOPENED], S.ACCEPTED, R.DEPARTMENT),
    # Whether a return is still in time is policy (check_return_window), not topology.
    _rule(A.RETURN, [S.DISPATCHED, S.ACCEPTED], S.RETURNED, R.DEPARTMENT),
    _rule(A.REQUEST_EXTENSION, [S.ACCEPTED], S.EXTENSION_REQUESTED, R.DEPARTMENT),
    _rule(A.APPROVE_EXTENSION, [S.EXTENSION_REQUESTED], S.ACCEPTED, R.SUPERVISOR),
    _rule(A.DENY_EXTENSION, [S.EXTENSION_REQUESTED], S.ACCEPTED, R.SUPERVISOR),
    _rule(A.REPLY, [S.ACCEPTED, S.EXTENSION_REQUESTED], S.REPLIED, R.DEPARTMENT),
    _rule(A.REJECT_REPLY, [S.REPLIED], S.ACCEPTED, R.AGENT, R.SUPERVISOR),
    _rule(A.CLOSE, [S.REPLIED], S.CLOSED, R.AGENT, R.SUPERVISOR, R.SYSTEM),
    _rule(A.ANSWER, [S.RECEIVED], S.CLOSED, R.AGENT, R.SUPERVISOR),
    _rule(A.RECORD_CALLBACK, [S.CLOSED], S.CALLBACK_DONE, R.AGENT, R.SYSTEM),
    _rule(A.REOPEN, [S.CLOSED], S.REOPENED, R.AGENT, R.SUPERVISOR, R.SYSTEM),
    # A citizen who calls again after the callback: only a supervisor reopens a final order.
    _rule(A.REOPEN, [S.CALLBACK_DONE], S.REOPENED, R.SUPERVISOR),
    _rule(
        A.MERGE,
        [S.RECEIVED, S.REVIEW, S.DISPATCHED, S.RETURNED],
        S.MERGED,
        R.AGENT,
        R.SUPERVISOR,
    ),
    # Duplicate detection may merge automatically, but only before anybody has seen the order.
    _rule(A.MERGE, [S.RECEIVED], S.MERGED, R.SYSTEM),
    _rule(A.UNMERGE, [S.MERGED], S.REVIEW, R.AGENT, R.SUPERVISOR),
    _rule(
        A.ESCALATE,
        [S.REVIEW, S.DISPATCHED, S.ACCEPTED, S.EXTENSION_REQUESTED, S.RETURNED, S.REOPENED],
        None,
        R.SUPERVISOR,
        R.SYSTEM,
    ),
)
"""The whole transition table; a (state, action) pair has at most one target, roles may differ
per source state (several rules per action)."""


def _index(rules: Iterable[Rule]) -> dict[tuple[State, Action], tuple[State | None, set[Role]]]:
    index: dict[tuple[State, Action], tuple[State | None, set[Role]]] = {}
    for rule in rules:
        for source in rule.sources:
            target, roles = index.setdefault((source, rule.action), (rule.target, set()))
            if target != rule.target:
                raise AssertionError(f"{rule.action} from {source} has two targets")
            roles.update(rule.roles)
    return index


_INDEX = _index(RULES)

_PHRASES: dict[Action, str] = {
    A.RECEIVE: "receive",
    A.TRIAGE_AUTO: "auto-dispatch",
    A.SEND_TO_REVIEW: "send to review",
    A.DISPATCH: "dispatch",
    A.REDISPATCH: "redispatch",
    A.ACCEPT: "accept",
    A.RETURN: "return",
    A.REQUEST_EXTENSION: "request an extension for",
    A.APPROVE_EXTENSION: "approve an extension for",
    A.DENY_EXTENSION: "deny an extension for",
    A.REPLY: "reply to",
    A.REJECT_REPLY: "reject the reply to",
    A.CLOSE: "close",
    A.ANSWER: "answer at intake",
    A.RECORD_CALLBACK: "record a callback for",
    A.REOPEN: "reopen",
    A.MERGE: "merge",
    A.UNMERGE: "unmerge",
    A.ESCALATE: "escalate",
}

del S, R, A  # short aliases for the tables above only

_E = TypeVar("_E", bound=StrEnum)


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value


def _parse(kind: type[_E], value: str, what: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise InvalidInput(f"unknown {what} {value!r}; expected one of: {allowed}") from None


def transition(current_state: str, action: str, *, role: str) -> State:
    """The state a work order in ``current_state`` moves to when ``role`` performs ``action``.

    Raises:
        Conflict: the action is not possible in this state, e.g.
            ``cannot accept a work order in state 'closed'``; ``extra`` holds ``current_state``
            and ``action``.
        Forbidden: the action is possible but not for this role.
        InvalidInput: an unknown state, action or role name.
    """
    state = _parse(State, current_state, "state")
    act = _parse(Action, action, "action")
    who = _parse(Role, role, "role")
    found = _INDEX.get((state, act))
    if found is None:
        raise Conflict(
            f"cannot {_PHRASES[act]} a work order in state '{state}'",
            current_state=state.value,
            action=act.value,
        )
    target, roles = found
    if who not in roles:
        allowed = ", ".join(sorted(roles))
        raise Forbidden(
            f"role '{who}' may not {_PHRASES[act]} a work order in state '{state}'"
            f" (allowed: {allowed})",
            current_state=state.value,
            action=act.value,
            role=who.value,
        )
    return state if target is None else target


def allowed_actions(state: str, role: str) -> list[Action]:
    """Actions ``role`` may perform on an order in ``state``, in :class:`Action` order."""
    current = _parse(State, state, "state")
    who = _parse(Role, role, "role")
    return [
        act
        for act in Action
        if (found := _INDEX.get((current, act))) is not None and who in found[1]
    ]


@dataclass(frozen=True, kw_only=True)
class Event:
    """One entry of a work order's append-only history (``WorkOrderEvent``): who, when, why.

    ``from_state`` is None only for the creation event (:func:`receive_event`). ``data`` carries
    action details the persistence layer stores as JSON: department codes, the master order id of
    a merge, the new deadline of an approved extension, the callback outcome.
    """

    actor: str
    role: Role
    action: Action
    from_state: State | None
    to_state: State
    at: datetime
    reason: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.actor:
            raise InvalidInput("an event needs an actor")
        _aware(self.at, "at")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (enum values as plain strings, ``at`` in ISO 8601)."""
        return {
            "actor": self.actor,
            "role": self.role.value,
            "action": self.action.value,
            "from_state": None if self.from_state is None else self.from_state.value,
            "to_state": self.to_state.value,
            "reason": self.reason,
            "at": self.at.isoformat(),
            "data": dict(self.data),
        }


def perform(
    current_state: str,
    action: str,
    *,
    actor: str,
    role: str,
    at: datetime,
    reason: str = "",
    data: Mapping[str, Any] | None = None,
) -> Event:
    """Check the transition and return the event to append; ``event.to_state`` is the new state.

    Raises what :func:`transition` raises, and InvalidInput when an action of
    :data:`REASON_REQUIRED` comes without a reason.
    """
    to_state = transition(current_state, action, role=role)
    act = Action(action)
    reason = reason.strip()
    if act in REASON_REQUIRED and not reason:
        raise InvalidInput(
            f"a reason is required to {_PHRASES[act]} a work order", action=act.value
        )
    return Event(
        actor=actor,
        role=Role(role),
        action=act,
        from_state=State(current_state),
        to_state=to_state,
        at=at,
        reason=reason,
        data=dict(data or {}),
    )


def receive_event(
    *, actor: str, role: str, at: datetime, data: Mapping[str, Any] | None = None
) -> Event:
    """The creation event of a new order (``None -> received``), by the system or an agent."""
    who = _parse(Role, role, "role")
    if who not in (Role.SYSTEM, Role.AGENT):
        raise Forbidden(f"role '{who}' may not receive an appeal", role=who.value)
    return Event(
        actor=actor,
        role=who,
        action=Action.RECEIVE,
        from_state=None,
        to_state=State.RECEIVED,
        at=at,
        data=dict(data or {}),
    )


# -- policy -------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class WorkflowPolicy:
    """Lifecycle rules a centre configures; the defaults are common 12345 practice.

    Attributes:
        accept_within_working_hours: sign-for (签收) deadline after dispatch.
        return_window_working_hours: a department may return (退单) an order only within this
            much working time after dispatch; later it must handle it or ask a supervisor.
        escalate_after_returns: this many returns of one order escalate it (departments passing
            an order back and forth is what 督办 is for).
        max_extension_requests: extension requests (延期申请) allowed per order, approved or not,
            so that a denied department cannot ask again and again; 0 disables extensions.
        warning_share: share of the allowed time after which a deadline warning is raised.
        max_callback_attempts: callback (回访) calls before an unreachable citizen's callback is
            closed as unreachable.
        escalate_unsatisfied_callback: whether an unsatisfied callback also escalates the
            reopened order.
    """

    accept_within_working_hours: float = 2.0
    return_window_working_hours: float = 4.0
    escalate_after_returns: int = 2
    max_extension_requests: int = 1
    warning_share: float = 0.8
    max_callback_attempts: int = 3
    escalate_unsatisfied_callback: bool = True

    def __post_init__(self) -> None:
        if self.accept_within_working_hours <= 0:
            raise ValueError("accept_within_working_hours must be positive")
        if self.return_window_working_hours < 0:
            raise ValueError("return_window_working_hours must not be negative")
        if self.escalate_after_returns < 1:
            raise ValueError("escalate_after_returns must be at least 1")
        if self.max_extension_requests < 0:
            raise ValueError("max_extension_requests must not be negative")
        if not 0 < self.warning_share < 1:
            raise ValueError("warning_share must be between 0 and 1")
        if self.max_callback_attempts < 1:
            raise ValueError("max_callback_attempts must be at least 1")


DEFAULT_POLICY = WorkflowPolicy()


def accept_deadline(
    dispatched_at: datetime,
    *,
    policy: WorkflowPolicy = DEFAULT_POLICY,
    calendar: WorkingCalendar = DEFAULT_CALENDAR,
) -> datetime:
    """When the department must have accepted an order dispatched at ``dispatched_at``."""
    return calendar.add_working_hours(dispatched_at, policy.accept_within_working_hours)


def return_deadline(
    dispatched_at: datetime,
    *,
    policy: WorkflowPolicy = DEFAULT_POLICY,
    calendar: WorkingCalendar = DEFAULT_CALENDAR,
) -> datetime:
    """The last instant at which the department may still return the order."""
    return calendar.add_working_hours(dispatched_at, policy.return_window_working_hours)


def check_return_window(
    dispatched_at: datetime,
    now: datetime,
    *,
    policy: WorkflowPolicy = DEFAULT_POLICY,
    calendar: WorkingCalendar = DEFAULT_CALENDAR,
) -> None:
    """Raise Conflict if a return at ``now`` is too late (the deadline itself is still in time)."""
    closes = return_deadline(dispatched_at, policy=policy, calendar=calendar)
    if _aware(now, "now") > closes:
        raise Conflict(
            f"the return window closed at {closes.isoformat()}"
            f" ({policy.return_window_working_hours:g} working hours after dispatch)",
            action=Action.RETURN.value,
            window_closed_at=closes.isoformat(),
        )


def should_escalate_after_return(
    return_count: int, *, policy: WorkflowPolicy = DEFAULT_POLICY
) -> bool:
    """Whether an order returned ``return_count`` times (this return included) is escalated."""
    if return_count < 1:
        raise ValueError(f"return_count counts this return too, got {return_count}")
    return return_count >= policy.escalate_after_returns


def check_extension_request(
    requests_so_far: int, *, policy: WorkflowPolicy = DEFAULT_POLICY
) -> None:
    """Raise Conflict if the order already had its quota of extension requests."""
    if requests_so_far < 0:
        raise ValueError(f"requests_so_far must not be negative, got {requests_so_far}")
    if requests_so_far >= policy.max_extension_requests:
        raise Conflict(
            f"the extension limit of {policy.max_extension_requests} per work order is reached",
            action=Action.REQUEST_EXTENSION.value,
            limit=policy.max_extension_requests,
        )


class DeadlineStatus(StrEnum):
    OK = "ok"
    WARNING = "warning"
    OVERDUE = "overdue"


def deadline_status(
    start: datetime,
    deadline: datetime,
    now: datetime,
    *,
    unit: str = DeadlineUnit.WORKING_DAYS,
    policy: WorkflowPolicy = DEFAULT_POLICY,
    calendar: WorkingCalendar = DEFAULT_CALENDAR,
) -> DeadlineStatus:
    """``overdue`` after the deadline, ``warning`` once ``policy.warning_share`` of the allowed
    (working) time is used, else ``ok``."""
    share = calendar.elapsed_share(start, deadline, now, unit=unit)
    if _aware(now, "now") > _aware(deadline, "deadline"):
        return DeadlineStatus.OVERDUE
    if share >= policy.warning_share:
        return DeadlineStatus.WARNING
    return DeadlineStatus.OK


class CallbackOutcome(StrEnum):
    SATISFIED = "satisfied"
    BASICALLY_SATISFIED = "basically_satisfied"
    UNSATISFIED = "unsatisfied"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class CallbackDecision:
    """What to do after a callback attempt: ``actions`` to perform in order, or ``retry`` later
    (at :meth:`WorkingCalendar.next_calling_time`)."""

    actions: tuple[Action, ...]
    retry: bool
    reason: str


def decide_callback(
    outcome: str, *, attempts: int, policy: WorkflowPolicy = DEFAULT_POLICY
) -> CallbackDecision:
    """Turn a callback result into lifecycle actions on a ``closed`` order.

    ``attempts`` counts the calls made so far, this one included. Satisfied -> record the
    callback. Unsatisfied -> reopen to the same department (and escalate, by default).
    Unreachable -> retry until ``policy.max_callback_attempts`` calls, then record the callback
    as unreachable.
    """
    result = _parse(CallbackOutcome, outcome, "callback outcome")
    if attempts < 1:
        raise ValueError(f"attempts counts this call too, got {attempts}")
    if result in (CallbackOutcome.SATISFIED, CallbackOutcome.BASICALLY_SATISFIED):
        return CallbackDecision((Action.RECORD_CALLBACK,), retry=False, reason=f"citizen {result}")
    if result is CallbackOutcome.UNSATISFIED:
        actions = (
            (Action.REOPEN, Action.ESCALATE)
            if policy.escalate_unsatisfied_callback
            else (Action.REOPEN,)
        )
        return CallbackDecision(actions, retry=False, reason="citizen unsatisfied with the reply")
    if attempts < policy.max_callback_attempts:
        return CallbackDecision((), retry=True, reason=f"unreachable (attempt {attempts})")
    return CallbackDecision(
        (Action.RECORD_CALLBACK,),
        retry=False,
        reason=f"unreachable after {attempts} attempts",
    )
