"""Fitting the model to logged curves: the curves and schedule CSVs, the forward model on its
time grid, synthetic recovery, prediction, held-out metrics, warnings, bounded memory at 10⁹
steps, advice and the command line (docs/theory.md §9)."""

import json
import math
import time
import tracemalloc

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rfmodel import Problem, loss_curve
from rfmodel.cli import main
from rfmodel.fit import (
    MODEL,
    FitResult,
    Run,
    fit_curves,
    read_curves,
    synthetic_runs,
    write_curves,
)
from rfmodel.practice import prediction_metrics
from rfmodel.practice.fit import _design, _excess, _jac_jit, _res_jit, model_grid

TRUE = {"a": 2.2, "b": 1.4, "sigma": 0.3, "lr_scale": 2.0, "loss_scale": 2.0, "floor": 0.1}


@pytest.fixture(scope="module")
def synthetic():
    return synthetic_runs(**TRUE, steps=2000, noise=0.01, seed=1)


@pytest.fixture(scope="module")
def fitted(synthetic):
    return fit_curves(synthetic)


def _csv(tmp_path, text, name="c.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


GOOD = "run,step,lr,loss\n" + "".join(
    f"{r},{s},{lr},{2.0 / (1 + s * lr)}\n"
    for r, lr in (("a", 0.1), ("b", 0.2))
    for s in range(0, 60, 10)
)


# ----------------------------------------------------------------------------- the curves CSV
@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("run,step,loss\nA,0,1\n", "missing column(s) lr"),
        (GOOD.replace("a,20,", "a,5,"), "line 4, column 'step': steps of run 'a' must increase"),
        (GOOD.replace("a,30,0.1,", "a,30,0.1,nan\nx,0,0,"), "line 5, column 'loss'"),
        (
            GOOD.replace("b,10,0.2,", "b,10,0.2,-1\nx,0,0,"),
            "column 'loss': must be a finite number in [1e-200, 1e+200]",
        ),
        (GOOD.replace("a,20,0.1,", "a,20,0.1,1e-300\nx,0,0,"), "line 4, column 'loss'"),
        (GOOD.replace("b,10,0.2,", "b,10,inf,"), "column 'lr': must be a finite number >= 0"),
        (GOOD.replace("a,10,", "a,1.5,"), "column 'step': must be an integer in [0, 1e+12]"),
        (GOOD.replace("a,10,", "a,2e12,"), "column 'step': must be an integer in [0, 1e+12]"),
        (GOOD.replace("a,10,0.1,", "a,10,,\nx,0,0,"), "line 3: both 'lr' and 'loss' are empty"),
        ("run,step,lr,loss,loss\n" + GOOD[16:], "column 'loss' appears 2 times"),
        (
            "run,step,lr,loss,Run\na,0,1,1,a\n",
            "column 'run' appears 2 times in the header (columns 1, 5)",
        ),
        ("run,step,lr,loss,batch\na,0,0.1,1,\n", "column 'batch': a row with a rate needs"),
        ("\n".join(GOOD.splitlines()[:7]) + "\n", "need at least 2 runs"),
        (GOOD + "c,0,0.3,1.0\n", "run 'c' has 1 logged losses; need at least 5"),
        (GOOD.replace("0.2", "0.1"), "same learning-rate schedule"),
        ("", "empty file"),
    ],
)
def test_bad_csv_names_the_problem(tmp_path, text, needle):
    with pytest.raises(ValueError) as e:
        read_curves(_csv(tmp_path, text))
    assert needle in str(e.value), str(e.value)


def test_bom_and_spreadsheet_quirks_are_read(tmp_path):
    """A UTF-8 byte order mark, header case and spaces, other columns and blank lines."""
    text = "\ufeffRun, Step ,LR,Loss,note\n" + GOOD.split("\n", 1)[1].replace("\n", ",x\n")
    runs = read_curves(_csv(tmp_path, text + "\n\n"))
    ref = read_curves(_csv(tmp_path, GOOD, "ref.csv"))
    for r, q in zip(runs, ref, strict=True):
        assert r.name == q.name
        np.testing.assert_array_equal(r.loss, q.loss)
        np.testing.assert_array_equal(r.lr, q.lr)


