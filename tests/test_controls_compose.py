"""The composed solver (docs/theory.md §6): controls × evaluators × one solver. Every combination
of controls and rate options either reaches a KKT point on a path or is refused naming the
control and the path; the pieces composed by hand give optimize_schedule's result bit for bit; a
control the library does not know plugs into the solver; the faults of issue 21 (items 6, 7)."""

import json
import math

import numpy as np
import pytest

from rfmodel import Problem, loss_curve
from rfmodel.cli import main
from rfmodel.control import (
    Batch,
    Control,
    Rate,
    best_constant_rate,
    optimize_schedule,
    project_budget,
)
from rfmodel.control.controls import rate_ceiling
from rfmodel.control.solver import Objective, choose_evaluator, initial_values, minimize
from rfmodel.dynamics import final_losses
from rfmodel.dynamics.evaluators import Evaluator, SegmentPropagation, SGDSteps
from rfmodel.dynamics.segments import uniform_lengths

HARD = Problem(a=1.5, b=2.5, sigma=0.3, n_modes=40, batch=2)
EASY = Problem(a=2.5, b=1.2, sigma=0.5, n_modes=40, batch=4)
T, K = 80, 8

COMBOS = [("eta",), ("eta", "batch"), ("eta", "momentum"), ("eta", "batch", "momentum")]


def _settings(names, steps=T):
    kw = {"optimize": names}
    if "batch" in names:
        kw.update(samples=2.0 * steps, batch_max=8.0)
    return kw


@pytest.mark.parametrize("names", COMBOS, ids="+".join)
@pytest.mark.parametrize("monotone", [False, True], ids=["free", "monotone"])
def test_every_combination_on_the_step_path_is_a_kkt_point(names, monotone):
    """Each control combination, with or without the monotone rate, on the step path: a KKT
    point (every control's residual), monotone rates non-increasing, the budget held, the loss
    the recursion's; the monotone optimum is a restriction of the free one."""
    res = optimize_schedule(
        HARD, T, controls=K, method="steps", monotone=monotone, **_settings(names)
    )
    assert res.converged and res.projected_gradient <= 1e-4
    if names != ("eta",):
        assert set(res.kkt) == set(names) and max(res.kkt.values()) <= 1e-4
    if monotone:
        assert np.all(np.diff(res.controls) <= 0)
        free = optimize_schedule(HARD, T, controls=K, method="steps", **_settings(names))
        assert res.loss >= free.loss * (1 - 1e-9)
    if "batch" in names:
        assert abs(res.budget_residual) <= 1e-9 * 2.0 * T
    ref = loss_curve(HARD, res.etas, res.batches, res.betas)[-1]
    np.testing.assert_allclose(ref, res.loss, rtol=1e-12)


