"""The solver: L-BFGS-B on log L(T) over the optimized controls (docs/theory.md §6).

Minimize the final expected loss L(T) over η_0..η_{T−1} with 0 ≤ η_t ≤ η_max, by differentiating
L(T) through the exact recursion (:mod:`rfmodel.dynamics`, whose reverse pass is the
adjoint/costate recursion) and running bounded L-BFGS-B (scipy), by default from the best
constant rate. Controls are either one rate per step or K piecewise-constant rates (step t uses
control ⌊tK/T⌋, segments as equal as possible). The objective is log L(T) (+ an optional
smoothness penalty κ Σ_j (u_{j+1} − u_j)² on the controls u), so the tolerances do not depend
on the loss scale.

``optimize=("eta", "batch")`` optimizes the batch sizes m_t jointly with the rates, under a
sample budget Σ_t m_t = S held exactly (an augmented Lagrangian around L-BFGS-B, then an exact
projection onto the budget; docs/theory.md §6). Each optimized control is a
:class:`~rfmodel.control.controls.Control` block (bounds, coordinates, an optional budget); the
solver works on their concatenation.

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
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import optimize

from ..dynamics import log_final_loss_and_grad
from ..dynamics.momentum import eta_critical, log_final_loss_and_grads
from ..dynamics.segments import Piecewise, log_steps, segment_losses
from ..dynamics.segments import log_final_loss_and_grad as segment_objective
from ..optim import KKT_TOLERANCE, lbfgsb, projected_gradient
from ..problem import Problem
from .controls import (
    Control,
    check_solver_args,
    optimize_names,
    project_budget,
    validate_batch,
    validate_momentum,
)
from .grid import (
    GROWTH,
    LOG_RANGE,
    Monotone,
    Segments,
    grid_scale,
    initial_controls,
    make_grid,
    rate_bounds,
    top_rate,
)
from .keys import describe, optional_config
from .result import ScheduleResult

__all__ = ["optimize_schedule", "best_constant_rate"]


def _controls_objective(problem: Problem, u: np.ndarray, seg, smoothness, batches):
    """log L(T) + κ Σ_j (u_{j+1} − u_j)², its gradient with respect to the controls u (η_t =
    u[seg[t]]), and L(0..T) (at the segment boundaries on the segment path)."""
    if isinstance(seg, Segments):
        v, g, curve = segment_objective(problem, u, seg.lengths, with_curve=True)
    else:
        v, g, curve = log_final_loss_and_grad(problem, u[seg], batches, with_curve=True)
        g = np.bincount(seg, weights=g, minlength=len(u))  # chain rule through η_t = u[seg(t)]
    return _penalize(v, g, u, smoothness), g, curve


def _penalize(v: float, g: np.ndarray, u: np.ndarray, smoothness: float) -> float:
    """v + κ Σ_j (u_{j+1} − u_j)², adding the penalty's gradient to ``g`` in place."""
    if smoothness:
        du = np.diff(u)
        v += smoothness * float(du @ du)
        g[:-1] -= 2 * smoothness * du
        g[1:] += 2 * smoothness * du
    return v


