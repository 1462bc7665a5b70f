"""Chains of horizons: optimal schedules for a list of T, each warm-started from the previous,
saved as they finish under a key of every setting that changes the answer (resume)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..dynamics.segments import Piecewise
from ..dynamics.steps import shared_horizons
from ..problem import Problem
from ..results import config_key
from .controls import check_solver_args, optimize_names, validate_batch, validate_momentum
from .keys import describe, optional_config
from .result import ScheduleResult, load_schedule
from .solver import optimize_schedule

__all__ = ["horizon_keys", "optimize_schedules"]


_SOLVER_DEFAULTS = {
    "eta_max": None,
    "smoothness": 0.0,
    "batches": None,
    "maxiter": 5000,
    "tol": 1e-10,
    "parameterization": "log",
}
#: Settings of the batch and momentum controls: in a key only when set.
_BATCH_OPTIONS = ("optimize", "samples", "batch_min", "batch_max")
_JOINT_OPTIONS = (*_BATCH_OPTIONS, "beta_max", "betas")


def horizon_keys(
    problem: Problem, Ts: Sequence[int], *, controls=None, init=None, **kwargs: Any
) -> dict[int, dict[str, Any]]:
    """The cache key of each horizon of :func:`optimize_schedules` (same arguments).

    A key holds every setting that changes the answer: the problem, T, the number of controls,
    every solver setting with its default filled in, and how the horizon was started (``init``
    for the first, a warm start from the previous horizon for the others). With the batch
    optimized it also holds the controls optimized, the budget S of that horizon (``samples``
    may be a callable ``T -> S``) and the batch bounds; with the momentum optimized, β_max;
    with fixed ``betas`` (an array, or a callable ``T -> betas``) their fingerprint. Keys of the
    rate alone of plain SGD are unchanged.
    """
    Ts = list(Ts)
    for T in Ts:
        if not isinstance(T, int | np.integer) or isinstance(T, bool) or T < 1:
            raise ValueError(f"Ts must be integers >= 1; got {T!r}")
    optional = optional_config(kwargs.pop("grid", "uniform"), kwargs.pop("method", "auto"))
    batch_kw = {k: kwargs.pop(k) for k in _JOINT_OPTIONS if k in kwargs}
    unknown = set(kwargs) - set(_SOLVER_DEFAULTS)
    if unknown:
        raise TypeError(f"unexpected solver arguments {sorted(unknown)}")
    solver = {**_SOLVER_DEFAULTS, **kwargs, **optional}
    names = optimize_names(batch_kw.get("optimize", ("eta",)))
    validate_momentum(names, batch_kw.get("beta_max"), None, 1)
    if "batch" not in names:
        validate_batch(problem, 1, names, *(batch_kw.get(k) for k in _BATCH_OPTIONS[1:]), None)
        solver["eta_max"] = check_solver_args(problem, 1, None, solver["eta_max"], 0.0)[1]
    solver["batches"] = describe(solver["batches"])
    out = {}
    for i, T in enumerate(sorted(int(T) for T in Ts)):
        out[T] = {
            "problem": problem.config(),
            "T": T,
            "controls": controls(T) if callable(controls) else controls,
            "solver": _solver_key(problem, T, solver, names, batch_kw),
            "start": "warm start from the previous horizon" if i else describe(init),
        }
    return out


def _solver_key(problem, T: int, solver, names, batch_kw) -> dict[str, Any]:
    """The solver part of a horizon's key: ``solver`` as is for the rate alone of plain SGD."""
    key = _batch_solver_key(problem, T, solver, names, batch_kw) if "batch" in names else solver
    if names == ("eta",) and batch_kw.get("betas") is None:
        return key
    key = {**key, "optimize": list(names)}
    if "momentum" in names:
        key["beta_max"] = validate_momentum(names, batch_kw.get("beta_max"), None, T)
    betas = batch_kw.get("betas")
    if betas is not None:
        betas = betas(T) if callable(betas) else betas
        validate_momentum(names, None, betas, T)
        key["betas"] = describe(betas)
    return key


def _batch_solver_key(problem, T: int, solver, names, batch_kw) -> dict[str, Any]:
    samples = batch_kw.get("samples")
    S, lo, hi = validate_batch(
        problem,
        T,
        names,
        samples(T) if callable(samples) else samples,
        batch_kw.get("batch_min"),
        batch_kw.get("batch_max"),
        solver["batches"],
    )
    eta_max = problem.eta_mode_bound(hi) if solver["eta_max"] is None else solver["eta_max"]
    eta_max = check_solver_args(problem, 1, None, eta_max, 0.0)[1]
    return {
        **solver,
        "eta_max": eta_max,
        "optimize": list(names),
        "samples": S,
        "batch_min": lo,
        "batch_max": hi,
    }