@pytest.mark.parametrize("names", COMBOS[1:], ids="+".join)
def test_the_segment_path_refuses_other_controls_by_name(names):
    """method='segments' differentiates the rate alone: other controls are refused naming the
    first of them and the path, before any work; 'auto' takes the step path for them."""
    other = names[1]
    with pytest.raises(
        ValueError, match=rf"the '{other}' control is not available on the segments"
    ):
        optimize_schedule(HARD, 200_000, controls=4, method="segments", **_settings(names, 200_000))
    with pytest.raises(ValueError, match="method='segments'"):
        optimize_schedule(HARD, T, controls=K, method="segments", **_settings(names))
    auto = choose_evaluator(HARD, uniform_lengths(200_000, 4), names, {}, "auto")
    assert auto.path == "steps" and set(names) <= auto.differentiates
    alone = choose_evaluator(HARD, uniform_lengths(200_000, 4), ("eta",), {}, "auto")
    assert alone.path == "segments"


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        (dict(betas=np.full(T, 0.5)), r"betas \(fixed per-step values\).*'momentum'.*segments"),
        (dict(batches=np.full(T, 2.0)), r"batches \(fixed per-step values\).*'batch'.*segments"),
    ],
)
def test_the_segment_path_refuses_fixed_inputs_by_name(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        optimize_schedule(HARD, T, controls=K, method="segments", **kwargs)


@pytest.mark.slow
def test_monotone_rate_on_the_segment_path_matches_the_step_path():
    """The rate options compose with either path: the same monotone optimum on both."""
    a = optimize_schedule(EASY, 2000, controls=8, monotone=True, method="steps")
    b = optimize_schedule(EASY, 2000, controls=8, monotone=True, method="segments")
    assert a.converged and b.converged and b.config["solved_on"] == "segments"
    assert math.isclose(a.loss, b.loss, rel_tol=1e-9)
    np.testing.assert_allclose(a.controls, b.controls, rtol=1e-4)


def test_composed_by_hand_is_optimize_schedule_bit_for_bit():
    """The composition of the solver module's docstring: the same schedule, loss and
    evaluation count as optimize_schedule(..., optimize=("eta", "batch"), samples=800)."""
    p = Problem(a=2.5, b=1.2, sigma=0.5, n_modes=100, batch=4)
    ref = optimize_schedule(p, 200, controls=10, optimize=("eta", "batch"), samples=800)
    ev = SGDSteps(p, uniform_lengths(200, 10), wrt=("eta", "batch"))
    controls = [Rate(p.eta_mode_bound(800 - 199)), Batch(800, 1, 800 - 199)]
    start, n_start = initial_values(controls, ev, constant=lambda fixed: ev.on([200], fixed))
    objective = Objective(ev, controls)
    values, stop = minimize(objective, controls, start)
    np.testing.assert_array_equal(values["eta"], ref.controls)
    np.testing.assert_array_equal(ev.expand(values["batch"]), ref.batches)
    assert stop.nit == ref.iterations
    assert n_start + objective.calls + 1 == ref.evaluations  # + the one at the optimum


@pytest.mark.parametrize("wrt", [("eta",), ("eta", "batch")])
def test_evaluator_gradients_match_finite_differences(wrt, x64):
    """∂ log L(T)/∂(η_j, m_j) of the step evaluator on an uneven grid, against central
    differences; the segment evaluator agrees with it on the same grid."""
    lengths = np.array([3, 10, 27, 40])
    ev = SGDSteps(EASY, lengths, wrt=wrt)
    vals = {"eta": np.array([0.9, 0.6, 0.3, 0.1])}
    if "batch" in wrt:
        vals["batch"] = np.array([2.0, 4.0, 6.0, 3.0])
    v, grads, curve = ev(vals)
    assert curve.shape == (lengths.sum() + 1,) and math.isclose(math.log(curve[-1]), v)
    for name, u in vals.items():
        for j in range(len(u)):
            h = 1e-6 * u[j]
            up, dn = {k: x.copy() for k, x in vals.items()}, {k: x.copy() for k, x in vals.items()}
            up[name][j] += h
            dn[name][j] -= h
            fd = (ev(up)[0] - ev(dn)[0]) / (2 * h)
            assert abs(fd - grads[name][j]) <= 1e-6 * max(1.0, abs(fd)), (name, j)
    if wrt == ("eta",):
        sv, sg, scurve = SegmentPropagation(EASY, lengths)(vals)
        assert math.isclose(sv, v, rel_tol=1e-12)
        np.testing.assert_allclose(sg["eta"], grads["eta"], rtol=1e-8)
        np.testing.assert_allclose(scurve, curve[np.concatenate([[0], np.cumsum(lengths)])])


def test_evaluators_refuse_what_they_do_not_differentiate():
    with pytest.raises(ValueError, match="'momentum' control is not available on the steps"):
        SGDSteps(EASY, [T], wrt=("eta", "momentum"))
    with pytest.raises(ValueError, match="fixed per-step 'batch'.*segments"):
        SegmentPropagation(EASY, [T], fixed={"batch": np.full(T, 2.0)})


# --------------------------------------------------------------------------- a new control
class _Weights(Evaluator):
    """A toy path: f = Σ_j n_j (w_j − c_j)² / T + (η − 0.3)² over averaging weights w on the
    simplex Σ_j n_j w_j = 1 and one rate, with its exact gradient."""

    path = "toy"
    differentiates = frozenset({"eta", "weights"})
    target = np.array([0.5, 0.1, 0.9, 0.2])

    def __call__(self, values):
        w, eta = values["weights"], values["eta"]
        r = w - self.target
        v = float(self.n @ r**2) / self.T + float(np.sum((eta - 0.3) ** 2))
        return v, {"weights": 2 * self.n * r / self.T, "eta": 2 * (eta - 0.3)}, np.array([1.0, v])


def test_a_new_control_plugs_into_the_solver():
    """A control the solver has never heard of (weights with a budget), through the generic
    Control and an evaluator giving its gradient: the solver holds the budget exactly and
    reaches the KKT point of the equality-constrained quadratic (w_j = c_j − ν/2, clipped)."""
    ev = _Weights(EASY, [10, 20, 30, 40], wrt=("eta", "weights"))
    weights = Control("weights", 1e-4, 1.0, log=True, total=1.0, kkt_log=True)
    controls = [Rate(1.0, floor=math.log(1e-6)), weights]
    start = {"eta": np.full(4, 0.1), "weights": project_budget(np.ones(4), ev.n, 1.0, 1e-4, 1.0)}
    values, stop = minimize(Objective(ev, controls), controls, start, tol=1e-12)
    w = values["weights"]
    assert abs(ev.n @ w - 1.0) <= 1e-12 and stop.success
    np.testing.assert_allclose(values["eta"], 0.3, rtol=1e-6)
    # KKT: 2 (w_j − c_j)/T + ν = 0 for every free weight, i.e. w = c − ν T/2 with Σ n w = 1
    free = w > 2e-4
    nu_t = np.mean((ev.target - w)[free])
    np.testing.assert_allclose(w[free], ev.target[free] - nu_t, atol=1e-6)


# --------------------------------------------------------------------------- issue 21, items 6, 7
def test_huge_eta_max_is_capped_and_never_exports_a_diverging_optimum():
    """Issue 21 item 6: eta_max=1e300 gave loss inf (rates of 9e286). Now η_max is capped at
    2m/((m+1)λ_min), where one step grows every mode, and the solve is the capped one."""
    p = Problem(a=2.5, b=1.2, sigma=0.5, n_modes=50, batch=4)
    cap = rate_ceiling(p)
    for eta_max in (1e30, 1e300):
        res = optimize_schedule(p, 50, eta_max=eta_max)
        assert res.converged and math.isfinite(res.loss) and res.loss < p.initial_loss
        assert res.config["eta_max"] == cap and res.config["eta_max_given"] == eta_max
        assert np.all(res.etas <= cap)
    same = optimize_schedule(p, 50, eta_max=cap)
    np.testing.assert_array_equal(same.etas, res.etas)
    assert "eta_max_given" not in same.config
    # the cap is harmless: a step at a rate >= it does no better than a step at η = 0
    rng = np.random.default_rng(1)
    etas = rng.uniform(0.05, 0.5, 50)
    for t in (0, 17, 49):
        for eta in (cap, 3 * cap):
            big, zero = etas.copy(), etas.copy()
            big[t], zero[t] = eta, 0.0
            assert loss_curve(p, zero)[-1] <= loss_curve(p, big)[-1]


def test_cli_huge_eta_max_writes_a_finite_optimum(tmp_path):
    out = tmp_path / "run"
    argv = ["optimize", "--T", "50", "--n-modes", "50", "--eta-max", "1e300", "--families",
            "constant", "--quiet", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    table = {
        r["schedule"]: r["loss"] for r in json.loads((out / "summary.json").read_text())["table"]
    }
    assert math.isfinite(table["optimal"]) and table["optimal"] <= table["constant"]


NOISY = [
    Problem(a=2.5, b=1.2, sigma=2.0, n_modes=200, batch=4),
    Problem(a=2.5, b=1.2, sigma=3.0, n_modes=100, batch=4),
    Problem(a=1.0000001, b=1.5, sigma=0.5, n_modes=10**15, batch=4),
]


@pytest.mark.parametrize(
    "p",
    [*NOISY[:2], pytest.param(NOISY[2], marks=pytest.mark.slow)],
    ids=["sigma2", "sigma3", "a1"],
)
def test_noisy_problems_start_where_a_rate_lowers_the_loss(p):
    """Issue 21 item 7: η_c/2 raises L(T) here and the solve was refused blaming eta_max. The
    start is now searched downward (4× apart) to a rate that lowers L(T); the optimum and the
    joint (η, m) optimum are KKT points below L(0), and the best constant rate beats a grid."""
    T = 200
    eta_c = p.eta_critical()
    assert loss_curve(p, np.full(T, 0.5 * eta_c))[-1] > p.initial_loss  # the old start
    res = optimize_schedule(p, T, controls=10)
    assert res.converged and res.loss < p.initial_loss
    joint = optimize_schedule(p, T, controls=10, optimize=("eta", "batch"), samples=4.0 * T)
    assert joint.converged and joint.loss < p.initial_loss
    eta = best_constant_rate(p, T)
    grid = np.geomspace(1e-5, 0.5, 121) * eta_c
    losses = final_losses(p, np.repeat(grid[:, None], T, axis=1))
    assert loss_curve(p, np.full(T, eta))[-1] <= np.nanmin(losses) * (1 + 1e-6)


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        (  # no rate the solver can represent lowers L(T): refused, naming what the user gave
            dict(problem=Problem(a=2.5, b=1.2, sigma=1e100, n_modes=50, batch=4)),
            r"eta_max \(default 1.6.*no constant rate.*sigma=1e\+100",
        ),
        (
            dict(problem=EASY, eta_max=1e-300),
            r"eta_max=1e-300: no constant rate.*useful range of eta_max is up to the per-step",
        ),
    ],
)
def test_refused_only_when_no_rate_lowers_the_loss(kwargs, msg):
    p = kwargs.pop("problem")
    with pytest.raises(ValueError, match=msg):
        optimize_schedule(p, 50, **kwargs)