def _solve(
    problem: Problem,
    seg: np.ndarray,
    x0: np.ndarray,
    eta_max: float,
    *,
    smoothness: float,
    batches,
    maxiter: int,
    tol: float,
    parameterization: str,
    callback=None,
    monotone_from: int | None = None,
    scale: np.ndarray | None = None,
    upper: np.ndarray | None = None,
):
    """L-BFGS-B on log L(T) (+ penalty) over the controls u (η_t = u[seg[t]]); returns (u, res).

    ``monotone_from``: keep u non-increasing from that control on (:class:`Monotone`).
    ``scale``: a diagonal preconditioner s (log parameterization): L-BFGS-B works on
    y_j = s_j log u_j, a box again (:func:`grid_scale`); ``upper``: per-control bounds
    u_j ≤ upper_j ≤ eta_max with it (:func:`rate_bounds`)."""
    # Segment propagation is exact to ~1e-14 relative but not smooth to the last bit (iterated
    # roots): stop on a relative reduction of 1e-13 there, not 1e-15, before the line search
    # chases rounding noise (measured: "ABNORMAL" stops at the same optimum otherwise).
    ftol = 1e-13 if isinstance(seg, Segments) else 1e-15

    def fg(u: np.ndarray) -> tuple[float, np.ndarray]:
        v, g, _ = _controls_objective(problem, u, seg, smoothness, batches)
        if not math.isfinite(v) or not np.all(np.isfinite(g)):
            return 1e10, np.zeros_like(u)  # diverged: a wall the line search backs off
        return v, g

    if parameterization == "linear":
        res = lbfgsb(
            fg,
            x0,
            [(0.0, eta_max)] * len(x0),
            maxiter=maxiter,
            gtol=tol,
            ftol=ftol,
            callback=callback,
        )
        return np.asarray(res.x), res

    def fg_log(x: np.ndarray) -> tuple[float, np.ndarray]:
        u = np.exp(x)
        v, g = fg(u)
        return v, g * u  # chain rule through η = e^x

    log_max = math.log(eta_max)
    lo = log_max - LOG_RANGE
    if monotone_from is not None:
        mono = Monotone(monotone_from, lo, log_max)
        res = lbfgsb(
            lambda y: mono.value_and_grad(fg, y),
            mono.y_of(np.clip(x0, math.exp(lo), eta_max)),
            mono.bounds(len(x0)),
            maxiter=maxiter,
            gtol=tol,
            ftol=ftol,
            callback=callback,
        )
        return mono.u_of(np.asarray(res.x)), res
    x_start = np.log(np.clip(x0, math.exp(lo), eta_max))
    s = np.ones(len(x0)) if scale is None else np.asarray(scale, np.float64)
    hi = np.full(len(x0), log_max) if upper is None else np.log(upper)
    x_start = np.minimum(x_start, hi)
    last: dict[str, np.ndarray] = {}

    def fg_scaled(y: np.ndarray) -> tuple[float, np.ndarray]:
        v, g = fg_log(y / s)
        last.update(y=y.copy(), g=g, ok=np.array(v < 1e10))
        return v, g / s

    # With a preconditioner (a non-uniform grid), stop at a KKT residual (log coordinates) 100x
    # below KKT_TOLERANCE: past it L-BFGS-B only walks the flat directions of rates annealed to
    # 1e-12 (hard phase, T = 10^7, K = 60: 1e-5 after 494 iterations). 10x below stopped the
    # easy T = 10^6 solve 2e-7 (relative) above the loss 500 iterations reach.
    def stop(intermediate_result: optimize.OptimizeResult) -> None:
        if callback is not None:
            callback(intermediate_result)
        y = intermediate_result.x
        if "y" in last and last["ok"] and np.array_equal(y, last["y"]):
            if projected_gradient(y / s, last["g"], lo, hi) <= 0.01 * KKT_TOLERANCE:
                raise StopIteration

    res = lbfgsb(
        fg_scaled,
        x_start * s,
        list(zip(lo * s, hi * s, strict=True)),
        maxiter=maxiter,
        gtol=tol,
        ftol=ftol,
        callback=callback if scale is None else stop,
    )
    if res.status == 99:  # stopped by ``stop``: a first-order point
        res.success = True
        res.message = f"CONVERGENCE: KKT RESIDUAL <= {0.01 * KKT_TOLERANCE:g} (LOG RATES)"
    return np.exp(np.asarray(res.x) / s), res


