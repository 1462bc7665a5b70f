"""The practitioner's benchmark harness (rfmodel.experiments._bench) and its new tasks, small."""

import math

import numpy as np
import pytest

from rfmodel.experiments import _bench, _nets

TEACHER = {
    "task": "teacher",
    "dim": 8,
    "b": 1.5,
    "teacher_width": 4,
    "width": 8,
    "batch": 8,
    "noise": 0.1,
    "n_eval": 128,
}
CNN = {
    "task": "digits_cnn",
    "n_train": 200,
    "channels": [2, 4],
    "batch": 8,
    "input_noise": 0.5,
    "eval_copies": 1,
    "n_eval": 100,
}
LINEAR = {"task": "linear", "a": 2.5, "b": 1.2, "sigma": 0.3, "batch": 4, "n_modes": 100}

BENCH = {
    "pilots": [dict(s) for s in _bench.DEFAULT_PILOTS],
    "pilot_seed": 200,
    "horizons": [4, 16],
    "eval_seeds": [0, 1, 2],
    "tuning_seeds": [100],
    "grid": {"ratio": 2.0, "points": 3, "step": 1, "max_extend": 12},
    "wsd_decays": [0.1, 0.2, 0.4],
    "transfer_exponent": 0.5,
    "log_points": 10,
    "suite": {
        "seeds": [300, 301],
        "lr": 1.0,
        "long": 4,
        "two_stage": {"at": 0.5, "drop": 0.25},
        "wsd_decay": 0.2,
    },
}


# ----------------------------------------------------------------------------- statistics
def test_paired_ratio_matches_a_hand_computation():
    num, den = [1.0, 2.0, 3.0, 4.0], [1.1, 1.9, 3.3, 4.4]
    logs = [math.log(a / b) for a, b in zip(num, den, strict=True)]
    m = sum(logs) / 4
    sd = math.sqrt(sum((x - m) ** 2 for x in logs) / 3)
    t975 = 3.182446305284263  # Student t, 3 degrees of freedom, 97.5%
    r = _bench.paired_ratio(num, den)
    assert r["n"] == 4
    assert r["ratio"] == pytest.approx(math.exp(m), rel=1e-12)
    assert r["lo"] == pytest.approx(math.exp(m - t975 * sd / 2), rel=1e-9)
    assert r["hi"] == pytest.approx(math.exp(m + t975 * sd / 2), rel=1e-9)
    same = _bench.paired_ratio([2.0, 3.0], [1.0, 1.5])  # zero spread: zero width
    assert [same[k] for k in ("lo", "ratio", "hi")] == pytest.approx([2.0] * 3, rel=1e-12)
    assert _bench.paired_ratio([1.0, math.inf], [1.0, 1.0])["ratio"] == math.inf
    with pytest.raises(ValueError, match="paired_ratio"):
        _bench.paired_ratio([1.0], [1.0])
    ms = _bench.mean_se([1.0, 2.0, 3.0])
    assert ms["mean"] == 2.0 and ms["se"] == pytest.approx(1 / math.sqrt(3))


def test_a_diverged_seed_is_counted_not_averaged():
    """A run that blew up without overflowing (the benchmark's transformer: 1.7e13) is a
    divergence; the ratio is over the seeds where both lines trained, and the line that diverged
    less often is the better one whatever the ratio says."""
    init = 4.8
    adv = np.array([[init, 2.06], [init, 2.13], [init, 1.7e13], [init, 2.04], [init, 2.04]])
    line = np.array([[init, 2.06], [init, math.inf], [init, 2.57], [init, 2.04], [init, 2.04]])
    da, dl = _bench.diverged(adv), _bench.diverged(line)
    assert da.tolist() == [False, False, True, False, False]
    assert dl.tolist() == [False, True, False, False, False]
    r = _bench.compare(adv[:, -1], line[:, -1], da, dl)
    assert r["n"] == 3 and r["diverged"] == (1, 1)
    ref = _bench.paired_ratio(adv[[0, 3, 4], -1], line[[0, 3, 4], -1])
    assert r["ratio"] == ref["ratio"] and r["better"] is (ref["hi"] < 1)
    never = np.array([[init, 2.3]] * 5)
    worse = _bench.compare(never[:, -1] * 0.5, never[:, -1], [True] + [False] * 4, [False] * 5)
    assert worse["ratio"] == 0.5 and worse["better"] is False  # lower loss, but it diverged
    better = _bench.compare(
        never[:, -1] * 2, never[:, -1], [False] * 5, [False, True] + [False] * 3
    )
    assert better["ratio"] == 2.0 and better["better"] is True
    none = _bench.compare(adv[:, -1], line[:, -1], [True] * 4 + [False], [False] * 5)
    assert math.isnan(none["ratio"]) and none["n"] == 1 and none["better"] is False
    assert _bench.mean_se([])["mean"] == math.inf
    with pytest.raises(ValueError, match="losses must have shape"):
        _bench.diverged([1.0, 2.0])


