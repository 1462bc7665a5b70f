"""The two finite-N models: top-N (exact) and Gaussian random features (per draw and the
deterministic equivalent averaged over F), their approximation errors and exponents."""

import math

import jax
import numpy as np
import pytest
from scipy.special import zeta

from rfmodel import Problem, loss_curve
from rfmodel import random_features as rf
from rfmodel.scaling import local_exponents

A, B, N, M, SIGMA = 2.5, 1.2, 200, 4000, 0.3


def _excess(p, etas):
    """Excess test loss over σ²: L(t) + L_approx."""
    return np.asarray(loss_curve(p, etas)) + p.approx_error


@pytest.fixture(scope="module")
def draws():
    """64 draws of F at N = 200, M = 4000: (excess-loss curves, L_approx, η_c)."""
    etas = np.full(400, 0.2)
    curves, la, eta_c = [], [], []
    for s in range(64):
        p = Problem.from_random_features(
            A, B, SIGMA, n_features=N, n_inputs=M, key=jax.random.key(s), batch=1
        )
        curves.append(_excess(p, etas))
        la.append(p.approx_error)
        eta_c.append(p.eta_critical())
    return np.array(curves), np.array(la), np.array(eta_c), etas


def test_deterministic_equivalent_matches_the_average_of_draws(draws):
    """The averaged model's loss curve is the mean of 64 draws' within 2% at every step, and
    within 4 standard errors (256 draws: 0.45%, docs/theory.md §3)."""
    curves, la, eta_c, etas = draws
    de = Problem.from_random_features(A, B, SIGMA, n_features=N, n_inputs=M, batch=1)
    assert de.kind == "random_features_de" and de.n_modes == N and de.model == "random_features"
    c = _excess(de, etas)
    mean = curves.mean(0)
    sem = curves.std(0, ddof=1) / math.sqrt(len(curves))
    assert np.max(np.abs(c / mean - 1)) < 0.02
    assert np.all(np.abs(c - mean)[1:] <= 4 * sem[1:])
    assert c[-1] < 0.15 * c[0]  # the run really learns: the comparison is not vacuous
    # L_approx and the largest stable constant rate, within sampling error of the draws.
    la_sem = la.std(ddof=1) / math.sqrt(la.size)
    assert abs(de.approx_error - la.mean()) < 4 * la_sem
    assert abs(de.approx_error / la.mean() - 1) < 0.03
    assert abs(de.eta_critical() / eta_c.mean() - 1) < 0.01


def test_deterministic_equivalent_is_a_consistent_spectrum():
    """Totals: N eigenvalues, one per isolated outlier; mean trace tr Λ; initial loss
    Σ p_k − L_approx; σ_eff² = σ² + L_approx."""
    d = rf.spectral_density(A, B, n_features=N, n_inputs=M, per_interval=24)
    assert abs(d.count_total / N - 1) < 1e-3
    assert abs(d.loss_total / d.loss_exact - 1) < 2e-5
    assert d.n_isolated >= 3 and np.all(np.diff(d.mu) <= 0)  # μ(x) decreasing
    per = d.dn[: (d.n_isolated - 1) * 24].reshape(-1, 24).sum(1)
    np.testing.assert_allclose(per, 1.0, atol=1e-4)
    p = Problem.from_random_features(A, B, SIGMA, n_features=N, n_inputs=M)
    assert math.isclose(float(np.sum(p.weight)), N, rel_tol=1e-12)
    tr = float(np.sum(np.arange(1, M + 1, dtype=float) ** -B))
    assert math.isclose(float(np.sum(p.weight * p.lam)), tr, rel_tol=3e-4)  # quadrature
    total = float(np.sum(np.arange(1, M + 1, dtype=float) ** -A))
    assert math.isclose(p.initial_loss + p.approx_error, total, rel_tol=1e-5)
    assert math.isclose(p.sigma**2, SIGMA**2 + p.approx_error, rel_tol=1e-12)
    # The outliers are single modes: the top of the spectrum (which sets stability) is resolved.
    assert np.all(p.weight[:10] == 1) and np.all(np.diff(p.lam[:10]) < 0)


def test_approx_error_formula_matches_a_direct_solve():
    """L_approx = κ₀ Σ p/(λ + κ₀) with Σ λ/(λ + κ₀) = N, against a brute-force sum over all
    M modes (the library uses bins and, for M = ∞, a zeta tail)."""
    k = np.arange(1, M + 1, dtype=float)
    lam, pw = k**-B, k**-A
    from scipy.optimize import brentq

    k0 = brentq(lambda x: np.sum(lam / (lam + x)) - N, 1e-12, 10.0, xtol=1e-16, rtol=1e-15)
    direct = k0 * np.sum(pw / (lam + k0))
    assert math.isclose(rf.approx_error(A, B, n_features=N, n_inputs=M), direct, rel_tol=1e-5)
    # M = ∞ (zeta tail) is the limit of large M (taken at b = 2, where Σ_{k>M} λ_k ~ 1/M; at
    # b = 1.2 the input tail's variance ~M^(−0.2) still acts as a ridge at M = 10^7: 9% off)
    big = rf.approx_error(A, 2.0, n_features=N, n_inputs=10**12)
    inf = rf.approx_error(A, 2.0, n_features=N, n_inputs=math.inf)
    assert math.isclose(inf, big, rel_tol=1e-6)


