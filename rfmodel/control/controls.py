"""The optimized controls (docs/theory.md §6): each a :class:`Control` block of the solver's vector
with its bounds, coordinates, optional budget and first-order residual; the validation of the
settings of each kind (rate, batch with its sample budget, momentum); and the exact projection
onto a budget."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from ..dynamics.momentum import check_betas
from ..optim import projected_gradient
from ..problem import Problem, check_finite
from .grid import LOG_RANGE

__all__ = [
    "CONTROLS",
    "BETA_MAX",
    "Control",
    "check_solver_args",
    "optimize_names",
    "validate_batch",
    "validate_momentum",
    "project_budget",
]


#: The controls ``optimize_schedule(optimize=...)`` knows, in the order of their blocks.
CONTROLS = ("eta", "batch", "momentum")
#: Default bound on the optimized momentum β_t (the common practical value; any value < 1 may be
#: passed as ``beta_max``).
BETA_MAX = 0.9


def check_solver_args(problem: Problem, T: int, controls, eta_max, smoothness) -> tuple[int, float]:
    if not isinstance(T, int | np.integer) or T < 1:
        raise ValueError(f"T must be an integer >= 1; got T={T!r}")
    K = T if controls is None else controls
    if not isinstance(K, int | np.integer) or not 1 <= K <= T:
        raise ValueError(
            f"controls must be None (per step) or an integer in [1, T={T}]; "
            f"got controls={controls!r}"
        )
    if eta_max is None:
        eta_max = problem.eta_mode_bound()
    eta_max = float(eta_max)
    if not math.isfinite(eta_max) or eta_max <= 0:
        raise ValueError(f"eta_max must be a finite number > 0; got eta_max={eta_max}")
    if not math.isfinite(float(smoothness)) or smoothness < 0:
        raise ValueError(f"smoothness must be a finite number >= 0; got {smoothness}")
    return int(K), eta_max


# --------------------------------------------------------------------------- several controls
@dataclass(frozen=True)
class Control:
    """One optimized control: K piecewise-constant values u_j (step t uses u[⌊tK/T⌋]).

    A block of the solver's vector with its own bounds ``lo ≤ u ≤ hi``, its coordinates (``log``:
    the solver moves x = log u, with x ≥ log hi − 30 when lo = 0; ``log1m``: x = −log(1 − u),
    for a momentum u ∈ [0, 1); else x = u), an optional
    budget Σ_t u_t = ``total`` (an equality: Σ_j n_j u_j = total over segment lengths n_j), and
    the coordinates of its first-order residual (``kkt_log``: in log u, i.e. relative; else in
    u). docs/theory.md §6.
    """

    name: str
    lo: float
    hi: float
    log: bool = True
    total: float | None = None
    kkt_log: bool = False
    log1m: bool = False

    def x_bounds(self) -> tuple[float, float]:
        if self.log1m:
            return -math.log1p(-self.lo), -math.log1p(-self.hi)
        if not self.log:
            return self.lo, self.hi
        top = math.log(self.hi)
        return (math.log(self.lo) if self.lo > 0 else top - LOG_RANGE), top

    def to_x(self, u: np.ndarray) -> np.ndarray:
        if self.log1m:
            return -np.log1p(-np.clip(u, self.lo, self.hi))
        if not self.log:
            return np.clip(u, self.lo, self.hi)
        return np.log(np.clip(u, math.exp(self.x_bounds()[0]), self.hi))

    def from_x(self, x: np.ndarray) -> np.ndarray:
        if self.log1m:
            return -np.expm1(-x)
        return np.exp(x) if self.log else x

    def dudx(self, u: np.ndarray) -> np.ndarray:
        """du/dx: the chain rule from u to the solver's coordinates."""
        if self.log1m:
            return 1.0 - u
        return u if self.log else np.ones_like(u)

    def residual(self, u: np.ndarray, g: np.ndarray, n: np.ndarray, nu: float) -> float:
        """Projected gradient of the Lagrangian ∇_u log L + ν ∇_u (Σ_j n_j u_j) (ν = 0 without a
        budget), in this block's residual coordinates: zero exactly at a KKT point."""
        g = g + nu * n
        if not self.kkt_log:
            return projected_gradient(u, g, self.lo, self.hi)
        return projected_gradient(np.log(u), u * g, math.log(self.lo), math.log(self.hi))

    def multiplier(self, u: np.ndarray, g: np.ndarray, n: np.ndarray) -> float:
        """Least-squares estimate of the budget's multiplier ν from the values strictly inside
        their bounds (exact at a KKT point with at least one of them); 0 without a budget."""
        if self.total is None:
            return 0.0
        free = (u > self.lo * (1 + 1e-9)) & (u < self.hi * (1 - 1e-9))
        if not np.any(free):
            free = np.ones_like(u, dtype=bool)
        w = self.dudx(u) if self.kkt_log else np.ones_like(u)
        a, h = (w * g)[free], (w * n)[free]
        return float(-(a @ h) / (h @ h))


