"""Tables of the knowledge base: answer articles (知识库条目)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from router.orm import Base, BigId, utcnow


class KnowledgeArticle(Base):
    """One answer: the question it answers, the answer, where it came from and while it holds.

    ``state`` is draft, proposed (a department's proposal), approved (what agents are shown)
    or retired. ``source`` says where the answer came from (``official_reply`` for the seeded
    public replies, ``work_order`` for a closed order's reply, ``manual``); ``source_ref``
    identifies it there (the order number, the seed row), unique per source so that seeding and
    proposing are idempotent. ``updated_at`` moves on every change: the search index compares
    it to know when to rebuild.
    """

    __tablename__ = "knowledge_articles"
    __table_args__ = (
        UniqueConstraint("source", "source_ref"),
        Index("ix_knowledge_articles_state_category", "state", "category_code"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    state: Mapped[str] = mapped_column(String(16))
    category_code: Mapped[str | None] = mapped_column(ForeignKey("categories.code"))
    category_path: Mapped[str] = mapped_column(String(400), default="")
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(32))
    source_ref: Mapped[str | None] = mapped_column(String(128))
    source_date: Mapped[datetime | None]
    """When the answer was given (the reply's date), shown beside the suggestion."""
    valid_from: Mapped[datetime | None]
    valid_to: Mapped[datetime | None]
    owner_department_code: Mapped[str | None] = mapped_column(
        ForeignKey("departments.code"), index=True
    )
    created_by: Mapped[str] = mapped_column(String(64))
    updated_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, index=True)
    revision: Mapped[int] = mapped_column(Integer, default=1)
