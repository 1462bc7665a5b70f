"""Compute-optimal scaling: the §7 exponents, the frontier and multiplier helpers, and
Problem.theory() per finite-N model."""

import math

import numpy as np
import pytest

from rfmodel import Problem
from rfmodel.scaling import (
    compute_frontier,
    compute_multiplier,
    compute_optimal_exponents,
    steps_for_compute,
)

N = 2.0 ** np.arange(3, 16)
T = 50 * 2.0 ** np.arange(0, 15)


def _grid(alpha, r, shift=1.0):
    """L = N^−α + 3 (T/shift)^−r on the grid (shift > 1: a schedule needing shift× the steps)."""
    return N[:, None] ** -alpha + 3.0 * (T[None, :] / shift) ** -r


@pytest.mark.parametrize("alpha,r", [(1.5, 0.6), (1.2, 0.6), (0.5, 0.2), (1.5, 1.5 / 2.7)])
def test_frontier_of_two_power_laws_has_the_derived_exponents(alpha, r):
    """Minimizing A N^−α + B T^−r along N·T·m = C numerically gives p = r/(α+r),
    q = α/(α+r), ℓ = αr/(α+r) (docs/theory.md §7)."""
    f = compute_frontier(N, T, _grid(alpha, r), batch=4)
    fits = f.fits()
    p, q, ell = compute_optimal_exponents(alpha, r)
    assert f.interior.sum() >= 8
    assert abs(fits["N"].exponent - p) < 2e-3
    assert abs(fits["T"].exponent - q) < 2e-3
    assert abs(fits["L"].exponent - ell) < 2e-3
    np.testing.assert_allclose(f.N * f.T * 4, f.C, rtol=1e-12)  # on the iso-compute line
    # the frontier is the lower envelope: no grid point with N·T·m ≤ C does better
    L = _grid(alpha, r)
    for c, lc in zip(f.C[f.interior], f.L[f.interior], strict=True):
        ok = N[:, None] * T[None, :] * 4 <= c * (1 + 1e-12)
        assert lc <= L[ok].min() * (1 + 1e-9)


def test_closed_forms_of_the_compute_exponents():
    """Top-N (α = a−1): easy N* ~ C^(1/(a+1)), L ~ C^(−(a−1)/(a+1)); hard 1/(b+1) and
    (a−1)/(b+1); constant rate (r = (a−1)/(a−1+b)) 1/(a+b), (a−1)/(a+b)."""
    for a in (2.5, 3.0):
        p, q, ell = compute_optimal_exponents(a - 1, (a - 1) / a)
        assert math.isclose(p, 1 / (a + 1)) and math.isclose(ell, (a - 1) / (a + 1))
        assert math.isclose(p + q, 1.0)
    for a, b in [(1.5, 2.5), (1.3, 2.0)]:
        p, _, ell = compute_optimal_exponents(a - 1, (a - 1) / b)
        assert math.isclose(p, 1 / (b + 1)) and math.isclose(ell, (a - 1) / (b + 1))
        p, _, ell = compute_optimal_exponents(a - 1, (a - 1) / (a - 1 + b))
        assert math.isclose(p, 1 / (a + b)) and math.isclose(ell, (a - 1) / (a + b))


@pytest.mark.parametrize("a,b", [(2.5, 1.2), (1.5, 2.5), (3.5, 1.3)])
def test_theory_per_model(a, b):
    easy = a > b
    r = (a - 1) / a if easy else (a - 1) / b
    rc = (a - 1) / (a - 1 + b)
    models = {
        "top_n": (Problem.top_n(a, b, n_features=50), a - 1),
        "random_features": (
            Problem.from_random_features(a, b, n_features=20, n_inputs=math.inf),
            min(a - 1, b),
        ),
    }
    for model, (p, alpha) in models.items():
        th = p.theory()
        assert th.model == p.model == model and th.approx_error == alpha
        assert th.compute_model_size == pytest.approx(r / (alpha + r))
        assert th.compute_steps == pytest.approx(alpha / (alpha + r))
        assert th.compute_loss == pytest.approx(alpha * r / (alpha + r))
        assert th.constant_compute_model_size == pytest.approx(rc / (alpha + rc))
        assert th.constant_compute_loss == pytest.approx(alpha * rc / (alpha + rc))
    plain = Problem(a, b, n_modes=50).theory()  # an N-mode problem approximates nothing
    assert plain.model == "modes"
    assert plain.approx_error is None and plain.compute_model_size is None
    assert plain.compute_loss is None and plain.constant_compute_loss is None


def test_compute_multiplier_recovers_a_known_factor():
    """A schedule that needs k× the steps for every loss needs k× the compute."""
    ref = compute_frontier(N, T, _grid(1.5, 0.6), batch=2)
    for k in (2.0, 3.5):
        other = compute_frontier(N, T, _grid(1.5, 0.6, shift=k), batch=2)
        C, mult = compute_multiplier(ref, other)
        assert C.size >= 5
        np.testing.assert_allclose(mult, k, rtol=2e-3)
    C, mult = compute_multiplier(ref, ref)
    np.testing.assert_allclose(mult, 1.0, rtol=1e-6)


def test_compute_budgets_bad_input():
    assert steps_for_compute(4e6, 1000, batch=4) == 1000
    with pytest.raises(ValueError, match="C must be >= N·m"):
        steps_for_compute(100, 50, batch=4)
    with pytest.raises(ValueError, match="n_features must be"):
        steps_for_compute(1e6, 0)
    with pytest.raises(ValueError, match="C must be a finite number"):
        steps_for_compute(float("nan"), 10)
    L = _grid(1.5, 0.6)
    with pytest.raises(ValueError, match="C must be >= N_min·m"):
        compute_frontier(N, T, L, batch=4, C=[10.0])
    with pytest.raises(ValueError, match="C must be finite and > 0"):
        compute_frontier(N, T, L, C=[-1.0])
    with pytest.raises(ValueError, match="L must have shape"):
        compute_frontier(N, T, L[:, :-1])
    with pytest.raises(ValueError, match="L must be finite and > 0"):
        compute_frontier(N, T, -L)
    with pytest.raises(ValueError, match="alpha must be"):
        compute_optimal_exponents(0.0, 0.5)