def _joint_objective(
    problem: Problem,
    values: dict[str, np.ndarray],
    seg: np.ndarray,
    smoothness,
    batches=None,
    betas=None,
):
    """log L(T) (+ κ Σ_j (η_{j+1} − η_j)² on the rates), its gradient with respect to every
    block's K values (one adjoint pass, docs/theory.md §2, §4), and L(0..T). ``batches``,
    ``betas``: fixed per-step batches / momenta for the controls not among the values."""
    u = values["eta"]
    K = len(u)
    m = values["batch"][seg] if "batch" in values else batches
    beta = values["momentum"][seg] if "momentum" in values else betas
    if beta is None:  # plain SGD: the adjoint of docs/theory.md §2
        v, (ge, gm), curve = log_final_loss_and_grad(
            problem, u[seg], m, with_curve=True, batch_grad=True
        )
        per_step = {"eta": ge, "batch": gm}
    else:  # heavy ball: the three-moment adjoint of docs/theory.md §4
        v, per_step, curve = log_final_loss_and_grads(problem, u[seg], beta, m, with_curve=True)
    grads = {k: np.bincount(seg, weights=per_step[k], minlength=K) for k in values}
    return _penalize(v, grads["eta"], u, smoothness), grads, curve


#: Relative budget violation |Σ n u − S|/S at which the augmented Lagrangian stops (the exact
#: projection then removes the rest).
_BUDGET_TOL = 1e-9
#: Restarts of L-BFGS-B (no budget) stopped by its relative-reduction test off a KKT point.
_RESTARTS = 10


def _solve_joint(
    problem: Problem,
    seg: np.ndarray,
    blocks: list[Control],
    start: dict[str, np.ndarray],
    *,
    smoothness: float,
    maxiter: int,
    tol: float,
    callback=None,
    batches=None,
    betas=None,
):
    """Minimize log L(T) over the blocks' controls, budgets held by an augmented Lagrangian.

    For each budget c(x) = (Σ_j n_j u_j − S)/S, L-BFGS-B minimizes log L + ν c + ρ/2 c² over the
    boxes (the first time to a loose tolerance); then ν ← ν + ρ c, and ρ grows 10× whenever
    |c| fell less than 4× (standard first-order multiplier updates).
    ν starts from its least-squares estimate at the start, so the first inner solve already
    spends the budget about right. Returns (values, summary) where the
    values are projected exactly onto every budget (:func:`project_budget`)."""
    K = len(start["eta"])
    n = np.bincount(seg, minlength=K).astype(np.float64)
    sl = {b.name: slice(i * K, (i + 1) * K) for i, b in enumerate(blocks)}
    bounds = [b.x_bounds() for b in blocks for _ in range(K)]
    budgets = [b for b in blocks if b.total is not None]

    def unpack(x: np.ndarray) -> dict[str, np.ndarray]:
        return {b.name: b.from_x(x[sl[b.name]]) for b in blocks}

    def fg(x: np.ndarray) -> tuple[float, np.ndarray]:
        vals = unpack(x)
        v, grads, _ = _joint_objective(problem, vals, seg, smoothness, batches, betas)
        if not math.isfinite(v) or not all(np.all(np.isfinite(g)) for g in grads.values()):
            return 1e10, np.zeros_like(x)  # diverged: a wall the line search backs off
        return v, np.concatenate([grads[b.name] * b.dudx(vals[b.name]) for b in blocks])

    def budget(b: Control, x: np.ndarray) -> tuple[float, np.ndarray]:
        u = b.from_x(x[sl[b.name]])
        return (float(n @ u) - b.total) / b.total, n * b.dudx(u) / b.total

    x = np.concatenate([b.to_x(start[b.name]) for b in blocks])
    nit = nfev = 0
    nu = {}
    if budgets:  # multipliers of the normalized budgets c = (Σ n u − S)/S
        vals = unpack(x)
        _, grads, _ = _joint_objective(problem, vals, seg, smoothness, batches, betas)
        nu = {b.name: b.multiplier(vals[b.name], grads[b.name], n) * b.total for b in budgets}
        nfev += 1
    alm = {"rho": 10.0}
    c_prev = math.inf
    res = None

    def phi(x: np.ndarray) -> tuple[float, np.ndarray]:
        v, g = fg(x)
        if v >= 1e10:
            return v, g
        for b in budgets:
            c, h = budget(b, x)
            v += nu[b.name] * c + 0.5 * alm["rho"] * c * c
            g[sl[b.name]] += (nu[b.name] + alm["rho"] * c) * h
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
            ftol=1e-11 if loose else 1e-15,
            callback=callback,
        )
        x = np.asarray(res.x)
        nit, nfev = nit + int(res.nit), nfev + int(res.nfev)
        if not budgets:
            # Flat valleys (the momentum's easy-phase degeneracy: L depends on η/(1 − β) almost
            # alone) end L-BFGS-B on its relative-reduction test short of a KKT point (measured:
            # projected gradient 7e-3 after 41 iterations); a restart with fresh memory goes on.
            if nit >= maxiter or k >= _RESTARTS or "REDUCTION" not in str(res.message).upper():
                break
            vals = unpack(x)
            _, grads, _ = _joint_objective(problem, vals, seg, smoothness, batches, betas)
            nfev += 1
            if max(b.residual(vals[b.name], grads[b.name], n, 0.0) for b in blocks) <= (
                KKT_TOLERANCE
            ):
                break
            continue
        c = {b.name: budget(b, x)[0] for b in budgets}
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
        vals[b.name] = project_budget(vals[b.name], n, b.total, b.lo, b.hi)
    summary = optimize.OptimizeResult(
        nit=nit, nfev=nfev, success=bool(res.success), message=res.message
    )
    return vals, summary