def test_schedule_only_rows_empty_last_rate_and_round_trip(tmp_path):
    """A warmup given row by row without losses, a step change given on both sides, the last
    row without a rate: the per-update schedule interpolates only between rows with a rate,
    and write_curves/read_curves keep every row (empty fields stay empty)."""
    rows = ["run,step,lr,loss,batch"]
    rows += [f"w,{s},{0.01 * (s + 1)},,4" for s in range(0, 10)]  # warmup, no losses
    rows += [f"w,{s},,{3.0 / (1 + s) ** 0.5},4" if s % 10 else f"w,{s},0.1,{3.0 / (1 + s) ** 0.5},4"
             for s in range(10, 100, 5)]  # fmt: skip
    rows += ["w,119,0.1,,4", "w,120,0.02,2.0,4", "w,150,,1.9,"]  # step change, last rate empty
    rows += [f"c,{s},0.1,{3.0 / (1 + s) ** 0.4},4" for s in range(0, 151, 10)]
    rows[-1] = rows[-1].replace(",0.1,", ",,")
    runs = read_curves(_csv(tmp_path, "\n".join(rows) + "\n"))
    w = runs[0]
    lr, batch = w.rates(150)
    want = np.concatenate([0.01 * np.arange(1, 11), np.full(110, 0.1), np.full(30, 0.02)])
    np.testing.assert_allclose(lr, want, rtol=1e-12)
    assert np.all(batch == 4)
    st, loss = w.points
    assert st[0] == 10 and st[-1] == 150 and w.horizon == 150 and np.all(np.isfinite(loss))
    assert float(w.schedule().s1(150)) == pytest.approx(want.sum(), rel=1e-12)
    write_curves(tmp_path / "back.csv", runs)
    back = read_curves(tmp_path / "back.csv")
    for r, q in zip(runs, back, strict=True):
        for k in ("step", "lr", "loss", "batch"):
            np.testing.assert_array_equal(getattr(r, k), getattr(q, k))


def test_schedule_file_merges_and_refuses_conflicts(tmp_path):
    curves = "run,step,lr,loss\n" + "".join(
        f"{r},{s},,{2.0 / (1 + s * lr)}\n"
        for r, lr in (("a", 0.1), ("b", 0.2))
        for s in range(0, 60, 10)
    )
    sched = _csv(tmp_path, "run,step,lr\na,0,0.1\nb,0,0.2\nb,49,0.05\n", "s.csv")
    runs = read_curves(_csv(tmp_path, curves), schedule=sched)
    np.testing.assert_allclose(runs[1].rates(50)[0], np.interp(np.arange(50), [0, 49], [0.2, 0.05]))
    with pytest.raises(ValueError, match="no row gives a rate"):
        read_curves(_csv(tmp_path, curves))
    bad = _csv(tmp_path, "run,step,lr\na,0,0.1\nz,0,0.2\n", "z.csv")
    with pytest.raises(ValueError, match="line 3, column 'run': run 'z' of the schedule is not"):
        read_curves(_csv(tmp_path, curves), schedule=bad)
    clash = _csv(tmp_path, "run,step,lr\na,0,0.3\nb,0,0.2\n", "k.csv")
    with pytest.raises(ValueError, match="rate 0.3 of run 'a' at step 0 contradicts"):
        read_curves(_csv(tmp_path, GOOD), schedule=clash)


