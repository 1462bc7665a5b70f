"""Interrupts at random moments (issue 21, items 1-3): SIGINT/SIGTERM end the process with
130/143 within 2 s whatever it is doing, with a message and no traceback, never a segfault;
a second signal ends it at once; nothing half-written is left under a final name (nor any
temporary file); finished results stay saved.

The default tier drives :func:`rfmodel.runner.run_stoppable` directly (forked children of one
interpreter: many trials in seconds) and one real command. The ``slow`` tier sends signals at
random moments to the real commands (``optimize`` at T = 2e4, 1e6, 1e7, ``simulate --T 1e7``,
``figures --quick``, ``fit``) and prints the measured stop latencies.

Trials start counting when ``main`` has installed its handler (Linux: the SIGTERM bit of
``SigCgt`` in /proc/PID/status); before that, the interpreter is still importing rfmodel.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
LINUX = Path("/proc/self/status").exists()
pytestmark = pytest.mark.skipif(not LINUX, reason="reads /proc/PID/status")
#: The promise (README, guarantees): every interrupt ends the process within this many seconds.
STOP_SECONDS = 2.0
BAD = ("Traceback", "Fatal Python error", "Segmentation fault", "Exception ignored")


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", **extra}


def handler_installed(pid: int) -> bool:
    """Whether the process catches SIGTERM (Python does not by default: ``main`` has begun)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    except OSError:
        pass
    return False


def interrupt(argv, *, cwd, at: float, sig: int, second: float | None = None) -> dict:
    """Run ``python -m rfmodel.cli *argv``; ``at`` seconds after its handler is installed send
    ``sig`` (and the same signal again ``second`` seconds later); the outcome and the latency
    from the (last) signal to the exit of the process and of every child holding its pipes."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rfmodel.cli", *argv],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while not handler_installed(proc.pid) and proc.poll() is None:
        time.sleep(0.005)
    start = time.monotonic()
    try:
        proc.wait(timeout=at)
        elapsed = time.monotonic() - start
        out, err = proc.communicate()
        return {"at": at, "rc": proc.returncode, "latency": None, "err": err, "out": out,
                "elapsed": elapsed}  # fmt: skip
    except subprocess.TimeoutExpired:
        pass
    proc.send_signal(sig)
    t0 = time.monotonic()
    if second is not None:
        time.sleep(second)
        proc.send_signal(sig)
        t0 = time.monotonic()
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return {"at": at, "rc": "hung", "latency": 60.0, "err": err, "out": out}
    return {"at": at, "rc": proc.returncode, "latency": time.monotonic() - t0, "err": err}


def check_stopped(r: dict, sig: int, folder: Path | None = None) -> None:
    """Exit 128 + signal within STOP_SECONDS, the message, no traceback; no temporary file."""
    assert r["rc"] == 128 + sig, r
    assert r["latency"] < STOP_SECONDS, r
    assert f"interrupted by {signal.Signals(sig).name}" in r["err"], r
    assert not any(b in r["err"] for b in BAD), r["err"][-2000:]
    if folder is not None:
        assert not list(folder.rglob("*.tmp")), list(folder.rglob("*.tmp"))


# ----------------------------------------------------------------------------- run_stoppable
STUB = r"""
import json, os, random, signal, sys, time
from pathlib import Path

from rfmodel.results import write_text
from rfmodel.runner import run_stoppable

out, n, seed, mode = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rng = random.Random(seed)
BLOCK = "0123456789" * 50_000  # 500 kB per file: writes are often in progress


def work():
    import numpy as np

    i = 0
    while True:
        write_text(out / f"f{i % 20}.txt", BLOCK)  # atomic: tmp, fsync, rename
        if mode == "busy":  # long C calls that release the GIL, as XLA's do
            np.linalg.eigh(np.eye(300) + 1e-3)
        i += 1


def message(signum, finished, unfinished):
    if mode == "stuck":  # a stop that does not end: the second signal must
        time.sleep(60)
    return f"stub: interrupted by {signal.Signals(signum).name}"


def caught(pid):
    with open(f"/proc/{pid}/status") as f:
        return any(l.startswith("SigCgt:") and int(l.split()[1], 16) & (1 << 14) for l in f)


