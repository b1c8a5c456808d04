"""Routing policy: the department chosen among catalogue, jurisdiction and the learned model by
their measured precision, and predictions that stop above the leaves."""

from __future__ import annotations

import pytest

from classifier import Suggestion
from router.catalogue import Catalogue, default_catalogue
from router.routing import (
    MEASURED_PRECISION,
    RoutingPolicy,
    SourcePrecision,
    route,
)


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return default_catalogue()


def _suggestion(
    label: str, confidence: float = 0.97, department: tuple[str, float] | None = None
) -> Suggestion:
    return Suggestion(
        label=label,
        confidence=confidence,
        alternatives=[(label, confidence)],
        levels=[(label, confidence)],
        department=department,
    )


def _path(catalogue: Catalogue, name: str) -> str:
    leaf = catalogue.resolve_label(name)
    assert leaf is not None, name
    return leaf.path_text


def _place_text(catalogue: Catalogue) -> tuple[str, str]:
    place = catalogue.places[0]
    return f"我住在{place.name}附近，", place.street_code


def test_a_level_1_prediction_routes_to_the_level_1_lead_but_is_never_auto_dispatched(
    catalogue: Catalogue,
) -> None:
    decision = route(
        catalogue=catalogue, suggestion=_suggestion("城乡建设", 0.99), text="小区门口的路坏了"
    )
    assert decision.category_path == "城乡建设"
    assert decision.department_code == catalogue.category_or_raise("01").lead_department
    assert decision.department_code is not None
    assert decision.department_source == "catalogue"
    assert decision.auto_dispatch is False


def test_a_level_2_prediction_routes_to_its_own_lead(catalogue: Catalogue) -> None:
    decision = route(
        catalogue=catalogue, suggestion=_suggestion("政法/交通管理", 0.99), text="路口乱停车"
    )
    assert decision.department_code == "traffic_police"
    assert decision.auto_dispatch is False


def test_every_level_1_group_routes_somewhere(catalogue: Catalogue) -> None:
    for group in catalogue.children(None):
        decision = route(catalogue=catalogue, suggestion=_suggestion(group.name), text="反映问题")
        assert decision.department_code in catalogue.departments, group.name


def test_an_unknown_label_routes_nowhere_and_waits_for_review(catalogue: Catalogue) -> None:
    decision = route(catalogue=catalogue, suggestion=_suggestion("不存在的分类"), text="你好")
    assert decision.department_code is None
    assert decision.department_source == "none"
    assert decision.auto_dispatch is False


def test_a_confident_leaf_is_auto_dispatched_to_its_lead(catalogue: Catalogue) -> None:
    decision = route(
        catalogue=catalogue,
        suggestion=_suggestion(_path(catalogue, "交通信号灯异常"), 0.97),
        text="路口的红绿灯坏了",
    )
    assert decision.department_code == "traffic_police"
    assert decision.auto_dispatch is True


def test_the_model_wins_only_where_its_measured_precision_beats_the_catalogue(
    catalogue: Catalogue,
) -> None:
    measured = SourcePrecision(catalogue=0.6, jurisdiction=0.3, model=((0.5, 0.4), (0.9, 0.8)))
    policy = RoutingPolicy(department_precision=measured)
    path = _path(catalogue, "拖欠工程款")
    sure = route(
        catalogue=catalogue,
        suggestion=_suggestion(path, department=("hrss", 0.95)),
        text="工程款一直拖欠",
        policy=policy,
    )
    assert (sure.department_code, sure.department_source) == ("hrss", "model")
    unsure = route(
        catalogue=catalogue,
        suggestion=_suggestion(path, department=("hrss", 0.7)),
        text="工程款一直拖欠",
        policy=policy,
    )
    assert (unsure.department_code, unsure.department_source) == ("housing", "catalogue")


def test_the_model_below_its_threshold_is_ignored_whatever_the_figures(
    catalogue: Catalogue,
) -> None:
    measured = SourcePrecision(catalogue=0.1, jurisdiction=0.1, model=((0.0, 0.9),))
    policy = RoutingPolicy(department_precision=measured, department_model_threshold=0.6)
    decision = route(
        catalogue=catalogue,
        suggestion=_suggestion(_path(catalogue, "路灯异常"), department=("veterans", 0.55)),
        text="路灯不亮",
        policy=policy,
    )
    assert decision.department_code == "street_lighting"


def test_a_model_that_agrees_with_the_catalogue_counts_as_the_catalogue(
    catalogue: Catalogue,
) -> None:
    measured = SourcePrecision(catalogue=0.2, jurisdiction=0.1, model=((0.0, 0.9),))
    decision = route(
        catalogue=catalogue,
        suggestion=_suggestion(_path(catalogue, "路灯异常"), department=("street_lighting", 0.99)),
        text="路灯不亮",
        policy=RoutingPolicy(department_precision=measured),
    )
    assert decision.department_source == "catalogue"


