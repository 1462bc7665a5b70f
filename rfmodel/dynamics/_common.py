"""Machinery the exact evaluators share (:mod:`rfmodel.dynamics`): the problem's arrays on the
device, schedule validation, the padded mode layout and the pairwise reduction that make the step
loops fast on XLA:CPU, and ahead-of-time compilation.

Nothing here knows a recursion; :mod:`~rfmodel.dynamics.steps` (SGD),
:mod:`~rfmodel.dynamics.momentum` (heavy ball) and :mod:`~rfmodel.dynamics.segments` build on it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .._x64 import float64
from ..problem import Problem

__all__ = [
    "Array",
    "device_cache",
    "problem_arrays",
    "is_concrete",
    "check_schedule",
    "as_f64",
    "prepare",
    "guard",
    "RED_WIDTH",
    "padded_modes",
    "rsum",
    "padded_arrays",
    "pad_to",
    "COMPILER_OPTIONS",
    "FUSED_MODES",
    "FUSED_WORK",
    "fused_pays",
    "compile_cpu",
    "diverged",
]

Array = jax.Array

#: Width at which :func:`rsum` stops halving (see the performance notes of
#: :mod:`rfmodel.dynamics.steps`).
RED_WIDTH = 16


def device_cache(problem: Problem, key: str, make) -> tuple[Array, ...]:
    """float64 device copies of ``make()``'s arrays, made once and kept on the problem."""
    cached = problem.__dict__.get(key)
    if cached is None:
        with jax.ensure_compile_time_eval():  # concrete even when first called under jit
            cached = tuple(jax.device_put(np.asarray(x, np.float64)) for x in make())
        object.__setattr__(problem, key, cached)  # Problem is frozen, its arrays too
    return cached


@float64
def problem_arrays(problem: Problem) -> tuple[Array, Array, Array, Array]:
    """(λ, C(0), w·λ, σ²) of a problem as float64 device arrays (made once per problem)."""
    return device_cache(
        problem,
        "_device_arrays",
        lambda: (problem.lam, problem.c0, problem.weight * problem.lam, problem.label_noise**2),
    )


def is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _numbers(x, name: str) -> np.ndarray:
    """``x`` as a NumPy array of real numbers (booleans, integers, floats), or a ValueError
    naming ``name``: strings such as ``["0.1", "0.2"]``, ``None`` or ragged lists are refused
    here rather than failing later inside NumPy or JAX with a TypeError."""
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be an array of numbers; got {x!r:.80} ({e})") from None
    if a.dtype.kind not in "biuf":
        raise ValueError(
            f"{name} must be an array of numbers; got {a.dtype} values {x!r:.80} (convert "
            "them first, e.g. np.asarray(values, dtype=float))"
        )
    return a


def check_schedule(etas, batches=None, *, name: str = "etas") -> None:
    """Raise ``ValueError`` for a schedule that is not 1-D, finite, η ≥ 0 (batches ≥ 1).

    Skipped for traced values (inside ``jit``/``grad``), where values are unknown.
    """
    if is_concrete(etas):
        e = _numbers(etas, name)
        if e.ndim != 1 or e.size == 0:
            raise ValueError(
                f"{name} must be a non-empty 1-D array of per-step learning "
                f"rates; got shape {e.shape}"
            )
        if not np.all(np.isfinite(e)):
            raise ValueError(
                f"{name} must be finite; got NaN/Inf at step "
                f"{int(np.flatnonzero(~np.isfinite(e))[0])}"
            )
        if np.any(e < 0):
            raise ValueError(f"{name} must be >= 0; got {name}[{int(np.argmin(e))}]={e.min()}")
    if batches is not None and is_concrete(batches):
        m = _numbers(batches, "batches")
        if m.shape != np.shape(etas):
            raise ValueError(
                f"batches must have the shape of {name} {np.shape(etas)}; got {m.shape}"
            )
        if not np.all(np.isfinite(m)) or np.any(m < 1):
            raise ValueError(f"batches must be finite and >= 1; got min {np.nanmin(m)}")