for k in range(n):
    sig = (signal.SIGINT, signal.SIGTERM)[k % 2]
    err = out / f"err{k}.txt"
    pid = os.fork()
    if pid == 0:
        fd = os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 2)
        run_stoppable(work, message=message)
        os._exit(0)
    while not caught(pid):
        time.sleep(0.001)
    time.sleep(rng.uniform(0.0, 0.4))
    os.kill(pid, sig)
    t0 = time.monotonic()
    if mode == "stuck":
        time.sleep(0.3)
        os.kill(pid, sig)
        t0 = time.monotonic()
    _, status = os.waitpid(pid, 0)
    latency = time.monotonic() - t0
    print(json.dumps({"rc": os.waitstatus_to_exitcode(status), "sig": int(sig),
                      "latency": latency, "err": err.read_text()}), flush=True)
"""


def _stub(tmp_path: Path, n: int, mode: str) -> list[dict]:
    (tmp_path / "stub.py").write_text(STUB)
    out = tmp_path / "out"
    out.mkdir()
    seed = random.randrange(10**6)
    res = subprocess.run(
        [sys.executable, str(tmp_path / "stub.py"), str(out), str(n), str(seed), mode],
        env=_env(OPENBLAS_NUM_THREADS="1"),  # fork() from a single-threaded interpreter
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    trials = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(trials) == n
    # Nothing half-written under a final name, no temporary file left behind.
    assert not list(out.glob(".*.tmp")), sorted(p.name for p in out.glob(".*.tmp"))
    for f in out.glob("f*.txt"):
        assert f.read_text() == "0123456789" * 50_000, f
    return trials


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sleep", "busy"])
def test_run_stoppable_stops_at_random_moments(tmp_path, mode):
    trials = _stub(tmp_path, 16, mode)
    for r in trials:
        assert r["rc"] == 128 + r["sig"], r
        assert r["latency"] < STOP_SECONDS, r
        assert f"stub: interrupted by {signal.Signals(r['sig']).name}" in r["err"], r
        assert not any(b in r["err"] for b in BAD), r
    print("run_stoppable stop latency, max of", len(trials), max(r["latency"] for r in trials))


@pytest.mark.slow
def test_a_second_signal_ends_a_stuck_stop_at_once(tmp_path):
    for r in _stub(tmp_path, 4, "stuck"):
        assert r["rc"] == 128 + r["sig"] and r["latency"] < STOP_SECONDS, r


def test_run_stoppable_returns_and_raises_as_the_work_does():
    from rfmodel.runner import run_stoppable

    before = signal.getsignal(signal.SIGINT)  # SIG_IGN in a background job of a shell
    assert run_stoppable(lambda: 42) == 42

    def fail():
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        run_stoppable(fail)
    with pytest.raises(SystemExit):
        run_stoppable(lambda: sys.exit(2))
    assert signal.getsignal(signal.SIGINT) is before  # restored


SWALLOWED = """
import os, signal, time


class Bomb:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)  # the handler runs here, inside __del__: Python swallows what it raises


def job(k):
    if k == 0:
        Bomb()
    time.sleep(0.2)
    return k
