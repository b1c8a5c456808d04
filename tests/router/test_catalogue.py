"""The shipped reference catalogue: taxonomy, departments and label resolution."""

from __future__ import annotations

from collections import Counter

import pytest

from router.catalogue import APPEAL_TYPES, Catalogue, default_catalogue, load_catalogue
from router.errors import NotFound


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


def test_shipped_data_loads_with_at_least_500_leaves(catalogue: Catalogue) -> None:
    leaves = catalogue.leaves()
    assert len(leaves) >= 500
    assert len({c.code for c in leaves}) == len(leaves)
    assert all(c.is_leaf and c.level == 3 for c in leaves)


def test_every_level_is_present_with_parents_one_level_up(catalogue: Catalogue) -> None:
    levels = Counter(c.level for c in catalogue.categories.values())
    assert levels[1] >= 15 and levels[2] >= 100
    for c in catalogue.categories.values():
        if c.level == 1:
            assert c.parent_code is None
        else:
            parent = catalogue.category_or_raise(c.parent_code or "")
            assert parent.level == c.level - 1
            assert c.path[:-1] == parent.path


def test_every_leaf_has_routing_attributes(catalogue: Catalogue) -> None:
    for leaf in catalogue.leaves():
        assert leaf.lead_department in catalogue.departments, leaf.code
        assert all(d in catalogue.departments for d in leaf.assisting_departments)
        assert leaf.lead_department not in leaf.assisting_departments
        assert leaf.handling_scope in ("city", "local")
        assert leaf.appeal_types and set(leaf.appeal_types) <= set(APPEAL_TYPES)
        assert leaf.deadline_value > 0
        assert leaf.deadline_unit in ("working_days", "hours")
        assert leaf.priority in ("normal", "high", "urgent")
        assert len(leaf.code) <= 16


def test_city_management_gaps_are_covered(catalogue: Catalogue) -> None:
    names = {c.name for c in catalogue.leaves()}
    for needed in (
        "路灯异常",
        "污水井盖异常",
        "机动车乱停放",
        "垃圾站（箱）满溢",
        "噪声扰民",
        "冬季采暖",
        "物业服务",
        "燃气供应",
        "自来水供应",
        "道路破损",
    ):
        assert needed in names


def test_urgent_safety_leaves_are_due_in_hours(catalogue: Catalogue) -> None:
    gas = catalogue.resolve_label("燃气井盖异常")
    assert gas is not None
    assert gas.priority == "urgent" and gas.deadline_unit == "hours"
    assert "燃气泄漏" in gas.urgent_keywords
    assert gas.lead_department == "gas"


def test_normal_consultation_leaves_are_due_sooner_than_reports(catalogue: Catalogue) -> None:
    days: dict[str, list[int]] = {"consultation": [], "report": []}
    for leaf in catalogue.leaves():
        if leaf.priority != "normal" or leaf.deadline_unit != "working_days":
            continue
        if leaf.appeal_types[0] in days:
            days[leaf.appeal_types[0]].append(leaf.deadline_value)
    assert max(days["consultation"]) <= 2
    assert min(days["report"]) >= 5


def test_department_catalogue_has_city_bodies_districts_and_streets(catalogue: Catalogue) -> None:
    kinds = Counter(d.kind for d in catalogue.departments.values())
    assert kinds["city"] + kinds["utility"] + kinds["party"] + kinds["mass_org"] >= 40
    assert len(catalogue.districts()) >= 6
    assert len(catalogue.streets()) >= 40
    names = {d.name for d in catalogue.departments.values()}
    for needed in (
        "市住房和城乡建设局",
        "市城市管理和综合执法局",
        "市公安局",
        "市医疗保障局",
        "国网A市供电公司",
        "A市燃气有限公司",
        "A市热力有限公司",
        "A市供水有限公司",
    ):
        assert needed in names
    for street in catalogue.streets():
        district = catalogue.department(street.parent_code or "")
        assert district is not None and district.kind == "district"
        assert street.name.startswith(district.name)
    assert all(d.delivery == "queue" or d.webhook_url for d in catalogue.departments.values())


@pytest.mark.parametrize(
    ("label", "expected_code"),
    [
        ("010208", "010208"),
        ("城乡建设/城市建设和市政管理/冬季采暖", "010208"),
        (" 城乡建设 / 城市建设和市政管理 ", "0102"),
        ("城乡建设", "01"),
        ("冬季采暖", "010208"),
    ],
)
def test_resolve_label_accepts_codes_paths_prefixes_and_unique_names(
    catalogue: Catalogue, label: str, expected_code: str
) -> None:
    found = catalogue.resolve_label(label)
    assert found is not None and found.code == expected_code


def test_resolve_label_refuses_ambiguous_or_unknown_names(catalogue: Catalogue) -> None:
    assert catalogue.resolve_label("其他") is None
    assert catalogue.resolve_label("不存在的分类") is None
    assert catalogue.resolve_label("") is None


def test_path_text_joins_names_with_slashes(catalogue: Catalogue) -> None:
    leaf = catalogue.category_or_raise("010208")
    assert leaf.path_text == "城乡建设/城市建设和市政管理/冬季采暖"


def test_category_or_raise_raises_not_found_for_unknown_code(catalogue: Catalogue) -> None:
    assert catalogue.category("999999") is None
    with pytest.raises(NotFound):
        catalogue.category_or_raise("999999")


def test_urgent_keywords_apply_globally_or_to_their_leaf(catalogue: Catalogue) -> None:
    keywords = catalogue.urgent_keywords()
    assert keywords["着火"] != () or "着火" in catalogue.global_urgent_keywords
    gas = catalogue.resolve_label("燃气井盖异常")
    assert gas is not None
    assert gas.code in keywords["燃气泄漏"]
    text = "小区门口闻到煤气味了 井盖也不见了"
    assert "闻到煤气味" in catalogue.find_urgent_keywords(text, gas.code)
    assert catalogue.find_urgent_keywords("路灯不亮了", gas.code) == []
    assert "着火" in catalogue.find_urgent_keywords("楼下着火了", "150101")


def test_default_catalogue_is_loaded_once() -> None:
    assert default_catalogue() is default_catalogue()
