"""Speed of segment propagation (docs/theory.md §5) against the step recursion.

Prints, measured in one run (medians over repeats, after compilation):
- one log L(T) + gradient by segments at T = 10^7, K = 400 (log-spaced grid), N_eff ≈ 600
  (the easy setting of the experiments, N = 10^6 binned), and its parts: the roots of the K
  secular equations alone and the forward pass (L at the boundaries) alone;
- the same for the hard setting (N = 10^12 binned, N_eff = 686), whose binned tail puts roots
  within ulps of their poles;
- the same schedule at a T where the step recursion also runs (T = 10^5, K = 400): both times,
  their ratio, and the largest relative difference of L(T) and of the gradient;
- one optimal schedule at T = 10^7 (K = 400, log grid, default start), wall time included
  compilation.

Usage: ``python benchmarks/bench_segments.py [--repeats 3] [--no-solve]``

Measured 2026-11-30 on the development machine's 2 cores with nothing else running (two runs,
medians of 5): one L + ∇L at T = 10^7, K = 400, easy (N_eff = 575): 1.23 s / 1.60 s (roots
0.59 / 0.70 s); hard (N_eff = 686): 1.70 s / 2.12 s; the step recursion 22x slower in both runs.
The optimal schedule at T = 10^7, K = 400 (log grid, default start): 160 s, 118 evaluations, a
KKT point (residual 7.6e-7 in log rates). Before the log-grid preconditioning and growth bounds
of ``rfmodel.control.grid.grid_scale`` / ``rate_bounds`` it did not finish in 10 minutes; K = 60
took 534 s then (at load ≈ 10; 500 iterations, no KKT point), 20 s now. Why one evaluation
got faster earlier: reductions as matrix-vector products instead of XLA row sums (0.19 vs
0.28 s per 400 passes over a 575² matrix), eigenvectors never formed (products with R), and for
the hard phase a root iteration that no longer falls back to bisection in the binned tail.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from bench_dynamics import median_time

from rfmodel import Problem
from rfmodel._x64 import float64
from rfmodel.control import optimize_schedule
from rfmodel.dynamics import log_final_loss_and_grad as step_objective
from rfmodel.dynamics import segments
from rfmodel.segments import log_final_loss_and_grad as segment_objective
from rfmodel.segments import log_lengths


def schedule(T: int, K: int) -> tuple[np.ndarray, np.ndarray]:
    n = log_lengths(T, K)
    x = (np.cumsum(n) - 0.5 * n) / T
    return 0.05 * T**-0.2 * (1 - x) ** 1.2 + 1e-5, n


@float64
def parts(p: Problem, u: np.ndarray, n: np.ndarray, repeats: int) -> tuple[float, float]:
    """Seconds for the K secular equations alone and for the forward pass alone."""
    lam, uu = segments._problem_arrays(p)[:2]
    m = np.full(u.shape, float(p.batch))
    roots = jax.jit(segments._all_roots)
    t_roots = median_time(lambda: jax.block_until_ready(roots(lam, uu, u, m)), repeats)
    t_fwd = median_time(lambda: segments.segment_losses(p, u, n), repeats)
    return t_roots, t_fwd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-solve", action="store_true", help="skip the T = 10^7 optimization")
    args = ap.parse_args()
    p = Problem(a=2.5, b=1.2, sigma=0.3, n_modes=10**6, batch=4, n_exact=200)
    K = 400
    print(f"problem: a=2.5, b=1.2, σ=0.3, m=4, N=10^6 binned, N_eff = {p.n_eff}; K = {K}")
    u, n = schedule(10**7, K)
    t_seg = median_time(lambda: segment_objective(p, u, n), args.repeats)
    t_roots, t_fwd = parts(p, u, n, args.repeats)
    print(
        f"segments, T = 10^7: one log L + gradient {t_seg:.3f} s (target ≤ 2 s); "
        f"roots alone {t_roots:.3f} s, forward (L at the boundaries) {t_fwd:.3f} s"
    )
    hard = Problem(
        a=1.5, b=2.5, sigma=0.5, n_modes=10**12, batch=4, n_exact=200, bins_per_decade=50
    )
    t_hard = median_time(lambda: segment_objective(hard, u, n), args.repeats)
    print(f"hard (N_eff = {hard.n_eff}), same schedule: one log L + gradient {t_hard:.3f} s")
    T = 10**5
    u, n = schedule(T, K)
    per_step = np.repeat(u, n)
    t_s = median_time(lambda: segment_objective(p, u, n), args.repeats)
    t_r = median_time(lambda: step_objective(p, per_step), args.repeats)
    v_s, g_s = segment_objective(p, u, n)
    v_r, g_r = step_objective(p, per_step)
    g_r = np.bincount(np.repeat(np.arange(K), n), weights=g_r)
    print(
        f"T = 10^5: segments {t_s:.3f} s, step recursion {t_r:.3f} s "
        f"(steps/segments = {t_r / t_s:.2f}); |ΔL/L| = {abs(np.expm1(v_s - v_r)):.1e}, "
        f"max |Δg|/max|g| = {np.max(np.abs(g_s - g_r)) / np.max(np.abs(g_r)):.1e}"
    )
    print(
        f"step recursion extrapolated to T = 10^7: {t_r * 100:.1f} s per evaluation, "
        f"{t_r * 100 / t_seg:.0f}x the segment path"
    )
    if not args.no_solve:
        t0 = time.perf_counter()
        res = optimize_schedule(p, 10**7, controls=K, grid="log")
        wall = time.perf_counter() - t0
        print(
            f"optimal schedule, T = 10^7, K = {K} (log grid): {wall:.1f} s (target ≤ 300 s), "
            f"{res.evaluations} evaluations, L = {res.loss:.6g}, converged = {res.converged} "
            f"(KKT residual {res.projected_gradient:.1e} in log rates)"
        )


if __name__ == "__main__":
    main()
