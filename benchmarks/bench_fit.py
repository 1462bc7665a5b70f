"""Time of a whole fit: rfmodel's model and the two empirical loss laws on 9 runs × 200 points.

The target (issue 20): 9 runs × 200 logged points over 24 000 steps fit in ≤ 30 s on 2 idle
cores, compilation and the profile of a − b included. Each model is fitted in a fresh process
(a cold start, as a user's ``rfmodel fit`` is); the script prints wall and CPU seconds, the
ratio to the 30 s target and the machine's load average, so a number measured on a busy
machine says so.

Usage::

    python benchmarks/bench_fit.py             # rf, mpl, annealing; 3 repeats each (medians)
    python benchmarks/bench_fit.py --repeats 1 --models rf
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CASE = r"""
import json, resource, sys, time
import numpy as np
from rfmodel.practice import fit_curves, fit_law, synthetic_runs
from rfmodel.practice.laws import LawRun
from rfmodel.schedules import as_array, cosine, wsd

model = sys.argv[1]
T, P, h = 24_000, 0.1, 12_000
cos = np.asarray(as_array(cosine(P, T), T))
half = lambda s: np.concatenate([np.asarray(as_array(s, h)), np.zeros(T - h)])
sch = {
    "constant": np.full(T, P),
    "constant_half": np.full(T, P / 2),
    "cosine": 0.9 * cos + 0.1 * P,
    "cosine_0": cos,
    "cosine_12k": half(cosine(P, h)),
    "wsd": np.asarray(as_array(wsd(P, T, decay=0.2), T)),
    "wsd_12k": half(wsd(P, h, decay=0.1)),
    "two_stage": np.where(np.arange(T) < 16_000, P, P / 10),
    "linear": P * (1 - np.arange(T) / T),
}
runs = synthetic_runs(a=2.2, b=1.4, steps=T, every=T // 200, noise=0.003, seed=3, schedules=sch)

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

t0, c0 = time.perf_counter(), cpu()
if model == "rf":
    fit = fit_curves(runs)
else:
    fit = fit_law(model, [LawRun.from_run(r) for r in runs])
print(json.dumps({"wall": time.perf_counter() - t0, "cpu": cpu() - c0, "rms": float(fit.rms)}))
"""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="rf,mpl,annealing")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    print(f"load average before: {os.getloadavg()[0]:.1f} (2-core target: 30 s on idle cores)")
    print(f"{'model':10s} {'wall (median)':>14s} {'cpu (median)':>13s} {'wall / 30 s':>12s}  rms")
    for model in args.models.split(","):
        outs = []
        for _ in range(args.repeats):
            r = subprocess.run(
                [sys.executable, "-c", CASE, model], capture_output=True, text=True, check=True
            )
            outs.append(json.loads(r.stdout.strip().splitlines()[-1]))
        wall = statistics.median(o["wall"] for o in outs)
        cpu = statistics.median(o["cpu"] for o in outs)
        print(f"{model:10s} {wall:13.1f}s {cpu:12.1f}s {wall / 30:12.2f}  {outs[0]['rms']:.4f}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