# ----------------------------------------------------------------------------- grids
@pytest.mark.parametrize("opt", [1e-3, 0.02, 0.1, 0.5, 3.0, 400.0])
def test_grid_extension_never_returns_an_edge_optimum(opt):
    calls = []

    def f(values):  # convex in log rate, diverges above 100 × the optimum
        calls.append(list(values))
        return [math.inf if v > 100 * opt else math.log(v / opt) ** 2 + 1 for v in values]

    r = _bench.tune_grid(f, [0.05, 0.1, 0.2], ratio=2.0, step=2, max_extend=40)
    i = r["values"].index(r["best"])
    assert 0 < i < len(r["values"]) - 1 and not r["at_bound"]
    assert r["best"] / opt < 2**0.5 + 1e-9 and opt / r["best"] < 2**0.5 + 1e-9
    assert r["evaluated"] == 3 + r["extended"] == sum(len(c) for c in calls)
    assert r["values"] == sorted(r["values"])


def test_grid_extension_diverged_bounds_and_give_up():
    # every start diverged: extend downward until a finite, interior best
    r = _bench.tune_grid(
        lambda vs: [math.inf if v > 0.01 else -math.log(v) for v in vs], [1, 2, 4], ratio=2.0
    )
    assert r["best"] <= 0.01 and math.isfinite(r["best_loss"])
    assert 0 < r["values"].index(r["best"]) < len(r["values"]) - 1
    # a monotone objective on a bounded range ends at the bound, recorded
    r = _bench.tune_grid(lambda vs: [-v for v in vs], [0.1, 0.2, 0.4], ratio=2.0, step=1, hi=1.0)
    assert r["best"] == 1.0 and r["at_bound"]
    with pytest.raises(ValueError, match="still at the grid's upper edge"):
        _bench.tune_grid(lambda vs: [-v for v in vs], [1, 2, 4], ratio=2.0, max_extend=4)
    with pytest.raises(ValueError, match="3 distinct"):
        _bench.tune_grid(lambda vs: vs, [1, 2], ratio=2.0)


def test_wsd_tuning_is_interior_in_peak_and_decay():
    def f(peaks, decay):  # optimum at peak 0.3, decay 0.3
        return [math.log(p / 0.3) ** 2 + math.log(decay / 0.3) ** 2 for p in peaks]

    r = _bench.tune_wsd(f, [0.05, 0.1, 0.2], [0.05, 0.1, 0.2], ratio=2.0, min_decay=0.001)
    ds = r["decays"]["values"]
    assert 0 < ds.index(r["decay"]) < len(ds) - 1
    grid = r["per_decay"][f"{r['decay']:.6g}"]
    assert 0 < grid["values"].index(r["best"]) < len(grid["values"]) - 1
    assert 0.2 < r["best"] < 0.45 and 0.2 <= r["decay"] <= 0.4


# ----------------------------------------------------------------------------- budget
def test_pilot_budget_is_enforced():
    plan = [dict(s) for s in _bench.DEFAULT_PILOTS]
    _bench.check_pilot_budget(plan, 100, [400, 1600])  # 4 runs of T/4: allowed
    with pytest.raises(ValueError, match="pilot budget: at most 4 pilot runs"):
        _bench.check_pilot_budget([*plan, {"family": "constant", "lr": 0.5}], 100, [400])
    with pytest.raises(ValueError, match=r"pilot budget: pilot 1 .* at most T/4 = 100"):
        _bench.check_pilot_budget(
            [plan[0], {"family": "cosine", "lr": 1.0, "length": 1.5}], 100, [400, 1600]
        )
    with pytest.raises(ValueError, match="pilot budget"):
        _bench.check_pilot_budget([], 100, [400])
    with pytest.raises(ValueError, match="family"):
        _bench.check_pilot_budget([{"family": "step", "lr": 1.0}], 100, [400])
    # the harness checks before it trains anything
    task = {"name": "lin", "net": LINEAR, "T0": 20, "every": 2, "lr": 0.5, "group": 5}
    bad = {**BENCH, "pilots": plan + plan[:1]}
    with pytest.raises(ValueError, match="pilot budget"):
        _bench.pilots("/nonexistent/never/written", task, bad)
    with pytest.raises(ValueError, match="eval_seeds and tuning_seeds share"):
        _bench.check_seeds({**BENCH, "tuning_seeds": [2, 100]})


