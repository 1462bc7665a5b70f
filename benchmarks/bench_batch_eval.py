"""Cost of one L + ∇(η, m) against one L + ∇η (the solver's objective, docs/theory.md §2, §6).

Both come from the same adjoint pass (``log_final_loss_and_grad(..., batch_grad=True)`` also
returns ∂ log L/∂m_t); the target is ≤ 1.5× the η-only evaluation. Measured in one run,
interleaved (a load change on a shared machine hits both alike), medians after compilation.

Usage: ``python benchmarks/bench_batch_eval.py [--repeats 21]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rfmodel import Problem
from rfmodel.dynamics import log_final_loss_and_grad

SIZES = [(500, 1000), (2000, 10_000)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=21)
    args = ap.parse_args()
    print(f"{'N':>6s} {'T':>7s} {'L+∇η ms':>9s} {'L+∇(η,m) ms':>12s} {'ratio':>6s}")
    rng = np.random.default_rng(0)
    for n, T in SIZES:
        p = Problem(a=2.5, b=1.2, sigma=0.5, n_modes=n, batch=5, n_exact=n)
        etas = 0.3 * np.exp(0.1 * rng.standard_normal(T))
        m = 1 + 9 * rng.random(T)
        times: dict[bool, list[float]] = {False: [], True: []}
        for i in range(-1, args.repeats):  # i = -1: compilation, not timed
            for both in (False, True):
                t0 = time.perf_counter()
                log_final_loss_and_grad(p, etas * (1 + 1e-9 * i), m, batch_grad=both)
                if i >= 0:
                    times[both].append(time.perf_counter() - t0)
        one, two = (float(np.median(times[k])) for k in (False, True))
        print(f"{n:6d} {T:7d} {one * 1e3:9.2f} {two * 1e3:12.2f} {two / one:6.2f}")


if __name__ == "__main__":
    main()
