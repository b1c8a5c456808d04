"""Repeat appeals (并单): find recent appeals about the same problem at the same place, and keep
the record of merges so that every caller of a merged appeal still gets the callback.

Pure domain code: no clock, no I/O, no database. The service feeds a :class:`DuplicateIndex`
with the appeals of the last ``window`` (on start-up from the database, then one at a time on
arrival), asks :meth:`DuplicateIndex.check` for every new appeal, and persists the decisions made
with :func:`merge` / :func:`unmerge` (a :class:`MergeGroup` and its append-only
:class:`MergeEvent` history are plain values).

How a check works:

1. *Blocking.* Only appeals that share a block with the new one are scored: the same site
   (compound, road or landmark), the same street and category group, the same district and
   category group when a street is missing, a 3x3 neighbourhood of map cells when coordinates
   are given, the same caller, the same category group for appeals without any place, and
   the same "anchor" (one of the ``anchors`` heaviest bigrams, which finds the same problem
   when the place was not recognised). Each block is a time-ordered posting list; a query
   reads at most ``max_block_rows`` (anchors: ``max_anchor_rows``; the 8 map cells around
   the query's own: ``max_neighbour_rows``) recent rows of each.
2. *Text similarity* is ``title_weight`` x the title cosine + the rest x the full-text cosine,
   over sublinear TF-IDF vectors of character bigrams (no word segmentation in the hot path;
   without a title, the text's first clause stands in). Each stored appeal keeps only its
   ``sketch_size`` heaviest bigrams, normalised by its full vector's norm, so the stored
   cosine is a lower bound of the exact one. Place names given in
   ``AppealRecord.place_names`` are cut out of the texts first, so that sharing a compound
   name does not make two different problems look alike. Document frequencies accumulate
   from everything indexed (they are not decremented by :meth:`DuplicateIndex.prune`).
3. *Score* = text similarity x place factor x category factor x time factor (all factors in
   (0, 1]); the reasons behind each factor are returned with every candidate.

Errors (from :mod:`router.errors`): ``InvalidInput`` for a bad configuration or a naive
datetime; ``Conflict`` for an illegal merge; ``NotFound`` when unmerging a non-member.
"""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

import numpy as np

from router.errors import Conflict, InvalidInput, NotFound

__all__ = [
    "Action",
    "AppealRecord",
    "CallerRecord",
    "Candidate",
    "CategoryRelation",
    "DuplicateCheck",
    "DuplicateConfig",
    "DuplicateIndex",
    "MergeEvent",
    "MergeGroup",
    "PlaceRelation",
    "absorb",
    "cluster_links",
    "default_category_group",
    "find_clusters",
    "merge",
    "normalise_text",
    "unmerge",
]


def default_category_group(code: str) -> str:
    """The level-2 parent of a category code: the codes are hierarchical, 2 digits a level."""
    return code[:4]


@dataclass(frozen=True)
class DuplicateConfig:
    """Thresholds and sizes of duplicate detection; every score is in [0, 1]."""

    suggest_threshold: float = 0.35
    """From this score on, the agent is offered the merge."""
    auto_merge_threshold: float | None = None
    """From this score on, merge without asking; None = never merge automatically."""
    candidate_floor: float = 0.2
    """Candidates scoring below this are not returned at all."""
    repeat_text_threshold: float = 0.3
    """Same caller and at least this text similarity = the same problem again (重复来电)."""
    window: timedelta = timedelta(days=30)
    near_metres: float = 300.0
    """Appeals with coordinates closer than this are at the same place."""
    title_weight: float = 0.5
    """Share of the title in text similarity (the rest is the full text's)."""
    sketch_size: int = 48
    anchors: int = 4
    """Each appeal is also blocked under its this many heaviest bigrams (finds the same problem
    when the place is unknown or was not recognised)."""
    max_block_rows: int = 1_500
    max_anchor_rows: int = 600
    max_neighbour_rows: int = 500
    """Rows read from each of the 8 map cells around a query's own cell (its own cell, site,
    street and district get ``max_block_rows``): in a dense city the neighbourhood is what
    makes a check slow, and its rows are at most "nearby"."""
    max_scored_rows: int = 1_500
    """Beyond this many rows, only the best by their heaviest bigrams get the full comparison."""
    category_group: Callable[[str], str] = default_category_group
    """Maps a category code to its neighbourhood (default: the level-2 parent)."""

    def __post_init__(self) -> None:
        if not 0 < self.suggest_threshold <= 1:
            raise InvalidInput("suggest_threshold must be in (0, 1]")
        if self.auto_merge_threshold is not None and not (
            self.suggest_threshold <= self.auto_merge_threshold <= 1
        ):
            raise InvalidInput("auto_merge_threshold must be in [suggest_threshold, 1] or None")
        if not 0 <= self.candidate_floor <= self.suggest_threshold:
            raise InvalidInput("candidate_floor must be in [0, suggest_threshold]")
        if self.window <= timedelta(0):
            raise InvalidInput("window must be positive")
        if not 0 <= self.title_weight <= 1:
            raise InvalidInput("title_weight must be in [0, 1]")
        if self.sketch_size < 4 or not 0 <= self.anchors <= self.sketch_size:
            raise InvalidInput("sketch_size must be >= 4 and anchors in [0, sketch_size]")
        if (
            min(
                self.max_block_rows,
                self.max_anchor_rows,
                self.max_neighbour_rows,
                self.max_scored_rows,
            )
            < 1
        ):
            raise InvalidInput("every max_*_rows must be > 0")
        if self.near_metres <= 0:
            raise InvalidInput("near_metres must be > 0")