def optimize_schedules(
    problem: Problem,
    Ts: Sequence[int],
    *,
    out_dir: str | Path | None = None,
    progress: bool = True,
    **kwargs: Any,
) -> dict[int, ScheduleResult]:
    """Optimize for each horizon in ``Ts`` (ascending), warm-starting each from the previous.

    The previous optimum, resampled on the fraction t/T, initializes the next horizon; a horizon
    that ends without a first-order point from it is solved again from the default start, and
    the converged (else the lower) of the two is kept. With
    ``out_dir`` each result is saved as soon as it is done (``T{T}_<key>.npz`` + ``.json``) and
    a rerun loads finished horizons instead of recomputing them (resume). The key
    (:func:`horizon_keys`) covers every setting that changes the answer; a saved result is
    validated on load, and a damaged or mismatched one is moved aside with a warning and
    recomputed. ``kwargs`` go to :func:`optimize_schedule`; ``controls`` may be an int or a
    callable ``T -> K``.
    """

    keys = horizon_keys(problem, Ts, **kwargs)
    prev = kwargs.pop("init", None)
    kwargs.pop("controls", None)  # in each horizon's key
    samples = kwargs.pop("samples", None)  # a number or T -> S
    betas = kwargs.pop("betas", None)  # an array or T -> betas
    names = optimize_names(kwargs.get("optimize", ("eta",)))
    out: dict[int, ScheduleResult] = {}
    it = list(keys)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="optimal schedules", unit="T")
    batch = "batch" in names
    with shared_horizons(max(keys)):  # one compiled step-path objective for the chain
        for T in it:
            key = keys[T]
            path = None if out_dir is None else Path(out_dir) / f"T{T}_{config_key(key)}"
            saved = None if path is None else load_schedule(path, key)
            if saved is not None:
                out[T] = saved
            else:
                if batch:
                    kwargs["samples"] = samples(T) if callable(samples) else samples
                if betas is not None:
                    kwargs["betas"] = betas(T) if callable(betas) else betas
                out[T] = _solve_horizon(problem, T, key["controls"], prev, kwargs)
                if path is not None:
                    out[T].save(path, key=key)
            prev = out[T].etas
            if names != ("eta",):  # every optimized control carries over
                prev = {"eta": out[T].etas, "batch": out[T].batches, "momentum": out[T].betas}
                prev = {k: v for k, v in prev.items() if k in names}
    return out


def _solve_horizon(problem: Problem, T: int, controls, prev, kwargs: dict[str, Any]):
    """One horizon of a chain, warm-started from ``prev`` (the previous optimum)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = optimize_schedule(problem, T, controls=controls, init=prev, **kwargs)
        except ValueError as e:
            if prev is None or not str(e).startswith("init:"):
                raise
            # The previous optimum stretched to T can diverge (a hard-phase transient above η_c
            # held 10x longer): start from it clipped below η_c instead; with several controls
            # (a momentum near 1 held longer is as unstable) from the default start.
            init = None if isinstance(prev, dict) else _below_critical(problem, prev)
            res = optimize_schedule(problem, T, controls=controls, init=init, **kwargs)
    if prev is not None and not res.converged:
        # A warm start can strand L-BFGS-B where the default start does not (measured: rates
        # under a fixed β = 0.99, hard problem, T = 512 warm from T = 256 stopped at a projected
        # gradient of 0.041; from the default start, 6.5e-6): solve again from there and keep
        # the converged one, else the lower loss; the first one's warnings go if it is dropped.
        with warnings.catch_warnings(record=True) as again:
            warnings.simplefilter("always")
            cold = optimize_schedule(problem, T, controls=controls, **kwargs)
        if (cold.converged, -cold.loss) > (res.converged, -res.loss):
            res, caught = cold, again
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return res


def _below_critical(problem: Problem, etas):
    """A warm start with every rate clipped to 0.99 of the largest stable constant rate."""

    cap = 0.99 * problem.eta_critical()
    if isinstance(etas, Piecewise):
        return Piecewise(np.minimum(etas.values, cap), etas.lengths)
    return np.minimum(np.asarray(etas, np.float64), cap)
