"""The shipped reference catalogue: taxonomy, departments and label resolution."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from fixtures import DATA_DIR
from router.catalogue import (
    APPEAL_TYPES,
    LEAD_RULES,
    Catalogue,
    default_catalogue,
    load_catalogue,
)
from router.errors import NotFound


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue(DATA_DIR)


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


@pytest.mark.parametrize(
    ("leaf", "lead"),
    [
        ("交通信号灯异常", "traffic_police"),
        ("交通信号设施异常", "traffic_police"),
        ("信号灯电源井盖异常", "traffic_police"),
        ("机动车乱停放", "traffic_police"),
        ("路灯异常", "street_lighting"),
        ("路灯配电箱异常", "street_lighting"),
        ("污水井盖异常", "drainage"),
        ("雨水箅子异常", "drainage"),
        ("排水泵站异常", "drainage"),
        ("供水井盖异常", "water_supply"),
        ("河道污染", "river_mgmt"),
        ("占用河道", "river_mgmt"),
        ("水域护栏异常", "river_mgmt"),
        ("江河湖治理", "river_mgmt"),
        ("绿地护栏异常", "landscape"),
        ("占道经营", "urban_mgmt"),
        ("物业服务", "housing"),
        ("施工扰民", "housing"),
        ("噪音污染", "ecology_env"),
        ("食品安全", "market_reg"),
        ("产品质量监控", "market_reg"),
        ("希望工程", "youth_league"),
        ("城乡居民养老保险", "hrss"),
    ],
)
def test_common_matters_go_to_the_body_that_handles_them(
    catalogue: Catalogue, leaf: str, lead: str
) -> None:
    found = catalogue.resolve_label(leaf)
    assert found is not None and found.is_leaf, leaf
    assert found.lead_department == lead


def test_no_water_matter_goes_to_veterans_or_telecom(catalogue: Catalogue) -> None:
    for leaf in catalogue.leaves():
        if any(word in leaf.name for word in ("河", "水域", "排水", "污水", "雨水", "堤岸")):
            assert leaf.lead_department not in ("veterans", "telecom"), leaf.path_text
        if "信号灯" in leaf.name or "交通信号" in leaf.name:
            assert leaf.lead_department == "traffic_police", leaf.path_text


def test_new_bodies_exist_under_their_parent_department(catalogue: Catalogue) -> None:
    expected = {
        "drainage": "water",
        "river_mgmt": "water",
        "river_chief": "water",
        "street_lighting": "urban_mgmt",
        "traffic_police": "gov",
    }
    for code, parent in expected.items():
        department = catalogue.department(code)
        assert department is not None and department.parent_code == parent
        assert any(
            code == leaf.lead_department or code in leaf.assisting_departments
            for leaf in catalogue.leaves()
        ), code


def test_every_category_records_how_its_lead_was_chosen(catalogue: Catalogue) -> None:
    for category in catalogue.categories.values():
        assert category.lead_department in catalogue.departments, category.code
        kind = category.lead_rule.split(":", 1)[0]
        assert kind in LEAD_RULES, category.code
        assert (kind == "children") != category.is_leaf or kind == "override", category.code


def test_inner_nodes_lead_with_their_most_common_leaf_lead(catalogue: Catalogue) -> None:
    branch = catalogue.category_or_raise("1305")  # 政法/交通管理
    assert branch.lead_department == "traffic_police"
    leads = Counter(leaf.lead_department for leaf in catalogue.children("1305"))
    assert branch.lead_department == leads.most_common(1)[0][0]
    assert catalogue.category_or_raise("01").lead_department == "housing"  # 城乡建设


def test_responsible_department_walks_up_to_the_nearest_lead(catalogue: Catalogue) -> None:
    assert catalogue.responsible_department("011136") == "street_lighting"
    assert catalogue.responsible_department("14") == "education"
    assert catalogue.responsible_department("999999") is None
    bare = Catalogue(
        [
            replace(c, lead_department=None) if not c.is_leaf else c
            for c in catalogue.categories.values()
        ],
        catalogue.departments.values(),
    )
    assert bare.responsible_department("14") is None
    assert bare.responsible_department("140101") == "education"
    partial = Catalogue(
        [
            replace(c, lead_department=None) if c.level == 2 else c
            for c in catalogue.categories.values()
        ],
        catalogue.departments.values(),
    )
    assert partial.responsible_department("1401") == "education"
