"""Faults and bad input: interrupts stop cleanly, a damaged cache never crashes or lies, every
bad input is named (each case here failed on the code before these fixes)."""

import math
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from rfmodel import Problem
from rfmodel.cli import main
from rfmodel.control import optimize_schedule, optimize_schedules
from rfmodel.dynamics import final_losses
from rfmodel.results import DamagedResultWarning, load_result
from rfmodel.schedules import to_optax

psutil = pytest.importorskip("psutil")
ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- interrupts
JOBS = """
import os, time
import numpy as np
from rfmodel.results import save_result

def work(path, seconds):
    open(path + ".started", "w").close()
    time.sleep(seconds)
    save_result(path, {"x": np.arange(3.0)}, {"seconds": seconds}, config={"path": path})
    return path
"""

DRIVER = """
import sys
from rfmodel.results import load_valid
from rfmodel.runner import Interrupted, Task, run_tasks

d, long = sys.argv[1], float(sys.argv[2])
spec = [("quick0", 0.1, 10.0), ("quick1", 0.1, 9.0)] + [(f"long{i}", long, 1.0) for i in range(4)]
tasks = [
    Task("rfm_fault_jobs.jobs", "work", {"path": f"{d}/{n}", "seconds": s}, name=n, cost=c,
         done=load_valid(f"{d}/{n}", config={"path": f"{d}/{n}"}) is not None)
    for n, s, c in spec
]
try:
    res = run_tasks(tasks, workers=2, progress=False)
except Interrupted as e:
    print("finished:", ",".join(sorted(e.finished)), flush=True)
    sys.exit(e.exit_status)
print("ran:", ",".join(sorted(res["run"])), flush=True)
"""


@pytest.fixture
def driver(tmp_path):
    pkg = tmp_path / "pkg" / "rfm_fault_jobs"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "jobs.py").write_text(JOBS)
    (tmp_path / "driver.py").write_text(DRIVER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "pkg"), str(ROOT)])}
    out = tmp_path / "results"
    out.mkdir()

    def start(long_seconds: float) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, str(tmp_path / "driver.py"), str(out), str(long_seconds)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    return start, out


def _wait_for(cond, timeout: float = 120.0) -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def _alive(pids) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.mark.slow
def test_sigint_stops_every_worker_keeps_finished_results_and_resumes(driver):
    start, out = driver
    proc = start(long_seconds=600.0)
    _wait_for(lambda: all((out / f"quick{i}.json").exists() for i in range(2)))
    _wait_for(lambda: len(list(out.glob("long*.started"))) == 2)  # both workers busy
    workers = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    assert len(workers) >= 2
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)  # as `timeout -s INT`: the parent only
    stdout, _ = proc.communicate(timeout=30)
    stopped = time.monotonic() - t0
    assert proc.returncode == 130, stdout
    assert stopped < 10, stopped  # GRACE_SECONDS = 2 on a quiet machine
    assert "finished: quick0,quick1" in stdout
    _wait_for(lambda: not _alive(workers), timeout=5)
    for i in range(2):  # finished results are saved and valid; the stopped ones are absent
        arrays, meta = load_result(out / f"quick{i}", config={"path": f"{out}/quick{i}"})
        assert meta["seconds"] == 0.1 and arrays["x"].tolist() == [0.0, 1.0, 2.0]
    assert not list(out.glob("long*.json")) and not list(out.glob(".*.tmp"))
    # Resume: only the unfinished tasks run; the saved ones are not rewritten.
    stamps = {f: f.stat().st_mtime_ns for f in out.glob("quick*.*")}
    proc = start(long_seconds=0.1)
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "ran: long0,long1,long2,long3" in stdout, stdout
    assert {f: f.stat().st_mtime_ns for f in out.glob("quick*.*")} == stamps


