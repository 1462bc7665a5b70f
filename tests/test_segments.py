"""Segment propagation (docs/theory.md §5): exact against the step recursion, gradients against
autodiff of the reference scan and finite differences, n up to 10^8, divergence, bad input, and
the solver's segment path."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rfmodel import Problem
from rfmodel.control import ScheduleResult, optimize_schedule
from rfmodel.dynamics import loss_curve, loss_curve_reference
from rfmodel.dynamics import segment_losses as reexported
from rfmodel.segments import (
    Piecewise,
    log_final_loss_and_grad,
    log_lengths,
    log_steps,
    segment_losses,
    uniform_lengths,
)

EASY = Problem(a=2.5, b=1.2, sigma=0.3, n_modes=80, batch=4)
HARD_BINNED = Problem(
    a=1.5, b=2.5, sigma=0.5, n_modes=10**6, batch=4, n_exact=40, bins_per_decade=15
)
EASY_BINNED = Problem(
    a=2.5, b=1.2, sigma=0.3, n_modes=10**6, batch=2, n_exact=40, bins_per_decade=15
)


def _schedule(p, K, T, seed=0, frac=0.9):
    rng = np.random.default_rng(seed)
    top = min(p.eta_critical(), p.eta_mode_bound())
    return rng.uniform(0.02, frac, K) * top, uniform_lengths(T, K)


@pytest.mark.parametrize("p", [EASY, HARD_BINNED], ids=["easy", "hard-binned"])
def test_matches_step_recursion(p):
    """L at every boundary and at interior steps agrees with loss_curve to 1e-11 relative."""
    vals, lens = _schedule(p, 7, 3000)
    ref = np.asarray(loss_curve(p, np.repeat(vals, lens)))
    steps = np.unique(np.concatenate([log_steps(3000, 40), [1, 2, 1717]]))
    bounds, inner = segment_losses(p, vals, lens, steps=steps)
    assert bounds.dtype == np.float64 and bounds.shape == (8,)
    edges = np.concatenate([[0], np.cumsum(lens)])
    np.testing.assert_allclose(bounds, ref[edges], rtol=1e-11)
    np.testing.assert_allclose(inner, ref[steps], rtol=1e-11)
    assert reexported is segment_losses


def test_near_the_stability_edge_and_oscillating_top_mode():
    """Rates just under η_c (S(η) → 1: the slowest eigenvalue ν → 0) and a rate past the top of
    ε(λ) = ηλ(2 − (1+1/m)ηλ), where the top mode's ε passes the next ones."""
    p = Problem(a=1.5, b=2.5, sigma=0.5, n_modes=300, batch=4)
    ec = p.eta_critical()
    c = 1.25
    collide = 2 / (c * (p.lam[0] + p.lam[1]))  # ε_1 = ε_2 exactly at this η
    vals = np.array([0.999 * ec, 0.99999 * ec, min(collide, 0.999 * p.eta_mode_bound()), 0.5])
    lens = np.array([500, 900, 40, 700])
    ref = np.asarray(loss_curve(p, np.repeat(vals, lens)))
    got = segment_losses(p, vals, lens)
    np.testing.assert_allclose(got, ref[np.concatenate([[0], np.cumsum(lens)])], rtol=1e-10)


@pytest.mark.slow  # default tier under 4 min on 2 cores (measured cold)
def test_gradient_matches_autodiff_of_the_reference(x64):
    """∇ log L(T) with respect to the segment values (and batches) against jax.grad through the
    reference scan (the chain rule through η_t = values[s])."""
    p = HARD_BINNED
    vals, lens = _schedule(p, 6, 600, seed=1)
    ms = np.array([1.0, 2.0, 4.0, 8.0, 3.0, 1.5])

    def ref(v, m):
        return jnp.log(loss_curve_reference(p, jnp.repeat(v, lens), jnp.repeat(m, lens))[-1])

    g_ref, gm_ref = jax.grad(ref, argnums=(0, 1))(vals, ms)
    g, gm = jax.grad(lambda v, m: jnp.log(segment_losses(p, v, lens, m)[-1]), argnums=(0, 1))(
        vals, ms
    )
    np.testing.assert_allclose(g, g_ref, rtol=1e-9)
    np.testing.assert_allclose(gm, gm_ref, rtol=1e-8, atol=1e-12 * np.abs(gm_ref).max())
    v, g2 = log_final_loss_and_grad(p, vals, lens)  # the solver's compiled objective
    assert math.isclose(v, float(ref(vals, np.full(6, p.batch))), rel_tol=1e-12)
    g2_ref = jax.grad(lambda e: ref(e, np.full(6, p.batch)))(vals)
    np.testing.assert_allclose(g2, g2_ref, rtol=1e-9)


