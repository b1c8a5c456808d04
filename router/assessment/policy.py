"""The assessment's configurable rules: which rates a score weighs, their weights, the red and
yellow thresholds and the repeat window. Pure and dependency-free, so that the service's settings
can validate them at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_WEIGHTS", "SCORED", "AssessmentPolicy"]

SCORED = (
    "accept_on_time_rate",
    "closure_on_time_rate",
    "satisfaction_rate",
    "unjustified_return_rate",
    "extension_rate",
    "repeat_rate",
    "escalation_rate",
)
"""The rates a score weighs; the first three count for, the others against the unit."""
_HIGHER_IS_BETTER = frozenset(SCORED[:3])

DEFAULT_WEIGHTS: Mapping[str, float] = {
    "accept_on_time_rate": 10,
    "closure_on_time_rate": 25,
    "satisfaction_rate": 30,
    "unjustified_return_rate": 10,
    "extension_rate": 5,
    "repeat_rate": 10,
    "escalation_rate": 10,
}


@dataclass(frozen=True, kw_only=True)
class AssessmentPolicy:
    """Weights and thresholds a centre configures (``HOTLINE_ASSESSMENT_*``).

    Attributes:
        weights: weight of each rate of :data:`SCORED` (missing ones weigh 0); a unit's score is
            the weighted mean of the rates it has, as 0..100 points.
        red_below: a score below this puts the unit on the red list (红牌).
        yellow_below: below this (and not red): the yellow list (黄牌).
        repeat_window_days: an appeal this many days after a closure is a repeat (重复诉求).
    """

    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    red_below: float = 80.0
    yellow_below: float = 90.0
    repeat_window_days: int = 30

    def __post_init__(self) -> None:
        unknown = sorted(set(self.weights) - set(SCORED))
        if unknown:
            raise ValueError(
                f"unknown assessment weight(s) {', '.join(unknown)}; known: {', '.join(SCORED)}"
            )
        if any(not 0 <= float(value) <= 1000 for value in self.weights.values()):
            raise ValueError("assessment weights must be between 0 and 1000")
        if sum(float(value) for value in self.weights.values()) <= 0:
            raise ValueError("at least one assessment weight must be positive")
        if not 0 <= self.red_below <= self.yellow_below <= 100:
            raise ValueError("thresholds must satisfy 0 <= red_below <= yellow_below <= 100")
        if not 1 <= self.repeat_window_days <= 366:
            raise ValueError("repeat_window_days must be between 1 and 366")

    def to_dict(self) -> dict[str, Any]:
        return {
            "weights": {name: float(self.weights.get(name, 0)) for name in SCORED},
            "red_below": self.red_below,
            "yellow_below": self.yellow_below,
            "repeat_window_days": self.repeat_window_days,
        }