@dataclass(frozen=True)
class AppealRecord:
    """What duplicate detection needs to know about one appeal."""

    id: int
    received_at: datetime
    text: str
    category_code: str | None = None
    title: str = ""
    """The appeal's title (标题); without one, the text's first clause stands in."""
    site: str | None = None
    """The most specific place below a street: compound, road or landmark (name or code)."""
    street: str | None = None
    district: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    caller: str | None = None
    """A stable key of the caller (a hash of the phone number); None when anonymous."""
    place_names: tuple[str, ...] = ()
    """Place names as written in the text; they are cut out before comparing texts."""


class PlaceRelation(StrEnum):
    NEAR = "near"  # coordinates within near_metres
    SAME_SITE = "same_site"
    NEARBY = "nearby"  # coordinates within 3 x near_metres
    SAME_STREET = "same_street"  # one side has no site
    SAME_DISTRICT = "same_district"  # one side has no street
    UNKNOWN = "unknown"  # one side has no place at all
    DIFFERENT_SITE = "different_site"  # two different sites (possibly in the same street)
    DIFFERENT = "different"  # different streets or districts, or far apart on the map


class CategoryRelation(StrEnum):
    SAME = "same"
    NEIGHBOUR = "neighbour"  # same category group
    UNKNOWN = "unknown"  # one side is not classified
    DIFFERENT = "different"


class Action(StrEnum):
    NONE = "none"
    SUGGEST = "suggest"
    AUTO_MERGE = "auto_merge"


PLACE_FACTORS: dict[PlaceRelation, float] = {
    PlaceRelation.NEAR: 1.0,
    PlaceRelation.SAME_SITE: 1.0,
    PlaceRelation.NEARBY: 0.85,
    PlaceRelation.SAME_STREET: 0.85,
    PlaceRelation.SAME_DISTRICT: 0.75,
    PlaceRelation.UNKNOWN: 0.75,
    PlaceRelation.DIFFERENT_SITE: 0.3,
    PlaceRelation.DIFFERENT: 0.2,
}
CATEGORY_FACTORS: dict[CategoryRelation, float] = {
    CategoryRelation.SAME: 1.0,
    CategoryRelation.NEIGHBOUR: 0.9,
    CategoryRelation.UNKNOWN: 0.9,
    CategoryRelation.DIFFERENT: 0.6,
}
TIME_DECAY = 0.2
"""The time factor falls linearly from 1 (same instant) to 1 - TIME_DECAY (window apart)."""


@dataclass(frozen=True)
class Candidate:
    """An earlier appeal that may describe the same problem, with why."""

    appeal_id: int
    score: float
    text_similarity: float
    place: PlaceRelation
    category: CategoryRelation
    hours_apart: float
    same_caller: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class DuplicateCheck:
    """The decision for one new appeal.

    ``master_id`` is the best candidate's appeal; when that appeal is itself merged, the service
    merges into the master of its group instead.
    """

    appeal_id: int
    action: Action
    master_id: int | None
    candidates: tuple[Candidate, ...]
    repeat_of: tuple[int, ...]
    """Earlier appeals of the same caller about the same problem (flag: repeat caller)."""


# ----------------------------------------------------------------------------- text features

_NON_WORD = re.compile(r"[\W_]+")
_DF_BITS = 22
_SEP = "\x00"


def normalise_text(text: str, place_names: Sequence[str] = ()) -> str:
    """Lower-case `text`, cut out the place names and turn every run of punctuation or space
    into one separator (bigrams never span a separator)."""
    text = text.lower()
    for name in sorted(place_names, key=len, reverse=True):
        if name:
            text = text.replace(name.lower(), _SEP)
    return _NON_WORD.sub(_SEP, text)


_TITLE_SPACE = np.uint32(0x9E3779B1)  # odd: multiplying by it permutes the uint32 ids
_DF_HASH = np.uint32(2654435761)
_FIRST_CLAUSE = re.compile(r"[^，。！？；,.!?;\n]{1,40}")


