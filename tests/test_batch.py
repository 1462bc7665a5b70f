"""Joint learning-rate and batch-size control under a sample budget (docs/theory.md §6)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rfmodel import Problem, loss_curve
from rfmodel.control import (
    ScheduleResult,
    fewest_steps,
    horizon_keys,
    integer_batches,
    optimize_schedule,
    optimize_schedules,
    segment_index,
)
from rfmodel.dynamics import log_final_loss_and_grad, loss_curve_reference

EASY = dict(a=2.5, b=1.2, sigma=0.5, n_modes=100, batch=4)
HARD = dict(a=1.5, b=2.5, sigma=0.5, n_modes=100, batch=4)


def test_batch_gradient_matches_autodiff_and_differences(x64):
    """∇_m log L(T) from the adjoint equals jax.grad through the plain scan and central
    differences; the rate gradient is unchanged by asking for both."""
    p = Problem(**EASY)
    rng = np.random.default_rng(1)
    T = 120
    etas = 0.3 * np.exp(0.2 * rng.standard_normal(T))
    m = 1 + 6 * rng.random(T)
    v, (ge, gm) = log_final_loss_and_grad(p, etas, m, batch_grad=True)
    v1, g1 = log_final_loss_and_grad(p, etas, m)
    assert v == v1
    np.testing.assert_allclose(ge, g1, rtol=1e-12, atol=0)

    def ref(e, b):
        return jnp.log(loss_curve_reference(p, e, b)[-1])

    re, rm = jax.grad(ref, argnums=(0, 1))(jnp.asarray(etas), jnp.asarray(m))
    np.testing.assert_allclose(ge, re, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(gm, rm, rtol=1e-9, atol=1e-14)
    for t in (0, T // 2, T - 1):
        h = 1e-5 * m[t]
        up, dn = m.copy(), m.copy()
        up[t] += h
        dn[t] -= h
        fd = (math.log(loss_curve(p, etas, up)[-1]) - math.log(loss_curve(p, etas, dn)[-1])) / (
            2 * h
        )
        assert math.isclose(gm[t], fd, rel_tol=1e-5)


def test_rate_alone_is_unchanged():
    """optimize=("eta",) is the default: same numbers, same configuration (cache keys)."""
    p = Problem(**EASY)
    a = optimize_schedule(p, 200, controls=20)
    b = optimize_schedule(p, 200, controls=20, optimize=("eta",))
    np.testing.assert_array_equal(a.etas, b.etas)
    assert a.loss == b.loss and a.config == b.config and a.metadata().keys() == b.metadata().keys()
    assert a.batches is None and "optimize" not in a.config and "kkt" not in a.metadata()
    assert horizon_keys(p, [100, 200], controls=20) == horizon_keys(
        p, [100, 200], controls=20, optimize=("eta",)
    )


def _check_kkt(p, res, S, lo, hi, K):
    """An independent KKT check of the (η, m) optimum: gradient from the dynamics, one budget
    multiplier ν by least squares over the free batches, sign conditions at the bounds."""
    T = res.etas.size
    seg = segment_index(T, K)
    n = np.bincount(seg, minlength=K).astype(float)
    _, (ge, gm) = log_final_loss_and_grad(p, res.etas, res.batches, batch_grad=True)
    ge, gm = np.bincount(seg, ge, K), np.bincount(seg, gm, K)
    eta, m = res.controls, res.batches[np.searchsorted(seg, np.arange(K))]
    tol = 1e-6  # on log L(T): relative
    free_e = eta < res.config["eta_max"] * (1 - 1e-9)
    assert np.all(np.abs(ge[free_e]) <= tol)  # interior rates: zero gradient
    assert np.all(ge[~free_e] <= tol)  # at η_max: the loss wants larger η
    free = (m > lo * (1 + 1e-9)) & (m < hi * (1 - 1e-9))
    assert free.any()
    gl = m * gm  # ∂/∂log m
    nu = -(gl[free] @ (n * m)[free]) / np.sum((n * m)[free] ** 2)
    lag = gl + nu * n * m  # Lagrangian gradient in log m
    assert np.abs(gl).max() > 100 * tol  # the budget binds: the multiplier is not trivial
    assert np.all(np.abs(lag[free]) <= tol)
    assert np.all(lag[m <= lo * (1 + 1e-9)] >= -tol)  # at the lower bound: pushes down
    assert np.all(lag[m >= hi * (1 - 1e-9)] <= tol)
    assert nu > 0  # more samples lower the loss: ∂ log L*/∂S = −ν < 0
    assert math.isclose(nu, res.multipliers["batch"], rel_tol=1e-6)


@pytest.mark.parametrize("setting", [EASY, HARD], ids=["easy", "hard"])
def test_joint_optimum_is_a_kkt_point_on_the_budget(setting):
    p = Problem(**setting)
    T, K, S, lo, hi = 300, 30, 1200.0, 1.0, 16.0
    res = optimize_schedule(
        p, T, controls=K, optimize=("eta", "batch"), samples=S, batch_min=lo, batch_max=hi
    )
    assert res.converged and res.projected_gradient <= 1e-6
    assert abs(res.budget_residual) <= 1e-9 * S
    assert abs(float(np.sum(res.batches)) - S) <= 1e-9 * S
    assert res.batches.min() >= lo and res.batches.max() <= hi
    assert math.isclose(float(loss_curve(p, res.etas, res.batches)[-1]), res.loss, rel_tol=1e-12)
    _check_kkt(p, res, S, lo, hi, K)
    # The constant batch S/T with its optimal rates is a feasible point: the joint optimum is
    # at least as good.
    const = optimize_schedule(p, T, controls=K, batches=np.full(T, S / T))
    assert res.loss <= const.loss * (1 + 1e-9)
    # Small moves along the budget (log m and log η, then back onto Σ m = S) never help, flat
    # directions included.
    rng = np.random.default_rng(0)
    seg = segment_index(T, K)
    n = np.bincount(seg).astype(float)
    m = res.batches[np.searchsorted(seg, np.arange(K))]
    for _ in range(4):
        m2 = np.clip(m * np.exp(1e-3 * rng.standard_normal(K)), lo, hi)
        m2 *= S / (n @ m2)
        e2 = np.clip(res.controls * np.exp(1e-3 * rng.standard_normal(K)), 0, p.eta_mode_bound(hi))
        assert float(loss_curve(p, e2[seg], m2[seg])[-1]) >= res.loss * (1 - 1e-10)


def test_single_mode_known_optimum():
    """One noiseless mode (L = λC): the best rate at batch m gives C' = 2/(m+2) C, and
    Σ log(m_t + 2) is concave, so equal batches m_t = S/T are optimal:
    L* = λ C(0) (2/(S/T + 2))^T, reached from an uneven start."""
    lam, T, S = 0.5, 20, 60.0
    p = Problem.from_spectrum([lam], [1.0], sigma=0.0, batch=3)
    res = optimize_schedule(
        p,
        T,
        optimize=("eta", "batch"),
        samples=S,
        eta_max=4.0,
        init={"batch": np.linspace(1, 5, T)},
    )
    m = S / T
    np.testing.assert_allclose(res.batches, m, rtol=1e-5)
    np.testing.assert_allclose(res.etas, m / ((m + 2) * lam), rtol=1e-5)
    assert math.isclose(res.loss, lam * (2 / (m + 2)) ** T, rel_tol=1e-8)


def test_integer_batches():
    rng = np.random.default_rng(3)
    m = 1 + 30 * rng.random(1000) ** 3
    m *= 20_000 / m.sum()
    mi = integer_batches(m)
    assert mi.dtype.kind == "i" and mi.sum() == 20_000
    assert np.all((mi == np.floor(m)) | (mi == np.ceil(m)))
    assert mi.min() >= 1
    assert np.abs(np.cumsum(mi) - np.cumsum(m)).max() <= 0.5 + 1e-9  # no drift
    with pytest.raises(ValueError, match="batches"):
        integer_batches([0.5, 2.0])


@pytest.mark.slow
def test_fewest_steps_brackets_the_target():
    """The returned T reaches the target and the largest T below it that was solved misses it,
    within the bisection's relative width."""
    p = Problem(**EASY)
    S, T = 800.0, 200
    const = optimize_schedule(p, T, controls=20, batches=np.full(T, S / T))
    fs = fewest_steps(p, S, const.loss, T_start=T, controls=20, batch_max=64.0, rtol=0.05)
    assert fs.result.loss <= const.loss and fs.steps <= T
    assert abs(fs.result.budget_residual) <= 1e-9 * S
    below = [T for T, v in fs.losses.items() if T < fs.steps]
    assert below and fs.losses[max(below)] > const.loss
    assert fs.steps / max(below) - 1 <= 0.05 + 1 / max(below)