def test_cli_bad_input_writes_nothing(tmp_path, capsys):
    bad = _csv(tmp_path, GOOD.replace("a,30,0.1,", "a,30,0.1,nan\nx,0,0,"))
    out = tmp_path / "fit.json"
    assert main(["fit", str(bad), "--json", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rfmodel fit: error:") and "line 5" in err and "'loss'" in err
    assert not out.exists()
    tiny = _csv(tmp_path, GOOD.replace("b,20,0.2,", "b,20,0.2,1e-300\nx,0,0,"), "t.csv")
    assert main(["fit", str(tiny)]) == 2
    err = capsys.readouterr().err
    assert f"{tiny}: line 10, column 'loss': must be a finite number in [1e-200" in err
    assert "infs or NaNs" not in err
    good = _csv(tmp_path, GOOD)
    for argv, needle in (
        (["--cv", "--holdout", "a"], "--cv and --holdout: choose one"),
        (["--holdout", "zz"], "--holdout: run names must be from"),
        (["--holdout", "a"], "need at least 2 runs"),
        (["--cv"], "--cv: leave-one-run-out needs at least 3 runs"),
        (["--law", "mpl"], "cannot fit 'mpl'"),
    ):
        assert main(["fit", str(good), *argv, "--json", str(out)]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("rfmodel fit: error:") and needle in err, (argv, err)
        assert not out.exists()
    for bad_kappa in ("0", "-1", "nan", "fitted"):
        with pytest.raises(SystemExit) as e:
            main(["fit", str(good), "--kappa", bad_kappa, "--json", str(out)])
        assert e.value.code == 2
        assert "--kappa: must be 'fit' or a finite number > 0" in capsys.readouterr().err
        assert not out.exists()
    with pytest.raises(SystemExit) as e:  # argparse rejects the flag before any work
        main(["advise", str(good), "--T", "1", "--out", str(tmp_path / "adv")])
    assert e.value.code == 2
    assert "--T: must be an integer" in capsys.readouterr().err
    assert not (tmp_path / "adv").exists()


# ----------------------------------------------------------------------------- the model
def test_forward_model_is_the_exact_recursion_and_differentiable(x64, synthetic, fitted):
    """The fit's JAX model (bins by Hurwitz zeta in JAX) equals Problem + loss_curve, at the
    paper's κ = 1 and at κ = 3 (the problem's batch is the runs' batch / κ), and the Jacobian
    the fit uses (forward mode through the scan) matches central finite differences in all
    seven parameters."""
    loss_unit = max(float(np.max(r.points[1])) for r in synthetic)
    d = _design(synthetic, MODEL, loss_unit=loss_unit)  # the fit's own design (compiled)
    assert not d.blocked and d.eta.shape == (2, 2048)  # padded to a multiple of 256
    for kappa in (1.0, 3.0):
        th = np.array(
            [TRUE["a"], TRUE["b"], math.log(0.09), 0.0, math.log(2.0 * 0.2), 0.05, math.log(kappa)]
        )
        L = np.asarray(_excess(jnp.asarray(th), d.eta, d.m, d.k, d.n_head, d.lo, d.hi, False))
        p = Problem(a=2.2, b=1.4, sigma=0.3, batch=8 / kappa, normalize=True, **MODEL)
        ref = loss_curve(p, 2.0 * synthetic[1].rates(2000)[0])
        np.testing.assert_allclose(L[1, :2001], ref, rtol=1e-12)
        Lb = np.asarray(_excess(jnp.asarray(th), d.eta, d.m, d.k, d.n_head, d.lo, d.hi, True))
        np.testing.assert_allclose(Lb, L, rtol=1e-12)  # blocks of one update: the same step
    J = np.asarray(_jac_jit(jnp.asarray(th), *d.args()))[: d.n]
    for i in range(7):
        e = np.zeros(7)
        e[i] = 1e-6
        fd = _res_jit(jnp.asarray(th + e), *d.args()) - _res_jit(jnp.asarray(th - e), *d.args())
        np.testing.assert_allclose(J[:, i], np.asarray(fd)[: d.n] / 2e-6, rtol=1e-5, atol=1e-8)


def test_the_gradient_noise_multiplier_is_recovered_held_and_saved(x64):
    """κ (the model's batch is the runs' batch / κ) is recovered from runs of the exact model
    at κ = 4; held at 1 the fit is the paper's model and worse; the fit's problem has batch m/κ
    and the JSON round trip keeps κ; bad values name the parameter."""
    runs = synthetic_runs(a=2.2, b=1.4, steps=2000, noise=0.01, seed=0, kappa=4.0)
    f = fit_curves(runs, profile=False)
    assert f.fit_kappa and abs(math.log(f.kappa / 4.0)) < math.log(1.25), f.kappa
    assert f.problem().batch == pytest.approx(8.0 / f.kappa, rel=1e-12)
    assert f.problem(batch=2.0).batch == pytest.approx(2.0 / f.kappa, rel=1e-12)
    assert abs(f.a - 2.2) < 0.1 and abs(f.b - 1.4) < 0.1, (f.a, f.b)
    held = fit_curves(runs, profile=False, kappa=1.0)  # the paper's model: a worse, biased fit
    assert held.kappa == 1.0 and not held.fit_kappa and held.problem().batch == 8.0
    assert held.cost > 1.1 * f.cost and abs(held.a - 2.2) > 0.25, (held.cost, f.cost, held.a)
    back = FitResult.from_dict(json.loads(json.dumps(f.to_dict())))
    assert back.kappa == f.kappa and back.fit_kappa
    np.testing.assert_allclose(back.predict(runs[1]), f.predict(runs[1]), rtol=1e-12)
    for bad, needle in (("x", "kappa must be 'fit' or a number > 0"), (0.0, "kappa")):
        with pytest.raises(ValueError, match=needle):
            fit_curves(runs, kappa=bad)
    for bad in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError, match="kappa must be a finite number > 0"):
            synthetic_runs(steps=10, kappa=bad)


def test_block_grid_follows_the_exact_recursion(fitted):
    """Past MAX_MODEL_STEPS the model steps blocks of ≤ t/256 updates (exact per mode for the
    block, the noise term at the block's start): on a 10⁵-step WSD run and a cosine the
    predicted loss is within 2·10⁻³ of the exact per-update recursion at every logged step."""
    T = 100_000
    p = fitted.problem()
    wsd = np.where(np.arange(T) < 0.8 * T, 0.1, 0.1 * (T - np.arange(T)) / (0.2 * T))
    cos = 0.1 * 0.5 * (1 + np.cos(np.pi * np.arange(T) / T))
    st = np.unique(np.geomspace(1, T, 60).round())
    for lr in (wsd, cos):
        exact = fitted.floor + fitted.loss_scale * np.asarray(loss_curve(p, fitted.lr_scale * lr))
        run = Run.from_rates("x", lr, step=st, loss=np.ones(st.size), batch=fitted.batch)
        got = fitted.predict(run)
        assert np.max(np.abs(got / exact[st.astype(int)] - 1)) < 2e-3
    g = model_grid(T, st)
    assert g.size < 2000 and set(st) <= set(g)
    assert np.all(np.diff(g) <= np.maximum(1, g[:-1] / 256) + 1)


@pytest.mark.slow  # default tier under 4 min on 2 cores (measured cold)
@pytest.mark.parametrize("T", [10**9, 5 * 10**10])
def test_billion_step_file_fits_in_bounded_memory(T):
    """A run logged at 30 steps up to 10⁹ (or 5·10¹⁰) and a WSD run given by 3 knots: the fit
    aggregates the schedule on its block grid (exact sums over the knots), so its memory does
    not grow with the step count (numpy allocations traced: < 100 MB; per update it would be
    8 GB)."""
    st = np.concatenate([[0.0], np.unique(np.geomspace(1, T, 30).round())])
    y = 0.5 + 2.0 / (1 + st / 1e3) ** 0.4
    const = Run("const", st, np.where(st == 0, 0.1, np.nan), y, 8.0)
    rows = np.union1d(st, [0.8 * T])
    lr = np.interp(rows, [0, 0.8 * T, T], [0.1, 0.1, 0.0])
    lr[~np.isin(rows, [0, 0.8 * T, T])] = np.nan
    yw = np.interp(rows, st, y) * np.where(rows > 0.8 * T, 0.9, 1.0)
    yw[~np.isin(rows, st)] = np.nan
    wsd = Run("wsd", rows, lr, yw, 8.0)
    tracemalloc.start()
    f = fit_curves([const, wsd], profile=False, starts=1, resolution=16)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 100e6 and np.isfinite(f.rms)
    pred = f.predict(wsd)
    assert pred.shape == (int(np.isfinite(yw).sum()),) and np.all(np.isfinite(pred))


def test_synthetic_recovery(fitted):
    """Known (a, b) from two noisy runs (1% noise, 2000 steps): within 0.05, phase certain."""
    f = fitted
    assert abs(f.a - TRUE["a"]) < 0.05 and abs(f.b - TRUE["b"]) < 0.05, (f.a, f.b)
    assert f.phase == "easy" and f.certain and f.phase_pvalue < 1e-3
    lo, hi = f.a_minus_b_interval
    assert lo < TRUE["a"] - TRUE["b"] < hi
    assert f.floor == pytest.approx(TRUE["floor"], rel=0.05)
    assert f.lr_scale == pytest.approx(TRUE["lr_scale"], rel=0.2)
    assert 0.007 < f.rms < 0.013  # the noise level: nothing left unexplained
    assert f.systematic < 0.006 and f.verdict == "good" and f.warnings == ()
    assert 0.01 < f.huber_delta < 0.02  # 1.345 × the 1% noise
    d = f.to_dict()
    assert {"a", "b", "sigma", "phase", "verdict", "warnings"} <= set(d) and json.dumps(d)
    back = FitResult.from_dict(json.loads(json.dumps(d)))
    assert back == f


def test_loss_units_do_not_matter(synthetic, fitted):
    """Losses ×1e-150 (or the rates ×1e6): the same fit in the new units."""
    tiny = [Run(r.name, r.step, r.lr * 1e6, r.loss * 1e-150, r.batch) for r in synthetic]
    f = fit_curves(tiny, profile=False)
    assert f.a == pytest.approx(fitted.a, abs=2e-3) and f.b == pytest.approx(fitted.b, abs=2e-3)
    assert f.floor == pytest.approx(fitted.floor * 1e-150, rel=1e-2)
    assert f.lr_scale == pytest.approx(fitted.lr_scale * 1e-6, rel=1e-2)


def test_prediction_of_an_unseen_schedule(fitted):
    """The fitted model predicts a schedule it never saw (linear decay, 2× longer) within 2%,
    from a rate array (every step) or from a run (its logged steps): the same numbers."""
    T = 4000
    lr = 0.15 * (1 - np.arange(T) / T)
    p = Problem(a=2.2, b=1.4, sigma=0.3, batch=8, normalize=True, **MODEL)
    truth = TRUE["floor"] + TRUE["loss_scale"] * np.asarray(loss_curve(p, TRUE["lr_scale"] * lr))
    pred = fitted.predict(lr)
    assert pred.shape == (T + 1,)
    assert np.max(np.abs(pred / truth - 1)) < 0.02
    st = np.arange(0, T + 1, 50.0)
    run = Run("linear", np.array([0.0, T]), np.array([0.15, 0.0]), np.full(2, np.nan), 8.0)
    np.testing.assert_allclose(fitted.predict(run, steps=st), pred[::50], rtol=1e-10)
    with pytest.raises(ValueError, match="steps must be integers"):
        fitted.predict(run, steps=[1.5])


def test_held_out_metrics_by_hand(synthetic, fitted):
    """The metrics of a held-out run are the field's formulas on the fit's own predictions
    (steps >= 1): r2, mae, rmse, prede (mean |e|/y), worste (max |e|/y)."""
    from rfmodel.practice import run_metrics

    run = synthetic[1]
    st, y = run.points
    yh = fitted.predict(run)[1:]
    e = yh - y[1:]
    m = run_metrics(fitted, run)
    assert list(m) == ["r2", "mae", "rmse", "prede", "worste"]
    assert m["mae"] == pytest.approx(np.mean(np.abs(e)))
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean(e**2)))
    assert m["prede"] == pytest.approx(np.mean(np.abs(e) / y[1:]))
    assert m["worste"] == pytest.approx(np.max(np.abs(e) / y[1:]))
    assert m["r2"] == pytest.approx(1 - np.sum(e**2) / np.sum((y[1:] - y[1:].mean()) ** 2))
    assert m == prediction_metrics(y[1:], yh)


