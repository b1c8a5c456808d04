"""Knowledge-base persistence: create, propose, approve, edit, retire and list answer articles.

Article states::

    draft ----approve----> approved ----retire----> retired
    proposed --approve---> approved
    draft, proposed ------retire (reject)---------> retired

Editing is allowed in every state but ``retired``; an edited approved article stays approved.
Functions are keyword-only, session first, and only flush; the caller commits and audits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from classifier.text import mask_personal_data
from router.catalogue.models import Category, Department
from router.errors import Conflict, InvalidInput, NotFound
from router.knowledge.models import KnowledgeArticle
from router.knowledge.retrieval import Document, join_terms
from router.workorders.models import Appeal, WorkOrder, WorkOrderEvent
from router.workorders.workflow import Action, State

__all__ = [
    "ArticleState",
    "Source",
    "approve",
    "create",
    "edit",
    "get_or_raise",
    "index_documents",
    "index_stamp",
    "list_articles",
    "propose_from_closed_orders",
    "propose_from_order",
    "reply_of",
    "retire",
]


class ArticleState(StrEnum):
    DRAFT = "draft"
    PROPOSED = "proposed"
    APPROVED = "approved"
    RETIRED = "retired"


class Source(StrEnum):
    OFFICIAL_REPLY = "official_reply"
    """A public official reply to a citizen's message (the seed, fixtures/data/real)."""
    WORK_ORDER = "work_order"
    """A department's reply to one of our closed work orders."""
    MANUAL = "manual"


_TRANSITIONS: dict[str, frozenset[ArticleState]] = {
    "approve": frozenset({ArticleState.DRAFT, ArticleState.PROPOSED}),
    "retire": frozenset({ArticleState.DRAFT, ArticleState.PROPOSED, ArticleState.APPROVED}),
    "edit": frozenset({ArticleState.DRAFT, ArticleState.PROPOSED, ArticleState.APPROVED}),
}
CLOSED_STATES = (State.CLOSED.value, State.CALLBACK_DONE.value)
QUESTION_LENGTH = 2000


@dataclass(frozen=True)
class Page:
    items: list[KnowledgeArticle]
    total: int


def _check(article: KnowledgeArticle, change: str) -> None:
    if article.state not in _TRANSITIONS[change]:
        raise Conflict(
            f"cannot {change} a knowledge article in state '{article.state}'",
            current_state=article.state,
            action=change,
        )


def _category_path(db_session: Session, code: str | None) -> str:
    if code is None:
        return ""
    category = db_session.get(Category, code)
    if category is None or not category.active:
        raise InvalidInput(f"unknown category {code!r}", field="category_code")
    return category.path


def _check_department(db_session: Session, code: str | None) -> None:
    if code is not None and db_session.get(Department, code) is None:
        raise InvalidInput(f"unknown department {code!r}", field="owner_department_code")


def _check_validity(valid_from: datetime | None, valid_to: datetime | None) -> None:
    if valid_from is not None and valid_to is not None and valid_to <= valid_from:
        raise InvalidInput("valid_to must be later than valid_from", field="valid_to")


def create(
    *,
    db_session: Session,
    question: str,
    answer: str,
    actor: str,
    state: ArticleState = ArticleState.DRAFT,
    source: Source = Source.MANUAL,
    source_ref: str | None = None,
    source_date: datetime | None = None,
    category_code: str | None = None,
    owner_department_code: str | None = None,
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
) -> KnowledgeArticle:
    """A new article; InvalidInput for an unknown category or department or empty text."""
    if not question.strip() or not answer.strip():
        raise InvalidInput("an article needs a question and an answer")
    _check_department(db_session, owner_department_code)
    _check_validity(valid_from, valid_to)
    article = KnowledgeArticle(
        state=state.value,
        category_code=category_code,
        category_path=_category_path(db_session, category_code),
        question=question.strip(),
        answer=answer.strip(),
        source=source.value,
        source_ref=source_ref,
        source_date=source_date,
        valid_from=valid_from,
        valid_to=valid_to,
        owner_department_code=owner_department_code,
        created_by=actor,
        updated_by=actor,
    )
    db_session.add(article)
    db_session.flush()
    return article


def get(*, db_session: Session, article_id: int) -> KnowledgeArticle | None:
    return db_session.get(KnowledgeArticle, article_id)