def test_schedules_and_runs():
    T = 20
    two = _bench.schedule("two_stage", 1.0, T, at=0.5, drop=0.25)
    assert two[:10].tolist() == [1.0] * 10 and two[10:].tolist() == [0.25] * 10
    w = _bench.schedule("wsd", 1.0, T, decay=0.2)
    assert w[15] == 1.0 and w[-1] == pytest.approx(0.25)  # rfmodel.schedules.wsd, linear decay
    c = _bench.schedule("cosine", 2.0, T)
    assert c[0] == 2.0 and c[-1] < 0.05
    run = _bench.as_run("c", c, np.linspace(1, 0.5, 5), 5, 8)
    assert run.step.tolist() == [0, 5, 10, 15, 20]
    assert run.lr.tolist() == [c[0], c[5], c[10], c[15], c[19]]
    assert _bench.transfer_peak(1.0, 1600, 100) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="family"):
        _bench.schedule("step", 1.0, T)


# ----------------------------------------------------------------------------- tasks
@pytest.mark.slow
@pytest.mark.parametrize("cfg", [TEACHER, CNN], ids=["teacher", "digits_cnn"])
def test_new_tasks_train_learn_and_are_deterministic(cfg):
    task = _nets.load_task(cfg)
    lr = 0.05 if cfg is TEACHER else 0.1
    lrs = np.full((3, 60), lr)
    loss = _nets.train(task, lrs, [0, 0, 1], every=20)
    assert loss.shape == (3, 4) and loss.dtype == np.float64 and np.all(np.isfinite(loss))
    assert np.all(loss[:, -1] < loss[:, 0])
    np.testing.assert_array_equal(loss[0], loss[1])  # same seed: same init and samples
    assert not np.array_equal(loss[0], loss[2])
    again = _nets.train(_nets.load_task(cfg), lrs, [0, 0, 1], every=20)
    np.testing.assert_array_equal(again, loss)  # across calls and loads, bit for bit
    # one seed alone is the same run; a vmap of another width may round float32 sums otherwise
    # (1 ulp at step 60 on an AMD EPYC: the benchmark's Trainer pads every call to one width)
    alone = _nets.train(_nets.load_task(cfg), lrs[:1], [1], every=20)
    np.testing.assert_allclose(alone[0], loss[2], rtol=1e-5)
    assert task["fingerprint"] == _nets.load_task(cfg)["fingerprint"]


def test_teacher_population_loss_and_linear_exact_task():
    t = _nets.load_task(TEACHER)
    assert float(np.var(t["data"]["ey"])) == pytest.approx(1.0, rel=1e-3)  # unit teacher
    assert t["data"]["ex"].shape == (128, 8)
    lin = _nets.load_task(LINEAR)
    lrs = np.stack([np.full(40, 0.5), np.full(40, 100.0)])
    a = _nets.train(lin, lrs, [0, 1], every=10)
    b = _nets.train(lin, lrs, [5, 6], every=10)
    np.testing.assert_array_equal(a, b)  # exact expectation: no seed dependence
    assert a.shape == (2, 5) and a[0, -1] < a[0, 0] and a[1, -1] > 1e100  # past stability
    with pytest.raises(ValueError, match="multiple of every"):
        _nets.train(lin, lrs[:, :35], [0, 1], every=10)
    with pytest.raises(ValueError, match="task must be one of"):
        _nets.load_task({"task": "mnist"})


# ----------------------------------------------------------------------------- the harness
def _echo_cosine(pilots, T):
    """A dummy advice: cosine at the best pilot's peak (the practitioner's cosine_held)."""
    best = min(pilots, key=lambda r: r.loss[-1])
    return {"lr": _bench.schedule("cosine", float(best.lr.max()), T), "predicted_final": 0.01}