def _title_of(appeal: AppealRecord) -> str:
    if appeal.title.strip():
        return appeal.title
    first = _FIRST_CLAUSE.search(appeal.text)
    return first.group(0) if first else ""


def _features(appeals: Sequence[AppealRecord]) -> _Features:
    """Distinct bigrams of every appeal: (doc, id, count, is_title), sorted by doc then id.

    A bigram id is the two characters' 16-bit code units side by side; title bigrams are moved
    to their own id space (a bijective multiplication) so that titles compare with titles.
    """
    titles, joined = [], []
    for appeal in appeals:
        title = normalise_text(_title_of(appeal), appeal.place_names)
        titles.append(len(title))
        joined.append(title + _SEP + normalise_text(appeal.text, appeal.place_names) + _SEP)
    lengths = np.fromiter((len(j) for j in joined), np.int64, len(joined))
    cp = np.frombuffer("".join(joined).encode("utf-32-le"), dtype=np.uint32)
    if len(cp) < 2:
        empty = np.zeros(0, np.int64)
        return _Features(empty, empty.astype(np.uint32), empty, empty.astype(bool))
    starts = np.cumsum(lengths) - lengths
    doc = np.repeat(np.arange(len(joined)), lengths)[:-1]
    ok = (cp[:-1] != 0) & (cp[1:] != 0)
    ids = ((cp[:-1] & 0xFFFF) << 16) | (cp[1:] & 0xFFFF)
    in_title = (np.arange(len(ids)) - starts[doc]) < np.asarray(titles, np.int64)[doc]
    ids = np.where(in_title, ids * _TITLE_SPACE, ids)[ok]
    doc = doc[ok]
    keys = (doc.astype(np.uint64) << np.uint64(32)) | ids.astype(np.uint64)
    unique, first_at, counts = np.unique(keys, return_index=True, return_counts=True)
    return _Features(
        (unique >> np.uint64(32)).astype(np.int64),
        (unique & np.uint64(0xFFFFFFFF)).astype(np.uint32),
        counts,
        in_title[ok][first_at],
    )


@dataclass(frozen=True)
class _Features:
    doc: np.ndarray
    ids: np.ndarray
    counts: np.ndarray
    is_title: np.ndarray


_PREFILTER_COLUMNS = 8
_TABLE_BITS = 17
_HASH_1 = np.uint32(2654435761)
_HASH_2 = np.uint32(0x85EBCA6B)


