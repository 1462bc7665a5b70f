"""Learning-rate schedules: the practitioners' families, optax export, and fair tuning.

A schedule is an ``optax.Schedule``: a pure function ``step -> rate`` that works under ``jit``.
Step convention (optax's): ``schedule(t)`` is the rate used by update t, t = 0..T−1, so
``schedule(0)`` is the first update. :func:`as_array` evaluates a schedule on ``0..T−1``, the
per-step array :func:`rfmodel.dynamics.loss_curve` takes; :func:`to_optax` goes back.

Every family is a function of a few parameters plus the horizon ``T`` (docs/theory.md §8):

>>> import jax.numpy as jnp
>>> s = cosine(1.0, T=100, warmup=0.1)
>>> [round(float(s(t)), 4) for t in (0, 9, 10, 99)]
[0.1, 1.0, 1.0, 0.0003]
>>> float(as_array(wsd(0.5, T=10, decay=0.2), 10)[-1])
0.25
>>> sched = to_optax(jnp.array([0.3, 0.2, 0.1]))
>>> [round(float(sched(t)), 6) for t in range(4)]
[0.3, 0.2, 0.1, 0.1]

:func:`tune` finds each family's best parameters on the exact dynamics: a grid in transformed
(log or logit) coordinates, evaluated in one ``vmap``; then a bounded quasi-Newton refinement
from the best grid points with ``jax.grad`` through the dynamics. Divergent settings are never
returned.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._momentum import check_betas
from ._x64 import float64, host
from .control import lbfgsb
from .dynamics import check_schedule, final_losses, log_final_loss_and_grad, loss_curve
from .problem import Problem

__all__ = [
    "constant",
    "power_law",
    "cosine",
    "linear",
    "polynomial",
    "wsd",
    "power_scheduler",
    "exponential",
    "inverse_sqrt",
    "from_array",
    "to_optax",
    "to_optax_sgd",
    "as_array",
    "FAMILIES",
    "Family",
    "Param",
    "TuneResult",
    "tune",
]

Schedule = Callable[[Any], Any]


def _t(step):
    # The default float type: float64 inside rfmodel's computations, float32 in a user's optax
    # training loop that keeps JAX's default (no dtype warning either way).
    return jnp.asarray(step, dtype=float)


def _warm(step, warmup_steps):
    """Linear warmup factor (t+1)/W for t < W (the first update is not wasted at η = 0)."""
    return jnp.minimum(1.0, (_t(step) + 1.0) / jnp.maximum(warmup_steps, 1e-12))


def _frac(step, T):
    return jnp.clip(_t(step) / T, 0.0, 1.0)


def constant(eta0: float) -> Schedule:
    """η_t = η₀."""
    return lambda step: eta0 * jnp.ones_like(_t(step))


def power_law(eta0: float, chi: float) -> Schedule:
    """η_t = η₀ (1 + t)^(−χ)."""
    return lambda step: eta0 * (1.0 + _t(step)) ** (-chi)


def cosine(eta0: float, T: int, warmup: float = 0.0, final: float = 0.0) -> Schedule:
    """Linear warmup over a fraction ``warmup`` of T, then cosine from η₀ to ``final``·η₀ at T."""

    def f(step):
        w = warmup * T
        x = jnp.clip((_t(step) - w) / jnp.maximum(T - w, 1e-12), 0.0, 1.0)
        return eta0 * _warm(step, w) * (final + (1 - final) * 0.5 * (1 + jnp.cos(jnp.pi * x)))

    return f


def linear(eta0: float, T: int, warmup: float = 0.0) -> Schedule:
    """Linear warmup over a fraction ``warmup`` of T, then linear decay to 0 at t = T."""

    def f(step):
        w = warmup * T
        x = jnp.clip((_t(step) - w) / jnp.maximum(T - w, 1e-12), 0.0, 1.0)
        return eta0 * _warm(step, w) * (1 - x)

    return f


def polynomial(eta0: float, T: int, p: float) -> Schedule:
    """η_t = η₀ (1 − t/T)^p (the easy-phase optimal shape with p = δ)."""
    return lambda step: eta0 * (1 - _frac(step, T)) ** p


_DECAYS = {
    "linear": lambda x: 1 - x,
    "cosine": lambda x: 0.5 * (1 + jnp.cos(jnp.pi * x)),
    "1-sqrt": lambda x: 1 - jnp.sqrt(jnp.maximum(x, 1e-300)),  # finite gradient at x = 0
    "exponential": lambda x: 0.001**x,  # to 1e-3 of the plateau at the end
}


def wsd(
    eta0: float, T: int, warmup: float = 0.0, decay: float = 0.2, shape: str = "linear"
) -> Schedule:
    """Warmup-stable-decay: warmup fraction, plateau η₀, decay over the last fraction ``decay``.

    ``shape`` ∈ {"linear", "cosine", "1-sqrt", "exponential"} maps x ∈ [0, 1] through the decay.
    """
    if shape not in _DECAYS:
        raise ValueError(f"shape must be one of {sorted(_DECAYS)}; got shape={shape!r}")
    g = _DECAYS[shape]

    def f(step):
        start = (1 - decay) * T
        x = jnp.clip((_t(step) - start) / jnp.maximum(decay * T, 1e-12), 0.0, 1.0)
        return eta0 * _warm(step, warmup * T) * g(x)

    return f


def power_scheduler(
    eta_max: float,
    T: int,
    amplitude: float,
    exponent: float,
    batch: float = 1.0,
    decay: float = 0.1,
) -> Schedule:
    """Power Scheduler: η = min(η_max, amplitude · n^(−exponent)) in samples n = m·(t+1).

    The last fraction ``decay`` of steps decays linearly to zero from the value reached there.
    """

    def base(step):
        return jnp.minimum(eta_max, amplitude * (batch * (_t(step) + 1.0)) ** (-exponent))

    def f(step):
        start = (1 - decay) * T
        x = jnp.clip((_t(step) - start) / jnp.maximum(decay * T, 1e-12), 0.0, 1.0)
        return jnp.where(_t(step) < start, base(step), base(jnp.floor(start)) * (1 - x))

    return f


def exponential(eta0: float, T: int, final: float = 0.01) -> Schedule:
    """η_t = η₀ · final^(t/T): geometric decay to ``final``·η₀ at T."""
    return lambda step: eta0 * final ** _frac(step, T)


def inverse_sqrt(eta0: float, tau: float) -> Schedule:
    """η_t = η₀ / sqrt(1 + t/τ)."""
    return lambda step: eta0 / jnp.sqrt(1.0 + _t(step) / tau)


def from_array(etas) -> Schedule:
    """Per-step rates as a schedule; steps past the end hold the last rate."""
    arr = jnp.asarray(etas, dtype=float)
    if arr.ndim != 1 or arr.shape[0] == 0:
        raise ValueError(f"etas must be a non-empty 1-D array; got shape {arr.shape}")
    n = arr.shape[0]
    return lambda step: arr[jnp.clip(jnp.asarray(step, jnp.int32), 0, n - 1)]


def to_optax(schedule) -> optax.Schedule:
    """An ``optax.Schedule`` (count 0 = first update) from an array or a schedule function."""
    if callable(schedule):
        return schedule
    return from_array(schedule)


def to_optax_sgd(etas, betas=None) -> optax.GradientTransformation:
    """``optax.sgd`` driven per step by (η_t, β_t): a ready ``optax.inject_hyperparams`` transform.

    Update t (optax's count t, the first update is count 0) uses ``learning_rate = etas[t]`` and
    ``momentum = betas[t]``: heavy ball ``v ← β_t v + g``, ``w ← w − η_t v`` with v(0) = 0, the
    convention of ``loss_curve(problem, etas, betas=betas)`` (docs/theory.md §4). Steps past the
    end hold the last values. ``betas=None`` gives plain SGD (``momentum=None``: no trace state);
    ``betas`` of zeros is the same update with a trace. Either argument may be an array or an
    ``optax.Schedule``; the current values are in ``state.hyperparams``.

    >>> import jax.numpy as jnp
    >>> opt = to_optax_sgd(jnp.array([0.5, 0.25]), jnp.array([0.0, 0.5]))
    >>> w, state = jnp.zeros(1), opt.init(jnp.zeros(1))
    >>> for _ in range(2):  # gradient 1 at every step: v = 1, then 0.5·1 + 1
    ...     upd, state = opt.update(jnp.ones(1), state)
    ...     w = optax.apply_updates(w, upd)
    >>> float(w[0])  # −0.5·1 − 0.25·1.5
    -0.875
    """
    if not callable(etas):
        check_schedule(etas)
    if betas is None:
        return optax.inject_hyperparams(optax.sgd)(learning_rate=to_optax(etas))
    if not callable(betas):
        check_betas(betas, betas if callable(etas) else etas)
    return optax.inject_hyperparams(optax.sgd)(
        learning_rate=to_optax(etas), momentum=to_optax(betas)
    )


@float64
def as_array(schedule: Schedule, T: int) -> jax.Array | np.ndarray:
    """The per-step rates ``schedule(0..T−1)``, float64, shape ``(T,)`` (NumPy when concrete)."""
    return host(jnp.broadcast_to(jnp.asarray(schedule(jnp.arange(T)), jnp.float64), (T,)))


# ----------------------------------------------------------------------------- tuning
@dataclass(frozen=True)
class Param:
    """A tunable parameter: range [lo, hi] (``scale`` "eta" means a multiple of the stability
    bound η_mode = 2m/((m+1)λ_max)), searched in log or linear coordinates."""

    name: str
    lo: float
    hi: float
    log: bool = True
    scale: str = ""  # "eta": multiply bounds by the problem's per-step stability bound
    grid: int = 6


@dataclass(frozen=True)
class Family:
    """A schedule family: ``make(T, batch, **params) -> Schedule`` and its tunable params."""

    name: str
    make: Callable[..., Schedule]
    params: tuple[Param, ...]


_ETA = Param("eta0", 1e-3, 1.0, log=True, scale="eta", grid=24)
_WARMUP = Param("warmup", 1e-3, 0.3, grid=5)  # one range for every family with a warmup
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
            lambda T, m, eta0, warmup: cosine(eta0, T, warmup),
            (_ETA, _WARMUP),
        ),
        Family(
            "linear",
            lambda T, m, eta0, warmup: linear(eta0, T, warmup),
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
        ),
        Family(
            "inverse_sqrt",
            lambda T, m, eta0, tau: inverse_sqrt(eta0, tau),
            (_ETA, Param("tau", 1.0, 1e5, grid=8)),
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


def _bounds(family: Family, problem: Problem, T: int) -> list[tuple[float, float]]:
    eta = problem.eta_mode_bound()
    out = []
    for p in family.params:
        lo, hi = (p.lo * eta, p.hi * eta) if p.scale == "eta" else (p.lo, p.hi)
        if p.name == "tau":
            hi = max(10.0 * T, lo * 10)
        out.append((lo, hi))
    return out


def _from_z(z, lohi, log):
    lo, hi = lohi
    return lo * (hi / lo) ** z if log else lo + (hi - lo) * z


@float64
def tune(
    family: str | Family,
    problem: Problem,
    T: int,
    *,
    maxiter: int = 200,
    n_starts: int = 3,
) -> TuneResult:
    """Best parameters of ``family`` for final loss L(T) on the exact dynamics.

    Search: every parameter is mapped to z ∈ [0, 1] (log coordinates for scale parameters);
    a full grid is evaluated in one ``vmap`` (divergent settings score +inf); the best
    ``n_starts`` grid points are refined with L-BFGS-B on log L(T) using ``jax.grad`` through the
    dynamics. The best finite result wins, so a divergent setting is never returned.
    """
    if isinstance(family, str) and family not in FAMILIES:
        raise ValueError(f"family must be one of {sorted(FAMILIES)}; got {family!r}")
    fam = FAMILIES[family] if isinstance(family, str) else family
    if not isinstance(T, int | np.integer) or T < 1:
        raise ValueError(f"T must be an integer >= 1; got T={T!r}")
    t0 = time.perf_counter()
    bounds = _bounds(fam, problem, T)
    logs = [p.log for p in fam.params]
    m = problem.batch

    @jax.jit
    def etas_of(z):
        vals = {p.name: _from_z(z[i], bounds[i], logs[i]) for i, p in enumerate(fam.params)}
        return as_array(fam.make(T, m, **vals), T)

    # The grid goes through one compiled batched loss shared by every family (rows padded to
    # a fixed chunk), the refinement through the solver's compiled log L(T) and its gradient.
    grid = np.array(list(itertools.product(*[np.linspace(0, 1, p.grid) for p in fam.params])))
    f_grid = np.log(final_losses(problem, np.asarray(jax.vmap(etas_of)(jnp.asarray(grid)))))
    f_grid = np.where(np.isfinite(f_grid), f_grid, np.inf)
    evals = len(grid)
    order = np.argsort(f_grid)
    best_z, best_f = grid[order[0]], float(f_grid[order[0]])
    if not np.isfinite(best_f):
        raise ValueError(f"every grid setting of {fam.name} diverged for this problem at T={T}")
    etas_vjp = jax.jit(lambda z, ct: jax.vjp(etas_of, z)[1](ct)[0])

    def fg(z):
        etas = etas_of(jnp.asarray(z))
        v, g = log_final_loss_and_grad(problem, etas)
        if np.isfinite(v) and np.all(np.isfinite(g)):
            gz = np.asarray(etas_vjp(jnp.asarray(z), jnp.asarray(g)), dtype=np.float64)
            if np.all(np.isfinite(gz)):
                return v, gz
        return 1e3, np.zeros_like(z)  # outside the stable region: push back

    for i in order[:n_starts]:
        if not np.isfinite(f_grid[i]):
            continue
        res = lbfgsb(
            fg, grid[i], [(0.0, 1.0)] * len(fam.params), maxiter=maxiter, ftol=1e-13, maxcor=10
        )
        evals += int(res.nfev)
        if res.fun < best_f:  # res.fun is fg(res.x): finite (the divergence wall is 1e3)
            best_z, best_f = np.asarray(res.x), float(res.fun)
    etas = np.asarray(etas_of(jnp.asarray(best_z)))
    curve = np.asarray(loss_curve(problem, etas))
    params = {
        p.name: float(_from_z(best_z[i], bounds[i], logs[i])) for i, p in enumerate(fam.params)
    }
    edge = tuple(
        p.name
        for i, p in enumerate(fam.params)
        if (best_z[i] < 1e-6 or best_z[i] > 1 - 1e-6) and p.grid > 1
    )
    return TuneResult(
        fam.name, params, float(curve[-1]), etas, curve, evals, time.perf_counter() - t0, edge
    )