def _control_blocks(
    names, eta_max: float, parameterization: str, budget, beta_max: float | None = None
) -> list[Control]:
    """The solver's blocks of the optimized controls, in the order of :data:`CONTROLS`: the
    rate (log or linear, as ``parameterization``), the batch (log m, with the budget), the
    momentum (β itself in [0, β_max]: β = 0, plain SGD, is a reachable bound)."""
    blocks = [Control("eta", 0.0, eta_max, log=parameterization == "log")]
    if "batch" in names:
        S, lo, hi = budget
        blocks.append(Control("batch", lo, hi, log=True, total=S, kkt_log=True))
    if "momentum" in names:
        blocks.append(Control("momentum", 0.0, float(beta_max), log=False, log1m=True))
    return blocks


def _joint_start(
    problem: Problem,
    T: int,
    seg: np.ndarray,
    blocks: list[Control],
    init,
    fixed=None,
    centers: np.ndarray | None = None,
    betas=None,
) -> tuple[dict[str, np.ndarray], int]:
    """Start values of every block and the evaluations spent finding them: ``init`` (a dict by
    control name, or the rates alone), resampled to K and projected onto the budget (given both,
    the rates are rescaled with the batches, keeping η/m per segment: a warm start from another
    budget stays as stable per sample); by default m ≡ S/T, β ≡ 0 (the start is plain SGD) and
    the best constant rate at that batch."""
    K = int(seg[-1]) + 1
    n = np.bincount(seg, minlength=K).astype(np.float64)
    given = dict(init) if isinstance(init, dict) else ({} if init is None else {"eta": init})
    unknown = set(given) - {b.name for b in blocks}
    if unknown:
        raise ValueError(
            f"init must be a schedule of rates or a dict over the optimized controls "
            f"{[b.name for b in blocks]}; got keys {sorted(unknown)}"
        )
    out: dict[str, np.ndarray] = {}
    rescale = np.ones(K)
    for b in blocks:
        if b.name == "eta":
            continue
        if b.name in given:
            u = initial_controls(given[b.name], K, centers)
        else:
            u = np.full(K, b.total / n.sum() if b.total else b.lo)
        if b.total and np.any(u <= 0):
            raise ValueError(f"init[{b.name!r}] must be > 0")
        out[b.name] = (
            project_budget(u, n, b.total, b.lo, b.hi) if b.total else np.clip(u, b.lo, b.hi)
        )
        if b.name == "batch" and b.name in given:
            rescale = out[b.name] / u
    batches = out["batch"][seg] if "batch" in out else fixed
    beta = out["momentum"][seg] if "momentum" in out else betas
    eta_max = blocks[0].hi
    if "eta" in given:
        out["eta"] = np.clip(initial_controls(given["eta"], K, centers) * rescale, 0.0, eta_max)
        _check_start(problem, out["eta"], seg, batches, batch_grad=True, betas=beta)
        return out, 1
    eta0, evals = _joint_best_constant(problem, T, eta_max, batches, beta)
    out["eta"] = np.full(K, eta0)
    return out, evals


