"""The continuous-time limit (docs/theory.md §5): closed form, O(η) agreement with the exact
recursion for small rates, bad input."""

import math

import numpy as np
import pytest

from rfmodel import Problem
from rfmodel.ode import ode_loss_curve
from rfmodel.segments import segment_losses

P = Problem(a=2.5, b=1.2, sigma=0.3, n_modes=60, batch=4)


@pytest.mark.slow
def test_gradient_flow_closed_form():
    """σ = 0, m → ∞: C_k(t) = exp(−(2ηλ_k − η²λ_k²) t) C_k(0)."""
    p = Problem(a=2.0, b=1.5, sigma=0.0, n_modes=30, batch=1e15)
    eta, steps = 0.3, np.array([0, 10, 100, 1000])
    got = ode_loss_curve(p, [eta], [1000], steps=steps)
    eps = 2 * eta * p.lam - (eta * p.lam) ** 2
    want = np.sum(p.lam * p.c0 * np.exp(-np.outer(steps, eps)), axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-8)


@pytest.mark.slow
def test_small_rate_limit_of_the_recursion():
    """At fixed ηt the relative gap to the exact recursion is O(η): it halves with η."""
    errs = []
    for eta in (0.02, 0.01):
        T = int(round(8 / eta))
        steps = np.array([0, T // 4, T])
        ode = ode_loss_curve(P, [eta, 0.5 * eta], [T // 2, T - T // 2], steps=steps)
        disc = segment_losses(P, [eta, 0.5 * eta], [T // 2, T - T // 2], steps=steps)[1]
        errs.append(np.max(np.abs(ode / disc - 1)))
    assert errs[0] < 0.02 and math.isclose(errs[0] / errs[1], 2.0, rel_tol=0.1)


def test_bad_steps():
    with pytest.raises(ValueError, match="steps must be ascending"):
        ode_loss_curve(P, [0.1], [10], steps=[5, 2])
    with pytest.raises(ValueError, match="lengths must be integers"):
        ode_loss_curve(P, [0.1], [0], steps=[0])
