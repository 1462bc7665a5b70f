"""Empirical loss-curve laws that practitioners fit across learning-rate schedules, and the
metrics the field reports for held-out prediction, to set beside rfmodel's own model
(:mod:`rfmodel.fit`).

Conventions (those of :mod:`rfmodel.fit`): the loss logged at ``step = s`` is the loss **after
s updates**; the rate of update ``u`` (u = 0, 1, ...) is ``lr[u]``. A schedule is given by
**knots**: ``lr[u]`` is linear in u between knots ``(knot_step, knot_lr)`` (integer steps) and
held constant before the first knot and after the last, so every sum below has a closed form
over the knots and nothing per update is ever stored (steps up to 10⁹ and beyond).

In the papers' notation η_τ (τ = 1, 2, ...) is the rate of the τ-th update, so η_τ = lr[τ−1], and
L(t) is the loss after t updates. The sums used by both laws are

    S1(t) = Σ_{τ=1}^{t} η_τ = Σ_{u<t} lr[u]          (the rate sum, "forward area")
    d_τ   = η_{τ−1} − η_τ                             (the rate drop at update τ)

**Warmup and η_0.** The MPL paper indexes the updates after warmup (τ = 1 is the first
post-warmup update, η_0 the peak rate) and adds the warmup's rate sum S_W to S1. Here the warmup
is folded into S1 (S_W = 0: S1 sums every update from the first), η_0 := η_1 = lr[0] (no drop
before the first update), and drops d_τ count from the first update at which the rate decreases
(the end of the initial non-decreasing stretch: warmup and any stable phase); from there on
every change counts, a rise with a negative sign. For a schedule with warmup this is exactly the
paper's form with S_W and η_0 = the peak; without one, the sums start at the first update. The
annealing law's drops (in S2) follow the same convention.

**Multi-Power Law** (``"mpl"``; Luo et al., ICLR 2025), 7 parameters (L0, A, α, B, C, β, γ):

    L(t)  = L0 + A · S1(t)^(−α) − LD(t)
    LD(t) = B Σ_{k=1}^{t} (η_{k−1} − η_k) · G(η_k^(−γ) · S_k(t)),   S_k(t) = Σ_{τ=k}^{t} η_τ
    G(x)  = 1 − (C x + 1)^(−β).

**LR-annealing law** (``"annealing"``; Tissue, Wang, Wang et al. 2024), 4 fitted parameters
(L0, A, α, C) and the momentum decay λ, held fixed (default 0.999, the paper's choice: from a
few schedules λ is barely identified, trading off against C, and with λ fixed S2 is a
parameter-free feature of each run):

    L(s) = L0 + A · S1(s)^(−α) − C · S2(s),   S2(s) = Σ_{i=1}^{s} m_i,
    m_i  = λ · m_{i−1} + (η_{i−1} − η_i),   m_0 = 0.

**Evaluation at huge step counts.** S1 and S2 are exact closed forms over the knots
(arithmetic series; the momentum sum of a constant drop is geometric:
S2(s) = Σ_u d_u (1 − λ^(s−u)) / (1 − λ)). The MPL drop sum is a quadrature over a bounded
number of nodes per logged step s (≤ 32 (1 + ln(s/32)) + 2 · 32 · Σ|Δ ln η| over the decay: a
few hundred, 835 at most measured at s = 10⁹): the summand
f(u) = G(η_u^(−γ) S(u, s)) of update u is interpolated linearly between nodes placed at every
update within ``resolution`` (32) of s, then geometrically in the distance s − u (ratio
1 + 1/32), and next to every update where the rate crosses a level e^(m/32) (down to 10⁻⁴ of the
peak); the drops d_u themselves are summed exactly against the interpolating hat functions
(summation by parts over the knots), so the weights stay exact however many updates a node
stands for. It is exact wherever every update is a node (within 32 updates of s, single-step
drops). Measured against the exact per-update sum (``resolution=None``) on 10⁴-step WSD and
cosine runs (C ∈ [e⁻⁹, e²] with rates in units of the peak, β ∈ [0.3, 1.5], γ ∈ [0.2, 1.2]):
error ≤ 6·10⁻⁵ of the largest LD (3·10⁻⁴ on a cyclic schedule, whose rises count too).
A rate of exactly 0 counts as 10⁻¹² of the peak inside η_k^(−γ) (where the equation reads
0 · ∞ once the rate has stayed at 0).

**Fit.** Both laws minimize the objective of rfmodel's own fit
(:mod:`~rfmodel.practice.objective`): the Huber loss of the log-loss residuals log L_law − log
L_obs, every run weighing the same, with the scale ``huber_delta`` set from the curves' noise by
default (near the MPL paper's 10⁻³ on smooth curves), under bounds: L0 in [0, max loss] (the
drop terms may take the loss below L0), A, B, C > 0, α and γ in [10⁻³, 3], β in [10⁻³, 5]. It
starts from the best few points of a grid on the exponents (and C for MPL), the linear
parameters (L0, A, B or C) solved by bounded least squares on relative errors at each grid
point, and refines them by :func:`scipy.optimize.least_squares` with analytic derivatives.
Internally rates are divided by the largest rate of the runs (the laws are invariant under that
change of units); parameters are reported in the units of the runs.

>>> wsd = LawRun("wsd", knot_step=[0, 800, 1000], knot_lr=[1e-3, 1e-3, 1e-4])
>>> p = {"L0": 2.0, "A": 0.5, "alpha": 0.5, "B": 300.0, "C": 2.0, "beta": 0.6, "gamma": 0.6}
>>> law_curve("mpl", p, wsd, [100, 800, 1000]).round(4).tolist()
[3.5811, 2.559, 2.3568]
>>> round(prediction_metrics([2.0, 2.5], [2.1, 2.5])["worste"], 12)
0.05
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .curves import PiecewiseLinear, Run, simplify_knots
from .objective import HUBER_DELTA, check_delta, huber_cost, huber_rho, resolve_delta, run_weights

__all__ = [
    "LAWS",
    "PARAMS",
    "METRICS",
    "LawRun",
    "LawFit",
    "fit_law",
    "check_runs",
    "law_curve",
    "prediction_metrics",
]

#: The laws, by name.
LAWS = ("mpl", "annealing")
#: Parameter names of each law, as in :attr:`LawFit.params` (``lambda``: the annealing law's
#: momentum decay, held fixed by :func:`fit_law`).
PARAMS: dict[str, tuple[str, ...]] = {
    "mpl": ("L0", "A", "alpha", "B", "C", "beta", "gamma"),
    "annealing": ("L0", "A", "alpha", "C", "lambda"),
}
#: Fitted parameters per law (``lambda`` is fixed).
_N_FREE = {"mpl": 7, "annealing": 4}
#: Names of :func:`prediction_metrics`.
METRICS = ("r2", "mae", "rmse", "prede", "worste")
#: Fewest logged points per fitted parameter (over all runs together).
MIN_POINTS_PER_PARAM = 5
#: Quadrature nodes per e-fold of distance and of rate in the MPL drop sum.
RESOLUTION = 32
_LR_FLOOR = 1e-12  # rates below this (relative to the peak) count as this in η^(−γ)
_LEVEL_FLOOR = 1e-4  # the rate-level nodes stop at this fraction of the peak
_CHUNK = 2_000_000  # nodes (or point × piece pairs) per vectorized block: bounded memory
_MAX_EXACT = 10**7  # most updates of the exact per-update reference sum


# ----------------------------------------------------------------------------- runs
def _int_steps(x, what: str, where: str, *, strict: bool = True, allow_empty: bool = False):
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1 or (a.size == 0 and not allow_empty):
        raise ValueError(f"{where}: {what} must be a non-empty 1-D sequence; got shape {a.shape}")
    bad = ~np.isfinite(a) | (a < 0) | (a != np.round(a)) | (a > 2.0**53)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{where}: {what} must be integers >= 0; got {float(a[i])!r} at index {i}")
    if strict and a.size > 1 and np.any(np.diff(a) <= 0):
        i = int(np.flatnonzero(np.diff(a) <= 0)[0])
        raise ValueError(
            f"{where}: {what} must increase strictly; got {a[i + 1]:g} after {a[i]:g} "
            f"(index {i + 1})"
        )
    return a


def _values(x, what: str, where: str, n: int, rule: str, ok) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.shape != (n,):
        raise ValueError(f"{where}: {what} must have {n} values (one per step); got {a.shape}")
    bad = ~np.isfinite(a) | ~ok(a)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{where}: {what} must be {rule}; got {float(a[i])!r} at index {i}")
    return a


@dataclass(frozen=True, eq=False)
class LawRun:
    """One run: its schedule as knots and, optionally, its logged losses.

    ``knot_step`` (K,) integers ≥ 0, increasing; ``knot_lr`` (K,) finite rates ≥ 0: ``lr[u]`` is
    linear between knots, held before the first and after the last. ``step`` (n,) integers ≥ 0,
    increasing, and ``loss`` (n,) finite > 0: the loss after ``step[i]`` updates (empty for a
    schedule to predict). Arrays are stored as float64; bad values raise ``ValueError`` naming
    the field.

    >>> r = LawRun.from_rates("lin", np.linspace(1.0, 0.0, 101))
    >>> r.knot_step.tolist(), r.knot_lr.tolist()
    ([0.0, 100.0], [1.0, 0.0])
    """

    name: str
    knot_step: np.ndarray
    knot_lr: np.ndarray
    step: np.ndarray = field(default_factory=lambda: np.zeros(0))
    loss: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"LawRun: name must be a non-empty string; got {self.name!r}")
        where = f"run {self.name!r}"
        ks = _int_steps(self.knot_step, "knot_step", where)
        lr = _values(self.knot_lr, "knot_lr", where, ks.size, "finite and >= 0", lambda v: v >= 0)
        st = _int_steps(self.step, "step", where, allow_empty=True)
        loss = _values(self.loss, "loss", where, st.size, "finite and > 0", lambda v: v > 0)
        for k, v in (("knot_step", ks), ("knot_lr", lr), ("step", st), ("loss", loss)):
            v.setflags(write=False)
            object.__setattr__(self, k, v)

    @classmethod
    def from_rates(
        cls,
        name: str,
        lr: Sequence[float] | np.ndarray,
        step: Sequence[int] | np.ndarray = (),
        loss: Sequence[float] | np.ndarray = (),
        *,
        rtol: float = 1e-9,
    ) -> LawRun:
        """A run from a per-update rate array ``lr`` (rate of update 0, 1, ..., held after the
        last): knots at every update where the rates bend, dropping those within ``rtol`` ×
        max(lr) of the straight line through the kept ones (Ramer–Douglas–Peucker), so a linear
        or piecewise-linear schedule keeps only its corners."""
        r = _values(lr, "lr", f"run {name!r}", np.size(lr), "finite and >= 0", lambda v: v >= 0)
        if r.size == 0:
            raise ValueError(f"run {name!r}: lr must be non-empty")
        if not (math.isfinite(rtol) and rtol >= 0):
            raise ValueError(f"rtol must be a finite number >= 0; got rtol={rtol!r}")
        keep = simplify_knots(r, rtol * float(r.max(initial=0.0)))
        return cls(name, keep.astype(np.float64), r[keep], np.asarray(step), np.asarray(loss))

    @classmethod
    def from_run(cls, run: Any) -> LawRun:
        """From a :class:`rfmodel.practice.Run`: its knots (the rows with a rate, which rfmodel
        interpolates linearly too) and its logged losses (the rows with a loss)."""
        if isinstance(run, Run):
            k, v, _ = run.knots
            st, loss = run.points
            return cls(run.name, k, v, st, loss)
        return cls(run.name, run.step, run.lr, run.step, run.loss)


def _as_run(x: Any, what: str = "schedule") -> LawRun:
    if isinstance(x, LawRun):
        return x
    if isinstance(x, Run):
        return LawRun.from_run(x)
    if isinstance(x, tuple | list) and len(x) == 2:
        return LawRun(what, x[0], x[1])
    if isinstance(x, tuple | list) and len(x) == 5:
        return LawRun(*x)
    raise ValueError(
        f"{what} must be a LawRun, a Run, a (knot_step, knot_lr) pair or a (name, knot_step, "
        f"knot_lr, step, loss) tuple; got {type(x).__name__}"
    )


# ----------------------------------------------------------------------------- schedule sums
class _Schedule(PiecewiseLinear):
    """Closed-form sums of the piecewise-linear schedule (:class:`PiecewiseLinear`), rates
    divided by ``scale``, and its drops.

    Pieces: index −1 before the first knot, i between knots i and i+1, K−1 after the last. The
    drop d_u = lr[u−1] − lr[u] is constant for u in [k_i + 1, k_{i+1} + 1) (−slope_i), zero
    outside the knots' span, and zero before ``p`` (the first update whose rate decreases).
    """

    def __init__(self, knot_step: np.ndarray, knot_lr: np.ndarray, scale: float):
        super().__init__(knot_step, np.asarray(knot_lr, np.float64) / scale)
        dec = np.flatnonzero(self.slope < 0)
        self.first_drop = int(dec[0]) if dec.size else -1
        self.p = float(self.k[dec[0]] + 1) if dec.size else math.inf

    def drop(self, u):
        """d_u = lr[u−1] − lr[u] (0 before p)."""
        u = np.asarray(u, np.float64)
        d = -self.slope_pad[self._piece(u - 1) + 1]
        return np.where(u >= self.p, d, 0.0)

    def drop_pieces(self):
        """(a, b, d): the update ranges [a, b) of constant nonzero drop d, from p on."""
        i = np.arange(max(self.first_drop, 0), self.slope.size)
        i = i[(self.slope[i] != 0) & (self.first_drop >= 0)]
        return self.k[i] + 1, self.k[i + 1] + 1, -self.slope[i]

    def s2(self, steps, lam: float):
        """S2(s) = Σ_{u<s} d_u (1 − λ^(s−u)) / (1 − λ), exact (geometric sums per piece)."""
        steps = np.asarray(steps, np.float64)
        a, b, d = self.drop_pieces()
        out = np.zeros(steps.size)
        if a.size == 0:
            return out
        ll, one = math.log(lam), 1.0 - lam
        rows = max(1, _CHUNK // a.size)
        for j in range(0, steps.size, rows):
            s = steps[j : j + rows, None]
            bb = np.minimum(b, s)
            n = np.maximum(bb - a, 0.0)
            geo = np.exp((s - bb + 1) * ll) * -np.expm1(n * ll) / one
            out[j : j + rows] = np.sum(d * (n - geo) / one, axis=1)
        return out

    def levels(self, per_e: int) -> np.ndarray:
        """Integer updates next to where the rate crosses e^(m/per_e) (m integer), down to
        ``_LEVEL_FLOOR`` × peak, in pieces at or after the first drop (floor and floor + 1)."""
        if self.first_drop < 0:
            return np.zeros(0)
        i = np.arange(self.first_drop, self.slope.size)
        i = i[self.slope[i] != 0]
        v0, v1 = self.v[i], self.v[i + 1]
        floor = _LEVEL_FLOOR * float(self.v.max())
        lo, hi = np.maximum(np.minimum(v0, v1), floor), np.maximum(v0, v1)
        ok = hi > lo
        i, v0, lo, hi = i[ok], v0[ok], lo[ok], hi[ok]
        m0 = np.floor(per_e * np.log(lo)) + 1
        cnt = np.maximum(np.ceil(per_e * np.log(hi)) - m0, 0).astype(np.int64)
        if cnt.sum() == 0:
            return np.zeros(0)
        seg = np.repeat(np.arange(i.size), cnt)
        m = m0[seg] + np.arange(seg.size) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        pos = self.k[i[seg]] + (np.exp(m / per_e) - v0[seg]) / self.slope[i[seg]]
        f = np.floor(pos)
        return np.unique(np.concatenate([f, f + 1]))


def _distance_grid(max_dist: float, per_e: int) -> np.ndarray:
    """Distances 1..per_e, then geometric with ratio 1 + 1/per_e, up to max_dist."""
    if max_dist <= per_e:
        return np.arange(1.0, max(max_dist, 0) + 1)
    m = np.arange(1, math.ceil(math.log(max_dist / per_e) / math.log1p(1 / per_e)) + 1)
    g = np.floor(per_e * np.exp(m * math.log1p(1 / per_e)))
    return np.unique(np.concatenate([np.arange(1.0, per_e + 1), g[g <= max_dist]]))


def _ld_nodes(sch: _Schedule, steps: np.ndarray, per_e: int):
    """Quadrature of Σ_{p ≤ u < s} d_u f(u) for each s: (point index, weight, lr, area) per
    node; f is interpolated linearly between nodes and the drops are summed exactly."""
    idx, wts, lrs, areas = [], [], [], []
    if not math.isfinite(sch.p):
        return (np.zeros(0, np.int64), *(np.zeros(0) for _ in range(3)))
    lev = sch.levels(per_e)
    dist = _distance_grid(float(np.max(steps, initial=0.0)) - sch.p, per_e)
    p = sch.p
    for j, s in enumerate(np.asarray(steps, np.float64)):
        if s - 1 < p:
            continue
        lv = lev[np.searchsorted(lev, p) : np.searchsorted(lev, s - 1, side="right")]
        x = np.unique(
            np.concatenate([[p, s - 1], s - dist[: np.searchsorted(dist, s - p, "right")], lv])
        )
        a, b = x[:-1], x[1:]
        h = b - a
        w = np.zeros(x.size)
        const = sch._piece(a - 1) == sch._piece(b - 2)  # d_u constant for u in [a, b)
        d = sch.drop(a)
        D = np.where(const, d * h, sch.lr(a - 1) - sch.lr(b - 1))
        M = np.where(const, d * h * (h - 1) / 2, sch.area(a, b - 1) - (b - 1 - a) * sch.lr(b - 1))
        w[:-1] += D - M / h
        w[1:] += M / h
        w[-1] += sch.drop(s - 1)
        idx.append(np.full(x.size, j))
        wts.append(w)
        lrs.append(sch.lr(x))
        areas.append(sch.area(x, s))
    if not idx:
        return (np.zeros(0, np.int64), *(np.zeros(0) for _ in range(3)))
    return np.concatenate(idx), np.concatenate(wts), np.concatenate(lrs), np.concatenate(areas)


def _ld_exact_nodes(sch: _Schedule, steps: np.ndarray):
    """Every update a node: the exact per-update sum (for checks; ≤ 10⁷ updates)."""
    n = int(np.max(steps, initial=0.0))
    if n > _MAX_EXACT:
        raise ValueError(f"resolution=None sums every update; steps must be <= {_MAX_EXACT}")
    u = np.arange(n, dtype=np.float64)
    lr = sch.lr(u)
    s1 = np.concatenate([[0.0], np.cumsum(lr)])
    d = sch.drop(u)
    idx, wts, lrs, areas = [], [], [], []
    for j, s in enumerate(np.asarray(steps, np.int64)):
        uu = np.flatnonzero(d[:s])
        idx.append(np.full(uu.size, j))
        wts.append(d[uu])
        lrs.append(lr[uu])
        areas.append(s1[s] - s1[uu])
    if not idx:
        return (np.zeros(0, np.int64), *(np.zeros(0) for _ in range(3)))
    return np.concatenate(idx), np.concatenate(wts), np.concatenate(lrs), np.concatenate(areas)


def _s2_exact(sch: _Schedule, steps: np.ndarray, lam: float) -> np.ndarray:
    from scipy.signal import lfilter

    n = int(np.max(steps, initial=0.0))
    d = sch.drop(np.arange(n, dtype=np.float64))
    m = lfilter([1.0], [1.0, -lam], d)
    return np.concatenate([[0.0], np.cumsum(m)])[np.asarray(steps, np.int64)]


# ----------------------------------------------------------------------------- the laws
@dataclass(frozen=True)
class _Design:
    """Parameter-free features of the points of one or more runs (rates / scale)."""

    law: str
    log_s1: np.ndarray  # (P,) log S1 (−inf where S1 = 0)
    s2: np.ndarray  # (P,) annealing
    idx: np.ndarray  # (N,) MPL nodes: point index
    w: np.ndarray  # (N,) drop weights
    log_lr: np.ndarray  # (N,)
    log_area: np.ndarray  # (N,)

    @property
    def n(self) -> int:
        return self.log_s1.size


def _design(
    law: str, sch: _Schedule, steps: np.ndarray, lam: float, resolution: int | None
) -> _Design:
    s1 = sch.s1(steps)
    with np.errstate(divide="ignore"):
        log_s1 = np.log(s1)
    e = np.zeros(0)
    if law == "annealing":
        s2 = sch.s2(steps, lam) if resolution is not None else _s2_exact(sch, steps, lam)
        return _Design(law, log_s1, s2, np.zeros(0, np.int64), e, e, e)
    nodes = _ld_exact_nodes(sch, steps) if resolution is None else _ld_nodes(sch, steps, resolution)
    idx, w, lr, area = nodes
    keep = w != 0
    with np.errstate(divide="ignore"):
        log_lr = np.log(np.maximum(lr[keep], _LR_FLOOR))
        log_area = np.log(area[keep])
    return _Design(law, log_s1, np.zeros(steps.size), idx[keep], w[keep], log_lr, log_area)


def _concat(ds: Sequence[_Design]) -> _Design:
    off = np.cumsum([0] + [d.n for d in ds])
    return _Design(
        ds[0].law,
        np.concatenate([d.log_s1 for d in ds]),
        np.concatenate([d.s2 for d in ds]),
        np.concatenate([d.idx + o for d, o in zip(ds, off, strict=False)]),
        np.concatenate([d.w for d in ds]),
        np.concatenate([d.log_lr for d in ds]),
        np.concatenate([d.log_area for d in ds]),
    )


def _ld(des: _Design, log_c: float, beta: float, gamma: float, jac: bool = False):
    """Σ_nodes w G (per point) and, with ``jac``, its derivatives in (log C, β, γ)."""
    from scipy.special import expit

    n = des.n
    z = log_c - gamma * des.log_lr + des.log_area  # log(C x)
    sp = np.logaddexp(0.0, z)  # log(1 + C x)
    g = -np.expm1(-beta * sp)  # G = 1 − (1 + C x)^(−β)
    ld = np.bincount(des.idx, des.w * g, minlength=n)
    if not jac:
        return ld
    pw = des.w * np.exp(-beta * sp)
    t = pw * beta * expit(z)  # w β (1 + Cx)^(−β) Cx/(1 + Cx)
    return (
        ld,
        np.bincount(des.idx, t, minlength=n),
        np.bincount(des.idx, pw * sp, minlength=n),
        np.bincount(des.idx, -t * des.log_lr, minlength=n),
    )


def _model(des: _Design, th: np.ndarray, jac: bool = False):
    """The law's loss (P,) at internal parameters ``th`` and, with ``jac``, dL/dth (P, n).

    Internal parameters: mpl (L0, log A, α, log B, log C, β, γ); annealing (L0, log A, α,
    log C); A, B, C in units where the peak rate is 1."""
    with np.errstate(over="ignore", invalid="ignore"):
        pw = np.exp(th[1] - th[2] * des.log_s1)
    if des.law == "mpl":
        bv = math.exp(th[3])
        out = _ld(des, th[4], th[5], th[6], jac)
        ld = out[0] if jac else out
        loss = th[0] + pw - bv * ld
        if not jac:
            return loss
        ld, dc, db, dg = out
        cols = [np.ones(des.n), pw, -pw * des.log_s1, -bv * ld, -bv * dc, -bv * db, -bv * dg]
    else:
        cv = math.exp(th[3])
        loss = th[0] + pw - cv * des.s2
        if not jac:
            return loss
        cols = [np.ones(des.n), pw, -pw * des.log_s1, -cv * des.s2]
    return loss, np.stack(cols, axis=1)


def _to_internal(law: str, params: Mapping[str, float], scale: float) -> tuple[np.ndarray, float]:
    q = {k: float(params[k]) for k in PARAMS[law]}
    la = math.log(q["A"]) - q["alpha"] * math.log(scale)
    if law == "mpl":
        lb = math.log(q["B"]) + math.log(scale)
        lc = math.log(q["C"]) + (1 - q["gamma"]) * math.log(scale)
        return np.array([q["L0"], la, q["alpha"], lb, lc, q["beta"], q["gamma"]]), math.nan
    lc = math.log(q["C"]) + math.log(scale)
    return np.array([q["L0"], la, q["alpha"], lc]), q["lambda"]


def _to_user(law: str, th: np.ndarray, scale: float, lam: float) -> dict[str, float]:
    ls = math.log(scale)
    a = math.exp(th[1] + th[2] * ls)
    if law == "mpl":
        b, c = math.exp(th[3] - ls), math.exp(th[4] - (1 - th[6]) * ls)
        vals = (th[0], a, th[2], b, c, th[5], th[6])
    else:
        vals = (th[0], a, th[2], math.exp(th[3] - ls), lam)
    return {k: float(v) for k, v in zip(PARAMS[law], vals, strict=True)}


def _check_law(law: Any) -> str:
    if law not in LAWS:
        raise ValueError(f"law must be one of {LAWS}; got law={law!r}")
    return law


def _check_params(law: str, params: Mapping[str, float]) -> None:
    missing = [k for k in PARAMS[law] if k not in params]
    if missing:
        raise ValueError(f"params: law {law!r} needs {PARAMS[law]}; missing {missing}")
    rules = {
        "L0": ("finite and >= 0", lambda v: v >= 0),
        "A": ("finite and > 0", lambda v: v > 0),
        "alpha": ("finite and > 0", lambda v: v > 0),
        "B": ("finite and > 0", lambda v: v > 0),
        "C": ("finite and > 0", lambda v: v > 0),
        "beta": ("finite and > 0", lambda v: v > 0),
        "gamma": ("finite and >= 0", lambda v: v >= 0),
        "lambda": ("in (0, 1)", lambda v: 0 < v < 1),
    }
    for k in PARAMS[law]:
        rule, ok = rules[k]
        try:
            v = float(params[k])
        except (TypeError, ValueError):
            v = math.nan
        if not (math.isfinite(v) and ok(v)):
            raise ValueError(f"params[{k!r}] must be {rule}; got {params[k]!r}")


def _check_resolution(resolution: Any) -> None:
    if resolution is not None and (
        isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2
    ):
        raise ValueError(f"resolution must be an integer >= 2 or None; got {resolution!r}")


def law_curve(
    law: str,
    params: Mapping[str, float],
    schedule: LawRun | tuple[Sequence[float], Sequence[float]],
    steps: Sequence[int] | np.ndarray | None = None,
    *,
    resolution: int | None = RESOLUTION,
) -> np.ndarray:
    """The law's loss after ``steps`` updates of a schedule: float64, shape (n,).

    Args:
        law: ``"mpl"`` or ``"annealing"``.
        params: the law's parameters (:data:`PARAMS`), in the units of the schedule's rates.
        schedule: a :class:`LawRun` or a ``(knot_step, knot_lr)`` pair.
        steps: (n,) integers ≥ 0, any order (default: the run's logged steps). At S1 = 0
            (step 0) the loss is +inf (S1^(−α)).
        resolution: quadrature nodes per e-fold of the MPL drop sum (module docstring); None
            sums every update exactly (steps ≤ 10⁷; slow for long runs).
    """
    law = _check_law(law)
    _check_params(law, params)
    _check_resolution(resolution)
    run = _as_run(schedule)
    st = run.step if steps is None else _int_steps(steps, "steps", "law_curve", strict=False)
    st = np.asarray(st, np.float64)
    out = np.empty(st.size)
    if st.size == 0:
        return out
    scale = float(run.knot_lr.max())
    if scale <= 0:  # no update ever moves: S1 = 0
        return np.full(st.size, math.inf)
    sch = _Schedule(run.knot_step, run.knot_lr, scale)
    th, lam = _to_internal(law, params, scale)
    order = np.argsort(st, kind="stable")
    per = 256 if law == "mpl" else st.size  # bounded node arrays for long step lists
    for j in range(0, st.size, per):
        sel = order[j : j + per]
        des = _design(law, sch, st[sel], lam, resolution)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            loss = _model(des, th)
        out[sel] = np.where(np.isneginf(des.log_s1), math.inf, loss)
    return out.reshape(np.shape(st))


# ----------------------------------------------------------------------------- metrics
def prediction_metrics(
    observed: Sequence[float] | np.ndarray, predicted: Sequence[float] | np.ndarray
) -> dict[str, float]:
    """The held-out prediction metrics of the loss-curve literature (MPL paper, Table 1):

    ``r2`` = 1 − Σ e² / Σ (y − ȳ)² (NaN when every y is equal), ``mae`` = mean |e|,
    ``rmse`` = √mean e², ``prede`` = mean |e|/y, ``worste`` = max |e|/y, with e = ŷ − y.

    >>> m = prediction_metrics([1.0, 2.0, 3.0], [1.0, 2.0, 3.3])
    >>> {k: round(v, 6) for k, v in m.items()}
    {'r2': 0.955, 'mae': 0.1, 'rmse': 0.173205, 'prede': 0.033333, 'worste': 0.1}
    """
    y = np.asarray(observed, np.float64)
    yh = np.asarray(predicted, np.float64)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"observed must be a non-empty 1-D sequence; got shape {y.shape}")
    if yh.shape != y.shape:
        raise ValueError(f"predicted must have the shape of observed {y.shape}; got {yh.shape}")
    if not np.all(np.isfinite(y) & (y > 0)):
        raise ValueError("observed must be finite and > 0 (losses)")
    if not np.all(np.isfinite(yh)):
        raise ValueError("predicted must be finite")
    e = yh - y
    ss = float(np.sum((y - y.mean()) ** 2))
    rel = np.abs(e) / y
    return {
        "r2": 1.0 - float(e @ e) / ss if ss > 0 else math.nan,
        "mae": float(np.mean(np.abs(e))),
        "rmse": float(np.sqrt(np.mean(e * e))),
        "prede": float(np.mean(rel)),
        "worste": float(np.max(rel)),
    }


# ----------------------------------------------------------------------------- the fit
@dataclass(frozen=True)
class LawFit:
    """A fitted law. ``params`` in the units of the runs (:data:`PARAMS`; the annealing law's
    ``lambda`` was held fixed); ``rms`` the root-mean-square log residual over all fitted
    points, ``run_rms`` per run; ``cost`` the Huber objective at the optimum."""

    law: str
    params: dict[str, float]
    rms: float
    run_rms: dict[str, float]
    n_points: int
    huber_delta: float
    cost: float
    resolution: int | None = RESOLUTION
    message: str = ""

    def predict(
        self,
        schedule: LawRun | tuple[Sequence[float], Sequence[float]],
        steps: Sequence[int] | np.ndarray | None = None,
    ) -> np.ndarray:
        """The fitted law's loss after ``steps`` updates (default: the run's logged steps)."""
        return law_curve(self.law, self.params, schedule, steps, resolution=self.resolution)

    def metrics(self, run: LawRun) -> dict[str, float]:
        """:func:`prediction_metrics` of this fit on a run's logged losses (steps ≥ 1)."""
        run = _as_run(run, "run")
        ok = run.step > 0
        return prediction_metrics(run.loss[ok], self.predict(run, run.step[ok]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "law": self.law,
            "params": dict(self.params),
            "rms_log_residual": self.rms,
            "run_rms": dict(self.run_rms),
            "n_points": self.n_points,
            "huber_delta": self.huber_delta,
            "cost": self.cost,
            "resolution": self.resolution,
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LawFit:
        """Back from :meth:`to_dict`."""
        try:
            law = _check_law(d["law"])
            params = {k: float(d["params"][k]) for k in PARAMS[law]}
            return cls(
                law=law,
                params=params,
                rms=float(d["rms_log_residual"]),
                run_rms={str(k): float(v) for k, v in d["run_rms"].items()},
                n_points=int(d["n_points"]),
                huber_delta=float(d["huber_delta"]),
                cost=float(d["cost"]),
                resolution=None if d.get("resolution") is None else int(d["resolution"]),
                message=str(d.get("message", "")),
            )
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"not a law fit ({type(e).__name__}: {e})") from None


_GRID = {
    "alpha": (0.25, 0.5, 1.0),
    "beta": (0.3, 0.6, 1.2),
    "gamma": (0.3, 0.6, 1.0),
    "log_c": tuple(math.log(10.0**e) for e in (-4, -3, -2, -1, 0)),
    "alpha_ann": tuple(np.round(np.geomspace(0.05, 2.0, 12), 4)),
}


def _bounds(law: str, lmax: float, log_s1_max: float):
    big = math.log(lmax)
    lo = [0.0, big - 40.0, 1e-3]
    hi = [lmax, big + 3.0 * log_s1_max + 10.0, 3.0]
    if law == "mpl":
        lo += [big - 40.0, -40.0, 1e-3, 1e-3]
        hi += [big + 40.0, 20.0, 5.0, 3.0]
    else:
        lo += [big - 40.0]
        hi += [big + 40.0]
    return np.array(lo), np.array(hi)


def _screen(law: str, des: _Design, y: np.ndarray, lo, hi, n_keep: int) -> list[np.ndarray]:
    """Grid over the exponents (and log C for MPL); the linear parameters by bounded least
    squares on relative errors; the ``n_keep`` best points."""
    from scipy.optimize import lsq_linear

    lmin, lmax = float(y.min()), float(y.max())
    cands = []
    if law == "mpl":
        inner = [
            (b, g, c, _ld(des, c, b, g))
            for b in _GRID["beta"]
            for g in _GRID["gamma"]
            for c in _GRID["log_c"]
        ]
        alphas = _GRID["alpha"]
    else:
        inner = [(None, None, None, des.s2)]
        alphas = _GRID["alpha_ann"]
    for a in alphas:
        f1 = np.exp(-a * des.log_s1)
        for b, g, c, f2 in inner:
            M = np.stack([np.ones(des.n), f1, -f2], axis=1) / y[:, None]
            r = lsq_linear(M, np.ones(des.n), bounds=([0, 0, 0], [lmax, np.inf, np.inf]))
            l0, av, bv = r.x
            av, bv = max(av, 1e-6 * lmin), max(bv, 1e-6 * lmin)
            th = [l0, math.log(av), a, math.log(bv)] + ([c, b, g] if law == "mpl" else [])
            cands.append((float(r.cost), np.clip(np.array(th), lo, hi)))
    cands.sort(key=lambda t: t[0])
    return [th for _, th in cands[:n_keep]]


def _refine(des: _Design, y_log: np.ndarray, x0, lo, hi, delta: float, w, max_nfev: int):
    from scipy.optimize import least_squares

    cache: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
    floor = math.log(1e-3) + float(y_log.min())

    def both(x):
        key = x.tobytes()
        if key not in cache:
            cache.clear()
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                loss, J = _model(des, x, jac=True)
                ok = np.isfinite(loss) & (loss > 0)
                r = np.where(ok, np.log(np.where(ok, loss, 1.0)), floor) - y_log
                J = np.where(ok[:, None], J / np.where(ok, loss, 1.0)[:, None], 0.0)
            cache[key] = (r, np.where(np.isfinite(J), J, 0.0))
        return cache[key]

    x0 = np.minimum(np.maximum(x0, lo + 1e-9 * (hi - lo)), hi - 1e-9 * (hi - lo))
    return least_squares(
        lambda x: both(x)[0],
        x0,
        jac=lambda x: both(x)[1],
        bounds=(lo, hi),
        loss=huber_rho(w, delta),
        f_scale=1.0,
        x_scale="jac",
        max_nfev=max_nfev,
    )


def check_runs(law: str, runs: Sequence[LawRun | Run]) -> None:
    """The checks :func:`fit_law` makes of its runs, before any work (``ValueError``): unique
    names, a nonzero rate, 5 points per fitted parameter at S1 > 0, a decreasing rate."""
    _check_runs(_check_law(law), runs)


def _check_runs(law: str, runs):
    if isinstance(runs, LawRun | Run) or not isinstance(runs, Sequence) or len(runs) == 0:
        raise ValueError("runs must be a non-empty sequence of LawRun (or Run)")
    runs = [_as_run(r, "runs[i]") for r in runs]
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise ValueError(f"runs: names must be unique; got {names}")
    scale = max(float(r.knot_lr.max()) for r in runs)
    if scale <= 0:
        raise ValueError("runs: every knot_lr is 0 (nothing to fit)")
    scheds = [_Schedule(r.knot_step, r.knot_lr, scale) for r in runs]
    masks = [(s.s1(r.step) > 0) for s, r in zip(scheds, runs, strict=True)]
    n_pts = int(sum(int(m.sum()) for m in masks))
    need = MIN_POINTS_PER_PARAM * _N_FREE[law]
    if n_pts < need:
        raise ValueError(
            f"runs: law {law!r} has {_N_FREE[law]} parameters and needs at least {need} logged "
            f"points with S1 > 0 ({MIN_POINTS_PER_PARAM} per parameter); got {n_pts}"
        )
    if all(not math.isfinite(s.p) for s in scheds):
        raise ValueError(
            "runs: no run's rate ever decreases, so the decay term of the law is not "
            "identifiable; include a decaying schedule (cosine, WSD, step)"
        )

    return runs, scale, scheds, masks


def fit_law(
    law: str,
    runs: Sequence[LawRun | Run],
    *,
    huber_delta: float | str = HUBER_DELTA,
    starts: int = 4,
    decay: float = 0.999,
    resolution: int | None = RESOLUTION,
    max_nfev: int = 300,
) -> LawFit:
    """Fit a law to logged runs: Huber loss on log-loss residuals, multi-start, bounded.

    Args:
        law: ``"mpl"`` (7 parameters) or ``"annealing"`` (4, with λ fixed at ``decay``).
        runs: :class:`LawRun` or :class:`~rfmodel.practice.Run` with logged losses (or
            ``(name, knot_step, knot_lr, step, loss)`` tuples), unique names, at least one
            whose rate decreases (else the decay terms are not identifiable). Points at S1 = 0
            (step 0) are left out (the laws are infinite there); at least 5 points per fitted
            parameter must remain. Every run weighs the same in the objective.
        huber_delta: the Huber scale on log-loss residuals: a number > 0 or ``"auto"`` (from
            the runs' noise, :func:`~rfmodel.practice.objective.resolve_delta`).
        starts: how many of the best grid points to refine.
        decay: the annealing law's momentum decay λ in (0, 1) (ignored by MPL).
        resolution: nodes per e-fold of the MPL drop-sum quadrature (None: exact per update).
        max_nfev: most residual evaluations per refinement.

    Returns:
        :class:`LawFit`.
    """
    law = _check_law(law)
    check_delta(huber_delta)
    if isinstance(starts, bool) or not isinstance(starts, int) or starts < 1:
        raise ValueError(f"starts must be an integer >= 1; got starts={starts!r}")
    if not (isinstance(decay, int | float) and 0 < decay < 1):
        raise ValueError(f"decay must be a number in (0, 1); got decay={decay!r}")
    if isinstance(max_nfev, bool) or not isinstance(max_nfev, int) or max_nfev < 1:
        raise ValueError(f"max_nfev must be an integer >= 1; got max_nfev={max_nfev!r}")
    _check_resolution(resolution)
    runs, scale, scheds, masks = _check_runs(law, runs)
    des = _concat(
        [
            _design(law, s, r.step[m], decay, resolution)
            for s, r, m in zip(scheds, runs, masks, strict=True)
        ]
    )
    y = np.concatenate([r.loss[m] for r, m in zip(runs, masks, strict=True)])
    y_log = np.log(y)
    logs = [np.log(r.loss[m]) for r, m in zip(runs, masks, strict=True)]
    delta = resolve_delta(huber_delta, logs)
    w = run_weights([int(m.sum()) for m in masks])
    lo, hi = _bounds(law, float(y.max()), float(des.log_s1.max()))
    best = None
    for x0 in _screen(law, des, y, lo, hi, starts):
        res = _refine(des, y_log, x0, lo, hi, delta, w, max_nfev)
        if best is None or res.cost < best.cost:
            best = res
    th = best.x
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        resid = np.log(_model(des, th)) - y_log
    run_id = np.repeat(np.arange(len(runs)), [int(m.sum()) for m in masks])
    run_rms = {
        r.name: float(np.sqrt(np.mean(resid[run_id == i] ** 2)))
        for i, r in enumerate(runs)
        if np.any(run_id == i)
    }
    return LawFit(
        law=law,
        params=_to_user(law, th, scale, float(decay)),
        rms=float(np.sqrt(np.mean(resid**2))),
        run_rms=run_rms,
        n_points=int(sum(int(m.sum()) for m in masks)),
        huber_delta=delta,
        cost=huber_cost(resid, w, delta),
        resolution=resolution,
        message=str(best.message),
    )