def test_warnings_say_what_to_distrust():
    """A plain power law with no floor in sight: the floor sits at the lowest loss; a curve
    whose shape says nothing about the phase: the phase is undetermined."""
    st = np.arange(0, 201, 10.0)
    runs = [
        Run("c", st, np.full(st.size, 0.1), 1.0 + 2.0 / (1 + st / 20) ** 0.5, 1.0),
        Run("h", st, np.full(st.size, 0.05), 1.0 + 2.0 / (1 + st / 40) ** 0.5, 1.0),
    ]
    f = fit_curves(runs, profile=False, starts=2)
    text = " | ".join(f.warnings)
    assert "is at or above the lowest logged loss" in text or "sits at its" in text, text


def test_validation_of_runs():
    step = np.arange(0, 50, 10.0)
    r = Run("a", step, np.full(5, 0.1), np.ones(5), np.ones(5))
    with pytest.raises(ValueError, match="at least 2 runs"):
        fit_curves([r])
    with pytest.raises(ValueError, match="every lr is 0"):
        fit_curves([r, Run("b", step, np.zeros(5), np.ones(5), np.ones(5))])
    with pytest.raises(ValueError, match="names must be unique"):
        fit_curves([r, Run("a", step, np.full(5, 0.2), np.ones(5), np.ones(5))])
    for kw, msg in (
        ({"starts": 0}, "starts must be an integer >= 1"),
        ({"huber_delta": -1}, "huber_delta must be 'auto' or a finite number > 0"),
        ({"resolution": 2}, "resolution must be an integer >= 8"),
    ):
        t0 = time.perf_counter()
        with pytest.raises(ValueError, match=msg):
            fit_curves([r, r], **kw)
        assert time.perf_counter() - t0 < 0.5


