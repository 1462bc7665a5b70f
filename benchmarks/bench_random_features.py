"""Cost of the deterministic equivalent of Gaussian random features against drawing them.

Prints, measured in one run (medians over repeats):
- ``Problem.from_random_features(key=None)`` (the average over F) at N = 10^3, 10^4, 10^5 with
  an infinite input dimension M = ∞: seconds, kept modes, grid nodes;
- one draw (``key=...``) at N = 200, M = 4000 and at N = 1000, M = 20 000 (N×M projection, N×N
  eigendecomposition), and the deterministic equivalent at the same sizes, as ratios.

Usage: ``python benchmarks/bench_random_features.py [--repeats 3]``
"""

from __future__ import annotations

import argparse
import math

import jax
from bench_dynamics import median_time  # benchmarks/ is on sys.path when run as a script

from rfmodel import Problem
from rfmodel.random_features import spectral_density


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    r = args.repeats
    a, b = 2.5, 1.2
    print(f"a = {a}, b = {b}; medians of {r}\n")
    print(f"{'N':>7s} {'M':>7s} {'what':28s} {'seconds':>9s} {'modes':>6s} {'nodes':>6s}")
    for n in (1000, 10_000, 100_000):
        sec = median_time(
            lambda n=n: Problem.from_random_features(a, b, n_features=n, n_inputs=math.inf), r
        )
        p = Problem.from_random_features(a, b, n_features=n, n_inputs=math.inf)
        nodes = spectral_density(a, b, n_features=n, n_inputs=math.inf).x.size
        print(
            f"{n:7d} {'inf':>7s} {'deterministic equivalent':28s} {sec:9.3f} {p.n_eff:6d} "
            f"{nodes:6d}"
        )
    Problem.from_random_features(a, b, n_features=10, n_inputs=20, key=jax.random.key(0))
    for n, m in ((200, 4000), (1000, 20_000)):
        keys = iter(range(1, 100))
        draw = median_time(
            lambda n=n, m=m, keys=keys: Problem.from_random_features(
                a, b, n_features=n, n_inputs=m, key=jax.random.key(next(keys))
            ),
            r,
        )
        de = median_time(
            lambda n=n, m=m: Problem.from_random_features(a, b, n_features=n, n_inputs=m), r
        )
        print(f"{n:7d} {m:7d} {'one draw':28s} {draw:9.3f}")
        print(
            f"{n:7d} {m:7d} {'deterministic equivalent':28s} {de:9.3f}   "
            f"(= {de / draw:.2f} draws; averaging 64 draws costs {64 * draw / de:.0f}x more)"
        )


if __name__ == "__main__":
    main()
