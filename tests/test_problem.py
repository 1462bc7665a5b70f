"""Problem: spectrum, phase, stability, binning accuracy, validation."""

import math

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rfmodel import Problem, loss_curve


def test_spectrum_and_initial_errors():
    p = Problem(a=2.0, b=1.5, n_modes=50)
    k = np.arange(1, 51)
    np.testing.assert_allclose(p.lam, k**-1.5, rtol=1e-15)
    np.testing.assert_allclose(p.lam * p.c0, k**-2.0, rtol=1e-14)  # λ_k w*_k² = k^-a
    assert p.n_eff == 50 and not p.binned


def test_normalize_gives_unit_initial_loss():
    assert math.isclose(
        Problem(a=1.3, b=2.0, n_modes=10_000, normalize=True).initial_loss, 1.0, rel_tol=1e-13
    )


@pytest.mark.parametrize(
    "a,b,phase", [(2.5, 1.2, "easy"), (1.5, 2.5, "hard"), (2.0, 2.0, "boundary")]
)
def test_phase_and_theory(a, b, phase):
    p = Problem(a=a, b=b)
    th = p.theory()
    assert p.phase == th.phase == phase
    if phase == "easy":
        assert math.isclose(th.xi, 1 - b / a) and math.isclose(th.delta, 2 * b - 1)
        assert math.isclose(th.optimal_loss, (a - 1) / a)
    if phase == "hard":
        assert th.xi == 0 and th.delta is None and math.isclose(th.optimal_loss, (a - 1) / b)
    assert math.isclose(th.constant_loss, (a - 1) / (a - 1 + b))


@pytest.mark.parametrize("batch", [1, 4])
def test_eta_critical_solves_stability_sum(batch):
    p = Problem(a=2.0, b=1.5, sigma=0.5, n_modes=30, batch=batch)
    eta_c = p.eta_critical()
    assert math.isclose(p.stability_sum(eta_c), 1.0, rel_tol=1e-10)
    assert eta_c < p.eta_mode_bound()
    # the stationary loss of a stable rate is what the recursion converges to
    eta = 0.5 * eta_c
    curve = loss_curve(p, np.full(20_000, eta))
    assert math.isclose(float(curve[-1]), p.stationary_loss(eta), rel_tol=1e-8)


def test_large_n_is_cheap_and_matches_zeta():
    p = Problem(a=1.5, b=2.5, n_modes=10**9)
    assert p.n_eff < 2000 and p.binned
    assert math.isclose(float(np.sum(p.weight)), 1e9, rel_tol=1e-15)
    from scipy.special import zeta

    assert math.isclose(p.initial_loss, zeta(1.5) - zeta(1.5, 1e9 + 1), rel_tol=1e-12)


@pytest.mark.parametrize("a,b,sigma", [(2.5, 1.2, 0.5), (1.5, 2.5, 0.5), (1.3, 2.75, 0.0)])
def test_binned_tail_matches_exact_run(a, b, sigma):
    """Binned vs exact at N = 20 000 agree to 1e-4 relative over a whole run (docs/theory.md §1)."""
    exact = Problem(a=a, b=b, sigma=sigma, n_modes=20_000, batch=4, n_exact=20_000)
    binned = Problem(a=a, b=b, sigma=sigma, n_modes=20_000, batch=4)  # default resolution
    assert binned.binned and binned.n_eff < 1200
    T = 3000
    t = np.arange(T)
    etas = 0.8 * exact.eta_critical() * (1 - t / T) ** 1.5  # anneal: reaches small losses
    ce, cb = loss_curve(exact, etas), loss_curve(binned, etas)
    assert float(np.max(np.abs(cb / ce - 1))) < 1e-4


def test_binning_accuracy_improves_with_resolution():
    exact = Problem(a=2.5, b=1.2, sigma=0.3, n_modes=20_000, batch=2, n_exact=20_000)
    etas = np.full(2000, 0.5)
    ce = loss_curve(exact, etas)
    errs = [
        float(
            np.max(
                np.abs(
                    loss_curve(
                        Problem(
                            a=2.5,
                            b=1.2,
                            sigma=0.3,
                            n_modes=20_000,
                            batch=2,
                            n_exact=100,
                            bins_per_decade=r,
                        ),
                        etas,
                    )
                    / ce
                    - 1
                )
            )
        )
        for r in (5, 20, 80)
    ]
    assert errs[0] > errs[1] > errs[2]


def test_random_features_problem():
    p = Problem.from_random_features(
        2.0, 1.5, 0.3, n_features=30, n_inputs=120, key=jax.random.key(0), batch=2
    )
    assert p.kind == "random_features" and p.n_eff == 30
    assert p.approx_error > 0
    assert math.isclose(p.sigma**2, 0.3**2 + p.approx_error, rel_tol=1e-12)
    # the best feature-space fit plus its residual is the whole target
    total = float(np.sum(p.features.lam_x * p.features.w_star**2))
    assert math.isclose(p.initial_loss + p.approx_error, total, rel_tol=1e-9)


BAD = [
    (dict(a=1.0, b=2.0), "a must be"),
    (dict(a=0.5, b=2.0), "a must be"),
    (dict(a=2.0, b=1.0), "b must be"),
    (dict(a=2.0, b=float("nan")), "b must be"),
    (dict(a=float("inf"), b=2.0), "a must be"),
    (dict(a=2.0, b=2.0, sigma=-0.1), "sigma must be"),
    (dict(a=2.0, b=2.0, sigma=float("nan")), "sigma must be"),
    (dict(a=2.0, b=2.0, batch=0), "batch must be"),
    (dict(a=2.0, b=2.0, n_modes=0), "n_modes must be"),
    (dict(a=2.0, b=2.0, n_modes=2.5), "n_modes must be"),
    (dict(a=2.0, b=2.0, n_exact=0), "n_exact must be"),
    (dict(a=2.0, b=2.0, bins_per_decade=0), "bins_per_decade must be"),
    (dict(a="x", b=2.0), "a must be"),
]


@pytest.mark.parametrize("kwargs,msg", BAD)
def test_invalid_input_names_parameter(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        Problem(**kwargs)


def test_random_features_invalid_sizes():
    with pytest.raises(ValueError, match="n_features must be"):
        Problem.from_random_features(2.0, 1.5, n_features=0, n_inputs=10, key=jax.random.key(0))


@settings(max_examples=25, deadline=None)
@given(a=st.floats(1.05, 4.0), b=st.floats(1.05, 4.0), m=st.integers(1, 64))
def test_eta_critical_property(a, b, m):
    p = Problem(a=a, b=b, n_modes=2000, batch=m)
    eta_c = p.eta_critical()
    assert 0 < eta_c < p.eta_mode_bound()
    assert (
        p.stability_sum(0.999 * eta_c)
        < 1
        < p.stability_sum(min(1.001 * eta_c, 0.99999 * p.eta_mode_bound()))
    )