@pytest.mark.slow
def test_killed_parent_leaves_no_worker(driver):
    start, out = driver
    proc = start(long_seconds=600.0)
    _wait_for(lambda: len(list(out.glob("long*.started"))) == 2)
    workers = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    assert len(workers) >= 2
    proc.kill()  # SIGKILL: no handler runs in the parent
    proc.wait()
    _wait_for(lambda: not _alive(workers), timeout=5)


@pytest.mark.slow
def test_sigterm_stops_rfmodel_figures_and_a_rerun_resumes(tmp_path):
    """The real command: SIGTERM while both workers compute, exit 143 within seconds, no worker
    left, finished results valid; a damaged one is named, moved aside and recomputed, and the
    valid ones are reloaded, not recomputed."""
    out = tmp_path / "figs"
    cmd = [sys.executable, "-m", "rfmodel.cli", "figures", "--quick", "--quiet"]
    cmd += ["--only", "long_step_pattern", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    data = out / "data" / "long_step_pattern"
    _wait_for(lambda: data.exists() and len(list(data.glob("*.json"))) >= 1)
    workers = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)  # also waits for the workers (they hold the pipes)
    assert time.monotonic() - t0 < 2  # README, guarantees
    assert proc.returncode == 143, stderr
    assert "interrupted by SIGTERM" in stderr and "resume" in stderr
    _wait_for(lambda: not _alive(workers), timeout=5)
    saved = sorted(data.glob("*.json"))
    for f in saved:
        load_result(f.with_suffix(""))  # valid (atomic writes: never a half-written file)
    damaged = saved[0]
    damaged.write_text("garbage{")
    kept = {f: f.stat().st_mtime_ns for f in saved[1:]}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(cmd[3:]) == 0
    named = [str(w.message) for w in caught if issubclass(w.category, DamagedResultWarning)]
    assert any(damaged.stem in m and "unreadable JSON" in m for m in named), named
    assert list(data.glob(f"{damaged.name}.damaged-*"))  # moved aside, not deleted
    load_result(damaged.with_suffix(""))  # recomputed
    assert {f: f.stat().st_mtime_ns for f in kept} == kept  # reloaded, not recomputed
    assert (out / "long_step_pattern.png").stat().st_mode & 0o044 == 0o044  # readable by others


# ----------------------------------------------------------------------------- damaged cache
@pytest.fixture(scope="module")
def solved(tmp_path_factory):
    d = tmp_path_factory.mktemp("cache")
    p = Problem(a=2.5, b=1.2, sigma=0.5, n_modes=60, batch=4)
    res = optimize_schedules(p, [40, 80], out_dir=d / "ok", controls=8, progress=False)
    return p, d, res


def _fresh(solved, tmp_path):
    p, d, res = solved
    shutil.copytree(d / "ok", tmp_path / "c")
    return p, tmp_path / "c", res


def _rerun(p, d):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = optimize_schedules(p, [40, 80], out_dir=d, controls=8, progress=False)
    return again, [str(w.message) for w in caught if issubclass(w.category, DamagedResultWarning)]


@pytest.mark.parametrize("damage", ["truncated npz", "garbage json", "npz of another horizon"])
def test_damaged_result_is_named_moved_aside_and_recomputed(solved, tmp_path, damage):
    p, d, res = _fresh(solved, tmp_path)
    t40, t80 = (next(d.glob(f"T{T}_*.npz")) for T in (40, 80))
    if damage == "truncated npz":
        t80.write_bytes(t80.read_bytes()[:100])
        victim = t80
    elif damage == "garbage json":
        t80.with_suffix(".json").write_text("\x00 not json")
        victim = t80.with_suffix(".json")
    else:  # a T = 40 result copied over T = 80's arrays
        shutil.copy(t40, t80)
        victim = t80
    again, named = _rerun(p, d)
    assert len(named) == 1 and str(victim.with_suffix("")) in named[0], named
    assert list(d.glob(f"{victim.name}.damaged-*"))
    assert again[80].etas.shape == (80,) and again[80].curve.shape == (81,)
    assert again[80].loss == pytest.approx(res[80].loss, rel=1e-9)
    _, named = _rerun(p, d)  # the recomputed result is valid: reused silently
    assert named == []


