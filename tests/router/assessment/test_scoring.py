"""The pure scoring rules: policy validation, the weighted score, ranking and the trend."""

from __future__ import annotations

import pytest

from router.assessment.scoring import (
    AssessmentPolicy,
    level_of,
    rank,
    score_of,
    trend_of,
)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weights": {"speed": 1}}, "unknown assessment weight"),
        ({"weights": {"satisfaction_rate": -1}}, "between 0 and 1000"),
        ({"weights": {"satisfaction_rate": 0}}, "at least one"),
        ({"red_below": 95, "yellow_below": 90}, "red_below <= yellow_below"),
        ({"repeat_window_days": 0}, "repeat_window_days"),
    ],
)
def test_a_bad_policy_is_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AssessmentPolicy(**kwargs)  # type: ignore[arg-type]


def test_a_rate_without_data_drops_out_with_its_weight() -> None:
    policy = AssessmentPolicy(weights={"satisfaction_rate": 3, "repeat_rate": 1})
    # 80 points * 3 + (1 - 0.4) * 100 points * 1 over 4
    assert score_of({"satisfaction_rate": 0.8, "repeat_rate": 0.4}, policy) == 75.0
    assert score_of({"satisfaction_rate": None, "repeat_rate": 0.4}, policy) == 60.0
    assert score_of({"satisfaction_rate": None, "repeat_rate": None}, policy) is None


def test_ranking_shares_a_rank_on_equal_scores_and_skips_units_without_one() -> None:
    assert rank({"a": 90.0, "b": 95.0, "c": 90.0, "d": 70.0, "e": None}) == {
        "b": 1,
        "a": 2,
        "c": 2,
        "d": 4,
        "e": None,
    }


def test_levels_and_trends() -> None:
    policy = AssessmentPolicy(red_below=80, yellow_below=90)
    assert [level_of(s, policy) for s in (79.99, 80, 89.99, 90, None)] == [
        "red",
        "yellow",
        "yellow",
        "green",
        None,
    ]
    assert [trend_of(2, 1), trend_of(1, 2), trend_of(1, 1), trend_of(None, 1)] == [
        "up",
        "down",
        "flat",
        None,
    ]