def as_f64(x):
    # numpy for concrete values: jnp.asarray/jnp.full would each compile a tiny kernel (~50 ms
    # of a cold solve).
    return np.asarray(x, np.float64) if is_concrete(x) else jnp.asarray(x, jnp.float64)


def prepare(problem: Problem, etas, batches):
    check_schedule(etas, batches)
    etas = as_f64(etas)
    if batches is None:
        return etas, np.full(etas.shape, problem.batch, np.float64)
    return etas, as_f64(batches)


def guard(loss: Array) -> Array:
    # Overflow → inf (never NaN) and stays inf: 0·inf at η = 0 would otherwise give NaN.
    return jnp.where(jnp.isfinite(loss), loss, jnp.inf)


def padded_modes(n: int) -> int:
    """Mode count ≥ n that halves down to RED_WIDTH·(small odd number); ≤ 1/8 padding."""
    k = max(0, int(np.floor(np.log2(max(n, 1) / RED_WIDTH))) - 3)
    unit = RED_WIDTH << k
    return -(-n // unit) * unit


def rsum(x: Array) -> Array:
    """Σ over the last axis by pairwise halving (vectorised fused kernels on XLA:CPU)."""
    n = x.shape[-1]
    while n > RED_WIDTH and n % 2 == 0:
        n //= 2
        x = x[..., :n] + x[..., n:]
    return jnp.sum(x, axis=-1)


def padded_arrays(problem: Problem) -> tuple[Array, Array, Array, Array, Array]:
    """(λ, λ², C(0), w·λ, σ²) zero-padded to :func:`padded_modes` (made once per problem)."""

    def make():
        n = padded_modes(problem.lam.shape[0])
        lam, c0, wlam = (
            np.pad(np.asarray(x, np.float64), (0, n - x.shape[0]))
            for x in (problem.lam, problem.c0, problem.weight * problem.lam)
        )
        return lam, lam * lam, c0, wlam, problem.label_noise**2

    return device_cache(problem, "_padded_arrays", make)


def pad_to(x: Array, n: int) -> Array:
    pad = n - x.shape[0]
    return jnp.concatenate([x, jnp.zeros((pad,), x.dtype)]) if pad else x


# The optimizers' objectives are compiled ahead of time. XLA:CPU's classic fusion emitters compile
# these loop programs faster than its default emitters (SGD's objective at N = 500, T = 1000:
# 0.22 vs 0.39 s), and compilation is most of a cold solve of a small problem. On large problems
# the default emitters run some programs faster, which repays their longer compile within a
# solve's few hundred evaluations: SGD's objective on many modes (one run, N = 2000 / 10^4,
# T = 10^4: 55 vs 62 ms, 0.30 vs 0.37 s per evaluation; no faster at N = 1000), and momentum's
# forward pass (rfmodel/dynamics/momentum.py). :func:`fused_pays` says when; should a jaxlib drop
# the option, the default emitters are used everywhere.
COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False}
#: Work (padded modes × steps) and padded modes from which :func:`fused_pays`.
FUSED_WORK, FUSED_MODES = 2**21, 2048


def fused_pays(modes: int, steps: int, min_modes: int = FUSED_MODES) -> bool:
    """Whether a program over ``modes`` padded modes and ``steps`` steps is large enough for
    XLA's default emitters (see above)."""
    return modes >= min_modes and modes * steps >= FUSED_WORK


def compile_cpu(lowered, fused: bool = False):
    """Compile ``lowered`` with XLA:CPU's classic emitters (where available), or with the default
    ones if ``fused`` (see above)."""
    if jax.default_backend() == "cpu" and not fused:
        try:
            return lowered.compile(COMPILER_OPTIONS)
        except jax.errors.JaxRuntimeError:
            pass
    return lowered.compile()


def diverged(curve) -> bool:
    """True if the loss overflowed anywhere on the curve (the recursion grew without bound)."""
    return not bool(np.all(np.isfinite(np.asarray(curve, np.float64))))