def test_save_load_and_warm_started_chain(tmp_path):
    p = Problem(**HARD)
    kw = dict(controls=10, optimize=("eta", "batch"), samples=lambda T: 3.0 * T, batch_max=12)
    first = optimize_schedules(p, [100, 200], out_dir=tmp_path, progress=False, **kw)
    for T, r in first.items():
        assert r.converged and abs(r.budget_residual) <= 1e-9 * 3 * T
        assert r.config["samples"] == 3.0 * T and r.config["optimize"] == ["eta", "batch"]
    again = optimize_schedules(p, [100, 200], out_dir=tmp_path, progress=False, **kw)
    np.testing.assert_array_equal(again[200].batches, first[200].batches)
    assert again[200].kkt == first[200].kkt
    keys = horizon_keys(p, [100, 200], **kw)
    assert keys[200]["solver"]["samples"] == 600.0 and keys[200]["solver"]["batch_max"] == 12
    loaded = ScheduleResult.load(next(tmp_path.glob("T200_*.npz")).with_suffix(""))
    assert loaded.batches.shape == (200,) and loaded.multipliers == first[200].multipliers


@pytest.mark.parametrize(
    "kwargs,msg",
    [
        (dict(samples=99.0), "samples must be in"),  # < T·batch_min
        (dict(samples=2000.0, batch_max=10), "samples must be in"),  # > T·batch_max
        (dict(batch_min=0.5), "batch_min must be >= 1"),
        (dict(batch_min=4, batch_max=2), "batch_max must be >= batch_min"),
        (dict(samples=float("nan")), "samples must be a finite number"),
        (dict(samples=float("inf")), "samples must be a finite number"),
        (dict(batch_max=float("inf")), "batch_max must be a finite number"),
        (dict(batch_min=float("nan")), "batch_min must be a finite number"),
        (dict(eta_max=float("nan")), "eta_max must be"),
        (dict(optimize=("eta", "bogus")), "optimize must name controls"),
        (dict(optimize=("batch",)), "optimize must name controls"),
        (dict(optimize="lr"), "optimize must name controls"),
        (dict(batches=np.full(100, 2.0)), "batches .* cannot be given"),
        (dict(init={"eta": 0.1, "beta": 0.5}), "init must be"),
        (dict(init={"batch": [1.0, float("nan")]}), "init must be finite"),
    ],
)
def test_invalid_input(kwargs, msg):
    p = Problem(a=2.0, b=1.5, sigma=0.5, n_modes=50, batch=2)
    kw = {"optimize": ("eta", "batch"), **kwargs}
    with pytest.raises(ValueError, match=msg):
        optimize_schedule(p, 100, **kw)


