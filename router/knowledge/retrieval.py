"""Answer retrieval (pure): TF-IDF over jieba terms of question and answer, boosted by category.

An article's score is the cosine similarity of the typed text and the article (sublinear TF-IDF
over the terms of the classifier's text pipeline, L2-normalised), times
``1 + category_weight * agreement`` where ``agreement`` is how far the article's category and
the category the classifier predicts for the typed text agree: 1 for the same leaf, 0.6 for the
same level-2 category, 0.3 for the same level-1 category, 0 otherwise (category codes are
hierarchical: ``01`` → ``0101`` → ``010101``). Articles sharing no term with the text score 0
and are never suggested, whatever their category.

The index holds the term matrix transposed (terms x articles, CSR), so a query reads only the
rows of its own terms: its cost grows with the articles that share a term, not with the index.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

__all__ = ["TERM_SEPARATOR", "AnswerIndex", "Document", "Hit", "category_agreement", "join_terms"]

Tokenizer = Callable[[str], list[str]]
TERM_SEPARATOR = "\x1f"
"""Joins an article's terms into one string (normalised text holds no control characters): one
string per article instead of a list of term strings keeps a large index's term cache small."""


def join_terms(terms: Sequence[str]) -> str:
    return TERM_SEPARATOR.join(terms)


def _split_terms(joined: str) -> list[str]:
    return joined.split(TERM_SEPARATOR) if joined else []


_LEVEL_AGREEMENT = {6: 1.0, 4: 0.6, 2: 0.3}


def category_agreement(a: str | None, b: str | None) -> float:
    """1 for the same leaf, 0.6 the same level-2, 0.3 the same level-1 category, else 0."""
    if not a or not b:
        return 0.0
    if a == b:
        return 1.0
    for length, value in sorted(_LEVEL_AGREEMENT.items(), reverse=True):
        if len(a) >= length and len(b) >= length and a[:length] == b[:length]:
            return value
    return 0.0


@dataclass(frozen=True)
class Document:
    """What the index needs of an article."""

    id: int
    text: str
    category_code: str | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    revision: int = 0
    terms: str | None = None
    """The terms of ``text`` joined by :func:`join_terms` when already known (a rebuild reuses
    them); else ``text`` is tokenized."""


@dataclass(frozen=True)
class Hit:
    id: int
    score: float
    similarity: float
    category_agreement: float


def _as_is(tokens: list[str]) -> list[str]:
    return tokens


