import numpy as np
import pytest

from medlearn.evaluation.calibration import expected_calibration_error, reliability_curve


def test_ece_hand_computed():
    # 4 samples, 2 classes; confidences .9 (right), .9 (wrong), .6 (right), .6 (right)
    y = np.array([0, 1, 1, 0])
    p = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.6, 0.4]])
    # bin(.9): acc .5 conf .9 -> .4 * 2/4 = .2 ; bin(.6): acc 1 conf .6 -> .4 * 2/4 = .2
    assert expected_calibration_error(y, p, n_bins=10) == pytest.approx(0.4)
    # binary as (N,) class-1 score gives the same
    assert expected_calibration_error(y, p[:, 1], n_bins=10) == pytest.approx(0.4)


def test_perfectly_calibrated_is_near_zero_and_overconfident_is_not():
    rng = np.random.default_rng(0)
    s = rng.uniform(0, 1, 20000)
    y = (rng.uniform(0, 1, 20000) < s).astype(int)
    assert expected_calibration_error(y, s) < 0.02
    sharp = np.where(s > 0.5, 0.99, 0.01)
    assert expected_calibration_error(y, sharp) > 0.2


def test_reliability_curve():
    y = np.array([0, 1, 1, 0])
    p = np.array([0.1, 0.1, 0.6, 0.4])  # confidences .9,.9,.6,.6
    curve = reliability_curve(y, p, n_bins=10)
    assert curve["count"].sum() == 4 and curve["count"][8] == 2 and curve["count"][5] == 2
    assert curve["accuracy"][8] == pytest.approx(0.5) and curve["confidence"][5] == pytest.approx(0.6)
    assert np.isnan(curve["accuracy"][0])
