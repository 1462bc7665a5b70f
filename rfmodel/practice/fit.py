"""Fit the power-law model to logged training curves and predict other schedules
(docs/theory.md §9).

The observed loss of run r after s updates is modelled as

    ℓ_r(s) = L∞ + S · L(s),     L from the exact recursion (docs/theory.md §2) with
    η_t = c · lr_t,  m_t = batch_t,  λ_k = k^(−b),  λ_k w*_k² ∝ k^(−a),  L(0) = 1,  noise σ²,

so six numbers are fitted: the exponents a and b, the noise σ² (relative to the initial excess
loss), the loss scale S, the time scale c (model rate per unit of your learning rate) and the
floor L∞ (irreducible loss; ``floor=False`` fixes it at 0). The fit is least squares on
log-loss through the differentiable recursion (forward-mode derivatives with respect to the six
numbers through a ``lax.scan``), from the best of a coarse multi-start grid over (a, b, c, σ²).
The phase comes with a profile-likelihood interval for a − b.

>>> runs = synthetic_runs(a=2.2, b=1.4, steps=300, seed=0)
>>> [r.name for r in runs], runs[0].step[:3].tolist()
(['constant', 'cosine'], [0.0, 10.0, 20.0])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._x64 import float64
from ..dynamics import loss_curve
from ..dynamics.steps import scan_curve
from ..problem import Problem
from ..schedules import as_array, cosine
from .curves import Run, validate_runs

__all__ = ["FitResult", "fit_curves", "synthetic_runs", "MODEL", "MAX_MODEL_STEPS"]


#: Most model steps per run; longer runs are coarsened by a stride (η·k per block, batch·k).
MAX_MODEL_STEPS = 8192
#: The fitted model: N modes, an exact head and a binned tail (docs/theory.md §1).
MODEL = {"n_modes": 10**8, "n_exact": 32, "bins_per_decade": 12.0}


# ----------------------------------------------------------------------------- forward model
def _layout(model: dict[str, Any]) -> tuple[int, np.ndarray, np.ndarray]:
    """(n_exact, lo, hi) of the binned tail: the same bins as :class:`Problem` (its weights)."""
    p = Problem(a=2.0, b=2.0, **model)
    n_head = min(model["n_exact"], model["n_modes"])
    w = p.weight[n_head:]
    hi = n_head + np.cumsum(w)
    return n_head, hi - w + 1, hi


def _modes(a, b, n_head: int, lo, hi):
    """(λ, C(0), weight) of the power-law problem with L(0) = 1, as a JAX function of (a, b)
    (bin sums by the Hurwitz zeta function, differentiable in a and b)."""
    from jax.scipy.special import zeta

    k = jnp.arange(1, n_head + 1, dtype=jnp.float64)
    pw = zeta(a, lo) - zeta(a, hi + 1.0)
    lam_t = (zeta(a + b, lo) - zeta(a + b, hi + 1.0)) / pw
    w_t = hi - lo + 1.0
    lam = jnp.concatenate([k**-b, lam_t])
    c0 = jnp.concatenate([k ** (b - a), pw / (w_t * lam_t)])
    w = jnp.concatenate([jnp.ones(n_head), w_t])
    return lam, c0 / jnp.sum(w * lam * c0), w


@partial(jax.jit, static_argnames=("n_head",))
def _excess(theta, lr, batch, n_head, lo, hi):
    """L(0..S) of every run (R, S+1) for θ = (a, b, log σ², log S, log c, L∞)."""
    lam, c0, w = _modes(theta[0], theta[1], n_head, lo, hi)
    s2, c = jnp.exp(theta[2]), jnp.exp(theta[4])
    return jax.vmap(lambda e, m: scan_curve(lam, c0, w * lam, s2, c * e, m, 1))(lr, batch)


def _residuals(theta, data):
    lr, batch, run_idx, step_idx, log_loss, weight, n_head, lo, hi = data
    L = _excess(theta, lr, batch, n_head, lo, hi)[run_idx, step_idx]
    pred = theta[5] + jnp.exp(theta[3]) * L
    r = weight * (jnp.log(pred) - log_loss)
    return jnp.where(jnp.isfinite(r), r, 10.0)  # diverged: a large, flat residual


@partial(jax.jit, static_argnames=("n_head",))
def _res_jit(theta, lr, batch, run_idx, step_idx, log_loss, weight, n_head, lo, hi):
    return _residuals(theta, (lr, batch, run_idx, step_idx, log_loss, weight, n_head, lo, hi))


@partial(jax.jit, static_argnames=("n_head",))
def _jac_jit(theta, lr, batch, run_idx, step_idx, log_loss, weight, n_head, lo, hi):
    data = (lr, batch, run_idx, step_idx, log_loss, weight, n_head, lo, hi)
    j = jax.jacfwd(lambda t: _residuals(t, data))(theta)
    return jnp.where(jnp.isfinite(j), j, 0.0)


@dataclass(frozen=True)
class _Data:
    """Runs on the model's step grid: per-update (R, S) rates and batches, observations."""

    lr: np.ndarray
    batch: np.ndarray
    run_idx: np.ndarray
    step_idx: np.ndarray
    loss: np.ndarray
    weight: np.ndarray
    stride: int
    n_head: int
    lo: np.ndarray
    hi: np.ndarray

    def args(self):
        return (
            self.lr,
            self.batch,
            self.run_idx,
            self.step_idx,
            np.log(self.loss),
            self.weight,
            self.n_head,
            self.lo,
            self.hi,
        )


