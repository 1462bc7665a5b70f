"""A chain of horizons with one compiled objective against one per horizon (a cold start).

``rfmodel.control.optimize_schedules`` solves a list of horizons, each warm-started from the
last, inside :func:`rfmodel.dynamics.steps.shared_horizons`: SGD's objective is compiled once
for the chain instead of once per T. Each chain runs in a fresh Python process with no
persistent compilation cache (what a first run pays), the two variants alternating in each
round; the per-horizon variant replaces ``shared_horizons`` with a context that does nothing.
Prints the median seconds of the chain (imports excluded), their ratio, the load average, and
the largest relative difference between the two variants' optimal losses.

Usage::

    python benchmarks/bench_chain.py                 # hard problem, N = 1500, T = 256…4096
    python benchmarks/bench_chain.py --repeats 5 --Ts 100,200,400,800,1600,3200
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CASE = r"""
import contextlib, json, sys, time
from rfmodel import Problem
import rfmodel.control.chains as chains

if sys.argv[1] == "per-horizon":
    chains.shared_horizons = lambda t_max: contextlib.nullcontext()
Ts = [int(t) for t in sys.argv[2].split(",")]
p = Problem(a=1.5, b=2.5, sigma=0.5, n_modes=int(sys.argv[3]), batch=4)
t0 = time.perf_counter()
out = chains.optimize_schedules(p, Ts, controls=64, progress=False)
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "losses": [out[T].loss for T in Ts]}))
"""


def _run(variant: str, Ts: str, n: int) -> dict:
    env = {**os.environ, "RFMODEL_COMPILATION_CACHE": "0"}
    r = subprocess.run(
        [sys.executable, "-c", CASE, variant, Ts, str(n)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--Ts", default="256,512,1024,2048,4096")
    ap.add_argument("--modes", type=int, default=1500)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    times: dict[str, list[float]] = {"shared": [], "per-horizon": []}
    losses: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for variant in times:
            r = _run(variant, args.Ts, args.modes)
            times[variant].append(r["seconds"])
            losses[variant] = r["losses"]
    med = {k: statistics.median(v) for k, v in times.items()}
    diff = max(abs(a / b - 1) for a, b in zip(losses["shared"], losses["per-horizon"], strict=True))
    print(f"chain T = {args.Ts}, N = {args.modes}, K = 64, hard problem, no compilation cache:")
    for k, v in times.items():
        print(f"  {k:12s} median {med[k]:.2f} s  (runs: {', '.join(f'{x:.2f}' for x in v)})")
    print(f"  per-horizon / shared: {med['per-horizon'] / med['shared']:.2f}x")
    print(f"  largest relative difference of the optimal losses: {diff:.1e}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
