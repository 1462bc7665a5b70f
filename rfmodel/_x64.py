"""Scoped float64: rfmodel computes in float64 without touching the user's JAX configuration.

Every public function that runs JAX code is wrapped in :func:`float64`, which enables 64-bit
types (``jax.enable_x64(True)``) for the duration of the call only. Arrays it returns are
float64 whatever the global setting; a user who keeps JAX's default (x64 off) still gets float32
from their own code, e.g. an equinox model built after ``import rfmodel``.

Results computed from concrete inputs come back as NumPy float64 arrays (:func:`host`): a JAX
float64 array in a session with x64 off would warn and truncate at the user's next operation.
Inside a trace they stay JAX arrays, so ``jit``, ``grad`` and ``vmap`` work as usual.

Under an outer ``jit``/``grad`` traced with x64 off, rfmodel's part of the trace still runs in
float64 (the inputs are cast up on entry); the values handed back to the outer trace follow its
dtype. Hand-written reverse passes (``custom_vjp`` backward rules) run outside the caller's
``with`` block, so they enter the scope themselves (:func:`float64` again).

>>> import jax.numpy as jnp
>>> @float64
... def f(x):
...     return host(jnp.asarray(x, jnp.float64) * 2)
>>> f(1.0).dtype, type(f(1.0)).__name__, jnp.ones(1).dtype
(dtype('float64'), 'ndarray', dtype('float32'))
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import jax
import numpy as np

__all__ = ["float64", "host"]

F = TypeVar("F", bound=Callable)


def float64(f: F) -> F:
    """Run ``f`` with 64-bit JAX types enabled, restoring the caller's setting afterwards."""

    @functools.wraps(f)
    def wrapped(*args, **kwargs):
        with jax.enable_x64(True):
            return f(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def host(x):
    """``x`` as a NumPy array when it is a concrete value; unchanged inside a trace."""
    return x if isinstance(x, jax.core.Tracer) else np.asarray(x)
