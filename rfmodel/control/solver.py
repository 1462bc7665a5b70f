"""The solver: L-BFGS-B on log L(T) over composable controls (docs/theory.md §6).

Minimize the final expected loss L(T) over the controls of K segments (step t uses control
⌊tK/T⌋, or a given grid) by differentiating L(T) through the exact recursion (its reverse pass is
the adjoint/costate recursion) and running bounded L-BFGS-B (scipy). The objective is log L(T)
(+ the controls' penalties), so the tolerances do not depend on the loss scale.

A solve is composed of three kinds of object, as diffrax's ``diffeqsolve`` is of a term, a
solver and an adjoint:

- **controls** (:mod:`rfmodel.control.controls`): :class:`~rfmodel.control.controls.Rate`,
  :class:`~rfmodel.control.controls.Batch` (with its sample budget),
  :class:`~rfmodel.control.controls.Momentum`; each knows its bounds, its coordinates, its
  default start, its budget and its KKT residual;
- an **evaluator** (:mod:`rfmodel.dynamics.evaluators`): log L(T) and its gradient by control on
  one evaluation path (SGD steps, heavy-ball steps, segment propagation), declaring the
  controls it differentiates;
- **this solver**: the start (a control without one gets the best constant, searched downward
  from a stable value until it lowers L(T)), L-BFGS-B on the controls' concatenated
  coordinates, an augmented Lagrangian for the budgets, restarts when L-BFGS-B stops on its
  relative-reduction test short of a KKT point, the KKT-residual stop of preconditioned
  controls, and the first-order test of the result. It knows no control by name.

:func:`optimize_schedule` maps its keywords onto these objects; a combination of controls that
no evaluator of the chosen path differentiates is refused with a ``ValueError`` naming the
control and the path. Composed by hand (the same solve as ``optimize_schedule(p, 200,
controls=10, optimize=("eta", "batch"), samples=800)``, without its validation)::

    ev = SGDSteps(p, uniform_lengths(200, 10), wrt=("eta", "batch"))
    controls = [Rate(p.eta_mode_bound(800 - 199)), Batch(800, 1, 800 - 199)]
    start, _ = initial_values(controls, ev, constant=lambda fixed: ev.on([200], fixed))
    values, stop = minimize(Objective(ev, controls), controls, start)

>>> from rfmodel import Problem, loss_curve
>>> p = Problem(a=2.5, b=1.2, sigma=0.5, n_modes=100, batch=4)
>>> res = optimize_schedule(p, 200, controls=20)
>>> res.converged, res.etas.shape, res.loss < float(loss_curve(p, np.full(200, 0.1))[-1])
(True, (200,), True)
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import optimize

from ..dynamics import check_schedule
from ..dynamics.evaluators import EVALUATORS, Evaluator
from ..dynamics.steps import check_noise
from ..optim import KKT_TOLERANCE, lbfgsb
from ..problem import Problem
from .controls import (
    Average,
    Batch,
    Control,
    Momentum,
    Quality,
    Rate,
    check_solver_args,
    optimize_names,
    rate_ceiling,
    validate_average,
    validate_batch,
    validate_fixed_rates,
    validate_momentum,
    validate_quality,
)
from .grid import LOG_RANGE, grid_lengths, grid_scale, rate_bounds, segments_cheaper, top_rate
from .keys import describe, optional_config
from .result import ScheduleResult

__all__ = [
    "optimize_schedule",
    "best_constant_rate",
    "lowering_rate",
    "choose_evaluator",
    "Objective",
    "initial_values",
    "minimize",
    "first_order",
]

#: Relative budget violation |Σ n u − S|/S at which the augmented Lagrangian stops (the exact
#: projection then removes the rest).
_BUDGET_TOL = 1e-9
#: Restarts of L-BFGS-B (no budget) stopped by its relative-reduction test off a KKT point.
_RESTARTS = 10
#: The lowest rate of the log box sits LOG_RANGE below min(η_max, 1e3 × the per-step bound): a
#: huge η_max (1e300) otherwise puts every rate of the box above stability.
_FLOOR_HEADROOM = 1e3


# --------------------------------------------------------------------------- the objective
class Objective:
    """log L(T) plus the controls' penalties, with the gradient by control, from one evaluator
    call (:meth:`__call__`); :meth:`at` remembers the last point it was asked for (a restart
    check and the final evaluation at the same point cost one evaluation). ``calls`` counts
    the evaluations."""

    def __init__(self, evaluator: Evaluator, controls: Sequence[Control]) -> None:
        self.evaluator, self.controls = evaluator, list(controls)
        self.calls = 0
        self._memo: tuple[Any, Any] | None = None

    def __call__(self, values: Mapping[str, np.ndarray]):
        self.calls += 1
        v, grads, curve = self.evaluator(values)
        for c in self.controls:
            v = c.penalize(v, grads[c.name], values[c.name])
        return v, grads, curve

    def at(self, values: Mapping[str, np.ndarray]):
        key = tuple((k, np.asarray(u).tobytes()) for k, u in sorted(values.items()))
        if self._memo is None or self._memo[0] != key:
            self._memo = (key, self(values))
        return self._memo[1]


def _multiplier(b: Control, by_name, vals, grads, n) -> float:
    """Least-squares estimate of the budget's multiplier ν (per unit spent) from the values
    strictly inside their bounds, in the residual coordinates (exact at a KKT point with at
    least one of them)."""
    a_parts, h_parts = [], []
    for k, d in b.spent_grad(vals, n).items():
        c, u = by_name[k], vals[k]
        free = c.free(u)
        if not np.any(free) and getattr(c, "interval_multiplier", False):
            return _interval_multiplier(c, u, c.kkt_weight(u) * grads[k], c.kkt_weight(u) * d)
        if not np.any(free):
            free = np.ones_like(u, dtype=bool)
        w = c.kkt_weight(u)
        a_parts.append((w * grads[k])[free])
        h_parts.append((w * d)[free])
    a, h = np.concatenate(a_parts), np.concatenate(h_parts)
    return float(-(a @ h) / (h @ h))


def _interval_multiplier(c: Control, u: np.ndarray, a: np.ndarray, h: np.ndarray) -> float:
    """ν of a budget whose values all sit at their bounds (a bang-bang point): a value at its
    lower bound is optimal iff a_j + ν h_j ≥ 0, one at its upper bound iff a_j + ν h_j ≤ 0
    (h_j > 0); the middle of the interval of ν these leave (the nearer end when it is empty
    or one-sided)."""
    at_lo = u <= c.lo + 1e-9 * max(1.0, abs(c.lo))
    r = -a / h
    lo = float(np.max(r[at_lo])) if np.any(at_lo) else -math.inf
    hi = float(np.min(r[~at_lo])) if np.any(~at_lo) else math.inf
    if math.isinf(lo) or math.isinf(hi):
        return hi if math.isinf(lo) else lo
    return 0.5 * (lo + hi)


def first_order(objective: Objective, values: Mapping[str, np.ndarray]):
    """(curve, KKT residual by control, multiplier by budget) at ``values``: every control's
    projected Lagrangian gradient ∇ log L + Σ_b ν_b ∇ spent_b in its residual coordinates,
    the multipliers ν_b estimated from the free values."""
    controls = objective.controls
    by_name = {c.name: c for c in controls}
    n = objective.evaluator.n
    _, grads, curve = objective.at(values)
    budgets = [c for c in controls if c.total is not None]
    nus = {b.name: _multiplier(b, by_name, values, grads, n) for b in budgets}
    lagr = {c.name: grads[c.name] for c in controls}
    for b in budgets:
        for k, d in b.spent_grad(values, n).items():
            lagr[k] = lagr[k] + nus[b.name] * d
    kkt = {c.name: c.residual(values[c.name], lagr[c.name]) for c in controls}
    return curve, kkt, nus


# --------------------------------------------------------------------------- the solver
def minimize(
    objective: Objective,
    controls: Sequence[Control],
    start: Mapping[str, np.ndarray],
    *,
    maxiter: int = 5000,
    tol: float = 1e-10,
    callback: Callable | None = None,
) -> tuple[dict[str, np.ndarray], optimize.OptimizeResult]:
    """Minimize the objective over the controls' K values each, from ``start``.

    L-BFGS-B works on the concatenation of the controls' coordinates (:meth:`Control.to_x`).
    For each budget c(x) = (spent − total)/total it minimizes log L + ν c + ρ/2 c² over the
    boxes (the first time to a loose tolerance); then ν ← ν + ρ c, and ρ grows 10× whenever
    |c| fell less than 4× (standard first-order multiplier updates). ν starts from its
    least-squares estimate at the start, so the first inner solve already spends the budget
    about right. Without a budget, a stop on the relative-reduction test at a point that is not
    first-order optimal is restarted with fresh memory (up to 10 times): flat valleys (the
    momentum's easy-phase degeneracy: L depends on η/(1 − β) almost alone) end L-BFGS-B there
    (measured: projected gradient 7e-3 after 41 iterations). Returns (values, summary), the
    values projected exactly onto every budget (:meth:`Control.project`).
    """
    n = objective.evaluator.n
    K = len(n)
    by_name = {c.name: c for c in controls}
    sl = {c.name: slice(i * K, (i + 1) * K) for i, c in enumerate(controls)}
    bounds = [bd for c in controls for bd in c.bounds_x(K)]
    budgets = [c for c in controls if c.total is not None]
    ftol = objective.evaluator.ftol
    stop_at_kkt = any(c.kkt_stop for c in controls) and not budgets
    stuck = objective.evaluator.restart_stuck  # see HeavyBallSteps
    last: dict[str, Any] = {}

    def unpack(x: np.ndarray) -> dict[str, np.ndarray]:
        return {c.name: c.from_x(x[sl[c.name]]) for c in controls}

    def fg(x: np.ndarray) -> tuple[float, np.ndarray]:
        vals = unpack(x)
        v, grads, _ = objective(vals)
        ok = math.isfinite(v) and all(np.all(np.isfinite(grads[c.name])) for c in controls)
        if stop_at_kkt:
            last.update(x=x.copy(), vals=vals, grads=grads, ok=ok)
        if not ok:
            return 1e10, np.zeros_like(x)  # diverged: a wall the line search backs off
        return v, np.concatenate([c.grad_x(vals[c.name], grads[c.name]) for c in controls])

    def budget(b: Control, vals) -> tuple[float, dict[str, np.ndarray]]:
        c = (b.spent(vals, n) - b.total) / b.total
        h = {k: by_name[k].grad_x(vals[k], d) / b.total for k, d in b.spent_grad(vals, n).items()}
        return c, h

    # Preconditioned controls stop at a KKT residual 100x below KKT_TOLERANCE (see Rate).
    def stop(intermediate_result: optimize.OptimizeResult) -> None:
        if callback is not None:
            callback(intermediate_result)
        if last.get("ok") and np.array_equal(intermediate_result.x, last["x"]):
            vals, grads, x = last["vals"], last["grads"], last["x"]
            worst = max(c.residual(vals[c.name], grads[c.name], x[sl[c.name]]) for c in controls)
            if worst <= 0.01 * KKT_TOLERANCE:
                raise StopIteration

    x = np.concatenate([c.to_x(start[c.name]) for c in controls])
    nit = 0
    nu: dict[str, float] = {}
    if budgets:  # multipliers of the normalized budgets c = (spent − S)/S
        vals = unpack(x)
        _, grads, _ = objective(vals)
        nu = {b.name: _multiplier(b, by_name, vals, grads, n) * b.total for b in budgets}
    alm = {"rho": 10.0}
    c_prev = math.inf
    res = None

    def phi(x: np.ndarray) -> tuple[float, np.ndarray]:
        v, g = fg(x)
        if v >= 1e10 or not budgets:
            return v, g
        vals = unpack(x)
        for b in budgets:
            c, h = budget(b, vals)
            v += nu[b.name] * c + 0.5 * alm["rho"] * c * c
            for k, hk in h.items():
                g[sl[k]] += (nu[b.name] + alm["rho"] * c) * hk
        return v, g

    for k in range(50):
        # The first inner solve of a budgeted problem is inexact (ν is still moving): measured
        # 20% fewer evaluations on the paper's P1 (304 vs 376) for the same optimum.
        loose = k == 0 and bool(budgets)
        res = lbfgsb(
            phi,
            x,
            bounds,
            maxiter=maxiter - nit,
            gtol=max(tol, 1e-6) if loose else tol,
            ftol=1e-11 if loose else ftol,
            callback=stop if stop_at_kkt else callback,
        )
        if res.status == 99:  # stopped by ``stop``: a first-order point
            labels = ", ".join(c.kkt_label for c in controls if c.kkt_stop)
            res.success = True
            res.message = f"CONVERGENCE: KKT RESIDUAL <= {0.01 * KKT_TOLERANCE:g} ({labels})"
        x = np.asarray(res.x)
        nit += int(res.nit)
        if not budgets:
            message = str(res.message).upper()
            retry = "REDUCTION" in message or (stuck and "ABNORMAL" in message)
            if nit >= maxiter or k >= _RESTARTS or not retry:
                break
            vals = unpack(x)
            _, grads, _ = objective.at(vals)
            if max(c.residual(vals[c.name], grads[c.name]) for c in controls) <= KKT_TOLERANCE:
                break
            if stuck:
                x = _lift_stranded(objective, controls, sl, bounds, x, unpack)
            continue
        c = {b.name: budget(b, unpack(x))[0] for b in budgets}
        worst = max((abs(v) for v in c.values()), default=0.0)
        if (worst <= _BUDGET_TOL and not loose) or nit >= maxiter:
            break
        for name, cv in c.items():
            nu[name] += alm["rho"] * cv
        if worst > 0.25 * c_prev:
            alm["rho"] = min(10.0 * alm["rho"], 1e8)
        c_prev = worst
    vals = unpack(x)
    for b in budgets:
        vals[b.name] = b.project(vals, n)
    summary = optimize.OptimizeResult(nit=nit, success=bool(res.success), message=res.message)
    return vals, summary


def _lift_stranded(objective: Objective, controls, sl, bounds, x: np.ndarray, unpack):
    """x with the log-coordinate values stranded in the bottom half of their box (u below
    e^−15 of its bound: zero in effect) lifted, when that lowers the objective: entries whose
    gradient would raise them (∂f/∂u < 0). In log coordinates ∂f/∂(log u) = u ∂f/∂u vanishes
    there, so L-BFGS-B cannot move them (measured: a momentum solve left one rate at 6e-11 with
    ∂ log L/∂η = −1.9). Tried at e^−2, e^−6, e^−12 … below the top of the box, the first that
    lowers the objective kept."""
    vals = unpack(x)
    f0, grads, _ = objective.at(vals)
    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    trapped = np.zeros(x.size, dtype=bool)
    for c in controls:
        if c.log and not c.log1m:
            i = sl[c.name]
            trapped[i] = (x[i] < 0.5 * (lo[i] + hi[i])) & (grads[c.name] < 0)
    if not trapped.any():
        return x
    for depth in (2.0, 6.0, 12.0, 20.0):
        y = x.copy()
        y[trapped] = np.maximum(hi[trapped] - depth, lo[trapped])
        f = objective(unpack(y))[0]
        if math.isfinite(f) and f < f0:
            return y
    return x


# --------------------------------------------------------------------------- the start
def _lowering(control: Control, ev: Evaluator, problem: Problem, name: str):
    """The first of the control's probes (constants, :meth:`Rate.probes`) whose run lowers L(T)
    on the one-segment evaluator ``ev``, and the evaluations spent; a ``ValueError`` (from
    :meth:`Rate.no_start`, naming ``name``) when none does."""
    tried: list[float] = []
    loss0 = math.nan
    for u in control.probes(problem, ev.fixed):
        tried.append(u)
        _, _, curve = ev({control.name: np.array([u])})
        loss0 = float(curve[0])
        if math.isfinite(curve[-1]) and curve[-1] < curve[0]:
            return u, len(tried)
    if not tried:
        loss0 = float(ev({control.name: np.array([control.hi])})[2][0])
    raise ValueError(control.no_start(problem, ev.T, tried, loss0, name))


def _best_constant(control: Control, ev: Evaluator, problem: Problem, name: str):
    """(the best constant value of ``control`` on the one-segment evaluator ``ev``, evaluations):
    L-BFGS-B in log coordinates from the first probe that lowers L(T), to a relative gradient
    of 1e-6 (about 10 evaluations)."""
    u0, evaluations = _lowering(control, ev, problem, name)
    c1 = control.constant()
    obj = Objective(ev, [c1])
    vals, _ = minimize(obj, [c1], {c1.name: np.array([u0])}, maxiter=200, tol=1e-6)
    return float(vals[c1.name][0]), evaluations + obj.calls


def initial_values(
    controls: Sequence[Control],
    evaluator: Evaluator,
    *,
    constant: Callable[[dict[str, np.ndarray]], Evaluator],
    init=None,
    centers: np.ndarray | None = None,
    name: str = "eta_max",
) -> tuple[dict[str, np.ndarray], int]:
    """Start values of every control and the evaluations spent finding them.

    ``init``: a dict by control name, or the rates alone; each control resamples its entry to K
    values and puts it inside its bounds and on its budget (:meth:`Control.initial`). A control
    without a start (the rate by default) gets its best constant, with the others held at their
    starts, on the one-segment evaluator ``constant(fixed per-step inputs)``. A start given in
    full must lower L(T) (else ``ValueError`` "init: ..."): in log coordinates η → 0 is a
    spurious stationary point, so such starts used to end at L(T) = L(0) with L-BFGS-B
    reporting convergence."""
    K, n = evaluator.K, evaluator.n
    given = dict(init) if isinstance(init, dict) else ({} if init is None else {"eta": init})
    unknown = set(given) - {c.name for c in controls}
    if unknown:
        raise ValueError(
            f"init must be a schedule of rates or a dict over the optimized controls "
            f"{[c.name for c in controls]}; got keys {sorted(unknown)}"
        )
    out: dict[str, np.ndarray] = {}
    factor = np.ones(K)
    search = []
    for c in sorted(controls, key=lambda c: c.start_last):
        u, f = c.initial(given.get(c.name), K, centers, n, factor)
        if f is not None:
            factor = factor * f
        if u is None:
            search.append(c)
        else:
            out[c.name] = u
    evaluations = 0
    for c in search:
        fixed = {**evaluator.fixed, **{k: evaluator.expand(u) for k, u in out.items()}}
        u, e = _best_constant(c, constant(fixed), evaluator.problem, name)
        out[c.name], evaluations = np.full(K, u), evaluations + e
    if not search:
        _check_start(evaluator, out)
        evaluations = 1
    return {c.name: out[c.name] for c in controls}, evaluations


def _check_start(evaluator: Evaluator, start: dict[str, np.ndarray]) -> None:
    """Reject a given start from which the solver cannot make honest progress: a diverging one,
    or one no better than not training (η ≡ 0, or an unstable rate that has not overflowed)."""
    v, _, curve = evaluator(start)
    eta_c = evaluator.problem.eta_critical()
    if not math.isfinite(v):
        raise ValueError(
            "init: the initial schedule diverges; pass a smaller init or eta_max, or "
            f"init=None for the default start (largest stable constant rate {eta_c:.4g})"
        )
    if not curve[-1] < curve[0]:
        raise ValueError(
            f"init: the initial schedule does not lower the loss (L(T) = {curve[-1]:.4g} >= "
            f"L(0) = {curve[0]:.4g}): zero rates, or rates above the largest stable constant "
            f"rate {eta_c:.4g}; pass init=None for the default start"
        )


def _stop_reason(res: optimize.OptimizeResult, pg: float, maxiter: int) -> tuple[bool, str]:
    """(converged, why it stopped): converged only at a first-order point of the bounded problem.

    A line-search failure at a point whose residual is 100× below the tolerance counts too: the
    objective's rounding stopped L-BFGS-B there."""
    kkt = f"projected gradient {pg:.2g}"
    if res.success and pg <= KKT_TOLERANCE:
        return True, f"converged to a first-order point ({kkt} <= {KKT_TOLERANCE:g})"
    if "ABNORMAL" in str(res.message) and pg <= 1e-2 * KKT_TOLERANCE:
        return True, (
            f"converged to a first-order point ({kkt} <= {KKT_TOLERANCE:g}; the line search "
            "found no further decrease at the objective's rounding level)"
        )
    if res.nit >= maxiter:
        return False, f"stopped at the iteration cap maxiter={maxiter} ({kkt})"
    if res.success:
        return False, f"L-BFGS-B met its tolerances but the {kkt} is > {KKT_TOLERANCE:g}"
    return False, f"L-BFGS-B stopped: {res.message} ({kkt})"


# --------------------------------------------------------------------------- composition
def choose_evaluator(
    problem: Problem,
    lengths,
    names: Sequence[str],
    fixed: Mapping[str, Any],
    method: str,
) -> Evaluator:
    """The evaluator of ``method`` (``"steps"``, ``"segments"``, or ``"auto"``: segments when
    their cost model is the smaller and they take every control, see
    :data:`~rfmodel.control.grid.SEG_NS`) that differentiates ``names`` and holds ``fixed``
    (the first of :data:`~rfmodel.dynamics.evaluators.EVALUATORS` that does); a
    ``ValueError`` naming the control and the path when none of that path does."""
    if method not in ("auto", "steps", "segments"):
        raise ValueError(f"method must be 'auto', 'steps' or 'segments'; got method={method!r}")
    held = {k for k, v in fixed.items() if v is not None}
    lengths = np.asarray(lengths, np.int64)
    path = method
    if method == "auto":
        seg = [e for e in EVALUATORS if e.path == "segments" and e.supports(names, held)]
        cheaper = segments_cheaper(problem, int(lengths.sum()), lengths.size)
        path = "segments" if seg and cheaper else "steps"
    on_path = [e for e in EVALUATORS if e.path == path]
    for e in on_path:
        if e.supports(names, held):
            return e(problem, lengths, wrt=names, fixed=fixed)
    for name in names:
        if not any(name in e.differentiates for e in on_path):
            why = on_path[0].refusal(name)
            break
    else:
        missing = [k for k in sorted(held) if not any(k in e.accepts for e in on_path)]
        if not missing:  # each is available, but no evaluator of the path takes them together
            inputs = sorted(_ARGS.get(k, k) for k in held)
            each = "; ".join(
                f"{e.__name__} differentiates {sorted(e.differentiates)} and holds fixed "
                f"{sorted(e.accepts)}"
                for e in on_path
            )
            raise ValueError(
                f"optimize={tuple(names)!r} with the fixed inputs {inputs}: no evaluator of the "
                f"{path} path takes them together ({each})"
            )
        name = missing[0]
        why = on_path[0].refusal(name, fixed=True)
    arg = _ARGS.get(name, name) if name in held else None
    what = f"{arg} (fixed per-step values)" if arg else f"optimize={tuple(names)!r}"
    raise ValueError(f"{what} with method={method!r}: {why}; pass method='steps' (or 'auto')")


#: The keyword of ``optimize_schedule`` that holds each fixed per-step input.
_ARGS = {
    "batch": "batches",
    "momentum": "betas",
    "eta": "etas",
    "mix": "noise_clean/noise_noisy",
}


def _rate_box(problem: Problem, eta_max: float, batch: float) -> tuple[float, float]:
    """(the rate's upper bound, the lower end of its log box): η_max capped at
    :func:`~rfmodel.control.controls.rate_ceiling`, and log min(η_max, 1e3 × the per-step
    bound) − LOG_RANGE (log η_max − 30 unless η_max is that large)."""
    top = min(float(eta_max), rate_ceiling(problem, batch))
    floor = math.log(min(top, _FLOOR_HEADROOM * problem.eta_mode_bound(batch))) - LOG_RANGE
    return top, floor


def _rate_control(
    problem: Problem,
    eta_max: float,
    batch: float,
    lengths: np.ndarray | None,
    *,
    parameterization: str,
    monotone: bool,
    smoothness: float,
    growth_bounds: bool,
) -> Rate:
    """The rate of a solve: η_max capped (:func:`_rate_box`, ``batch`` the largest batch); on a
    non-uniform grid (``lengths``) in log coordinates preconditioned, its residual in log η, and
    with ``growth_bounds`` (the rate alone drives SGD at the problem's batch; with other controls
    the bound of one segment depends on their values: the plain box) the per-segment growth
    bounds."""
    top, floor = _rate_box(problem, eta_max, batch)
    scale = upper = growth = None
    if lengths is not None and parameterization == "log" and not monotone:
        scale, upper = grid_scale(lengths), np.full(len(lengths), top)
        if growth_bounds:
            upper = rate_bounds(problem, lengths, top)
            growth = upper < top_rate(problem, top)
    return Rate(
        top,
        parameterization=parameterization,
        monotone=monotone,
        smoothness=smoothness,
        scale=scale,
        upper=upper,
        growth=growth,
        floor=floor,
    )


def lowering_rate(
    problem: Problem, T: int, *, eta_max: float | None = None, name: str = "eta_max"
) -> float:
    """The first constant rate of the solver's start search that lowers L(T): min(η_c/2, η_max),
    then 4× smaller down to the bottom of the log box (:meth:`Rate.probes`); a ``ValueError``
    naming ``name`` and its useful range when none does (e.g. η_max too small)."""
    _, eta_max = check_solver_args(problem, T, None, eta_max, 0.0)
    top, floor = _rate_box(problem, eta_max, problem.batch)
    ev = choose_evaluator(problem, [T], ("eta",), {}, "auto")
    label = f"{name}={eta_max:g}"
    return _lowering(Rate(top, floor=floor), ev, problem, label)[0]


def best_constant_rate(
    problem: Problem, T: int, *, eta_max: float | None = None, batches=None, method: str = "auto"
) -> float:
    """The constant rate η ∈ (0, η_max] minimizing L(T) (the solver's default start).

    The one-control problem solved by L-BFGS-B in log η from a safely stable rate (half the
    largest stable constant rate at the mean batch, 4× smaller until it lowers L(T): at high
    label noise η_c/2 raises it), to a relative gradient of 1e-6: about 10 evaluations. At
    large T one segment of T steps is propagated exactly (``method``, see
    :func:`optimize_schedule`), so any T is cheap.
    """
    _, eta_max = check_solver_args(problem, T, None, eta_max, 0.0)
    if batches is not None:
        check_schedule(np.zeros(T), batches)
    m = problem.batch if batches is None else float(np.max(batches))
    top, floor = _rate_box(problem, eta_max, m)
    ev = choose_evaluator(problem, [T], ("eta",), {"batch": batches}, method)
    return _best_constant(Rate(top, floor=floor), ev, problem, f"eta_max={eta_max:g}")[0]


def optimize_schedule(
    problem: Problem,
    T: int,
    *,
    controls: int | None = None,
    eta_max: float | None = None,
    smoothness: float = 0.0,
    init=None,
    batches=None,
    maxiter: int = 5000,
    tol: float = 1e-10,
    parameterization: str = "log",
    progress: bool = False,
    monotone: bool = False,
    grid="uniform",
    method: str = "auto",
    optimize: Sequence[str] | str = ("eta",),
    samples: float | None = None,
    batch_min: float | None = None,
    batch_max: float | None = None,
    beta_max: float | None = None,
    betas=None,
    noise=None,
    clean_samples: float | None = None,
    noise_clean: float | None = None,
    noise_noisy: float | None = None,
    average=None,
    etas=None,
) -> ScheduleResult:
    """The learning-rate schedule minimizing L(T), subject to 0 ≤ η_t ≤ η_max; with
    ``optimize=("eta", "batch")`` the joint (η_t, m_t) schedule under the sample budget
    Σ_t m_t = S, batch_min ≤ m_t ≤ batch_max (docs/theory.md §6); with
    ``optimize=("eta", "momentum")`` the joint (η_t, β_t) schedule of heavy-ball SGD,
    0 ≤ β_t ≤ β_max (docs/theory.md §4, §6); all three at once with
    ``optimize=("eta", "batch", "momentum")``. With ``optimize=("eta", "quality")`` the joint
    (η_t, q_t) schedule of a data-quality curriculum, q_t ∈ [0, 1] the clean fraction of
    update t's batch under Σ_t q_t m_t = ``clean_samples`` (docs/theory.md §10); with
    ``optimize=("eta", "average")`` the rates and the iterate-averaging weights τ_t ∈ [0, 1]
    minimizing the averaged iterate's L̄(T) (§11). Either without ``"eta"`` optimizes the
    curriculum or the weights under fixed rates ``etas``. A preconditioned problem
    (``Problem(..., precondition=γ)``) is solved through its effective spectrum, stability
    bounds included (§12).

    The keywords build the controls (:class:`~rfmodel.control.controls.Rate`, ``Batch``,
    ``Momentum``) and pick an evaluator (:func:`choose_evaluator`); every rate option
    (``parameterization``, ``monotone``, ``smoothness``, ``grid``) combines with every other
    control on the step path; the segment path evaluates the rate alone at the problem's
    batch, and a combination it cannot evaluate is refused naming the control.

    Args:
        problem: the :class:`~rfmodel.Problem`.
        T: number of SGD steps.
        controls: ``None`` for one control per step, or K for K piecewise-constant controls
            (the same segments for every optimized control).
        eta_max: upper bound on η; default the per-step stability bound 2m/((m+1)λ_max), above
            which the top mode grows during that step (with the batch optimized: at
            m = batch_max, the loosest bound over the allowed batches). Any finite value > 0;
            one above 2m/((m+1)λ_min), where a step grows every mode and so never helps
            (:func:`~rfmodel.control.controls.rate_ceiling`), is capped there (``config``
            records the cap as ``eta_max`` and the value given as ``eta_max_given``).
        smoothness: κ ≥ 0 of the penalty κ Σ_j (u_{j+1} − u_j)² added to log L(T) (on the
            rates only).
        init: initial schedule: scalar, length-K controls, or any 1-D schedule (resampled on
            t/T). Default: the best constant rate (:func:`best_constant_rate`). Measured: from
            there the easy-phase benchmarks need 3.5–4.9x fewer evaluations than from half the
            largest stable constant rate (P1: 24 vs 84, P4: 33 vs 163). Also a dict over the
            optimized controls, e.g. ``{"eta": ..., "batch": ..., "momentum": ...}`` (any may be
            left out; the batches are rescaled onto the budget, the rates with them); default
            m ≡ S/T, β ≡ 0 and the best constant rate there. A ``ValueError`` when no constant
            rate ≤ η_max lowers L(T) (naming ``eta_max``).
        batches: optional per-step batch sizes (held fixed; not with the batch optimized).
        maxiter: L-BFGS-B iteration cap (all inner solves together when a budget is held).
        tol: projected-gradient tolerance (on log L, i.e. relative).
        parameterization: ``"log"`` (default) searches over v = log η ∈ [log η_max − 30,
            log η_max] (so η ≥ 1e-13 η_max, i.e. 0 in practice); ``"linear"`` over η ∈ [0, η_max].
            Measured: log needs 1.7–8× fewer evaluations (S2: 128 vs 510, per-step hard phase
            at T = 1000: 609 vs 4792) for the same optimum. The penalty κ stays on η, so a strong
            one is better conditioned in ``"linear"`` (per-step hard phase, κ = 1: 702 iterations
            to a KKT point, where log stalls at a projected gradient of 0.04). The batch is
            always searched in log m.
        progress: show a progress bar over solver iterations with the current objective
            (log L(T) + penalty); it counts iterations (no total: the cap is not an estimate).
        monotone: keep the schedule non-increasing after its warmup, the controls before the
            peak of the start (``init``; from the default constant start, none: the whole
            schedule is non-increasing). Solved in log coordinates on the decrements
            (:class:`Monotone`); ``converged`` is the KKT test of that constrained problem.
            Combines with the batch and the momentum (the step path) and with the segment
            path.
        grid: where the K controls sit: ``"uniform"`` (step t uses control ⌊tK/T⌋),
            ``"log"`` (:func:`rfmodel.segments.log_lengths`: short segments near t = 0 and
            t = T, where the optimum changes fastest) or K segment lengths summing to T. On a
            non-uniform grid in log coordinates the rates are preconditioned
            (:func:`~rfmodel.control.grid.grid_scale`) and their residual is measured in log η,
            with every other control too; the per-segment growth bounds
            (:func:`~rfmodel.control.grid.rate_bounds`) hold for the rate alone.
        method: how L(T) and its gradient are evaluated: ``"steps"`` (the step recursion,
            O(T·N) per evaluation), ``"segments"`` (exact segment propagation, O(K·N²)
            whatever T: docs/theory.md §5) or ``"auto"`` (segments when K ≪ T makes them
            cheaper, see ``SEG_NS``; never below T = 100 000). On the segment path the result
            keeps ``etas`` as a :class:`rfmodel.segments.Piecewise` and ``curve`` at the
            boundaries and 2000 log-spaced steps (``curve_steps``).
        optimize: the controls to optimize, ``"eta"`` and any of ``"batch"``, ``"momentum"``
            (default: the rate alone). The segment path differentiates the rate alone: with
            another control, fixed ``batches`` or ``betas``, ``method="segments"`` is refused
            naming them (``"auto"`` takes the step path).
        samples: the sample budget S = Σ_t m_t (with the batch optimized; default
            T·problem.batch). Must lie in [T·batch_min, T·batch_max].
        batch_min: smallest batch (default 1; ≥ 1).
        batch_max: largest batch (default S − (T−1)·batch_min, i.e. unbounded in effect).
        beta_max: with the momentum optimized, the bound β_t ≤ β_max, in (0, 1) (default
            :data:`BETA_MAX` = 0.9).
        betas: optional fixed per-step momenta β_t ∈ [0, 1), shape ``(T,)``, for the rate
            optimized under a given momentum schedule (e.g. a constant β); not with the
            momentum optimized.
        noise: optional fixed per-step label-noise variances σ_t² ≥ 0, shape ``(T,)`` (a given
            curriculum, docs/theory.md §10); not with the quality optimized.
        clean_samples: with ``"quality"`` optimized, the clean-sample budget
            Q = Σ_t q_t m_t, 0 < Q < Σ_t m_t (required).
        noise_clean: the label-noise std σ_c of the clean data (default 0).
        noise_noisy: the label-noise std σ_n > σ_c of the noisy data (default the problem's
            σ). Update t's samples then have σ_t² = q_t σ_c² + (1 − q_t) σ_n² in place of the
            problem's σ² (exact for any split of the batch: only the mean variance enters).
        average: optional fixed averaging weights τ_t ∈ [0, 1] (a scalar or shape ``(T,)``,
            e.g. :func:`rfmodel.dynamics.averaging.uniform_average`): the objective is then the
            averaged iterate's L̄(T) (docs/theory.md §11); not with ``"average"`` optimized.
        etas: fixed per-step rates, shape ``(T,)``, when ``optimize`` leaves the rate out
            (``optimize=("quality",)`` or ``("average",)``); not with the rate optimized.

    Returns:
        :class:`ScheduleResult` (with ``batches``, ``budget_residual``, ``kkt`` and
        ``multipliers`` when the batch is optimized; ``betas`` and ``kkt`` when the momentum
        is; ``quality`` and ``noise`` with the quality, ``noise`` with fixed noise; ``average``
        and ``iterate_curve`` (the SGD iterate's L(0..T); ``curve`` is then L̄) with averaging).
        ``converged`` means a KKT point of the bounded, budget-constrained problem: every
        block's projected Lagrangian gradient (:meth:`Control.residual`, the budget's ν
        estimated from the free batches) ≤ 1e-4.

    >>> p = Problem(a=2.5, b=1.2, sigma=0.5, n_modes=100, batch=4)
    >>> r = optimize_schedule(p, 200, controls=10, optimize=("eta", "batch"), samples=800)
    >>> r.converged, abs(r.budget_residual) <= 1e-9 * 800, r.batches.shape
    (True, True, (200,))
    >>> q = Problem(a=1.5, b=2.5, sigma=0.5, n_modes=100, batch=4)  # hard phase
    >>> s = optimize_schedule(q, 200, controls=10)
    >>> r = optimize_schedule(q, 200, controls=10, optimize=("eta", "momentum"), beta_max=0.9)
    >>> r.converged, bool(r.betas.max() <= 0.9), r.loss < s.loss
    (True, True, True)
    """
    t0 = time.perf_counter()
    names = optimize_names(optimize, extended=True)
    budget = validate_batch(problem, T, names, samples, batch_min, batch_max, batches)
    given_eta_max = eta_max
    if budget is not None and eta_max is None:
        eta_max = problem.eta_mode_bound(budget[2])
    K, eta_max = check_solver_args(problem, T, controls, eta_max, smoothness)
    beta_max = validate_momentum(names, beta_max, betas, T)
    if betas is not None:
        betas = np.asarray(betas, np.float64)
    if batches is not None:
        check_schedule(np.zeros(T), batches)
    fixed_etas = validate_fixed_rates(names, etas, T, given_eta_max, monotone, smoothness)
    mix = validate_quality(
        problem, T, names, clean_samples, noise_clean, noise_noisy, batches, noise
    )
    if noise is not None:
        check_noise(noise, np.zeros(T))
        noise = np.asarray(noise, np.float64)
    taus = validate_average(names, average, T)
    if parameterization not in ("log", "linear"):
        raise ValueError(
            f"parameterization must be 'log' or 'linear'; got parameterization={parameterization!r}"
        )
    if not isinstance(maxiter, int | np.integer) or maxiter < 1:
        raise ValueError(f"maxiter must be an integer >= 1; got maxiter={maxiter!r}")
    if not math.isfinite(float(tol)) or tol <= 0:
        raise ValueError(f"tol must be a finite number > 0; got tol={tol!r}")
    if monotone not in (True, False):
        raise ValueError(f"monotone must be True or False; got monotone={monotone!r}")
    if monotone and parameterization != "log":
        raise ValueError("monotone=True needs parameterization='log' (it solves on log-decrements)")
    lengths, centers = grid_lengths(T, K, grid)
    fixed = {"batch": batches, "momentum": betas, "noise": noise, "average": taus}
    fixed.update(eta=fixed_etas, mix=None if mix is None else mix[1:])
    evaluator = choose_evaluator(problem, lengths, names, fixed, method)

    # The controls: the rate, then the others named by ``optimize`` with their settings.
    m_hi = budget[2] if budget else problem.batch if batches is None else float(np.max(batches))
    blocks: list[Control] = []
    if "eta" in names:
        blocks.append(
            _rate_control(
                problem,
                eta_max,
                m_hi,
                None if isinstance(grid, str) and grid == "uniform" else lengths,
                parameterization=parameterization,
                monotone=monotone,
                smoothness=smoothness,
                growth_bounds=names == ("eta",) and batches is None and betas is None,
            )
        )
    if budget is not None:
        blocks.append(Batch(*budget))
    if beta_max is not None:
        blocks.append(Momentum(beta_max))
    if mix is not None:
        m = np.full(T, float(problem.batch)) if batches is None else np.asarray(batches)
        index = np.repeat(np.arange(len(lengths)), lengths)
        blocks.append(Quality(mix[0], np.bincount(index, weights=m, minlength=len(lengths))))
    if "average" in names:
        blocks.append(Average())
    # config: eta_max=top (and eta_max_given when capped)
    top = blocks[0].hi if "eta" in names else eta_max

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc=f"optimizing T={T}", unit="it", leave=False)

    def callback(intermediate_result: optimize.OptimizeResult) -> None:
        if bar is not None:
            bar.update()
            bar.set_postfix(objective=f"{min(intermediate_result.fun, 1e300):.8g}", refresh=False)

    def constant(fixed_now: dict[str, np.ndarray]) -> Evaluator:  # one segment of T steps
        return choose_evaluator(problem, [T], names, fixed_now, method)

    label = (
        f"eta_max={given_eta_max:g}"
        if given_eta_max is not None
        else f"eta_max (default {top:.4g}, the per-step stability bound)"
    )
    start, start_evaluations = initial_values(
        blocks, evaluator, constant=constant, init=init, centers=centers, name=label
    )
    blocks = [c.bind(start[c.name]) for c in blocks]
    objective = Objective(evaluator, blocks)
    vals, res = minimize(objective, blocks, start, maxiter=maxiter, tol=tol, callback=callback)
    # One evaluation at the optimum (none more if a restart check just made it): the loss
    # curve and the KKT residuals.
    curve, kkt, nus = first_order(objective, vals)
    pg = max(kkt.values())
    for c in blocks:
        for message in c.check(vals[c.name]):
            warnings.warn(message, RuntimeWarning, stacklevel=2)
    per_step, curve, extra = evaluator.schedule(vals, curve)
    if names != ("eta",) or betas is not None or noise is not None or taus is not None:
        extra.update(kkt=kkt, multipliers=nus)
    if "batch" in vals:
        m = evaluator.expand(vals["batch"])
        extra.update(batches=m, budget_residual=float(np.sum(m) - budget[0]))
    if "momentum" in vals:
        extra["betas"] = evaluator.expand(vals["momentum"])
    elif betas is not None:
        extra["betas"] = betas
    if "quality" in vals:
        q = evaluator.expand(vals["quality"])
        extra.update(quality=q, noise=q * mix[1] + (1.0 - q) * mix[2])
    elif noise is not None:
        extra["noise"] = noise
    if "average" in vals:
        extra["average"] = evaluator.expand(vals["average"])
    elif taus is not None:
        extra["average"] = taus
    if bar is not None:
        bar.close()
    converged, message = _stop_reason(res, pg, maxiter)
    if not math.isfinite(float(curve[-1])):  # never a diverging "optimum" called converged
        converged, message = False, f"the loss is not finite (L(T) = {curve[-1]}); {message}"
    if not converged:
        warnings.warn(
            f"optimize_schedule: {message}: not a first-order optimum. Try a larger maxiter, "
            "another init, or parameterization='linear' with a strong smoothness penalty",
            RuntimeWarning,
            stacklevel=2,
        )
    config = {
        "problem": problem.config(),
        "T": int(T),
        "controls": None if controls is None else K,
        "eta_max": top,
        "smoothness": float(smoothness),
        "parameterization": parameterization,
        "batches": describe(batches),
        "init": describe(init),
        "maxiter": int(maxiter),
        "tol": float(tol),
        **optional_config(grid, method),
    }
    if top < eta_max:  # only when capped: the keys of other results stay valid
        config["eta_max_given"] = eta_max
    if monotone:  # only when set: the keys of existing results stay valid
        config["monotone"] = True
    if evaluator.path == "segments":
        config["solved_on"] = "segments"
    if names != ("eta",):  # only when not at the defaults: the keys of η-only results stay
        config["optimize"] = list(names)
    if budget is not None:
        config.update(samples=budget[0], batch_min=budget[1], batch_max=budget[2])
    if beta_max is not None:
        config["beta_max"] = beta_max
    if betas is not None:
        config["betas"] = describe(betas)
    # The data-quality, averaging and fixed-rate settings, each only when set.
    if noise is not None:
        config["noise"] = describe(noise)
    if mix is not None:
        sc = 0.0 if noise_clean is None else float(noise_clean)
        sn = problem.sigma if noise_noisy is None else float(noise_noisy)
        config.update(clean_samples=mix[0], noise_clean=sc, noise_noisy=sn)
    if average is not None:
        config["average"] = describe(average)
    if fixed_etas is not None:
        config["etas"] = describe(fixed_etas)
    return ScheduleResult(
        etas=per_step,
        controls=vals[blocks[0].name],
        loss=float(curve[-1]),
        curve=curve,
        iterations=int(res.nit),
        evaluations=start_evaluations + objective.calls,
        converged=converged,
        message=message,
        projected_gradient=pg,
        wall_time=time.perf_counter() - t0,
        config=config,
        solver_message=str(res.message),
        **extra,
    )