def test_harness_end_to_end_on_the_exact_task(tmp_path):
    task = {"name": "lin", "net": LINEAR, "T0": 20, "every": 2, "lr": 0.5, "group": 5}
    advice = {"name": "echo", "fn": _echo_cosine}
    runs, lrs, lengths = _bench.pilots(tmp_path, task, BENCH)
    assert len(runs) == 4 and lengths == [20] * 4 and runs[0].step[-1] == 20
    for T in _bench.horizons(task, BENCH):
        _bench.run_practitioner(tmp_path, task, BENCH, T)
        _bench.run_oracle(tmp_path, task, BENCH, T)
        _bench.run_advised(tmp_path, task, BENCH, T, advice)
        cell = _bench.evaluate_cell(tmp_path, task, BENCH, T, advice)
        L = cell["lines"]
        assert set(L) == set(_bench.LINES)
        r = L["cosine_held"]["ratio"]  # the same schedule on the same seeds: exactly 1
        assert r["ratio"] == r["lo"] == r["hi"] == 1.0
        assert L["advised"]["cost"] == {"runs": 4, "run_steps": 80}
        for f in _bench.ORACLE:
            line = L[f"oracle_{f}"]
            assert line["cost"]["run_steps"] == line["cost"]["runs"] * T
            assert 0 < line["ratio"]["ratio"] < math.inf
        assert cell["prediction_ok"] is (abs(0.01 / L["advised"]["final"]["mean"] - 1) <= 0.03)
    # cached: a rerun loads; a failing advice is recorded, not raised
    broken = {"name": "broken", "fn": lambda runs, T: {"lr": np.ones(3)}}
    _bench.run_advised(tmp_path, task, BENCH, 80, broken)
    cell = _bench.evaluate_cell(tmp_path, task, BENCH, 80, broken)
    assert "advice: 'lr' must be 80" in cell["error"] and "advised" not in cell["lines"]
    suite = _bench.suite_runs(tmp_path, task, BENCH)
    assert [r.name for r in suite["fit"]] == ["constant", "cosine", "two_stage"]
    assert {r.name for r in suite["test"]} == {"constant_80", "cosine_80", "wsd", "wsd_80"}
    assert suite["losses"]["cosine_80"].shape == (2, 41)
    two = next(r for r in suite["fit"] if r.name == "two_stage")
    at = np.minimum(two.step, 19).astype(int)
    np.testing.assert_array_equal(two.lr, suite["lr"]["two_stage"][at])


def test_suite_noise_is_the_seed_means_expected_relative_error():
    rng = np.random.default_rng(0)
    truth = np.linspace(2.0, 1.0, 6)
    draws = truth * (1 + 0.05 * rng.standard_normal((20000, 4, 6)))
    expected = np.mean(np.abs(draws.mean(axis=1) - truth)[:, 1:] / truth[1:])  # Monte-Carlo
    got = np.mean([_bench.suite_noise(d) for d in draws[:2000]])
    assert got == pytest.approx(expected, rel=0.05)  # E|mean - truth|/truth, step 0 left out
    assert _bench.suite_noise(np.ones((3, 5))) == 0.0
    assert math.isnan(_bench.suite_noise(np.ones((1, 5))))  # one seed: no spread to measure
    assert math.isnan(_bench.suite_noise([[1.0, np.inf], [1.0, 1.0]]))
    with pytest.raises(
        ValueError, match=r"losses must have shape \(seeds, points\); got shape \(3,\)"
    ):
        _bench.suite_noise([1.0, 0.5, 0.2])


def _fake_suite(tmp_path, task, blow_up):
    """A saved suite of three seeds with the given (run, seed, final loss) replacements."""
    plan = _bench._suite_plan(task, BENCH)
    arrays, rng = {}, np.random.default_rng(0)
    for name, (_, family, T, kw) in plan.items():
        n = T // task["every"] + 1
        loss = np.linspace(2.0, 1.0, n) * (1 + 0.01 * rng.standard_normal((3, n)))
        arrays[f"{name}_loss"], arrays[f"{name}_lr"] = loss, _bench.schedule(family, 0.5, T, **kw)
    for name, seed, final in blow_up:
        arrays[f"{name}_loss"][seed, -1] = final
    meta = {"sets": {k: p[0] for k, p in plan.items()}, "peak": 0.5, "every": task["every"]}
    meta |= {"seeds": [300, 301, 302], "seconds": 0.0}
    bench = {**BENCH, "suite": {**BENCH["suite"], "seeds": [300, 301, 302]}}
    _bench._stage(tmp_path, task, bench, "suite", lambda: (arrays, meta))
    return arrays, bench


