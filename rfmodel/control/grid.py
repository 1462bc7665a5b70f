"""Where the controls sit on the horizon: the per-step control index of K piecewise-constant
controls, the segment grids (uniform, log, given lengths) with the choice between the step
recursion and segment propagation, warm starts resampled onto a grid, per-segment growth bounds
and the diagonal preconditioner of log-rate controls, and the monotone (non-increasing after the
warmup) coordinates (docs/theory.md §5, §6)."""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize

from ..dynamics.segments import Piecewise, check_segments, log_lengths, poles, uniform_lengths
from ..problem import Problem

__all__ = [
    "segment_index",
    "initial_controls",
    "grid_lengths",
    "segments_cheaper",
    "STEP_NS",
    "SEG_NS",
    "SEG_MIN_T",
    "GROWTH",
    "LOG_RANGE",
    "top_rate",
    "rate_bounds",
    "grid_scale",
    "Monotone",
]


def segment_index(T: int, K: int) -> np.ndarray:
    """Control index of each step: ⌊tK/T⌋ for t = 0..T−1 (segment lengths differ by ≤ 1)."""
    if K < 1 or K > T:
        raise ValueError(f"controls must be an integer in [1, T={T}]; got controls={K}")
    return (np.arange(T, dtype=np.int64) * K) // T


def initial_controls(init, K: int, centers: np.ndarray | None = None) -> np.ndarray:

    dst = (np.arange(K) + 0.5) / K if centers is None else centers
    if isinstance(init, Piecewise):  # a large-T result: resample its segments, not its steps
        src = (init.edges[:-1] + 0.5 * init.lengths) / len(init)
        return np.interp(dst, src, init.values)
    try:
        x = np.asarray(init, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"init must be a number or a 1-D array of rates; got {init!r}") from None
    if not np.all(np.isfinite(x)) or np.any(x < 0):
        raise ValueError("init must be finite and >= 0 (learning rates)")
    if x.ndim == 0:
        return np.full(K, float(x))
    if x.shape == (K,):
        return x.copy()
    if x.ndim == 1 and x.size >= 1:  # any other length: resample on the fraction t/T
        src = (np.arange(x.size) + 0.5) / x.size
        return np.interp(dst, src, x)
    raise ValueError(f"init must be a scalar or a 1-D schedule; got shape {x.shape}")


# --------------------------------------------------------------------------- segment path
# Long horizons are evaluated by segment propagation (docs/theory.md §5: O(K·N²) per evaluation
# instead of O(T·N)). ``method="auto"`` picks it when its cost model is the smaller. Measured
# (float64, loss + gradient, N_eff = 575, K = 400, one process, on a loaded 2-core machine): the
# step recursion 5.9 ns per mode-step, the segment path 23-26 ns per segment per (mode)², a
# ratio of ≈ 4; with the quiet-machine 3.3 ns per mode-step that is SEG_NS ≈ 14. Segments win
# once a segment holds more than ≈ 4·N steps (T = 10^7, K = 400: 25 000 steps per segment, about
# 10x faster); below SEG_MIN_T steps the step recursion is used whatever the model says (it is
# cheap there, and the committed results up to T = 51 200 keep their path and cache keys).
STEP_NS = 3.3
SEG_NS = 14.0
SEG_MIN_T = 100_000


def grid_lengths(T: int, K: int, grid) -> tuple[np.ndarray, np.ndarray | None]:
    """The K segment lengths of ``grid`` (``"uniform"``: as equal as possible, the ⌊tK/T⌋ grid of
    :func:`segment_index`; ``"log"``: :func:`rfmodel.segments.log_lengths`; or K lengths summing
    to T) and the segment centres t/T for resampling a warm start (``None`` on the uniform
    grid)."""
    if isinstance(grid, str):
        if grid not in ("uniform", "log"):
            raise ValueError(
                f"grid must be 'uniform', 'log' or K segment lengths summing to T; got {grid!r}"
            )
        if grid == "uniform":
            return uniform_lengths(T, K), None
        lengths = log_lengths(T, K)
    else:
        lengths = check_segments(np.ones(np.shape(grid)), grid)[1].astype(np.int64)
        if lengths.size != K or int(lengths.sum()) != T:
            raise ValueError(
                f"grid: {lengths.size} segment lengths summing to {int(lengths.sum())}; "
                f"expected K={K} lengths summing to T={T}"
            )
    return lengths, (np.cumsum(lengths) - 0.5 * lengths) / T


def segments_cheaper(problem: Problem, T: int, K: int) -> bool:
    """The cost model of ``method="auto"``: segment propagation beats the step recursion."""
    n = problem.n_eff
    return T >= SEG_MIN_T and T * n * STEP_NS > K * n * n * SEG_NS


GROWTH = 5.0
#: Log-rate controls are searched in [log eta_max − LOG_RANGE, log eta_max].
LOG_RANGE = 30.0


def top_rate(problem: Problem, eta_max: float) -> float:
    """The largest rate of a growth-bounded solve: eta_max, but never closer than 1e-6
    (relative) to the per-mode bound, where the top mode's pole ε reaches 0 and coincides with
    the origin of root 0: the segment adjoint is off there (measured: ∂ log L/∂ log η = 6e-3
    against −5e-8 by finite differences at the bound, exact again from 1e-6 below it)."""
    return min(float(eta_max), problem.eta_mode_bound() * (1 - 1e-6))


