"""rfmodel.scaling: power-law fits recover known exponents and their intervals cover the truth."""

import math

import numpy as np
import pytest

from rfmodel.scaling import (
    PowerLawFit,
    classify_phase,
    local_exponents,
    max_rule_loss_exponent,
    power_law_fit,
    sliding_fits,
    theory_xi,
)

T = 100.0 * 2.0 ** np.arange(10)


def test_exact_power_law_is_recovered_exactly():
    fit = power_law_fit(T, 0.7 * T**-0.6)
    assert math.isclose(fit.exponent, -0.6, abs_tol=1e-12)
    assert math.isclose(fit.prefactor, 0.7, rel_tol=1e-10)
    assert fit.stderr < 1e-12 and fit.rms < 1e-12
    assert fit.n == 10 and fit.x_min == 100 and fit.x_max == T[-1]
    np.testing.assert_allclose(fit.predict(T), 0.7 * T**-0.6, rtol=1e-10)


def test_noisy_fit_recovers_exponent_and_interval_covers_truth():
    rng = np.random.default_rng(0)
    true, n_rep, covered, est = -0.45, 400, 0, []
    for _ in range(n_rep):
        y = 2.0 * T**true * np.exp(0.05 * rng.standard_normal(T.size))
        fit = power_law_fit(T, y)
        est.append(fit.exponent)
        covered += fit.lo <= true <= fit.hi
    assert abs(np.mean(est) - true) < 0.003  # unbiased
    assert 0.91 <= covered / n_rep <= 0.985  # nominal 95%


def test_bootstrap_interval_covers_truth_and_is_reproducible():
    rng = np.random.default_rng(1)
    y = T**-0.3 * np.exp(0.03 * rng.standard_normal(T.size))
    a = power_law_fit(T, y, bootstrap=500, seed=3)
    b = power_law_fit(T, y, bootstrap=500, seed=3)
    assert a.method == "bootstrap" and a.lo == b.lo and a.hi == b.hi
    assert a.lo < -0.3 < a.hi and a.lo < a.exponent < a.hi
    t = power_law_fit(T, y)
    assert 0.3 < (a.hi - a.lo) / (t.hi - t.lo) < 3  # same order as the t interval


def test_range_selects_points():
    # Broken power law: slope -1 below 1000, -0.5 above.
    y = np.where(T < 1000, T**-1.0, 1000**-0.5 * T**-0.5)
    hi = power_law_fit(T, y, x_min=1600)
    lo = power_law_fit(T, y, x_max=800)
    assert math.isclose(hi.exponent, -0.5, abs_tol=1e-12) and hi.x_min == 1600
    assert math.isclose(lo.exponent, -1.0, abs_tol=1e-12) and lo.x_max == 800


def test_local_exponents_show_the_drift():
    y = np.where(T < 1000, T**-1.0, 1000**-0.5 * T**-0.5)
    xc, s = local_exponents(T, y)
    assert xc.shape == s.shape == (T.size - 1,)
    np.testing.assert_allclose(xc, np.sqrt(T[1:] * T[:-1]))
    assert np.allclose(s[:2], -1.0) and np.allclose(s[-5:], -0.5)
    fits = sliding_fits(T, y, window=3)
    assert len(fits) == T.size - 2 and all(isinstance(f, PowerLawFit) for f in fits)


def test_negated_flips_slope_and_interval():
    fit = power_law_fit(T, T**-0.6 * (1 + 0.01 * np.sin(T)))
    neg = fit.negated()
    assert neg.exponent == -fit.exponent and neg.lo == -fit.hi and neg.hi == -fit.lo
    assert set(neg.as_dict()) >= {"exponent", "lo", "hi", "stderr", "x_min", "x_max", "n"}


def test_two_points_have_no_interval():
    fit = power_law_fit([1.0, 4.0], [1.0, 0.5])
    assert math.isclose(fit.exponent, -0.5) and math.isnan(fit.stderr) and math.isnan(fit.lo)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"x": [1, 2, 3], "y": [1, 2]}, "y"),
        ({"x": [1, 2, 3], "y": [1, 0, 2]}, "y"),
        ({"x": [1, -2, 3], "y": [1, 1, 2]}, "x"),
        ({"x": [[1, 2]], "y": [[1, 2]]}, "x"),
        ({"x": [2, 2, 2], "y": [1, 2, 3]}, "x"),
        ({"x": [1, 2, 3], "y": [1, 2, 3], "level": 1.5}, "level"),
        ({"x": [1, 2, 3], "y": [1, 2, 3], "bootstrap": -1}, "bootstrap"),
        ({"x": [1, 2, 3], "y": [1, 2, 3], "x_min": 2.5}, "x"),
    ],
)
def test_bad_input_raises_naming_the_parameter(kwargs, name):
    x, y = kwargs.pop("x"), kwargs.pop("y")
    with pytest.raises(ValueError, match=name):
        power_law_fit(x, y, **kwargs)


def test_sliding_fits_validation():
    with pytest.raises(ValueError, match="window"):
        sliding_fits(T, T, window=1)
    with pytest.raises(ValueError, match="increasing"):
        sliding_fits(T[::-1], T, window=2)
    with pytest.raises(ValueError, match="window"):
        sliding_fits(T[:2], T[:2], window=3)


def test_theory_exponents():
    assert math.isclose(max_rule_loss_exponent(2.5, 1.2), 0.6)
    assert math.isclose(max_rule_loss_exponent(1.5, 2.5), 0.2)
    assert math.isclose(max_rule_loss_exponent(2.0, 2.0 + 1e-12), 0.5, abs_tol=1e-9)  # continuous
    assert math.isclose(theory_xi(2.5, 1.2), 1 - 1.2 / 2.5) and theory_xi(1.5, 2.5) == 0.0
    with pytest.raises(ValueError, match="a and b"):
        max_rule_loss_exponent(1.0, 2.0)


def test_classify_phase():
    assert classify_phase(0.5, 0.1) == "easy"
    assert classify_phase(-0.01, 0.99) == "hard"
    assert classify_phase(0.02, 0.5) == "mixed"
    assert classify_phase(power_law_fit(T, T**-0.4).negated(), 0.3) == "easy"
    with pytest.raises(ValueError, match="finite"):
        classify_phase(math.nan, 0.5)
