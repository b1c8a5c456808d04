"""Sparse TF-IDF features of segmented appeals, computed in bulk with numpy.

A document is its filtered words and its "compact" text (letters and digits only). Its features
are word unigrams, word bigrams (adjacent filtered words) and character n-grams of the compact
text. Every feature is one int64 key: a 3-bit kind above 60 bits of payload (word ids, or up to
three 20-bit code points), so that counting, vocabulary selection and look-up are numpy array
operations over a whole batch rather than Python work per feature. Weights are scikit-learn's
TF-IDF with `sublinear_tf=True, smooth_idf=True, norm="l2"`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["FeatureSpace", "TokenBatch"]

_KIND_SHIFT = 60
_CHAR, _WORD, _BIGRAM = 1, 2, 3
_CP_BITS = 20
_CP_MAX = (1 << _CP_BITS) - 1
_WID_BITS = 30
CHAR_PREFIX = "#"


@dataclass
class TokenBatch:
    """Documents as flat arrays: word ids (-1: unknown word) and code points, with offsets."""

    word_ids: np.ndarray
    word_offsets: np.ndarray
    chars: np.ndarray
    char_offsets: np.ndarray

    @property
    def n_docs(self) -> int:
        return len(self.word_offsets) - 1

    @classmethod
    def build(
        cls, words: Sequence[Sequence[str]], compacts: Sequence[str], word_id: dict[str, int]
    ) -> TokenBatch:
        """Look words up in `word_id` (unknown: -1)."""
        get = word_id.get
        flat = [get(w, -1) for doc in words for w in doc]
        return cls._from(flat, words, compacts)

    @classmethod
    def build_growing(
        cls, words: Sequence[Sequence[str]], compacts: Sequence[str], word_id: dict[str, int]
    ) -> TokenBatch:
        """Like `build`, adding unknown words to `word_id` (while fitting)."""
        flat = []
        for doc in words:
            for w in doc:
                i = word_id.get(w)
                if i is None:
                    i = word_id[w] = len(word_id)
                flat.append(i)
        return cls._from(flat, words, compacts)

    @classmethod
    def _from(
        cls, flat: list[int], words: Sequence[Sequence[str]], compacts: Sequence[str]
    ) -> TokenBatch:
        word_offsets = np.zeros(len(words) + 1, dtype=np.int64)
        np.cumsum([len(d) for d in words], out=word_offsets[1:])
        char_offsets = np.zeros(len(compacts) + 1, dtype=np.int64)
        np.cumsum([len(c) for c in compacts], out=char_offsets[1:])
        chars = np.frombuffer("".join(compacts).encode("utf-32-le"), dtype=np.uint32)
        return cls(
            np.asarray(flat, dtype=np.int64),
            word_offsets,
            np.minimum(chars, _CP_MAX).astype(np.int64),
            char_offsets,
        )


def _doc_of(offsets: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets))


def batch_keys(
    batch: TokenBatch, word_ngrams: int, char_ngrams: tuple[int, int] | None
) -> tuple[np.ndarray, np.ndarray]:
    """(document index, feature key) of every feature occurrence in `batch`."""
    docs, keys = zip(*_key_parts(batch, word_ngrams, char_ngrams), strict=True)
    return np.concatenate(docs), np.concatenate(keys)


def _key_parts(
    batch: TokenBatch, word_ngrams: int, char_ngrams: tuple[int, int] | None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(document index, feature key) per kind of feature; character unigrams come last."""
    docs: list[np.ndarray] = []
    keys: list[np.ndarray] = []
    wid = batch.word_ids
    wdoc = _doc_of(batch.word_offsets)
    known = wid >= 0
    docs.append(wdoc[known])
    keys.append(wid[known] | (_WORD << _KIND_SHIFT))
    if word_ngrams >= 2 and len(wid) > 1:
        pair = known[:-1] & known[1:] & (wdoc[:-1] == wdoc[1:])
        docs.append(wdoc[:-1][pair])
        keys.append((wid[:-1][pair] << _WID_BITS) | wid[1:][pair] | (_BIGRAM << _KIND_SHIFT))
    if char_ngrams and len(batch.chars):
        lo, hi = char_ngrams
        cp = batch.chars
        cdoc = _doc_of(batch.char_offsets)
        end = batch.char_offsets[1:][cdoc]
        pos = np.arange(len(cp), dtype=np.int64)
        gram = cp.copy()
        for n in range(1, hi + 1):
            if n > 1:
                gram = (gram[:-1] << _CP_BITS) | cp[n - 1 :]
            if n >= lo:
                valid = pos[: len(gram)] + n <= end[: len(gram)]
                docs.append(cdoc[: len(gram)][valid])
                keys.append(gram[valid] | (_CHAR << _KIND_SHIFT))
        if lo == 1:  # unigrams last: `transform` looks them up in a direct table
            docs.append(docs.pop(len(docs) - hi))
            keys.append(keys.pop(len(keys) - hi))
    return list(zip(docs, keys, strict=True))


