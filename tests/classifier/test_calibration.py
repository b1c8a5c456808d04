from __future__ import annotations

import numpy as np
import pytest

from classifier.calibration import expected_calibration_error, fit_temperature, softmax


def test_softmax_rows_sum_to_one_and_temperature_flattens():
    scores = np.array([[2.0, 0.0, -1.0]])
    sharp, flat = softmax(scores, 0.5), softmax(scores, 5.0)
    assert sharp.sum() == pytest.approx(1.0) and flat.sum() == pytest.approx(1.0)
    assert sharp.max() > flat.max()


def test_fit_temperature_recovers_the_generating_temperature():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(4000, 4)) * 3
    probs = softmax(scores, 2.0)
    targets = [rng.choice(4, p=p) for p in probs]
    assert fit_temperature(list(scores), targets) == pytest.approx(2.0, rel=0.15)


def test_fit_temperature_handles_rows_of_different_widths():
    t = fit_temperature([np.array([3.0, 0.0]), np.array([2.0, 0.0, 1.0])], [0, 0])
    assert t > 0


def test_ece_is_zero_for_perfect_calibration_and_large_for_overconfidence():
    assert expected_calibration_error([1.0, 1.0], [True, True]) == 0.0
    assert expected_calibration_error([0.99] * 10, [False] * 10) == pytest.approx(0.99)
