"""Fit the power-law model to logged training curves, predict other schedules, advise one
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

Curves are a CSV with columns ``run, step, lr, loss`` (optional ``batch``), one row per logged
step (:func:`read_curves`); at least two runs with different schedules.

>>> runs = synthetic_runs(a=2.2, b=1.4, steps=300, seed=0)
>>> [r.name for r in runs], runs[0].step[:3].tolist()
(['constant', 'cosine'], [0.0, 10.0, 20.0])
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._x64 import float64
from .dynamics import _scan_curve
from .problem import Problem

__all__ = [
    "Run",
    "FitResult",
    "Advice",
    "read_curves",
    "write_curves",
    "validate_runs",
    "fit_curves",
    "advise",
    "synthetic_runs",
    "MIN_POINTS",
]

#: Fewest logged points per run (a curve's shape needs a few points per decade of steps).
MIN_POINTS = 5
#: Most model steps per run; longer runs are coarsened by a stride (η·k per block, batch·k).
MAX_MODEL_STEPS = 8192
#: The fitted model: N modes, an exact head and a binned tail (docs/theory.md §1).
MODEL = {"n_modes": 10**8, "n_exact": 32, "bins_per_decade": 12.0}
_REQUIRED = ("run", "step", "lr", "loss")


# ----------------------------------------------------------------------------- curves
@dataclass(frozen=True)
class Run:
    """One logged run: the loss after ``step[i]`` updates, the rate ``lr[i]`` of update
    ``step[i]``, and the batch size (float64 arrays of equal length, steps increasing)."""

    name: str
    step: np.ndarray
    lr: np.ndarray
    loss: np.ndarray
    batch: np.ndarray

    def rates(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-update (lr, batch) for updates 0..n−1: linear interpolation between the logged
        steps, held before the first and after the last."""
        t = np.arange(n, dtype=np.float64)
        return np.interp(t, self.step, self.lr), np.interp(t, self.step, self.batch)


def _number(text: str, where: str, column: str, rule: str, ok) -> float:
    try:
        v = float(text)
    except (TypeError, ValueError):
        v = math.nan
    if not math.isfinite(v) or not ok(v):
        raise ValueError(f"{where}, column {column!r}: must be {rule}; got {text!r}")
    return v