@pytest.mark.slow
def test_long_horizon_gradient_matches_finite_differences():
    """T = 10^6 (segments only): the gradient against central differences; T = 10^8 over 50
    segments of a binned problem stays finite."""
    lens = log_lengths(10**8, 50)
    L = segment_losses(HARD_BINNED, np.full(50, 0.5), lens)
    assert np.all(np.isfinite(L)) and L[-1] < L[0]
    p = EASY_BINNED
    lens = log_lengths(10**6, 6)
    vals = 0.02 * np.array([0.5, 1.0, 0.9, 0.6, 0.3, 0.1])
    v, g = log_final_loss_and_grad(p, vals, lens)
    h = 1e-6
    for i in range(6):
        d = np.zeros(6)
        d[i] = h * vals[i]
        fd = (
            log_final_loss_and_grad(p, vals + d, lens)[0]
            - log_final_loss_and_grad(p, vals - d, lens)[0]
        ) / (2 * d[i])
        assert math.isclose(g[i], fd, rel_tol=2e-5, abs_tol=1e-6 * np.abs(g).max())


def test_stable_at_1e8_steps():
    """n = 10^8 in one segment: no overflow, no cancellation: L reaches σ²S/(1 − S) (the
    stationary loss) to 1e-10, also just under the stability edge."""
    p = Problem(a=2.0, b=1.5, sigma=0.5, n_modes=40, batch=4)
    for eta in (0.3 * p.eta_critical(), 0.999 * p.eta_critical()):
        L = segment_losses(p, [eta], [10**8])
        assert np.all(np.isfinite(L))
        assert math.isclose(L[-1], p.stationary_loss(eta), rel_tol=1e-10)


def test_divergence_is_inf_not_nan():
    p = Problem(a=2.0, b=1.5, sigma=0.5, n_modes=50, batch=1)
    above = 1.5 * p.eta_critical()
    L = segment_losses(p, [0.5 * p.eta_critical(), above, 0.1], [100, 10**7, 10])
    assert not np.any(np.isnan(L)) and np.isinf(L[2]) and np.isinf(L[3]) and np.isfinite(L[1])
    v, g = log_final_loss_and_grad(p, [above], [10**6])
    assert v == math.inf and np.all(np.isnan(g))


@pytest.mark.parametrize(
    "values,lengths,batches,msg",
    [
        ([0.1, 0.2], [10, 0], None, "lengths must be integers >= 1"),
        ([0.1, 0.2], [10, 2.5], None, "lengths must be integers >= 1"),
        ([0.1, 0.2], [10], None, "lengths must have the shape of values"),
        ([0.1, np.nan], [10, 10], None, "values must be finite"),
        ([0.1, -0.1], [10, 10], None, "values must be >= 0"),
        ([0.1, 0.2], [2**62, 2**62], None, "lengths: the total horizon .* overflows int64"),
        ([0.1, 0.2], [10, 10], [1.0], "batches must have the shape"),
        ([0.1, 0.2], [10, 10], [1.0, 0.5], "batches must be finite and >= 1"),
        ([], [], None, "values must be a non-empty 1-D"),
    ],
)
def test_bad_input(values, lengths, batches, msg):
    with pytest.raises(ValueError, match=msg):
        segment_losses(EASY, values, lengths, batches)


def test_steps_out_of_range():
    with pytest.raises(ValueError, match="steps must lie in"):
        segment_losses(EASY, [0.1], [10], steps=[0, 11])


def test_grids_and_piecewise():
    for T, K in ((10**7, 400), (10**7, 401), (1000, 499), (100, 3), (10, 10)):
        n = log_lengths(T, K)
        assert n.size == K and int(n.sum()) == T and n.min() >= 1
    n = log_lengths(10**7, 400)
    assert n[0] < 10 and n[-1] < 10 and n[200] > 10**5  # dense at both ends
    np.testing.assert_array_equal(uniform_lengths(10, 3), [4, 3, 3])
    e = Piecewise([0.5, 0.1], [2, 3])
    assert e.shape == (5,) and len(e) == 5 and e[-1] == 0.1 and e[1] == 0.5
    np.testing.assert_array_equal(np.asarray(e), [0.5, 0.5, 0.1, 0.1, 0.1])


@pytest.mark.slow  # default tier under 4 min on 2 cores (measured cold)
def test_solver_segment_path(tmp_path):
    """method='segments' finds the optimum of method='steps' (same controls, same loss); a
    large-T result stores controls + lengths + a sparse curve, and loads back validated."""
    p = Problem(a=2.5, b=1.2, sigma=0.3, n_modes=60, batch=4)
    a = optimize_schedule(p, 2000, controls=8)
    b = optimize_schedule(p, 2000, controls=8, method="segments")
    assert b.converged and b.config["solved_on"] == "segments" and "method" in b.config
    assert math.isclose(a.loss, b.loss, rel_tol=1e-9)
    np.testing.assert_allclose(a.controls, b.controls, rtol=1e-5)
    assert "solved_on" not in a.config and "grid" not in a.config  # default keys unchanged
    b.save(tmp_path / "r")
    r = ScheduleResult.load(tmp_path / "r")
    assert isinstance(r.etas, Piecewise) and r.etas.shape == (2000,) and r.loss == b.loss
    assert r.curve.shape == r.curve_steps.shape and r.curve_steps[-1] == 2000
    ref = np.asarray(loss_curve(p, np.asarray(r.etas)))
    np.testing.assert_allclose(r.curve, ref[r.curve_steps], rtol=1e-11)
    c = optimize_schedule(p, 2000, controls=8, grid="log", method="segments", init=b.etas)
    assert c.converged and c.config["grid"] == "log" and c.lengths[0] < c.lengths[4]
    with pytest.raises(ValueError, match="grid"):
        optimize_schedule(p, 100, controls=4, grid=[50, 50])
    with pytest.raises(ValueError, match="method"):
        optimize_schedule(p, 100, controls=4, method="fast")


