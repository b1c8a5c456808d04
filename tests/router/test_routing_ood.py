"""Routing of texts the classifier's out-of-distribution gate flagged: never auto-dispatched."""

from __future__ import annotations

import pytest

from classifier import Suggestion
from router.catalogue import Catalogue, Category, Department
from router.routing import RoutingPolicy, route

LEAF = "城乡建设/市政设施/路灯维修"


def catalogue() -> Catalogue:
    categories = [
        Category("01", "城乡建设", 1, None, ("城乡建设",), "HOUSING"),
        Category("0101", "市政设施", 2, "01", ("城乡建设", "市政设施"), "HOUSING"),
        Category(
            "010101",
            "路灯维修",
            3,
            "0101",
            tuple(LEAF.split("/")),
            "LIGHTING",
            deadline_value=5,
        ),
    ]
    departments = [
        Department("HOUSING", "市住房和城乡建设局", "city", None),
        Department("LIGHTING", "市路灯管理处", "city", None),
    ]
    return Catalogue(categories, departments)


def suggestion(confidence: float, ood: tuple[str, ...] = ()) -> Suggestion:
    return Suggestion(
        label=LEAF,
        confidence=confidence,
        alternatives=[(LEAF, confidence)],
        levels=[("城乡建设", 1.0), ("城乡建设/市政设施", 1.0), (LEAF, confidence)],
        ood=ood,
    )


def test_a_confident_in_distribution_suggestion_is_dispatched() -> None:
    decision = route(catalogue=catalogue(), suggestion=suggestion(0.99), text="路灯坏了半个月")
    assert decision.auto_dispatch
    assert decision.ood == ()
    assert decision.to_dict()["ood"] == []


@pytest.mark.parametrize(
    "flags",
    [("no_chinese", "unknown_words"), ("too_short",), ("repeated",), ("unknown_words",)],
)
def test_a_flagged_suggestion_is_never_dispatched_however_confident(
    flags: tuple[str, ...],
) -> None:
    policy = RoutingPolicy(auto_dispatch_threshold=0.0)
    decision = route(
        catalogue=catalogue(), suggestion=suggestion(1.0, flags), text="x", policy=policy
    )
    assert not decision.auto_dispatch
    # the category and department are still proposed, for the agent who reviews it
    assert decision.category_code == "010101"
    assert decision.department_code == "LIGHTING"
    assert decision.ood == flags
    assert decision.to_dict()["ood"] == list(flags)


def test_suggestions_built_without_the_gate_are_judged_as_before() -> None:
    # Suggestion's `ood` defaults to no flags: callers that predate the gate keep working.
    plain = Suggestion(label=LEAF, confidence=0.95, alternatives=[], levels=[])
    assert plain.ood == ()
    assert route(catalogue=catalogue(), suggestion=plain, text="路灯坏了").auto_dispatch
