"""Traps seen on real appeals, on real-style long narratives: 工程 is not always 建筑市场 (a river
dredging 工程, 希望工程), 孩子 is not always 教育 (children kept awake by night pile-driving), a
broken streetlight is not a traffic signal, and a traffic light goes to the traffic police.

They are fixed by the reference data (catalogue leads, phrase bank, jieba user dictionary), not by
rules on these texts: the slow test trains a small model on the seeded synthetic corpus plus the
real level-1 messages, as the default model does, and routes the texts.
"""

from __future__ import annotations

import pytest

from classifier import HotlineClassifier
from classifier.text import TextPipeline
from fixtures.generator import USER_DICT_PATH
from router.catalogue import Catalogue, default_catalogue
from router.routing import RouteDecision, route

RIVER_DREDGING = (
    "尊敬的领导：您好！我是A7县的居民，家就住在河边，已经住了十多年了。去年年底开始，"
    "小区旁边的这条河道搞清淤工程，施工单位把挖出来的淤泥直接堆在河岸上，半年了一直没有运走。"
    "现在天气一热，整条河又黑又臭，蚊子苍蝇特别多，晚上窗户都不敢开，家里老人天天咳嗽。"
    "我们打过好几次电话，有的说工程归上面管，有的说等验收以后再处理，一直推来推去。"
    "河水发黑发臭，还有人趁晚上往河里倒垃圾，河面上全是漂浮物。希望有关部门尽快督促清运淤泥，"
    "把河道好好治理一下，还我们一条干净的河。"
)
HOPE_PROJECT = (
    "您好，我想咨询一下希望工程的事情。我是一名在外地打工的家长，家里有两个孩子在老家读书，"
    "爱人身体不好，家庭条件比较困难。听同事说希望工程可以资助贫困学生上学，不知道现在还有没有"
    "这个项目，应该去哪里申请，需要准备哪些材料，是学校统一报还是自己去团委报？另外我自己以后"
    "有能力了也想给希望小学捐点款，请问通过什么渠道比较可靠？麻烦尽快回复，谢谢。"
)
NIGHT_PILE_DRIVING = (
    "市长您好！我们是A5区一个小区的业主，小区东边围墙外面是一个在建的工地。最近一个多月，"
    "每天晚上十点以后还在打桩，打桩机的声音轰隆隆一直响到凌晨两三点，整栋楼都在震。家里孩子"
    "第二天还要上学，吵得整夜睡不着觉，老人心脏也不好，天天吃药。我们打了好几次电话投诉，"
    "白天停一会儿，晚上照样干。请问这个工地夜间施工有没有办许可？希望相关部门管一管，"
    "还我们一个安静的夜晚。"
)
BROKEN_STREETLIGHT = (
    "你好，我要反映一下我们小区门口那条路上的路灯问题。从上个月开始，路边的好几盏路灯都不亮了，"
    "晚上黑漆漆的一片，什么都看不见。前几天我家老人晚上出去散步还摔了一跤，膝盖都磕破了。"
    "附近还有一所学校，孩子们晚自习下课回家也要走这条路，很不安全。我们跟物业说过，物业说"
    "路灯不归他们管，让我们自己打电话。希望有关部门尽快派人来把路灯修好。"
)
BROKEN_TRAFFIC_LIGHT = (
    "我反映一个交通安全的问题。A1区那个十字路口的红绿灯已经坏了三天了，一直黄灯闪，"
    "上下班高峰期车辆和行人都抢着走，乱成一团，昨天早上还差点撞到一个骑电动车的人。"
    "这个路口车流量很大，旁边还有个菜市场，老人小孩很多，真的很危险。希望尽快把信号灯修好，"
    "高峰期最好派人来指挥一下交通。"
)


@pytest.fixture(scope="module")
def pipeline() -> TextPipeline:
    return TextPipeline.from_files(user_dict=USER_DICT_PATH)


@pytest.mark.parametrize(
    ("text", "whole"),
    [
        ("小区旁边的这条河道搞清淤工程", "清淤工程"),
        ("听同事说希望工程可以资助贫困学生", "希望工程"),
        ("老板拖欠工程款半年了", "拖欠工程款"),
        ("打桩机的声音轰隆隆一直响到凌晨", "打桩机"),
        ("十字路口的红绿灯已经坏了三天了", "红绿灯"),
    ],
)
def test_trap_words_are_segmented_whole(pipeline: TextPipeline, text: str, whole: str) -> None:
    words = pipeline.segment(text)
    assert whole in words
    assert "工程" not in words


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return default_catalogue()


@pytest.fixture(scope="module")
def model(catalogue: Catalogue) -> HotlineClassifier:
    from fixtures import real
    from fixtures.generator import generate_appeals

    texts: list[str] = []
    paths: list[str] = []
    departments: list[str | None] = []
    for row in generate_appeals(12_000, seed=7):
        texts.append(row["text"])
        paths.append(catalogue.category_or_raise(row["category_code"]).path_text)
        departments.append(row["department_code"] or None)
    messages = real.labelled_messages()
    texts += messages.texts
    paths += messages.labels
    departments += [None] * len(messages.texts)
    classifier = HotlineClassifier(
        user_dict=str(USER_DICT_PATH), refit=False, stacking=False, random_state=0
    )
    return classifier.fit(texts, paths, departments)


def _route(model: HotlineClassifier, catalogue: Catalogue, text: str) -> RouteDecision:
    return route(catalogue=catalogue, suggestion=model.suggest(text), text=text)


@pytest.mark.slow
def test_river_dredging_works_go_to_a_water_body_not_the_building_market(
    model: HotlineClassifier, catalogue: Catalogue
) -> None:
    decision = _route(model, catalogue, RIVER_DREDGING)
    assert "建筑市场" not in (decision.category_path or "")
    assert decision.department_code in {
        "river_mgmt",
        "river_chief",
        "water",
        "drainage",
        "ecology_env",
        "urban_mgmt",
    }, decision.category_path


@pytest.mark.slow
def test_hope_project_is_charity_for_schooling_not_construction(
    model: HotlineClassifier, catalogue: Catalogue
) -> None:
    decision = _route(model, catalogue, HOPE_PROJECT)
    assert not (decision.category_path or "").startswith("城乡建设"), decision.category_path
    assert decision.department_code in {"youth_league", "education", "civil_affairs"}


@pytest.mark.slow
def test_night_pile_driving_near_sleeping_children_is_construction_noise(
    model: HotlineClassifier, catalogue: Catalogue
) -> None:
    decision = _route(model, catalogue, NIGHT_PILE_DRIVING)
    assert not (decision.category_path or "").startswith("教育文体"), decision.category_path
    assert decision.department_code in {"housing", "urban_mgmt", "ecology_env"}


@pytest.mark.slow
def test_a_broken_streetlight_goes_to_street_lighting(
    model: HotlineClassifier, catalogue: Catalogue
) -> None:
    decision = _route(model, catalogue, BROKEN_STREETLIGHT)
    assert decision.department_code == "street_lighting", decision.category_path


@pytest.mark.slow
def test_a_broken_traffic_light_goes_to_the_traffic_police(
    model: HotlineClassifier, catalogue: Catalogue
) -> None:
    decision = _route(model, catalogue, BROKEN_TRAFFIC_LIGHT)
    assert decision.department_code == "traffic_police", decision.category_path