"""


def test_a_swallowed_interrupt_is_not_lost(tmp_path, monkeypatch):
    """Library mode (run_tasks in a program's main thread): an Interrupted raised inside a
    __del__ or gc callback is swallowed by Python ("Exception ignored"); the runner still
    stops before the next task (before: it ran every task and returned)."""
    from rfmodel.runner import Interrupted, Task, run_tasks

    pkg = tmp_path / "rfm_swallow"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "jobs.py").write_text(SWALLOWED)
    monkeypatch.syspath_prepend(str(tmp_path))
    tasks = [Task("rfm_swallow.jobs", "job", {"k": k}, name=f"t{k}") for k in range(3)]
    swallowed = []
    monkeypatch.setattr(sys, "unraisablehook", swallowed.append)  # "Exception ignored in"
    with pytest.raises(Interrupted) as e:
        run_tasks(tasks, workers=1, progress=False)
    assert [type(u.exc_value).__name__ for u in swallowed] == ["Interrupted"]  # really lost
    assert e.value.exit_status == 130
    assert e.value.finished == ["t0"] and e.value.unfinished == ["t1", "t2"]


# ----------------------------------------------------------------------------- the commands
def test_sigint_stops_rfmodel_optimize_within_2_seconds(tmp_path):
    """The issue's case (exit 139 in 7 of 20 runs): SIGINT during the solve."""
    argv = ["optimize", "--T", "20000", "--n-modes", "3000", "--families", "constant"]
    r = interrupt([*argv, "--out", str(tmp_path / "o")], cwd=tmp_path, at=3.0, sig=signal.SIGINT)
    check_stopped(r, signal.SIGINT, tmp_path)


def _curves_csv(path: Path, steps: int = 2000) -> None:
    from rfmodel.practice import synthetic_runs, write_curves

    runs = synthetic_runs(
        a=2.2, b=1.4, sigma=0.3, lr_scale=2.0, loss_scale=2.0, floor=0.1, steps=steps, seed=1
    )
    write_curves(path, runs)


#: (name, argv, seconds over which the signal moment is drawn, trials)
COMMANDS = [
    ("optimize T=2e4", ["optimize", "--T", "20000", "--n-modes", "3000", "--families",
                        "constant"], 30.0, 20),
    ("optimize T=1e6", ["optimize", "--T", "1000000", "--families", "constant"], 40.0, 10),
    ("optimize T=1e7", ["optimize", "--T", "10000000", "--families", "constant"], 40.0, 6),
    ("simulate T=1e7", ["simulate", "--T", "10000000"], 30.0, 6),
    ("figures --quick", ["figures", "--quick"], 60.0, 6),
    ("fit", ["fit", "CURVES"], 20.0, 6),
    # a short run: many signals land at its very end (after the work, during the last flush)
    ("end of a run", ["optimize", "--T", "50", "--n-modes", "30", "--families", "constant"],
     8.0, 10),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name,argv,window,n", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_commands_stop_within_2_seconds_at_random_moments(tmp_path, name, argv, window, n):
    rng = random.Random()
    csv = tmp_path / "curves.csv"
    if "CURVES" in argv:
        _curves_csv(csv)
    lat = []
    k = 0
    # A run that finishes before its signal is fine, but it says how long the work takes on this
    # machine: later signals land within 90% of the shortest such run (CI's machine ran `fit` in
    # under the 20 s window on 6/6 tries), and trials go on (at most 2n) until one stops.
    while k < n or (not lat and k < 2 * n):
        sig = (signal.SIGINT, signal.SIGTERM)[k % 2]
        out = tmp_path / f"run{k}"
        args = [str(csv) if a == "CURVES" else a for a in argv]
        if argv[0] != "fit":
            args += ["--out", str(out)]
        k += 1
        r = interrupt(args, cwd=tmp_path, at=rng.uniform(0.0, window), sig=sig)
        if r["latency"] is None:  # it finished first: fine, nothing to stop
            assert r["rc"] == 0, r
            window = min(window, 0.9 * r["elapsed"])
            continue
        check_stopped(r, sig, tmp_path)
        lat.append(r["latency"])
    assert lat, f"every run finished before its signal ({k} tries)"
    print(f"{name}: {len(lat)} stops, latency max {max(lat):.3f} s, mean {np.mean(lat):.3f} s")


def _ray_processes() -> set[str]:
    out = subprocess.run(["pgrep", "-f", "raylet|gcs_server|ray::"], capture_output=True, text=True)
    return set(out.stdout.split())


@pytest.mark.slow
def test_figures_on_ray_stops_within_2_seconds_and_leaves_no_ray_process(tmp_path):
    """Under --ray the stop cancels the tasks and shuts the local Ray instance down (os._exit
    skips Ray's atexit shutdown: its agents lingered a minute without it)."""
    pytest.importorskip("ray")
    before = _ray_processes()
    rng = random.Random()
    for k in range(3):
        sig = (signal.SIGINT, signal.SIGTERM)[k % 2]
        argv = ["figures", "--quick", "--only", "phase_diagram", "--ray"]
        r = interrupt([*argv, "--out", str(tmp_path / f"r{k}")], cwd=tmp_path,
                      at=rng.uniform(20.0, 50.0), sig=sig)  # fmt: skip
        if r["latency"] is None:
            continue
        check_stopped(r, sig, tmp_path)
        print(f"figures --ray: stopped in {r['latency']:.3f} s")
        t0 = time.monotonic()
        while _ray_processes() - before and time.monotonic() - t0 < 10:
            time.sleep(0.5)
        assert not _ray_processes() - before, "Ray processes left behind"
