from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from classifier import DatasetError, HotlineClassifier, Suggestion


def test_init_only_stores_hyperparameters():
    clf = HotlineClassifier(C=2.0, random_state=3)
    assert clf.get_params()["C"] == 2.0
    assert not [k for k in vars(clf) if k.endswith("_")]
    assert clone(clf).get_params() == clf.get_params()


def test_fit_returns_self_and_sets_learned_attributes(corpus, topics):
    texts, labels, _departments = corpus
    clf = HotlineClassifier(random_state=0)
    assert clf.fit(texts[:200], labels[:200]) is clf
    assert set(clf.classes_) == set(topics)
    assert clf.depth_ == 3
    assert clf.departments_ is None


def test_predict_before_fit_raises_not_fitted():
    with pytest.raises(NotFittedError):
        HotlineClassifier().predict(["小区停水"])


def test_learns_from_rows_labelled_at_different_depths(fitted, make_corpus):
    texts, labels, _ = make_corpus(120, seed=7, partial_every=0)
    predicted = fitted.predict(texts)
    assert np.mean(predicted == np.array(labels, dtype=object)) > 0.9
    # leaves are predicted although a third of the training rows stopped at level 1
    assert all(p.count("/") == 2 for p in predicted)


def test_suggestion_carries_levels_alternatives_department_and_terms(fitted):
    s = fitted.suggest("小区物业乱收费，保安不管事，电梯坏了，我的电话13912345678", k=3)
    assert isinstance(s, Suggestion)
    assert s.label == "城乡建设/住房保障/物业管理"
    assert [lv for lv, _ in s.levels] == ["城乡建设", "城乡建设/住房保障", s.label]
    probs = [p for _, p in s.levels]
    assert probs == sorted(probs, reverse=True) and probs[-1] == pytest.approx(s.confidence)
    assert len(s.alternatives) == 3 and s.alternatives[0] == (s.label, s.confidence)
    assert [c for _, c in s.alternatives] == sorted((c for _, c in s.alternatives), reverse=True)
    assert s.department is not None and s.department[0] == "housing"
    terms = [t for t, _ in s.terms]
    assert "物业" in terms
    assert not any("139" in t or t == "MOBILE" for t in terms[:1])


def test_confidences_are_probabilities(fitted, corpus):
    texts, _, _ = corpus
    for s in fitted.suggest_batch(texts[:20], k=5):
        assert 0 < s.confidence <= 1
        assert sum(c for _, c in s.alternatives) <= 1 + 1e-9
        assert s.department is not None and 0 < s.department[1] <= 1


def test_batch_and_single_suggestions_agree(fitted, corpus):
    texts, _, _ = corpus
    batch = fitted.suggest_batch(texts[:10])
    for text, s in zip(texts[:10], batch, strict=True):
        single = fitted.suggest(text)
        assert single.label == s.label
        assert single.confidence == pytest.approx(s.confidence, rel=1e-5)


def test_temperatures_are_fitted_per_depth(fitted):
    assert set(fitted.temperatures_) == {0, 1, 2}
    assert all(t > 0 for t in fitted.temperatures_.values())


def test_fit_is_reproducible_with_a_seed(corpus):
    texts, labels, _ = corpus
    a = HotlineClassifier(random_state=5).fit(texts[:150], labels[:150])
    b = HotlineClassifier(random_state=5).fit(texts[:150], labels[:150])
    assert a.suggest(texts[0]).confidence == b.suggest(texts[0]).confidence


def test_category_department_model_mixes_departments_of_likely_categories(corpus):
    texts, labels, departments = corpus
    clf = HotlineClassifier(department_model="category", random_state=0)
    clf.fit(texts, labels, departments)
    assert clf.suggest("公交线路班次太少，司机态度差").department[0] == "transport"


def test_max_depth_limits_the_labels(corpus):
    texts, labels, _ = corpus
    clf = HotlineClassifier(max_depth=1, random_state=0).fit(texts, labels)
    assert set(clf.classes_) == {"城乡建设", "环境保护", "交通运输"}


def test_parallel_fit_gives_the_same_model(corpus):
    texts, labels, departments = corpus
    a = HotlineClassifier(random_state=0).fit(texts[:200], labels[:200], departments[:200])
    b = HotlineClassifier(random_state=0, n_jobs=2).fit(
        texts[:200], labels[:200], departments[:200]
    )
    assert [s.label for s in a.suggest_batch(texts[:30])] == [
        s.label for s in b.suggest_batch(texts[:30])
    ]


@pytest.mark.parametrize(
    ("texts", "labels", "message"),
    [
        ([], [], "empty"),
        (["a", "b"], ["城乡建设"], "labels"),
        (["小区停水", "公交太少"], ["城乡建设", "城乡建设/住房"], "single"),
        (["小区停水", "公交太少"], ["城乡建设", ""], "empty"),
    ],
)
def test_unusable_training_data_raises_dataset_error(texts, labels, message):
    with pytest.raises(DatasetError, match=message):
        HotlineClassifier().fit(texts, labels)


def test_stacking_keeps_one_linear_map_per_node_and_matches_plain_quality(corpus):
    texts, labels, _ = corpus
    stacked = HotlineClassifier(stacking=True, random_state=0).fit(texts[:300], labels[:300])
    plain = HotlineClassifier(stacking=False, random_state=0).fit(texts[:300], labels[:300])
    assert stacked.stacking_ and not plain.stacking_
    assert "" in stacked.stacked_nodes_ and not plain.stacked_nodes_
    assert set(stacked.nodes_) == set(plain.nodes_)
    root, root_plain = stacked.nodes_[""], plain.nodes_[""]
    assert root.classes == root_plain.classes
    assert not np.allclose(root.intercept, root_plain.intercept)  # the root was stacked
    held_out, truth = texts[300:], np.array(labels[300:], dtype=object)
    stacked_hits = np.mean(stacked.predict(held_out) == truth)
    assert stacked_hits >= np.mean(plain.predict(held_out) == truth) - 0.05


def test_stacking_auto_is_on_for_small_training_sets(corpus):
    texts, labels, _ = corpus
    assert HotlineClassifier(random_state=0).fit(texts[:200], labels[:200]).stacking_


def test_models_pickled_before_stacking_existed_still_load(fitted):
    import pickle

    state = fitted.__getstate__()
    state.pop("stacking")
    state.pop("stacking_", None)
    old = HotlineClassifier.__new__(HotlineClassifier)
    old.__setstate__(pickle.loads(pickle.dumps(state)))
    assert old.get_params()["stacking"] is False and old.stacking_ is False
    assert list(old.predict(["小区物业乱收费"])) == list(fitted.predict(["小区物业乱收费"]))


def test_nodes_with_a_class_of_few_rows_are_not_stacked(corpus):
    texts, labels, _ = corpus
    stacked = HotlineClassifier(stacking=True, random_state=0).fit(texts[:60], labels[:60])
    plain = HotlineClassifier(stacking=False, random_state=0).fit(texts[:60], labels[:60])
    assert not stacked.stacked_nodes_
    for parent, node in plain.nodes_.items():
        np.testing.assert_array_equal(stacked.nodes_[parent].weights, node.weights)
