"""Knowledge base (知识库): suggested answers while the agent types, articles and their review,
departments' proposals, and a consultation answered and closed at intake (直接办结).

Who may do what: agents and supervisors search and answer at intake; the centre (agents,
supervisors, admins) reads articles; a department only proposes an article from the reply of one
of its own closed orders (another department's order is a 404, as everywhere); supervisors
create, approve, edit and retire. Every change is audited (``knowledge.*``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from router.knowledge import service as knowledge
from router.knowledge.models import KnowledgeArticle
from router.knowledge.searcher import searcher_for
from router.knowledge.service import ArticleState
from router.orm import utcnow
from router.workorders import queries
from router.workorders.workflow import Role
from service import knowledge as knowledge_service
from service.api.appeals import AppealCreate
from service.api.deps import DbSession, Offset
from service.api.responses import LocalTimeJSONResponse
from service.api.security import department_scope, require_roles
from service.auth import audit
from service.auth.masking import mask_text
from service.auth.security import Actor
from service.config import get_settings
from service.runtime import get_database

router = APIRouter(prefix="/api/v1", tags=["knowledge"])

AgentActor = Annotated[Actor, Depends(require_roles(Role.AGENT, Role.SUPERVISOR))]
CentreActor = Annotated[Actor, Depends(require_roles(Role.AGENT, Role.SUPERVISOR, Role.ADMIN))]
DepartmentActor = Annotated[Actor, Depends(require_roles(Role.DEPARTMENT))]
SupervisorActor = Annotated[Actor, Depends(require_roles(Role.SUPERVISOR))]
ArticleId = Annotated[int, Path(ge=1, le=2**63 - 1)]
ERRORS: dict[int | str, dict[str, Any]] = {400: {}, 403: {}, 404: {}, 409: {}}
EXCERPT_LENGTH = 120
Category = Annotated[str | None, Field(default=None, min_length=1, max_length=16)]
Department = Annotated[str | None, Field(default=None, min_length=1, max_length=32)]
NoNul = r"^[^\x00]*$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SuggestionQuery(_Body):
    text: str = Field(min_length=1, max_length=2000, pattern=NoNul)
    category_code: Category
    """The category the console already has; else the classifier predicts one."""
    k: int = Field(default=3, ge=1, le=10)


class SuggestedAnswer(BaseModel):
    id: int
    question: str
    answer: str
    excerpt: str
    source: str
    source_date: datetime | None
    category_code: str | None
    category_path: str
    owner_department_code: str | None
    score: float


class SuggestionList(BaseModel):
    category_code: str | None
    """The category the suggestions were boosted by (given or predicted)."""
    items: list[SuggestedAnswer]


class ArticleRead(BaseModel):
    id: int
    state: str
    category_code: str | None
    category_path: str
    question: str
    answer: str
    source: str
    source_ref: str | None
    source_date: datetime | None
    valid_from: datetime | None
    valid_to: datetime | None
    owner_department_code: str | None
    created_by: str
    updated_by: str
    created_at: datetime
    updated_at: datetime
    revision: int


class ArticleList(BaseModel):
    items: list[ArticleRead]
    total: int


class ArticleCreate(_Body):
    question: str = Field(min_length=1, max_length=2000, pattern=NoNul)
    answer: str = Field(min_length=1, max_length=5000, pattern=NoNul)
    category_code: Category
    owner_department_code: Department
    valid_from: AwareDatetime | None = None
    valid_to: AwareDatetime | None = None
    approve: bool = False
    """Publish at once (else a draft)."""


class ArticleUpdate(_Body):
    question: str | None = Field(default=None, min_length=1, max_length=2000, pattern=NoNul)
    answer: str | None = Field(default=None, min_length=1, max_length=5000, pattern=NoNul)
    category_code: Category
    owner_department_code: Department
    valid_from: AwareDatetime | None = None
    valid_to: AwareDatetime | None = None


class RetireCreate(_Body):
    reason: str = Field(min_length=1, max_length=500, pattern=NoNul)


class ProposalCreate(_Body):
    work_order_number: str = Field(min_length=1, max_length=32, pattern=NoNul)
    question: str | None = Field(default=None, min_length=1, max_length=2000, pattern=NoNul)
    answer: str | None = Field(default=None, min_length=1, max_length=5000, pattern=NoNul)
    valid_to: AwareDatetime | None = None


class ProposalsFromOrdersCreate(_Body):
    since: AwareDatetime | None = None
    limit: int = Field(default=200, ge=1, le=1000)


class AnsweredAppealCreate(AppealCreate):
    appeal_type: Literal["consultation"]
    answer: str = Field(min_length=1, max_length=5000, pattern=NoNul)
    article_id: int | None = Field(default=None, ge=1, le=2**63 - 1)


class AnsweredAppealRead(BaseModel):
    number: str
    state: str
    article_id: int | None
    callbacks: int
    """Callbacks scheduled by this closure (0 on an idempotent replay)."""


def _read(article: KnowledgeArticle) -> ArticleRead:
    return ArticleRead.model_validate(article, from_attributes=True)


def _audit(
    db_session: DbSession, actor: Actor, action: str, article: KnowledgeArticle, **detail: Any
) -> None:
    audit.record(
        db_session=db_session,
        actor=actor,
        action=f"knowledge.{action}",
        target_type="knowledge_article",
        target_id=article.id,
        detail={"state": article.state, "revision": article.revision, **detail},
    )


# -- agents: suggestions and answering at intake ------------------------------------------------


@router.post("/knowledge/suggestions", response_model=SuggestionList, responses=ERRORS)
def suggest_answers(
    body: SuggestionQuery, db_session: DbSession, actor: AgentActor
) -> SuggestionList:
    """The best approved, currently valid answers for what the agent is typing."""
    category = body.category_code or knowledge_service.predicted_category(get_settings(), body.text)
    database = get_database()
    hits = searcher_for(database).search(
        db_session,
        body.text,
        category_code=category,
        now=utcnow(),
        k=body.k,
        session_factory=database.session,
    )
    rows = knowledge.articles_by_id(db_session=db_session, ids=[hit.id for hit in hits])
    items = []
    for hit in hits:
        article = rows.get(hit.id)
        if article is None or article.state != ArticleState.APPROVED:
            continue  # changed since the index was built
        items.append(
            SuggestedAnswer(
                id=article.id,
                # Seeded questions are citizens' messages: masked like every list.
                question=mask_text(article.question) or "",
                answer=article.answer,
                excerpt=article.answer[:EXCERPT_LENGTH],
                source=article.source,
                source_date=article.source_date,
                category_code=article.category_code,
                category_path=article.category_path,
                owner_department_code=article.owner_department_code,
                score=round(hit.score, 4),
            )
        )
    return SuggestionList(category_code=category, items=items)


@router.post(
    "/appeals/answered",
    status_code=201,
    response_model=AnsweredAppealRead,
    responses={200: {"model": AnsweredAppealRead, "description": "Replay"}, **ERRORS},
)
def answer_at_intake(
    body: AnsweredAppealCreate,
    actor: AgentActor,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> Any:
    """直接办结: store a consultation, close it with the agent's answer, schedule its callback."""
    appeal = body.to_input(idempotency_key)
    result = knowledge_service.submit_answered(
        database=get_database(),
        settings=get_settings(),
        appeal=appeal,
        answer=body.answer,
        article_id=body.article_id,
        actor=actor,
    )
    read = AnsweredAppealRead(
        number=result.number,
        state=result.state,
        article_id=result.article_id,
        callbacks=result.callbacks,
    )
    return LocalTimeJSONResponse(
        read.model_dump(mode="json"), status_code=201 if result.created else 200
    )


