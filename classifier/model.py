"""`HotlineClassifier`: hierarchical linear classifier over "/"-joined category paths.

One linear model per inner node of the category tree (root → level 1, each level-1 node → its
level-2 children, ...), each trained only on the rows labelled below that node, so rows labelled
at any depth are usable and training cost grows with the tree, not with the number of leaves.
Scores become probabilities by softmax with one temperature per depth, fitted on a held-out slice
(see `classifier.calibration`); a beam search over the tree gives the top-k paths.
The learned department model predicts a department code from text when history provides them.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC
from sklearn.utils.validation import check_is_fitted

from classifier.calibration import fit_temperature, softmax
from classifier.errors import DatasetError
from classifier.features import CHAR_PREFIX, FeatureSpace
from classifier.ood import assess
from classifier.text import TextPipeline, read_user_dict, read_word_list

__all__ = ["HotlineClassifier", "Suggestion", "split_label"]

ProgressCallback = Callable[[str, float], None]

_SEP = "/"
_ALNUM = re.compile(r"[^\W_]")
_NOT_ALNUM = re.compile(r"[\W_]+")
_CHAR_PREFIX = CHAR_PREFIX
# Stacking (see `_stacked_coef`): out-of-fold folds and the inverse regularisation of the
# logistic regression over base scores, chosen by 3-fold CV inside the training part of the first
# outer fold of the real messages (benchmarks/classifier.py).
_STACK_FOLDS = 3
_STACK_C = 0.1
# Nodes with a class of fewer rows are not stacked: out-of-fold scores of so few rows make a poor
# meta-model (with 3, leaf top-3 of the 3,000-appeal demo corpus fell from 0.52 to 0.45; with
# 30 it is unchanged, chosen on demo corpora of other seeds than the benchmark's).
_STACK_MIN_ROWS = 30
# Below this many training rows `refit="auto"` and `stacking="auto"` are on.
_SMALL_DATA = 50_000


# Fewest preferred held-out rows (`fit(calibrate_on=...)`) a temperature is fitted on alone.
_MIN_PREFERRED_CALIBRATION = 100


def _fit_preferred(scores: list[np.ndarray], targets: list[int], preferred: list[bool]) -> float:
    """`fit_temperature` on the preferred rows when there are enough of them, else on all."""
    if sum(preferred) >= _MIN_PREFERRED_CALIBRATION and not all(preferred):
        keep = [k for k, p in enumerate(preferred) if p]
        return fit_temperature([scores[k] for k in keep], [targets[k] for k in keep])
    return fit_temperature(scores, targets)


def split_label(label: str) -> tuple[str, ...]:
    """'a/b/c' → ('a', 'b', 'c'); surrounding blanks and empty parts are dropped."""
    return tuple(part.strip() for part in str(label).split(_SEP) if part.strip())


def _tokens_of(model: HotlineClassifier, texts: Sequence[str]) -> tuple[list[list[str]], list[str]]:
    words, compacts = [], []
    for text in texts:
        w, c = model._tokens(text)
        words.append(w)
        compacts.append(c)
    return words, compacts


@dataclass(frozen=True)
class Suggestion:
    """What the classifier suggests for one appeal.

    `label` is the deepest predicted path, `levels` the prefixes of that path with the probability
    of each prefix, `alternatives` the top-k paths, `department` (code, probability) when the model
    learned departments, `terms` the features that pushed the suggestion most, `ood` the flags of
    the out-of-distribution gate (`classifier.ood`; empty: the text looks like an appeal).
    """

    label: str
    confidence: float
    alternatives: list[tuple[str, float]]
    levels: list[tuple[str, float]]
    department: tuple[str, float] | None = None
    department_alternatives: list[tuple[str, float]] = field(default_factory=list)
    terms: list[tuple[str, float]] = field(default_factory=list)
    ood: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "confidence": self.confidence,
            "alternatives": [list(a) for a in self.alternatives],
            "levels": [list(a) for a in self.levels],
            "department": list(self.department) if self.department else None,
            "department_alternatives": [list(a) for a in self.department_alternatives],
            "terms": [list(t) for t in self.terms],
            "ood": list(self.ood),
        }


class _Rows:
    """CSR rows without scipy's per-call overhead, which dominates when scoring one appeal.

    `word` and `bit` (the 64-bit word of each column in a node's bitmap and its bit mask) are
    computed once per batch and shared by every node that scores these rows.
    """

    __slots__ = ("bit", "data", "indices", "indptr", "shape", "word")

    def __init__(
        self,
        indptr: np.ndarray,
        indices: np.ndarray,
        data: np.ndarray,
        n_features: int,
        word: np.ndarray | None = None,
        bit: np.ndarray | None = None,
    ) -> None:
        self.indptr = indptr
        self.indices = indices
        self.data = data
        self.shape = (len(indptr) - 1, n_features)
        if word is None or bit is None:
            word = indices >> 6
            bit = np.left_shift(np.uint64(1), (indices & 63).astype(np.uint64))
        self.word = word
        self.bit = bit

    def picks(self, rows: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions in `indices`/`data` of the entries of `rows`, and each row's length."""
        rows_a = np.asarray(rows, dtype=np.int64)
        starts = self.indptr[rows_a]
        lengths = self.indptr[rows_a + 1] - starts
        offsets = np.zeros(len(rows_a) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return np.arange(offsets[-1]) - np.repeat(offsets[:-1] - starts, lengths), lengths

    def take(self, rows: Sequence[int] | np.ndarray) -> _Rows:
        n = self.shape[0]
        if len(rows) == n and (n == 1 or list(rows) == list(range(n))):
            return self
        rows_a = np.asarray(rows, dtype=np.int64)
        starts, ends = self.indptr[rows_a], self.indptr[rows_a + 1]
        lengths = ends - starts
        indptr = np.zeros(len(rows_a) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        picks = np.arange(indptr[-1]) - np.repeat(indptr[:-1] - starts, lengths)
        return _Rows(
            indptr,
            self.indices[picks],
            self.data[picks],
            self.shape[1],
            self.word[picks],
            self.bit[picks],
        )


class _LinearNode:
    """Scores of one node's children: `x @ W + intercept` over the features the node uses.

    `features` (sorted) are the columns with a non-zero weight for some child, `weights` their
    dense rows: small for deep nodes. A bitmap of `features` over all `n_features` columns, with
    the running popcount of its words, maps a column to its row of `weights` in O(1) (no binary
    search), so scoring is a gather and a dot product.
    """

    __slots__ = ("_bits", "_rank", "classes", "features", "intercept", "weights")

    def __init__(
        self,
        classes: list[str],
        features: np.ndarray,
        weights: np.ndarray,
        intercept: np.ndarray,
        n_features: int,
    ) -> None:
        self.classes = classes
        self.features = features
        self.weights = weights
        self.intercept = intercept
        bits = np.zeros((n_features >> 6) + 1, dtype=np.uint64)
        np.bitwise_or.at(bits, features >> 6, np.uint64(1) << (features & 63).astype(np.uint64))
        rank = np.zeros(len(bits), dtype=np.int32)
        np.cumsum(np.bitwise_count(bits[:-1]), out=rank[1:])
        self._bits, self._rank = bits, rank

    def _positions(self, word: np.ndarray, bit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        bits = self._bits[word]
        known = (bits & bit) != 0
        pos = self._rank[word] + np.bitwise_count(bits & (bit - np.uint64(1)))
        np.minimum(pos, len(self.features) - 1, out=pos)
        return pos, known

    def scores(self, X: Any) -> np.ndarray:
        n = X.shape[0]
        if len(self.features) == 0:
            return np.tile(self.intercept, (n, 1))
        if not isinstance(X, _Rows):
            X = _Rows(X.indptr, X.indices, X.data, X.shape[1])
        pos, known = self._positions(X.word, X.bit)
        data = np.where(known, X.data, np.float32(0))
        if n == 1:
            return (data @ self.weights[pos]).astype(np.float64)[None, :] + self.intercept
        M = sp.csr_matrix((data, pos, X.indptr), shape=(n, len(self.features)))
        return np.asarray(M @ self.weights, dtype=np.float64) + self.intercept

    def contributions(self, X: _Rows, row: int, column: int) -> np.ndarray:
        start, end = X.indptr[row], X.indptr[row + 1]
        if len(self.features) == 0:
            return np.zeros(end - start)
        pos, known = self._positions(X.word[start:end], X.bit[start:end])
        return np.where(known, X.data[start:end] * self.weights[pos, column], 0.0)


def _svc(C: float, class_weight: str | None, seed: int) -> LinearSVC:
    """liblinear's dual coordinate descent, whatever the shape: on sparse text it is 2-3x faster
    than the primal Newton solver that `dual="auto"` picks once a node has more rows than features
    (the root and department models past about 100,000 appeals), for the same objective."""
    return LinearSVC(C=C, class_weight=class_weight, dual=True, random_state=seed, max_iter=2000)


def _linear_coef(
    X: sp.csr_matrix,
    labels: np.ndarray,
    classes: list[str],
    C: float,
    class_weight: str | None,
    seed: int,
    nb_weighting: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """One-vs-rest weights (classes × features, in the order of `classes`) and intercepts of
    LinearSVC, or with `nb_weighting` of NB-SVM: each class's binary SVM sees the features scaled
    by their naive-Bayes log-count ratio, folded back into the weights. Needs two or more
    classes, every one of them present in `labels`."""
    if nb_weighting:
        # documents of each class containing each feature, all classes in one product
        class_of = np.searchsorted(classes, labels)
        onehot = sp.csr_matrix(
            (np.ones(len(labels)), (class_of, np.arange(len(labels)))),
            shape=(len(classes), len(labels)),
        )
        present = sp.csr_matrix((np.ones(len(X.data)), X.indices, X.indptr), shape=X.shape)
        in_class = np.asarray((onehot @ present).todense())
        total = in_class.sum(axis=0)
        coefs, intercepts = [], []
        for k in range(len(classes)):
            mask = class_of == k
            p = in_class[k] + 1.0
            q = total - in_class[k] + 1.0
            r = np.log((p / p.sum()) / (q / q.sum()))
            # X scaled column-wise by r, built directly in liblinear's float64
            Xr = sp.csr_matrix((X.data * r[X.indices], X.indices, X.indptr), shape=X.shape)
            svc = _svc(C, class_weight, seed)
            svc.fit(Xr, mask.astype(np.int8))
            del Xr
            coefs.append(svc.coef_[0] * r)
            intercepts.append(svc.intercept_[0])
        # float32 straight away, as the node stores them: no float64 copy of all the weights
        return np.asarray(coefs, dtype=np.float32), np.asarray(intercepts, dtype=np.float64)
    svc = _svc(C, class_weight, seed)
    svc.fit(X, labels)
    coef = np.asarray(svc.coef_)
    intercept = np.asarray(svc.intercept_, dtype=np.float64)
    if len(classes) == 2:  # liblinear returns one row for two classes: make it OvR-shaped
        coef = np.vstack([-coef[0], coef[0]])
        intercept = np.array([-intercept[0], intercept[0]])
    return coef, intercept


def _stacked_coef(
    X: sp.csr_matrix,
    labels: np.ndarray,
    classes: list[str],
    C: float,
    class_weight: str | None,
    seed: int,
    nb_weighting: bool,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Stacking of NB-SVM and plain LinearSVC (or LinearSVC alone without `nb_weighting`): a
    multinomial logistic regression over their scores, fitted on 3-fold out-of-fold scores, then
    folded into the base weights, so that the node stays one linear map. None when a class has
    fewer than `_STACK_FOLDS` rows (the caller keeps the base model)."""
    if np.min(np.unique(labels, return_counts=True)[1]) < _STACK_FOLDS:
        return None
    views = (True, False) if nb_weighting else (False,)
    k = len(classes)
    oof = np.zeros((X.shape[0], k * len(views)))
    folds = StratifiedKFold(_STACK_FOLDS, shuffle=True, random_state=seed)
    for fit_rows, out_rows in folds.split(np.zeros(len(labels)), labels):
        for v, nb in enumerate(views):
            coef, intercept = _linear_coef(
                X[fit_rows], labels[fit_rows], classes, C, class_weight, seed, nb
            )
            oof[out_rows, v * k : (v + 1) * k] = X[out_rows] @ coef.T + intercept
    meta = LogisticRegression(C=_STACK_C, max_iter=1000).fit(oof, labels)
    M, m0 = meta.coef_, meta.intercept_
    if len(classes) == 2:  # one logit z for two classes: softmax([-z/2, z/2]) = sigmoid(z)
        M, m0 = np.vstack([-M[0] / 2, M[0] / 2]), np.array([-m0[0] / 2, m0[0] / 2])
    coef_sum = np.zeros((k, X.shape[1]))
    intercept_sum = np.asarray(m0, dtype=np.float64).copy()
    for v, nb in enumerate(views):
        coef, intercept = _linear_coef(X, labels, classes, C, class_weight, seed, nb)
        block = M[:, v * k : (v + 1) * k]
        coef_sum += block @ coef
        intercept_sum += block @ intercept
    return coef_sum, intercept_sum


def _fit_linear(
    X: sp.csr_matrix,
    y: Sequence[str],
    C: float,
    class_weight: str | None,
    seed: int,
    nb_weighting: bool = False,
    stacking: bool = False,
) -> _LinearNode:
    """LinearSVC one-vs-rest, NB-SVM with `nb_weighting` (see `_linear_coef`), stacked with
    `stacking` (see `_stacked_coef`); scoring is one linear map in every case."""
    classes = sorted(set(y))
    if len(classes) == 1:
        empty = np.zeros(0, dtype=np.int32)
        weights = np.zeros((0, 1), dtype=np.float32)
        return _LinearNode(classes, empty, weights, np.zeros(1), X.shape[1])
    labels = np.asarray(y)
    with warnings.catch_warnings():
        # liblinear stopping at max_iter still ranks classes well; the warning would only be noise.
        warnings.simplefilter("ignore", ConvergenceWarning)
        # deep nodes of a small corpus have many classes with few rows each; that is expected
        warnings.filterwarnings("ignore", message="The number of unique classes is greater")
        fitted = None
        if stacking:
            fitted = _stacked_coef(X, labels, classes, C, class_weight, seed, nb_weighting)
        if fitted is None:
            fitted = _linear_coef(X, labels, classes, C, class_weight, seed, nb_weighting)
    coef = np.asarray(fitted[0], dtype=np.float32)
    intercept = np.asarray(fitted[1], dtype=np.float64)
    used = np.flatnonzero(np.abs(coef).max(axis=0) > 0).astype(np.int32)
    weights = np.ascontiguousarray(coef[:, used].T)
    return _LinearNode([str(c) for c in classes], used, weights, intercept, X.shape[1])


class _Tree:
    """The category tree as arrays: path ids, the node model of each path (or -1) and the path
    ids of each node's children, for the vectorised beam search."""

    def __init__(self, nodes: dict[str, _LinearNode]) -> None:
        paths = {""}
        for parent, node in nodes.items():
            paths.add(parent)
            paths.update(node.classes)
        self.paths = sorted(paths, key=lambda p: (p.count(_SEP) + (1 if p else 0), p))
        index = {p: i for i, p in enumerate(self.paths)}
        self.nodes = [nodes[p] for p in sorted(nodes)]
        self.children = [np.array([index[c] for c in nd.classes]) for nd in self.nodes]
        self.node_of = np.full(len(self.paths), -1, dtype=np.int64)
        for g, parent in enumerate(sorted(nodes)):
            self.node_of[index[parent]] = g
        self.node_of_list: list[int] = self.node_of.tolist()
        self.index = index
        self.columns = [{c: j for j, c in enumerate(nd.classes)} for nd in self.nodes]
        self.children_list: list[list[int]] = [c.tolist() for c in self.children]


def _fingerprint(texts: Sequence[str], labels: Sequence[str], depts: Sequence[Any] | None) -> str:
    """sha256 of the training rows (text, label, department), order-sensitive."""
    digest = hashlib.sha256()
    for i, text in enumerate(texts):
        dept = "" if depts is None or depts[i] is None else str(depts[i])
        digest.update(f"{text}\x1f{labels[i]}\x1f{dept}\x1e".encode())
    return "sha256:" + digest.hexdigest()


class HotlineClassifier(ClassifierMixin, BaseEstimator):
    """Hierarchical category (and department) classifier for appeal texts.

    Parameters
    ----------
    user_dict, stop_words : paths of a jieba user dictionary and a stop-word list (read at `fit`
        and stored in the model, so the artifact is self-contained). None: no user dictionary /
        the packaged stop words.
    segmenter : "auto" (rjieba when installed, else jieba), "jieba" or "rjieba".
    word_ngrams : longest word n-gram (1 or 2).
    char_ngrams : (min, max) character n-grams added to the words, or None.
    min_df, max_features : vocabulary pruning of the TF-IDF features (sublinear tf).
    C, class_weight : LinearSVC regularisation and class weights of every node model.
    nb_weighting : NB-SVM (Wang & Manning 2012): scale features by the naive-Bayes log-count
        ratio of each class; same prediction cost, better on the real messages (level-1 macro-F1
        +0.01) and the demo corpus (leaf top-1 +0.02), about 25 % more training time.
    stacking : stack NB-SVM and plain LinearSVC in every category node: a logistic regression
        over the scores of both, fitted on 3-fold out-of-fold scores, folded into one linear map
        (same prediction cost). Level-1 macro-F1 on the real messages 0.913 -> 0.921, on the
        titles 0.890 -> 0.893 (5-fold); training takes about 2.5x as long. "auto" stacks below
        50,000 rows only, so large training sets keep their training time. Nodes with a class
        of fewer than 30 rows are not stacked (there it cost leaf accuracy on the demo corpus);
        the department model never is. `stacked_nodes_` names the stacked nodes.
    max_depth : stop learning below this depth (None: as deep as the labels go).
    calibration_fraction : share of rows held out to fit the per-depth temperatures. 0 disables
        calibration (temperature 1).
    refit : refit the models on all rows after calibration (better use of small data, twice the
        training time); False keeps the models that the temperatures were fitted for; "auto"
        refits below 50,000 rows.
    department_model : "text" (a linear model over department codes) or "category" (departments
        seen with each predicted category in the history, mixed over the top paths).
    n_terms : how many explaining terms a suggestion carries.
    n_jobs : threads fitting node models in parallel (None: 1, -1: all cores).
    random_state : seed of the calibration split and of liblinear.
    """

    def __init__(
        self,
        *,
        user_dict: str | None = None,
        stop_words: str | None = None,
        segmenter: str = "auto",
        word_ngrams: int = 2,
        char_ngrams: tuple[int, int] | None = (1, 2),
        min_df: int = 2,
        max_features: int | None = 1_000_000,
        C: float = 0.5,
        class_weight: str | None = None,
        nb_weighting: bool = True,
        max_depth: int | None = None,
        calibration_fraction: float = 0.1,
        department_model: str = "text",
        refit: bool | str = "auto",
        stacking: bool | str = "auto",
        n_terms: int = 5,
        n_jobs: int | None = None,
        random_state: int | None = None,
    ) -> None:
        self.user_dict = user_dict
        self.stop_words = stop_words
        self.segmenter = segmenter
        self.word_ngrams = word_ngrams
        self.char_ngrams = char_ngrams
        self.min_df = min_df
        self.max_features = max_features
        self.C = C
        self.class_weight = class_weight
        self.nb_weighting = nb_weighting
        self.max_depth = max_depth
        self.calibration_fraction = calibration_fraction
        self.department_model = department_model
        self.refit = refit
        self.stacking = stacking
        self.n_terms = n_terms
        self.n_jobs = n_jobs
        self.random_state = random_state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Artifacts saved before `stacking` existed were not stacked; they load and predict as
        # before, and `get_params` describes them truthfully.
        state.setdefault("stacking", False)
        if "nodes_" in state:
            state.setdefault("stacking_", False)
            state.setdefault("stacked_nodes_", frozenset())
        super().__setstate__(state)

    # --- features ---------------------------------------------------------------------------

    def _tokens(self, text: str) -> tuple[list[str], str]:
        """Filtered words and the compact text (letters and digits) of one appeal."""
        pipeline: TextPipeline = self.text_pipeline_
        clean = pipeline.clean(text)
        stop = pipeline.stop_words or frozenset()
        words = [
            t
            for t in pipeline.segment(clean)
            if t not in stop and (t.isalnum() or (not t.isspace() and _ALNUM.search(t)))
        ]
        compact = _NOT_ALNUM.sub("", clean) if self.char_ngrams else ""
        return words, compact

    def _token_chunks(
        self, texts: Sequence[str], report: ProgressCallback
    ) -> Iterable[tuple[list[list[str]], list[str]]]:
        """(words, compacts) of `texts` in chunks; large inputs go to `n_jobs` worker processes."""
        workers = self._workers()
        chunk = 5000
        chunks = [texts[i : i + chunk] for i in range(0, len(texts), chunk)]
        if workers == 1 or len(texts) < 4 * chunk:
            for k, part in enumerate(chunks):
                yield _tokens_of(self, part)
                report("features", 0.4 * (k + 1) / len(chunks))
            return
        from joblib import Parallel, delayed

        parallel = Parallel(n_jobs=workers, return_as="generator")
        for k, result in enumerate(parallel(delayed(_tokens_of)(self, c) for c in chunks)):
            yield result
            report("features", 0.4 * (k + 1) / len(chunks))

    def _transform(self, texts: Sequence[str]) -> _Rows:
        """TF-IDF rows of `texts` (see `classifier.features`)."""
        words, compacts = _tokens_of(self, texts)
        indptr, indices, data = self.features_.transform(words, compacts)
        return _Rows(indptr, indices, data, self.features_.n_features)

    # --- fit --------------------------------------------------------------------------------

    def fit(
        self,
        X: Sequence[str],
        y: Sequence[str],
        departments: Sequence[str | None] | None = None,
        *,
        calibrate_on: Sequence[bool] | None = None,
        progress: ProgressCallback | None = None,
    ) -> HotlineClassifier:
        """Learn from texts `X` and "/"-joined label paths `y` of any depth.

        `departments` (optional, same length, None/"" where unknown) trains the department model.
        `calibrate_on` (optional, same length) marks the rows that stand for the texts the model
        will see, e.g. real appeals beside a synthetic corpus: each temperature (per depth, and
        the department model's) is fitted on the held-out rows so marked that carry a label at
        that depth, when there are at least `_MIN_PREFERRED_CALIBRATION` of them, else on all
        held-out rows. Rows labelled only down to some depth train only the nodes above it.
        `progress(stage, fraction)` is called as training advances.
        """
        report = progress or (lambda stage, fraction: None)
        texts = [str(t) if t is not None else "" for t in X]
        paths = [split_label(label) for label in y]
        if len(texts) != len(paths):
            raise DatasetError(f"{len(texts)} texts but {len(paths)} labels")
        if not texts:
            raise DatasetError("the training set is empty")
        if any(not p for p in paths):
            raise DatasetError("some labels are empty")
        if self.max_depth is not None:
            paths = [p[: self.max_depth] for p in paths]
        if len({p[0] for p in paths}) < 2:
            raise DatasetError("the label set has a single first-level class; need at least two")
        if self.department_model not in ("text", "category"):
            raise ValueError(
                f"department_model must be 'text' or 'category', not {self.department_model!r}"
            )
        depts = None
        if departments is not None:
            if len(departments) != len(texts):
                raise DatasetError(f"{len(texts)} texts but {len(departments)} departments")
            depts = [
                str(d).strip() if d is not None and str(d).strip() else None for d in departments
            ]
            if not any(depts):
                depts = None
        preferred = None
        if calibrate_on is not None:
            if len(calibrate_on) != len(texts):
                raise DatasetError(f"{len(texts)} texts but {len(calibrate_on)} calibrate_on flags")
            preferred = np.asarray(calibrate_on, dtype=bool)

        self.text_pipeline_ = TextPipeline(
            user_words=read_user_dict(self.user_dict) if self.user_dict else (),
            stop_words=read_word_list(self.stop_words) if self.stop_words else None,
            segmenter=self.segmenter,
        )
        report("features", 0.0)
        self.features_ = FeatureSpace(self.word_ngrams, self.char_ngrams)
        indptr, indices, data = self.features_.fit_transform(
            self._token_chunks(texts, report),
            min_df=self.min_df if len(texts) >= 10 * self.min_df else 1,
            max_features=self.max_features,
        )
        Xm = sp.csr_matrix((data, indices, indptr), shape=(len(texts), self.features_.n_features))
        del indptr, indices, data
        report("features", 0.5)

        seed = 0 if self.random_state is None else int(self.random_state)
        rng = np.random.default_rng(seed)
        n = len(texts)
        n_hold = round(n * self.calibration_fraction)
        calibrate = self.calibration_fraction > 0 and n_hold >= 20 and n - n_hold >= 20
        all_rows = np.arange(n)
        refit = self.refit if self.refit != "auto" else n < _SMALL_DATA
        self.stacking_ = bool(self.stacking if self.stacking != "auto" else n < _SMALL_DATA)
        self.stacked_nodes_ = self._nodes_to_stack(paths) if self.stacking_ else frozenset()
        if calibrate:
            perm = rng.permutation(n)
            hold_rows, fit_rows = np.sort(perm[:n_hold]), np.sort(perm[n_hold:])
            nodes, dept_node = self._fit_nodes(
                Xm,
                paths,
                fit_rows,
                seed,
                report,
                0.5,
                0.7 if refit else 0.98,
                lambda: self._fit_departments(Xm, paths, depts, fit_rows, seed),
            )
            self._fit_temperatures(Xm, paths, depts, hold_rows, nodes, dept_node, preferred)
            report("calibration", 0.7)
        else:
            self.temperatures_: dict[int, float] = {}
            self.department_temperature_ = 1.0
        if calibrate and not refit:
            self.nodes_, self.department_node_ = nodes, dept_node
        else:
            self.nodes_, self.department_node_ = self._fit_nodes(
                Xm,
                paths,
                all_rows,
                seed,
                report,
                0.7 if calibrate else 0.5,
                0.98,
                lambda: self._fit_departments(Xm, paths, depts, all_rows, seed),
            )
        self.departments_ = (
            np.array(sorted({d for d in depts if d}), dtype=object) if depts else None
        )

        terminal = set()
        for p in paths:
            for d in range(1, len(p) + 1):
                prefix = _SEP.join(p[:d])
                if prefix not in self.nodes_:
                    terminal.add(prefix)
        self.classes_ = np.array(sorted(terminal), dtype=object)
        self.tree_ = _Tree(self.nodes_)
        self.depth_ = max(len(p) for p in paths)
        self.label_counts_ = dict(Counter(_SEP.join(p) for p in paths))
        self.data_fingerprint_ = _fingerprint(texts, y, departments)
        report("done", 1.0)
        return self

    def _fit_nodes(
        self,
        Xm: sp.csr_matrix,
        paths: list[tuple[str, ...]],
        rows: np.ndarray,
        seed: int,
        report: ProgressCallback,
        start: float,
        end: float,
        extra: Callable[[], Any] | None = None,
    ) -> tuple[dict[str, _LinearNode], Any]:
        """Fit every node model on `rows` (and `extra()`, the department model, alongside).

        liblinear releases the GIL, so a thread pool uses `n_jobs` cores without copying `Xm`.
        """
        by_parent: dict[str, tuple[list[int], list[str]]] = defaultdict(lambda: ([], []))
        for i in rows:
            p = paths[i]
            for d in range(len(p)):
                idx, ys = by_parent[_SEP.join(p[:d])]
                idx.append(int(i))
                ys.append(_SEP.join(p[: d + 1]))
        # A node whose rows all go to one child still gets a (trivial) model: prediction continues.
        total = sum(len(v[0]) for v in by_parent.values()) + (len(rows) if extra else 0) or 1
        done = 0
        nodes: dict[str, _LinearNode] = {}
        # biggest first, so the pool does not end waiting on one large model
        order = sorted(by_parent, key=lambda k: -len(by_parent[k][0]))
        extra_result = None
        with ThreadPoolExecutor(max_workers=self._workers()) as pool:
            futures: dict[Any, tuple[str, int]] = {}
            if extra is not None:
                futures[pool.submit(extra)] = ("\0extra", len(rows))
            for parent in order:
                idx, ys = by_parent[parent]
                fut = pool.submit(
                    _fit_linear,
                    Xm[idx],
                    ys,
                    self.C,
                    self.class_weight,
                    seed,
                    self.nb_weighting,
                    parent in self.stacked_nodes_,
                )
                futures[fut] = (parent, len(idx))
            for fut in as_completed(futures):
                key, size = futures[fut]
                if key == "\0extra":
                    extra_result = fut.result()
                else:
                    nodes[key] = fut.result()
                done += size
                report("models", start + (end - start) * done / total)
        return {k: nodes[k] for k in sorted(nodes)}, extra_result

    @staticmethod
    def _nodes_to_stack(paths: list[tuple[str, ...]]) -> frozenset[str]:
        """Nodes whose every child has at least `_STACK_MIN_ROWS` rows, counted on all rows: the
        same nodes are stacked in the models fitted for calibration and in the refit ones, so the
        temperatures fit the scores they are applied to."""
        rows = Counter(_SEP.join(p[: d + 1]) for p in paths for d in range(len(p)))
        children: dict[str, list[str]] = defaultdict(list)
        for prefix in rows:
            children[_SEP.join(split_label(prefix)[:-1])].append(prefix)
        return frozenset(
            parent
            for parent, kids in children.items()
            if len(kids) > 1 and min(rows[k] for k in kids) >= _STACK_MIN_ROWS
        )

    def _workers(self) -> int:
        if self.n_jobs is None:
            return 1
        if self.n_jobs < 0:
            return max(1, (os.cpu_count() or 1) + 1 + self.n_jobs)
        return max(1, int(self.n_jobs))

    def _fit_departments(
        self,
        Xm: sp.csr_matrix,
        paths: list[tuple[str, ...]],
        depts: list[str | None] | None,
        rows: np.ndarray,
        seed: int,
    ) -> Any:
        if not depts:
            return None
        rows = np.array([i for i in rows if depts[i]], dtype=int)
        if len(rows) == 0:
            return None
        if self.department_model == "text":
            return _fit_linear(Xm[rows], [depts[i] for i in rows], self.C, self.class_weight, seed)
        # "category": smoothed department distribution of every node of the tree.
        codes = sorted({d for d in depts if d})
        col = {c: j for j, c in enumerate(codes)}
        counts: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(len(codes)))
        for i in rows:
            p = paths[i]
            for d in range(len(p) + 1):
                counts[_SEP.join(p[:d])][col[depts[i]]] += 1
        table: dict[str, np.ndarray] = {}
        for key in sorted(counts, key=lambda k: (k.count(_SEP) if k else -1, k)):
            parent = "" if not key else _SEP.join(split_label(key)[:-1])
            prior = table.get(parent) if key else None
            c = counts[key]
            if prior is None:
                table[key] = (c + 1.0 / len(codes)) / (c.sum() + 1.0)
            else:
                table[key] = (c + prior) / (c.sum() + 1.0)
        return (codes, table)

    def _fit_temperatures(
        self,
        Xm: sp.csr_matrix,
        paths: list[tuple[str, ...]],
        depts: list[str | None] | None,
        rows: np.ndarray,
        nodes: dict[str, _LinearNode],
        dept_node: Any,
        preferred: np.ndarray | None = None,
    ) -> None:
        # per depth: score rows, true columns and whether each row is a preferred one
        by_depth: dict[int, tuple[list[np.ndarray], list[int], list[bool]]] = defaultdict(
            lambda: ([], [], [])
        )
        requests: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for i in rows:
            p = paths[i]
            for d in range(len(p)):
                requests[_SEP.join(p[:d])].append((int(i), _SEP.join(p[: d + 1])))
        for parent, items in requests.items():
            node = nodes.get(parent)
            if node is None or len(node.classes) < 2:
                continue
            col = {c: j for j, c in enumerate(node.classes)}
            items = [(i, c) for i, c in items if c in col]
            if not items:
                continue
            s = node.scores(Xm[[i for i, _ in items]])
            depth = 0 if not parent else parent.count(_SEP) + 1
            bucket = by_depth[depth]
            bucket[0].extend(s)
            bucket[1].extend(col[c] for _, c in items)
            bucket[2].extend(preferred is None or bool(preferred[i]) for i, _ in items)
        self.temperatures_ = {d: _fit_preferred(*bucket) for d, bucket in by_depth.items()}
        self.department_temperature_ = 1.0
        if depts and isinstance(dept_node, _LinearNode) and len(dept_node.classes) > 1:
            col = {c: j for j, c in enumerate(dept_node.classes)}
            known = [(int(i), col[d]) for i in rows if (d := depts[i]) is not None and d in col]
            if known:
                s = dept_node.scores(Xm[[i for i, _ in known]])
                self.department_temperature_ = _fit_preferred(
                    list(s),
                    [j for _, j in known],
                    [preferred is None or bool(preferred[i]) for i, _ in known],
                )

    # --- predict ----------------------------------------------------------------------------

    def _tree(self) -> _Tree:
        tree = getattr(self, "tree_", None)
        if tree is None:
            tree = self.tree_ = _Tree(self.nodes_)
        return tree

    def _beam(self, Xm: _Rows, width: int) -> list[list[tuple[str, float]]]:
        """Top `width` (path, probability) per row, by beam search down the tree.

        The beams of all rows are arrays (path ids, probabilities) and each depth is one pass
        over the node models that some row reaches: the rows reaching a node are scored together.
        """
        tree = self._tree()
        n = Xm.shape[0]
        if n == 1:
            return [self._beam_one(Xm, width, tree)]
        ids = np.zeros((n, 1), dtype=np.int64)
        probs = np.ones((n, 1))
        for depth in range(self.depth_):
            node_of = np.where(ids >= 0, tree.node_of[ids], -1)
            expand = node_of >= 0
            if not expand.any():
                break
            stay_r, stay_s = np.nonzero((ids >= 0) & ~expand)
            cand_rows = [stay_r]
            cand_ids = [ids[stay_r, stay_s]]
            cand_probs = [probs[stay_r, stay_s]]
            rows_e, slots_e = np.nonzero(expand)
            nodes_e = node_of[rows_e, slots_e]
            order = np.argsort(nodes_e, kind="stable")
            rows_e, slots_e, nodes_e = rows_e[order], slots_e[order], nodes_e[order]
            bounds = np.flatnonzero(np.diff(nodes_e)) + 1
            temperature = self.temperatures_.get(depth, 1.0)
            for group in np.split(np.arange(len(nodes_e)), bounds):
                g = int(nodes_e[group[0]])
                node, children = tree.nodes[g], tree.children[g]
                rs = rows_e[group]
                if len(children) == 1:
                    q = np.ones((len(rs), 1))
                else:
                    q = softmax(node.scores(Xm.take(rs)), temperature)
                if q.shape[1] > width:  # only the best `width` children can survive
                    top = np.argpartition(-q, width - 1, axis=1)[:, :width]
                    q = np.take_along_axis(q, top, axis=1)
                    child = children[top]
                else:
                    child = np.broadcast_to(children, q.shape)
                cand_rows.append(np.repeat(rs, q.shape[1]))
                cand_ids.append(child.ravel())
                cand_probs.append((probs[rs, slots_e[group]][:, None] * q).ravel())
            r_all = np.concatenate(cand_rows)
            i_all = np.concatenate(cand_ids)
            p_all = np.concatenate(cand_probs)
            order = np.lexsort((-p_all, r_all))
            r_all, i_all, p_all = r_all[order], i_all[order], p_all[order]
            rank = np.arange(len(r_all)) - np.searchsorted(r_all, r_all)
            keep = rank < width
            w = int(min(width, rank.max() + 1))
            ids = np.full((n, w), -1, dtype=np.int64)
            probs = np.zeros((n, w))
            ids[r_all[keep], rank[keep]] = i_all[keep]
            probs[r_all[keep], rank[keep]] = p_all[keep]
        names = tree.paths
        return [
            [(names[i], p) for i, p in zip(row_ids, row_p, strict=True) if i >= 0]
            for row_ids, row_p in zip(ids.tolist(), probs.tolist(), strict=True)
        ]

    def _beam_one(self, x: _Rows, width: int, tree: _Tree) -> list[tuple[str, float]]:
        """`_beam` for one row: the same search with scalar bookkeeping (less numpy overhead)."""
        beam: list[tuple[int, float]] = [(0, 1.0)]
        for depth in range(self.depth_):
            temperature = self.temperatures_.get(depth, 1.0)
            new: list[tuple[int, float]] = []
            expanded = False
            for pid, p in beam:
                g = tree.node_of_list[pid]
                if g < 0:
                    new.append((pid, p))
                    continue
                expanded = True
                children = tree.children_list[g]
                if len(children) == 1:
                    new.append((children[0], p))
                    continue
                q = softmax(tree.nodes[g].scores(x)[0], temperature)
                top = np.argpartition(-q, width - 1)[:width] if len(q) > width else range(len(q))
                new.extend((children[j], p * float(q[j])) for j in top)
            if not expanded:
                break
            new.sort(key=lambda item: -item[1])
            beam = new[:width]
        return [(tree.paths[i], p) for i, p in beam]

    def _department_scores(
        self, Xm: _Rows, beams: list[list[tuple[str, float]]]
    ) -> tuple[list[str], np.ndarray] | None:
        node = self.department_node_
        if node is None:
            return None
        if isinstance(node, _LinearNode):
            if len(node.classes) == 1:
                return node.classes, np.ones((Xm.shape[0], 1))
            return node.classes, softmax(node.scores(Xm), self.department_temperature_)
        codes, table = node
        out = np.zeros((len(beams), len(codes)))
        for r, beam in enumerate(beams):
            total = 0.0
            for path, p in beam:
                key = path
                while key not in table:
                    key = _SEP.join(split_label(key)[:-1])
                out[r] += p * table[key]
                total += p
            out[r] /= total or 1.0
        return codes, out

    def _explain(self, X: _Rows, row: int, path: str) -> list[tuple[str, float]]:
        start, end = X.indptr[row], X.indptr[row + 1]
        if self.n_terms <= 0 or start == end:
            return []
        cols = X.indices[start:end]
        parts = split_label(path)
        contrib = np.zeros(len(cols))
        for d in range(len(parts)):
            node = self.nodes_.get(_SEP.join(parts[:d]))
            if node is None or len(node.classes) < 2:
                continue
            contrib += node.contributions(X, row, node.classes.index(_SEP.join(parts[: d + 1])))
        positive = np.flatnonzero(contrib > 0)
        ranked = positive[np.argsort(-contrib[positive], kind="stable")][: 8 * self.n_terms]
        columns = cols[ranked]
        return self._pick_terms(
            columns.tolist(),
            contrib[ranked].tolist(),
            self.features_.is_char(columns).tolist(),
        )

    def _pick_terms(
        self, columns: list[int], weights: list[float], is_char: list[bool]
    ) -> list[tuple[str, float]]:
        """Terms to show from the strongest positive features (strongest first).

        Words first (an agent reads words); character n-grams of two or more characters only
        fill up, when they are not part of a word already shown. Only the names that may be shown
        are built.
        """
        top: list[tuple[str, float]] = []
        for c, w, char in zip(columns, weights, is_char, strict=True):
            if not char:
                name = self.features_.name(c)
                if len(name) > 1:
                    top.append((name, w))
                    if len(top) >= self.n_terms:
                        break
        for c, w, char in zip(columns, weights, is_char, strict=True):
            if len(top) >= self.n_terms:
                break
            if char:
                term = self.features_.name(c)[len(_CHAR_PREFIX) :]
                if len(term) > 1 and not any(term in shown for shown, _ in top):
                    top.append((term, w))
        return [(term, round(weight, 4)) for term, weight in top]

    def _explain_batch(self, X: _Rows, labels: list[str]) -> list[list[tuple[str, float]]]:
        """`_explain` of every row at once: one pass per node model on the rows it explains."""
        n = X.shape[0]
        if self.n_terms <= 0:
            return [[] for _ in range(n)]
        if n == 1:
            return [self._explain(X, 0, labels[0])]
        tree = self._tree()
        by_node: dict[int, tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
        for r, label in enumerate(labels):
            parts = split_label(label)
            for d in range(len(parts)):
                g = tree.node_of_list[tree.index[_SEP.join(parts[:d])]]
                if g >= 0 and len(tree.nodes[g].classes) > 1:
                    rows, columns = by_node[g]
                    rows.append(r)
                    columns.append(tree.columns[g][_SEP.join(parts[: d + 1])])
        contrib = np.zeros(len(X.indices))
        for g, (rows, columns) in by_node.items():
            node = tree.nodes[g]
            if len(node.features) == 0:
                continue
            picks, lengths = X.picks(rows)
            pos, known = node._positions(X.word[picks], X.bit[picks])
            weight = node.weights[pos, np.repeat(columns, lengths)]
            contrib[picks] += np.where(known, X.data[picks] * weight, 0.0)
        row_of = np.repeat(np.arange(n), np.diff(X.indptr))
        cand = np.flatnonzero(contrib > 0)
        cand = cand[np.lexsort((-contrib[cand], row_of[cand]))]
        crow = row_of[cand]
        keep = np.arange(len(cand)) - np.searchsorted(crow, crow) < 8 * self.n_terms
        cand, crow = cand[keep], crow[keep]
        columns_all = X.indices[cand]
        cols_l = columns_all.tolist()
        weights_l = contrib[cand].tolist()
        chars_l = self.features_.is_char(columns_all).tolist()
        bounds = np.searchsorted(crow, np.arange(n + 1)).tolist()
        return [
            self._pick_terms(
                cols_l[bounds[r] : bounds[r + 1]],
                weights_l[bounds[r] : bounds[r + 1]],
                chars_l[bounds[r] : bounds[r + 1]],
            )
            for r in range(n)
        ]

    def suggest_batch(
        self, texts: Iterable[str], k: int = 5, explain: bool = True
    ) -> list[Suggestion]:
        """One `Suggestion` per text (top-`k` alternatives; `explain=False` skips the terms)."""
        check_is_fitted(self, "nodes_")
        texts = [str(t) if t is not None else "" for t in texts]
        if not texts:
            return []
        words, compacts = _tokens_of(self, texts)
        indptr, indices, data = self.features_.transform(words, compacts)
        Xm = _Rows(indptr, indices, data, self.features_.n_features)
        vocabulary = self.features_.word_id
        gate = [assess(t, w, vocabulary) for t, w in zip(texts, words, strict=True)]
        beams = self._beam(Xm, max(k, 1))
        dept = self._department_scores(Xm, beams)
        dept_top: list[list[tuple[str, float]]] = []
        if dept is not None:
            codes, probs = dept
            order = np.argsort(-probs, axis=1)[:, :k]
            top_p = np.take_along_axis(probs, order, axis=1).tolist()
            dept_top = [
                [(codes[j], p) for j, p in zip(o, tp, strict=True)]
                for o, tp in zip(order.tolist(), top_p, strict=True)
            ]
        labels = [beam[0][0] for beam in beams]
        terms = self._explain_batch(Xm, labels) if explain else None
        out = []
        for r, beam in enumerate(beams):
            label, conf = beam[0]
            department_alts = dept_top[r] if dept_top else []
            out.append(
                Suggestion(
                    label=label,
                    confidence=float(conf),
                    alternatives=[(p_, float(c)) for p_, c in beam[:k]],
                    levels=self._levels(beam, split_label(label)),
                    department=department_alts[0] if department_alts else None,
                    department_alternatives=department_alts,
                    terms=terms[r] if terms is not None else [],
                    ood=gate[r].flags,
                )
            )
        return out

    def _levels(
        self, beam: list[tuple[str, float]], parts: tuple[str, ...]
    ) -> list[tuple[str, float]]:
        # Probability of each prefix of the best path: the beam mass under it, never below the
        # best path's own probability (the beam is truncated, so this is a lower bound).
        levels = []
        for d in range(1, len(parts) + 1):
            prefix = _SEP.join(parts[:d])
            mass = sum(p for path, p in beam if path == prefix or path.startswith(prefix + _SEP))
            levels.append((prefix, float(min(1.0, mass))))
        return levels

    def suggest(self, text: str, k: int = 5, explain: bool = True) -> Suggestion:
        return self.suggest_batch([text], k=k, explain=explain)[0]

    def predict(self, X: Iterable[str]) -> np.ndarray:
        """The deepest predicted path of each text."""
        return np.array([s.label for s in self.suggest_batch(X, k=1, explain=False)], dtype=object)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        return tags
