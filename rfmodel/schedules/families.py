"""The schedule families practitioners use (docs/theory.md §8), each a pure function
``step -> rate`` (an ``optax.Schedule``) of a few parameters and the horizon ``T``.

Step convention (optax's): ``schedule(t)`` is the rate used by update t, t = 0..T−1, so
``schedule(0)`` is the first update.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np

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