# -- reading --------------------------------------------------------------------------------------


@router.get("/knowledge/articles", response_model=ArticleList, responses=ERRORS)
def list_articles(
    db_session: DbSession,
    actor: CentreActor,
    state: Annotated[ArticleState | None, Query()] = None,
    category_code: Annotated[str | None, Query(min_length=1, max_length=16)] = None,
    owner_department_code: Annotated[str | None, Query(min_length=1, max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> ArticleList:
    """Articles, most recently changed first."""
    page = knowledge.list_articles(
        db_session=db_session,
        state=state,
        category_code=category_code,
        owner_department_code=owner_department_code,
        limit=limit,
        offset=offset,
    )
    return ArticleList(items=[_read(a) for a in page.items], total=page.total)


@router.get("/knowledge/articles/{article_id}", response_model=ArticleRead, responses=ERRORS)
def get_article(article_id: ArticleId, db_session: DbSession, actor: CentreActor) -> ArticleRead:
    return _read(knowledge.get_or_raise(db_session=db_session, article_id=article_id))


# -- departments: proposals -----------------------------------------------------------------------


@router.post("/knowledge/proposals", status_code=201, response_model=ArticleRead, responses=ERRORS)
def propose(body: ProposalCreate, db_session: DbSession, actor: DepartmentActor) -> ArticleRead:
    """Propose an article from the reply of one of the department's own closed orders."""
    order = queries.lock_by_number(
        db_session=db_session,
        number=body.work_order_number,
        department_code=department_scope(actor),
    )
    article = knowledge.propose_from_order(
        db_session=db_session,
        work_order=order,
        actor=actor.username,
        question=body.question,
        answer=body.answer,
        valid_to=body.valid_to,
    )
    _audit(db_session, actor, "propose", article, work_order=order.number)
    return _read(article)


# -- supervisors ---------------------------------------------------------------------------------


@router.post(
    "/knowledge/proposals/from-closed-orders", response_model=ArticleList, responses=ERRORS
)
def propose_from_closed_orders(
    body: ProposalsFromOrdersCreate, db_session: DbSession, actor: SupervisorActor
) -> ArticleList:
    """Proposed articles from closed orders' replies not proposed yet (the supervisor reviews
    them next)."""
    articles = knowledge.propose_from_closed_orders(
        db_session=db_session, actor=actor.username, since=body.since, limit=body.limit
    )
    for article in articles:
        _audit(db_session, actor, "propose", article, work_order=article.source_ref)
    return ArticleList(items=[_read(a) for a in articles], total=len(articles))


@router.post("/knowledge/articles", status_code=201, response_model=ArticleRead, responses=ERRORS)
def create_article(
    body: ArticleCreate, db_session: DbSession, actor: SupervisorActor
) -> ArticleRead:
    article = knowledge.create(
        db_session=db_session,
        question=body.question,
        answer=body.answer,
        actor=actor.username,
        state=ArticleState.APPROVED if body.approve else ArticleState.DRAFT,
        category_code=body.category_code,
        owner_department_code=body.owner_department_code,
        valid_from=body.valid_from,
        valid_to=body.valid_to,
    )
    _audit(db_session, actor, "create", article)
    return _read(article)


@router.patch("/knowledge/articles/{article_id}", response_model=ArticleRead, responses=ERRORS)
def edit_article(
    article_id: ArticleId, body: ArticleUpdate, db_session: DbSession, actor: SupervisorActor
) -> ArticleRead:
    """Change the given fields (an approved article stays approved)."""
    article = knowledge.get_or_raise(db_session=db_session, article_id=article_id, lock=True)
    before = knowledge.edit(
        db_session=db_session,
        article=article,
        actor=actor.username,
        changes=body.model_dump(exclude_unset=True),
    )
    # The old texts may quote a citizen: the audit log keeps which fields changed.
    _audit(db_session, actor, "edit", article, fields=sorted(before))
    return _read(article)


@router.post(
    "/knowledge/articles/{article_id}/approve", response_model=ArticleRead, responses=ERRORS
)
def approve_article(
    article_id: ArticleId,
    db_session: DbSession,
    actor: SupervisorActor,
    body: ArticleUpdate | None = None,
) -> ArticleRead:
    """Approve a draft or proposal, with the supervisor's edits if any."""
    article = knowledge.get_or_raise(db_session=db_session, article_id=article_id, lock=True)
    fields: list[str] = []
    if body is not None:
        changes = body.model_dump(exclude_unset=True)
        if changes:
            fields = sorted(
                knowledge.edit(
                    db_session=db_session, article=article, actor=actor.username, changes=changes
                )
            )
    knowledge.approve(db_session=db_session, article=article, actor=actor.username)
    _audit(db_session, actor, "approve", article, fields=fields)
    return _read(article)


@router.post(
    "/knowledge/articles/{article_id}/retire", response_model=ArticleRead, responses=ERRORS
)
def retire_article(
    article_id: ArticleId, body: RetireCreate, db_session: DbSession, actor: SupervisorActor
) -> ArticleRead:
    """Retire an article (or reject a proposal): agents no longer see it."""
    article = knowledge.get_or_raise(db_session=db_session, article_id=article_id, lock=True)
    knowledge.retire(db_session=db_session, article=article, actor=actor.username)
    _audit(db_session, actor, "retire", article, reason=body.reason)
    return _read(article)
