"""The exact recursion: closed forms, the fast adjoint vs autodiff, finite differences,
divergence, input validation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rfmodel import Problem
from rfmodel.dynamics import (
    diverged,
    log_final_loss_and_grad,
    loss_curve,
    loss_curve_reference,
)


def test_gradient_descent_limit():
    """σ = 0, m → ∞: C_k(t) = (1 − ηλ_k)^(2t) C_k(0) to 1e-10 relative."""
    p = Problem(a=2.0, b=1.5, sigma=0.0, n_modes=40, batch=1e15)
    eta, T = 0.7, 300
    curve = np.asarray(loss_curve(p, np.full(T, eta)))
    t = np.arange(T + 1)[:, None]
    expected = np.sum(p.lam * p.c0 * (1 - eta * p.lam) ** (2 * t), axis=1)
    np.testing.assert_allclose(curve, expected, rtol=1e-10)


@pytest.mark.parametrize("m", [1, 3, 16])
def test_single_mode_fixed_point(m):
    """One mode, constant η: C → C* = ησ²/(2m − (m+2)ηλ) (docs/theory.md §2)."""
    lam, sigma, eta = 0.8, 0.7, 0.5
    p = Problem.from_spectrum([lam], [2.0], sigma=sigma, batch=m)
    c_star = eta * sigma**2 / (2 * m - (m + 2) * eta * lam)
    curve = np.asarray(loss_curve(p, np.full(4000, eta)))
    assert math.isclose(curve[-1] / lam, c_star, rel_tol=1e-10)


def test_one_step_by_hand():
    p = Problem(a=2.0, b=1.5, sigma=0.3, n_modes=5, batch=3)
    eta = 0.4
    c = p.c0 * (1 - 2 * eta * p.lam + (4 / 3) * eta**2 * p.lam**2) + (eta**2 / 3) * p.lam * (
        p.initial_loss + 0.09
    )
    assert math.isclose(float(loss_curve(p, [eta])[1]), float(np.sum(p.lam * c)), rel_tol=1e-14)


@pytest.mark.parametrize(
    "T", [1, pytest.param(7, marks=pytest.mark.slow), pytest.param(64, marks=pytest.mark.slow), 997]
)
def test_fast_matches_reference(T, x64):
    p = Problem(a=1.5, b=2.5, sigma=0.5, n_modes=300, batch=4)
    t = np.arange(T)
    etas = 1.1 * (1 - t / T) ** 0.5 + 0.01
    m = 2.0 + np.sin(t)
    np.testing.assert_allclose(loss_curve(p, etas, m), loss_curve_reference(p, etas, m), rtol=1e-13)

    def objective(f):
        return lambda e, b: f(p, e, b)[-1] + 0.3 * f(p, e, b)[T // 2] + jnp.sum(f(p, e, b)) / T

    g_fast = jax.grad(objective(loss_curve), argnums=(0, 1))(etas, m)
    g_ref = jax.grad(objective(loss_curve_reference), argnums=(0, 1))(etas, m)
    for gf, gr in zip(g_fast, g_ref, strict=True):
        np.testing.assert_allclose(gf, gr, rtol=1e-10, atol=1e-14 * float(np.max(np.abs(gr))))


@pytest.mark.parametrize("T", [1, pytest.param(50, marks=pytest.mark.slow), 333])
def test_solver_objective_matches_reference(T, x64):
    """The solver's ahead-of-time compiled objective: log L(T), its η-gradient and L(0..T)."""
    p = Problem(a=2.5, b=1.2, sigma=0.5, n_modes=120, batch=3)
    etas = 0.4 * (1 - np.arange(T) / T) + 0.05
    m = 3.0 + np.cos(np.arange(T))
    v, g, curve = log_final_loss_and_grad(p, etas, m, with_curve=True)
    ref = loss_curve_reference(p, etas, m)
    g_ref = jax.grad(lambda e: jnp.log(loss_curve_reference(p, e, m)[-1]))(etas)
    np.testing.assert_allclose(curve, ref, rtol=1e-13)
    assert math.isclose(v, math.log(float(ref[-1])), rel_tol=1e-13)
    np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-14 * float(np.max(np.abs(g_ref))))


def test_solver_objective_divergence():
    p = Problem(a=2.0, b=1.5, sigma=0.5, n_modes=50, batch=1)
    v, g = log_final_loss_and_grad(p, np.full(2000, 1.5 * p.eta_mode_bound()))
    assert v == math.inf and np.all(np.isnan(g))


