"""Iterate averaging (docs/theory.md §11): the exact loss of the averaged iterate against its
reference, autodiff, finite differences, a closed form and Monte-Carlo SGD; τ ≡ 1 is SGD bit
for bit; the averaging weights as a control; the refusals."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rfmodel import Problem, loss_curve
from rfmodel.control import ScheduleResult, optimize_schedule
from rfmodel.dynamics import averaging, loss_curve_reference
from rfmodel.dynamics.averaging import uniform_average
from rfmodel.simulate import sgd, theory_excess


def _setting(T=120, seed=0):
    """A hard-phase problem and random per-step (η, m, σ², τ)."""
    p = Problem(a=1.5, b=2.5, sigma=0.4, n_modes=300, batch=2)
    u = np.random.default_rng(seed).uniform(size=(4, T))
    scale = np.array([[0.4 * p.eta_critical()], [4.0], [0.5], [0.95]])
    low = np.array([[0.1 * p.eta_critical()], [1.0], [0.0], [0.05]])
    etas, batches, noise, taus = low + scale * u
    return p, etas, batches, noise, taus


def test_no_averaging_is_sgd_bit_for_bit():
    p, etas, batches, noise, _ = _setting()
    for kw in ({}, {"noise": noise}):
        plain = np.asarray(loss_curve(p, etas, batches, **kw))
        curves = averaging.loss_curves(p, etas, batches, kw.get("noise"), 1.0)
        assert np.array_equal(curves[0], plain) and np.array_equal(curves[1], plain)
        assert np.array_equal(np.asarray(loss_curve(p, etas, batches, average=1.0, **kw)), plain)


@pytest.mark.parametrize("T", [pytest.param(5, marks=pytest.mark.slow), 64])
def test_fast_matches_reference_and_autodiff(T, x64):
    p, etas, batches, noise, taus = _setting(T, seed=T)
    fast = averaging.loss_curves(p, etas, batches, noise, taus)
    ref = averaging.loss_curves_reference(p, etas, batches, noise, taus)
    assert np.max(np.abs(fast - ref) / ref) < 1e-13
    w = np.random.default_rng(1).normal(size=(2, T + 1))  # cotangents on L̄ and L

    def grads(fn):
        f = lambda e, m, s, t: jnp.sum(w * jnp.log(fn(p, e, m, s, t)))  # noqa: E731
        return jax.grad(f, (0, 1, 2, 3))(etas, batches, noise, taus)

    for g, r in zip(grads(averaging.loss_curves), grads(averaging.loss_curves_reference),
                    strict=True):  # fmt: skip
        assert np.max(np.abs(g - r)) <= 1e-12 * np.max(np.abs(r))
    v, g = averaging.log_final_loss_and_grads(p, etas, batches, noise, taus)
    assert math.isclose(v, math.log(ref[0, -1]), rel_tol=1e-13)
    r = jax.grad(
        lambda e, m, s, t: jnp.log(averaging.loss_curves_reference(p, e, m, s, t)[0, -1]),
        (0, 1, 2, 3),
    )(etas, batches, noise, taus)
    for k, x in zip(("eta", "batch", "noise", "average"), r, strict=True):
        assert np.max(np.abs(g[k] - x)) <= 1e-12 * np.max(np.abs(x))


def test_gradient_matches_finite_differences(x64):
    p, etas, batches, noise, taus = _setting()

    def final(e, t):
        return float(loss_curve(p, e, batches, noise=noise, average=t)[-1])

    g_eta, g_tau = jax.grad(
        lambda e, t: loss_curve(p, e, batches, noise=noise, average=t)[-1], (0, 1)
    )(etas, taus)
    h = 1e-6
    for i in (0, 40, etas.size - 1):
        d = np.zeros(etas.size)
        d[i] = h
        fd_eta = (final(etas + d, taus) - final(etas - d, taus)) / (2 * h)
        fd_tau = (final(etas, taus + d) - final(etas, taus - d)) / (2 * h)
        assert math.isclose(float(g_eta[i]), fd_eta, rel_tol=1e-6)
        assert math.isclose(float(g_tau[i]), fd_tau, rel_tol=1e-6, abs_tol=1e-15)


def test_noiseless_uniform_average_closed_form():
    """m → ∞, σ = 0, one mode: e_t = h^t e_0, and the uniform average is deterministic."""
    p = Problem.from_spectrum(np.array([0.7]), np.array([2.0]), sigma=0.0, batch=1e12)
    T, eta, t0 = 40, 0.3, 10
    h = 1 - eta * 0.7
    lbar = np.asarray(loss_curve(p, np.full(T, eta), average=uniform_average(T, t0)))
    e = h ** np.arange(T + 1) * math.sqrt(2.0)
    ebar = np.array([e[t] if t <= t0 else e[t0 + 1 : t + 1].mean() for t in range(T + 1)])
    assert np.allclose(lbar, 0.7 * ebar**2, rtol=1e-10, atol=0)


def test_uniform_average_weights():
    assert uniform_average(5, 2).tolist() == [1.0, 1.0, 1.0, 0.5, 1 / 3]
    assert uniform_average(3, 0).tolist() == [1.0, 0.5, 1 / 3]
    with pytest.raises(ValueError, match="start must be an integer in"):
        uniform_average(5, 5)


@pytest.mark.parametrize("kind", ["uniform", "ema"])
def test_monte_carlo_averaged_iterate(kind):
    p = Problem(a=2.5, b=1.2, sigma=0.5, n_modes=100, batch=2, n_exact=100)
    T = 300
    times = [1, 5, 20, 150, 220, 299]
    etas = np.full(T, 0.6 * p.eta_critical())
    average = uniform_average(T, 150) if kind == "uniform" else 0.05
    theory = theory_excess(p, loss_curve(p, etas, average=average))
    mc = sgd(p, etas, jax.random.key(3), n_seeds=512, average=average)
    z = (mc.mean[times] - theory[times]) / mc.sem[times]
    assert np.all(np.abs(z) < 4), z
    plain = np.asarray(loss_curve(p, etas))  # the averaged iterate is really lower
    assert theory[-1] < 0.7 * plain[-1]


def test_optimal_rate_and_averaging_weights():
    p = Problem(a=2.5, b=1.2, sigma=0.3, n_modes=10**4, n_exact=200, batch=4)
    T, K = 300, 15
    plain = optimize_schedule(p, T, controls=K)
    r = optimize_schedule(p, T, controls=K, optimize=("eta", "average"))
    assert r.converged, r.message
    assert r.loss <= plain.loss * (1 + 1e-9)  # τ ≡ 1 (no averaging) is feasible
    assert r.average.shape == (T,) and np.all((r.average > 0) & (r.average <= 1))
    assert r.iterate_curve.shape == r.curve.shape == (T + 1,)
    assert math.isclose(r.curve[-1], float(loss_curve(p, r.etas, average=r.average)[-1]),
                        rel_tol=1e-12)  # fmt: skip


def test_fixed_average_under_optimized_rates_saves_and_loads(tmp_path):
    p = Problem(a=2.5, b=1.2, sigma=0.3, n_modes=2000, n_exact=200, batch=4)
    T = 200
    taus = uniform_average(T, 150)
    r = optimize_schedule(p, T, controls=10, average=taus)
    assert r.converged and np.array_equal(r.average, taus)
    assert r.config["average"]["length"] == T
    assert r.loss < float(loss_curve(p, r.etas)[-1])  # L̄(T) below the last iterate's
    r.save(tmp_path / "r")
    back = ScheduleResult.load(tmp_path / "r", key=r.config)
    assert np.array_equal(back.average, taus) and np.array_equal(back.iterate_curve,
                                                                 r.iterate_curve)  # fmt: skip
    # the averaging weights alone, under fixed rates
    q = optimize_schedule(p, T, controls=10, optimize=("average",), etas=r.etas)
    assert q.converged and q.loss <= r.loss * (1 + 1e-9)


@pytest.mark.parametrize(
    "average,msg",
    [
        (1.5, "average must be finite and in \\[0, 1\\]"),
        (np.full(4, 0.5), "average must be a scalar or have the shape of etas"),
        (np.nan, "average must be finite"),
        ("x", "average must be a number or an array"),
    ],
)
def test_invalid_average(average, msg):
    p = Problem(a=2.0, b=1.5, n_modes=10)
    with pytest.raises(ValueError, match=msg):
        loss_curve(p, np.full(5, 0.1), average=average)


def test_average_refusals():
    p = Problem(a=2.0, b=1.5, sigma=0.5, n_modes=10)
    with pytest.raises(ValueError, match="average cannot be combined with betas"):
        loss_curve(p, np.full(5, 0.1), betas=np.full(5, 0.5), average=0.5)
    with pytest.raises(ValueError, match="average cannot be combined with betas"):
        loss_curve_reference(p, np.full(5, 0.1), betas=np.full(5, 0.5), average=0.5)
    with pytest.raises(ValueError, match="average .* cannot be given with optimize"):
        optimize_schedule(p, 10, optimize=("eta", "average"), average=0.5)
    with pytest.raises(ValueError, match="no evaluator of the steps path takes them together"):
        optimize_schedule(p, 10, optimize=("eta", "momentum", "average"))


def test_float64_without_touching_the_global_config():
    p, etas, batches, noise, taus = _setting(T=40)
    curve = loss_curve(p, etas, batches, noise=noise, average=taus)
    assert curve.dtype == np.float64 and jax.config.jax_enable_x64 is False
    assert jnp.ones(1).dtype == jnp.float32
    r = np.asarray(averaging.loss_curves_reference(p, etas, batches, noise, taus))[0]
    assert np.max(np.abs(curve - r) / r) < 1e-13  # float32 would be ~1e-7