def get_or_raise(*, db_session: Session, article_id: int, lock: bool = False) -> KnowledgeArticle:
    article = db_session.get(KnowledgeArticle, article_id, with_for_update=lock or None)
    if article is None:
        raise NotFound(f"knowledge article {article_id} not found")
    return article


def list_articles(
    *,
    db_session: Session,
    state: str | None = None,
    category_code: str | None = None,
    owner_department_code: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page:
    """Articles, most recently changed first (``category_code`` matches the category and its
    sub-categories)."""
    query = select(KnowledgeArticle)
    if state is not None:
        query = query.where(KnowledgeArticle.state == state)
    if category_code is not None:
        query = query.where(KnowledgeArticle.category_code.startswith(category_code))
    if owner_department_code is not None:
        query = query.where(KnowledgeArticle.owner_department_code == owner_department_code)
    total = db_session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db_session.scalars(
        query.order_by(KnowledgeArticle.updated_at.desc(), KnowledgeArticle.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return Page(list(rows), total)


def _touch(article: KnowledgeArticle, actor: str) -> None:
    article.updated_by = actor
    article.revision += 1


def approve(*, db_session: Session, article: KnowledgeArticle, actor: str) -> KnowledgeArticle:
    _check(article, "approve")
    article.state = ArticleState.APPROVED.value
    _touch(article, actor)
    db_session.flush()
    return article


def retire(*, db_session: Session, article: KnowledgeArticle, actor: str) -> KnowledgeArticle:
    _check(article, "retire")
    article.state = ArticleState.RETIRED.value
    _touch(article, actor)
    db_session.flush()
    return article


EDITABLE = frozenset(
    {"question", "answer", "category_code", "owner_department_code", "valid_from", "valid_to"}
)


def edit(
    *, db_session: Session, article: KnowledgeArticle, actor: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """Apply ``changes`` (a subset of :data:`EDITABLE`); returns the fields that changed, with
    their old values (for the audit log)."""
    _check(article, "edit")
    unknown = set(changes) - EDITABLE
    if unknown:
        raise InvalidInput(f"cannot edit {', '.join(sorted(unknown))}")
    for name in ("question", "answer"):
        if name in changes:
            if not (changes[name] or "").strip():
                raise InvalidInput(f"{name} must not be empty", field=name)
            changes[name] = changes[name].strip()
    if "owner_department_code" in changes:
        _check_department(db_session, changes["owner_department_code"])
    _check_validity(
        changes.get("valid_from", article.valid_from), changes.get("valid_to", article.valid_to)
    )
    if "category_code" in changes:
        article.category_path = _category_path(db_session, changes["category_code"])
    before: dict[str, Any] = {}
    for name, value in changes.items():
        old = getattr(article, name)
        if old != value:
            before[name] = old.isoformat() if isinstance(old, datetime) else old
            setattr(article, name, value)
    if before:
        _touch(article, actor)
        db_session.flush()
    return before


# -- proposals from closed work orders ----------------------------------------------------------


def reply_of(*, db_session: Session, work_order: WorkOrder) -> WorkOrderEvent | None:
    """The department's latest reply (办复) to the order, or the answer given at intake."""
    return db_session.scalar(
        select(WorkOrderEvent)
        .where(
            WorkOrderEvent.work_order_id == work_order.id,
            WorkOrderEvent.action.in_((Action.REPLY.value, Action.ANSWER.value)),
        )
        .order_by(WorkOrderEvent.id.desc())
        .limit(1)
    )


def _reply_text(event: WorkOrderEvent) -> str:
    data = event.data or {}
    return str(data.get("result") or data.get("answer") or "")


def propose_from_order(
    *,
    db_session: Session,
    work_order: WorkOrder,
    actor: str,
    question: str | None = None,
    answer: str | None = None,
    valid_to: datetime | None = None,
) -> KnowledgeArticle:
    """A *proposed* article from a closed order's reply (the question defaults to the appeal,
    personal data masked; the answer to the reply). Conflict when the order is not closed, has
    no reply, or was proposed already."""
    if work_order.state not in CLOSED_STATES:
        raise Conflict(
            f"work order {work_order.number} is not closed (state '{work_order.state}')",
            current_state=work_order.state,
        )
    event = reply_of(db_session=db_session, work_order=work_order)
    if event is None or not _reply_text(event):
        raise Conflict(f"work order {work_order.number} has no reply to propose")
    taken = db_session.scalar(
        select(KnowledgeArticle.id).where(
            KnowledgeArticle.source == Source.WORK_ORDER.value,
            KnowledgeArticle.source_ref == work_order.number,
        )
    )
    if taken is not None:
        raise Conflict(
            f"work order {work_order.number} is already knowledge article {taken}",
            article_id=taken,
        )
    appeal = work_order.appeal
    default_question = mask_personal_data(f"{appeal.title}\n{appeal.text}".strip())
    return create(
        db_session=db_session,
        question=(question or default_question)[:QUESTION_LENGTH],
        answer=answer or mask_personal_data(_reply_text(event)),
        actor=actor,
        state=ArticleState.PROPOSED,
        source=Source.WORK_ORDER,
        source_ref=work_order.number,
        source_date=event.at,
        category_code=work_order.category_code,
        owner_department_code=work_order.department_code,
        valid_to=valid_to,
    )


def propose_from_closed_orders(
    *, db_session: Session, actor: str, since: datetime | None = None, limit: int = 200
) -> list[KnowledgeArticle]:
    """Proposed articles from closed orders with a reply that no article comes from yet (oldest
    closure first, at most ``limit``): the supervisor then approves the good ones."""
    proposed = exists().where(
        KnowledgeArticle.source == Source.WORK_ORDER.value,
        KnowledgeArticle.source_ref == WorkOrder.number,
    )
    replied = exists().where(
        WorkOrderEvent.work_order_id == WorkOrder.id,
        WorkOrderEvent.action.in_((Action.REPLY.value, Action.ANSWER.value)),
    )
    query = (
        select(WorkOrder)
        .join(Appeal, WorkOrder.appeal_id == Appeal.id)
        .where(WorkOrder.state.in_(CLOSED_STATES), ~proposed, replied)
        .order_by(WorkOrder.closed_at, WorkOrder.id)
        .limit(limit)
    )
    if since is not None:
        query = query.where(WorkOrder.closed_at >= since)
    return [
        propose_from_order(db_session=db_session, work_order=order, actor=actor)
        for order in db_session.scalars(query)
    ]


# -- what the search index reads -----------------------------------------------------------------


def index_stamp(*, db_session: Session) -> tuple[Any, ...]:
    """Changes whenever an article is added or changed: the highest id and the latest
    ``updated_at``, two queries so that each is one index lookup (one statement with both
    aggregates makes SQLite scan the table)."""
    return (
        db_session.scalar(select(func.max(KnowledgeArticle.id))),
        db_session.scalar(select(func.max(KnowledgeArticle.updated_at))),
    )


def index_documents(
    *,
    db_session: Session,
    limit: int,
    known: Mapping[tuple[int, int], str],
    tokenize: Callable[[str], list[str]],
) -> list[Document]:
    """The approved articles, newest first, at most ``limit`` (the index's bound), with their
    terms joined (:func:`~router.knowledge.retrieval.join_terms`): taken from ``known`` by
    (id, revision), else read and segmented with ``tokenize`` (only those texts are loaded)."""
    rows = db_session.execute(
        select(
            KnowledgeArticle.id,
            KnowledgeArticle.revision,
            KnowledgeArticle.category_code,
            KnowledgeArticle.valid_from,
            KnowledgeArticle.valid_to,
        )
        .where(KnowledgeArticle.state == ArticleState.APPROVED.value)
        .order_by(KnowledgeArticle.id.desc())
        .limit(limit)
    ).all()
    missing = [row.id for row in rows if (row.id, row.revision) not in known]
    fresh: dict[int, str] = {}
    for start in range(0, len(missing), 1000):
        texts = db_session.execute(
            select(KnowledgeArticle.id, KnowledgeArticle.question, KnowledgeArticle.answer).where(
                KnowledgeArticle.id.in_(missing[start : start + 1000])
            )
        )
        for article_id, question, answer in texts:
            fresh[article_id] = join_terms(tokenize(f"{question}\n{answer}"))
    return [
        Document(
            id=row.id,
            text="",
            category_code=row.category_code,
            valid_from=row.valid_from,
            valid_to=row.valid_to,
            revision=row.revision,
            terms=known.get((row.id, row.revision), fresh.get(row.id, "")),
        )
        for row in rows
    ]


def articles_by_id(*, db_session: Session, ids: Sequence[int]) -> dict[int, KnowledgeArticle]:
    if not ids:
        return {}
    rows = db_session.scalars(select(KnowledgeArticle).where(KnowledgeArticle.id.in_(ids)))
    return {row.id: row for row in rows}