def _joint_best_constant(
    problem: Problem, T: int, eta_max: float, batches, betas=None
) -> tuple[float, int]:
    """:func:`best_constant_rate` for per-step ``batches`` and ``betas`` (from half the largest
    stable constant rate at their means), on the executable of the joint objective (one
    compilation per horizon in a joint solve)."""
    m = np.full(T, float(problem.batch)) if batches is None else np.asarray(batches)
    if betas is None or not np.any(betas):
        eta_c = problem.eta_critical(float(np.mean(m)))
    else:
        eta_c = eta_critical(problem, float(np.mean(betas)), float(np.mean(m)))
    x0 = np.array([min(0.5 * eta_c, eta_max)])
    seg = np.zeros(int(T), np.int64)
    _check_start(problem, x0, seg, m, batch_grad=True, betas=betas)
    vals, res = _solve_joint(
        problem,
        seg,
        [Control("eta", 0.0, eta_max)],
        {"eta": x0},
        smoothness=0.0,
        maxiter=200,
        tol=1e-6,
        batches=m,
        betas=betas,
    )
    return float(vals["eta"][0]), int(res.nfev) + 1  # + the check of the start


def _best_constant(
    problem: Problem, T: int, eta_max: float, batches, method: str = "auto"
) -> tuple[float, int]:
    x0 = np.array([min(0.5 * problem.eta_critical(), eta_max)])
    seg, _ = make_grid(problem, int(T), 1, "uniform", method, batches)
    name = f"eta_max={eta_max:g} (the start is the constant rate min(eta_c/2, eta_max))"
    _check_start(problem, x0, seg, batches, name=name)
    u, res = _solve(
        problem,
        seg,
        x0,
        eta_max,
        smoothness=0.0,
        batches=batches,
        maxiter=200,
        tol=1e-6,
        parameterization="log",
    )
    return float(u[0]), int(res.nfev) + 1  # + the check of the start