@pytest.mark.parametrize(
    "kwargs,msg",
    [
        (dict(samples=400.0), "samples is a setting of the batch control"),
        (dict(batch_max=8), "batch_max is a setting of the batch control"),
    ],
)
def test_batch_settings_need_the_batch_control(kwargs, msg):
    p = Problem(a=2.0, b=1.5, sigma=0.5, n_modes=50, batch=2)
    with pytest.raises(ValueError, match=msg):
        optimize_schedule(p, 100, **kwargs)


def test_cli_optimize_batch(tmp_path, capsys):
    import csv
    import json

    from rfmodel.cli import main

    args = ["optimize", "--T", "80", "--n-modes", "50", "--controls", "8", "--families"]
    args += ["constant", "--optimize", "batch", "--samples", "320", "--batch-max", "16"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "m(t)" in out and "integer batches" in out and "optimal eta at m=4" in out
    rows = list(csv.DictReader((tmp_path / "schedule.csv").open()))
    assert list(rows[0]) == ["step", "eta", "batch", "batch_int", "eta_int"] and len(rows) == 80
    assert math.isclose(sum(float(r["batch"]) for r in rows), 320, rel_tol=1e-12)
    assert sum(int(r["batch_int"]) for r in rows) == 320
    summary = json.loads((tmp_path / "summary.json").read_text())
    table = {r["schedule"]: r["loss"] for r in summary["table"]}
    assert table["optimal eta and m"] <= table["optimal eta at m=4"] < table["constant"]
    loaded = ScheduleResult.load(tmp_path / "optimal")
    assert loaded.batches.shape == (80,) and loaded.config["samples"] == 320
    for bad, msg in (
        (["--samples", "100"], "--samples needs --optimize batch"),
        (["--optimize", "batch", "--samples", "50"], "samples must be in"),
    ):
        assert main(["optimize", "--T", "80", *bad, "--out", str(tmp_path / "x")]) == 2
        assert msg in capsys.readouterr().err
    for bad, msg in (  # rejected by the flag parsers (argparse: exit status 2)
        (["--optimize", "batch,bogus"], "argument --optimize: must be comma-separated names"),
        (["--optimize", "batch", "--batch-min", "0"], "argument --batch-min: must be"),
    ):
        with pytest.raises(SystemExit) as e:
            main(["optimize", "--T", "80", *bad, "--out", str(tmp_path / "x")])
        assert e.value.code == 2 and msg in capsys.readouterr().err