# ----------------------------------------------------------------------------- command line
@pytest.fixture(scope="module")
def three_runs(tmp_path_factory):
    from rfmodel.schedules import as_array, cosine, wsd

    T = 300
    sch = {
        "constant": np.full(T, 0.1),
        "cosine": np.asarray(as_array(cosine(0.2, T), T)),
        "wsd": np.asarray(as_array(wsd(0.1, T, decay=0.2), T)),
    }
    runs = synthetic_runs(**TRUE, steps=T, every=10, noise=0.003, seed=5, schedules=sch)
    path = tmp_path_factory.mktemp("cli") / "curves.csv"
    write_curves(path, runs)
    return path, runs


def test_cli_holdout_with_the_laws_side_by_side(three_runs, tmp_path, capsys):
    """--law all --holdout: one table, every model's held-out metrics under the field's names,
    in the JSON too; the JSON's top level is still an rf fit (advise --fit reads it), here with
    κ held at 1 by --kappa."""
    path, runs = three_runs
    out = tmp_path / "fit.json"
    argv = [
        "fit",
        str(path),
        "--law",
        "all",
        "--holdout",
        "wsd",
        "--kappa",
        "1",
        "--json",
        str(out),
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "holdout prede" in text and "predicted runs (holdout):" in text
    assert "kappa = 1 (held)" in text
    d = json.loads(out.read_text())
    assert d["kappa"] == 1.0 and d["fit_kappa"] is False
    assert set(d["fits"]) == {"rf", "mpl", "annealing"}
    rows = d["predictions"]
    assert {(r["model"], r["run"]) for r in rows} == {(m, "wsd") for m in d["fits"]}
    for r in rows:
        assert {"r2", "mae", "rmse", "prede", "worste"} <= set(r) and r["prede"] < 0.02, r
    f = FitResult.from_dict(d)
    np.testing.assert_allclose(
        [r["prede"] for r in rows if r["model"] == "rf"],
        [prediction_metrics(runs[2].points[1][1:], f.predict(runs[2])[1:])["prede"]],
        rtol=1e-9,
    )


def test_compare_laws_rows_and_exact_schedules(three_runs):
    """compare_laws: a row per (model, test run), then a mean row (worste: the max); runs whose
    rates were logged only at their logged steps take the exact schedule by with_rates."""
    from rfmodel.practice import compare_laws

    _, runs = three_runs
    sparse = [Run(r.name, *r.points[:1], np.interp(r.points[0], *r.knots[:2]), r.points[1], 8.0)
              for r in runs]  # fmt: skip
    assert np.max(np.abs(sparse[2].rates(300)[0] - runs[2].rates(300)[0])) > 1e-3  # smeared
    exact = [q.with_rates(r.rates(300)[0]) for q, r in zip(sparse, runs, strict=True)]
    np.testing.assert_allclose(exact[2].rates(300)[0], runs[2].rates(300)[0], rtol=1e-12)
    rows = compare_laws(exact[:2], exact[2:], models=("mpl", "annealing"))
    assert [(r["model"], r["run"]) for r in rows] == [
        ("mpl", "wsd"), ("mpl", "mean"), ("annealing", "wsd"), ("annealing", "mean")
    ]  # fmt: skip
    for m in ("mpl", "annealing"):
        one, mean = (r for r in rows if r["model"] == m)
        assert mean["prede"] == one["prede"] and mean["worste"] == one["worste"] > 0


def test_comparison_rows_and_bad_input(three_runs):
    """comparison_rows: compare_laws' rows from fits made already; bad fits or test runs are
    refused by name before any fit."""
    from rfmodel.practice import compare_laws, comparison_rows, fit_model

    _, runs = three_runs
    fits = {"annealing": fit_model("annealing", runs[:2])}
    rows = comparison_rows(fits, runs[2:], {"annealing": 1.5})
    assert [(r["model"], r["run"], r["seconds"]) for r in rows] == [
        ("annealing", "wsd", 1.5), ("annealing", "mean", 1.5)
    ]  # fmt: skip
    again = compare_laws(runs[:2], runs[2:], models=("annealing",))
    assert [r["prede"] for r in again] == [r["prede"] for r in rows]
    assert np.isnan(comparison_rows(fits, runs[2:])[0]["seconds"])
    for bad in ({}, [fits["annealing"]], {"annealing": "fit"}):
        with pytest.raises(ValueError, match="fits must be a non-empty dict"):
            comparison_rows(bad, runs[2:])
    for bad in (runs[2], [], [1.0]):
        with pytest.raises(ValueError, match="test_runs must be a non-empty sequence of Run"):
            comparison_rows(fits, bad)
        with pytest.raises(ValueError, match="test_runs must be a non-empty sequence of Run"):
            compare_laws(runs[:2], bad, models=("annealing",))


def test_cli_test_file_and_cv(three_runs, tmp_path, capsys):
    path, runs = three_runs
    test = tmp_path / "test.csv"
    write_curves(test, runs[2:])
    fit = tmp_path / "two.csv"
    write_curves(fit, runs[:2])
    out = tmp_path / "f.json"
    assert main(["fit", str(fit), "--test", str(test), "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert [r["run"] for r in d["predictions"]] == ["wsd"] and d["table"][0]["test_prede"] < 0.02
    capsys.readouterr()
    assert main(["fit", str(path), "--cv", "--law", "annealing", "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert sorted(r["run"] for r in d["predictions"]) == ["constant", "cosine", "wsd"]
    assert "leave" not in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 3, 4])
@pytest.mark.parametrize(("a", "b"), [(2.2, 1.4), (1.5, 2.5)])
def test_synthetic_recovery_many(a, b, seed):
    """Recovery over seeds and in both phases (minutes), κ fitted: (a, b) within 0.05 in the
    easy phase; in the hard one a within 0.15 and the loss exponent (a − 1)/b within 0.01, b
    within 0.3; the phase certain; the true a − b inside the 99% profile interval.

    With κ fitted the hard phase's b moves further along the ridge of the loss exponent: seed
    4 gives a = 1.546, b = 2.746, (a − 1)/b = 0.1989 (true 0.2), κ = 1.17, where κ held at 1
    kept b within 0.15.

    The data are 20 000-step constant, cosine and WSD runs with 0.3% noise: from two 2000-step
    runs with 1% noise a and b are not separately identifiable to these tolerances (profile
    likelihood in b, 95%: [1.34, 1.67] at a = 2.2, b = 1.4, seed 4; [2.6, > 3.0] at a = 1.5,
    b = 2.5, seed 3: a ridge along a − b, and in the hard phase along the loss exponent
    (a − 1)/b, with the floor); here it is [2.44, 2.60] for the latter.

    Coverage is checked at 99%, not 95%: the 95% interval is what its name says (the profile
    is quadratic, −1.076 ± 0.075 at a = 1.5, b = 2.5, seed 3, where the truth −1 sits 2.06σ
    out, p = 0.04), and six fixed seeds all inside a 95% interval happens 74% of the time."""
    from rfmodel.schedules import as_array, cosine, wsd

    T = 20_000
    sch = {
        "constant": np.full(T, 0.1),
        "cosine": np.asarray(as_array(cosine(0.2, T), T)),
        "wsd": np.asarray(as_array(wsd(0.1, T, decay=0.2), T)),
    }
    runs = synthetic_runs(
        **{**TRUE, "a": a, "b": b}, steps=T, every=20, noise=0.003, seed=seed, schedules=sch
    )
    f = fit_curves(runs)
    if a > b:
        assert abs(f.a - a) < 0.05 and abs(f.b - b) < 0.05, (f.a, f.b)
    else:
        assert abs(f.a - a) < 0.15 and abs(f.b - b) < 0.3, (f.a, f.b)
        assert abs((f.a - 1) / f.b - (a - 1) / b) < 0.01, (f.a, f.b)
    assert f.phase == ("easy" if a > b else "hard") and f.certain
    lo, hi = f.a_minus_b_interval
    mid, half99 = (lo + hi) / 2, (hi - lo) / 2 * 2.5758 / 1.9600
    assert abs(a - b - mid) < half99, (lo, hi)


@pytest.mark.slow
def test_nine_runs_of_200_points_recover_the_truth():
    """9 runs × 201 logged points over 24 000 steps (block grid), the whole fit_curves call
    with its profile: the truth recovered from 0.3% noise (the fit's rms at the noise). Its
    time (≤ 30 s on 2 idle cores: 26.6 s of CPU) is measured by benchmarks/bench_fit.py."""
    import os
    import resource

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    from rfmodel.schedules import as_array, cosine, wsd

    T, P, h = 24_000, 0.1, 12_000
    cos = np.asarray(as_array(cosine(P, T), T))
    cos_h = np.concatenate([np.asarray(as_array(cosine(P, h), h)), np.zeros(T - h)])
    wsd_h = np.concatenate([np.asarray(as_array(wsd(P, h, decay=0.1), h)), np.zeros(T - h)])
    sch = {
        "constant": np.full(T, P),
        "constant_half": np.full(T, P / 2),
        "cosine": 0.9 * cos + 0.1 * P,
        "cosine_0": cos,
        "cosine_12k": cos_h,
        "wsd": np.asarray(as_array(wsd(P, T, decay=0.2), T)),
        "wsd_12k": wsd_h,
        "two_stage": np.where(np.arange(T) < 16_000, P, P / 10),
        "linear": P * (1 - np.arange(T) / T),
    }
    runs = synthetic_runs(a=2.2, b=1.4, steps=T, every=T // 200, noise=0.003, seed=3, schedules=sch)
    t0, c0 = time.perf_counter(), cpu()
    f = fit_curves(runs)
    dt, dc = time.perf_counter() - t0, cpu() - c0
    load = os.getloadavg()[0]
    print(f"9 runs x 201 points: {dt:.1f} s wall, {dc:.1f} s CPU (load {load:.1f})")
    assert abs(f.a - 2.2) < 0.1 and abs(f.b - 1.4) < 0.1 and f.rms < 0.0035


# ----------------------------------------------------------------------------- Problem.from_data
def _gaussian_data(n, d, seed=0):
    rng = np.random.default_rng(seed)
    lam = np.arange(1, d + 1) ** -1.5
    X = rng.standard_normal((n, d)) * np.sqrt(lam)
    w = np.arange(1, d + 1) ** -0.5
    return X, X @ w + 0.3 * rng.standard_normal(n)


def test_from_data_spectrum_target_and_noise():
    X, y = _gaussian_data(4000, 8)
    p = Problem.from_data(X, y, batch=2)
    w_ls = np.linalg.lstsq(X, y, rcond=None)[0]
    cov = X.T @ X / 4000
    assert p.kind == "data" and p.n_eff == 8 and p.batch == 2
    np.testing.assert_allclose(np.sort(p.lam), np.linalg.eigvalsh(cov), rtol=1e-10)
    assert p.initial_loss == pytest.approx(w_ls @ cov @ w_ls, rel=1e-10)  # L(0) = w*ᵀΣw*
    assert p.sigma == pytest.approx(np.sqrt(np.mean((y - X @ w_ls) ** 2)), rel=1e-10)
    assert 1.3 < p.b < 1.7  # labels fitted to the spectrum (true b = 1.5)
    # n < d: rank-deficient, only the n data directions are kept.
    q = Problem.from_data(X[:5], y[:5])
    assert q.n_eff == 5 and q.sigma == pytest.approx(0.0, abs=1e-6)
    for bad, msg in (
        ((X[:, 0], y), "X must be a 2-D array"),
        ((X, y[:-1]), "y must have shape"),
        ((np.where(np.eye(4000, 8) > 0, np.nan, X), y), "X must be finite"),
    ):
        with pytest.raises(ValueError, match=msg):
            Problem.from_data(*bad)


def test_from_data_theory_matches_sgd_on_the_data():
    """SGD that resamples rows of a Gaussian dataset follows loss_curve of from_data (the
    empirical distribution of Gaussian rows, n ≫ d, is Gaussian to O(1/√n))."""
    X, y = _gaussian_data(20000, 10, seed=1)
    p = Problem.from_data(X, y, batch=4)
    T, eta = 150, 0.5 * p.eta_critical()
    theory = np.asarray(loss_curve(p, np.full(T, eta)))
    cov = X.T @ X / X.shape[0]
    w_star = np.linalg.lstsq(X, y, rcond=None)[0]
    Xj, yj, cj, wj = (jnp.asarray(v, jnp.float32) for v in (X, y, cov, w_star))

    def run(key):
        def step(w, k):
            i = jax.random.randint(k, (4,), 0, X.shape[0])
            g = Xj[i].T @ (Xj[i] @ w - yj[i]) / 4
            w = w - eta * g
            e = w - wj
            return w, e @ cj @ e

        _, losses = jax.lax.scan(step, jnp.zeros(10), jax.random.split(key, T))
        return losses

    mc = np.asarray(jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(0), 512)), np.float64)
    mean, se = mc.mean(0), mc.std(0) / np.sqrt(mc.shape[0])
    z = np.abs(mean - theory[1:]) / np.sqrt(se**2 + (0.02 * theory[1:]) ** 2)
    assert np.max(z) < 4, float(np.max(z))


# ----------------------------------------------------------------------------- README walk-through
@pytest.mark.slow  # 27 s: every README command of the walk-through, in a subprocess each
def test_readme_walkthrough_runs_as_written(tmp_path):
    """Every command and Python block of the README's "Use it on your own training run" runs
    as written, in a fresh folder, and leaves the files it promises."""
    import re
    import shlex
    import subprocess
    import sys
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Use it on your own training run", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(bash|python)\n(.*?)```", section, flags=re.S)
    assert [k for k, _ in blocks].count("bash") == 4
    for kind, body in blocks:
        if kind == "python":
            cmds = [[sys.executable, "-c", body]]
        else:
            cmds = []
            for line in body.strip().splitlines():
                argv = shlex.split(line)
                head = {
                    "python": [sys.executable],
                    "rfmodel": [sys.executable, "-m", "rfmodel.cli"],
                }
                cmds.append(head[argv[0]] + argv[1:])
        for cmd in cmds:
            r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
            assert r.returncode == 0, (cmd[-1][:200], r.stderr[-2000:])
    for f in (
        "pilots/pilots.csv",
        "curves.csv",
        "fit.json",
        "advice/schedule.csv",
        "advice/schedule.py",
        "advice/advice.json",
    ):
        assert (tmp_path / f).exists(), f
    assert json.loads((tmp_path / "fit.json").read_text())["phase"] == "easy"
