"""rfmodel's solver against the paper's method (CasADi + IPOPT direct transcription).

Each solve runs in its own cold Python process; its wall time counts from just before the solve
call (JIT compilation / graph construction included; interpreter start-up and imports are
reported separately). Problems (σ = 0.5, batch 5, η ≤ 2, K piecewise-constant controls):

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
``python benchmarks/bench_solver.py [--cases P1,P2,S2,P4,B1,B2] [--cap 600]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
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
    wall = time.perf_counter() - t0
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
    out["eval_ns_per_mode_step"] = eval_cost_ns_per_mode_step(*args, batch_mode=bool(kw))
    return out


def run_cold(solver: str, name: str, cap: float) -> dict:
    cmd = [sys.executable, __file__, "--worker", solver, "--cases", name, "--cap", str(cap)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=cap * 3 + 600)
    if proc.returncode != 0:
        raise RuntimeError(f"{solver} {name} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_time"] = time.perf_counter() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="P1,P2,S2,P4")
    ap.add_argument("--cap", type=float, default=600.0, help="IPOPT wall-time cap (s)")
    ap.add_argument("--worker", choices=["rfmodel", "ipopt"], help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    names = args.cases.split(",")
    if args.worker:
        case = CASES[names[0]]
        out = worker_rfmodel(case) if args.worker == "rfmodel" else worker_ipopt(case, args.cap)
        print(json.dumps(out))
        return
    rows = {}
    for name in names:
        rows[name] = {
            "rfmodel": run_cold("rfmodel", name, args.cap),
            "ipopt": run_cold("ipopt", name, args.cap),
        }
        print(f"{name} done", file=sys.stderr, flush=True)
    print(
        f"{'case':4s} {'solver':8s} {'wall s':>8s} {'L(T)':>16s} {'iters':>6s} "
        f"{'ns/mode-step':>12s}  notes"
    )
    for name, r in rows.items():
        for solver in ("ipopt", "rfmodel"):
            x = r[solver]
            wall = f"> {args.cap:.0f}" if x.get("hit_cap") else f"{x['wall_time']:.2f}"
            note = x.get("status", "converged" if x.get("converged") else "not converged")
            print(
                f"{name:4s} {solver:8s} {wall:>8s} {x['loss']:16.10g} {x['iterations']:6d} "
                f"{x['eval_ns_per_mode_step']:12.2f}  {note}"
            )
        ri, rr = r["ipopt"], r["rfmodel"]
        print(
            f"{name:4s} ratios   time ipopt/rfmodel = {ri['wall_time'] / rr['wall_time']:.1f}x"
            f"{' (ipopt capped: lower bound)' if ri.get('hit_cap') else ''}, "
            f"loss rfmodel/ipopt − 1 = {rr['loss'] / ri['loss'] - 1:+.2e}, "
            f"eval cost ratio = {ri['eval_ns_per_mode_step'] / rr['eval_ns_per_mode_step']:.1f}x"
        )
        if "budget_residual" in rr:
            print(
                f"{name:4s} budget   Σm − S: rfmodel {rr['budget_residual']:+.1e}, ipopt "
                f"{ri['budget_residual']:+.1e}; rfmodel KKT residuals {rr['kkt']}; "
                f"one L + ∇(η, m) / one L + ∇η = {rr['eval_ratio_batch_grad']:.2f}x"
            )
    if args.json:
        from rfmodel.results import write_json

        write_json(args.json, rows)


if __name__ == "__main__":
    main()
