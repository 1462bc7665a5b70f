"""Batch schedules in practice: integer batches with the same total, and the fewest steps at
which the optimal (η_t, m_t) schedule on a sample budget reaches a target loss."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..problem import Problem, check_finite
from .result import ScheduleResult
from .solver import optimize_schedule

__all__ = ["integer_batches", "FewestSteps", "fewest_steps"]


def integer_batches(batches) -> np.ndarray:
    """Integer per-step batch sizes with the same total, each ⌊m_t⌋ or ⌈m_t⌉.

    Cumulative rounding: with M(t) = Σ_{s<t} m_s, step t takes ⌊M(t+1) + ½⌋ − ⌊M(t) + ½⌋
    samples, so the rounding error never accumulates: Σ_t equals the total rounded to an
    integer (exactly S for an integer budget), and m_t ≥ 1 stays ≥ 1.

    >>> integer_batches([1.5, 2.5, 1.5, 2.5]).tolist()
    [2, 2, 2, 2]
    """
    m = np.asarray(batches, np.float64)
    if m.ndim != 1 or m.size == 0 or not np.all(np.isfinite(m)) or np.any(m < 1):
        raise ValueError("batches must be a non-empty 1-D array of finite batch sizes >= 1")
    cum = np.floor(np.concatenate([[0.0], np.cumsum(m)]) + 0.5).astype(np.int64)
    return np.diff(cum)


@dataclass(frozen=True)
class FewestSteps:
    """Result of :func:`fewest_steps`.

    Attributes:
        steps: the smallest horizon T found whose joint optimum reaches the target loss.
        result: the (η, m) optimum at that T.
        losses: the optimal loss L*(T; S) of every horizon solved on the way.
        results: those optima.
    """

    steps: int
    result: ScheduleResult = field(repr=False)
    losses: dict[int, float] = field(default_factory=dict)
    results: dict[int, ScheduleResult] = field(default_factory=dict, repr=False)


def fewest_steps(
    problem: Problem,
    samples: float,
    target: float,
    *,
    T_start: int,
    T_min: int | None = None,
    controls=None,
    rtol: float = 0.01,
    **kwargs: Any,
) -> FewestSteps:
    """The fewest steps T at which the optimal (η_t, m_t) schedule on S = ``samples`` samples
    reaches L(T) ≤ ``target`` (the wall-clock question, docs/theory.md §6).

    From ``T_start`` (which must reach the target, e.g. the steps of the best constant-batch
    schedule) T is halved until the optimum misses the target (or from ``T_min`` when given, a
    horizon expected to miss it), then the bracket is bisected in log T to a relative width
    ``rtol``. Each horizon is warm-started from the solved one nearest in log T. "Reaches" allows
    the solver's precision, 1e-9 relative. Assumes L*(T; S) falls with T (fewer steps means
    larger batches, whose progress per sample the stability bound on η caps). ``controls``:
    None (per step), an int K (at most T), or a callable ``T -> K``; ``kwargs`` go to
    :func:`optimize_schedule` (``batch_min``, ``batch_max``, ``eta_max``, ...), which checks
    them.
    """
    for name, v in (("samples", samples), ("target", target)):
        if check_finite(name, v) <= 0:
            raise ValueError(f"{name} must be a finite number > 0; got {name}={v!r}")
    for name, v in (("T_start", T_start), ("T_min", T_min)):
        if v is not None and (not isinstance(v, int | np.integer) or v < 1):
            raise ValueError(f"{name} must be an integer >= 1; got {name}={v!r}")
    if not 0 < rtol < 1:
        raise ValueError(f"rtol must be in (0, 1); got rtol={rtol!r}")
    kwargs = {**kwargs, "optimize": ("eta", "batch"), "samples": float(samples)}
    bmax = kwargs.get("batch_max")
    T_floor = max(1, math.ceil(float(samples) / bmax)) if bmax else 1
    results: dict[int, ScheduleResult] = {}

    def reaches(T: int) -> bool:
        if T not in results:
            K = controls(T) if callable(controls) else controls
            K = None if K is None else max(1, min(int(K), T))
            near = min(results, key=lambda t: abs(math.log(t / T)), default=None)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                try:  # warm start (η/m kept per segment), else the default start
                    if near is None:
                        raise ValueError
                    init = {"eta": results[near].etas, "batch": results[near].batches}
                    results[T] = optimize_schedule(problem, T, controls=K, init=init, **kwargs)
                except ValueError:
                    results[T] = optimize_schedule(problem, T, controls=K, **kwargs)
        return results[T].loss <= target * (1 + 1e-9)

    hi = int(T_start)
    if not reaches(hi):
        raise ValueError(
            f"T_start: the optimum at T_start={hi} does not reach target={target:.6g} "
            f"(L* = {results[hi].loss:.6g}); pass a larger T_start"
        )
    lo = hi
    if T_min is not None and T_floor <= T_min < hi:
        lo = int(T_min)
        if reaches(lo):
            hi = lo
    while lo == hi and lo > T_floor:  # halve until a horizon misses the target
        lo = max(T_floor, lo // 2)
        if reaches(lo):
            hi = lo
    while hi > lo + 1 and hi / lo - 1 > rtol:
        mid = min(max(int(round(math.sqrt(lo * hi))), lo + 1), hi - 1)
        if reaches(mid):
            hi = mid
        else:
            lo = mid
    return FewestSteps(
        steps=hi,
        result=results[hi],
        losses={T: r.loss for T, r in sorted(results.items())},
        results=dict(sorted(results.items())),
    )