def rate_bounds(problem: Problem, lengths: np.ndarray, eta_max: float) -> np.ndarray:
    """Per-segment upper bounds on the rate: the largest η ≤ ``eta_max`` at which a segment of
    n_j steps at constant η amplifies the state by at most e^GROWTH on its own.

    Above η_c the map's top eigenvalue μ_0 = 1 − ν_0 exceeds 1 and n steps grow by μ_0ⁿ; on a log
    grid a 2·10^6-step segment overflows float64 a fraction of a percent above η_c, a one-step
    segment never. The hard-phase optimum holds its plateau 0.7% below η_c, so from the box
    [0, eta_max] the line search kept landing on overflowed schedules (no value, no gradient) and
    L-BFGS-B stopped after 10 iterations (T = 10^7, K = 60). ν_0 ≥ −c with c = expm1(G/n) is
    Σ_k z_k/(ε_k + c) ≤ 1 (the secular equation of docs/theory.md §5 is increasing below its
    first pole), the stability sum S(η) with every pole shifted by c: one root-finding in η per
    distinct length, O(N) per evaluation. An optimum growing its loss e^5-fold within one
    segment would not be an optimum, so the bound is inactive there (``optimize_schedule``
    warns if a rate ends on it).
    """

    m = float(problem.batch)
    lam, w = problem.lam, problem.weight
    n_all = np.asarray(lengths, np.int64)
    eta_max = top_rate(problem, eta_max)
    out = np.full(n_all.shape, eta_max)

    def excess(eta: float, c: float) -> float:
        eps, g = poles(lam, eta, m)
        return float(np.sum(g * w * lam * lam / (eps + c))) - 1.0

    lo = min(problem.eta_critical(), float(eta_max))
    for n in np.unique(n_all):
        c = math.expm1(GROWTH / float(n))
        if excess(eta_max, c) <= 0:
            continue
        root = optimize.brentq(excess, lo, eta_max, args=(c,), xtol=1e-15, rtol=1e-14)
        out[n_all == n] = root
    return out


def grid_scale(lengths: np.ndarray) -> np.ndarray:
    """Diagonal preconditioner for log-rate controls on a non-uniform grid: s_j = (n_j/n̄)^¼.

    On a log grid the segment lengths n_j span six decades (T = 10^7, K = 60: 1 … 2·10^6 steps)
    and so does the curvature of log L in log η_j; a single L-BFGS-B step length fits none of
    them. Measured on the easy problem of ``benchmarks/bench_segments.py`` (T = 10^7, K = 60,
    log grid, from the best constant rate): unscaled, 500 iterations end still moving, 5e-8
    (relative) above the optimum; s = (n/n̄)^¼ reaches it (a gradient of 5e-8 in log
    coordinates) in 115 iterations; s = (n/n̄)^½ overshoots (stalls after 71 at a gradient of
    1e-2), and s = √(|∂ log L/∂ log η| at the start) takes 145. On the uniform grid s ≡ 1 (not
    applied).
    """
    n = np.asarray(lengths, np.float64)
    return (n / n.mean()) ** 0.25


class Monotone:
    """Controls non-increasing after the warmup: u_0..u_p free, then u_j = u_{j−1} e^{r_j} with
    r_j ≤ 0 (j > p). L-BFGS-B works on y = (log u_0, …, log u_p, r_{p+1}, …, r_{K−1}), where the
    constraint is a box; the peak index p is fixed (the warmup is the part before it)."""

    def __init__(self, peak: int, lo: float, log_max: float) -> None:
        self.p, self.lo, self.log_max = int(peak), lo, log_max

    def y_of(self, u: np.ndarray) -> np.ndarray:
        v = np.log(u)
        return np.concatenate([v[: self.p + 1], np.diff(v[self.p :])])

    def u_of(self, y: np.ndarray) -> np.ndarray:
        p = self.p
        return np.exp(np.concatenate([y[: p + 1], y[p] + np.cumsum(y[p + 1 :])]))

    def bounds(self, k: int) -> list[tuple[float, float]]:
        p = self.p
        return [(self.lo, self.log_max)] * (p + 1) + [(self.lo - self.log_max, 0.0)] * (k - p - 1)

    def grad_y(self, u: np.ndarray, g: np.ndarray) -> np.ndarray:
        """Chain rule from ∂f/∂u to ∂f/∂y: through u = e^v, then v_j = v_p + Σ_{i≤j} r_i."""
        gv = g * u
        tail = np.cumsum(gv[self.p :][::-1])[::-1]  # Σ_{j≥i} ∂f/∂v_j
        return np.concatenate([gv[: self.p], tail])

    def value_and_grad(self, fg, y: np.ndarray) -> tuple[float, np.ndarray]:
        u = self.u_of(y)
        v, g = fg(u)
        return v, self.grad_y(u, g)

    def projected_gradient(self, u: np.ndarray, g: np.ndarray) -> float:
        """The KKT residual of the constrained problem, in y."""
        y, gy = self.y_of(u), self.grad_y(u, g)
        lo, hi = np.array(self.bounds(len(u))).T
        return float(np.max(np.abs(y - np.clip(y - gy, lo, hi))))