def _count(
    docs: np.ndarray, keys: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct keys, and (document, key index, count) triples sorted by document then key."""
    unique, inverse = np.unique(keys, return_inverse=True)
    width = max(len(unique), 1)
    pairs, counts = np.unique(docs * width + inverse.ravel(), return_counts=True)
    return unique, pairs // width, pairs % width, counts


class FeatureSpace:
    """Vocabulary (sorted keys → columns), idf and the word table; builds TF-IDF rows."""

    def __init__(self, word_ngrams: int, char_ngrams: tuple[int, int] | None) -> None:
        self.word_ngrams = word_ngrams
        self.char_ngrams = (int(char_ngrams[0]), int(char_ngrams[1])) if char_ngrams else None
        self.word_id: dict[str, int] = {}
        self.words: list[str] = []
        self.keys = np.zeros(0, dtype=np.int64)
        self.idf = np.zeros(0, dtype=np.float64)

    @property
    def n_features(self) -> int:
        return len(self.keys)

    # --- fit ----------------------------------------------------------------------------------

    def fit_transform(
        self,
        chunks: Iterable[tuple[Sequence[Sequence[str]], Sequence[str]]],
        min_df: int,
        max_features: int | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Learn the vocabulary from chunks of (words, compacts) and return the CSR arrays
        (indptr, indices, data) of all documents. Keeps features in at least `min_df`
        documents, then the `max_features` most frequent (by document frequency)."""
        growing: dict[str, int] = {}
        counted: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]] = []
        for words, compacts in chunks:
            batch = TokenBatch.build_growing(words, compacts, growing)
            unique, doc, local, count = _count(
                *batch_keys(batch, self.word_ngrams, self.char_ngrams)
            )
            counted.append((unique, doc, local, count, batch.n_docs))
        n_docs = sum(c[4] for c in counted)
        all_keys, inverse = np.unique(np.concatenate([c[0] for c in counted]), return_inverse=True)
        df = np.zeros(len(all_keys), dtype=np.int64)
        start = 0
        for unique, _, local, _, _ in counted:
            part = inverse[start : start + len(unique)]
            df[part] += np.bincount(local, minlength=len(unique))
            start += len(unique)
        keep = np.flatnonzero(df >= min_df)
        if max_features is not None and len(keep) > max_features:
            top = np.argsort(-df[keep], kind="stable")[:max_features]
            keep = np.sort(keep[top])
        old_keys, kept_df = all_keys[keep], df[keep]

        # Renumber the words that kept features use, densely, and re-key the vocabulary.
        kind = old_keys >> _KIND_SHIFT
        payload = old_keys & ((1 << _KIND_SHIFT) - 1)
        mask = (1 << _WID_BITS) - 1
        used = np.unique(
            np.concatenate(
                [
                    payload[kind == _WORD],
                    payload[kind == _BIGRAM] >> _WID_BITS,
                    payload[kind == _BIGRAM] & mask,
                ]
            )
        )
        by_id = np.empty(len(growing), dtype=object)
        for w, i in growing.items():
            by_id[i] = w
        self.words = [str(w) for w in by_id[used]]
        self.word_id = {w: i for i, w in enumerate(self.words)}
        renum = np.full(len(growing) + 1, -1, dtype=np.int64)
        renum[used] = np.arange(len(used))
        new_payload = payload.copy()
        is_word = kind == _WORD
        is_bigram = kind == _BIGRAM
        new_payload[is_word] = renum[payload[is_word]]
        new_payload[is_bigram] = (renum[payload[is_bigram] >> _WID_BITS] << _WID_BITS) | renum[
            payload[is_bigram] & mask
        ]
        new_keys = new_payload | (kind << _KIND_SHIFT)
        order = np.argsort(new_keys)
        self.keys = new_keys[order]
        col_of_old = np.empty(len(order), dtype=np.int64)
        col_of_old[order] = np.arange(len(order))
        self.idf = np.log((1.0 + n_docs) / (1.0 + kept_df[order])) + 1.0

        # Rows: map every chunk's keys to columns (old key order → new columns).
        indptr = [np.zeros(1, dtype=np.int64)]
        indices, data = [], []
        offset = 0
        for unique, doc, local, count, n_chunk in counted:
            pos = np.searchsorted(old_keys, unique)
            pos = np.minimum(pos, max(len(old_keys) - 1, 0))
            hit = old_keys[pos] == unique if len(old_keys) else np.zeros(len(unique), bool)
            col = np.where(hit, col_of_old[pos] if len(old_keys) else 0, -1)
            cols = col[local]
            rows_p, rows_i, rows_d = self._rows(doc, cols, count, n_chunk)
            indptr.append(rows_p[1:] + offset)
            offset += len(rows_i)
            indices.append(rows_i)
            data.append(rows_d)
        return np.concatenate(indptr), np.concatenate(indices), np.concatenate(data)

    # --- transform ----------------------------------------------------------------------------

    def transform(
        self, words: Sequence[Sequence[str]], compacts: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CSR arrays (indptr, indices int32, data float32) of the TF-IDF rows of documents."""
        batch = TokenBatch.build(words, compacts, self.word_id)
        parts = _key_parts(batch, self.word_ngrams, self.char_ngrams)
        n = len(words)
        if len(self.keys) == 0:
            return np.zeros(n + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32)
        all_docs, all_cols = [], []
        for k, (docs, keys) in enumerate(parts):
            if self.char_ngrams and self.char_ngrams[0] == 1 and k == len(parts) - 1:
                # character unigrams: a direct table over the Basic Multilingual Plane
                cp = keys & _CP_MAX
                cols = self._unigram_table()[np.minimum(cp, 0xFFFF)]
                cols[cp > 0xFFFF] = -1
                rare = np.flatnonzero(cp > 0xFFFF)
                if len(rare):
                    cols[rare] = self._search(keys[rare])
            else:
                cols = self._search(keys)
            hit = cols >= 0
            all_docs.append(docs[hit])
            all_cols.append(cols[hit])
        docs, cols = np.concatenate(all_docs), np.concatenate(all_cols)
        pairs, counts = np.unique(docs * len(self.keys) + cols, return_counts=True)
        return self._rows(pairs // len(self.keys), pairs % len(self.keys), counts, n)

    def _search(self, keys: np.ndarray) -> np.ndarray:
        """Column of each key, -1 where not in the vocabulary."""
        pos = np.searchsorted(self.keys, keys)
        np.minimum(pos, len(self.keys) - 1, out=pos)
        return np.where(self.keys[pos] == keys, pos, -1)

    def _unigram_table(self) -> np.ndarray:
        table = self.__dict__.get("_unigrams")
        if table is None:
            table = np.full(0x10000, -1, dtype=np.int64)
            lo, hi = np.searchsorted(
                self.keys, [_CHAR << _KIND_SHIFT, (_CHAR << _KIND_SHIFT) + 0x10000]
            )
            table[self.keys[lo:hi] & _CP_MAX] = np.arange(lo, hi)
            self._unigrams = table
        return table

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state.pop("_unigrams", None)  # rebuilt on first use
        return state

    def _rows(
        self, doc: np.ndarray, cols: np.ndarray, counts: np.ndarray, n_docs: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keep = cols >= 0
        doc, cols = doc[keep], cols[keep]
        values = (np.log(counts[keep].astype(np.float64)) + 1.0) * self.idf[cols]
        norms = np.sqrt(np.bincount(doc, weights=values * values, minlength=n_docs))
        norms[norms == 0] = 1.0
        values /= norms[doc]
        indptr = np.zeros(n_docs + 1, dtype=np.int64)
        np.cumsum(np.bincount(doc, minlength=n_docs), out=indptr[1:])
        return indptr, cols.astype(np.int32), values.astype(np.float32)

    # --- names --------------------------------------------------------------------------------

    def is_char(self, columns: np.ndarray) -> np.ndarray:
        """Which of `columns` are character n-grams."""
        return (self.keys[columns] >> _KIND_SHIFT) == _CHAR

    def name(self, column: int) -> str:
        """Readable name of a feature: a word, "w1 w2", or "#" + characters."""
        key = int(self.keys[column])
        kind, payload = key >> _KIND_SHIFT, key & ((1 << _KIND_SHIFT) - 1)
        if kind == _WORD:
            return self.words[payload]
        if kind == _BIGRAM:
            mask = (1 << _WID_BITS) - 1
            return f"{self.words[payload >> _WID_BITS]} {self.words[payload & mask]}"
        chars = []
        while payload:
            chars.append(chr(payload & _CP_MAX))
            payload >>= _CP_BITS
        return CHAR_PREFIX + "".join(reversed(chars))
