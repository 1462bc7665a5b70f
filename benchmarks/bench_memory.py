"""Peak memory of the long-horizon commands: loss_curve, its gradient, the solver and tune.

Each case runs in its own subprocess and reports its peak resident set size
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``), and the increase over the same process just
before the call (after importing rfmodel and building the problem). The bound to check:
O(N_eff·(√T + grid chunk) + T) — the checkpointed adjoint keeps √T states of N_eff modes, the
grid of ``tune`` goes in chunks of at most 2^22 rates, and a schedule and its loss curve are
O(T) vectors. Before the chunking, ``tune("power_scheduler", p, 10**6)`` held the whole
800 × 10^6 grid of schedules (6.4 GB of rates; 11.1 GB peak measured).

Usage::

    python benchmarks/bench_memory.py                  # T = 10^6 and 10^7, N = 100 modes
    python benchmarks/bench_memory.py --T 1e6 --n-modes 1000

Slow at T = 10^7 (minutes per case: every case runs the recursion over all T steps).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CASE = r"""
import json, resource, sys, time, warnings
import numpy as np
from rfmodel import Problem
from rfmodel.control import optimize_schedule
from rfmodel.dynamics import log_final_loss_and_grad, loss_curve
from rfmodel.schedules import tune

case, T, n = sys.argv[1], int(float(sys.argv[2])), int(sys.argv[3])
p = Problem(a=2.5, b=1.2, sigma=0.5, n_modes=n, batch=4, n_exact=n)
etas = np.full(T, 0.5 * p.eta_critical())
loss_curve(p, etas[:8])  # imports and compiles that every case shares
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
before, t0 = rss(), time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    if case == "loss_curve":
        loss_curve(p, etas)
    elif case == "loss+grad":
        log_final_loss_and_grad(p, etas)
    elif case == "optimize_schedule":
        optimize_schedule(p, T, controls=100, maxiter=2)
    else:
        tune(case.split(":")[1], p, T, maxiter=2, n_starts=1)
print(json.dumps({"peak": rss(), "before": before, "seconds": time.perf_counter() - t0,
                  "n_eff": p.n_eff}))
"""

GRIDS = {"cosine": 24 * 5, "power_scheduler": 8 * 5 * 5 * 4}


def run(case: str, T: int, n: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CASE, case, str(T), str(n)], capture_output=True, text=True
    )
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=float, nargs="+", default=[1e6, 1e7], help="horizons")
    ap.add_argument("--n-modes", type=int, default=100, help="modes (all exact)")
    ap.add_argument(
        "--big-grid-max-T",
        type=float,
        default=1e6,
        help="largest T for tune('power_scheduler') (800 grid points: slow)",
    )
    ap.add_argument(
        "--cases",
        nargs="+",
        default=[
            "loss_curve",
            "loss+grad",
            "optimize_schedule",
            "tune:cosine",
            "tune:power_scheduler",
        ],
        help="cases to run (default all)",
    )
    args = ap.parse_args()
    cases = args.cases
    print(f"{'case':24s} {'T':>9s} {'peak RSS':>10s} {'increase':>10s} {'8·T bytes':>10s}", end="")
    print(f" {'grid×T×8 (unchunked)':>21s} {'seconds':>8s}")
    for T in [int(t) for t in args.T]:
        for case in cases:
            if case == "tune:power_scheduler" and T > args.big_grid_max_T:
                continue
            t0 = time.perf_counter()
            r = run(case, T, args.n_modes)
            grid = GRIDS.get(case.split(":")[-1])
            unchunked = f"{grid * T * 8 / 2**30:.1f} GiB" if grid else "—"
            peak, rise = r["peak"] / 2**20, (r["peak"] - r["before"]) / 2**20
            print(
                f"{case:24s} {T:9.0e} {peak:8.0f} MB {rise:8.0f}"
                f" MB {8 * T / 2**20:7.0f} MB {unchunked:>21s} {time.perf_counter() - t0:8.1f}",
                flush=True,
            )
    print(
        f"(N = {args.n_modes} exact modes; one process per case; 'increase' is over the same "
        "process before the call)"
    )


if __name__ == "__main__":
    main()
