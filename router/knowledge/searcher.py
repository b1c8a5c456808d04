"""This process's answer index per database, rebuilt when the articles change.

Every search first reads the articles' stamp (the highest id and the latest ``updated_at``: two
index lookups); when it moved, one thread rebuilds the index while the others keep answering
from the previous one. A rebuild segments only the articles that are new or changed since the
last one (each article's terms are kept, joined in one string, by id and revision; only those
texts are read). The index holds at most ``max_articles`` approved articles, the newest.
"""

from __future__ import annotations

import threading
import weakref
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from classifier.text import TextPipeline
from router.knowledge import service
from router.knowledge.retrieval import AnswerIndex, Hit, Tokenizer

__all__ = ["KnowledgeSearcher", "searcher_for"]

MAX_ARTICLES = 200_000


class KnowledgeSearcher:
    def __init__(
        self,
        *,
        tokenize: Tokenizer | None = None,
        max_articles: int = MAX_ARTICLES,
        category_weight: float = 0.5,
    ) -> None:
        self.tokenize: Tokenizer = tokenize or TextPipeline().tokens
        self.max_articles = max_articles
        self.category_weight = category_weight
        self._index = AnswerIndex(self.tokenize, category_weight=category_weight).fit([])
        self._stamp: tuple[Any, ...] | None = None
        self._terms: dict[tuple[int, int], str] = {}
        self._building = threading.Lock()

    @property
    def size(self) -> int:
        return len(self._index)

    def refresh(self, db_session: Session) -> bool:
        """Rebuild if the articles changed; True when this call rebuilt. While another thread
        rebuilds, the previous index keeps answering (unless there is none yet)."""
        stamp = service.index_stamp(db_session=db_session)
        if stamp == self._stamp:
            return False
        blocking = self._stamp is None
        if not self._building.acquire(blocking=blocking):
            return False
        try:
            if stamp == self._stamp:  # another thread rebuilt meanwhile
                return False
            documents = service.index_documents(
                db_session=db_session,
                limit=self.max_articles,
                known=self._terms,
                tokenize=self.tokenize,
            )
            terms = {(d.id, d.revision): d.terms or "" for d in documents}
            index = AnswerIndex(self.tokenize, category_weight=self.category_weight).fit(documents)
            self._index, self._terms, self._stamp = index, terms, stamp
            return True
        finally:
            self._building.release()

    def search(
        self,
        db_session: Session,
        text: str,
        *,
        category_code: str | None = None,
        now: datetime | None = None,
        k: int = 3,
    ) -> list[Hit]:
        """The ``k`` best approved articles valid at ``now`` for ``text``."""
        self.refresh(db_session)
        return self._index.search(text, category_code=category_code, k=k, now=now)


_searchers: weakref.WeakKeyDictionary[Any, KnowledgeSearcher] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def searcher_for(database: Any) -> KnowledgeSearcher:
    """This process's searcher for ``database`` (any weakly referable object standing for one)."""
    with _lock:
        searcher = _searchers.get(database)
        if searcher is None:
            searcher = _searchers[database] = KnowledgeSearcher()
        return searcher
