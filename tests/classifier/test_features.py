"""The numpy feature space computes scikit-learn's TF-IDF over the same features."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from classifier.features import CHAR_PREFIX, FeatureSpace

DOCS = [
    (["小区", "物业", "停水", "物业"], "小区物业停水物业"),
    (["公交", "线路", "调整", "小区"], "公交线路调整小区"),
    (["物业", "停水", "三天"], "物业停水三天a1"),
    ([], "12"),
    (["噪音", "夜间", "施工", "噪音"], "噪音夜间施工噪音"),
    (["施工", "夜间"], ""),
]


def string_features(words: list[str], compact: str, char_range: tuple[int, int]) -> list[str]:
    feats = list(words) + [" ".join(p) for p in itertools.pairwise(words)]
    lo, hi = char_range
    for n in range(lo, hi + 1):
        feats += [CHAR_PREFIX + compact[i : i + n] for i in range(len(compact) - n + 1)]
    return feats


@pytest.mark.parametrize("char_range", [(1, 2), (1, 3), (2, 3)])
@pytest.mark.parametrize("min_df", [1, 2])
def test_tfidf_equals_scikit_learn(char_range: tuple[int, int], min_df: int) -> None:
    space = FeatureSpace(2, char_range)
    words = [w for w, _ in DOCS]
    compacts = [c for _, c in DOCS]
    chunks = [(words[:2], compacts[:2]), (words[2:], compacts[2:])]
    indptr, indices, data = space.fit_transform(chunks, min_df=min_df, max_features=None)
    ours = np.zeros((len(DOCS), space.n_features))
    for r in range(len(DOCS)):
        for j in range(indptr[r], indptr[r + 1]):
            ours[r, indices[j]] += data[j]
    names = [space.name(c) for c in range(space.n_features)]

    feats = [string_features(w, c, char_range) for w, c in DOCS]
    vec = TfidfVectorizer(analyzer=lambda d: d, sublinear_tf=True, min_df=min_df)
    theirs = vec.fit_transform(feats).toarray()
    assert sorted(names) == sorted(vec.get_feature_names_out())
    column = {name: j for j, name in enumerate(vec.get_feature_names_out())}
    np.testing.assert_allclose(ours, theirs[:, [column[n] for n in names]], atol=1e-6)

    # transform() of the same documents gives the same rows; unseen words are ignored
    indptr2, indices2, data2 = space.transform([*words, ["没见过", "物业"]], [*compacts, "物业"])
    again = np.zeros((len(DOCS) + 1, space.n_features))
    for r in range(len(DOCS) + 1):
        for j in range(indptr2[r], indptr2[r + 1]):
            again[r, indices2[j]] += data2[j]
    np.testing.assert_allclose(again[: len(DOCS)], ours, atol=1e-6)
    assert {names[c] for c in np.flatnonzero(again[-1])} <= {"物业", "#物", "#业", "#物业"}


def test_max_features_keeps_the_most_frequent() -> None:
    space = FeatureSpace(1, None)
    space.fit_transform([([["a", "b"], ["a", "c"], ["a", "b"]], ["", "", ""])], 1, 2)
    assert sorted(space.name(c) for c in range(space.n_features)) == ["a", "b"]
