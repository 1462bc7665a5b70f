"""The momentum control of the one solver (docs/theory.md §4, §6): optimize=("eta", "momentum")
reaches a KKT point of the bounded problem, agrees with the exact recursion, never loses to plain
SGD, combines with the batch budget, caches and resumes, and rejects bad settings by name."""

import json

import numpy as np
import pytest

from rfmodel import Problem
from rfmodel.cli import main
from rfmodel.control import (
    BETA_MAX,
    ScheduleResult,
    horizon_keys,
    optimize_schedule,
    optimize_schedules,
    projected_gradient,
    segment_index,
)
from rfmodel.dynamics import loss_curve
from rfmodel.dynamics import momentum as M
from rfmodel.dynamics.evaluators import HeavyBallSteps

HARD = Problem(a=1.5, b=2.5, sigma=0.0, n_modes=200, batch=1)
EASY = Problem(a=2.5, b=1.5, sigma=0.3, n_modes=200, batch=1)


@pytest.mark.parametrize("p", [HARD, EASY], ids=["hard", "easy"])
def test_momentum_optimum_is_a_kkt_point(p):
    """The joint optimum: converged at a KKT point (the residual recomputed here from the
    momentum adjoint), its loss is the recursion's, β within [0, β_max], no worse than SGD."""
    T, K = 400, 20
    sgd = optimize_schedule(p, T, controls=K)
    res = optimize_schedule(p, T, controls=K, optimize=("eta", "momentum"), beta_max=0.8)
    assert res.converged and set(res.kkt) == {"eta", "momentum"}
    assert res.betas.shape == (T,) and 0 <= res.betas.min() and res.betas.max() <= 0.8
    assert res.config["optimize"] == ["eta", "momentum"] and res.config["beta_max"] == 0.8
    np.testing.assert_allclose(loss_curve(p, res.etas, betas=res.betas)[-1], res.loss, rtol=1e-12)
    assert res.loss <= sgd.loss * (1 + 1e-9)
    seg = segment_index(T, K)
    u, b = res.controls, res.betas[np.searchsorted(seg, np.arange(K))]
    ev = HeavyBallSteps(p, np.bincount(seg), wrt=("eta", "momentum"))
    _, grads, _ = ev({"eta": u, "momentum": b})
    assert projected_gradient(u, grads["eta"], 0.0, res.config["eta_max"]) <= 1e-4
    assert projected_gradient(b, grads["momentum"], 0.0, 0.8) <= 1e-4
    if p is HARD:  # the hard phase gains from momentum, the easy phase about nothing
        assert sgd.loss / res.loss > 1.03
    else:
        assert sgd.loss / res.loss < 1.01


