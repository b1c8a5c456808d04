"""Answer retrieval: term similarity, the category boost, validity and the bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from classifier.text import TextPipeline
from router.knowledge.retrieval import AnswerIndex, Document, category_agreement

PIPELINE = TextPipeline()
NOW = datetime(2026, 12, 1, tzinfo=UTC)

DOCUMENTS = [
    Document(1, "小区物业乱收停车费怎么办？停车费收费标准由物价部门核定。", "010301"),
    Document(2, "小区停车位收费标准咨询，物业公司收费须公示。", "020101"),
    Document(3, "孩子上学学位申请需要哪些材料？请携带户口本和房产证明到教育局报名。", "030101"),
    Document(4, "公交车改线后如何出行？公交公司已增加接驳线路。", "070101"),
]


def index(**kwargs: float) -> AnswerIndex:
    return AnswerIndex(PIPELINE.tokens, **kwargs).fit(DOCUMENTS)


def test_the_article_sharing_the_terms_comes_first() -> None:
    hits = index().search("孩子上学的学位怎么申请", k=3)
    assert hits[0].id == 3
    assert all(h.score >= hits[-1].score for h in hits)


def test_a_text_sharing_no_term_gets_nothing() -> None:
    assert index().search("今天天气") == []


def test_the_predicted_category_lifts_an_article_of_that_category() -> None:
    plain = index().search("小区停车费收费标准", k=2)
    boosted = index(category_weight=2.0).search("小区停车费收费标准", category_code="020101", k=2)
    assert {h.id for h in plain} == {1, 2}
    assert boosted[0].id == 2 and boosted[0].category_agreement == 1.0
    without = index(category_weight=0.0).search("小区停车费收费标准", category_code="020101", k=2)
    assert [h.id for h in without] == [h.id for h in plain]


def test_only_articles_valid_now_are_suggested() -> None:
    documents = [
        Document(1, "公交车改线后如何出行", valid_to=NOW - timedelta(days=1)),
        Document(2, "公交车改线后的接驳线路", valid_from=NOW + timedelta(days=1)),
        Document(
            3, "公交车改线通知", valid_from=NOW - timedelta(days=1), valid_to=NOW + timedelta(1)
        ),
    ]
    found = AnswerIndex(PIPELINE.tokens).fit(documents).search("公交车改线", now=NOW)
    assert [h.id for h in found] == [3]


def test_k_bounds_the_answer_and_exclude_skips_articles() -> None:
    many = [Document(i, f"公交车改线第{i}号通知") for i in range(1, 40)]
    built = AnswerIndex(PIPELINE.tokens).fit(many)
    assert len(built.search("公交车改线", k=3)) == 3
    excluded = frozenset(h.id for h in built.search("公交车改线", k=30))
    rest = built.search("公交车改线", k=30, exclude=excluded)
    assert len(rest) == 9 and not {h.id for h in rest} & excluded


def test_an_empty_index_answers_nothing_and_search_before_fit_is_an_error() -> None:
    assert AnswerIndex(PIPELINE.tokens).fit([]).search("公交车") == []
    with pytest.raises(RuntimeError):
        AnswerIndex(PIPELINE.tokens).search("公交车")


@pytest.mark.parametrize(
    ("a", "b", "agreement"),
    [
        ("010301", "010301", 1.0),
        ("010301", "010302", 0.6),
        ("010301", "0103", 0.6),
        ("010301", "012201", 0.3),
        ("01", "010301", 0.3),
        ("010301", "020301", 0.0),
        (None, "010301", 0.0),
    ],
)
def test_category_agreement_follows_the_code_hierarchy(
    a: str | None, b: str | None, agreement: float
) -> None:
    assert category_agreement(a, b) == agreement


@pytest.mark.parametrize("predicted", ["010301", "0103", "01", "020101", "999999"])
def test_the_index_boosts_by_the_same_agreement_as_the_rule(predicted: str) -> None:
    codes = ["010301", "010302", "0103", "012201", "01", "020101", None]
    documents = [Document(i, f"公交线路调整通知{i}", code) for i, code in enumerate(codes)]
    hits = (
        AnswerIndex(PIPELINE.tokens)
        .fit(documents)
        .search("公交线路调整", category_code=predicted, k=10)
    )
    assert len(hits) == len(codes)
    for hit in hits:
        assert hit.category_agreement == pytest.approx(category_agreement(codes[hit.id], predicted))
