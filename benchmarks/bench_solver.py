"""rfmodel's solver against the paper's method (CasADi + IPOPT direct transcription).

Each solve runs in its own fresh Python process, IPOPT and rfmodel interleaved (``--repeats``
rounds; medians). Two times per run: *whole process* (interpreter start, imports, compilation or
graph construction, solve: what a user times) and *solve only* (from just before the solve call).
rfmodel runs twice per round: with an empty persistent compilation cache ("cold", a first
``rfmodel`` command) and again on the cache that run filled ("warm", every later command;
:mod:`rfmodel.compile_cache`). The load average is printed before and after. IPOPT runs with
:func:`ipopt_baseline.solve_ipopt`'s options (MUMPS, limited-memory Hessian, tol 1e-10,
acceptable 1e-8 for 15 iterations) from its start (constant η = η_max / 2). Problems (σ = 0.5,
batch 5, η ≤ 2, K piecewise-constant controls):

    P1  easy a = 2.5, b = 1.2, N = 500,  T = 1000,  K = 100
    P2  hard a = 1.5, b = 2.5, N = 500,  T = 1000,  K = 100
    S2  P1 with T = 10^4, K = 200
    P4  P1 with N = 2000, T = 10^4, K = 200

The paper's joint learning-rate and batch-size problem (docs/theory.md §6): K = 100
piecewise-constant η and m, sample budget Σ_t m_t = T·m̄ = 5000 held as an equality,
1 ≤ m ≤ 10·m̄ = 50, η ≤ 2 (``optimize_schedule(optimize=("eta", "batch"))`` against IPOPT
with the budget as a constraint, :func:`ipopt_baseline.solve_ipopt` with ``samples``):

    B1  P1 in batch mode (easy)
    B2  P2 in batch mode (hard)

Also prints one loss-plus-gradient evaluation's cost in ns per mode-step for both; for the
batch cases rfmodel's cost of one L + ∇(η, m) against one L + ∇η (same T, N, same process).
Needs ``pip install casadi`` (benchmark-only). Usage:
``python benchmarks/bench_solver.py [--cases P1,P2,S2,P4,B1,B2] [--cap 600] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CASES = {
    "P1": dict(a=2.5, b=1.2, n_modes=500, T=1000, K=100),
    "P2": dict(a=1.5, b=2.5, n_modes=500, T=1000, K=100),
    "S2": dict(a=2.5, b=1.2, n_modes=500, T=10_000, K=200),
    "P4": dict(a=2.5, b=1.2, n_modes=2000, T=10_000, K=200),
    "B1": dict(a=2.5, b=1.2, n_modes=500, T=1000, K=100, samples=5000, batch_range=(1, 50)),
    "B2": dict(a=1.5, b=2.5, n_modes=500, T=1000, K=100, samples=5000, batch_range=(1, 50)),
}
SIGMA, BATCH, ETA_MAX = 0.5, 5, 2.0


def _median_seconds(*fns, repeats: int = 7) -> list[float]:
    """Median seconds of each ``fn(i)``, the functions interleaved (so that a load change on a
    shared machine hits all of them alike); each is called once first (compilation)."""
    times: list[list[float]] = [[] for _ in fns]
    for i in range(-1, repeats):
        for fn, ts in zip(fns, times, strict=True):
            t1 = time.perf_counter()
            fn(i)
            ts.append(time.perf_counter() - t1)
    return [float(np.median(ts[1:])) for ts in times]


def worker_rfmodel(case: dict) -> dict:
    t_import = time.perf_counter()
    if os.environ.get("RFMODEL_COMPILATION_CACHE"):  # as the command line does
        from rfmodel.compile_cache import enable_compilation_cache

        enable_compilation_cache()
    from rfmodel import Problem
    from rfmodel.control import optimize_schedule, segment_index
    from rfmodel.dynamics import log_final_loss_and_grad

    p = Problem(
        a=case["a"],
        b=case["b"],
        sigma=SIGMA,
        n_modes=case["n_modes"],
        batch=BATCH,
        n_exact=case["n_modes"],
    )
    batch = "samples" in case
    kw = {}
    if batch:
        lo, hi = case["batch_range"]
        kw = dict(optimize=("eta", "batch"), samples=case["samples"], batch_min=lo, batch_max=hi)
    t0 = time.perf_counter()
    res = optimize_schedule(p, case["T"], controls=case["K"], eta_max=ETA_MAX, **kw)
    t_end = time.perf_counter()
    wall = t_end - t0
    etas = res.controls[segment_index(case["T"], case["K"])]
    batches = res.batches if batch else np.full(case["T"], float(BATCH))

    def eta_only(i: int) -> None:
        log_final_loss_and_grad(p, etas * (1 + 1e-9 * i), batches)

    def eta_and_batch(i: int) -> None:
        log_final_loss_and_grad(p, etas * (1 + 1e-9 * i), batches, batch_grad=True)

    if batch:  # one L + ∇(η, m) against one L + ∇η, same process, same schedule
        median, median_batch = _median_seconds(eta_only, eta_and_batch, repeats=21)
        out = {
            "budget_residual": res.budget_residual,
            "kkt": res.kkt,
            "eval_ratio_batch_grad": median_batch / median,
        }
    else:
        (median,), out = _median_seconds(eta_only), {}
    return {
        **out,
        "loss": res.loss,
        "wall_time": wall,
        "import_time": t0 - t_import,
        "iterations": res.iterations,
        "evaluations": res.evaluations,
        "converged": res.converged,
        "projected_gradient": res.projected_gradient,
        "eval_ns_per_mode_step": median / (case["T"] * case["n_modes"]) * 1e9,
        "after_solve": time.perf_counter() - t_end,  # not part of the whole process's time
    }


def worker_ipopt(case: dict, cap: float) -> dict:
    t_import = time.perf_counter()
    sys.path.insert(0, str(Path(__file__).parent))
    from ipopt_baseline import eval_cost_ns_per_mode_step, solve_ipopt

    kw = {}
    if "samples" in case:
        lo, hi = case["batch_range"]
        kw = dict(samples=case["samples"], batch_min=lo, batch_max=hi)
    args = (case["a"], case["b"], SIGMA, BATCH, case["n_modes"], case["T"], case["K"])
    t0 = time.perf_counter()
    r = solve_ipopt(*args, eta_max=ETA_MAX, time_cap=cap, **kw)
    out = {
        **({"budget_residual": r["budget_residual"]} if kw else {}),
        "loss": r["loss"],
        "wall_time": r["wall_time"],
        "import_time": t0 - t_import,
        "iterations": r["iterations"],
        "status": r["status"],
        "hit_cap": r["hit_cap"],
        "build_time": r["build_time"],
    }
    t_end = time.perf_counter()
    out["eval_ns_per_mode_step"] = eval_cost_ns_per_mode_step(*args, batch_mode=bool(kw))
    out["after_solve"] = time.perf_counter() - t_end
    return out


def run_cold(solver: str, name: str, cap: float, cache: str | None = None) -> dict:
    """One solve in a fresh Python process; ``process_time`` is the whole process (interpreter
    start, imports, compilation, solve), ``wall_time`` the solve call alone. ``cache``: the
    compilation-cache folder of an rfmodel worker (None: no persistent cache)."""
    cmd = [sys.executable, __file__, "--worker", solver, "--cases", name, "--cap", str(cap)]
    env = {**os.environ, "RFMODEL_COMPILATION_CACHE": cache or "off"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=cap * 3 + 600, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{solver} {name} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_time"] = time.perf_counter() - t0 - out["after_solve"]
    return out


def run_interleaved(name: str, cap: float, repeats: int) -> dict[str, list[dict]]:
    """``repeats`` rounds of: IPOPT, rfmodel with an empty compilation cache ("cold"), rfmodel
    again on the cache the cold run filled ("warm", what a second ``rfmodel`` command sees), each
    in its own process, interleaved so that a change of load hits all three alike."""
    runs: dict[str, list[dict]] = {"ipopt": [], "rfmodel cold": [], "rfmodel warm": []}
    for _ in range(repeats):
        runs["ipopt"].append(run_cold("ipopt", name, cap))
        with tempfile.TemporaryDirectory() as cache:
            runs["rfmodel cold"].append(run_cold("rfmodel", name, cap, cache))
            runs["rfmodel warm"].append(run_cold("rfmodel", name, cap, cache))
    return runs


def _load() -> str:
    try:
        return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "load unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="P1,P2,S2,P4")
    ap.add_argument("--cap", type=float, default=600.0, help="IPOPT wall-time cap (s)")
    ap.add_argument("--worker", choices=["rfmodel", "ipopt"], help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds per case")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    names = args.cases.split(",")
    if args.worker:
        case = CASES[names[0]]
        out = worker_rfmodel(case) if args.worker == "rfmodel" else worker_ipopt(case, args.cap)
        print(json.dumps(out))
        return
    rows = {}
    load_before = _load()
    for name in names:
        rows[name] = run_interleaved(name, args.cap, args.repeats)
        print(f"{name} done", file=sys.stderr, flush=True)
    print(f"{args.repeats} interleaved rounds per case; {load_before} before, {_load()} after")
    print(
        f"{'case':4s} {'solver':13s} {'whole s':>8s} {'solve s':>8s} {'L(T)':>16s} "
        f"{'iters':>6s} {'ns/mode-step':>12s}  notes"
    )
    med = lambda xs, key: float(np.median([x[key] for x in xs]))  # noqa: E731
    for name, r in rows.items():
        for solver, xs in r.items():
            x = xs[-1]
            solve = f"> {args.cap:.0f}" if x.get("hit_cap") else f"{med(xs, 'wall_time'):.2f}"
            note = x.get("status", "converged" if x.get("converged") else "not converged")
            print(
                f"{name:4s} {solver:13s} {med(xs, 'process_time'):8.2f} {solve:>8s} "
                f"{x['loss']:16.10g} {x['iterations']:6d} {x['eval_ns_per_mode_step']:12.2f}  "
                f"{note}"
            )
        ri, rc, rw = (r[k] for k in ("ipopt", "rfmodel cold", "rfmodel warm"))
        capped = " (ipopt capped: lower bounds)" if ri[-1].get("hit_cap") else ""
        print(
            f"{name:4s} ipopt/rfmodel (medians): whole process "
            f"{med(ri, 'process_time') / med(rc, 'process_time'):.1f}x cold cache, "
            f"{med(ri, 'process_time') / med(rw, 'process_time'):.1f}x warm cache; "
            f"solve only {med(ri, 'wall_time') / med(rw, 'wall_time'):.1f}x warm, "
            f"{med(ri, 'wall_time') / med(rc, 'wall_time'):.1f}x cold{capped}; "
            f"loss rfmodel/ipopt − 1 = {rw[-1]['loss'] / ri[-1]['loss'] - 1:+.2e}; "
            f"eval cost {ri[-1]['eval_ns_per_mode_step'] / rw[-1]['eval_ns_per_mode_step']:.1f}x"
        )
        rr = rw[-1]
        if "budget_residual" in rr:
            print(
                f"{name:4s} budget   Σm − S: rfmodel {rr['budget_residual']:+.1e}, ipopt "
                f"{ri[-1]['budget_residual']:+.1e}; rfmodel KKT residuals {rr['kkt']}; "
                f"one L + ∇(η, m) / one L + ∇η = {rr['eval_ratio_batch_grad']:.2f}x"
            )
    if args.json:
        from rfmodel.results import write_json

        write_json(args.json, rows)


if __name__ == "__main__":
    main()
