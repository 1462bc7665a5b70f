"""Heavy-ball momentum in the exact recursion (docs/theory.md §4): closed forms, β = 0 is SGD,
the fast adjoint against autodiff and finite differences, stability, the EMA convention, the
optax export, input validation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rfmodel import Problem
from rfmodel.dynamics import diverged, loss_curve, loss_curve_reference
from rfmodel.dynamics import momentum as M
from rfmodel.schedules import to_optax_sgd
from rfmodel.simulate import train_optax


def _schedule(T, eta, beta_max=0.8):
    t = np.arange(T)
    betas = beta_max * np.sin(np.pi * (t + 0.5) / T) ** 2
    return eta * (1 - betas) * (1 - 0.9 * t / T), betas


def test_beta_zero_is_sgd():
    """betas = 0 is the SGD recursion to 1e-14 (per-step batches, binned tail), gradient too."""
    p = Problem(a=1.5, b=2.5, sigma=0.5, n_modes=100_000, n_exact=300, batch=3)
    T = 600
    t = np.arange(T)
    etas = 0.9 * p.eta_critical() * (1 - t / T) + 0.01
    m = 1.0 + (t % 7)
    zero = np.zeros(T)
    sgd = np.asarray(loss_curve(p, etas, m))
    np.testing.assert_allclose(loss_curve(p, etas, m, zero), sgd, rtol=1e-14)
    np.testing.assert_allclose(loss_curve_reference(p, etas, m, zero), sgd, rtol=1e-14)
    with jax.enable_x64(True):
        g_sgd = jax.grad(lambda e: loss_curve(p, e, m)[-1])(etas)
        g_mom = jax.grad(lambda e: loss_curve(p, e, m, zero)[-1])(etas)
    np.testing.assert_allclose(g_mom, g_sgd, rtol=1e-12, atol=1e-15 * np.abs(g_sgd).max())


def test_deterministic_heavy_ball():
    """σ = 0, m → ∞: every mode follows e' = e − η(βv + λe), v' = βv + λe exactly."""
    p = Problem(a=2.0, b=1.5, sigma=0.0, n_modes=30, batch=1e15)
    T = 200
    etas, betas = _schedule(T, 1.2)
    e, v = np.sqrt(p.c0), np.zeros(p.n_eff)
    expected = [np.sum(p.lam * e**2)]
    for eta, beta in zip(etas, betas, strict=True):
        v = beta * v + p.lam * e
        e = e - eta * v
        expected.append(np.sum(p.lam * e**2))
    np.testing.assert_allclose(loss_curve(p, etas, betas=betas), expected, rtol=1e-11)


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9])
def test_stationary_loss_and_critical_rate(beta):
    """Constant (η, β): the curve settles at σ² S/(1 − S); η just above η_c(β) grows without
    bound."""
    p = Problem(a=2.0, b=1.5, sigma=0.5, n_modes=50, batch=2)
    eta_c = M.eta_critical(p, beta)
    if beta == 0.0:
        assert math.isclose(eta_c, p.eta_critical(), rel_tol=1e-12)
    eta = 0.6 * eta_c
    T = int(60 / (1 - beta)) * 100
    curve = np.asarray(loss_curve(p, np.full(T, eta), betas=np.full(T, beta)))
    assert math.isclose(curve[-1], M.stationary_loss(p, eta, beta), rel_tol=1e-9)
    over = np.asarray(loss_curve(p, np.full(T, 1.05 * eta_c), betas=np.full(T, beta)))
    assert over[-1] > 1e20 * over[0] and over[-1] > over[-2] > over[-3]


def test_stability_region_matches_spectral_radius():
    """Constant (η, β) is stable iff every D_k > 0 and S(η, β) < 1: the spectral radius of the
    full linear map (3N × 3N, with the loss coupling) crosses 1 exactly there."""
    rng = np.random.default_rng(0)
    p = Problem.from_spectrum([1.0, 0.4, 0.1], [1.0, 1.0, 1.0], sigma=0.3, batch=2)
    lam, w, m = p.lam, p.weight, p.batch
    for _ in range(200):
        beta, eta = rng.uniform(0, 0.95), rng.uniform(0, 4)
        n = lam.size
        a = np.zeros((3 * n, 3 * n))
        k = 1 + 1 / m
        for i, li in enumerate(lam):
            vrow = np.zeros(3 * n)
            vrow[3 * i : 3 * i + 3] = [k * li**2, 2 * beta * li, beta**2]
            vrow[0::3] += li / m * w * lam  # noise term (λ/m) L
            arow = np.zeros(3 * n)
            arow[3 * i : 3 * i + 2] = [li, beta]
            crow = -2 * eta * arow + eta**2 * vrow
            crow[3 * i] += 1
            a[3 * i], a[3 * i + 1], a[3 * i + 2] = crow, arow - eta * vrow, vrow
        rho = np.max(np.abs(np.linalg.eigvals(a)))
        if abs(rho - 1) > 1e-6:
            assert (rho < 1) == (M.stability_sum(p, eta, beta) < 1), (eta, beta, rho)


@pytest.mark.parametrize("T", [pytest.param(1, marks=pytest.mark.slow), 333])
def test_fast_matches_reference(T, x64):
    p = Problem(a=1.5, b=2.5, sigma=0.5, n_modes=300, batch=4)
    t = np.arange(T)
    etas, betas = _schedule(T, 1.5)
    m = 2.0 + np.sin(t)
    np.testing.assert_allclose(
        loss_curve(p, etas, m, betas), loss_curve_reference(p, etas, m, betas), rtol=1e-13
    )

    def objective(f):
        def j(e, b, mm):
            c = f(p, e, mm, b)
            return c[-1] + 0.3 * c[T // 2] + jnp.sum(c) / T

        return j

    g_fast = jax.grad(objective(loss_curve), argnums=(0, 1, 2))(etas, betas, m)
    g_ref = jax.grad(objective(loss_curve_reference), argnums=(0, 1, 2))(etas, betas, m)
    for gf, gr in zip(g_fast, g_ref, strict=True):
        np.testing.assert_allclose(gf, gr, rtol=1e-10, atol=1e-13 * float(np.max(np.abs(gr))))


@pytest.mark.parametrize("T", [50])
def test_solver_objective_matches_reference(T, x64):
    """log L(T) and its gradients in η, β and m, as the momentum solver will call it."""
    p = Problem(a=2.5, b=1.2, sigma=0.5, n_modes=100_000, n_exact=100, batch=3)
    etas, betas = _schedule(T, 0.5)
    m = 3.0 + np.cos(np.arange(T))
    v, grads, curve = M.log_final_loss_and_grads(p, etas, betas, m, with_curve=True)
    ref = loss_curve_reference(p, etas, m, betas)
    np.testing.assert_allclose(curve, ref, rtol=1e-13)
    assert math.isclose(v, math.log(float(ref[-1])), rel_tol=1e-13)
    g_ref = jax.grad(
        lambda e, b, mm: jnp.log(loss_curve_reference(p, e, mm, b)[-1]), argnums=(0, 1, 2)
    )(etas, betas, m)
    for name, gr in zip(("eta", "momentum", "batch"), g_ref, strict=True):
        scale = float(np.max(np.abs(gr)))
        np.testing.assert_allclose(grads[name], gr, rtol=1e-10, atol=1e-13 * scale)


@pytest.mark.parametrize("n_exact", [pytest.param(100, marks=pytest.mark.slow), 1500])
def test_both_state_layouts_match_reference(n_exact, x64):
    """The stacked (3, N) state (N < SPLIT_MODES) and the split one (three arrays, N ≥
    SPLIT_MODES) give the reference curve and gradients, T not a multiple of the block; the
    objective without the m-gradient gives the same (η, β) gradients."""
    p = Problem(a=1.5, b=2.5, sigma=0.5, n_modes=10**6, n_exact=n_exact, batch=3)
    assert (p.n_eff >= M.SPLIT_MODES) == (n_exact == 1500)
    T = 77
    etas, betas = _schedule(T, 1.2, beta_max=0.95)
    m = 3.0 + np.cos(np.arange(T))
    v, grads, curve = M.log_final_loss_and_grads(p, etas, betas, m, with_curve=True)
    ref = loss_curve_reference(p, etas, m, betas)
    np.testing.assert_allclose(curve, ref, rtol=1e-13)
    np.testing.assert_allclose(loss_curve(p, etas, m, betas), ref, rtol=1e-13)
    g_ref = jax.grad(
        lambda e, b, mm: jnp.log(loss_curve_reference(p, e, mm, b)[-1]), argnums=(0, 1, 2)
    )(etas, betas, m)
    for name, gr in zip(("eta", "momentum", "batch"), g_ref, strict=True):
        scale = float(np.max(np.abs(gr)))
        np.testing.assert_allclose(grads[name], gr, rtol=1e-10, atol=1e-13 * scale)
    v2, g2 = M.log_final_loss_and_grads(p, etas, betas, m, batch_grad=False)
    assert sorted(g2) == ["eta", "momentum"] and v2 == v
    for name in g2:
        np.testing.assert_allclose(g2[name], grads[name], rtol=1e-13, atol=1e-16)


def test_gradient_matches_finite_differences(x64):
    p = Problem(a=2.5, b=1.2, sigma=0.5, n_modes=200, batch=4)
    T = 200
    etas, betas = _schedule(T, 0.6)

    def f(b):
        return float(loss_curve(p, etas, betas=b)[-1])

    g = jax.grad(lambda b: loss_curve(p, etas, betas=b)[-1])(betas)
    h = 1e-6
    for i in (1, 17, 100, T - 1):
        d = np.zeros(T)
        d[i] = h
        assert math.isclose(float(g[i]), (f(betas + d) - f(betas - d)) / (2 * h), rel_tol=1e-6)
    assert float(g[0]) == 0.0  # v(0) = 0: the first momentum multiplies nothing


def test_divergence_is_inf_not_nan():
    p = Problem(a=2.0, b=1.5, sigma=0.5, n_modes=100, batch=1)
    T = 600
    etas = np.concatenate([np.full(T, 3 * p.eta_critical()), np.zeros(5)])
    betas = np.concatenate([np.full(T, 0.5), np.zeros(5)])
    curve = np.asarray(loss_curve(p, etas, betas=betas))
    assert diverged(curve) and np.isinf(curve[-1]) and not np.any(np.isnan(curve))
    v, grads = M.log_final_loss_and_grads(p, etas, betas)
    assert v == math.inf and all(np.all(np.isnan(g)) for g in grads.values())


def test_ema_convention_of_the_notebook():
    """The EMA convention v_0 = β_0 g_0, Δ' = Δ − η v, v' = (1 − β) v + β g(Δ') (β = 1: SGD) is
    heavy ball with η_hb(s) = η_s β_{s−1}, β_hb(s) = (1 − β_{s−1}) β_{s−2}/β_{s−1} (β_{−1} = β_0),
    and its losses are those before each update: L(0..T−1) (docs/theory.md §4)."""
    p = Problem(a=2.0, b=1.5, sigma=0.4, n_modes=40, batch=2)
    lam, s2, m, k = p.lam, p.sigma**2, p.batch, 1 + 1 / p.batch
    T = 300
    t = np.arange(T)
    beta = 0.2 + 0.7 * t / T  # EMA weights in (0, 1]
    eta = 0.8 * p.eta_critical() * np.ones(T)
    # the notebook's moment recursion, C = E[Δ²], R = E[Δ v], V = E[v²]
    c = p.c0.copy()
    loss = np.sum(lam * c)
    r = beta[0] * lam * c
    v = beta[0] ** 2 * (k * lam**2 * c + lam / m * (loss + s2))
    ema = []
    for i in range(T):
        ema.append(np.sum(lam * c))
        c_new = c - 2 * eta[i] * r + eta[i] ** 2 * v
        loss = np.sum(lam * c_new)
        b = beta[i]
        rv = r - eta[i] * v
        r, v = (
            (1 - b) * rv + b * lam * c_new,
            (1 - b) ** 2 * v
            + 2 * b * (1 - b) * lam * rv
            + b**2 * (k * lam**2 * c_new + lam / m * (loss + s2)),
        )
        c = c_new
    prev = np.concatenate([[beta[0]], beta[:-1]])
    prev2 = np.concatenate([[beta[0]], prev[:-1]])
    curve = loss_curve(p, eta * prev, betas=(1 - prev) * prev2 / prev)
    np.testing.assert_allclose(curve[:T], ema, rtol=1e-12)


def test_optax_step_convention():
    """to_optax_sgd: update t uses (η_t, β_t) (count 0 = first update), optax's heavy ball."""
    etas, betas = np.array([0.5, 0.2, 0.1, 0.05]), np.array([0.0, 0.9, 0.5, 0.3])
    grads = np.array([1.0, -2.0, 3.0, 0.5, 0.25])
    opt = to_optax_sgd(etas, betas)
    w, state = jnp.zeros(1), opt.init(jnp.zeros(1))
    w_hand, v = 0.0, 0.0
    for t, g in enumerate(grads):
        upd, state = opt.update(jnp.full(1, g), state)
        w = optax.apply_updates(w, upd)
        i = min(t, len(etas) - 1)  # past the end: the last values
        assert float(state.hyperparams["learning_rate"]) == pytest.approx(etas[i])
        assert float(state.hyperparams["momentum"]) == pytest.approx(betas[i])
        v = betas[i] * v + g
        w_hand -= etas[i] * v
        assert float(w[0]) == pytest.approx(w_hand, rel=1e-6)
    plain = to_optax_sgd(etas)  # betas=None: plain SGD without a trace
    assert "momentum" not in plain.init(jnp.zeros(1)).hyperparams


@pytest.mark.slow
def test_optax_training_matches_recursion():
    """optax.sgd with momentum, driven by the exported (η_t, β_t), on sampled data over 1024
    seeds follows loss_curve(problem, etas, betas=betas) within sampling error."""
    p = Problem(a=2.0, b=1.5, sigma=0.4, n_modes=60, batch=4, n_exact=60)
    T = 150
    etas, betas = _schedule(T, 0.8 * p.eta_critical())
    mc = train_optax(p, to_optax_sgd(etas, betas), T, jax.random.key(5), n_seeds=1024)
    times = [1, 10, 50, 100, 150]
    z = (mc.mean[times] - np.asarray(loss_curve(p, etas, betas=betas))[times]) / mc.sem[times]
    assert np.all(np.abs(z) < 4), z
    z_sgd = (mc.mean[times] - np.asarray(loss_curve(p, etas))[times]) / mc.sem[times]
    assert np.max(np.abs(z_sgd)) > 4, z_sgd  # the same schedule without momentum is rejected


_RANGE = r"betas must be finite and in \[0, 1\)"


@pytest.mark.parametrize(
    "betas,msg",
    [
        (np.full(3, 0.5), "betas must have the shape of etas"),
        (
            np.array([0.1, np.nan, 0.2, 0.3]),
            r"betas must be finite and in \[0, 1\); got betas\[1\]=nan",
        ),
        (
            np.array([0.1, 1.0, 0.2, 0.3]),
            r"betas must be finite and in \[0, 1\); got betas\[1\]=1.0",
        ),
        (np.array([0.1, 0.1, -0.2, 0.3]), r"betas must be finite and in \[0, 1\); got betas\[2\]"),
        (np.zeros((2, 2)), "betas must have the shape"),
    ],
)
def test_invalid_betas(betas, msg):
    p = Problem(a=2.0, b=1.5, n_modes=10)
    etas = np.full(4, 0.1)
    for f in (loss_curve, loss_curve_reference):
        with pytest.raises(ValueError, match=msg):
            f(p, etas, betas=betas)
    with pytest.raises(ValueError, match=msg):
        M.log_final_loss_and_grads(p, etas, betas)
    with pytest.raises(ValueError, match=msg):
        to_optax_sgd(etas, betas)


def test_invalid_constant_momentum():
    p = Problem(a=2.0, b=1.5, n_modes=10)
    for beta in (1.0, -0.1, math.nan):
        with pytest.raises(ValueError, match=r"beta must be in \[0, 1\)"):
            M.eta_critical(p, beta)
    with pytest.raises(ValueError, match="etas must be finite"):
        loss_curve(p, np.array([0.1, np.nan]), betas=np.zeros(2))


# ----------------------------------------------------------------------------- §4.2: the limit
@pytest.mark.parametrize("kw", [dict(a=1.5, b=2.5, sigma=0.5, batch=4, n_modes=10**8),
                                dict(a=2.5, b=1.2, sigma=0.3, batch=1, n_modes=1000)])  # fmt: skip
def test_the_stable_effective_rate_rises_with_beta_to_its_closed_form_limit(kw):
    from rfmodel.dynamics.momentum import effective_rate_limit, eta_critical

    p = Problem(**kw)
    rates = [eta_critical(p, beta) / (1 - beta) for beta in (0.0, 0.5, 0.9, 0.99, 0.999, 1 - 1e-7)]
    assert np.all(np.diff(rates) > 0), rates
    limit = effective_rate_limit(p)
    assert rates[-1] == pytest.approx(limit, rel=1e-6)
    assert limit / rates[0] < 3.5, rates  # bounded: at most m/(2m/(m+2)) = (m+2)/2 for one mode


@pytest.mark.slow
def test_constant_momentum_gain_approaches_the_predicted_limit_from_below():
    """Hard phase, effectively infinite N: optimal rates under a constant β = 0.9 against SGD's
    optimum; the gain rises with T towards (η_c(β)/((1 − β)η_c(0)))^((a−1)/b) (1.205) and stays
    below it (measured 1.140, 1.174, 1.182 at T = 1024, 16 384, 65 536)."""
    from rfmodel.control import optimize_schedule
    from rfmodel.dynamics.momentum import constant_momentum_gain

    p = Problem(a=1.5, b=2.5, sigma=0.5, batch=4, n_modes=10**8, n_exact=100, bins_per_decade=40)
    limit = constant_momentum_gain(p, 0.9)
    gains = []
    for T in (1024, 16384):
        sgd = optimize_schedule(p, T, controls=64)
        mom = optimize_schedule(p, T, controls=64, betas=np.full(T, 0.9))
        assert sgd.converged and mom.converged
        gains.append(sgd.loss / mom.loss)
    assert 1.0 < gains[0] < gains[1] < limit, (gains, limit)
    assert limit - gains[1] < 0.6 * (limit - gains[0]), (gains, limit)  # measured 0.48


@pytest.mark.slow  # default tier under 4 min on 2 cores (measured cold)
def test_objectives_of_large_problems_match_reference(x64):
    """Large problems compile parts of the objectives with XLA's default emitters
    (``fused_pays``): SGD's objective and momentum's forward pass. Both still give the
    reference's log L(T) and gradients."""
    from rfmodel.dynamics import log_final_loss_and_grad
    from rfmodel.dynamics._common import fused_pays, padded_modes

    p = Problem(a=1.5, b=2.5, sigma=0.5, n_modes=10**6, n_exact=2100, batch=3)
    T = 1100
    assert fused_pays(padded_modes(p.n_eff), T)
    etas, betas = _schedule(T, 1.2, beta_max=0.9)
    m = np.full(T, 3.0)
    v, g = log_final_loss_and_grad(p, etas, m)
    g_ref = jax.grad(lambda e: jnp.log(loss_curve_reference(p, e, m)[-1]))(etas)
    np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-13 * float(np.max(np.abs(g_ref))))
    assert math.isclose(v, math.log(float(loss_curve_reference(p, etas, m)[-1])), rel_tol=1e-13)
    v, grads = M.log_final_loss_and_grads(p, etas, betas, m, batch_grad=False)
    ref = loss_curve_reference(p, etas, m, betas)
    assert math.isclose(v, math.log(float(ref[-1])), rel_tol=1e-13)
    g_ref = jax.grad(lambda e, b: jnp.log(loss_curve_reference(p, e, m, b)[-1]), argnums=(0, 1))(
        etas, betas
    )
    for name, gr in zip(("eta", "momentum"), g_ref, strict=True):
        scale = float(np.max(np.abs(gr)))
        np.testing.assert_allclose(grads[name], gr, rtol=1e-10, atol=1e-13 * scale)
