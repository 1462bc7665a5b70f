"""Horizon transfer of solved schedules, closed-form recipes, and the optax export past the
horizon (docs/theory.md §9)."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rfmodel import Problem, loss_curve
from rfmodel.control import optimize_schedule
from rfmodel.schedules import as_array, to_optax
from rfmodel.transfer import ANNEAL_ALPHA, fit_recipe, stretch, transfer, warp_hard

EASY = {"a": 2.5, "b": 1.2, "sigma": 0.3, "batch": 4, "n_modes": 10**6}
HARD = {"a": 1.5, "b": 2.5, "sigma": 0.5, "batch": 4, "n_modes": 10**8}
SMALL = {"n_exact": 100, "bins_per_decade": 20}


@pytest.fixture(scope="module", params=["easy", "hard"])
def solved(request):
    """The optimum at T = 200 and the re-solved optima at 2T and 4T (K = T/2 easy, T/4 hard)."""
    p = Problem(**(EASY if request.param == "easy" else HARD), **SMALL)
    div = 2 if request.param == "easy" else 4
    base = optimize_schedule(p, 200, controls=200 // div)
    again = {f: optimize_schedule(p, f * 200, controls=f * 200 // div) for f in (2, 4)}
    return request.param, p, base, again


def test_transfer_is_within_one_percent_of_resolving(solved):
    """The stretch rule at 2T and 4T is within 1% of the re-solved optimum (both phases); the
    closed form within 1.5%; holding the last rate (the old export) loses > 10%."""
    phase, p, base, again = solved
    for f, ref in again.items():
        T2 = f * 200
        st = base.transfer(T2)
        assert st.shape == (T2,)
        gap = float(loss_curve(p, st)[-1]) / ref.loss - 1
        assert -1e-9 < gap < 0.01, (phase, f, gap)
        rec = float(loss_curve(p, base.transfer(T2, method="recipe"))[-1]) / ref.loss - 1
        assert rec < 0.015, (phase, f, rec)
        held = np.concatenate([base.etas, np.full(T2 - 200, base.etas[-1])])
        assert float(loss_curve(p, held)[-1]) / ref.loss - 1 > 0.1


def test_to_optax_of_a_result_for_another_horizon(solved):
    _, _, base, _ = solved
    sched = to_optax(base, T=800)
    np.testing.assert_allclose(np.asarray(as_array(sched, 800)), base.transfer(800), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(as_array(to_optax(base), 200)), base.etas, rtol=1e-6)
    peaked = np.asarray(as_array(to_optax(base, T=400, peak=0.05), 400))
    assert peaked.max() == pytest.approx(0.05)
    with pytest.raises(ValueError, match="method"):
        base.transfer(400, method="bogus")


def test_stretch_and_warp_rules():
    e = 0.8 * (1 - np.arange(100) / 100) ** 1.4
    np.testing.assert_allclose(stretch(e, 100, xi=0.5), e)
    s = stretch(e, 400, xi=0.5)
    assert s[0] == pytest.approx(e[0] / 2, rel=1e-3)  # level × (T'/T)^(−ξ), shape in t/T
    np.testing.assert_allclose(s[2::4], e / 2, atol=0.005)
    # WSD: warmup 10 steps, plateau 1, decay over the last 40 steps.
    T = 400
    w = np.minimum(1, (np.arange(T) + 1) / 10) * np.clip((T - np.arange(T)) / 40, 0, 1)
    out = warp_hard(w, 1600)
    assert np.median(out[200:800]) == pytest.approx(1.0)
    tail = np.sum(out < 0.9) - np.sum(out[:20] < 0.9)
    assert tail == pytest.approx(0.9 * 40 * 4**ANNEAL_ALPHA, rel=0.1)  # tail × (T'/T)^α
    assert abs(np.sum(out[:20] < 0.99) - np.sum(w[:20] < 0.99)) <= 2  # warmup kept in steps
    with pytest.raises(ValueError, match="phase"):
        transfer(w, 800, phase="medium")
    with pytest.raises(ValueError, match="xi"):
        transfer(w, 800, phase="easy")
    with pytest.raises(ValueError, match="T_new"):
        stretch(w, 1)


def test_recipes_recover_their_closed_forms():
    T = 500
    t = np.arange(T)
    poly = 0.3 * np.minimum(1, 0.4 + 0.6 * t / 50) * (1 - t / T) ** 1.3
    r = fit_recipe(poly, phase="easy", xi=0.5)
    assert r.params["delta"] == pytest.approx(1.3, abs=0.05)
    assert r.params["eta0"] == pytest.approx(0.3, rel=0.05)
    np.testing.assert_allclose(r.as_array(), poly, atol=0.01)
    assert r.as_array(2 * T).max() == pytest.approx(poly.max() * 2**-0.5, rel=0.02)
    wsd = 1.2 * np.minimum(1, (t + 1) / 5) * np.clip((T - t) / 60, 0, 1)
    h = fit_recipe(wsd, phase="hard")
    assert h.params["plateau"] == pytest.approx(1.2, rel=1e-3)
    assert h.params["decay"] == pytest.approx(60, rel=0.05)
    ns: dict = {}
    exec(h.to_python(2000), ns)
    np.testing.assert_allclose(
        np.asarray(jax.vmap(ns["schedule"])(jnp.arange(2000))), h.as_array(2000), atol=1e-5
    )


def test_to_optax_warns_once_past_its_horizon():
    etas = np.array([0.3, 0.2, 0.1])
    sched = to_optax(etas)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert float(sched(2)) == pytest.approx(0.1)  # inside: silent
    with pytest.warns(UserWarning, match="past its horizon of 3 steps"):
        assert float(sched(5)) == pytest.approx(0.1)  # arrays keep holding the last rate
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched(7)  # once per schedule
    # In an eager optax loop (concrete counts): warned on the host. Under jit (lax.scan) the
    # schedule is pure arithmetic, no host callback (issue 21, item 11): no warning there.
    opt = optax.sgd(to_optax(etas))
    state = opt.init(jnp.zeros(2))
    with pytest.warns(UserWarning, match="step 3"):
        for _ in range(5):
            state = opt.update(jnp.ones(2), state, jnp.zeros(2))[1]

    def body(s, _):
        return opt.update(jnp.ones(2), s, jnp.zeros(2))[1], None

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        state, _ = jax.lax.scan(body, opt.init(jnp.zeros(2)), None, length=5)
        jax.block_until_ready(state)
    with pytest.raises(ValueError, match="T: an array"):
        to_optax(etas, T=10)
    with pytest.raises(ValueError, match="callables"):
        to_optax(lambda s: 0.1, T=10)
    with pytest.raises(ValueError, match="peak"):
        to_optax(etas, peak=-1.0)
