"""Preconditioned SGD (docs/theory.md §12): w ← w − η P ĝ with P = diag(λ_k^−γ) is plain SGD on
the effective spectrum λ^(1−γ), through the recursion, the stability bounds and the solver,
against Monte-Carlo SGD on the data's own spectrum; γ = 0 is SGD bit for bit."""

import dataclasses
import math

import jax
import numpy as np
import optax
import pytest

from rfmodel import Problem, loss_curve
from rfmodel.control import optimize_schedule
from rfmodel.dynamics import segment_losses
from rfmodel.simulate import sgd, theory_excess, train_optax


def test_gamma_zero_is_sgd_bit_for_bit():
    p = Problem(a=2.5, b=1.2, sigma=0.3, n_modes=10**5, n_exact=200, batch=4)
    q = Problem(a=2.5, b=1.2, sigma=0.3, n_modes=10**5, n_exact=200, batch=4, precondition=0.0)
    etas = np.full(200, 0.5 * p.eta_critical())
    assert np.array_equal(loss_curve(p, etas), loss_curve(q, etas))
    assert q.config() == p.config() and q.data_lam is None


@pytest.mark.parametrize("gamma", [0.25, 0.5, 0.55])
def test_effective_problem(gamma):
    """Problem(a, b, precondition=γ) is Problem(a, b(1 − γ)) up to rounding (b(1 − γ) > 1)."""
    p = Problem(a=1.5, b=2.5, sigma=0.5, n_modes=500, batch=2, precondition=gamma)
    q = Problem(a=1.5, b=2.5 * (1 - gamma), sigma=0.5, n_modes=500, batch=2)
    assert np.allclose(p.lam, q.lam, rtol=1e-14) and np.allclose(p.c0, q.c0, rtol=1e-14)
    assert np.allclose(p.data_lam, np.arange(1, 501) ** -2.5, rtol=1e-14)
    assert math.isclose(p.initial_loss, q.initial_loss, rel_tol=1e-13)
    assert (p.phase, p.theory()) == (q.phase, q.theory())
    assert math.isclose(p.eta_critical(), q.eta_critical(), rel_tol=1e-12)
    etas = np.full(300, 0.5 * p.eta_critical())
    assert np.allclose(loss_curve(p, etas), loss_curve(q, etas), rtol=1e-12, atol=0)
    assert p.config()["precondition"] == gamma


def test_phase_boundary_moves():
    assert Problem(a=1.5, b=2.5, n_modes=10).phase == "hard"
    assert Problem(a=1.5, b=2.5, n_modes=10, precondition=0.5).phase == "easy"  # 1.5 > 1.25
    p = Problem(a=1.5, b=2.5, n_modes=10, precondition=0.4)  # b(1 − γ) = 1.5 = a
    assert p.phase == "boundary" and p.b_eff == pytest.approx(1.5)


def test_stability_bounds_use_the_effective_spectrum():
    p = Problem(a=2.0, b=2.0, sigma=0.5, n_modes=200, batch=3, precondition=0.5)
    mu = np.arange(1, 201) ** -1.0
    s = float(np.sum(0.1 * mu / (6 - 4 * 0.1 * mu)))
    assert math.isclose(p.stability_sum(0.1), s, rel_tol=1e-12)
    assert math.isclose(p.stability_sum(p.eta_critical()), 1.0, rel_tol=1e-9)
    assert math.isclose(p.eta_mode_bound(), 6 / 4, rel_tol=1e-12)  # μ_max = 1
    r = optimize_schedule(p, 100, controls=5)
    assert r.converged and r.config["eta_max"] == pytest.approx(p.eta_mode_bound())
    assert r.config["problem"]["precondition"] == 0.5


def test_replace_keeps_the_data():
    p = Problem(a=1.5, b=2.5, sigma=0.5, n_modes=50, precondition=0.5)
    q = dataclasses.replace(p, batch=8)
    assert np.array_equal(q.lam, p.lam) and np.array_equal(q.data_lam, p.data_lam)
    r = dataclasses.replace(p, precondition=0.0)
    assert np.array_equal(r.lam, Problem(a=1.5, b=2.5, sigma=0.5, n_modes=50).lam)
    s = dataclasses.replace(p, precondition=0.25)
    assert np.allclose(s.lam, np.arange(1, 51) ** (-2.5 * 0.75), rtol=1e-14)
    t = Problem.from_spectrum(p.data_lam, p.data_c0, sigma=0.5, precondition=0.5)
    assert np.allclose(t.lam, p.lam, rtol=1e-15) and np.allclose(t.c0, p.c0, rtol=1e-14)