def optimize_names(optimize) -> tuple[str, ...]:
    names = (optimize,) if isinstance(optimize, str) else optimize
    try:
        names = tuple(str(x) for x in names)
    except TypeError:
        names = ()
    unknown = [x for x in names if x not in CONTROLS]
    if not names or unknown or "eta" not in names:
        raise ValueError(
            f"optimize must name controls from {list(CONTROLS)} and include 'eta'; got "
            f"optimize={optimize!r}"
        )
    return tuple(x for x in CONTROLS if x in names)


def validate_batch(
    problem: Problem, T: int, names, samples, batch_min, batch_max, batches
) -> tuple[float, float, float] | None:
    """(S, batch_min, batch_max) when the batch is optimized, else None (checked first)."""
    if "batch" not in names:
        for name, v in (("samples", samples), ("batch_min", batch_min), ("batch_max", batch_max)):
            if v is not None:
                raise ValueError(
                    f"{name} is a setting of the batch control: pass optimize=('eta', 'batch') "
                    f"with it; got {name}={v!r} and optimize={names!r}"
                )
        return None
    if batches is not None:
        raise ValueError(
            "batches (fixed per-step batch sizes) cannot be given with optimize=('eta', 'batch'),"
            " which optimizes them; pass samples=S (and batch_min/batch_max) instead"
        )
    S = T * float(problem.batch) if samples is None else check_finite("samples", samples)
    lo = 1.0 if batch_min is None else check_finite("batch_min", batch_min)
    if lo < 1:
        raise ValueError(f"batch_min must be >= 1; got batch_min={batch_min!r}")
    hi = None if batch_max is None else check_finite("batch_max", batch_max)
    if hi is not None and hi < lo:
        raise ValueError(f"batch_max must be >= batch_min={lo:g}; got batch_max={hi:g}")
    if hi is None:
        hi = max(lo, S - (T - 1) * lo)  # the most one step can take
    if not T * lo <= S <= T * hi:
        raise ValueError(
            f"samples must be in [T*batch_min, T*batch_max] = [{T * lo:g}, {T * hi:g}] (each "
            f"of the T steps takes between batch_min and batch_max samples); got "
            f"samples={S:g} with T={T}"
        )
    return S, lo, hi


def validate_momentum(names, beta_max, betas, T: int) -> float | None:
    """β_max when the momentum is optimized, else None; fixed ``betas`` checked (shape (T,),
    each in [0, 1)) and refused together with an optimized momentum."""
    if "momentum" not in names:
        if beta_max is not None:
            raise ValueError(
                "beta_max is a setting of the momentum control: pass "
                f"optimize=('eta', 'momentum') with it; got beta_max={beta_max!r}"
            )
    elif betas is not None:
        raise ValueError(
            "betas (fixed per-step momenta) cannot be given with optimize=(..., 'momentum'), "
            "which optimizes them; pass beta_max instead"
        )
    if betas is not None:
        check_betas(betas, np.zeros(T))
    if "momentum" not in names:
        return None
    bm = BETA_MAX if beta_max is None else check_finite("beta_max", beta_max)
    if not 0 < bm < 1:
        raise ValueError(f"beta_max must be in (0, 1); got beta_max={beta_max!r}")
    return bm


def project_budget(u: np.ndarray, n: np.ndarray, total: float, lo: float, hi: float) -> np.ndarray:
    """A point of {lo ≤ u ≤ hi, Σ_j n_j u_j = total}: u·e^τ clipped to the bounds (the same
    relative change for every value not at a bound), the scalar τ solved to machine precision
    (the sum is monotone in τ).

    >>> project_budget(np.array([1.0, 2.0, 4.0]), np.ones(3), 14.0, 1.0, 8.0).tolist()
    [2.0, 4.0, 8.0]
    >>> np.round(project_budget(np.array([1.0, 2.0, 3.0]), np.ones(3), 12.0, 1.0, 5.0), 9).tolist()
    [2.333333333, 4.666666667, 5.0]
    """
    u = np.asarray(u, np.float64)

    def excess(tau: float) -> float:
        return float(n @ np.clip(u * math.exp(tau), lo, hi)) - total

    a, b = math.log(lo / float(np.max(u))), math.log(hi / float(np.min(u)))
    tau = optimize.brentq(excess, a, b, xtol=1e-15, rtol=4 * np.finfo(float).eps)
    return np.clip(u * math.exp(tau), lo, hi)