@pytest.mark.parametrize(
    "T",
    [pytest.param(1, marks=pytest.mark.slow), 37, pytest.param(333, marks=pytest.mark.slow), 400],
)
def test_shared_horizon_objective_matches_reference(T, x64):
    """One program for every horizon up to a capacity (the chains' objective): the same loss
    curve, the gradients of jax.grad through the reference scan, both with the batch gradient;
    at T = t_max the per-horizon program's gradients bit for bit."""
    from rfmodel.dynamics.steps import shared_horizons

    p = Problem(a=2.5, b=1.2, sigma=0.5, n_modes=120, batch=3)
    etas = 0.4 * (1 - np.arange(T) / T) + 0.05
    m = 3.0 + np.cos(np.arange(T))
    with shared_horizons(400):
        v, (g, gm), curve = log_final_loss_and_grad(p, etas, m, with_curve=True, batch_grad=True)
    ref = loss_curve_reference(p, etas, m)
    ge, gmr = jax.grad(lambda e, b: jnp.log(loss_curve_reference(p, e, b)[-1]), (0, 1))(etas, m)
    assert curve.shape == (T + 1,) and g.shape == gm.shape == (T,)
    np.testing.assert_allclose(curve, ref, rtol=1e-13)
    assert math.isclose(v, math.log(float(ref[-1])), rel_tol=1e-13)
    for a, b in ((g, ge), (gm, gmr)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14 * float(np.max(np.abs(b))))
    own = log_final_loss_and_grad(p, etas, m, batch_grad=True)
    assert own[0] == v
    if T == 400:
        np.testing.assert_array_equal(own[1][0], g)


def test_shared_horizons_compile_once_per_tier_and_check_their_argument():
    from rfmodel.control import optimize_schedules
    from rfmodel.dynamics import steps

    p = Problem(a=2.0, b=1.5, sigma=0.5, n_modes=40, batch=2)
    steps._shared_executable.cache_clear()
    before = steps._objective_executable.cache_info().misses
    optimize_schedules(p, [40, 80, 160, 320, 640], controls=8, progress=False)
    # tiers 640 (T = 40 … 640) : one program for the whole chain, none per horizon
    assert steps._shared_executable.cache_info().misses == 1
    assert steps._objective_executable.cache_info().misses == before
    with steps.shared_horizons(64_000):  # T = 40: the tier 64 000/16^2 = 250, not 64 000
        log_final_loss_and_grad(p, np.full(40, 0.1))
    assert steps._shared_executable.cache_info().currsize == 2
    fast = np.full(2000, 1.5 * p.eta_mode_bound())
    assert log_final_loss_and_grad(p, fast)[0] == math.inf
    with steps.shared_horizons(4000):  # a diverged run: inf and NaN gradients, as per horizon
        vs, gs = log_final_loss_and_grad(p, fast)
    assert vs == math.inf and gs.shape == (2000,) and np.all(np.isnan(gs))
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="t_max must be an integer >= 1"):
            with steps.shared_horizons(bad):
                pass


def test_gradient_matches_finite_differences(x64):
    p = Problem(a=2.5, b=1.2, sigma=0.5, n_modes=200, batch=4)
    T = 200
    etas = np.linspace(0.6, 0.05, T)
    batches = np.full(T, 4.0)

    def f(e, b):
        return float(loss_curve(p, e, b)[-1])

    g_eta, g_m = jax.grad(lambda e, b: loss_curve(p, e, b)[-1], argnums=(0, 1))(etas, batches)
    h = 1e-6
    for i in (0, 17, 100, T - 1):
        de = np.zeros(T)
        de[i] = h
        fd = (f(etas + de, batches) - f(etas - de, batches)) / (2 * h)
        assert math.isclose(float(g_eta[i]), fd, rel_tol=1e-6)
        fdm = (f(etas, batches + de) - f(etas, batches - de)) / (2 * h)
        assert math.isclose(float(g_m[i]), fdm, rel_tol=1e-5, abs_tol=1e-14)


def test_divergence_is_inf_not_nan():
    p = Problem(a=2.0, b=1.5, sigma=0.5, n_modes=100, batch=1)
    etas = np.concatenate([np.full(3000, 1.5 * p.eta_mode_bound()), np.zeros(5)])
    curve = loss_curve(p, etas)
    assert diverged(curve)
    assert not np.any(np.isnan(np.asarray(curve)))
    assert np.isinf(np.asarray(curve)[-1])
    assert not diverged(loss_curve(p, np.full(100, 0.5 * p.eta_critical())))


@pytest.mark.parametrize(
    "etas,batches,msg",
    [
        (np.array([0.1, np.nan]), None, "etas must be finite"),
        (np.array([0.1, -0.2]), None, "etas must be >= 0"),
        (np.zeros((2, 2)), None, "etas must be a non-empty 1-D"),
        (np.array([]), None, "etas must be a non-empty 1-D"),
        (np.array([0.1, 0.1]), np.array([1.0]), "batches must have the shape"),
        (np.array([0.1, 0.1]), np.array([1.0, 0.5]), "batches must be finite and >= 1"),
    ],
)
def test_invalid_schedule(etas, batches, msg):
    p = Problem(a=2.0, b=1.5, n_modes=10)
    with pytest.raises(ValueError, match=msg):
        loss_curve(p, etas, batches)


def test_first_call_under_jit_then_outside():
    """A problem first used inside jit/grad must not leak tracers into later calls."""
    p = Problem(a=2.0, b=1.5, sigma=0.5, n_modes=20, batch=2)
    etas = jnp.full(30, 0.3)
    g = jax.jit(jax.grad(lambda e: loss_curve(p, e)[-1]))(etas)
    v = jax.jit(lambda e: loss_curve(p, e)[-1])(etas)
    assert np.all(np.isfinite(np.asarray(g))) and float(v) == float(loss_curve(p, etas)[-1])
