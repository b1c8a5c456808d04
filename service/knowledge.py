"""The knowledge base's infrastructure: seeding from the real official replies, the classifier's
category for a typed text, and intake of a consultation answered on the line (直接办结).

Answering at intake follows the intake rule: the appeal and its ``received`` order are committed
first (`router.workorders.service.receive_appeal`); a second transaction closes the order
through the state machine (`router.workorders.actions.answer`) and schedules its callback.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from classifier.errors import ClassifierError
from router.calendar import DEFAULT_CALENDAR
from router.catalogue import default_catalogue
from router.errors import Conflict, InvalidInput
from router.knowledge import service as knowledge
from router.knowledge.models import KnowledgeArticle
from router.knowledge.service import ArticleState, Source
from router.orm import utcnow
from router.workorders import actions, queries
from router.workorders import service as workorders
from router.workorders.workflow import Role, State
from service import classification
from service.auth import audit
from service.auth.security import Actor
from service.callbacks import service as callback_service
from service.config import Settings
from service.db import Database

log = logging.getLogger(__name__)

SEED_PREFIX = "tipdm2020:"


def predicted_category(settings: Settings, text: str) -> str | None:
    """The classifier's best category for ``text``, or None without a usable model."""
    try:
        decision, _ = classification.suggest(model_dir=settings.model_dir, text=text, k=1)
    except ClassifierError as exc:
        log.info("no category for knowledge search: %s", exc)
        return None
    return decision.category_code


def _reply_date(value: str) -> datetime | None:
    """``2019/5/9 10:02:08`` (Beijing time) as an aware datetime; None when unreadable."""
    for pattern in ("%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d"):
        try:
            return datetime.strptime(value, pattern).replace(tzinfo=DEFAULT_CALENDAR.tz)
        except ValueError:
            continue
    return None


def seed_official_replies(
    *, db_session: Session, settings: Settings | None = None, limit: int | None = None
) -> int:
    """Approved articles from the real messages with an official reply (fixtures/data/real):
    the message is the question, the reply the answer, the reply's date the source date and the
    replying body, where it maps to the catalogue, the owner. The category is the message's gold
    level-1 label when it has one, else the classifier's guess (with ``settings`` and a model),
    else none. Rows seeded before are skipped; returns the articles created."""
    from fixtures import real

    messages = real.reply_messages()[:limit]
    seeded = set(
        db_session.scalars(
            select(KnowledgeArticle.source_ref).where(
                KnowledgeArticle.source == Source.OFFICIAL_REPLY.value
            )
        )
    )
    todo = [
        (index, m)
        for index, m in enumerate(messages)
        if m.reply and f"{SEED_PREFIX}{index}" not in seeded
    ]
    catalogue = default_catalogue()
    guessed: dict[int, str | None] = {}
    if settings is not None and todo:
        try:
            decisions, _ = classification.suggest_many(
                model_dir=settings.model_dir,
                appeals=[(m.detail, m.title, None) for _, m in todo],
                k=1,
            )
            guessed = {i: d.category_code for (i, _), d in zip(todo, decisions, strict=True)}
        except ClassifierError as exc:
            log.warning("seeding without categories: %s", exc)
    for index, message in todo:
        gold = catalogue.resolve_label(message.label_l1) if message.label_l1 else None
        owner = message.department_code or None
        if owner is not None and catalogue.department(owner) is None:
            owner = None
        knowledge.create(
            db_session=db_session,
            question=f"{message.title}\n{message.detail}",
            answer=message.reply,
            actor="seed",
            state=ArticleState.APPROVED,
            source=Source.OFFICIAL_REPLY,
            source_ref=f"{SEED_PREFIX}{index}",
            source_date=_reply_date(message.reply_time),
            category_code=gold.code if gold is not None else guessed.get(index),
            owner_department_code=owner,
        )
    return len(todo)


# -- 直接办结 --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnsweredResult:
    number: str
    state: str
    created: bool
    article_id: int | None
    callbacks: int


def submit_answered(
    *,
    database: Database,
    settings: Settings,
    appeal: workorders.AppealInput,
    answer: str,
    article_id: int | None,
    actor: Actor,
) -> AnsweredResult:
    """Store a consultation, then close it with the agent's answer (and schedule its callback).

    A replayed idempotency key returns the stored order untouched. A stored order that is no
    longer ``received`` (routed meanwhile by `dispatch.triage_pending`) is a Conflict: the
    appeal stays stored and follows the usual path.
    """
    if appeal.appeal_type != "consultation":
        raise InvalidInput(
            "only a consultation (咨询) can be answered at intake", field="appeal_type"
        )
    with database.session() as db_session:
        category_code = None
        if article_id is not None:
            article = knowledge.get_or_raise(db_session=db_session, article_id=article_id)
            if article.state != ArticleState.APPROVED:
                raise InvalidInput(
                    f"knowledge article {article_id} is not approved", field="article_id"
                )
            category_code = article.category_code
    # Persisted first, as every appeal.
    with database.session() as db_session:
        order, created = workorders.receive_appeal(
            db_session=db_session,
            appeal=appeal,
            actor=actor.username,
            role=Role.AGENT if actor.role == Role.AGENT else Role.SYSTEM,
        )
        number = order.number
        if not created:
            return AnsweredResult(number, order.state, False, article_id, 0)
    with database.session() as db_session:
        now = utcnow()
        order = queries.lock_by_number(db_session=db_session, number=number)
        if order.state != State.RECEIVED:
            raise Conflict(
                f"work order {number} was routed before it could be answered",
                current_state=order.state,
            )
        if category_code is None or _is_leafless(category_code):
            category_code = _leaf_or_none(predicted_category(settings, appeal.text))
        result = actions.answer(
            db_session=db_session,
            order=order,
            actor=actor.username,
            role=actor.role,
            now=now,
            answer=answer,
            article_id=article_id,
            category_code=category_code,
        )
        scheduled = callback_service.schedule_after_close(
            db_session=db_session, work_order=order, settings=settings, now=now
        )
        audit.record(
            db_session=db_session,
            actor=actor,
            action="work_order.answer",
            target_type="work_order",
            target_id=number,
            detail={"from_state": State.RECEIVED.value, "to_state": order.state}
            | result.audit_detail,
            at=now,
        )
        return AnsweredResult(number, order.state, True, article_id, len(scheduled))


def _is_leafless(code: str) -> bool:
    category = default_catalogue().category(code)
    return category is None or category.level != 3


def _leaf_or_none(code: str | None) -> str | None:
    return code if code is not None and not _is_leafless(code) else None


__all__ = [
    "AnsweredResult",
    "predicted_category",
    "seed_official_replies",
    "submit_answered",
]