@pytest.mark.parametrize(("jurisdiction", "expected"), [(0.9, "jurisdiction"), (0.2, "catalogue")])
def test_jurisdiction_wins_for_a_local_matter_only_when_measured_better(
    catalogue: Catalogue, jurisdiction: float, expected: str
) -> None:
    measured = SourcePrecision(catalogue=0.5, jurisdiction=jurisdiction, model=())
    prefix, street = _place_text(catalogue)
    leaf = catalogue.resolve_label("占道经营")
    assert leaf is not None and leaf.handling_scope == "local"
    decision = route(
        catalogue=catalogue,
        suggestion=_suggestion(leaf.path_text),
        text=prefix + "门口天天有人占道经营",
        policy=RoutingPolicy(department_precision=measured),
    )
    assert decision.department_source == expected
    assert decision.department_code == (street if expected == "jurisdiction" else "urban_mgmt")


def test_jurisdiction_never_applies_to_a_city_wide_matter(catalogue: Catalogue) -> None:
    measured = SourcePrecision(catalogue=0.1, jurisdiction=0.9, model=())
    prefix, _street = _place_text(catalogue)
    decision = route(
        catalogue=catalogue,
        suggestion=_suggestion(_path(catalogue, "河道污染")),
        text=prefix + "河道发黑发臭",
        policy=RoutingPolicy(department_precision=measured),
    )
    assert decision.department_code == "river_mgmt"


def test_measured_figures_are_probabilities_and_the_model_bands_ascend() -> None:
    figures = [MEASURED_PRECISION.catalogue, MEASURED_PRECISION.jurisdiction]
    figures += [p for _low, p in MEASURED_PRECISION.model]
    assert all(0.0 <= f <= 1.0 for f in figures)
    lows = [low for low, _p in MEASURED_PRECISION.model]
    assert lows == sorted(lows)
    assert SourcePrecision(catalogue=0, jurisdiction=0, model=((0.5, 0.7),)).model_at(0.4) == 0.0


def _two_paths(catalogue: Catalogue, first: str, second: str, p1: float, p2: float) -> Suggestion:
    a, b = _path(catalogue, first), _path(catalogue, second)
    return Suggestion(label=a, confidence=p1, alternatives=[(a, p1), (b, p2)], levels=[(a, p1)])


def _sibling_with_the_same_lead(catalogue: Catalogue, name: str) -> str:
    leaf = catalogue.resolve_label(name)
    assert leaf is not None and leaf.parent_code is not None
    lead = catalogue.responsible_department(leaf.code)
    for sibling in catalogue.children(leaf.parent_code):
        if sibling.code != leaf.code and catalogue.responsible_department(sibling.code) == lead:
            return sibling.name
    raise AssertionError(f"no sibling of {name} shares its lead")


def test_paths_that_lead_to_the_same_department_add_up_to_its_confidence(
    catalogue: Catalogue,
) -> None:
    sibling = _sibling_with_the_same_lead(catalogue, "路灯异常")
    decision = route(
        catalogue=catalogue,
        suggestion=_two_paths(catalogue, "路灯异常", sibling, 0.55, 0.35),
        text="路灯不亮",
        policy=RoutingPolicy(auto_dispatch_threshold=0.85),
    )
    assert decision.department_code == "street_lighting"
    assert decision.department_confidence == pytest.approx(0.90)
    assert decision.to_dict()["department_confidence"] == pytest.approx(0.90)
    assert decision.auto_dispatch is True


def test_a_path_to_another_department_does_not_count(catalogue: Catalogue) -> None:
    decision = route(
        catalogue=catalogue,
        suggestion=_two_paths(catalogue, "路灯异常", "交通信号灯异常", 0.55, 0.35),
        text="路灯不亮",
        policy=RoutingPolicy(auto_dispatch_threshold=0.85),
    )
    assert decision.department_confidence == pytest.approx(0.55)
    assert decision.auto_dispatch is False


def test_a_department_chosen_by_place_keeps_the_leaf_probability(catalogue: Catalogue) -> None:
    measured = SourcePrecision(catalogue=0.1, jurisdiction=0.9, model=((0.0, 0.1),))
    local = next(leaf for leaf in catalogue.leaves() if leaf.handling_scope == "local")
    sibling = next(
        s for s in catalogue.children(local.parent_code) if s.code != local.code and s.is_leaf
    )
    text, street = _place_text(catalogue)
    suggestion = Suggestion(
        label=local.path_text,
        confidence=0.5,
        alternatives=[(local.path_text, 0.5), (sibling.path_text, 0.45)],
        levels=[(local.path_text, 0.5)],
    )
    decision = route(
        catalogue=catalogue,
        suggestion=suggestion,
        text=text + "问题一直没有解决",
        policy=RoutingPolicy(department_precision=measured),
    )
    assert (decision.department_code, decision.department_source) == (street, "jurisdiction")
    assert decision.department_confidence == pytest.approx(0.5)
