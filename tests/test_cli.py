"""The rfmodel command: main job, simulate, and error messages."""

import json

import numpy as np
import pytest

from rfmodel.cli import main


def test_optimize_main_job(tmp_path, capsys):
    rc = main(
        [
            "optimize",
            "--T",
            "120",
            "--n-modes",
            "80",
            "--families",
            "constant,linear",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "phase: easy" in out and "optimal" in out and "linear" in out
    for f in ("optimal.npz", "optimal.json", "table.csv", "summary.json", "optimize.png"):
        assert (tmp_path / f).exists(), f
    summary = json.loads((tmp_path / "summary.json").read_text())
    table = {r["schedule"]: r["loss"] for r in summary["table"]}
    assert table["optimal"] < table["linear"] and table["optimal"] < table["constant"]


@pytest.mark.slow
def test_simulate(tmp_path, capsys):
    rc = main(
        [
            "simulate",
            "--T",
            "60",
            "--n-modes",
            "30",
            "--seeds",
            "32",
            "--schedule",
            "cosine",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    meta = json.loads((tmp_path / "simulation.json").read_text())
    assert meta["max_abs_z"] < 6 and (tmp_path / "simulation.png").exists()
    rc = main(
        [
            "simulate",
            "--T",
            "40",
            "--n-modes",
            "60",
            "--features",
            "20",
            "--seeds",
            "16",
            "--out",
            str(tmp_path / "rf"),
        ]
    )
    assert rc == 0 and (tmp_path / "rf" / "simulation.png").exists()


def _run(argv, capsys):
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse: a malformed flag
        rc = e.code
    return rc, capsys.readouterr()


def test_bad_input_is_a_clear_error(tmp_path, capsys):
    rc, cap = _run(["optimize", "--a", "0.9", "--out", str(tmp_path)], capsys)
    assert rc == 2 and "argument --a: must be a finite number > 1" in cap.err
    rc, cap = _run(["simulate", "--eta", "5.0", "--out", str(tmp_path)], capsys)
    assert rc == 2 and "beyond the stability bound" in cap.err
    rc, cap = _run(["optimize", "--families", "cosine,bogus", "--out", str(tmp_path)], capsys)
    assert rc == 2 and "--families" in cap.err


def test_every_flag_has_help_and_families_are_listed():
    from rfmodel.cli import build_parser
    from rfmodel.schedules import FAMILIES, OPTAX_FAMILIES

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        for action in p._actions:
            assert action.help, f"rfmodel {name} {action.option_strings} has no help"
        text = p.format_help()
        assert "--quiet" in text, name
    text = sub.choices["optimize"].format_help().replace("\n", " ").replace(" ", "")
    for fam in [*FAMILIES, *OPTAX_FAMILIES]:
        assert fam.replace(" ", "") in text, fam
    sim = sub.choices["simulate"].format_help()
    for sched in ("constant", "cosine", "linear", "wsd", "power_law"):
        assert f"{sched}:" in sim
    figs = parser.parse_args(["figures", "--ray"])
    assert figs.ray == "" and parser.parse_args(["figures", "--ray", "auto"]).ray == "auto"
    assert parser.parse_args(["figures"]).ray is None


@pytest.mark.slow
def test_hard_phase_default_is_smooth_and_per_step_is_one_flag_away(tmp_path, capsys, monkeypatch):
    """Hard phase: the default exports K = min(T, 100) controls (smooth); the table also shows
    the per-step long-step optimum and what it costs; run folders never collide; --quiet."""
    monkeypatch.chdir(tmp_path)
    base = ["optimize", "--a", "1.5", "--b", "2.5", "--T", "150", "--n-modes", "60"]
    base += ["--families", "constant", "--quiet"]
    assert main(base) == 0
    out = capsys.readouterr()
    assert "K=100, exported" in out.out and "optimal, per step" in out.out
    assert "--per-step" in out.out and "it/s" not in out.err  # quiet: no progress bars
    assert main([*base, "--per-step", "--no-compare"]) == 0
    capsys.readouterr()
    assert main([*base, "--sigma", "0.3", "--monotone"]) == 0
    text = capsys.readouterr().out
    assert "K=100, monotone, exported" in text and "optimal, K=100 " in text
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 3 and all(r.name.startswith("optimize_hard_a1.5_b2.5_T150_") for r in runs)
    by_cfg = {}
    for r in runs:
        summary = json.loads((r / "summary.json").read_text())
        by_cfg[(summary["config"]["controls"], summary["config"]["monotone"])] = summary
        summary["dir"] = r
    default = by_cfg[(100, False)]
    assert default["optimal"]["config"]["controls"] == 100
    per_step = by_cfg[(None, False)]
    assert per_step["optimal"]["config"]["controls"] is None
    # the table states the cost of each choice: per step is a little better, K is smooth
    rows = {r["schedule"]: r for r in default["table"]}
    assert rows["optimal, per step"]["loss"] <= rows["optimal"]["loss"] * (1 + 1e-9)
    u = np.load(by_cfg[(100, True)]["dir"] / "optimal.npz")["controls"]
    assert np.all(np.diff(u[int(np.argmax(u)) :]) <= 1e-12 * u.max())  # non-increasing
    for r in runs:
        for f in r.iterdir():
            assert f.stat().st_mode & 0o044 == 0o044, f  # readable by others


def test_pilot_writes_the_plan_in_the_users_units_or_relative(tmp_path, capsys):
    """`rfmodel pilot --T T [--budget P]` (the issue's interface) plans peaks relative to the usual
    rate; --lr writes them in the user's units; every pilot is T/4 steps; a bad --budget exits 2
    naming the flag."""
    import csv

    def plan(*argv):
        out = tmp_path / "_".join(argv)
        assert main(["pilot", "--T", "2000", *argv, "--out", str(out)]) == 0
        assert {p.name for p in out.iterdir()} == {
            "pilots.csv",
            "pilots.json",
            "pilot_schedules.csv",
        }
        with open(out / "pilots.csv") as f:
            return {r["name"]: (float(r["peak"]), int(r["steps"])) for r in csv.DictReader(f)}

    rel = plan()
    assert {k: round(v[0], 6) for k, v in rel.items()} == {
        "cosine_lr/3": 0.333333,
        "cosine_lr": 1.0,
        "cosine_3lr": 3.0,
        "constant_lr": 1.0,
    }
    assert {v[1] for v in rel.values()} == {500}
    abs_ = plan("--lr", "0.1", "--budget", "3")
    assert set(abs_) == {"cosine_lr", "cosine_3lr", "constant_lr"}
    assert abs_["cosine_3lr"][0] == pytest.approx(0.3)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["pilot", "--T", "2000", "--budget", "5", "--out", str(tmp_path / "x")])
    assert e.value.code == 2 and "--budget" in capsys.readouterr().err
