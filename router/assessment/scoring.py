"""The department assessment's (考核) rules: the figures of one unit from its facts, the weighted
score, the ranking, the red/yellow lists and the trend. Pure: no session.

A *fact* is one order's contribution to one figure (an order dispatched on time, a callback
answered "unsatisfied", a return later judged justified...); :mod:`router.assessment.service`
collects them, and both the figures and the drill-down are read off the same facts, so a figure
and the orders behind it cannot disagree. The on-time and satisfaction rates are computed by the
functions the dashboard uses (:func:`router.deadlines.service.on_time_rate`,
:func:`router.statistics.service.satisfaction_rate`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from router.assessment.policy import DEFAULT_WEIGHTS, SCORED, AssessmentPolicy
from router.deadlines.service import OnTime, on_time_rate
from router.statistics.service import satisfaction_rate

__all__ = [
    "DEFAULT_WEIGHTS",
    "SCORED",
    "AssessmentPolicy",
    "Fact",
    "Figure",
    "ReturnRuling",
    "UnitKind",
    "figures_of",
    "level_of",
    "rank",
    "score_of",
    "trend_of",
]


class UnitKind(StrEnum):
    """What a scorecard ranks: departments, or the orders' districts or streets."""

    DEPARTMENT = "department"
    DISTRICT = "district"
    STREET = "street"


class Figure(StrEnum):
    """The figures a drill-down can open (each one a kind of fact)."""

    RECEIVED = "received"  # 受理量
    DISPATCHES = "dispatches"  # 派单量
    ACCEPT = "accept"  # 签收及时率 (the dashboard's 按时派单率)
    CLOSURE = "closure"  # 按时办结率
    SATISFACTION = "satisfaction"  # 满意率
    RETURNS = "returns"  # 退单率
    EXTENSIONS = "extensions"  # 延期率
    REPEATS = "repeats"  # 重复诉求率
    ESCALATIONS = "escalations"  # 督办次数


class ReturnRuling(StrEnum):
    """How the centre ruled on a return (退单), read from the next routing of the order."""

    JUSTIFIED = "justified"  # re-routed to another department: the return was right
    UNJUSTIFIED = "unjustified"  # sent back to the same department
    PENDING = "pending"  # not routed again yet


@dataclass(frozen=True)
class Fact:
    """One order's contribution to one figure of one unit (``unit`` None: no unit known)."""

    figure: Figure
    unit: str | None
    number: str
    outcome: str


def _ratio(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def figures_of(facts: Iterable[Fact]) -> dict[str, Any]:
    """The counts and rates of one unit (or of all) from its facts."""
    by_figure: dict[Figure, list[str]] = {figure: [] for figure in Figure}
    for fact in facts:
        by_figure[fact.figure].append(fact.outcome)
    returns = Counter(by_figure[Figure.RETURNS])
    extensions = Counter(by_figure[Figure.EXTENSIONS])
    repeats = Counter(by_figure[Figure.REPEATS])
    callbacks = Counter(by_figure[Figure.SATISFACTION])
    accept = [OnTime(value) for value in by_figure[Figure.ACCEPT]]
    closure = [OnTime(value) for value in by_figure[Figure.CLOSURE]]
    dispatches = len(by_figure[Figure.DISPATCHES])
    escalations = len(by_figure[Figure.ESCALATIONS])
    not_justified = returns[ReturnRuling.UNJUSTIFIED] + returns[ReturnRuling.PENDING]
    return {
        "received": len(by_figure[Figure.RECEIVED]),
        "dispatches": dispatches,
        "accepted_on_time": accept.count(OnTime.ON_TIME),
        "accepted_late": accept.count(OnTime.LATE),
        "replied_on_time": closure.count(OnTime.ON_TIME),
        "replied_late": closure.count(OnTime.LATE),
        "satisfied": callbacks["satisfied"] + callbacks["basically_satisfied"],
        "answered": callbacks["satisfied"]
        + callbacks["basically_satisfied"]
        + callbacks["unsatisfied"],
        "returns": sum(returns.values()),
        "justified_returns": returns[ReturnRuling.JUSTIFIED],
        "unjustified_returns": returns[ReturnRuling.UNJUSTIFIED],
        "pending_returns": returns[ReturnRuling.PENDING],
        "extended": extensions["extended"],
        "closed": sum(repeats.values()),
        "repeated": repeats["repeated"],
        "escalations": escalations,
        "accept_on_time_rate": on_time_rate(accept),
        "closure_on_time_rate": on_time_rate(closure),
        "satisfaction_rate": satisfaction_rate(by_figure[Figure.SATISFACTION]),
        "return_rate": _ratio(sum(returns.values()), dispatches),
        "unjustified_return_rate": _ratio(not_justified, dispatches),
        "extension_rate": _ratio(extensions["extended"], sum(extensions.values())),
        "repeat_rate": _ratio(repeats["repeated"], sum(repeats.values())),
        "escalation_rate": _ratio(escalations, dispatches),
    }


_HIGHER_IS_BETTER = frozenset(SCORED[:3])


def score_of(figures: Mapping[str, Any], policy: AssessmentPolicy) -> float | None:
    """The weighted mean, in points 0..100, of the scored rates the unit has (a rate that is
    None, nothing to rate, drops out with its weight); None when it has none of them."""
    total = weight_sum = 0.0
    for name in SCORED:
        weight = float(policy.weights.get(name, 0))
        value = figures.get(name)
        if weight <= 0 or value is None:
            continue
        share = min(max(float(value), 0.0), 1.0)
        points = 100 * share if name in _HIGHER_IS_BETTER else 100 * (1 - share)
        total += weight * points
        weight_sum += weight
    return None if weight_sum == 0 else round(total / weight_sum, 2)


def level_of(score: float | None, policy: AssessmentPolicy) -> str | None:
    """'red', 'yellow' or 'green'; None without a score."""
    if score is None:
        return None
    if score < policy.red_below:
        return "red"
    if score < policy.yellow_below:
        return "yellow"
    return "green"


def rank(scores: Mapping[str, float | None]) -> dict[str, int | None]:
    """Competition ranking (1, 2, 2, 4) by score, highest first; None for units without one."""
    scored = {code: value for code, value in scores.items() if value is not None}
    ordered = sorted(scored, key=lambda code: (-scored[code], code))
    ranks: dict[str, int | None] = dict.fromkeys(scores)
    for position, code in enumerate(ordered, start=1):
        previous = ordered[position - 2] if position > 1 else None
        tied = previous is not None and scored[previous] == scored[code]
        ranks[code] = ranks[previous] if tied and previous is not None else position
    return ranks


def trend_of(score: float | None, previous: float | None) -> str | None:
    """'up', 'down' or 'flat' against the previous period; None when either is missing."""
    if score is None or previous is None:
        return None
    if score > previous:
        return "up"
    if score < previous:
        return "down"
    return "flat"