def _prepare(runs: Sequence[Run], model: dict[str, Any]) -> _Data:
    n = int(max(r.step[-1] for r in runs))
    stride = max(1, math.ceil(n / MAX_MODEL_STEPS))
    S = math.ceil(n / stride)
    lrs, bs, ri, si, loss, wt = [], [], [], [], [], []
    for i, r in enumerate(runs):
        lr, b = r.rates(S * stride)
        # Coarsening by k: one model step of rate k·mean(lr) and batch k·m (the linear-scaling
        # equivalence of k small steps, exact in the small-rate limit; docs/theory.md §9).
        lrs.append(lr.reshape(S, stride).sum(1))
        bs.append(b.reshape(S, stride).mean(1) * stride)
        idx = np.rint(r.step / stride).astype(np.int64)
        ri.append(np.full(idx.size, i))
        si.append(idx)
        loss.append(r.loss)
        wt.append(np.full(idx.size, 1.0 / math.sqrt(idx.size)))  # every run weighs the same
    n_head, lo, hi = _layout(model)
    w = np.concatenate(wt)
    return _Data(
        np.array(lrs),
        np.array(bs),
        np.concatenate(ri),
        np.concatenate(si),
        np.concatenate(loss),
        w * math.sqrt(w.size / np.sum(w**2)),
        stride,
        n_head,
        lo,
        hi,
    )