@pytest.mark.parametrize("gamma", [0.5, 0.75])
def test_monte_carlo_preconditioned_sgd(gamma):
    p = Problem(a=1.5, b=2.5, sigma=0.5, n_modes=100, batch=2, n_exact=100, precondition=gamma)
    T = 300
    times = [1, 5, 20, 60, 150, 299]
    etas = 0.7 * p.eta_critical() * (1 - np.arange(T) / T)
    theory = theory_excess(p, loss_curve(p, etas))
    mc = sgd(p, etas, jax.random.key(5), n_seeds=512)
    z = (mc.mean[times] - theory[times]) / mc.sem[times]
    assert np.all(np.abs(z) < 4), z
    plain = Problem(a=1.5, b=2.5, sigma=0.5, n_modes=100, batch=2, n_exact=100)
    assert np.max(np.abs((mc.mean[times] - np.asarray(loss_curve(plain, etas))[times])
                         / mc.sem[times])) > 4  # fmt: skip


def test_monte_carlo_preconditioned_heavy_ball():
    """The heavy ball commutes with the substitution: momentum needs no new terms."""
    p = Problem(a=1.5, b=2.5, sigma=0.5, n_modes=100, batch=2, n_exact=100, precondition=0.5)
    T = 200
    times = [1, 10, 60, 199]
    betas = np.full(T, 0.6)
    etas = 0.3 * p.eta_critical() * (1 - np.arange(T) / T)
    theory = theory_excess(p, loss_curve(p, etas, betas=betas))
    mc = sgd(p, etas, jax.random.key(8), betas=betas, n_seeds=512)
    z = (mc.mean[times] - theory[times]) / mc.sem[times]
    assert np.all(np.abs(z) < 4), z


def test_segments_and_steps_agree_on_a_preconditioned_problem():
    """Segment propagation (§5) reads the effective spectrum too."""
    p = Problem(a=2.5, b=1.2, sigma=0.3, n_modes=200, batch=4, precondition=0.25)
    values, lengths = np.array([0.8, 0.3, 0.05]) * p.eta_critical(), np.array([100, 150, 50])
    seg = segment_losses(p, values, lengths)
    steps = np.asarray(loss_curve(p, np.repeat(values, lengths)))
    assert np.allclose(seg, steps[np.r_[0, np.cumsum(lengths)]], rtol=1e-10, atol=0)


def test_adam_state_is_returned():
    p = Problem(a=1.5, b=2.5, sigma=0.5, n_modes=20, batch=2, n_exact=20)
    mc = train_optax(p, optax.adam(1e-2), 10, jax.random.key(0), n_seeds=4, final_state=True)
    nu = mc.state[0].nu
    assert nu.shape == (4, 20) and np.all(nu > 0) and mc.mean.shape == (11,)


@pytest.mark.parametrize(
    "gamma,msg",
    [
        (1.0, "precondition must be in \\[0, 1\\)"),
        (-0.1, "precondition must be in"),
        (math.nan, "precondition must be a finite number"),
    ],
)
def test_invalid_precondition(gamma, msg):
    with pytest.raises(ValueError, match=msg):
        Problem(a=2.0, b=1.5, n_modes=10, precondition=gamma)


def test_random_feature_sampling_refused():
    p = Problem.from_random_features(
        2.0, 1.5, 0.3, n_features=10, n_inputs=20, key=jax.random.key(0), batch=2
    )
    q = dataclasses.replace(p, precondition=0.5)
    with pytest.raises(ValueError, match="precondition is not sampled"):
        sgd(q, np.full(5, 0.1), jax.random.key(0))


def test_adjoint_on_a_preconditioned_problem(x64):
    import jax.numpy as jnp

    from rfmodel.dynamics import loss_curve_reference

    p = Problem(a=1.5, b=2.5, sigma=0.5, n_modes=200, batch=2, precondition=0.5)
    etas = 0.5 * p.eta_critical() * np.linspace(1.0, 0.1, 90)
    g = jax.grad(lambda e: jnp.log(loss_curve(p, e)[-1]))(etas)
    r = jax.grad(lambda e: jnp.log(loss_curve_reference(p, e)[-1]))(etas)
    assert np.max(np.abs(g - r)) <= 1e-12 * np.max(np.abs(r))