def test_cli_noisy_problem_is_optimized(tmp_path):
    """``rfmodel optimize --sigma 2`` exited 2 blaming eta_max; now it writes the optimum."""
    out = tmp_path / "run"
    argv = ["optimize", "--sigma", "2", "--T", "300", "--n-modes", "200", "--controls", "20",
            "--families", "constant", "--quiet", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    table = {
        r["schedule"]: r["loss"] for r in json.loads((out / "summary.json").read_text())["table"]
    }
    assert table["optimal"] < table["constant"] < 1.34


_H = dict(a=1.5, b=2.5, sigma=0.5, batch=4)
_HM = dict(a=1.5, b=2.5, sigma=0.0, n_modes=200, batch=1)


@pytest.mark.parametrize(
    "problem, kwargs, loss",
    [
        (dict(**_H, n_modes=300), dict(T=400, controls=40), 0.385009388673393),
        (dict(**_H, n_modes=300), dict(T=400, controls=40, monotone=True), 0.38501080121312664),
        (
            dict(**_H, n_modes=300),
            dict(T=2000, controls=20, grid="log", method="steps"),
            0.23682342699837639,
        ),
        (
            dict(a=2.5, b=1.2, sigma=0.5, n_modes=100, batch=4),
            dict(T=200, controls=10, optimize=("eta", "batch"), samples=800),
            0.013337306278394223,
        ),
        (_HM, dict(T=300, controls=10, betas=np.full(300, 0.5)), 0.49703925481807854),
        (
            _HM,
            dict(
                T=300,
                controls=10,
                optimize=("momentum", "batch", "eta"),
                samples=600.0,
                batch_max=8,
            ),
            0.3872586934440013,
        ),
    ],
    ids=["rate", "monotone", "log-grid", "batch", "fixed-betas", "all-three"],
)
def test_results_of_the_solver_before_the_composition(problem, kwargs, loss):
    """The optima of the two-path solver this one replaced (commit 166addc), recorded before the
    change: the same L(T) (bit for bit on the machine that recorded them)."""
    kwargs = dict(kwargs)
    res = optimize_schedule(Problem(**problem), kwargs.pop("T"), **kwargs)
    assert res.converged
    assert math.isclose(res.loss, loss, rel_tol=1e-10)
