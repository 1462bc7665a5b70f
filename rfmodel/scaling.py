"""Power-law fits with uncertainty, local exponents, and phase classification.

Every exponent the experiments report comes from :func:`power_law_fit`: ordinary least squares
of log y on log x over a stated range ``[x_min, x_max]``, with the standard error of the slope
and a 95% interval (Student t on n − 2 degrees of freedom, or a case-resampling bootstrap).
The data here are deterministic (exact expected losses), so the interval measures how far the
points are from one straight line on log-log axes over that range (curvature, i.e. finite-size
drift), not sampling noise. :func:`local_exponents` shows the drift directly: slopes over
sliding windows of consecutive points.

Conventions: ``exponent`` is the slope p of y ≈ C·x^p. A decaying loss L ~ T^(−r) has
``exponent`` = −r; the experiments quote r = −exponent.

>>> x = np.array([100.0, 200, 400, 800, 1600])
>>> fit = power_law_fit(x, 3.0 * x**-0.6)
>>> round(fit.exponent, 6), round(fit.prefactor, 6), fit.n
(-0.6, 3.0, 5)
>>> local_exponents(x, x**-0.5)[1].round(6).tolist()
[-0.5, -0.5, -0.5, -0.5]
>>> power_law_fit([1.0, 2.0], [1.0, -1.0])
Traceback (most recent call last):
...
ValueError: y must be finite and > 0 in the fitted range; got min -1.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

__all__ = [
    "PowerLawFit",
    "power_law_fit",
    "local_exponents",
    "sliding_fits",
    "max_rule_loss_exponent",
    "theory_xi",
    "classify_phase",
    "compute_optimal_exponents",
]


@dataclass(frozen=True)
class PowerLawFit:
    """A fit y ≈ prefactor · x^exponent by least squares on log-log axes.

    Attributes:
        exponent: fitted slope p.
        prefactor: C (exp of the intercept).
        stderr: OLS standard error of the slope (NaN for n = 2: no degrees of freedom).
        lo, hi: the interval for the slope at ``level`` (NaN when it cannot be computed).
        level: coverage of the interval (e.g. 0.95).
        method: ``"t"`` (Student t, n − 2 dof) or ``"bootstrap"`` (percentile, case resampling).
        x_min, x_max: the range of x actually fitted (smallest and largest fitted point).
        n: number of fitted points.
        rms: root-mean-square residual of log y (0 for a perfect power law).
    """

    exponent: float
    prefactor: float
    stderr: float
    lo: float
    hi: float
    level: float
    method: str
    x_min: float
    x_max: float
    n: int
    rms: float

    def predict(self, x) -> np.ndarray:
        """prefactor · x^exponent."""
        return self.prefactor * np.asarray(x, dtype=np.float64) ** self.exponent

    def negated(self) -> PowerLawFit:
        """The same fit with the sign of the slope flipped (for decay exponents r = −p)."""
        return PowerLawFit(
            -self.exponent,
            self.prefactor,
            self.stderr,
            -self.hi,
            -self.lo,
            self.level,
            self.method,
            self.x_min,
            self.x_max,
            self.n,
            self.rms,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-serializable fields."""
        return asdict(self)

    def __str__(self) -> str:
        iv = "" if math.isnan(self.lo) else f" [{self.lo:.3f}, {self.hi:.3f}]"
        return (
            f"{self.exponent:.3f}{iv} (n={self.n}, x in [{self.x_min:g}, {self.x_max:g}], "
            f"{self.method})"
        )