@pytest.mark.parametrize(
    "a,b,expected",
    [(2.5, 1.2, 1.2), (3.0, 1.2, 1.2), (2.0, 1.5, 1.0), (1.5, 2.5, 0.5)],
)
def test_random_feature_approx_error_exponent(a, b, expected):
    """L_approx ~ N^(−min(a−1, b)) for random features (slow correction ~N^(−|a−1−b|))."""
    Ns = np.array([10**4, 3 * 10**4, 10**5, 3 * 10**5])
    la = [rf.approx_error(a, b, n_features=int(n), n_inputs=math.inf) for n in Ns]
    slopes = -local_exponents(Ns, np.array(la))[1]
    assert abs(slopes[-1] - expected) < 0.06 * expected
    assert abs(slopes[-1] - expected) <= abs(slopes[0] - expected) + 1e-3  # converging
    assert Problem.from_random_features(
        a, b, n_features=10, n_inputs=100
    ).theory().approx_error == (expected)


@pytest.mark.parametrize("a,b", [(2.5, 1.2), (1.5, 2.5)])
def test_top_n_approx_error_and_exponent(a, b):
    """Top-N: L_approx = Σ_{k>N} k^-a exactly, ~ N^(−(a−1)); the dynamics are the N-mode
    problem with σ_eff² = σ² + L_approx."""
    p = Problem.top_n(a, b, 0.5, n_features=300, batch=2)
    tail = float(np.sum(np.arange(301, 10**7, dtype=float) ** -a)) + zeta(a, 10**7)
    assert math.isclose(p.approx_error, tail, rel_tol=1e-9)
    plain = Problem(a, b, sigma=math.sqrt(0.25 + p.approx_error), n_modes=300, batch=2)
    etas = np.full(100, 0.5 * plain.eta_critical())
    np.testing.assert_allclose(loss_curve(p, etas), loss_curve(plain, etas), rtol=1e-13)
    Ns = np.array([10**3, 10**4, 10**5])
    la = [Problem.top_n(a, b, n_features=int(n)).approx_error for n in Ns]
    slopes = -local_exponents(Ns, np.array(la))[1]
    assert abs(slopes[-1] - (a - 1)) < 0.01
    th = p.theory()
    assert p.model == th.model == "top_n" and th.approx_error == a - 1


def test_large_n_infinite_input_is_fast_and_sane():
    """N = 10⁴ with M = ∞ (N = 10⁵ in benchmarks/bench_random_features.py)."""
    p = Problem.from_random_features(2.5, 1.2, 0.3, n_features=10_000, n_inputs=math.inf)
    assert p.n_modes == 10_000 and p.n_eff < 400
    assert (
        0
        < p.approx_error
        < Problem.from_random_features(
            2.5, 1.2, 0.3, n_features=1000, n_inputs=math.inf
        ).approx_error
    )
    assert 0 < p.eta_critical() < p.eta_mode_bound()


BAD = [
    (dict(n_features=0, n_inputs=10), "n_features must be"),
    (dict(n_features=2.0, n_inputs=10), "n_features must be"),
    (dict(n_features=20, n_inputs=10), "n_inputs must be >= n_features"),
    (dict(n_features=20, n_inputs=20), "n_inputs must be > n_features"),
    (dict(n_features=20, n_inputs=-1.0), "n_inputs must be"),
    (dict(n_features=20, n_inputs="x"), "n_inputs must be"),
    (dict(n_features=20, n_inputs=math.inf, key=jax.random.key(0)), "n_inputs must be finite"),
    (dict(n_features=20, n_inputs=40, key=3), "key must be None"),
    (dict(n_features=20, n_inputs=40, key=np.zeros(2)), "key must be None"),
    (dict(n_features=20, n_inputs=40, key=jax.random.split(jax.random.key(0))), "key must be"),
]


@pytest.mark.parametrize("kwargs,msg", BAD)
def test_random_features_bad_input(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        Problem.from_random_features(2.0, 1.5, **kwargs)


def test_top_n_bad_input_and_keys():
    with pytest.raises(ValueError, match="n_features must be"):
        Problem.top_n(2.0, 1.5, n_features=0)
    with pytest.raises(ValueError, match="a must be"):
        Problem.top_n(1.0, 1.5, n_features=10)
    # both key flavours are accepted, and a draw with M = N has no approximation error
    for key in (jax.random.key(1), jax.random.PRNGKey(1)):
        p = Problem.from_random_features(2.0, 1.5, n_features=10, n_inputs=10, key=key)
        assert p.approx_error < 1e-12 and p.kind == "random_features"


@pytest.mark.slow
def test_deterministic_equivalent_against_256_draws():
    """The numbers quoted in docs/theory.md §3: within 1% of 256 draws at every step."""
    etas = np.full(400, 0.2)
    de = Problem.from_random_features(A, B, SIGMA, n_features=N, n_inputs=M, batch=1)
    curves = np.array(
        [
            _excess(
                Problem.from_random_features(
                    A, B, SIGMA, n_features=N, n_inputs=M, key=jax.random.key(5000 + s), batch=1
                ),
                etas,
            )
            for s in range(256)
        ]
    )
    mean = curves.mean(0)
    sem = curves.std(0, ddof=1) / 16
    c = _excess(de, etas)
    assert np.max(np.abs(c / mean - 1)) < 0.01
    assert np.all(np.abs(c - mean)[1:] <= 3 * sem[1:])
