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
    "Frontier",
    "compute_frontier",
    "compute_multiplier",
    "steps_for_compute",
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


@dataclass(frozen=True)
class Frontier:
    """The compute-optimal frontier of a loss grid (:func:`compute_frontier`).

    Arrays of shape ``(n,)``, one entry per compute budget: ``C`` (= N·T·m), the minimizer
    ``N`` and ``T`` = C/(N·m) along the iso-compute line, the loss ``L`` there, and ``interior``:
    the minimum lies strictly inside the grid (not on its edge), so it is a real optimum and
    not one the grid's range imposed. Fits use the interior points only.
    """

    C: np.ndarray
    N: np.ndarray
    T: np.ndarray
    L: np.ndarray
    interior: np.ndarray

    def fits(self, **kwargs: Any) -> dict[str, PowerLawFit]:
        """Power-law fits over the interior points: ``"N"`` (p in N* ~ C^p), ``"T"`` (q) and
        ``"L"`` (L* ~ C^(−ℓ), negated so that the exponent is ℓ); ``kwargs`` go to
        :func:`power_law_fit`."""
        m = self.interior
        if int(m.sum()) < 2:
            raise ValueError(
                f"the frontier must have at least 2 interior points to fit; got {int(m.sum())}"
            )
        return {
            "N": power_law_fit(self.C[m], self.N[m], **kwargs),
            "T": power_law_fit(self.C[m], self.T[m], **kwargs),
            "L": power_law_fit(self.C[m], self.L[m], **kwargs).negated(),
        }

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k).tolist() for k in ("C", "N", "T", "L", "interior")}


def compute_frontier(
    N: Sequence[float] | np.ndarray,
    T: Sequence[float] | np.ndarray,
    L: np.ndarray,
    *,
    batch: float = 1.0,
    C: Sequence[float] | np.ndarray | None = None,
    samples: int = 400,
) -> Frontier:
    """L*(C) = min over N·T·m = C of a loss grid ``L[i, j] = L(N_i, T_j)`` (docs/theory.md §7).

    log L is interpolated with a cubic spline in (log N, log T) (``scipy``'s
    ``RegularGridInterpolator``; linear when an axis has fewer than 4 values); along each
    iso-compute line log N + log T = log(C/m) it is evaluated at ``samples`` points and the
    minimum refined by a bounded scalar search.

    Args:
        N, T: increasing grids (≥ 2 values each; ≥ 4 for the cubic spline), > 0.
        L: losses, shape ``(len(N), len(T))``, finite and > 0.
        batch: m in C = N·T·m.
        C: budgets (default: geometric from the smallest to the largest grid product, with the
            coarser of the two grid ratios, so that neighbouring budgets are about as
            independent as neighbouring grid points).
        samples: points per iso-compute line before refinement.

    Returns:
        :class:`Frontier`; ``interior`` is False where the minimizer is within 1% of a grid
        step of the line's end.
    """
    from scipy import interpolate
    from scipy import optimize as sopt

    lN, lT = np.log(_as_1d("N", N)), np.log(_as_1d("T", T))
    L = np.asarray(L, dtype=np.float64)
    if L.shape != (lN.size, lT.size):
        raise ValueError(
            f"L must have shape (len(N), len(T)) = {(lN.size, lT.size)}; got {L.shape}"
        )
    if lN.size < 2 or lT.size < 2 or np.any(np.diff(lN) <= 0) or np.any(np.diff(lT) <= 0):
        raise ValueError("N and T must be increasing grids of at least 2 values each")
    if not np.all(np.isfinite(L)) or np.any(L <= 0):
        raise ValueError("L must be finite and > 0 everywhere on the grid")
    if not (math.isfinite(batch) and batch > 0):
        raise ValueError(f"batch must be a finite number > 0; got batch={batch}")
    f = interpolate.RegularGridInterpolator(
        (lN, lT),
        np.log(L),
        method="cubic" if min(lN.size, lT.size) >= 4 else "linear",
        bounds_error=False,
        fill_value=None,
    )  # fill_value=None: rounding at the grid edge extrapolates by ~1e-16
    lm = math.log(batch)
    if C is None:
        step = max(float(np.max(np.diff(lN))), float(np.max(np.diff(lT))))
        lo, hi = lN[0] + lT[0] + lm, lN[-1] + lT[-1] + lm
        lC = np.arange(lo, hi + 1e-9 * step, step)
    else:
        Cs = _as_1d("C", C)
        if not np.all(np.isfinite(Cs)) or np.any(Cs <= 0):
            raise ValueError("C must be finite and > 0 (compute budgets)")
        lC = np.log(Cs)
        small = np.exp(lC) < math.exp(lN[0] + lm)
        if np.any(small):
            raise ValueError(
                f"C must be >= N_min·m = {math.exp(lN[0] + lm):g} (smaller budgets leave "
                f"T < 1 step); got C={math.exp(lC[small][0]):g}"
            )
    tol = 0.01 * float(np.min(np.diff(lN)))
    out = []
    for c in lC:
        u_lo = max(lN[0], c - lm - lT[-1])
        u_hi = min(lN[-1], c - lm - lT[0])
        if u_hi < u_lo - 1e-9:
            raise ValueError(f"C={math.exp(c):.4g} has no iso-compute line inside the grid")

        def g(u, c=c):
            return float(f([[u, c - lm - u]])[0])

        u_hi = max(u_hi, u_lo)
        us = np.linspace(u_lo, u_hi, samples)
        vals = f(np.stack([us, c - lm - us], axis=1))
        k = int(np.argmin(vals))
        a_, b_ = us[max(k - 1, 0)], us[min(k + 1, samples - 1)]
        if b_ > a_:
            r = sopt.minimize_scalar(g, bounds=(a_, b_), method="bounded", options={"xatol": 1e-9})
            u, v = (float(r.x), float(r.fun)) if r.fun <= vals[k] else (us[k], float(vals[k]))
        else:
            u, v = float(us[k]), float(vals[k])
        inside = (u - u_lo > tol) and (u_hi - u > tol)
        out.append((math.exp(c), math.exp(u), math.exp(c - lm - u), math.exp(v), inside))
    Cs, Ns, Ts, Ls, ins = (np.array(x) for x in zip(*out, strict=True))
    return Frontier(Cs, Ns, Ts, Ls, ins.astype(bool))


