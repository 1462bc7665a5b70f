"""Fair tuning of the schedule families on the exact dynamics: :class:`Family` (a schedule maker
and its tunable :class:`Param` ranges), :data:`FAMILIES`, :data:`OPTAX_FAMILIES` and
:func:`tune`."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._x64 import float64
from ..dynamics import final_losses, log_final_loss_and_grad, loss_curve
from ..optim import lbfgsb
from ..problem import Problem, check_positive
from .families import (
    Schedule,
    as_array,
    constant,
    cosine,
    exponential,
    inverse_sqrt,
    linear,
    polynomial,
    power_law,
    power_scheduler,
    wsd,
)

__all__ = ["Param", "Family", "FAMILIES", "OPTAX_FAMILIES", "TuneResult", "tune"]


# ----------------------------------------------------------------------------- tuning
@dataclass(frozen=True)
class Param:
    """A tunable parameter: range [lo, hi], searched in log or linear coordinates.

    ``scale`` "eta": the bounds are multiples of the stability bound η_mode = 2m/((m+1)λ_max)
    (and capped by ``tune(eta_max=...)``); "T": fractions of the horizon. ``integer``: the value
    is rounded to an int (e.g. optax's step counts); such parameters are searched on their grid
    only, and held fixed during the refinement.
    """

    name: str
    lo: float
    hi: float
    log: bool = True
    scale: str = ""  # "eta": multiply bounds by the problem's per-step stability bound; "T": by T
    grid: int = 6
    integer: bool = False


@dataclass(frozen=True)
class Family:
    """A schedule family: ``make(T, batch, **params) -> Schedule`` and its tunable params."""

    name: str
    make: Callable[..., Schedule]
    params: tuple[Param, ...]
    #: Bumped when the family's schedule changes for the same parameters (results tuned under
    #: another revision are recomputed; see :meth:`spec`).
    revision: int = 1

    def spec(self) -> dict[str, Any] | list[dict[str, Any]]:
        """What a cache key records of the family: its parameters (and its revision, when > 1)."""
        params = [asdict(p) for p in self.params]
        return params if self.revision == 1 else {"params": params, "revision": self.revision}

    @classmethod
    def from_optax(
        cls,
        name: str,
        factory: Callable[..., Schedule],
        params: tuple[Param, ...] | list[Param],
        fixed: dict[str, Any] | None = None,
    ) -> Family:
        """A family from any optax schedule factory: ``factory(**fixed, **tuned)``.

        ``fixed`` holds the arguments that are not tuned; the strings ``"T"`` and ``"batch"``
        stand for the horizon and the batch size. Parameters the factory uses in Python control
        flow (e.g. ``peak_value == 0`` or ``transition_steps <= 0`` inside optax) cannot be
        traced: :func:`tune` detects them and evaluates such a family with concrete values
        (finite-difference gradients in the refinement); mark step counts ``integer=True``.

        >>> fam = Family.from_optax(
        ...     "warmup_cosine",
        ...     optax.warmup_cosine_decay_schedule,
        ...     [Param("peak_value", 1e-2, 1.0, scale="eta", grid=12),
        ...      Param("warmup_steps", 0.01, 0.3, scale="T", grid=3, integer=True)],
        ...     fixed={"init_value": 0.0, "decay_steps": "T"},
        ... )
        >>> r = tune(fam, Problem(a=2.5, b=1.2, sigma=0.5, n_modes=50, batch=4), 100)
        >>> isinstance(r.params["warmup_steps"], int), bool(r.loss < 1)
        (True, True)
        """
        fixed = dict(fixed or {})

        def make(T, m, **vals):
            kw = {k: T if v == "T" else m if v == "batch" else v for k, v in fixed.items()}
            return factory(**kw, **vals)

        return cls(name, make, tuple(params))


_ETA = Param("eta0", 1e-3, 1.0, log=True, scale="eta", grid=24)
#: optax's warmup length in whole steps (one range for every family with a warmup)
_WARMUP = Param("warmup_steps", 1e-3, 0.3, scale="T", grid=5, integer=True)
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family("constant", lambda T, m, eta0: constant(eta0), (_ETA,)),
        Family(
            "power_law",
            lambda T, m, eta0, chi: power_law(eta0, chi),
            (_ETA, Param("chi", 0.0, 1.0, log=False, grid=11)),
        ),
        Family(
            "cosine",
            lambda T, m, eta0, warmup_steps: cosine(eta0, T, warmup_steps=warmup_steps),
            (_ETA, _WARMUP),
        ),
        Family(
            "linear",
            lambda T, m, eta0, warmup_steps: linear(eta0, T, warmup_steps=warmup_steps),
            (_ETA, _WARMUP),
        ),
        Family(
            "polynomial",
            lambda T, m, eta0, p: polynomial(eta0, T, p),
            (_ETA, Param("p", 0.1, 5.0, grid=8)),
        ),
        *[
            Family(
                f"wsd_{shape}",
                lambda T, m, eta0, decay, shape=shape: wsd(eta0, T, 0.0, decay, shape),
                (_ETA, Param("decay", 0.01, 1.0, grid=8)),
            )
            for shape in ("linear", "cosine", "1-sqrt", "exponential")
        ],
        Family(
            "power_scheduler",
            lambda T, m, eta_max, amplitude, exponent, decay: power_scheduler(
                eta_max, T, amplitude, exponent, m, decay
            ),
            (
                replace(_ETA, name="eta_max", grid=8),
                Param("amplitude", 1e-2, 1e2, grid=5),
                Param("exponent", 0.0, 1.0, log=False, grid=5),
                Param("decay", 0.02, 1.0, grid=4),
            ),
        ),
        Family(
            "exponential",
            lambda T, m, eta0, final: exponential(eta0, T, final),
            (_ETA, Param("final", 1e-4, 1.0, grid=8)),
            revision=2,  # optax.exponential_decay (refined by differences: it branches on final)
        ),
        Family(
            "inverse_sqrt",
            lambda T, m, eta0, tau: inverse_sqrt(eta0, tau),
            (_ETA, Param("tau", 1.0, 1e5, grid=8)),
        ),
    ]
}

_PEAK = Param("peak_value", 1e-3, 1.0, scale="eta", grid=24)
_STEPS = Param("warmup_steps", 1e-3, 0.3, scale="T", grid=5, integer=True)
#: Families built from optax's own schedule factories (``rfmodel optimize --families
#: optax_warmup_cosine,...``): optax's conventions (warmup from ``init_value`` = 0 at count 0).
OPTAX_FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family.from_optax(
            "optax_warmup_cosine",
            optax.warmup_cosine_decay_schedule,
            (_PEAK, _STEPS),
            {"init_value": 0.0, "decay_steps": "T"},
        ),
        Family.from_optax(
            "optax_warmup_exponential",
            optax.warmup_exponential_decay_schedule,
            (_PEAK, _STEPS, Param("decay_rate", 1e-4, 1.0, grid=6)),
            {"init_value": 0.0, "transition_steps": "T"},
        ),
        Family.from_optax(
            "optax_linear",
            optax.linear_schedule,
            (replace(_PEAK, name="init_value"),),
            {"end_value": 0.0, "transition_steps": "T"},
        ),
        Family.from_optax(
            "optax_cosine_decay",
            optax.cosine_decay_schedule,
            (replace(_PEAK, name="init_value"), Param("exponent", 0.25, 4.0, grid=6)),
            {"decay_steps": "T"},
        ),
    ]
}


@dataclass(frozen=True)
class TuneResult:
    """Best parameters of a family on one problem and horizon."""

    family: str
    params: dict[str, float]
    loss: float
    etas: np.ndarray = field(repr=False)
    curve: np.ndarray = field(repr=False)
    evaluations: int = 0
    wall_time: float = 0.0
    at_bound: tuple[str, ...] = ()  # parameters that ended on an edge of their range
    #: The tuned schedule itself (an optax schedule: ``optax.sgd(learning_rate=r.schedule)``).
    schedule: Schedule | None = field(default=None, repr=False, compare=False)


def _bounds(
    family: Family, problem: Problem, T: int, eta_max: float | None = None
) -> list[tuple[float, float]]:
    eta = problem.eta_mode_bound()
    out = []
    for p in family.params:
        lo, hi = p.lo, p.hi
        if p.scale == "eta":
            lo, hi = lo * eta, hi * eta
            if eta_max is not None and hi > eta_max:  # the cap, keeping the range's ratio
                lo, hi = lo * eta_max / hi, eta_max
        elif p.scale == "T":
            lo, hi = lo * T, hi * T
        if p.name == "tau":
            hi = max(10.0 * T, lo * 10)
        out.append((lo, hi))
    return out


def _from_z(z, lohi, log):
    lo, hi = lohi
    return lo * (hi / lo) ** z if log else lo + (hi - lo) * z


def _family(family: str | Family) -> Family:
    if isinstance(family, Family):
        return family
    known = {**FAMILIES, **OPTAX_FAMILIES}
    if not isinstance(family, str) or family not in known:
        raise ValueError(f"family must be one of {sorted(known)} or a Family; got {family!r}")
    return known[family]


def _traceable(fam: Family, T: int, m: float, names: list[str], fixed: dict[str, Any]) -> bool:
    """Whether the family's schedule can be traced in the parameters ``names`` (optax factories
    branch in Python on some of theirs, e.g. ``if peak_value == 0``)."""
    if not names:
        return True
    x = jax.ShapeDtypeStruct((), jnp.float64)

    def f(*vals):
        return fam.make(T, m, **fixed, **dict(zip(names, vals, strict=True)))(jnp.arange(T))

    try:
        jax.eval_shape(f, *[x] * len(names))
        return True
    except jax.errors.JAXTypeError:
        return False


#: Schedules of the grid evaluated at once: at most this many rates in memory (32 MB), so the
#: memory of :func:`tune` does not grow with grid × T.
_GRID_BUDGET = 1 << 22


@float64
def tune(
    family: str | Family,
    problem: Problem,
    T: int,
    *,
    maxiter: int = 200,
    n_starts: int = 3,
    eta_max: float | None = None,
) -> TuneResult:
    """Best parameters of ``family`` for final loss L(T) on the exact dynamics.

    Search: every parameter is mapped to z ∈ [0, 1] (log coordinates for scale parameters);
    a full grid is evaluated in chunks of schedules (divergent settings score +inf; memory
    O(N_eff·chunk + T), not grid × T); the best ``n_starts`` grid points are refined with
    L-BFGS-B on log L(T) using ``jax.grad`` through the dynamics. The best finite result wins,
    so a divergent setting is never returned.

    Args:
        family: a name from :data:`FAMILIES` or :data:`OPTAX_FAMILIES`, or a :class:`Family`
            (e.g. :meth:`Family.from_optax` around any optax schedule factory).
        problem: the :class:`~rfmodel.Problem`.
        T: horizon (integer ≥ 1).
        maxiter: L-BFGS-B iterations per refinement (integer ≥ 0; 0: grid only).
        n_starts: grid points refined (integer ≥ 1).
        eta_max: cap on the η-scale parameters (``scale="eta"``: the peak rate of every
            built-in family), e.g. the same bound as the optimal schedule's; default none
            beyond the ranges (up to the per-step stability bound).

    Integer parameters (``Param(integer=True)``) are searched on their grid and held fixed in the
    refinement; parameters the schedule cannot be traced in are evaluated with concrete values
    (gradients by finite differences).
    """
    fam = _family(family)
    if not isinstance(T, int | np.integer) or isinstance(T, bool) or T < 1:
        raise ValueError(f"T must be an integer >= 1; got T={T!r}")
    if not isinstance(maxiter, int | np.integer) or isinstance(maxiter, bool) or maxiter < 0:
        raise ValueError(f"maxiter must be an integer >= 0; got maxiter={maxiter!r}")
    if not isinstance(n_starts, int | np.integer) or isinstance(n_starts, bool) or n_starts < 1:
        raise ValueError(f"n_starts must be an integer >= 1; got n_starts={n_starts!r}")
    if eta_max is not None:
        eta_max = check_positive("eta_max", eta_max)
    T = int(T)
    t0 = time.perf_counter()
    bounds = _bounds(fam, problem, T, eta_max)
    m = problem.batch
    fixed_i = [i for i, p in enumerate(fam.params) if p.integer]
    free_i = [i for i, p in enumerate(fam.params) if not p.integer]

    def value(i, z):
        p = fam.params[i]
        v = _from_z(z, bounds[i], p.log)
        return int(round(float(v))) if p.integer else v

    def fixed_vals(zf) -> dict[str, Any]:
        return {fam.params[i].name: value(i, z) for i, z in zip(fixed_i, zf, strict=True)}

    names = [fam.params[i].name for i in free_i]
    grids = [np.linspace(0, 1, p.grid) for p in fam.params]
    zf_grid = list(itertools.product(*[grids[i] for i in fixed_i]))
    zc_grid = np.array(list(itertools.product(*[grids[i] for i in free_i])), dtype=np.float64)
    traced = _traceable(fam, T, m, names, fixed_vals(zf_grid[0]))

    compiled: dict[tuple, tuple] = {}

    def schedule_fn(zf) -> tuple:
        """(etas_of, its compiled version, its compiled VJP) for fixed integer values ``zf``;
        compiled once per call of tune (the refinement's starts share them)."""
        if tuple(zf) not in compiled:
            fv = fixed_vals(zf)

            def etas_of(zc):
                vals = {
                    n: value(i, zc[k]) for k, (i, n) in enumerate(zip(free_i, names, strict=True))
                }
                return as_array(fam.make(T, m, **fv, **vals), T)

            if traced:
                vjp = jax.jit(lambda z, ct: jax.vjp(etas_of, z)[1](ct)[0])
                compiled[tuple(zf)] = (etas_of, jax.jit(etas_of), vjp)
            else:
                compiled[tuple(zf)] = (etas_of, etas_of, None)
        return compiled[tuple(zf)]

    # Grid: chunks of schedules through one compiled batched loss shared by every family.
    rows = max(1, min(len(zc_grid), _GRID_BUDGET // T))
    cands = []  # (log L(T), zf, zc)
    for zf in zf_grid:
        etas_of = schedule_fn(zf)[0]
        many = jax.jit(jax.vmap(etas_of)) if traced else None
        for s in range(0, len(zc_grid), rows):
            zs = zc_grid[s : s + rows]
            if traced:
                e = np.asarray(many(jnp.asarray(zs)))
            else:
                e = np.stack([np.asarray(etas_of(z)) for z in zs])
            f = np.log(final_losses(problem, e))
            cands += [(float(v), zf, z) for v, z in zip(f, zs, strict=True)]
    evals = len(cands)
    f_all = np.array([c[0] for c in cands])
    f_all = np.where(np.isfinite(f_all), f_all, np.inf)
    order = np.argsort(f_all)
    best = cands[order[0]]
    if not np.isfinite(f_all[order[0]]):
        raise ValueError(f"every grid setting of {fam.name} diverged for this problem at T={T}")

    for i in order[:n_starts] if free_i and maxiter > 0 else []:
        if not np.isfinite(f_all[i]):
            continue
        _, zf, z0 = cands[i]
        fg = _refine_objective(problem, *schedule_fn(zf))
        res = lbfgsb(fg, z0, [(0.0, 1.0)] * len(free_i), maxiter=maxiter, ftol=1e-13, maxcor=10)
        evals += int(res.nfev) * (1 if traced else 1 + len(free_i))
        if res.fun < best[0]:  # res.fun is fg(res.x): finite (the divergence wall is 1e3)
            best = (float(res.fun), zf, np.asarray(res.x))
    _, zf, zc = best
    etas = np.asarray(schedule_fn(zf)[1](jnp.asarray(zc) if traced else zc))
    curve = np.asarray(loss_curve(problem, etas))
    z_all = np.empty(len(fam.params))
    z_all[fixed_i], z_all[free_i] = zf, zc
    params = {p.name: value(i, z_all[i]) for i, p in enumerate(fam.params)}
    params = {k: v if isinstance(v, int) else float(v) for k, v in params.items()}
    edge = tuple(
        p.name
        for i, p in enumerate(fam.params)
        if (z_all[i] < 1e-6 or z_all[i] > 1 - 1e-6) and p.grid > 1
    )
    return TuneResult(
        fam.name,
        params,
        float(curve[-1]),
        etas,
        curve,
        evals,
        time.perf_counter() - t0,
        edge,
        fam.make(T, m, **params),
    )


def _refine_objective(problem: Problem, etas_of, etas_jit, etas_vjp):
    """(log L(T), gradient in z) of a family's free parameters z ∈ [0, 1]^P: reverse mode
    through the schedule when it can be traced (``etas_vjp`` given), else forward differences
    (step 1e-7)."""
    traced = etas_vjp is not None

    def fg(z):
        if traced:
            etas = etas_jit(jnp.asarray(z))
            v, g = log_final_loss_and_grad(problem, etas)
            if np.isfinite(v) and np.all(np.isfinite(g)):
                gz = np.asarray(etas_vjp(jnp.asarray(z), jnp.asarray(g)), dtype=np.float64)
                if np.all(np.isfinite(gz)):
                    return v, gz
            return 1e3, np.zeros_like(z)  # outside the stable region: push back
        v = float(np.log(final_losses(problem, np.asarray(etas_of(z))[None])[0]))
        if not np.isfinite(v):
            return 1e3, np.zeros_like(z)
        gz = np.zeros_like(z)
        for k in range(z.size):
            h = 1e-7 if z[k] < 1 - 1e-7 else -1e-7
            zh = z.copy()
            zh[k] += h
            vh = float(np.log(final_losses(problem, np.asarray(etas_of(zh))[None])[0]))
            gz[k] = (vh - v) / h if np.isfinite(vh) else 0.0
        return v, gz

    return fg