def test_stale_result_of_another_maxiter_is_not_reused(tmp_path):
    p = Problem(a=2.5, b=1.2, sigma=0.5, n_modes=60, batch=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the capped solve warns
        short = optimize_schedules(p, [60], out_dir=tmp_path, maxiter=3, progress=False)[60]
    assert not short.converged
    full = optimize_schedules(p, [60], out_dir=tmp_path, progress=False)[60]
    assert full.converged and full.loss < short.loss * (1 - 1e-6)
    assert len(list(tmp_path.glob("T60_*.json"))) == 2  # two keys, two results


def test_unreadable_json_error_names_the_file(tmp_path):
    """Never a bare "Expecting value: line 1 column 1": the error names the file."""
    from rfmodel.results import ResultError, read_json

    f = tmp_path / "x.json"
    f.write_text("{")
    with pytest.raises(ResultError, match=str(f)):
        read_json(f)


# ----------------------------------------------------------------------------- bad input
def _cli(argv, capsys):
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse
        rc = e.code
    return rc, capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,named",
    [
        (["optimize", "--sigma", "1e200"], "--sigma"),
        (["optimize", "--b", "400"], "b=400"),
        (["optimize", "--a", "0.9"], "--a"),
        (["optimize", "--T", "10.7"], "--T"),
        (["optimize", "--families", "cosine,bogus"], "--families"),
        (["optimize", "--controls", "-1"], "--controls"),
        (["optimize", "--T", "50", "--controls", "60"], "--controls"),
        (["optimize", "--eta-max", "0"], "--eta-max"),
        (["optimize", "--eta-max", "1e-300", "--T", "50", "--n-modes", "30"], "--eta-max"),
        (["simulate", "--features", "60", "--n-modes", "30"], "--features"),
        (["simulate", "--seed", str(2**70)], "--seed"),
        (["simulate", "--seeds", "1"], "--seeds"),
        (["simulate", "--n-modes", "1e12"], "--n-modes=1e+12 is too large for Monte-Carlo"),
        (["simulate", "--eta", "5.0"], "--eta"),
        (["figures", "--workers", "0"], "--workers"),
        (["figures", "--only", "nope"], "--only"),
    ],
)
def test_cli_bad_input_exits_2_naming_the_flag(argv, named, capsys, tmp_path):
    t0 = time.perf_counter()
    rc, err = _cli([*argv, "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and named in err and "Traceback" not in err, err
    assert err.count("error:") == 1
    assert time.perf_counter() - t0 < 20  # checked before any real work


def test_out_is_checked_before_any_work(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    for cmd in (["optimize"], ["simulate"], ["figures", "--quick"]):
        t0 = time.perf_counter()
        rc, err = _cli([*cmd, "--out", str(f)], capsys)
        assert rc == 2 and "--out" in err and "is a file" in err, err
        rc, err = _cli([*cmd, "--out", str(f / "sub")], capsys)
        assert rc == 2 and "--out" in err and "cannot write" in err, err
        assert time.perf_counter() - t0 < 5
    if os.geteuid() != 0:  # root writes anywhere: the read-only folder case needs a user
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        rc, err = _cli(["optimize", "--out", str(ro)], capsys)
        assert rc == 2 and "cannot write" in err
    assert not list(tmp_path.glob("runs"))


def test_baselines_respect_eta_max(tmp_path, capsys):
    p = Problem(a=2.5, b=1.2, sigma=0.5, n_modes=40, batch=4)
    cap = 0.25 * p.eta_critical()
    argv = ["optimize", "--T", "60", "--n-modes", "40", "--eta-max", f"{cap!r}", "--quiet"]
    argv += ["--families", "constant,cosine", "--out", str(tmp_path)]
    assert main(argv) == 0
    arrays = load_result(tmp_path / "baselines")[0]
    assert max(float(v.max()) for k, v in arrays.items() if k.endswith("_etas")) <= cap * (
        1 + 1e-12
    )
    assert load_result(tmp_path / "optimal")[0]["etas"].max() <= cap * (1 + 1e-12)
    assert f"η <= {cap:g}" in capsys.readouterr().out


def test_library_bad_input_is_named():
    with pytest.raises(ValueError, match="b=40 with n_modes=1e\\+12.*b <= 25"):
        Problem(a=2.5, b=40, n_modes=10**12)
    with pytest.raises(ValueError, match="sigma must be in"):
        Problem(a=2.5, b=1.2, sigma=1e200)
    with pytest.raises(ValueError, match="batch must be a finite number"):
        Problem(a=2.5, b=1.2, batch=10**400)
    with pytest.raises(ValueError, match="n_inputs must be >= n_features=60"):
        Problem.from_random_features(2.0, 1.5, n_features=60, n_inputs=30, key=None)
    with pytest.raises(ValueError, match="n_exact: 1e\\+12 exact modes need"):
        Problem(a=2.5, b=1.2, n_modes=10**12, n_exact=10**12)
    p = Problem(a=2.5, b=1.2, n_modes=20)
    with pytest.raises(ValueError, match="etas must be >= 0.*row 0, step 1"):
        final_losses(p, [[0.1, -5.0]])
    with pytest.raises(ValueError, match="etas must be finite"):
        final_losses(p, [[0.1, math.nan]])
    with pytest.raises(ValueError, match="Ts must be integers"):
        optimize_schedules(p, [10.7], progress=False)
    with pytest.raises(ValueError, match="monotone"):
        optimize_schedule(p, 10, monotone=True, parameterization="linear")


def test_to_optax_past_int32():
    sched = to_optax(np.array([0.3, 0.2, 0.1]))
    with pytest.warns(UserWarning, match="past its horizon"):  # once, at the first call
        for step in (2**31, 2**40, np.int64(2**40), np.array([2**40])):
            assert float(np.asarray(sched(step)).ravel()[0]) == pytest.approx(0.1)
    assert float(sched(-3)) == pytest.approx(0.3)


def test_simulate_refuses_huge_n_before_allocating(capsys, tmp_path):
    t0 = time.perf_counter()
    rc, err = _cli(["simulate", "--n-modes", str(10**12), "--out", str(tmp_path)], capsys)
    assert rc == 2 and "too large for Monte-Carlo sampling" in err
    assert time.perf_counter() - t0 < 5


def test_results_and_figures_are_readable_by_others(tmp_path):
    from rfmodel.plotting import save_figure
    from rfmodel.results import save_result

    old = os.umask(0o022)
    try:
        save_result(tmp_path / "r", {"x": np.zeros(2)}, {"a": 1})
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        save_figure(plt.figure(), tmp_path / "f.png")
    finally:
        os.umask(old)
    for f in ("r.json", "r.npz", "f.png"):
        assert (tmp_path / f).stat().st_mode & 0o777 == 0o644, f


# ----------------------------------------------------------------------------- zero-rate segments
ZERO_RATE_CASES = [  # one K and one T (one compilation each)
    ([0.5, 0.0], [30, 70]),
    ([0.0, 0.0], [30, 70]),
    ([0.0, 0.5], [30, 70]),
    ([0.5, 1e-300], [30, 70]),
    ([0.5, 1e-160], [30, 70]),
    ([0.5, 1e-100], [30, 70]),
    ([0.5, 1e-20], [30, 70]),
    ([0.5, 1e-9], [30, 70]),  # the other side of the switch (n·g·Σu² > 1e-16)
    ([0.5, 0.05], [60, 40]),  # a cooldown ending at 0: below
]


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["easy", "hard"])
def test_zero_rate_segments_match_the_step_recursion(phase):
    """A zero or tiny rate made the secular roots degenerate: loss inf, gradient NaN (issue 21,
    item 5). Now the boundary losses and the gradient equal the step recursion's."""
    from rfmodel.dynamics import log_final_loss_and_grad, loss_curve, segment_losses
    from rfmodel.dynamics.segments import log_final_loss_and_grad as segment_objective

    p = (
        Problem(a=2.5, b=1.2, sigma=0.5, n_modes=1000, batch=4)
        if phase == "easy"
        else Problem(a=1.5, b=2.5, sigma=0.5, n_modes=10**6, batch=1)
    )
    for values, lengths in ZERO_RATE_CASES:
        v = np.asarray(values) * min(1.0, p.eta_critical() / 0.5)
        n = np.asarray(lengths)
        etas = np.repeat(v, n)
        ref = np.asarray(loss_curve(p, etas))[np.concatenate([[0], np.cumsum(n)])]
        np.testing.assert_allclose(segment_losses(p, v, n), ref, rtol=1e-13, err_msg=str(values))
        val, grad = segment_objective(p, v, n)
        ref_val, ref_grad = log_final_loss_and_grad(p, etas)
        ref_grad = np.add.reduceat(ref_grad, np.concatenate([[0], np.cumsum(n)[:-1]]))
        assert np.all(np.isfinite(grad)), values
        assert val == pytest.approx(ref_val, rel=1e-13), values
        scale = np.max(np.abs(ref_grad))
        np.testing.assert_allclose(
            grad, ref_grad, rtol=1e-8, atol=1e-12 * scale, err_msg=str(values)
        )


@pytest.mark.slow  # default tier under 4 min on 2 cores (measured cold)
def test_zero_rate_segment_values_of_the_issue():
    from rfmodel.dynamics import loss_curve, segment_losses

    p = Problem(a=2.5, b=1.2, sigma=0.5, batch=4)
    got = segment_losses(p, [0.5, 0.0], [30, 70])
    assert np.all(np.isfinite(got)) and got[2] == got[1]  # a zero rate leaves the state alone
    assert got[2] == pytest.approx(float(loss_curve(p, [0.5] * 30 + [0.0] * 70)[-1]), rel=1e-13)
    assert segment_losses(p, [0.0], [100]).tolist() == [got[0], got[0]]
    cooldown = [0.5, 0.4, 0.3, 0.2, 0.1, 0.0]  # linear to exactly 0
    ref = loss_curve(p, np.repeat(cooldown, 10))[::10]
    np.testing.assert_allclose(segment_losses(p, cooldown, [10] * 6), ref, rtol=1e-13)


# ----------------------------------------------------------------------------- exported schedules
def test_exported_schedules_are_pure_arithmetic_under_transforms():
    """``jax.vmap(schedule)(jnp.arange(4000))`` did not finish in 8 minutes and ``jit(vmap)``
    over 2000 steps took 69-160 s (a lax.cond + host callback per call; issue 21, item 11)."""
    import jax
    import jax.numpy as jnp

    from rfmodel.schedules import from_array

    etas = np.linspace(1.0, 0.0, 1000)
    for sched in (to_optax(etas), from_array(etas)):
        jaxpr = str(jax.make_jaxpr(sched)(1))
        assert "callback" not in jaxpr and "cond" not in jaxpr, jaxpr
        t0 = time.perf_counter()
        vals = jax.vmap(sched)(jnp.arange(4000))
        np.testing.assert_allclose(vals[:1000], etas, atol=1e-6)
        assert np.all(np.asarray(vals[1000:]) == np.asarray(vals[999]))  # holds the last rate
        jax.block_until_ready(jax.jit(jax.vmap(sched))(jnp.arange(2000)))
        assert time.perf_counter() - t0 < 10  # was minutes; ~0.3 s on a loaded machine

        def run(_, sched=sched):  # 10^5 steps of a schedule inside jit: microseconds each
            return jax.lax.fori_loop(0, 100_000, lambda t, acc: acc + sched(t), 0.0)

        f = jax.jit(run)
        jax.block_until_ready(f(0))
        t0 = time.perf_counter()
        jax.block_until_ready(f(0))
        assert (time.perf_counter() - t0) / 100_000 < 20e-6


def test_exported_schedule_warns_on_the_host_when_called_eagerly():
    import jax.numpy as jnp

    for step in (3, np.int64(2**40), np.arange(5), jnp.arange(5), jnp.int32(7)):
        sched = to_optax(np.array([0.3, 0.2, 0.1]))
        with pytest.warns(UserWarning, match="past its horizon of 3 steps"):
            sched(step)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sched(step)  # once per schedule
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        to_optax(np.array([0.3, 0.2, 0.1]))(jnp.arange(3))  # inside its horizon: silent


# ----------------------------------------------------------------------------- flags and messages
@pytest.mark.parametrize(
    "argv,named",
    [
        (["optimize", "--per-step", "--controls", "5"], "--per-step and --controls 5 conflict"),
        # --batch was dropped silently: the budget sets the batch
        (["optimize", "--optimize", "batch", "--samples", "1000", "--batch", "8"],
         "--batch 8 and --samples 1000 conflict"),
        # reported "min -9.2e18" (an int64 overflow of the integer batches)
        (["optimize", "--optimize", "batch", "--samples", "1e30"],
         "argument --samples: must be a finite number in [1, 9.0072e+15]"),
        # --workers was dropped silently: a running cluster has its own CPUs
        (["figures", "--ray", "auto", "--workers", "2"], "--workers 2 and --ray auto conflict"),
    ],
)  # fmt: skip
def test_conflicting_flags_are_refused_naming_both(argv, named, capsys, tmp_path):
    rc, err = _cli([*argv, "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and named in err and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()  # refused before the folder is made


def test_default_samples_past_2_53_are_refused(capsys, tmp_path, monkeypatch):
    import rfmodel.problem

    monkeypatch.setattr(rfmodel.problem, "available_memory", lambda: 2.0**50)  # memory is fine
    argv = ["optimize", "--optimize", "batch", "--T", "1e7", "--batch", "1e9"]
    rc, err = _cli([*argv, "--families", "constant", "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and "= 1e+16 samples, more than 2^53" in err and "--samples" in err, err


@pytest.mark.parametrize("cmd", [["optimize"], ["simulate"], ["figures", "--quick"]])
def test_out_with_a_name_too_long_is_a_message(cmd, capsys, tmp_path):
    rc, err = _cli([*cmd, "--out", str(tmp_path / ("x" * 300))], capsys)
    assert rc == 2 and "--out: cannot write to" in err and "File name too long" in err, err
    assert "Traceback" not in err and "300 bytes" in err


@pytest.mark.parametrize(
    "argv", [["optimize"], ["simulate"], ["figures", "--quick"], ["figures", "--results", ""]]
)
def test_empty_out_is_refused_not_the_current_folder(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = [*argv, "--out", ""] if "--results" not in argv else [*argv, "--out", "f"]
    rc, err = _cli(args, capsys)
    assert rc == 2 and "must be a name; got ''" in err, err
    assert list(tmp_path.iterdir()) == []  # nothing written into the current folder
    with pytest.raises(ValueError, match="empty folder name"):
        from rfmodel.results import writable_dir

        writable_dir("")


def test_library_tracebacks_are_messages():
    from rfmodel import loss_curve

    with pytest.raises(ValueError, match="bins_per_decade must be >= 1/300"):
        Problem(a=2.5, b=1.2, n_modes=10**6, bins_per_decade=1e-3)  # was an OverflowError
    p = Problem(a=2.5, b=1.2, n_modes=20)
    with pytest.raises(ValueError, match="etas must be an array of numbers; got <U3"):
        loss_curve(p, ["0.1", "0.2"])  # was a TypeError from np.isfinite
    with pytest.raises(ValueError, match="etas must be an array of numbers"):
        loss_curve(p, [0.1, None])
    with pytest.raises(ValueError, match="batches must be an array of numbers"):
        loss_curve(p, [0.1, 0.1], ["4", "4"])


def test_install_has_what_the_default_commands_need():
    """The default `rfmodel figures` runs the practitioner's benchmark (experiment advice), whose
    digits task needs scikit-learn (its bundled digits): a dependency, not an extra (issue 21,
    item 13). The `rfmodel` script ends through cli.console (os._exit after flushing: a signal
    at its very end still exits 130)."""
    import re

    tomllib = pytest.importorskip("tomllib")
    from rfmodel.experiments import EXPERIMENTS

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = {re.split(r"[<>=!~\[; ]", d)[0].lower() for d in project["dependencies"]}
    assert "advice" in EXPERIMENTS and "scikit-learn" in deps
    assert "sklearn" in (ROOT / "rfmodel" / "experiments" / "_nets.py").read_text()
    assert project["scripts"]["rfmodel"] == "rfmodel.cli:console"


# ----------------------------------------------------------------------------- progress
PROGRESS_JOBS = """
import time


def work(seconds):
    time.sleep(seconds)
    return seconds
"""


def test_progress_bar_counts_tasks_not_cost_estimates(tmp_path, monkeypatch, capsys):
    """One task carried 93% of the cost estimate of figures --quick and took a minute: a bar in
    estimated seconds crawled, then jumped 7% -> 100% (issue 21, item 12). It counts tasks."""
    from rfmodel.runner import Task, run_tasks

    pkg = tmp_path / "rfm_progress"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "jobs.py").write_text(PROGRESS_JOBS)
    monkeypatch.syspath_prepend(str(tmp_path))
    tasks = [
        Task("rfm_progress.jobs", "work", {"seconds": 0.01}, name=f"t{i}", cost=c)
        for i, c in enumerate([3000.0, 1.0, 1.0])  # the first wildly overestimated
    ]
    run_tasks(tasks, workers=1, progress=True)
    err = capsys.readouterr().err
    seen = [f"{k}/3 tasks" for k in range(4) if f"{k}/3 tasks" in err]
    assert seen == ["0/3 tasks", "1/3 tasks", "2/3 tasks", "3/3 tasks"], err
    assert "est. s" not in err and "%" not in err, err


def test_figures_messages_say_what_is_true(tmp_path, monkeypatch, capsys):
    """No time estimate announced from the cost estimates (~54 min for about 9; under Ray
    "~0.0 min"); a bar over the drawing (21 figures for minutes with no bar); a subset never
    says both "README.md not rewritten" and "wrote ... README.md"."""
    import types

    import rfmodel.figures as F
    from rfmodel.experiments._format import Figure

    def fake(name):
        mod = types.SimpleNamespace()
        mod.config = lambda quick: {"quick": quick}
        mod.tasks = lambda cfg, results_dir: []
        mod.summarize = lambda cfg, results_dir: {"compute_seconds": 1.0}

        def plot(cfg, summary, results_dir, out):
            (Path(out) / f"{name}.png").write_bytes(b"png")
            return [Figure(f"{name}.png", "a figure")]

        mod.plot = plot
        return mod

    monkeypatch.setattr(F, "EXPERIMENTS", ("one", "two"))
    monkeypatch.setattr(F, "load_experiment", fake)
    lines: list[str] = []
    F.regenerate(tmp_path, quick=True, experiments=["one"], log=lines.append, progress=True)
    err = capsys.readouterr().err
    assert "drawing figures" in err and "1/1 experiments" in err, err
    assert "min of one core" not in lines[0] and "1 experiments to draw" in lines[0], lines
    assert lines[-1].startswith("wrote 1 figures (only one: README.md not rewritten"), lines
    assert not any("and README.md" in s for s in lines), lines
    F.regenerate(tmp_path, quick=True, experiments=["one", "two"], log=lines.append, progress=False)
    assert lines[-1].startswith("wrote 2 figures and README.md"), lines
    assert (tmp_path / "README.md").exists()
