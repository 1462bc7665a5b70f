"""rfmodel figures: the quick pipeline end to end, its cache, and the experiment helpers."""

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rfmodel import cli
from rfmodel.experiments import EXPERIMENTS, load_experiment
from rfmodel.figures import regenerate

EXPECTED = {
    "optimal_schedules_easy.png",
    "optimal_schedules_hard.png",
    "hard_perstep_vs_piecewise.png",
    "exponent_drift.png",
    "baselines_easy.png",
    "baselines_hard.png",
    "phase_diagram.png",
    "phase_diagram_agreement.png",
    "long_step_pattern.png",
    "long_horizons.png",
    "lr_transfer.png",
    "horizon_transfer.png",
    "batch_schedules_shape.png",
    "batch_schedules_degeneracy.png",
    "batch_schedules_steps.png",
    "compute_optimal_frontier.png",
    "compute_optimal_loss.png",
    "compute_optimal_multiplier.png",
    "momentum_schedules.png",
    "momentum_gain.png",
    "advice_ratios.png",
    "advice_curves_teacher.png",
    "advice_laws.png",
    "curriculum_ratios.png",
    "curriculum_optimal.png",
    "preconditioning_phase.png",
    "preconditioning_exponents.png",
}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One quick regeneration into a temporary folder (computes everything: minutes; the slow
    tier)."""
    out = tmp_path_factory.mktemp("figs")
    t0 = time.perf_counter()
    res = regenerate(out=out, quick=True, workers=2, progress=False, log=None)
    return out, res, time.perf_counter() - t0


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """A quick regeneration of two experiments (--only): the pipeline and its cache, seconds."""
    out = tmp_path_factory.mktemp("figs2")
    only = ["long_step_pattern", "phase_diagram"]
    res = regenerate(out=out, quick=True, workers=2, progress=False, log=None, experiments=only)
    return out, res


def test_only_writes_its_figures_and_saves_its_results(two):
    out, res = two
    assert set(res["figures"]) == {f for f in EXPECTED if f.startswith(("long_step", "phase"))}
    assert (out / "data" / "phase").is_dir() and not (out / "README.md").exists()


@pytest.mark.slow  # computes every experiment (quick): minutes
def test_quick_writes_every_figure_and_the_table(quick):
    out, res, wall = quick
    assert set(res["figures"]) == EXPECTED
    for f in EXPECTED:
        assert (out / f).stat().st_size > 10_000  # a real PNG, not an empty canvas
        assert (out / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    readme = (out / "README.md").read_text()
    for needle in (
        "| quantity |",
        "ξ: η*(t = 0.2T)",
        "δ: η* ∝ (1 − t/T)^δ",
        "optimal loss L*(T)",
        "loss with the best constant η",
        "annealing length",
        "plateau η*",
        "phase diagram: optimal-loss exponent",
        "## Phase diagram",
        "## Baseline families",
        "K sensitivity",
        "Long-step pattern",
        "## Batch-size schedules",
        "## Compute-optimal scaling",
        "## Momentum schedules",
        "## Data-quality curricula",
        "## Preconditioned SGD",
    ):
        assert needle in readme, needle
    for f in EXPECTED:
        assert f"[{f}]({f})" in readme
    assert res["computed"]


@pytest.mark.slow
def test_quick_numbers_are_sane(quick):
    out, res, _ = quick
    s = json.loads((out / "data" / "summary.json").read_text())["summaries"]
    easy = s["optimal_schedules"]["chains"]["easy_main"]
    hard = s["optimal_schedules"]["chains"]["hard_main"]
    # Loss falls with T in both phases, at roughly the predicted rate even at small T.
    assert 0.55 < easy["loss_fit"]["top"]["exponent"] < 0.75
    assert 0.15 < hard["loss_fit"]["top"]["exponent"] < 0.30
    # Easy: the peak rate falls with T; hard: it does not, and sits just under η_c.
    assert easy["xi_fit"]["top"]["exponent"] > 0.3
    assert abs(hard["xi_fit"]["top"]["exponent"]) < 0.05
    assert 0.85 < hard["stats"][-1]["plateau"] / hard["eta_critical"] < 1.0
    # Optimal beats every tuned family at every T.
    for ph in ("easy", "hard"):
        for fam, e in s["baselines"]["phases"][ph]["families"].items():
            assert min(e["ratio"]) > 1 - 1e-6, fam
    pd = s["phase_diagram"]
    assert pd["n_done"] == pd["n_points"] == 9
    co = s["compute_optimal"]
    assert co["missing"] == 0 and len(co["cases"]) == 4
    for c in co["cases"]:
        assert c["max_projected_gradient"] < 1e-4 and not c["not_kkt"]  # KKT points
        # the optimum is never worse than the best constant rate or the tuned schedule
        g = {k: np.array(c["grids"][k]) for k in ("optimal", "constant", "practitioner")}
        assert np.all(g["optimal"] <= g["constant"] * (1 + 1e-6))
        assert np.all(g["optimal"] <= g["practitioner"] * (1 + 1e-6))


@pytest.mark.slow  # redraws every figure; test_cli_figures_uses_the_cache checks the cache
def test_second_run_reuses_the_cache(quick):
    out, _, first = quick
    before = {p: p.stat().st_mtime_ns for p in (out / "data").rglob("*.npz")}
    t0 = time.perf_counter()
    res = regenerate(out=out, quick=True, workers=2, progress=False, log=None)
    assert res["computed"] == [] and res["compute_seconds"] == 0.0
    assert time.perf_counter() - t0 < first
    after = {p: p.stat().st_mtime_ns for p in (out / "data").rglob("*.npz")}
    assert before == after  # nothing rewritten
    assert set(res["figures"]) == EXPECTED


def test_cli_figures_uses_the_cache(two, capsys):
    out, _ = two
    # One experiment (--only): the CLI path to the same cache, without redrawing every figure.
    assert cli.main(["figures", "--quick", "--out", str(out), "--only", "phase_diagram"]) == 0
    assert "0 to compute" in capsys.readouterr().out


def test_changed_configuration_is_stale(two):
    out, _ = two
    pd = load_experiment("phase_diagram")
    cfg = pd.config(True)
    assert all(t.done for t in pd.tasks(cfg, out / "data"))
    cfg2 = {**cfg, "Ts": cfg["Ts"] + [800]}
    assert not any(t.done for t in pd.tasks(cfg2, out / "data"))
    ls = load_experiment("long_step_pattern")
    c = ls.config(True)
    assert all(t.done for t in ls.tasks(c, out / "data"))
    c["problem"] = {**c["problem"], "sigma": 0.31}
    assert not any(t.done for t in ls.tasks(c, out / "data"))


def test_quick_refuses_to_overwrite_full_figures(tmp_path):
    (tmp_path / "README.md").write_text("<!-- rfmodel figures: full -->\n# Figures\n")
    with pytest.raises(ValueError, match="out"):
        regenerate(out=tmp_path, quick=True, progress=False, log=None)
    with pytest.raises(ValueError, match="experiments"):
        regenerate(out=tmp_path / "x", quick=True, experiments=["nope"], log=None)


def test_experiment_helpers():
    common = load_experiment("_common")
    assert common.controls_for(800, {"per_step_max": 1600, "K": 512}) == 800
    assert common.controls_for(3200, {"per_step_max": 1600, "K": 512}) == 512
    assert common.controls_for(400, {"per_step_max": 0, "K": 256, "steps_per_control": 4}) == 100
    assert common.controls_for(400, None) is None
    c = common.segment_centers(10, 5)
    np.testing.assert_allclose(c, (np.arange(5) * 2 + 1) / 10)  # (t + ½)/T averaged over pairs
    x = np.linspace(0, 1, 11)
    y = 1 - x
    assert math.isclose(common.interp_crossing(x, y, 0.25, 0.0), 0.75)
    assert math.isnan(common.interp_crossing(x, y, -1.0, 0.0))


def test_committed_results_regenerate_the_figures_without_computing():
    """The repository's figures/data holds every result `rfmodel figures` needs, found by this
    machine's keys: the data fingerprints of the generated tasks do not hash last bits that
    differ between CPUs (they did, and a machine of another CPU retrained 8 tasks). The
    committed results were computed on Python 3.11."""
    data = Path(__file__).resolve().parents[1] / "figures" / "data"
    if not (data / "summary.json").exists():
        pytest.skip("figures/data is not in this checkout")
    todo = []
    for name in EXPERIMENTS:
        mod = load_experiment(name)
        todo += [t.name for t in mod.tasks(mod.config(False), data) if not t.done]
    if sys.version_info[:2] != (3, 11):  # chars' corpus is this Python's standard library
        todo = [t for t in todo if not t.startswith("advice/chars/")]
    assert todo == []
