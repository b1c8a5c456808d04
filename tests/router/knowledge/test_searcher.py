"""The per-process knowledge index follows the database: new, edited and retired articles show
at the next search, and a rebuild segments only what changed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from classifier.text import TextPipeline
from router.knowledge import service as knowledge
from router.knowledge.searcher import KnowledgeSearcher
from router.knowledge.service import ArticleState
from tests.support import wait_for

PIPELINE = TextPipeline()


class CountingTokenizer:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, text: str) -> list[str]:
        self.calls += 1
        return PIPELINE.tokens(text)


@pytest.fixture
def database(database_url: str) -> Iterator[Any]:
    from service.db import Database

    database = Database(database_url)
    yield database
    database.dispose()


def add(db_session: Any, question: str, answer: str, state: ArticleState) -> int:
    article = knowledge.create(
        db_session=db_session, question=question, answer=answer, actor="t", state=state
    )
    return article.id


def test_the_index_follows_approvals_edits_and_retirements(database: Any) -> None:
    tokenize = CountingTokenizer()
    searcher = KnowledgeSearcher(tokenize=tokenize)
    with database.session() as db_session:
        bus = add(
            db_session, "公交卡优惠怎么办理", "凭身份证到公交公司办理。", ArticleState.APPROVED
        )
        school = add(db_session, "小学入学登记", "携带户口簿到学校登记。", ArticleState.DRAFT)
        add(db_session, "路灯不亮找谁", "请联系城管部门。", ArticleState.APPROVED)
    with database.session() as db_session:
        assert [h.id for h in searcher.search(db_session, "公交卡优惠")] == [bus]
        assert searcher.search(db_session, "小学入学登记") == []
        assert searcher.size == 2
        built = tokenize.calls

    with database.session() as db_session:
        knowledge.approve(
            db_session=db_session,
            article=knowledge.get_or_raise(db_session=db_session, article_id=school),
            actor="s",
        )
    with database.session() as db_session:
        assert [h.id for h in searcher.search(db_session, "小学入学登记")] == [school]
    # Only the newly approved article was segmented, and the query.
    assert tokenize.calls - built == 1 + 1

    with database.session() as db_session:
        knowledge.edit(
            db_session=db_session,
            article=knowledge.get_or_raise(db_session=db_session, article_id=bus),
            actor="s",
            changes={"question": "老年人乘车优待证怎么办理"},
        )
    with database.session() as db_session:
        assert [h.id for h in searcher.search(db_session, "乘车优待证")] == [bus]
        knowledge.retire(
            db_session=db_session,
            article=knowledge.get_or_raise(db_session=db_session, article_id=bus),
            actor="s",
        )
    with database.session() as db_session:
        assert searcher.search(db_session, "乘车优待证") == []
        assert searcher.refresh(db_session) is False  # nothing changed since


def test_the_index_keeps_only_the_newest_articles_up_to_its_bound(database: Any) -> None:
    searcher = KnowledgeSearcher(tokenize=PIPELINE.tokens, max_articles=2)
    with database.session() as db_session:
        ids = [
            add(db_session, f"公交线路调整通知第{n}号", "详见公告。", ArticleState.APPROVED)
            for n in range(4)
        ]
    with database.session() as db_session:
        found = {h.id for h in searcher.search(db_session, "公交线路调整", k=10)}
    assert searcher.size == 2 and found == set(ids[2:])


def test_a_large_index_is_rebuilt_in_the_background_while_searches_go_on(database: Any) -> None:
    searcher = KnowledgeSearcher(tokenize=PIPELINE.tokens, background_from=1)
    with database.session() as db_session:
        bus = add(db_session, "公交卡优惠怎么办理", "凭身份证办理。", ArticleState.APPROVED)
    with database.session() as db_session:  # the first build is done at once
        assert [h.id for h in searcher.search(db_session, "公交卡优惠")] == [bus]
    with database.session() as db_session:
        school = add(db_session, "小学入学登记", "携带户口簿登记。", ArticleState.APPROVED)

    def found() -> bool:
        with database.session() as db_session:
            hits = searcher.search(db_session, "小学入学登记", session_factory=database.session)
            return [h.id for h in hits] == [school]

    assert wait_for(found)
    assert searcher.size == 2