def best_constant_rate(
    problem: Problem, T: int, *, eta_max: float | None = None, batches=None, method: str = "auto"
) -> float:
    """The constant rate η ∈ (0, η_max] minimizing L(T) (the solver's default start).

    The one-control problem solved by L-BFGS-B in log η from a safely stable rate (half the
    largest stable constant rate), to a relative gradient of 1e-6: about 10 evaluations. At
    large T one segment of T steps is propagated exactly (``method``, see
    :func:`optimize_schedule`), so any T is cheap.
    """
    _, eta_max = check_solver_args(problem, T, None, eta_max, 0.0)
    return _best_constant(problem, T, eta_max, batches, method)[0]


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
) -> ScheduleResult:
    """The learning-rate schedule minimizing L(T), subject to 0 ≤ η_t ≤ η_max; with
    ``optimize=("eta", "batch")`` the joint (η_t, m_t) schedule under the sample budget
    Σ_t m_t = S, batch_min ≤ m_t ≤ batch_max (docs/theory.md §6); with
    ``optimize=("eta", "momentum")`` the joint (η_t, β_t) schedule of heavy-ball SGD,
    0 ≤ β_t ≤ β_max (docs/theory.md §4, §6); all three at once with
    ``optimize=("eta", "batch", "momentum")``.

    Args:
        problem: the :class:`~rfmodel.Problem`.
        T: number of SGD steps.
        controls: ``None`` for one control per step, or K for K piecewise-constant controls
            (the same segments for every optimized control).
        eta_max: upper bound on η; default the per-step stability bound 2m/((m+1)λ_max), above
            which the top mode grows during that step (with the batch optimized: at
            m = batch_max, the loosest bound over the allowed batches).
        smoothness: κ ≥ 0 of the penalty κ Σ_j (u_{j+1} − u_j)² added to log L(T) (on the
            rates only).
        init: initial schedule: scalar, length-K controls, or any 1-D schedule (resampled on
            t/T). Default: the best constant rate (:func:`best_constant_rate`). Measured: from
            there the easy-phase benchmarks need 3.5–4.9x fewer evaluations than from half the
            largest stable constant rate (P1: 24 vs 84, P4: 33 vs 163). With the batch
            optimized also a dict ``{"eta": ..., "batch": ...}`` (either may be left out; the
            batches are rescaled onto the budget); default m ≡ S/T and the best constant rate
            at that batch.
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
        grid: where the K controls sit: ``"uniform"`` (step t uses control ⌊tK/T⌋),
            ``"log"`` (:func:`rfmodel.segments.log_lengths`: short segments near t = 0 and
            t = T, where the optimum changes fastest) or K segment lengths summing to T.
        method: how L(T) and its gradient are evaluated: ``"steps"`` (the step recursion,
            O(T·N) per evaluation), ``"segments"`` (exact segment propagation, O(K·N²)
            whatever T: docs/theory.md §5) or ``"auto"`` (segments when K ≪ T makes them
            cheaper, see ``SEG_NS``; never below T = 100 000). On the segment path the result
            keeps ``etas`` as a :class:`rfmodel.segments.Piecewise` and ``curve`` at the
            boundaries and 2000 log-spaced steps (``curve_steps``).
        optimize: the controls to optimize: ``("eta",)`` (default: the rate alone) or
            ``("eta", "batch")``.
        samples: the sample budget S = Σ_t m_t (with the batch optimized; default
            T·problem.batch). Must lie in [T·batch_min, T·batch_max].
        batch_min: smallest batch (default 1; ≥ 1).
        batch_max: largest batch (default S − (T−1)·batch_min, i.e. unbounded in effect).
        beta_max: with the momentum optimized, the bound β_t ≤ β_max, in (0, 1) (default
            :data:`BETA_MAX` = 0.9).
        betas: optional fixed per-step momenta β_t ∈ [0, 1), shape ``(T,)``, for the rate
            optimized under a given momentum schedule (e.g. a constant β); not with the
            momentum optimized.

    Returns:
        :class:`ScheduleResult` (with ``batches``, ``budget_residual``, ``kkt`` and
        ``multipliers`` when the batch is optimized; ``betas`` and ``kkt`` when the momentum
        is). ``converged`` means a KKT point of the bounded, budget-constrained problem: every
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
    names = optimize_names(optimize)
    budget = validate_batch(problem, T, names, samples, batch_min, batch_max, batches)
    if budget is not None and eta_max is None:
        eta_max = problem.eta_mode_bound(budget[2])
    K, eta_max = check_solver_args(problem, T, controls, eta_max, smoothness)
    beta_max = validate_momentum(names, beta_max, betas, T)
    if betas is not None:
        betas = np.asarray(betas, np.float64)
    alone = names == ("eta",) and betas is None  # the rate alone, plain SGD
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
    if not alone and monotone:
        raise ValueError(
            f"monotone=True applies to the rate alone of plain SGD; got optimize={names!r}"
            + ("" if betas is None else " with betas")
        )
    if not alone and method == "segments":
        raise ValueError(
            "method='segments' evaluates the rate alone of plain SGD; with "
            f"optimize={names!r}{'' if betas is None else ' and betas'} pass method='steps' "
            "(or 'auto')"
        )
    seg, centers = make_grid(problem, T, K, grid, method if alone else "steps", batches)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc=f"optimizing T={T}", unit="it", leave=False)

    def callback(intermediate_result: optimize.OptimizeResult) -> None:
        if bar is not None:
            bar.update()
            bar.set_postfix(objective=f"{min(intermediate_result.fun, 1e300):.8g}", refresh=False)

    extra: dict[str, Any] = {}
    if alone:  # the rate alone: L-BFGS-B on the rates (results unchanged)
        start_evaluations = 0
        if init is None:
            eta0, start_evaluations = _best_constant(problem, T, eta_max, batches, method)
            x0 = np.full(K, eta0)
        else:
            x0 = np.clip(initial_controls(init, K, centers), 0.0, eta_max)
            _check_start(problem, x0, seg, batches)
            start_evaluations = 1
        peak = None
        if monotone:  # the warmup ends at the start's peak; after it, the running minimum
            peak = int(np.argmax(x0))
            x0 = np.concatenate([x0[:peak], np.minimum.accumulate(x0[peak:])])
        # A non-uniform grid in log coordinates: preconditioned, and its KKT residual measured
        # in those coordinates (relative rates: a rate annealed to 1e-8 whose ∂ log L/∂η is
        # 0.4 changes log L by 4e-9 when doubled, yet it read 0.4 in η).
        relative = (
            not (isinstance(grid, str) and grid == "uniform")
            and parameterization == "log"
            and not monotone
        )
        scale = upper = None
        if relative:
            lengths = seg.lengths if isinstance(seg, Segments) else np.bincount(seg, minlength=K)
            scale = grid_scale(lengths)
            # growth bounds at the problem's batch (given per-step batches: the plain box)
            upper = np.full(K, eta_max)
            if batches is None:
                upper = rate_bounds(problem, lengths, eta_max)
        u, res = _solve(
            problem,
            seg,
            x0,
            eta_max,
            smoothness=smoothness,
            batches=batches,
            maxiter=maxiter,
            tol=tol,
            parameterization=parameterization,
            callback=callback,
            monotone_from=peak,
            scale=scale,
            upper=upper,
        )
        # One evaluation at the optimum: the loss curve and the KKT residual (on log L + penalty).
        _, g, curve = _controls_objective(problem, u, seg, smoothness, batches)
        if relative:
            log_max = math.log(eta_max)
            pg = projected_gradient(np.log(u), g * u, log_max - LOG_RANGE, np.log(upper))
            held = (upper < top_rate(problem, eta_max)) & (u >= upper * (1 - 1e-9))
            if np.any(held):
                warnings.warn(
                    f"optimize_schedule: {int(held.sum())} rate(s) end on the growth bound of "
                    f"their segment (e^{GROWTH:g} within the segment, see rate_bounds); "
                    "the optimum may lie beyond it",
                    RuntimeWarning,
                    stacklevel=2,
                )
        elif peak is None:
            pg = projected_gradient(u, g, 0.0, eta_max)
        else:
            log_max = math.log(eta_max)
            pg = Monotone(peak, log_max - LOG_RANGE, log_max).projected_gradient(u, g)
        if isinstance(seg, Segments):
            etas = Piecewise(u, seg.lengths)
            steps = np.union1d(log_steps(T, 2000), etas.edges)
            curve = segment_losses(problem, u, seg.lengths, steps=steps)[1]
            extra = {"lengths": seg.lengths, "curve_steps": steps}
        else:
            etas = u[seg]
    else:  # several controls: one block each, budgets by an augmented Lagrangian
        blocks = _control_blocks(names, eta_max, parameterization, budget, beta_max)
        start, start_evaluations = _joint_start(
            problem, T, seg, blocks, init, batches, centers, betas
        )
        vals, res = _solve_joint(
            problem,
            seg,
            blocks,
            start,
            smoothness=smoothness,
            maxiter=maxiter,
            tol=tol,
            callback=callback,
            batches=batches,
            betas=betas,
        )
        u = vals["eta"]
        etas = u[seg]
        _, grads, curve = _joint_objective(problem, vals, seg, smoothness, batches, betas)
        n = np.bincount(seg, minlength=K).astype(np.float64)
        nus = {b.name: b.multiplier(vals[b.name], grads[b.name], n) for b in blocks if b.total}
        kkt = {
            b.name: b.residual(vals[b.name], grads[b.name], n, nus.get(b.name, 0.0)) for b in blocks
        }
        pg = max(kkt.values())
        extra = {"kkt": kkt, "multipliers": nus}
        if "batch" in vals:
            m = vals["batch"][seg]
            extra.update(batches=m, budget_residual=float(np.sum(m) - budget[0]))
        if "momentum" in vals:
            extra["betas"] = vals["momentum"][seg]
        elif betas is not None:
            extra["betas"] = betas
    if bar is not None:
        bar.close()
    converged, message = _stop_reason(res, pg, maxiter, rounding_floor=not alone)
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
        "eta_max": eta_max,
        "smoothness": float(smoothness),
        "parameterization": parameterization,
        "batches": describe(batches),
        "init": describe(init),
        "maxiter": int(maxiter),
        "tol": float(tol),
        **optional_config(grid, method),
    }
    if monotone:  # only when set: the keys of existing results stay valid
        config["monotone"] = True
    if "lengths" in extra:
        config["solved_on"] = "segments"
    if names != ("eta",):  # only when not at the defaults: the keys of η-only results stay
        config["optimize"] = list(names)
    if budget is not None:
        config.update(samples=budget[0], batch_min=budget[1], batch_max=budget[2])
    if beta_max is not None:
        config["beta_max"] = beta_max
    if betas is not None:
        config["betas"] = describe(betas)
    return ScheduleResult(
        etas=etas,
        controls=u,
        loss=float(curve[-1]),
        curve=curve,
        iterations=int(res.nit),
        evaluations=start_evaluations + int(res.nfev) + 1,  # + the one at the optimum
        converged=converged,
        message=message,
        projected_gradient=pg,
        wall_time=time.perf_counter() - t0,
        config=config,
        solver_message=str(res.message),
        **extra,
    )


def _check_start(
    problem: Problem,
    x0: np.ndarray,
    seg,
    batches,
    name: str = "init",
    *,
    batch_grad: bool = False,
    betas=None,
) -> None:
    """Reject a start from which the solver cannot make honest progress: a diverging one, or
    one no better than not training (η ≡ 0, or an unstable rate that has not overflowed yet).
    In log coordinates η → 0 is a spurious stationary point, so such starts used to end at
    L(T) = L(0) with L-BFGS-B reporting convergence."""
    if batch_grad or betas is not None:
        v, _, curve = _joint_objective(problem, {"eta": x0}, seg, 0.0, batches, betas)
    else:
        v, _, curve = _controls_objective(problem, x0, seg, 0.0, batches)
    if not math.isfinite(v):
        raise ValueError(
            f"{name}: the initial schedule diverges; pass a smaller init or eta_max, or "
            "init=None for the best constant rate (largest stable constant rate "
            f"{problem.eta_critical():.4g})"
        )
    if not curve[-1] < curve[0]:
        raise ValueError(
            f"{name}: the initial schedule does not lower the loss (L(T) = {curve[-1]:.4g} >= "
            f"L(0) = {curve[0]:.4g}): zero rates, or rates above the largest stable constant "
            f"rate {problem.eta_critical():.4g}; pass init=None for the best constant rate"
        )


def _stop_reason(
    res: optimize.OptimizeResult, pg: float, maxiter: int, *, rounding_floor: bool = False
) -> tuple[bool, str]:
    """(converged, why it stopped): converged only at a first-order point of the bounded problem.

    ``rounding_floor`` (the joint solver): a line-search failure at a point whose residual is
    100× below the tolerance counts too: the objective's rounding stopped L-BFGS-B there."""
    kkt = f"projected gradient {pg:.2g}"
    if res.success and pg <= KKT_TOLERANCE:
        return True, f"converged to a first-order point ({kkt} <= {KKT_TOLERANCE:g})"
    if rounding_floor and "ABNORMAL" in str(res.message) and pg <= 1e-2 * KKT_TOLERANCE:
        return True, (
            f"converged to a first-order point ({kkt} <= {KKT_TOLERANCE:g}; the line search "
            "found no further decrease at the objective's rounding level)"
        )
    if res.nit >= maxiter:
        return False, f"stopped at the iteration cap maxiter={maxiter} ({kkt})"
    if res.success:
        return False, f"L-BFGS-B met its tolerances but the {kkt} is > {KKT_TOLERANCE:g}"
    return False, f"L-BFGS-B stopped: {res.message} ({kkt})"