def read_curves(path: str | Path) -> list[Run]:
    """Read and validate a curves CSV (``run, step, lr, loss`` [, ``batch``]).

    Raises ``ValueError`` naming the line and column of the first bad value: a missing
    column, a step that is not an integer ≥ 0 or does not increase within its run, a rate
    that is not finite and ≥ 0, a loss that is not finite and > 0 (NaN included), a batch < 1;
    then the checks of :func:`validate_runs`.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"curves: no such file {str(path)!r}")
    with path.open(newline="") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip().lower() for h in next(reader)]
        except StopIteration:
            raise ValueError(f"{path}: empty file (need a header run,step,lr,loss)") from None
        missing = [c for c in _REQUIRED if c not in header]
        if missing:
            raise ValueError(
                f"{path}: missing column(s) {', '.join(missing)} (the header must name "
                f"run, step, lr, loss; batch is optional); got columns {header}"
            )
        col = {c: header.index(c) for c in (*_REQUIRED, "batch") if c in header}
        rows: dict[str, list[tuple[float, float, float, float]]] = {}
        for line, row in enumerate(reader, start=2):
            if not row or all(not x.strip() for x in row):
                continue
            where = f"{path}: line {line}"
            if len(row) < len(header):
                raise ValueError(f"{where}: {len(row)} fields, the header has {len(header)}")
            name = row[col["run"]].strip()
            if not name:
                raise ValueError(f"{where}, column 'run': empty run name")
            step = _number(
                row[col["step"]], where, "step", "an integer >= 0", lambda v: v >= 0 and v == int(v)
            )
            lr = _number(row[col["lr"]], where, "lr", "a finite number >= 0", lambda v: v >= 0)
            loss = _number(row[col["loss"]], where, "loss", "a finite number > 0", lambda v: v > 0)
            batch = (
                _number(row[col["batch"]], where, "batch", "a finite number >= 1", lambda v: v >= 1)
                if "batch" in col
                else 1.0
            )
            prev = rows.setdefault(name, [])
            if prev and step <= prev[-1][0]:
                raise ValueError(
                    f"{where}, column 'step': steps of run {name!r} must increase; got "
                    f"{int(step)} after {int(prev[-1][0])}"
                )
            prev.append((step, lr, loss, batch))
    runs = [
        Run(n, *(np.array(c, np.float64) for c in zip(*r, strict=True))) for n, r in rows.items()
    ]
    validate_runs(runs, source=str(path))
    return runs


def validate_runs(runs: Sequence[Run], *, source: str = "curves") -> None:
    """At least two runs, each with ≥ :data:`MIN_POINTS` points and a nonzero rate, and at least
    two different schedules (with one schedule the time scale and the noise are not
    identifiable). Raises ``ValueError`` naming the run."""
    if len(runs) < 2:
        names = ", ".join(repr(r.name) for r in runs) or "none"
        raise ValueError(
            f"{source}: need at least 2 runs with different schedules; got {len(runs)} ({names})"
        )
    for r in runs:
        if r.step.size < MIN_POINTS:
            raise ValueError(
                f"{source}: run {r.name!r} has {r.step.size} rows; need at least {MIN_POINTS} "
                "logged steps per run"
            )
        if not np.any(r.lr > 0):
            raise ValueError(f"{source}: run {r.name!r}: every lr is 0 (nothing to fit)")
        if np.any(np.diff(r.step) <= 0):
            raise ValueError(f"{source}: run {r.name!r}: steps must increase")
    n = int(max(r.step[-1] for r in runs))
    scheds = [np.round(r.rates(n)[0], 12) for r in runs]
    if all(np.array_equal(scheds[0], s) for s in scheds[1:]):
        raise ValueError(
            f"{source}: every run uses the same learning-rate schedule; the fit needs at least "
            "two different schedules (e.g. a constant rate and a decaying one)"
        )


def write_curves(path: str | Path, runs: Sequence[Run]) -> None:
    """Write runs as a curves CSV (atomically)."""
    from .results import write_text

    lines = ["run,step,lr,loss,batch"]
    for r in runs:
        lines += [
            f"{r.name},{int(s)},{lr:.10g},{loss:.10g},{b:g}"
            for s, lr, loss, b in zip(r.step, r.lr, r.loss, r.batch, strict=True)
        ]
    write_text(path, "\n".join(lines) + "\n")


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
    return jax.vmap(lambda e, m: _scan_curve(lam, c0, w * lam, s2, c * e, m, 1))(lr, batch)


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
        from .dynamics import loss_curve

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


# ----------------------------------------------------------------------------- advice
@dataclass(frozen=True)
class Advice:
    """The recommended schedule for ``T`` updates and its predicted loss against tuned
    baselines, all in the units of the curves (docs/theory.md §9)."""

    T: int
    lr: np.ndarray = field(repr=False)
    predicted: np.ndarray = field(repr=False)
    loss: float
    baselines: dict[str, dict[str, Any]] = field(repr=False)
    recipe: Any = field(repr=False)
    fit: FitResult = field(repr=False)
    lr_max: float = math.nan

    def table(self) -> list[dict[str, Any]]:
        """Rows (schedule, predicted final loss, ratio to the recommended), best first."""
        rows = [{"schedule": "recommended (optimal)", "loss": self.loss, "ratio": 1.0}]
        rows += [
            {"schedule": n, "loss": v["loss"], "ratio": v["loss"] / self.loss}
            for n, v in sorted(self.baselines.items(), key=lambda kv: kv[1]["loss"])
        ]
        return rows

    def schedule(self):
        """The recommended schedule as an optax schedule (warns past T)."""
        from .schedules import to_optax

        return to_optax(self.lr)

    def write(self, out: str | Path) -> list[Path]:
        """Write ``schedule.csv`` (step, lr), ``schedule.py`` (an optax schedule) and
        ``advice.json`` into ``out``; returns the paths."""
        from .results import write_json, write_text

        out = Path(out)
        csv_text = "step,lr\n" + "".join(f"{t},{v:.10g}\n" for t, v in enumerate(self.lr))
        write_text(out / "schedule.csv", csv_text)
        write_text(out / "schedule.py", self.python())
        write_json(
            out / "advice.json",
            {
                "T": self.T,
                "predicted_final_loss": self.loss,
                "lr_max": self.lr_max,
                "table": self.table(),
                "baselines": {
                    n: {"loss": v["loss"], "params": v["params"]} for n, v in self.baselines.items()
                },
                "recipe": {
                    "kind": self.recipe.kind,
                    "params": self.recipe.params,
                    "rel_error": self.recipe.rel_error,
                    "lr_scale": self.fit.lr_scale,
                },
                "fit": self.fit.to_dict(),
            },
        )
        return [out / "schedule.csv", out / "schedule.py", out / "advice.json"]

    def python(self) -> str:
        """Source of ``schedule.py``: the exact recommended rates (read from schedule.csv next
        to it) as an optax schedule, and the fitted closed form as an alternative."""
        rec = self.recipe.to_python(self.T)  # fitted on the rates in your units
        rec = rec.replace("def schedule(count):", "def closed_form(count):")
        rec = rec.replace("import jax.numpy as jnp\n\n\n", "")
        return (
            f'"""Learning-rate schedule recommended by `rfmodel advise` for T = {self.T} '
            "updates.\n\n"
            "Use: optax.sgd(learning_rate=schedule) (count 0 is the first update). Past T it "
            "holds\nits last rate. `closed_form` is the fitted "
            f"{self.recipe.kind} recipe (rms relative error\n"
            f'{self.recipe.rel_error:.3f} of log-rate).\n"""\n\n'
            "from pathlib import Path\n\n"
            "import jax.numpy as jnp\n"
            "import numpy as np\n\n"
            "_LR = np.loadtxt(Path(__file__).with_name('schedule.csv'), delimiter=',', "
            "skiprows=1, usecols=1)\n\n\n"
            "def schedule(count):\n"
            '    """The rate of update `count` (0 = first)."""\n'
            "    lr = jnp.asarray(_LR, dtype=float)\n"
            "    return lr[jnp.clip(jnp.asarray(count, jnp.int32), 0, lr.shape[0] - 1)]\n\n\n" + rec
        )


