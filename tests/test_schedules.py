"""Schedule families, optax export, and tuning."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rfmodel import Problem, loss_curve
from rfmodel import schedules as S
from rfmodel.simulate import train_optax


def test_families_shapes_and_endpoints():
    T = 100
    t = np.arange(T)
    np.testing.assert_allclose(S.as_array(S.polynomial(0.4, T, 2.0), T), 0.4 * (1 - t / T) ** 2)
    np.testing.assert_allclose(S.as_array(S.power_law(0.4, 0.5), T), 0.4 * (1 + t) ** -0.5)
    np.testing.assert_allclose(S.as_array(S.exponential(1.0, T, 0.01), T), 0.01 ** (t / T))
    lin = np.asarray(S.as_array(S.linear(1.0, T, warmup=0.1), T))
    assert lin[0] == 0.0 and lin[5] == pytest.approx(0.5) and lin[10] == pytest.approx(1.0)
    assert lin[-1] == pytest.approx(1 / 90)  # optax: count T − 1 is one step before 0
    w = np.asarray(S.as_array(S.wsd(1.0, T, decay=0.2, shape="cosine"), T))
    assert np.all(w[:80] == 1.0) and np.all(np.diff(w[80:]) < 0)
    ps = np.asarray(S.as_array(S.power_scheduler(0.5, T, 1.0, 0.5, batch=4, decay=0.1), T))
    np.testing.assert_allclose(ps[:89], np.minimum(0.5, (4 * (t[:89] + 1.0)) ** -0.5))
    assert ps[-1] < ps[89] / 5
    with pytest.raises(ValueError, match="shape must be one of"):
        S.wsd(1.0, T, shape="sqrt")


def test_to_optax_under_jit_and_inject_hyperparams():
    etas = jnp.linspace(0.5, 0.1, 7)
    sched = S.to_optax(etas)
    assert float(jax.jit(sched)(3)) == pytest.approx(float(etas[3]))
    opt = optax.inject_hyperparams(optax.sgd)(learning_rate=sched)
    params = jnp.zeros(2)
    state = opt.init(params)
    seen = []
    for _ in range(7):
        _, state = opt.update(jnp.ones(2), state, params)
        seen.append(float(state.hyperparams["learning_rate"]))  # the rate this update used
    np.testing.assert_allclose(seen, etas)  # count 0 is the first update


def test_optax_round_trip_matches_recursion():
    """Training with optax.sgd on sampled data under the exported schedule follows loss_curve."""
    p = Problem(a=2.0, b=1.5, sigma=0.4, n_modes=60, batch=4, n_exact=60)
    T = 200
    etas = np.asarray(S.as_array(S.cosine(0.8 * p.eta_critical(), T), T))
    mc = train_optax(p, optax.sgd(S.to_optax(etas)), T, jax.random.key(5), n_seeds=1024)
    theory = np.asarray(loss_curve(p, etas))
    for t in (1, 21, 81, 151, T):
        assert abs(mc.mean[t] - theory[t]) < 4 * mc.sem[t]


@pytest.mark.parametrize(
    "name",
    [
        n
        if n in ("constant", "cosine", "wsd_cosine", "power_scheduler")
        else pytest.param(n, marks=pytest.mark.slow)  # the rest in the slow tier (same path)
        for n in sorted(S.FAMILIES)
    ],
)
def test_tune_returns_finite_best(name):
    p = Problem(a=1.5, b=2.5, sigma=0.5, n_modes=100, batch=2)
    r = S.tune(name, p, 150)
    curve = np.asarray(loss_curve(p, r.etas))
    assert np.all(np.isfinite(curve)) and r.loss == pytest.approx(curve[-1])
    assert np.max(r.etas) <= p.eta_mode_bound() * (1 + 1e-12)


def test_tune_finds_the_best_constant_rate():
    """The tuned constant rate matches a dense scan of the same objective."""
    p = Problem(a=2.5, b=1.2, sigma=0.5, n_modes=100, batch=4)
    T = 300
    r = S.tune("constant", p, T)
    grid = np.geomspace(1e-3, 1.0, 2000) * p.eta_mode_bound()
    losses = [float(loss_curve(p, np.full(T, e))[-1]) for e in grid[::20]]
    assert r.loss <= min(losses) * (1 + 1e-9)


def test_tune_invalid():
    p = Problem(a=2.0, b=1.5, n_modes=10)
    with pytest.raises(ValueError, match="family must be one of"):
        S.tune("nope", p, 10)
    with pytest.raises(ValueError, match="T must be"):
        S.tune("constant", p, 0)
    with pytest.raises(ValueError, match="etas must be a non-empty"):
        S.from_array(np.array([]))


@pytest.mark.parametrize(
    "seed", [0, 1, pytest.param(2, marks=pytest.mark.slow), pytest.param(3, marks=pytest.mark.slow)]
)
def test_families_are_optaxs_factories(seed):
    """A family and the optax factory a user trains with agree to float precision, warmup
    included (optax's: from 0 at count 0 to the peak at count W)."""
    rng = np.random.default_rng(seed)
    T = int(rng.integers(20, 400))
    peak, final = float(rng.uniform(0.01, 2)), float(rng.uniform(0, 0.5))
    W = int(rng.integers(0, T // 3))
    p = float(rng.uniform(0.3, 3))

    def same(ours, theirs):
        a, b = np.asarray(S.as_array(ours, T)), np.asarray(S.as_array(theirs, T))
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)

    same(S.cosine(peak, T, warmup_steps=W, final=final),
         optax.warmup_cosine_decay_schedule(0.0, peak, W, T, final * peak))  # fmt: skip
    same(S.cosine(peak, T, warmup=W / T), optax.warmup_cosine_decay_schedule(0.0, peak, W, T))
    same(S.linear(peak, T, warmup_steps=W),
         optax.join_schedules([optax.linear_schedule(0.0, peak, max(W, 1)),
                               optax.linear_schedule(peak, 0.0, T - W)], [W]))  # fmt: skip
    same(S.polynomial(peak, T, p), optax.polynomial_schedule(peak, 0.0, p, T))
    same(S.exponential(peak, T, final + 1e-3), optax.exponential_decay(peak, T, final + 1e-3))
    same(S.constant(peak), optax.constant_schedule(peak))
    wsd = np.asarray(S.as_array(S.wsd(peak, T, decay=0.3, warmup_steps=W), T))  # no factory
    np.testing.assert_allclose(wsd[:W], peak * np.arange(W) / max(W, 1), rtol=1e-12)


def test_tuned_family_gives_the_optax_schedule_to_train_with():
    p = Problem(a=2.5, b=1.2, sigma=0.5, n_modes=50, batch=4)
    r = S.tune("cosine", p, 200, maxiter=20, n_starts=1)
    assert isinstance(r.params["warmup_steps"], int)
    theirs = optax.warmup_cosine_decay_schedule(
        0.0, r.params["eta0"], r.params["warmup_steps"], 200
    )
    np.testing.assert_allclose(S.as_array(theirs, 200), r.etas, rtol=1e-12)
    np.testing.assert_allclose(S.as_array(r.schedule, 200), r.etas, rtol=1e-12)
