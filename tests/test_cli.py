"""The rfmodel command: main job, simulate, and error messages."""

import json

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


def test_bad_input_is_a_clear_error(tmp_path, capsys):
    assert main(["optimize", "--a", "0.9", "--out", str(tmp_path)]) == 2
    assert "a must be a finite number > 1" in capsys.readouterr().err
    assert main(["simulate", "--eta", "5.0", "--out", str(tmp_path)]) == 2
    assert "beyond the stability bound" in capsys.readouterr().err
    assert main(["optimize", "--families", "cosine,bogus", "--out", str(tmp_path)]) == 2
    assert "--families" in capsys.readouterr().err