def _as_1d(name: str, v) -> np.ndarray:
    x = np.asarray(v, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array; got shape {x.shape}")
    return x


def _ols(lx: np.ndarray, ly: np.ndarray) -> tuple[float, float, float, float]:
    """(slope, intercept, stderr of slope, rms residual) of ly on lx."""
    n = lx.size
    xm, ym = lx.mean(), ly.mean()
    sxx = float(np.sum((lx - xm) ** 2))
    slope = float(np.sum((lx - xm) * (ly - ym)) / sxx)
    icpt = float(ym - slope * xm)
    resid = ly - (icpt + slope * lx)
    rss = float(resid @ resid)
    se = math.sqrt(rss / (n - 2) / sxx) if n > 2 else math.nan
    return slope, icpt, se, math.sqrt(rss / n)


def power_law_fit(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    *,
    x_min: float | None = None,
    x_max: float | None = None,
    bootstrap: int = 0,
    level: float = 0.95,
    seed: int = 0,
) -> PowerLawFit:
    """Fit y ≈ C·x^p by least squares of log y on log x, over x_min ≤ x ≤ x_max.

    Args:
        x, y: 1-D arrays of equal length; x > 0 and y > 0 (and finite) inside the range.
        x_min, x_max: inclusive range of x to fit (default: all points).
        bootstrap: 0 for the Student-t interval from the OLS standard error (n − 2 dof); B > 0
            for a percentile interval from B case-resampling bootstrap fits (resamples with a
            single distinct x are skipped).
        level: interval coverage in (0, 1).
        seed: bootstrap random seed.

    Returns:
        :class:`PowerLawFit`. Needs at least 2 distinct x in range (an interval needs ≥ 3).

    Raises:
        ValueError: naming the offending argument.
    """
    x, y = _as_1d("x", x), _as_1d("y", y)
    if x.shape != y.shape:
        raise ValueError(f"y must have the shape of x {x.shape}; got {y.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got level={level}")
    if not isinstance(bootstrap, int | np.integer) or bootstrap < 0:
        raise ValueError(f"bootstrap must be an integer >= 0; got bootstrap={bootstrap!r}")
    sel = np.ones(x.shape, bool)
    if x_min is not None:
        sel &= x >= x_min * (1 - 1e-12)
    if x_max is not None:
        sel &= x <= x_max * (1 + 1e-12)
    xs, ys = x[sel], y[sel]
    if not np.all(np.isfinite(xs)) or np.any(xs <= 0):
        raise ValueError("x must be finite and > 0 in the fitted range")
    if not np.all(np.isfinite(ys)) or np.any(ys <= 0):
        raise ValueError(f"y must be finite and > 0 in the fitted range; got min {ys.min()}")
    if np.unique(xs).size < 2:
        raise ValueError(
            f"x must have at least 2 distinct values in [x_min, x_max] = "
            f"[{x_min}, {x_max}]; got {np.unique(xs).size}"
        )
    lx, ly = np.log(xs), np.log(ys)
    slope, icpt, se, rms = _ols(lx, ly)
    n = xs.size
    if bootstrap:
        rng = np.random.default_rng(seed)
        slopes = []
        for _ in range(bootstrap):
            idx = rng.integers(0, n, n)
            if np.unique(lx[idx]).size < 2:
                continue
            slopes.append(_ols(lx[idx], ly[idx])[0])
        if slopes:
            lo, hi = np.quantile(slopes, [(1 - level) / 2, (1 + level) / 2])
        else:
            lo = hi = math.nan
        method = "bootstrap"
    else:
        half = stats.t.ppf((1 + level) / 2, n - 2) * se if n > 2 else math.nan
        lo, hi = slope - half, slope + half
        method = "t"
    return PowerLawFit(
        slope,
        math.exp(icpt),
        se,
        float(lo),
        float(hi),
        level,
        method,
        float(xs.min()),
        float(xs.max()),
        int(n),
        rms,
    )


def local_exponents(x, y, *, window: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Slopes of log y against log x over sliding windows of ``window`` consecutive points.

    Args:
        x, y: 1-D arrays, sorted by x, positive.
        window: points per window (2 = slope between consecutive points).

    Returns:
        (x_center, slope): the geometric mean of each window's x and its OLS slope, each of
        shape ``(len(x) − window + 1,)``.
    """
    fits = sliding_fits(x, y, window=window)
    return (
        np.array([math.sqrt(f.x_min * f.x_max) for f in fits]),
        np.array([f.exponent for f in fits]),
    )


def sliding_fits(x, y, *, window: int = 3, level: float = 0.95) -> list[PowerLawFit]:
    """:func:`power_law_fit` over each run of ``window`` consecutive points (x sorted)."""
    x, y = _as_1d("x", x), _as_1d("y", y)
    if not isinstance(window, int | np.integer) or window < 2:
        raise ValueError(f"window must be an integer >= 2; got window={window!r}")
    if x.shape != y.shape:
        raise ValueError(f"y must have the shape of x {x.shape}; got {y.shape}")
    if x.size < window:
        raise ValueError(f"x must have at least window={window} points; got {x.size}")
    if np.any(np.diff(x) <= 0):
        raise ValueError("x must be strictly increasing")
    return [
        power_law_fit(x[i : i + window], y[i : i + window], level=level)
        for i in range(x.size - window + 1)
    ]


def max_rule_loss_exponent(a: float, b: float) -> float:
    """Predicted optimal-loss exponent r in L*(T) ~ T^(−r): (a−1)/max(a, b) (docs/theory.md §6)."""
    if not a > 1 or not b > 1:
        raise ValueError(f"a and b must be > 1; got a={a}, b={b}")
    return (a - 1) / max(a, b)


def theory_xi(a: float, b: float) -> float:
    """Predicted peak-rate exponent ξ in η* ~ T^(−ξ): 1 − b/a (easy), 0 (hard)."""
    if not a > 1 or not b > 1:
        raise ValueError(f"a and b must be > 1; got a={a}, b={b}")
    return max(0.0, 1 - b / a)


def classify_phase(
    xi: PowerLawFit | float,
    plateau_ratio: float,
    *,
    xi_threshold: float = 0.05,
    pinned: float = 0.85,
) -> str:
    """The phase read off measured behaviour of the optimal schedules.

    ``"hard"``: the peak rate does not fall with T (ξ < ``xi_threshold``) and sits at the
    stability edge (``plateau_ratio`` = peak η* / η_c ≥ ``pinned`` at the largest T).
    ``"easy"``: the peak rate falls with T (ξ ≥ ``xi_threshold``) below the edge.
    ``"mixed"`` otherwise (finite-T crossover: e.g. a peak still pinned at the edge but
    falling, or small ξ well below the edge).

    >>> classify_phase(0.5, 0.2), classify_phase(0.01, 0.97), classify_phase(0.2, 0.97)
    ('easy', 'hard', 'mixed')
    """
    x = xi.exponent if isinstance(xi, PowerLawFit) else float(xi)
    if not math.isfinite(x) or not math.isfinite(plateau_ratio):
        raise ValueError(f"xi and plateau_ratio must be finite; got {x}, {plateau_ratio}")
    if x < xi_threshold and plateau_ratio >= pinned:
        return "hard"
    if x >= xi_threshold and plateau_ratio < pinned:
        return "easy"
    return "mixed"


def compute_optimal_exponents(alpha: float, r: float) -> tuple[float, float, float]:
    """(p, q, ℓ) of the compute-optimal frontier for L(N, T) = A N^(−α) + B T^(−r) at C = N·T·m.

    Minimizing over N along T = C/(N m): N* ~ C^p, T* ~ C^q, L* ~ C^(−ℓ) with
    p = r/(α + r), q = α/(α + r), ℓ = α r/(α + r) (docs/theory.md §7).

    >>> [round(v, 6) for v in compute_optimal_exponents(1.5, 0.6)]  # easy top-N, a = 2.5
    [0.285714, 0.714286, 0.428571]
    """
    if not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be a finite number > 0; got alpha={alpha}")
    if not (math.isfinite(r) and r > 0):
        raise ValueError(f"r must be a finite number > 0; got r={r}")
    return r / (alpha + r), alpha / (alpha + r), alpha * r / (alpha + r)