#: Baseline families tuned against the recommendation (names of rfmodel.schedules.FAMILIES).
ADVISE_FAMILIES = ("constant", "cosine", "wsd_linear")


@float64
def advise(
    fit: FitResult,
    T: int,
    *,
    lr_max: float | None = None,
    controls: int | None = None,
    batch: float | None = None,
    families: Sequence[str] = ADVISE_FAMILIES,
) -> Advice:
    """The schedule the fitted model recommends for ``T`` updates, and tuned baselines.

    The optimal schedule of the fitted problem (:func:`rfmodel.control.optimize_schedule`, K
    piecewise-constant controls) with rates capped at ``lr_max`` (default: the largest rate in
    the curves: the model was not checked beyond it); every baseline family tuned on the same
    model under the same cap (:func:`rfmodel.schedules.tune`).
    """
    from .control import optimize_schedule
    from .schedules import FAMILIES, tune
    from .transfer import fit_recipe, horizon_rule

    if isinstance(T, bool) or not isinstance(T, int | np.integer) or T < 2:
        raise ValueError(f"T must be an integer >= 2; got T={T!r}")
    lr_max = fit.lr_max if lr_max is None else float(lr_max)
    if not math.isfinite(lr_max) or lr_max <= 0:
        raise ValueError(f"lr_max must be a finite number > 0; got lr_max={lr_max!r}")
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"families must be names from {sorted(FAMILIES)}; got {unknown}")
    k = fit.stride
    Tm = math.ceil(T / k)
    m = (fit.batch if batch is None else float(batch)) * k
    problem = fit.problem(batch=m)
    eta_max = min(fit.lr_scale * lr_max * k, problem.eta_mode_bound())
    K = min(Tm, 200) if controls is None else int(controls)
    opt = optimize_schedule(problem, Tm, controls=K, eta_max=eta_max)

    def to_lr(etas):
        return np.repeat(np.asarray(etas) / (fit.lr_scale * k), k)[:T]

    baselines = {}
    for name in families:
        fam = FAMILIES[name]
        params = tuple(
            replace(p, lo=p.lo * eta_max, hi=p.hi * eta_max, scale="") if p.scale == "eta" else p
            for p in fam.params
        )
        r = tune(replace(fam, params=params), problem, Tm)
        conv = {
            n: (v / (fit.lr_scale * k) if any(p.name == n and p.scale for p in fam.params) else v)
            for n, v in r.params.items()
        }
        baselines[name] = {
            "loss": fit.floor + fit.loss_scale * r.loss,
            "params": conv,
            "lr": to_lr(r.etas),
        }
    _, xi = horizon_rule(fit.a, fit.b)
    lr = to_lr(opt.etas)
    # The closed form that describes this schedule best (a schedule held at the rate cap looks
    # like WSD even in the easy phase): mean absolute error relative to the mean rate.
    recipes = [fit_recipe(lr, phase=ph, xi=xi) for ph in ("easy", "hard")]
    recipe = min(recipes, key=lambda r: float(np.mean(np.abs(r.as_array(T) - lr))))
    return Advice(
        T=int(T),
        lr=lr,
        predicted=fit.floor + fit.loss_scale * np.asarray(opt.curve),
        loss=fit.floor + fit.loss_scale * opt.loss,
        baselines=baselines,
        recipe=recipe,
        fit=fit,
        lr_max=lr_max,
    )


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
    from .dynamics import loss_curve
    from .schedules import as_array, cosine

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


