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
>>> [round(float(sched(t)), 6) for t in range(3)]
[0.3, 0.2, 0.1]

Warmup conventions. rfmodel's warmup over W steps is η_t = η₀ (t+1)/W for t < W: the first
update already uses η₀/W, and update W−1 uses η₀. optax's warmups (``linear_schedule``,
``warmup_cosine_decay_schedule(init_value, peak_value, warmup_steps, ...)``) go linearly from
``init_value`` at count 0 to ``peak_value`` at count ``warmup_steps``: with ``init_value=0``
the first update is wasted (η = 0) and the peak comes one update later. So, during the
warmup, rfmodel's rate at t is optax's at t + 1:

>>> ours = as_array(cosine(1.0, T=100, warmup=0.1), 12)
>>> theirs = as_array(optax.warmup_cosine_decay_schedule(0.0, 1.0, 10, 100), 12)
>>> [round(float(x), 2) for x in ours[:3]], [round(float(x), 2) for x in theirs[:4]]
([0.1, 0.2, 0.3], [0.0, 0.1, 0.2, 0.3])

Any optax schedule factory can be tuned as a family (:meth:`Family.from_optax`;
:data:`OPTAX_FAMILIES` has four), with optax's own convention.

:func:`tune` finds each family's best parameters on the exact dynamics: a grid in transformed
(log or logit) coordinates, evaluated in chunks of ``vmap``-ed schedules; then a bounded
quasi-Newton refinement from the best grid points with ``jax.grad`` through the dynamics.
Divergent settings are never returned.
"""

from __future__ import annotations

import optax  # noqa: F401  (the doctests above use it)

from . import transfer
from .export import as_array, to_optax, to_optax_sgd
from .families import (
    Schedule,
    constant,
    cosine,
    exponential,
    from_array,
    inverse_sqrt,
    linear,
    polynomial,
    power_law,
    power_scheduler,
    wsd,
)
from .tune import FAMILIES, OPTAX_FAMILIES, Family, Param, TuneResult, tune

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
    "to_optax",
    "to_optax_sgd",
    "as_array",
    "FAMILIES",
    "OPTAX_FAMILIES",
    "Family",
    "Param",
    "TuneResult",
    "tune",
    "transfer",
]
