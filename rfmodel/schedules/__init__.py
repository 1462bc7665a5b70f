"""Learning-rate schedules: the practitioners' families, optax export, and fair tuning.

A schedule is an ``optax.Schedule``: a pure function ``step -> rate`` that works under ``jit``.
Step convention (optax's): ``schedule(t)`` is the rate used by update t, t = 0..T−1, so
``schedule(0)`` is the first update. :func:`as_array` evaluates a schedule on ``0..T−1``, the
per-step array :func:`rfmodel.dynamics.loss_curve` takes; :func:`to_optax` goes back.

Every family is a function of a few parameters plus the horizon ``T`` (docs/theory.md §8):

>>> import jax.numpy as jnp
>>> s = cosine(1.0, T=100, warmup=0.1)
>>> [round(float(s(t)), 4) for t in (0, 5, 10, 99)]
[0.0, 0.5, 1.0, 0.0003]
>>> float(as_array(wsd(0.5, T=10, decay=0.2), 10)[-1])
0.25
>>> sched = to_optax(jnp.array([0.3, 0.2, 0.1]))
>>> [round(float(sched(t)), 6) for t in range(3)]
[0.3, 0.2, 0.1]

Conventions are optax's: where optax has a factory for the family, the family is built from it
(:mod:`rfmodel.schedules.families`); a warmup over W steps goes linearly from 0 at count 0 to
the peak at count W, as ``optax.warmup_cosine_decay_schedule(0.0, peak, W, T)`` does:

>>> ours = as_array(cosine(1.0, T=100, warmup=0.1), 12)
>>> theirs = as_array(optax.warmup_cosine_decay_schedule(0.0, 1.0, 10, 100), 12)
>>> bool(jnp.allclose(ours, theirs, rtol=1e-12, atol=0))
True

A tuned family gives the optax schedule to train with: ``tune("cosine", problem, T).schedule()``.

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
from .export import to_optax, to_optax_sgd
from .families import (
    Schedule,
    as_array,
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
