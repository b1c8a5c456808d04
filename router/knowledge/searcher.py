"""This process's answer index per database, rebuilt when the articles change.

Every search first reads the articles' stamp (the highest id and the latest ``updated_at``: two
index lookups); when it moved, one thread rebuilds the index while the others keep answering
from the previous one; a large index is rebuilt in a background thread. A rebuild segments only
the articles that are new or changed since the last one (each article's terms are kept, joined
in one string, by id and revision; only those texts are read). The index holds at most
``max_articles`` approved articles, the newest.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from classifier.text import TextPipeline
from router.knowledge import service
from router.knowledge.retrieval import AnswerIndex, Hit, Tokenizer

__all__ = ["KnowledgeSearcher", "searcher_for"]

MAX_ARTICLES = 200_000
BACKGROUND_FROM = 10_000
"""From this many articles on, a rebuild runs in the background (about 1.4 s at 10,000)."""
log = logging.getLogger(__name__)


class KnowledgeSearcher:
    def __init__(
        self,
        *,
        tokenize: Tokenizer | None = None,
        max_articles: int = MAX_ARTICLES,
        category_weight: float = 0.5,
        background_from: int = BACKGROUND_FROM,
    ) -> None:
        self.tokenize: Tokenizer = tokenize or TextPipeline().tokens
        self.max_articles = max_articles
        self.category_weight = category_weight
        self.background_from = background_from
        self._index = AnswerIndex(self.tokenize, category_weight=category_weight).fit([])
        self._stamp: tuple[Any, ...] | None = None
        self._terms: dict[tuple[int, int], str] = {}
        self._building = threading.Lock()

    @property
    def size(self) -> int:
        return len(self._index)

    def refresh(
        self,
        db_session: Session,
        *,
        session_factory: Callable[[], AbstractContextManager[Session]] | None = None,
    ) -> bool:
        """Rebuild if the articles changed; True when this call rebuilt (or started a rebuild).

        While another thread rebuilds, the previous index keeps answering (unless there is none
        yet). With ``session_factory`` and an index of at least ``background_from`` articles, the
        rebuild runs in a background thread with its own session, so that no search waits for
        it (a rebuild of 100,000 articles takes seconds); smaller indexes rebuild at once.
        """
        stamp = service.index_stamp(db_session=db_session)
        if stamp == self._stamp:
            return False
        blocking = self._stamp is None
        if not self._building.acquire(blocking=blocking):
            return False
        if session_factory is not None and self.size >= self.background_from:
            threading.Thread(
                target=self._rebuild_in_background,
                args=(session_factory,),
                name="knowledge-rebuild",
                daemon=True,
            ).start()
            return True
        try:
            return self._rebuild(db_session, stamp)
        finally:
            self._building.release()

    def _rebuild_in_background(
        self, session_factory: Callable[[], AbstractContextManager[Session]]
    ) -> None:
        try:
            with session_factory() as db_session:
                self._rebuild(db_session, service.index_stamp(db_session=db_session))
        except Exception:  # the next search tries again
            log.exception("rebuilding the knowledge index failed")
        finally:
            self._building.release()

    def _rebuild(self, db_session: Session, stamp: tuple[Any, ...]) -> bool:
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

    def search(
        self,
        db_session: Session,
        text: str,
        *,
        category_code: str | None = None,
        now: datetime | None = None,
        k: int = 3,
        session_factory: Callable[[], AbstractContextManager[Session]] | None = None,
    ) -> list[Hit]:
        """The ``k`` best approved articles valid at ``now`` for ``text`` (see :meth:`refresh`
        for ``session_factory``)."""
        self.refresh(db_session, session_factory=session_factory)
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
