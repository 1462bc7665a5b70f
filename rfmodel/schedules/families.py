"""The schedule families practitioners use (docs/theory.md §8), each a pure function
``step -> rate`` (an ``optax.Schedule``) of a few parameters and the horizon ``T``.

Step convention (optax's): ``schedule(t)`` is the rate used by update t, t = 0..T−1, so
``schedule(0)`` is the first update.

Where optax has the family, the schedule *is* optax's: built from its factories
(``constant_schedule``, ``linear_schedule``, ``cosine_decay_schedule``, ``polynomial_schedule``,
``exponential_decay``, ``join_schedules``) with optax's conventions, so that a family tuned here
and the optax factory a user trains with run the same rates (tests/test_schedules.py checks
:func:`cosine` against ``optax.warmup_cosine_decay_schedule`` to float precision). In
particular a warmup is optax's: over W whole steps, linear from 0 at count 0 to the peak at
count W (the first update has rate 0). Hand-written, in the same style, only where optax has no
factory: :func:`power_law`, :func:`wsd`, :func:`power_scheduler`, :func:`inverse_sqrt`.

>>> import optax
>>> ours = as_array(cosine(1.0, T=100, warmup=0.1, final=0.1), 100)
>>> theirs = as_array(optax.warmup_cosine_decay_schedule(0.0, 1.0, 10, 100, 0.1), 100)
>>> float(abs(ours - theirs).max()) < 1e-12, [round(float(x), 3) for x in ours[[0, 5, 10, 99]]]
(True, [0.0, 0.5, 1.0, 0.1])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np
import optax

from .._x64 import float64, host
from ..dynamics import check_schedule

__all__ = [
    "Schedule",
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
    "as_array",
]

Schedule = Callable[[Any], Any]


def _t(step):
    # The default float type: float64 inside rfmodel's computations, float32 in a user's optax
    # training loop that keeps JAX's default (no dtype warning either way).
    return jnp.asarray(step, dtype=float)


def _broadcast(schedule: Schedule) -> Schedule:
    """``schedule`` whose value has the shape of the step (optax's constant schedule returns a
    scalar for any count)."""
    return lambda step: schedule(step) * jnp.ones_like(_t(step))


def _frac(step, T):
    return jnp.clip(_t(step) / T, 0.0, 1.0)


def _warmup_steps(warmup: float, T: int, warmup_steps: int | None) -> int:
    """Whole warmup steps W: ``warmup_steps``, or ``warmup`` × T rounded (0 ≤ W < T)."""
    W = round(float(warmup) * T) if warmup_steps is None else int(warmup_steps)
    if not 0 <= W < T:
        raise ValueError(f"warmup: the warmup must be 0 to T-1 = {T - 1} steps; got {W} steps")
    return W


def _warmed(eta0: float, W: int, after: Schedule) -> Schedule:
    """optax's warmup: ``linear_schedule(0, eta0, W)`` for counts < W, then ``after(count − W)``
    (``join_schedules``); no warmup when W = 0."""
    if W == 0:
        return after
    return optax.join_schedules([optax.linear_schedule(0.0, eta0, W), after], [W])


def constant(eta0: float) -> Schedule:
    """η_t = η₀ (``optax.constant_schedule``)."""
    return _broadcast(optax.constant_schedule(eta0))


def power_law(eta0: float, chi: float) -> Schedule:
    """η_t = η₀ (1 + t)^(−χ) (optax has no factory for it)."""
    return lambda step: eta0 * (1.0 + _t(step)) ** (-chi)


def cosine(
    eta0: float, T: int, warmup: float = 0.0, final: float = 0.0, *, warmup_steps: int | None = None
) -> Schedule:
    """optax's warmup cosine: ``optax.warmup_cosine_decay_schedule(0, η₀, W, T, final·η₀)``.

    A linear warmup over W = round(``warmup``·T) steps (or ``warmup_steps``) from 0 at count 0 to
    η₀ at count W, then cosine from η₀ to ``final``·η₀ at count T. Built from optax's
    ``linear_schedule``, ``cosine_decay_schedule`` and ``join_schedules`` (the factory itself
    branches in Python on the peak, which rules out tuning it by autodiff).
    """
    W = _warmup_steps(warmup, T, warmup_steps)
    return _warmed(eta0, W, optax.cosine_decay_schedule(eta0, T - W, alpha=final))


def linear(
    eta0: float, T: int, warmup: float = 0.0, *, warmup_steps: int | None = None
) -> Schedule:
    """Linear warmup over W = round(``warmup``·T) steps (optax's, from 0), then linear decay to
    0 at count T: ``optax.linear_schedule`` pieces joined."""
    W = _warmup_steps(warmup, T, warmup_steps)
    return _warmed(eta0, W, optax.linear_schedule(eta0, 0.0, T - W))


def polynomial(eta0: float, T: int, p: float) -> Schedule:
    """η_t = η₀ (1 − t/T)^p (the easy-phase optimal shape with p = δ):
    ``optax.polynomial_schedule(η₀, 0, p, T)``."""
    return optax.polynomial_schedule(eta0, 0.0, p, T)


_DECAYS = {
    "linear": lambda x: 1 - x,
    "cosine": lambda x: 0.5 * (1 + jnp.cos(jnp.pi * x)),
    "1-sqrt": lambda x: 1 - jnp.sqrt(jnp.maximum(x, 1e-300)),  # finite gradient at x = 0
    "exponential": lambda x: 0.001**x,  # to 1e-3 of the plateau at the end
}


def wsd(
    eta0: float,
    T: int,
    warmup: float = 0.0,
    decay: float = 0.2,
    shape: str = "linear",
    *,
    warmup_steps: int | None = None,
) -> Schedule:
    """Warmup-stable-decay: optax's warmup over W = round(``warmup``·T) steps, plateau η₀, decay
    over the last fraction ``decay`` of T (optax has no factory for it; the decay fraction is
    continuous, so :func:`rfmodel.schedules.tune` refines it by autodiff).

    ``shape`` ∈ {"linear", "cosine", "1-sqrt", "exponential"} maps x ∈ [0, 1] through the decay.
    """
    if shape not in _DECAYS:
        raise ValueError(f"shape must be one of {sorted(_DECAYS)}; got shape={shape!r}")
    g = _DECAYS[shape]
    W = _warmup_steps(warmup, T, warmup_steps)

    def f(step):
        start = (1 - decay) * T
        x = jnp.clip((_t(step) - start) / jnp.maximum(decay * T, 1e-12), 0.0, 1.0)
        warm = jnp.minimum(1.0, _t(step) / W) if W else 1.0
        return eta0 * warm * g(x)

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
    """η_t = η₀ · final^(t/T): geometric decay to ``final``·η₀ at T
    (``optax.exponential_decay(η₀, T, final)``)."""
    return optax.exponential_decay(eta0, T, final)


def inverse_sqrt(eta0: float, tau: float) -> Schedule:
    """η_t = η₀ / sqrt(1 + t/τ)."""
    return lambda step: eta0 / jnp.sqrt(1.0 + _t(step) / tau)


def from_array(etas) -> Schedule:
    """Per-step rates as a schedule; steps past the end hold the last rate (any step count,
    including beyond int32: it is clipped before the index cast)."""
    check_schedule(etas)
    arr = jnp.asarray(etas, dtype=float)
    n = arr.shape[0]

    def schedule(step):
        if isinstance(step, int | np.integer) and not isinstance(step, bool):
            return arr[min(max(int(step), 0), n - 1)]
        if isinstance(step, np.ndarray | list | tuple):
            step = np.clip(np.asarray(step), 0, n - 1)
        return arr[jnp.clip(jnp.asarray(step), 0, n - 1).astype(jnp.int32)]

    return schedule


@float64
def as_array(schedule: Schedule, T: int):
    """The per-step rates ``schedule(0..T−1)``, float64, shape ``(T,)`` (NumPy when concrete)."""
    return host(jnp.broadcast_to(jnp.asarray(schedule(jnp.arange(T)), jnp.float64), (T,)))