# ----------------------------------------------------------------------------- command line
def _fit_lines(f: FitResult) -> list[str]:
    lo, hi = f.a_minus_b_interval
    sure = "" if f.certain else " — not certain: the interval contains a = b"
    return [
        f"phase: {f.phase} (a - b = {f.a - f.b:+.3f}, 95% interval [{lo:+.3f}, {hi:+.3f}], "
        f"p-value of a = b {f.phase_pvalue:.2g}){sure}",
        f"a = {f.a:.3f} ± {f.a_se:.3f}, b = {f.b:.3f} ± {f.b_se:.3f}, sigma = {f.sigma:.4g} "
        f"(noise relative to the initial excess loss)",
        f"scales: model rate = {f.lr_scale:.4g} x lr, loss = {f.floor:.4g} + {f.loss_scale:.4g}"
        f" x L(t); batch {f.batch:g}" + (f", stride {f.stride}" if f.stride > 1 else ""),
        "fit: rms log-residual "
        + ", ".join(f"{k} {v:.3g}" for k, v in f.run_rms.items())
        + f" ({f.n_points} points, {f.n_eff:.0f} effective)",
    ]


def cli_fit(args) -> dict[str, Any]:
    """``rfmodel fit CURVES.csv [--json OUT] [--no-floor]``."""
    from .cli import writable_dir
    from .results import write_json

    if args.json is not None:  # checked before the fit, not after it
        if args.json.is_dir():
            raise ValueError(f"--json: {args.json} is a folder; give a file name")
        writable_dir(args.json.parent, "--json")
    runs = read_curves(args.curves)
    f = fit_curves(runs, floor=not args.no_floor)
    for line in _fit_lines(f):
        print(line)
    out = f.to_dict()
    if args.json is not None:
        write_json(args.json, out)
        print(f"wrote {args.json}")
    return out


def cli_advise(args) -> dict[str, Any]:
    """``rfmodel advise CURVES.csv --T T_NEW [--out DIR] [--lr-max X] [--controls K]``."""
    from .cli import writable_dir
    from .results import read_json

    out = writable_dir(args.out or Path("runs") / f"advise_T{args.T}")
    if args.T < 2:
        raise ValueError(f"--T must be an integer >= 2; got --T={args.T}")
    if args.lr_max is not None and not (math.isfinite(args.lr_max) and args.lr_max > 0):
        raise ValueError(f"--lr-max must be a finite number > 0; got {args.lr_max}")
    if args.controls is not None and not 1 <= args.controls <= args.T:
        raise ValueError(f"--controls must be an integer in [1, T={args.T}]; got {args.controls}")
    runs = read_curves(args.curves)
    if args.fit is not None:
        try:
            f = FitResult.from_dict(read_json(args.fit))
        except (OSError, ValueError) as e:
            raise ValueError(f"--fit {args.fit}: {e}") from None
    else:
        f = fit_curves(runs)
    for line in _fit_lines(f):
        print(line)
    adv = advise(f, args.T, lr_max=args.lr_max, controls=args.controls)
    print(f"\npredicted final loss at T = {args.T} (rates capped at lr_max = {adv.lr_max:.4g}):")
    print(f"{'schedule':24s} {'loss':>12s} {'ratio':>8s}")
    for r in adv.table():
        print(f"{r['schedule']:24s} {r['loss']:12.6g} {r['ratio']:8.4f}")
    paths = adv.write(out)
    print(f"\nwrote {', '.join(str(p) for p in paths)}")
    print(f"use it: import sys; sys.path.insert(0, '{out}'); from schedule import schedule")
    return {"table": adv.table(), "out": str(out)}