def compute_multiplier(reference: Frontier, other: Frontier) -> tuple[np.ndarray, np.ndarray]:
    """How much more compute ``other`` needs than ``reference`` for the same loss.

    For each interior budget C of ``reference`` whose loss L_ref(C) lies within the interior
    losses of ``other``, C_other(L_ref(C)) / C (log-log interpolation of the other frontier).
    Returns (C, multiplier), both shape ``(n,)``; the multiplier is ≥ 1 when ``reference`` is
    better.
    """
    r, o = reference, other
    rc, rl = r.C[r.interior], r.L[r.interior]
    oc, ol = o.C[o.interior], o.L[o.interior]
    if oc.size < 2:
        return np.array([]), np.array([])
    order = np.argsort(ol)
    x, y = np.log(ol[order]), np.log(oc[order])
    ok = (rl >= ol.min()) & (rl <= ol.max())
    return rc[ok], np.exp(np.interp(np.log(rl[ok]), x, y)) / rc[ok]


def steps_for_compute(C: float, n_features: int, batch: float = 1.0) -> int:
    """T = ⌊C/(N·m)⌋, the steps a compute budget C buys a model of N features at batch m.

    >>> steps_for_compute(1e6, 100, batch=4)
    2500
    >>> steps_for_compute(300, 100, batch=4)
    Traceback (most recent call last):
    ...
    ValueError: C must be >= N·m = 400 (it leaves T = C/(N·m) < 1 step); got C=300
    """
    if (
        isinstance(n_features, bool)
        or not isinstance(n_features, int | np.integer)
        or n_features < 1
    ):
        raise ValueError(f"n_features must be an integer >= 1; got n_features={n_features!r}")
    if not (isinstance(batch, int | float | np.number) and math.isfinite(batch) and batch >= 1):
        raise ValueError(f"batch must be a finite number >= 1; got batch={batch!r}")
    if not (isinstance(C, int | float | np.number) and math.isfinite(C) and C > 0):
        raise ValueError(f"C must be a finite number > 0; got C={C!r}")
    if C < n_features * batch:
        raise ValueError(
            f"C must be >= N·m = {n_features * batch:g} (it leaves T = C/(N·m) < 1 step); "
            f"got C={C:g}"
        )
    return int(C // (n_features * batch))