# ----------------------------------------------------------------------------- the fit
@dataclass(frozen=True)
class FitResult:
    """The fitted model (docs/theory.md §9). Scales are in the units of the curves: the model's
    rate is ``lr_scale`` × lr, its loss ``floor + loss_scale · L``.

    ``a_minus_b_interval`` and ``phase_pvalue`` come from the profile likelihood over a − b
    with ``n_eff`` effective independent points (residuals of a smooth curve are correlated:
    n_eff = n (1 − ρ)/(1 + ρ) from their lag-1 autocorrelation ρ). ``phase_pvalue`` is the
    likelihood-ratio p-value of the boundary a = b; ``phase`` is the sign of a − b, called
    ``certain`` when the interval excludes 0.
    """

    a: float
    b: float
    sigma2: float
    loss_scale: float
    lr_scale: float
    floor: float
    a_se: float
    b_se: float
    a_minus_b_interval: tuple[float, float]
    phase_pvalue: float
    rms: float
    run_rms: dict[str, float]
    n_points: int
    n_eff: float
    stride: int
    model: dict[str, Any]
    lr_max: float
    batch: float
    profile: dict[str, list[float]] = field(default_factory=dict, repr=False)
    fit_floor: bool = True
    message: str = ""

    @property
    def sigma(self) -> float:
        return math.sqrt(self.sigma2)

    @property
    def phase(self) -> str:
        return "easy" if self.a > self.b else "hard"

    @property
    def certain(self) -> bool:
        lo, hi = self.a_minus_b_interval
        return bool(lo > 0 or hi < 0)

    def problem(self, batch: float | None = None) -> Problem:
        """The fitted model as a :class:`Problem` (model units: rate c·lr, L(0) = 1)."""
        return Problem(
            a=self.a,
            b=self.b,
            sigma=self.sigma,
            batch=self.batch if batch is None else batch,
            normalize=True,
            **self.model,
        )

    @float64
    def predict(self, lr, batch=None) -> np.ndarray:
        """Predicted loss after 0..T updates (T+1 values, units of the curves) for per-update
        rates ``lr`` (T,) and optional per-update batches (default: the fitted runs' last)."""
        lr = np.asarray(lr, np.float64)
        if lr.ndim != 1 or lr.size < 1 or not np.all(np.isfinite(lr)) or np.any(lr < 0):
            raise ValueError("lr must be a non-empty 1-D array of finite rates >= 0")
        b = np.full(lr.size, self.batch) if batch is None else np.asarray(batch, np.float64)
        k = self.stride
        if k > 1:  # the model's coarse steps (docs/theory.md §9)
            n = math.ceil(lr.size / k)
            lr = np.pad(lr, (0, n * k - lr.size)).reshape(n, k).sum(1)
            b = np.pad(b, (0, n * k - b.size), mode="edge").reshape(n, k).mean(1) * k
        L = loss_curve(self.problem(), self.lr_scale * lr, b)
        if k > 1:
            L = np.interp(np.arange(n * k + 1) / k, np.arange(n + 1), L)[: lr.size * k + 1]
        return self.floor + self.loss_scale * np.asarray(L)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (keys ``a``, ``b``, ``sigma``, ``phase`` and the rest)."""
        th = self.problem().theory()
        return {
            "a": self.a,
            "b": self.b,
            "sigma": self.sigma,
            "sigma2": self.sigma2,
            "phase": self.phase,
            "phase_certain": self.certain,
            "phase_pvalue": self.phase_pvalue,
            "a_minus_b": self.a - self.b,
            "a_minus_b_interval": list(self.a_minus_b_interval),
            "a_se": self.a_se,
            "b_se": self.b_se,
            "loss_scale": self.loss_scale,
            "lr_scale": self.lr_scale,
            "floor": self.floor,
            "fit_floor": self.fit_floor,
            "rms_log_residual": self.rms,
            "run_rms": self.run_rms,
            "n_points": self.n_points,
            "n_eff": self.n_eff,
            "stride": self.stride,
            "batch": self.batch,
            "lr_max": self.lr_max,
            "model": self.model,
            "theory": {"xi": th.xi, "delta": th.delta, "optimal_loss": th.optimal_loss},
            "profile": self.profile,
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FitResult:
        """Back from :meth:`to_dict` (e.g. a ``rfmodel fit --json`` file)."""
        try:
            return cls(
                a=float(d["a"]),
                b=float(d["b"]),
                sigma2=float(d["sigma2"]),
                loss_scale=float(d["loss_scale"]),
                lr_scale=float(d["lr_scale"]),
                floor=float(d["floor"]),
                a_se=float(d["a_se"]),
                b_se=float(d["b_se"]),
                a_minus_b_interval=tuple(d["a_minus_b_interval"]),
                phase_pvalue=float(d["phase_pvalue"]),
                rms=float(d["rms_log_residual"]),
                run_rms=dict(d["run_rms"]),
                n_points=int(d["n_points"]),
                n_eff=float(d["n_eff"]),
                stride=int(d["stride"]),
                model=dict(d["model"]),
                lr_max=float(d["lr_max"]),
                batch=float(d["batch"]),
                profile=dict(d.get("profile", {})),
                fit_floor=bool(d.get("fit_floor", True)),
                message=str(d.get("message", "")),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a fit result ({type(e).__name__}: {e})") from None


_A_GRID = (1.3, 1.8, 2.5, 3.5)
_B_GRID = (1.3, 1.8, 2.5, 3.5)
_BOUNDS_AB = (1.02, 8.0)


def _bounds(data: _Data, fit_floor: bool, eta_bound: float, lr_max: float):
    lmin, lmax = float(data.loss.min()), float(data.loss.max())
    lo = [_BOUNDS_AB[0], _BOUNDS_AB[0], math.log(1e-8), math.log(1e-4 * lmax)]
    hi = [_BOUNDS_AB[1], _BOUNDS_AB[1], math.log(1e3), math.log(1e4 * lmax)]
    lo += [math.log(1e-7 * eta_bound / lr_max), 0.0]
    hi += [math.log(eta_bound / lr_max), 0.999 * lmin if fit_floor else 1e-300]
    return np.array(lo), np.array(hi)


def _scales(L: np.ndarray, loss: np.ndarray, w: np.ndarray, fit_floor: bool, lmin: float):
    """Best (S, L∞) for fixed curves L by weighted least squares on relative errors."""
    x = w / loss
    A = np.stack([L * x, x if fit_floor else 0 * x], axis=1)
    coef = np.linalg.lstsq(A, w, rcond=None)[0]
    s, floor = float(coef[0]), float(np.clip(coef[1], 0.0, 0.999 * lmin)) if fit_floor else 0.0
    if s <= 0 or not math.isfinite(s):
        floor = 0.0
        s = float(np.sum(x * x * L) / max(np.sum((x * L) ** 2), 1e-300))
    else:
        s = float(np.sum(x * (w - floor * x) * L) / max(np.sum((x * L) ** 2), 1e-300))
    return max(s, 1e-300), floor


def _starts(data: _Data, lo, hi, fit_floor: bool, n_keep: int) -> list[np.ndarray]:
    """Coarse grid over (a, b, c, σ²) with (S, L∞) solved in closed form; the best few."""
    args = data.args()
    cands = []
    for a in _A_GRID:
        for b in _B_GRID:
            for lc in np.linspace(lo[4] + 2.0, hi[4] - 0.7, 8):
                for ls2 in (math.log(1e-3), math.log(1e-1), math.log(1.0)):
                    cands.append([a, b, ls2, 0.0, lc, 0.0])
    cands = np.array(cands)
    ex = jax.vmap(lambda th: _excess(th, args[0], args[1], args[6], args[7], args[8]))
    scored = []
    lmin = float(data.loss.min())
    for i in range(0, len(cands), 64):
        Ls = np.asarray(ex(jnp.asarray(cands[i : i + 64])))
        for j, th in enumerate(cands[i : i + 64]):
            L = Ls[j][data.run_idx, data.step_idx]
            if not np.all(np.isfinite(L)):
                continue
            s, floor = _scales(L, data.loss, data.weight, fit_floor, lmin)
            r = data.weight * (np.log(floor + s * L) - np.log(data.loss))
            th = th.copy()
            th[3], th[5] = math.log(s), floor
            scored.append((float(r @ r), np.clip(th, lo, hi)))
    if not scored:
        raise ValueError("curves: no starting point of the fit gives a finite model curve")
    scored.sort(key=lambda x: x[0])
    out: list[np.ndarray] = []
    for _, th in scored:  # distinct (a, b) corners first
        if all(abs(th[0] - o[0]) + abs(th[1] - o[1]) > 1e-9 for o in out):
            out.append(th)
        if len(out) == n_keep:
            break
    return out


def _lsq(data: _Data, x0, lo, hi, fixed: dict[int, float] | None = None, max_nfev: int = 200):
    """scipy least squares over the free parameters (``fixed``: index → value; index 1 may be
    fixed through a − b via key -1)."""
    from scipy.optimize import least_squares

    args = data.args()
    fixed = dict(fixed or {})
    delta = fixed.pop(-1, None)  # profile: a = b + Δ
    free = [i for i in range(6) if i not in fixed and not (delta is not None and i == 0)]

    def full(x):
        th = np.empty(6)
        th[free] = x
        for i, v in fixed.items():
            th[i] = v
        if delta is not None:
            th[0] = th[1] + delta
        return th

    def f(x):
        return np.asarray(_res_jit(jnp.asarray(full(x)), *args))

    def jac(x):
        j = np.array(_jac_jit(jnp.asarray(full(x)), *args))
        if delta is not None:
            j[:, 1] += j[:, 0]
        return j[:, free]

    lo_f, hi_f = lo[free].copy(), hi[free].copy()
    if delta is not None:  # keep a = b + Δ inside its bounds too
        lo_f[free.index(1)] = max(lo[1], lo[0] - delta)
        hi_f[free.index(1)] = min(hi[1], hi[0] - delta)
    x = np.asarray(x0, np.float64)[free]
    x = np.minimum(np.maximum(x, lo_f + 1e-12 * (hi_f - lo_f)), hi_f - 1e-12 * (hi_f - lo_f))
    res = least_squares(f, x, jac=jac, bounds=(lo_f, hi_f), x_scale="jac", max_nfev=max_nfev)
    return full(res.x), float(res.fun @ res.fun), res


def _n_eff(r: np.ndarray, run_idx: np.ndarray) -> float:
    """n (1 − ρ)/(1 + ρ) from the lag-1 autocorrelation ρ of residuals within runs."""
    num = den = 0.0
    for i in np.unique(run_idx):
        x = r[run_idx == i]
        x = x - x.mean()
        num += float(x[1:] @ x[:-1])
        den += float(x @ x)
    rho = min(max(num / den if den > 0 else 0.0, 0.0), 0.98)
    return float(max(min(r.size, 4.0), r.size * (1 - rho) / (1 + rho)))


@float64
def fit_curves(
    runs: Sequence[Run],
    *,
    floor: bool = True,
    starts: int = 4,
    profile: bool = True,
    model: dict[str, Any] | None = None,
) -> FitResult:
    """Fit (a, b, σ², loss scale, time scale, floor) to logged runs (docs/theory.md §9).

    Args:
        runs: at least two :class:`Run` with different schedules (:func:`read_curves`).
        floor: fit an irreducible loss L∞ ≥ 0 (``False``: L∞ = 0).
        starts: how many of the best coarse-grid points to refine by least squares.
        profile: profile the likelihood over a − b for the phase's interval (about ten more
            least-squares fits); ``False`` reports a Laplace (±1.96 SE) interval instead.
        model: the mode layout (default :data:`MODEL`).

    Returns:
        :class:`FitResult`.
    """
    validate_runs(runs)
    if not isinstance(starts, int) or starts < 1:
        raise ValueError(f"starts must be an integer >= 1; got starts={starts!r}")
    model = dict(MODEL if model is None else model)
    data = _prepare(runs, model)
    batch = float(runs[-1].batch[-1])
    lr_max = float(max(r.lr.max() for r in runs))
    m_min = float(data.batch.min())
    eta_bound = 2 * m_min / (m_min + 1)  # λ_max = 1: the per-step stability bound
    lo, hi = _bounds(data, floor, eta_bound, float(data.lr.max()))
    best = None
    for x0 in _starts(data, lo, hi, floor, starts):
        th, rss, res = _lsq(data, x0, lo, hi, None if floor else {5: 0.0})
        if best is None or rss < best[1]:
            best = (th, rss, res)
    th, rss, res = best
    args = data.args()
    r = np.asarray(_res_jit(jnp.asarray(th), *args))
    n = r.size
    n_eff = _n_eff(r, data.run_idx)
    J = np.asarray(_jac_jit(jnp.asarray(th), *args))
    free = [i for i in range(6) if floor or i != 5]
    J = J[:, free]
    cov = np.linalg.pinv(J.T @ J) * (rss / n) * (n / n_eff)
    se = np.sqrt(np.maximum(np.diag(cov), 0.0))
    dab = th[0] - th[1]
    se_d = math.sqrt(max(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1], 0.0))
    interval = (dab - 1.96 * se_d, dab + 1.96 * se_d)
    pval = _pvalue((dab / se_d) ** 2) if se_d > 0 else 0.0  # Wald, replaced by the profile
    prof: dict[str, list[float]] = {}
    if profile:
        interval, pval, prof = _profile(data, th, rss, lo, hi, floor, n_eff, se_d)
    resid = r / data.weight  # unweighted log residuals
    run_rms = {
        run.name: float(np.sqrt(np.mean(resid[data.run_idx == i] ** 2)))
        for i, run in enumerate(runs)
    }
    return FitResult(
        a=float(th[0]),
        b=float(th[1]),
        sigma2=float(math.exp(th[2])),
        loss_scale=float(math.exp(th[3])),
        lr_scale=float(math.exp(th[4])),
        floor=float(th[5]) if floor else 0.0,
        a_se=float(se[0]),
        b_se=float(se[1]),
        a_minus_b_interval=(float(interval[0]), float(interval[1])),
        phase_pvalue=float(pval),
        rms=float(np.sqrt(np.mean([v**2 for v in run_rms.values()]))),
        run_rms=run_rms,
        n_points=int(n),
        n_eff=float(n_eff),
        stride=data.stride,
        model=model,
        lr_max=lr_max,
        batch=batch,
        profile=prof,
        fit_floor=floor,
        message=str(res.message),
    )


def _pvalue(lr_stat: float) -> float:
    from scipy.stats import chi2

    return float(chi2.sf(max(lr_stat, 0.0), 1))


def _profile(data, th, rss, lo, hi, fit_floor, n_eff, se_d):
    """Profile likelihood over Δ = a − b: refit the rest at fixed Δ on a grid around Δ̂ (and at
    Δ = 0, the phase boundary). Returns (95% interval, p-value of Δ = 0, the profile)."""
    d_hat = th[0] - th[1]
    width = max(3 * se_d, 0.25)
    grid = np.unique(np.concatenate([d_hat + width * np.linspace(-1, 1, 9), [0.0]]))
    grid = grid[(grid > lo[0] - hi[1]) & (grid < hi[0] - lo[1])]
    stats = []
    fixed_floor = {} if fit_floor else {5: 0.0}
    for d in grid:
        x0 = th.copy()
        x0[1] = np.clip(th[1] - (d - d_hat) / 2, lo[1], hi[1])
        x0[0] = x0[1] + d
        _, rss_d, _ = _lsq(data, x0, lo, hi, {-1: float(d), **fixed_floor}, max_nfev=60)
        stats.append(n_eff * math.log(max(rss_d, rss) / rss))
    stats = np.array(stats)
    crit = 3.841458820694124  # χ²₁ 95%
    inside = grid[stats <= crit]
    lo_i = _crossing(grid, stats, d_hat, crit, -1) if inside.size else d_hat
    hi_i = _crossing(grid, stats, d_hat, crit, +1) if inside.size else d_hat
    p0 = _pvalue(float(stats[np.argmin(np.abs(grid))])) if np.any(grid == 0.0) else math.nan
    return (lo_i, hi_i), p0, {"a_minus_b": grid.tolist(), "lr_statistic": stats.tolist()}


def _crossing(grid, stats, d_hat, crit, direction) -> float:
    """Where the profile statistic first exceeds ``crit`` going from Δ̂ in ``direction``
    (linear interpolation; the grid's end if it never does)."""
    order = np.argsort(grid)
    g, s = grid[order], stats[order]
    if direction > 0:
        idx = [i for i in range(len(g)) if g[i] >= d_hat]
    else:
        idx = [i for i in range(len(g) - 1, -1, -1) if g[i] <= d_hat]
    prev = None
    for i in idx:
        if s[i] > crit and prev is not None:
            x0, x1, y0, y1 = g[prev], g[i], s[prev], s[i]
            return float(x0 + (crit - y0) * (x1 - x0) / (y1 - y0)) if y1 != y0 else float(x1)
        prev = i
    return float(g[idx[-1]]) if idx else float(d_hat)


# ----------------------------------------------------------------------------- synthetic data
def synthetic_runs(
    *,
    a: float = 2.2,
    b: float = 1.4,
    sigma: float = 0.3,
    lr_scale: float = 2.0,
    loss_scale: float = 2.0,
    floor: float = 0.5,
    batch: float = 8,
    steps: int = 2000,
    lr: float = 0.1,
    every: int = 10,
    noise: float = 0.01,
    seed: int = 0,
    model: dict[str, Any] | None = None,
) -> list[Run]:
    """Two runs from a known model (a constant rate ``lr`` and a cosine from ``2·lr`` to 0),
    logged every ``every`` steps, with multiplicative log-normal noise of std ``noise``: the
    test data of :func:`fit_curves` and the README walk-through."""
    p = Problem(a=a, b=b, sigma=sigma, batch=batch, normalize=True, **(model or MODEL))
    rng = np.random.default_rng(seed)
    out = []
    scheds = {
        "constant": np.full(steps, float(lr)),
        "cosine": np.asarray(as_array(cosine(2.0 * lr, steps), steps)),
    }
    for name, lrs in scheds.items():
        curve = floor + loss_scale * np.asarray(loss_curve(p, lr_scale * lrs))
        idx = np.arange(0, steps + 1, every)
        obs = curve[idx] * np.exp(noise * rng.standard_normal(idx.size))
        lr_log = np.append(lrs, lrs[-1])[idx]
        out.append(Run(name, idx.astype(np.float64), lr_log, obs, np.full(idx.size, float(batch))))
    return out
