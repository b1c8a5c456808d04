"""Small seeded corpora for classifier tests: made here, no trained binaries in git."""

from __future__ import annotations

import random

import pytest

TOPICS = {
    "城乡建设/安全生产/事故处理": ["工地", "事故", "受伤", "塔吊", "坍塌"],
    "城乡建设/安全生产/安全隐患": ["隐患", "电线", "老化", "消防通道", "堵塞"],
    "城乡建设/住房保障/物业管理": ["物业", "小区", "物业费", "保安", "电梯"],
    "环境保护/噪音污染/施工噪音": ["施工", "噪音", "夜间", "扰民", "机器"],
    "环境保护/水污染/排污": ["排污", "河道", "污水", "发臭", "工厂"],
    "交通运输/公交管理/线路": ["公交", "线路", "站点", "班次", "司机"],
}
DEPARTMENTS = {"城乡建设": "housing", "环境保护": "ecology_env", "交通运输": "transport"}
FILLERS = ["问题", "严重", "很多", "不断", "一直没人管", "希望解决"]


def make_corpus(
    n: int, seed: int = 0, *, partial_every: int = 3
) -> tuple[list[str], list[str], list[str]]:
    """`n` appeals; every `partial_every`-th row is labelled at level 1 only."""
    rng = random.Random(seed)
    texts, labels, departments = [], [], []
    paths = sorted(TOPICS)
    for i in range(n):
        path = rng.choice(paths)
        words = TOPICS[path]
        parts = [rng.choice(words) + rng.choice(FILLERS) for _ in range(4)]
        texts.append("您好，我想反映一下，" + "，".join(parts) + "。")
        labels.append(path.split("/")[0] if partial_every and i % partial_every == 0 else path)
        departments.append(DEPARTMENTS[path.split("/")[0]])
    return texts, labels, departments


@pytest.fixture(name="make_corpus", scope="session")
def make_corpus_fixture():
    return make_corpus


@pytest.fixture(scope="session")
def topics() -> dict[str, list[str]]:
    return TOPICS


@pytest.fixture(scope="session")
def corpus() -> tuple[list[str], list[str], list[str]]:
    return make_corpus(400, seed=1)


@pytest.fixture(scope="session")
def fitted(corpus):
    from classifier import HotlineClassifier

    texts, labels, departments = corpus
    return HotlineClassifier(random_state=0).fit(texts, labels, departments)