def test_suite_means_leave_out_the_seeds_a_run_diverged_on(tmp_path):
    """A seed that blew up (the transformer at its peak rate: 1e17 without overflowing) would
    dominate the seed mean: each run averages the seeds it trained on; a run that diverged on
    every seed stops the laws stage with its name, before any fit."""
    task = {"name": "lin", "net": LINEAR, "T0": 20, "every": 2, "lr": 0.5, "group": 5}
    arrays, bench = _fake_suite(tmp_path, task, [("cosine", 1, 1e17), ("wsd_80", 2, np.inf)])
    s = _bench.suite_runs(tmp_path, task, bench, compute=False)
    assert s["trained"]["cosine"].tolist() == [True, False, True]
    assert s["trained"]["wsd_80"].tolist() == [True, True, False]
    assert all(s["trained"][n].all() for n in ("constant", "two_stage", "wsd", "cosine_80"))
    runs = {r.name: r for r in s["fit"] + s["test"]}
    np.testing.assert_allclose(runs["cosine"].loss, arrays["cosine_loss"][[0, 2]].mean(0))
    np.testing.assert_allclose(runs["wsd_80"].loss, arrays["wsd_80_loss"][:2].mean(0))
    np.testing.assert_allclose(runs["constant"].loss, arrays["constant_loss"].mean(0))
    assert s["losses"]["cosine"].shape == (3, 11)  # every seed kept
    lost = {"name": "lost", **{k: v for k, v in task.items() if k != "name"}}
    blow = [("wsd", i, np.inf) for i in range(3)]
    _, bench = _fake_suite(tmp_path, lost, blow)
    with pytest.raises(ValueError, match=r"suite of 'lost': run\(s\) \['wsd'\] diverged on every"):
        _bench.run_laws(tmp_path, lost, bench)


@pytest.mark.slow  # the three fits: ~6 s
def test_laws_stage_and_its_table_on_the_exact_task(tmp_path):
    from rfmodel.experiments import advice

    task = {"name": "lin", "net": LINEAR, "T0": 20, "every": 1, "lr": 0.5, "group": 5}
    arrays, meta = _bench.run_laws(tmp_path, task, BENCH)  # 60 points: MPL needs 35
    assert set(meta["noise"]) == {"constant_80", "cosine_80", "wsd", "wsd_80"}
    assert all(v < 1e-12 for v in meta["noise"].values())  # exact curves: every seed the same
    assert meta["diverged"] == {}
    # the predictions behind the metrics: each model's prede recomputes from them
    for run in meta["noise"]:
        st, loss = arrays[f"step__{run}"], arrays[f"loss__{run}"]
        assert st[0] >= 1 and st.shape == loss.shape == (80 if run.endswith("80") else 20,)
        for m in ("rf", "mpl", "annealing"):
            row = next(r for r in meta["rows"] if r["model"] == m and r["run"] == run)
            err = np.mean(np.abs(arrays[f"pred__{m}__{run}"] - loss) / loss)
            assert err == pytest.approx(row["prede"], rel=1e-9)
    means = {r["model"]: r for r in meta["rows"] if r["run"] == "mean"}
    assert set(means) == {"rf", "mpl", "annealing"}
    assert means["rf"]["prede"] < 0.01 < means["annealing"]["prede"]  # the exact model wins
    again = _bench.run_laws(tmp_path, task, BENCH)[1]  # cached
    assert again["rows"] == meta["rows"]
    cfg = {"nets": [task], "bench": BENCH}
    laws = advice.laws_summary(cfg, tmp_path)
    assert [t["task"] for t in laws] == ["lin"] and laws[0]["noise"] < 1e-12
    goals = advice._laws_verdicts(laws)
    assert goals["rf_best"] == ["lin"] and goals["rf_best_every_task"]
    assert goals["rf_mean_prede"] == pytest.approx(means["rf"]["prede"])
    assert goals["noise_mean_prede"] < 1e-12  # exact curves: a perfect predictor scores 0
    text = advice._laws_readme({"laws": laws, "laws_goals": goals})
    assert "| lin | 0 | **" in "\n".join(text) and "1/1 tasks (lin)" in text[-1]
    assert "the mean of the suite's 2 seeds (" in text[1] and ": none did)" in text[1]
    # logged every 2 updates: 30 points fit the annealing law (20 needed), not MPL (35)
    short = {**task, "name": "short", "every": 2}
    meta = _bench.run_laws(tmp_path, short, BENCH)[1]
    assert set(meta["skipped"]) == {"mpl"} and "needs at least 35" in meta["skipped"]["mpl"]
    assert not any(
        k.startswith("pred__mpl__") for k in _bench.load_stage(tmp_path, short, BENCH, "laws")[0]
    )
    assert {r["model"] for r in meta["rows"]} == {"rf", "annealing"}
    laws = advice.laws_summary({"nets": [short], "bench": BENCH}, tmp_path)
    text = advice._laws_readme({"laws": laws, "laws_goals": advice._laws_verdicts(laws)})
    assert "| short | 0 | **" in "\n".join(text) and "| n/a |" in "\n".join(text)