def test_joint_gradient_matches_finite_differences(x64):
    """∂ log L/∂(η_j, β_j) of the solver's objective against central differences."""
    p, T, K = HARD, 120, 6
    seg = segment_index(T, K)
    rng = np.random.default_rng(0)
    vals = {"eta": 0.3 + 0.1 * rng.random(K), "momentum": 0.6 * rng.random(K)}
    ev = HeavyBallSteps(p, np.bincount(seg), wrt=("eta", "momentum"))
    v, grads, _ = ev(vals)
    for name in vals:
        for j in (0, K // 2, K - 1):
            h = 1e-6
            up = {k: x.copy() for k, x in vals.items()}
            dn = {k: x.copy() for k, x in vals.items()}
            up[name][j] += h
            dn[name][j] -= h
            fd = (ev(up)[0] - ev(dn)[0]) / (2 * h)
            assert abs(fd - grads[name][j]) <= 1e-6 * max(1.0, abs(fd)), (name, j)


def test_fixed_momentum_and_all_three_controls():
    """betas= holds β fixed under an optimal η; all three controls together keep the budget
    exactly and do at least as well as the momentum alone at the constant batch."""
    p, T, K = HARD, 300, 10
    fixed = optimize_schedule(p, T, controls=K, betas=np.full(T, 0.5))
    assert fixed.converged and np.all(fixed.betas == 0.5)
    np.testing.assert_allclose(loss_curve(p, fixed.etas, betas=fixed.betas)[-1], fixed.loss)
    mom = optimize_schedule(p, T, controls=K, optimize=("eta", "momentum"))
    assert mom.config["beta_max"] == BETA_MAX
    assert mom.loss <= fixed.loss * (1 + 1e-6)
    S = 2.0 * T
    p2 = Problem(a=1.5, b=2.5, sigma=0.0, n_modes=200, batch=2)
    mom2 = optimize_schedule(p2, T, controls=K, optimize=("eta", "momentum"))
    all3 = optimize_schedule(
        p, T, controls=K, optimize=("momentum", "batch", "eta"), samples=S, batch_max=8
    )
    assert all3.converged and set(all3.kkt) == {"eta", "batch", "momentum"}
    assert abs(all3.budget_residual) <= 1e-9 * S
    np.testing.assert_allclose(
        loss_curve(p, all3.etas, all3.batches, all3.betas)[-1], all3.loss, rtol=1e-12
    )
    assert all3.loss <= mom2.loss * (1 + 1e-6)


def test_chain_saves_resumes_and_keys(tmp_path):
    """optimize_schedules warm-starts (η, β) over T, saves β, loads it back; β_max is in the key
    (and only the momentum's keys change: the rate alone keeps its key)."""
    kw = dict(controls=10, optimize=("eta", "momentum"), beta_max=0.7)
    out = optimize_schedules(HARD, [100, 200], out_dir=tmp_path, progress=False, **kw)
    assert all(r.converged and r.betas.max() <= 0.7 for r in out.values())
    again = optimize_schedules(HARD, [100, 200], out_dir=tmp_path, progress=False, **kw)
    np.testing.assert_array_equal(again[200].betas, out[200].betas)
    keys = horizon_keys(HARD, [100], **kw)
    assert keys[100]["solver"]["beta_max"] == 0.7
    plain = horizon_keys(HARD, [100], controls=10)[100]["solver"]
    assert "beta_max" not in plain and "optimize" not in plain
    saved = sorted(tmp_path.glob("T200_*.npz"))[0].with_suffix("")
    assert ScheduleResult.load(saved).betas.shape == (200,)


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        (dict(optimize=("eta", "momentum"), beta_max=1.0), "beta_max must be in \\(0, 1\\)"),
        (dict(optimize=("eta", "momentum"), beta_max=float("nan")), "beta_max must be"),
        (dict(beta_max=0.5), "beta_max is a setting of the momentum control"),
        (
            dict(optimize=("eta", "momentum"), betas=np.zeros(50)),
            "betas \\(fixed per-step momenta\\) cannot be given",
        ),
        (dict(betas=np.full(50, 1.0)), "betas must be finite and in \\[0, 1\\)"),
        (dict(betas=np.zeros(49)), "betas"),
        (dict(optimize=("eta", "momentum"), method="segments"), "method='segments'"),
    ],
)
def test_invalid_input(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        optimize_schedule(HARD, 50, controls=5, **kwargs)


def test_momentum_widens_the_stable_rate():
    """The start η (best constant at β = 0) is stable; at β_max the stable effective rate
    η_c(β)/(1 − β) exceeds SGD's, the room the hard-phase optimum uses."""
    assert M.eta_critical(HARD, 0.9) / (1 - 0.9) > HARD.eta_critical()


def test_cli_optimize_momentum(tmp_path, capsys):
    """rfmodel optimize --optimize momentum: both schedules written, the gain over SGD."""
    out = tmp_path / "run"
    args = ["optimize", "--a", "1.5", "--b", "2.5", "--T", "200", "--controls", "20"]
    assert main([*args, "--optimize", "momentum", "--beta-max", "0.8", "--families", "constant",
                 "--out", str(out), "--quiet"]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "gain over plain SGD" in text and "optimal eta and beta" in text
    header = (out / "schedule.csv").read_text().splitlines()[0]
    assert header == "step,eta,beta"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["gain_over_sgd"] >= 1 and (out / "optimize.png").exists()
    assert main([*args, "--beta-max", "0.5", "--out", str(tmp_path / "x")]) == 2
    assert "--beta-max needs --optimize momentum" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, "--optimize", "momentum", "--beta-max", "1", "--out", str(tmp_path / "y")])
    assert "argument --beta-max: must be a finite number in (0, 1)" in capsys.readouterr().err


@pytest.mark.slow
def test_rates_under_a_fixed_momentum_reach_kkt_points_along_a_chain():
    """β ≡ 0.99 held, hard phase, warm-started horizons: L-BFGS-B had stopped on failed line
    searches from T = 4096 on (projected gradient 1.1-1.6); the heavy-ball path restarts it."""
    from rfmodel.control import optimize_schedules

    p = Problem(a=1.5, b=2.5, sigma=0.5, batch=4, n_modes=10**8, n_exact=100, bins_per_decade=40)
    res = optimize_schedules(
        p, [1024, 2048, 4096], controls=64, betas=lambda T: np.full(T, 0.99), progress=False
    )
    for T, r in res.items():
        assert r.converged and r.projected_gradient < 1e-4, (T, r.message)


@pytest.mark.slow  # default tier under 4 min on 2 cores (measured cold)
def test_a_stranded_warm_start_is_solved_again_from_the_default_start():
    """β ≡ 0.99 held, hard phase: T = 512 warm-started from T = 256 stops where L-BFGS-B cannot
    go on (projected gradient 0.041, measured); the chain solves it again from the default
    start, which reaches a first-order point, and keeps that one."""
    from rfmodel.control import optimize_schedules

    p = Problem(a=1.5, b=2.5, sigma=0.5, batch=4, n_modes=10**8, n_exact=100, bins_per_decade=40)
    res = optimize_schedules(
        p, [256, 512], controls=64, betas=lambda T: np.full(T, 0.99), progress=False
    )
    for T, r in res.items():
        assert r.converged and r.projected_gradient < 1e-4, (T, r.message)
    cold = optimize_schedule(p, 512, controls=64, betas=np.full(512, 0.99))
    assert res[512].loss <= cold.loss * (1 + 1e-12)