class _Query:
    """A query's bigram weights in two small hash tables (two-choice hashing), for row-wise
    dot products with stored sketches: several times faster than a binary search per
    element. Exact: when two ids collide in both tables, it falls back to the search."""

    def __init__(self, ids: np.ndarray, weights: np.ndarray) -> None:
        self.ids, self.weights = ids, weights
        shift = np.uint32(32 - _TABLE_BITS)
        self.first = _table(ids, weights, (ids * _HASH_1) >> shift)
        lost = self.first[0][(ids * _HASH_1) >> shift] != ids
        self.second = None
        self.exact = True
        if lost.any():
            self.second = _table(ids[lost], weights[lost], (ids[lost] * _HASH_2) >> shift)
            self.exact = bool((self.second[0][(ids[lost] * _HASH_2) >> shift] == ids[lost]).all())

    def dot(self, stored: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Row-wise dot products with stored sketches (ids and weights of the same shape)."""
        if not self.exact:
            last = len(self.ids) - 1
            pos = np.minimum(np.searchsorted(self.ids, stored), last)
            return (self.weights[pos] * (self.ids[pos] == stored) * weights).sum(1)
        shift = np.uint32(32 - _TABLE_BITS)
        slot = (stored * _HASH_1) >> shift
        shared = self.first[1][slot] * (self.first[0][slot] == stored)
        if self.second is not None:
            slot = (stored * _HASH_2) >> shift
            shared += self.second[1][slot] * (self.second[0][slot] == stored)
        return (shared * weights).sum(1)


def _table(ids: np.ndarray, weights: np.ndarray, slots: np.ndarray) -> tuple[np.ndarray, ...]:
    table_ids = np.zeros(1 << _TABLE_BITS, np.uint32)
    table_w = np.zeros(1 << _TABLE_BITS, np.float32)
    table_ids[slots] = ids
    table_w[slots] = weights
    return table_ids, table_w


def _df_slots(ids: np.ndarray) -> np.ndarray:
    return (ids * _DF_HASH) >> np.uint32(32 - _DF_BITS)


# ----------------------------------------------------------------------------- the index


class _Column:
    """A growable numpy column (amortised O(1) append)."""

    def __init__(self, dtype: type | np.dtype, width: int = 0, fill: float = 0) -> None:
        self.width = width
        self.fill = fill
        shape = (1024, width) if width else (1024,)
        self.data = np.full(shape, fill, dtype=dtype)

    def ensure(self, size: int) -> None:
        if size > len(self.data):
            shape = (max(size, 2 * len(self.data)), *self.data.shape[1:])
            grown = np.full(shape, self.fill, dtype=self.data.dtype)
            grown[: len(self.data)] = self.data
            self.data = grown


_Key = tuple | int | str
"""A block key: a tuple (place, category group, map cell), an anchor bigram id or a caller."""


def _epoch(moment: datetime) -> float:
    if moment.tzinfo is None:
        raise InvalidInput("received_at must be timezone-aware")
    return moment.timestamp()


class DuplicateIndex:
    """The appeals of the last ``config.window``, indexed for near-duplicate look-ups.

    Not thread-safe: one writer (the intake path) or a lock around it. Call :meth:`prune`
    periodically to drop appeals older than the window (checks ignore them anyway).
    """

    def __init__(self, config: DuplicateConfig | None = None) -> None:
        self.config = config or DuplicateConfig()
        k = self.config.sketch_size
        self._n = 0
        self._ids = _Column(np.int64)
        self._times = _Column(np.float64)
        self._category = _Column(np.int32, fill=-1)
        self._group = _Column(np.int32, fill=-1)
        self._site = _Column(np.int32, fill=-1)
        self._street = _Column(np.int32, fill=-1)
        self._district = _Column(np.int32, fill=-1)
        self._caller = _Column(np.int32, fill=-1)
        self._lat = _Column(np.float32, fill=np.nan)
        self._lon = _Column(np.float32, fill=np.nan)
        self._sketch_ids = _Column(np.uint32, width=k)
        self._sketch_w = _Column(np.float16, width=k)
        # The prefilter's columns again, ids then float32 weight bits side by side: one 64-byte
        # row per appeal, so that ranking many rows costs one cache line each (the gather of
        # rows scattered over a large index is what dominates a crowded check).
        self._head = _Column(np.uint32, width=2 * _PREFILTER_COLUMNS)
        self._columns = [
            self._ids,
            self._times,
            self._category,
            self._group,
            self._site,
            self._street,
            self._district,
            self._caller,
            self._lat,
            self._lon,
            self._sketch_ids,
            self._sketch_w,
            self._head,
        ]
        self._interned: dict[str, dict[str, int]] = {}
        self._blocks: dict[_Key, array] = {}
        self._df = np.zeros(1 << _DF_BITS, dtype=np.int32)
        self._docs = 0
        self._cell_deg = self.config.near_metres / 111_320.0

    # -- feeding

    def __len__(self) -> int:
        return self._n

    def add(self, appeal: AppealRecord) -> None:
        """Index one appeal (appeals should arrive roughly in time order)."""
        self.extend([appeal])

    def extend(self, appeals: Iterable[AppealRecord], batch: int = 10_000) -> None:
        """Index many appeals; text features are computed a batch at a time (the weights of a
        batch use the document frequencies as of its end)."""
        pending: list[AppealRecord] = []
        for appeal in appeals:
            pending.append(appeal)
            if len(pending) >= batch:
                self._add_batch(pending)
                pending = []
        if pending:
            self._add_batch(pending)

    def _add_batch(self, appeals: list[AppealRecord]) -> None:
        times = [_epoch(a.received_at) for a in appeals]
        features = _features(appeals)
        slots = _df_slots(features.ids)
        if len(slots) > len(self._df) // 8:
            self._df += np.bincount(slots, minlength=len(self._df)).astype(np.int32)
        else:
            np.add.at(self._df, slots, 1)
        self._docs += len(appeals)
        weights = self._vectors(features, len(appeals))
        # Keep the `sketch_size` heaviest bigrams of each appeal: order by (doc, -weight).
        # (features are sorted by doc; weights are in [0, 1], so this key sorts by doc first)
        order = np.argsort(features.doc * 2.0 + (1.0 - weights), kind="stable")
        doc = features.doc[order]
        doc_start = np.searchsorted(doc, np.arange(len(appeals)))
        rank = np.arange(len(doc)) - doc_start[doc]
        k = self.config.sketch_size
        kept = rank < k
        first = self._n
        end = first + len(appeals)
        if end > len(self._ids.data):
            for column in self._columns:
                column.ensure(end)
        self._sketch_ids.data[first:end] = 0
        self._sketch_w.data[first:end] = 0
        rows, cols = first + doc[kept], rank[kept]
        self._sketch_ids.data[rows, cols] = features.ids[order][kept]
        self._sketch_w.data[rows, cols] = weights[order][kept]
        self._head.data[first:end] = 0
        in_head = cols < _PREFILTER_COLUMNS
        self._head.data[rows[in_head], cols[in_head]] = features.ids[order][kept][in_head]
        head_w = weights[order][kept][in_head].astype(np.float16).astype(np.float32)
        self._head.data[rows[in_head], _PREFILTER_COLUMNS + cols[in_head]] = head_w.view(np.uint32)
        anchor_ids = features.ids[order][rank < self.config.anchors]
        anchor_doc = doc[rank < self.config.anchors]
        anchor_bounds = np.searchsorted(anchor_doc, np.arange(len(appeals) + 1))
        anchor_list = anchor_ids.tolist()
        self._ids.data[first:end] = [a.id for a in appeals]
        self._times.data[first:end] = times
        for i, appeal in enumerate(appeals):
            row = first + i
            cat = appeal.category_code
            self._category.data[row] = self._intern("category", cat)
            self._group.data[row] = self._intern("group", self._group_of(cat))
            self._site.data[row] = self._intern("site", appeal.site)
            self._street.data[row] = self._intern("street", appeal.street)
            self._district.data[row] = self._intern("district", appeal.district)
            self._caller.data[row] = self._intern("caller", appeal.caller)
            if appeal.latitude is not None and appeal.longitude is not None:
                self._lat.data[row] = appeal.latitude
                self._lon.data[row] = appeal.longitude
            anchors = anchor_list[anchor_bounds[i] : anchor_bounds[i + 1]]
            for key, _ in self._block_keys(appeal, anchors, for_query=False):
                block = self._blocks.get(key)
                if block is None:
                    block = self._blocks[key] = array("i")
                block.append(row)
        self._n = end

    def prune(self, now: datetime) -> int:
        """Drop appeals older than the window before `now`; returns how many were dropped."""
        cutoff = _epoch(now) - self.config.window.total_seconds()
        n = self._n
        keep = self._times.data[:n] >= cutoff
        dropped = int(n - keep.sum())
        if not dropped:
            return 0
        new_row = np.cumsum(keep) - 1
        for column in self._columns:
            kept = column.data[:n][keep]
            column.data[: len(kept)] = kept
            column.data[len(kept) : n] = column.fill
        self._n = n - dropped
        for key in list(self._blocks):
            rows = np.frombuffer(self._blocks[key], dtype=np.int32)
            rows = new_row[rows[keep[rows]]].astype(np.int32)
            if len(rows):
                self._blocks[key] = array("i", rows.tobytes())
            else:
                del self._blocks[key]
        return dropped

    def memory_bytes(self) -> int:
        """Approximate memory held by the index (arrays and posting lists)."""
        total = sum(column.data.nbytes for column in self._columns) + self._df.nbytes
        total += sum(
            block.buffer_info()[1] * block.itemsize + 64 for block in self._blocks.values()
        )
        total += sum(len(table) * 100 for table in self._interned.values())
        return total

    # -- querying

    def candidates(self, appeal: AppealRecord, k: int = 5) -> list[Candidate]:
        """The `k` best-scoring earlier appeals within the window (score >= candidate_floor)."""
        return [c for c in self._score(appeal, k) if c.score >= self.config.candidate_floor][:k]

    def check(self, appeal: AppealRecord, k: int = 5) -> DuplicateCheck:
        """Candidates, the merge decision and repeat-caller links for a new appeal."""
        scored = self._score(appeal, k)
        config = self.config
        shown = [c for c in scored if c.score >= config.candidate_floor][:k]
        action = Action.NONE
        master = None
        if shown and shown[0].score >= config.suggest_threshold:
            master = shown[0].appeal_id
            action = Action.SUGGEST
            auto = config.auto_merge_threshold
            if auto is not None and shown[0].score >= auto:
                action = Action.AUTO_MERGE
        repeat = tuple(
            c.appeal_id
            for c in scored
            if c.same_caller
            and (
                c.text_similarity >= config.repeat_text_threshold
                or (
                    c.category in (CategoryRelation.SAME, CategoryRelation.NEIGHBOUR)
                    and c.place
                    in (PlaceRelation.NEAR, PlaceRelation.SAME_SITE, PlaceRelation.SAME_STREET)
                )
            )
        )
        return DuplicateCheck(appeal.id, action, master, tuple(shown), repeat)

    # -- internals

    def _intern(self, table: str, value: str | None) -> int:
        if value is None or value == "":
            return -1
        values = self._interned.setdefault(table, {})
        code = values.get(value)
        if code is None:
            code = values[value] = len(values)
        return code

    def _lookup(self, table: str, value: str | None) -> int:
        if value is None or value == "":
            return -1
        return self._interned.get(table, {}).get(value, -2)  # -2: never seen, matches nothing

    def _group_of(self, category: str | None) -> str:
        return self.config.category_group(category) if category else "?"

    def _anchors(self, ids: np.ndarray, weights: np.ndarray) -> list[int]:
        m = self.config.anchors
        if not m or not len(ids):
            return []
        return ids[np.lexsort((-weights,))[:m]].tolist()

    def _cells(self, lat: float, lon: float, spread: int) -> Iterator[tuple]:
        size = self._cell_deg
        row = math.floor(lat / size)
        for r in range(row - spread, row + spread + 1):
            lon_size = size / max(math.cos(math.radians(r * size)), 0.01)
            col = math.floor(lon / lon_size)
            for c in range(col - spread, col + spread + 1):
                yield ("g", r, c)

    def _block_keys(
        self, appeal: AppealRecord, anchors: list[int], *, for_query: bool
    ) -> list[tuple[_Key, int]]:
        """The blocks an appeal is filed under (or, for a query, looked up in), each with the
        number of most recent rows a query reads from it."""
        group = self._group_of(appeal.category_code)
        keys: list[_Key] = []
        has_coords = appeal.latitude is not None and appeal.longitude is not None
        neighbours: list[_Key] = []
        if has_coords:
            assert appeal.latitude is not None and appeal.longitude is not None
            keys.extend(self._cells(appeal.latitude, appeal.longitude, 0))
            if for_query:
                centre = keys[0]
                cells = self._cells(appeal.latitude, appeal.longitude, 1)
                neighbours.extend(cell for cell in cells if cell != centre)
        if appeal.site:
            keys.append(("s", appeal.site))
        if appeal.street:
            keys.append(("t", appeal.street, group))
        if appeal.district:
            # Appeals without a street are kept apart so that a query with a street only has
            # to look at those; a query without a street looks at the whole district.
            if not appeal.street or for_query:
                keys.append(("d", appeal.district, group))
            if not for_query or not appeal.street:
                keys.append(("D", appeal.district, group))
        if not (appeal.site or appeal.street or appeal.district or has_coords):
            keys.append(("n", group))
        if appeal.caller:
            keys.append(appeal.caller)  # bare str: a caller has few rows, many callers exist
        limit = self.config.max_block_rows
        blocks: list[tuple[_Key, int]] = [(key, limit) for key in keys]
        blocks.extend((key, self.config.max_neighbour_rows) for key in neighbours)
        # Anchor blocks are keyed by the bare bigram id (an int never equals a tuple key).
        blocks.extend((a, self.config.max_anchor_rows) for a in anchors)
        return blocks

    def _vectors(self, features: _Features, docs: int) -> np.ndarray:
        """Unit vectors sqrt(a) * title + sqrt(1 - a) * text of sublinear TF-IDF weights, each
        part unit-normalised first, so that the cosine of two vectors is a * title cosine +
        (1 - a) * text cosine. A missing part leaves the whole weight to the other."""
        if not len(features.ids):
            return np.zeros(0, np.float32)
        idf = np.log((1.0 + self._docs) / (1.0 + self._df[_df_slots(features.ids)])) + 1.0
        weights = (1.0 + np.log(features.counts)) * idf
        part = features.doc * 2 + features.is_title
        norms = np.sqrt(np.bincount(part, weights=weights * weights, minlength=2 * docs))
        a = self.config.title_weight
        share = np.tile([math.sqrt(1 - a), math.sqrt(a)], docs)
        scale = np.divide(share, norms, out=np.zeros(2 * docs), where=norms > 0)
        weights *= scale[part]
        total = np.sqrt(np.bincount(features.doc, weights=weights * weights, minlength=docs))
        return (weights / np.maximum(total, 1e-12)[features.doc]).astype(np.float32)

    def _candidate_rows(self, appeal: AppealRecord, anchors: list[int], t: float) -> np.ndarray:
        parts = []
        for key, limit in self._block_keys(appeal, anchors, for_query=True):
            block = self._blocks.get(key)
            if block:
                rows = np.frombuffer(block, dtype=np.int32)
                parts.append(rows[-limit:])
        if not parts:
            return np.zeros(0, np.int64)
        rows = np.unique(np.concatenate(parts))
        times = self._times.data[rows]
        window = self.config.window.total_seconds()
        return rows[(times >= t - window) & (times <= t + window)]

    def _score(self, appeal: AppealRecord, k: int) -> list[Candidate]:
        """The `k` best-scoring rows and every row of the same caller, best first."""
        t = _epoch(appeal.received_at)
        features = _features([appeal])
        q_ids, q_w = features.ids, self._vectors(features, 1)
        rows = self._candidate_rows(appeal, self._anchors(q_ids, q_w), t)
        if len(rows):
            rows = rows[self._ids.data[rows] != appeal.id]
        if not len(rows):
            return []
        caller = self._lookup("caller", appeal.caller)
        query = _Query(q_ids, q_w)
        limit = self.config.max_scored_rows
        if len(rows) > limit and len(q_ids):
            # Too many rows for the full comparison: rank them by their heaviest bigrams first
            # (sketch columns are stored heaviest first); the same caller's rows always stay.
            head = self._head.data[rows]
            rough = query.dot(
                head[:, :_PREFILTER_COLUMNS], head[:, _PREFILTER_COLUMNS:].view(np.float32)
            )
            rough[(self._caller.data[rows] == caller) & (caller >= 0)] = np.inf
            rows = rows[np.argpartition(-rough, limit)[:limit]]
        text_sim = np.zeros(len(rows), np.float32)
        if len(q_ids):
            weights = self._sketch_w.data[rows].astype(np.float32)
            text_sim = np.clip(query.dot(self._sketch_ids.data[rows], weights), 0.0, 1.0)

        place = self._place_relations(appeal, rows)
        category = self._category_relations(appeal, rows)
        dt = np.abs(self._times.data[rows] - t)
        time_f = 1.0 - TIME_DECAY * np.minimum(dt / self.config.window.total_seconds(), 1.0)
        place_f = np.array([PLACE_FACTORS[p] for p in PlaceRelation], np.float32)[place]
        cat_f = np.array([CATEGORY_FACTORS[c] for c in CategoryRelation], np.float32)[category]
        scores = text_sim * place_f * cat_f * time_f
        same_caller = (self._caller.data[rows] == caller) & (caller >= 0)

        # Keep the best k plus every same-caller row (repeat-caller detection needs them).
        best = np.argsort(-scores, kind="stable")[: max(k, 1)]
        keep = np.union1d(best, np.flatnonzero(same_caller))
        keep = keep[np.argsort(-scores[keep], kind="stable")]
        places = list(PlaceRelation)
        categories = list(CategoryRelation)
        out = []
        for i in keep:
            p, c = places[place[i]], categories[category[i]]
            hours = float(dt[i]) / 3600.0
            reasons = (
                f"text similarity {text_sim[i]:.2f}",
                f"place: {p.value}",
                f"category: {c.value}",
                f"{hours:.1f} h apart",
            ) + (("same caller",) if same_caller[i] else ())
            out.append(
                Candidate(
                    appeal_id=int(self._ids.data[rows[i]]),
                    score=round(float(scores[i]), 4),
                    text_similarity=round(float(text_sim[i]), 4),
                    place=p,
                    category=c,
                    hours_apart=round(hours, 2),
                    same_caller=bool(same_caller[i]),
                    reasons=reasons,
                )
            )
        return out

    def _place_relations(self, appeal: AppealRecord, rows: np.ndarray) -> np.ndarray:
        """Index into PlaceRelation for every row, most trusted evidence first."""
        order = {p: i for i, p in enumerate(PlaceRelation)}
        rel = np.full(len(rows), order[PlaceRelation.UNKNOWN], np.int64)
        decided = np.zeros(len(rows), bool)

        def settle(mask: np.ndarray, relation: PlaceRelation) -> None:
            mask = mask & ~decided
            rel[mask] = order[relation]
            decided[mask] = True

        if appeal.latitude is not None and appeal.longitude is not None:
            lat = self._lat.data[rows].astype(np.float64)
            lon = self._lon.data[rows].astype(np.float64)
            dy = (lat - appeal.latitude) * 111_320.0
            dx = (lon - appeal.longitude) * 111_320.0 * math.cos(math.radians(appeal.latitude))
            dist = np.hypot(dx, dy)
            known = ~np.isnan(dist)
            near = self.config.near_metres
            settle(known & (dist <= near), PlaceRelation.NEAR)
            settle(known & (dist <= 3 * near), PlaceRelation.NEARBY)
            settle(known, PlaceRelation.DIFFERENT)
        for table, column, same, differ in (
            ("site", self._site, PlaceRelation.SAME_SITE, PlaceRelation.DIFFERENT_SITE),
            ("street", self._street, PlaceRelation.SAME_STREET, PlaceRelation.DIFFERENT),
            ("district", self._district, PlaceRelation.SAME_DISTRICT, PlaceRelation.DIFFERENT),
        ):
            mine = self._lookup(table, getattr(appeal, table))
            if mine == -1:
                continue
            theirs = column.data[rows]
            settle(theirs == mine, same)
            # Two known, different sites are a weak relation even within one street.
            settle(theirs >= 0, differ)
        return rel

    def _category_relations(self, appeal: AppealRecord, rows: np.ndarray) -> np.ndarray:
        order = {c: i for i, c in enumerate(CategoryRelation)}
        rel = np.full(len(rows), order[CategoryRelation.UNKNOWN], np.int64)
        mine = self._lookup("category", appeal.category_code)
        if mine == -1:
            return rel
        cats = self._category.data[rows]
        group = self._lookup("group", self._group_of(appeal.category_code))
        groups = self._group.data[rows]
        rel[cats >= 0] = order[CategoryRelation.DIFFERENT]
        rel[(groups == group) & (cats >= 0)] = order[CategoryRelation.NEIGHBOUR]
        rel[cats == mine] = order[CategoryRelation.SAME]
        return rel


# ----------------------------------------------------------------------------- clusters


def cluster_links(links: Iterable[tuple[int, int]]) -> list[list[int]]:
    """Connected components (single link) of appeal-id pairs, largest first, ids sorted."""
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in links:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for x in parent:
        groups.setdefault(root(x), []).append(x)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: (-len(g), g[0]))


def find_clusters(
    appeals: Iterable[AppealRecord], config: DuplicateConfig | None = None
) -> tuple[list[list[int]], list[tuple[int, int, Candidate]]]:
    """Replay `appeals` in time order through a fresh index; link every appeal to its best
    candidate at or above ``suggest_threshold``. Returns the clusters (size >= 2, largest first)
    and the links (new appeal id, earlier appeal id, candidate)."""
    index = DuplicateIndex(config)
    links: list[tuple[int, int, Candidate]] = []
    for appeal in sorted(appeals, key=lambda a: a.received_at):
        result = index.check(appeal, k=1)
        if result.action is not Action.NONE and result.master_id is not None:
            links.append((appeal.id, result.master_id, result.candidates[0]))
        index.add(appeal)
    return cluster_links((a, b) for a, b, _ in links), links


# ----------------------------------------------------------------------------- merge records


@dataclass(frozen=True)
class CallerRecord:
    """One appeal in a merge group and who called: every one of them gets the callback."""

    appeal_id: int
    caller: str | None
    received_at: datetime


@dataclass(frozen=True)
class MergeEvent:
    """One entry of a group's append-only history (persist it as is)."""

    kind: str  # "merge" | "unmerge"
    master_id: int
    appeal_id: int
    at: datetime
    actor: str
    automatic: bool = False
    score: float | None = None
    note: str = ""


@dataclass(frozen=True)
class MergeGroup:
    """A master appeal (its work order is the one handled) and the appeals merged into it."""

    master: CallerRecord
    members: tuple[CallerRecord, ...] = ()
    history: tuple[MergeEvent, ...] = field(default=())

    @property
    def appeal_ids(self) -> tuple[int, ...]:
        return (self.master.appeal_id, *(m.appeal_id for m in self.members))

    def member(self, appeal_id: int) -> CallerRecord | None:
        return next((m for m in self.members if m.appeal_id == appeal_id), None)

    def callback_recipients(self) -> tuple[CallerRecord, ...]:
        """Every appeal of the group with its caller, master first: each one is called back."""
        return (self.master, *self.members)


def merge(
    group: MergeGroup,
    appeal: CallerRecord,
    *,
    at: datetime,
    actor: str,
    score: float | None = None,
    automatic: bool = False,
    note: str = "",
) -> tuple[MergeGroup, MergeEvent]:
    """Merge `appeal` into `group`; it follows the master's work order from now on."""
    if appeal.appeal_id in group.appeal_ids:
        raise Conflict(f"appeal {appeal.appeal_id} is already in the group of {_master(group)}")
    event = MergeEvent(
        "merge", group.master.appeal_id, appeal.appeal_id, at, actor, automatic, score, note
    )
    return (
        replace(group, members=(*group.members, appeal), history=(*group.history, event)),
        event,
    )


def unmerge(
    group: MergeGroup, appeal_id: int, *, at: datetime, actor: str, note: str = ""
) -> tuple[MergeGroup, CallerRecord, MergeEvent]:
    """Take `appeal_id` out of `group`; returns the group, the member's record (to reopen its
    own work order with its caller) and the event. The master cannot be taken out."""
    if appeal_id == group.master.appeal_id:
        raise Conflict(f"appeal {appeal_id} is the master of its group; unmerge the others")
    member = group.member(appeal_id)
    if member is None:
        raise NotFound(f"appeal {appeal_id} is not merged into {_master(group)}")
    event = MergeEvent("unmerge", group.master.appeal_id, appeal_id, at, actor, note=note)
    members = tuple(m for m in group.members if m.appeal_id != appeal_id)
    return replace(group, members=members, history=(*group.history, event)), member, event


def absorb(
    group: MergeGroup, other: MergeGroup, *, at: datetime, actor: str, note: str = ""
) -> tuple[MergeGroup, list[MergeEvent]]:
    """Merge a whole other group (its master and members) into `group`; no chains of masters."""
    events = []
    for record in other.callback_recipients():
        group, event = merge(group, record, at=at, actor=actor, note=note)
        events.append(event)
    return group, events


def _master(group: MergeGroup) -> str:
    return f"master appeal {group.master.appeal_id}"