class AnswerIndex:
    """TF-IDF index of articles; `fit` then `search`.

    Parameters: ``tokenize`` turns raw text into terms (the classifier's
    ``TextPipeline.tokens``); ``category_weight`` how much category agreement multiplies the
    similarity by (0 turns the boost off); ``min_similarity`` the cosine below which an article
    is not suggested.
    """

    def __init__(
        self, tokenize: Tokenizer, *, category_weight: float = 0.5, min_similarity: float = 0.05
    ) -> None:
        self.tokenize = tokenize
        self.category_weight = category_weight
        self.min_similarity = min_similarity

    def fit(self, documents: Sequence[Document]) -> AnswerIndex:
        self.ids_ = np.array([d.id for d in documents], dtype=np.int64)
        self.categories_ = [d.category_code or "" for d in documents]
        self.valid_from_ = [d.valid_from for d in documents]
        self.valid_to_ = [d.valid_to for d in documents]
        self.vectorizer_ = TfidfVectorizer(
            analyzer=_as_is, sublinear_tf=True, norm="l2", dtype=np.float32
        )
        if documents:
            matrix = self.vectorizer_.fit_transform(
                _split_terms(d.terms) if d.terms is not None else self.tokenize(d.text)
                for d in documents
            )
        else:
            matrix = sparse.csr_matrix((0, 0), dtype=np.float32)
        self.terms_ = sparse.csr_matrix(matrix.T)
        # Category agreement by prefix: per level, each article's code prefix as a small integer
        # (level 0 = the whole code), so that a query compares integers of its candidates only.
        self.level_vocabulary_: dict[int, dict[str, int]] = {}
        self.level_ids_: dict[int, np.ndarray] = {}
        for length in (0, 2, 4):
            vocabulary: dict[str, int] = {}
            prefixes = [c[:length] if length else c for c in self.categories_]
            self.level_ids_[length] = np.array(
                [vocabulary.setdefault(p, len(vocabulary)) for p in prefixes], dtype=np.int32
            )
            self.level_vocabulary_[length] = vocabulary
        return self

    def __len__(self) -> int:
        return len(self.ids_) if hasattr(self, "ids_") else 0

    @property
    def nbytes(self) -> int:
        """Memory of the arrays the index keeps (matrix, ids and category codes)."""
        if not hasattr(self, "terms_"):
            return 0
        matrix = self.terms_.data.nbytes + self.terms_.indices.nbytes + self.terms_.indptr.nbytes
        codes = sum(a.nbytes for a in self.level_ids_.values())
        return int(matrix + self.ids_.nbytes + codes)

    def _agreement(self, category_code: str, candidates: np.ndarray) -> np.ndarray:
        agreement = np.zeros(candidates.size, dtype=np.float32)
        for length, value in ((2, 0.3), (4, 0.6), (0, 1.0)):
            if length and len(category_code) < length:
                continue
            wanted = self.level_vocabulary_[length].get(
                category_code[:length] if length else category_code, -1
            )
            agreement[self.level_ids_[length][candidates] == wanted] = value
        return agreement

    def search(
        self,
        text: str,
        *,
        category_code: str | None = None,
        k: int = 3,
        now: datetime | None = None,
        exclude: frozenset[int] = frozenset(),
    ) -> list[Hit]:
        """The ``k`` best articles for ``text``, best first; only articles valid at ``now``
        (when given) and not in ``exclude``."""
        if not hasattr(self, "terms_"):
            raise RuntimeError("AnswerIndex.search before fit")
        if not len(self.ids_) or k <= 0:
            return []
        vocabulary = self.vectorizer_.vocabulary_
        counts: dict[int, int] = {}
        for token in self.tokenize(text):
            column = vocabulary.get(token)
            if column is not None:
                counts[column] = counts.get(column, 0) + 1
        if not counts:
            return []
        columns = np.fromiter(counts, dtype=np.int64)
        tf = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float32))
        weights = tf * self.vectorizer_.idf_[columns].astype(np.float32)
        weights /= np.linalg.norm(weights)
        rows = self.terms_[columns]
        similarity = np.asarray(rows.T @ weights).ravel()
        candidates = np.flatnonzero(similarity >= self.min_similarity)
        if not candidates.size:
            return []
        agreement = (
            self._agreement(category_code, candidates)
            if category_code and self.category_weight
            else np.zeros(candidates.size, dtype=np.float32)
        )
        scores = similarity[candidates] * (1.0 + self.category_weight * agreement)
        # The best few first (a partial sort); the rest only when validity or `exclude` ate them.
        wanted = min(scores.size, 4 * k + len(exclude))
        if wanted < scores.size:
            top = np.argpartition(-scores, wanted - 1)[:wanted]
            hits = self._hits(
                top[np.argsort(-scores[top], kind="stable")],
                candidates,
                scores,
                similarity,
                agreement,
                k,
                now,
                exclude,
            )
            if len(hits) == k:
                return hits
        order = np.argsort(-scores, kind="stable")
        return self._hits(order, candidates, scores, similarity, agreement, k, now, exclude)

    def _hits(
        self,
        order: np.ndarray,
        candidates: np.ndarray,
        scores: np.ndarray,
        similarity: np.ndarray,
        agreement: np.ndarray,
        k: int,
        now: datetime | None,
        exclude: frozenset[int],
    ) -> list[Hit]:
        hits: list[Hit] = []
        for position in order:
            index = int(candidates[position])
            article_id = int(self.ids_[index])
            if article_id in exclude or not self._valid(index, now):
                continue
            hits.append(
                Hit(
                    id=article_id,
                    score=float(scores[position]),
                    similarity=float(similarity[index]),
                    category_agreement=float(agreement[position]),
                )
            )
            if len(hits) == k:
                break
        return hits

    def _valid(self, index: int, now: datetime | None) -> bool:
        if now is None:
            return True
        start, end = self.valid_from_[index], self.valid_to_[index]
        return (start is None or start <= now) and (end is None or now < end)