def test_rate_bounds_are_the_growth_of_one_segment():
    """_rate_bounds: at the bound of a segment of n steps the top eigenvalue μ_0 of the dense
    segment map B = I − diag(ε) + g u uᵀ grows the state by e^5 over the n steps (checked
    against numpy's eigvalsh); short segments keep the per-mode bound, none falls below η_c."""
    from rfmodel.control.grid import GROWTH, rate_bounds

    p = Problem(a=1.5, b=2.5, sigma=0.5, n_modes=80, batch=4)
    lengths = np.array([1, 30, 1000, 10**6])
    bounds = rate_bounds(p, lengths, p.eta_mode_bound())
    assert bounds[0] == pytest.approx(p.eta_mode_bound() * (1 - 1e-6), rel=1e-15)
    assert np.all(np.diff(bounds) <= 0) and bounds[-1] > p.eta_critical()
    m, u = float(p.batch), np.sqrt(p.weight) * p.lam
    for n, eta in zip(lengths[1:], bounds[1:], strict=True):
        x = eta * p.lam
        b = np.eye(p.n_eff) - np.diag(x * (2 - (1 + 1 / m) * x)) + (eta**2 / m) * np.outer(u, u)
        growth = n * math.log(np.linalg.eigvalsh(b)[-1])
        assert growth == pytest.approx(GROWTH, rel=1e-6)


@pytest.mark.slow
def test_log_grid_solver_is_preconditioned_and_kkt_in_log_rates():
    """A log grid: the solve reaches a KKT point measured in log η (recomputed here from an
    independent gradient), its rates stay inside the per-segment growth bounds, and the key
    records the solver revision (uniform-grid keys are unchanged, test above)."""
    from rfmodel.control.grid import rate_bounds
    from rfmodel.segments import log_final_loss_and_grad

    p = Problem(a=1.5, b=2.5, sigma=0.5, n_modes=40, batch=4)
    r = optimize_schedule(p, 20000, controls=10, grid="log", method="segments")
    assert r.converged and r.config["grid_revision"] == 2
    upper = rate_bounds(p, r.lengths, r.config["eta_max"])
    assert np.all(r.controls <= upper)
    _, g = log_final_loss_and_grad(p, r.controls, r.lengths)
    x, lo = np.log(r.controls), math.log(r.config["eta_max"]) - 30
    pg = np.max(np.abs(x - np.clip(x - g * r.controls, lo, np.log(upper))))
    assert pg <= 1e-4 and pg == pytest.approx(r.projected_gradient, rel=1e-6, abs=1e-12)


@pytest.mark.slow
def test_tail_roots_at_ulps_of_their_poles(x64):
    """Hard phase, N = 10^12 binned, an annealed rate: tail roots lie ~10^-30 (relative) from
    their poles, where first-order perturbation ν ≈ ε_o − z_o/(1 − Σ_{k≠o} z_k/(ε_k − ε_o)) is
    exact to rounding. The root finder must get τ = ν − ε_o to full relative accuracy (a step
    τ + h would cancel to 0 there and bisection would stop ~17 decades short)."""
    from rfmodel.dynamics import segments as S

    p = Problem(a=1.5, b=2.5, sigma=0.5, n_modes=10**12, batch=4, n_exact=50, bins_per_decade=20)
    lam, u = S._problem_arrays(p)[:2]
    eta, m = 1e-11, 4.0
    eps, _ = S.poles(lam, eta, m)
    e, z, _, _ = S._sorted_poles(lam, u, eta, m, jnp.argsort(eps))
    oidx, tau = (np.asarray(x) for x in S._roots(e, z))
    e, z = np.asarray(e), np.asarray(z)
    checked = 0
    for j in range(1, e.size - 1):
        o = oidx[j]
        gap = min(e[o] - e[o - 1] if o > 0 else np.inf, e[o + 1] - e[o])
        if z[o] > 1e-20 * gap:
            continue
        rest = math.fsum(z[k] / (e[k] - e[o]) for k in range(e.size) if k != o)
        assert math.isclose(tau[j], -z[o] / (1 - rest), rel_tol=1e-12), j
        checked += 1
    assert checked > 50
