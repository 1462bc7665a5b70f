"""Optimal control of the learning-rate schedule (docs/theory.md §6).

Minimize the final expected loss L(T) over η_0..η_{T−1} with 0 ≤ η_t ≤ η_max, by differentiating
L(T) through the exact recursion (:func:`rfmodel.dynamics.loss_curve`, whose reverse pass is the
adjoint/costate recursion) and running bounded L-BFGS-B (scipy), by default from the best
constant rate. Controls are either one rate per step or K piecewise-constant rates (step t uses
control ⌊tK/T⌋, segments as equal as possible). The objective is log L(T) (+ an optional
smoothness penalty κ Σ_j (u_{j+1} − u_j)² on the controls u), so the tolerances do not depend
on the loss scale.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize

from .dynamics import log_final_loss_and_grad
from .problem import Problem

__all__ = [
    "ScheduleResult",
    "optimize_schedule",
    "optimize_schedules",
    "segment_index",
    "projected_gradient",
    "best_constant_rate",
    "horizon_keys",
    "load_schedule",
]


def segment_index(T: int, K: int) -> np.ndarray:
    """Control index of each step: ⌊tK/T⌋ for t = 0..T−1 (segment lengths differ by ≤ 1)."""
    if K < 1 or K > T:
        raise ValueError(f"controls must be an integer in [1, T={T}]; got controls={K}")
    return (np.arange(T, dtype=np.int64) * K) // T


@dataclass(frozen=True)
class ScheduleResult:
    """An optimized schedule.

    Attributes:
        etas: per-step rates, shape ``(T,)`` (``etas[t]`` is used by update t).
        controls: the optimized control values (length T or K).
        loss: final expected excess loss L(T).
        curve: L(0..T), shape ``(T+1,)``.
        iterations: L-BFGS-B iterations.
        evaluations: loss-plus-gradient evaluations, all included (the search for the default
            start, the check of the start, the final evaluation at the optimum).
        converged: a first-order (KKT) point was reached: L-BFGS-B stopped on its tolerances
            *and* the projected gradient is at most ``KKT_TOLERANCE`` (never True at a point
            that is not first-order optimal for the bounded problem).
        message: why it stopped, in words (L-BFGS-B's own message is in ``solver_message``).
        projected_gradient: ‖x − P(x − ∇ log L)‖_∞, the first-order optimality residual for the
            bound constraints (0 at a KKT point), on the log-loss objective.
        wall_time: seconds, compile included.
        config: the full configuration (problem, T, controls, bounds, smoothness).
        lengths: segment lengths when the schedule was solved by segment propagation
            (docs/theory.md §5); then ``etas`` is a :class:`rfmodel.segments.Piecewise` (built
            on use) and ``curve`` holds L only at the steps ``curve_steps`` (segment boundaries
            and log-spaced steps), so that a T = 10^7 result stays a few hundred kB.
        curve_steps: the steps of ``curve`` (``None``: every step 0..T).
    """

    etas: np.ndarray = field(repr=False)
    controls: np.ndarray = field(repr=False)
    loss: float = math.nan
    curve: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    iterations: int = 0
    evaluations: int = 0
    converged: bool = False
    message: str = ""
    projected_gradient: float = math.nan
    wall_time: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)
    solver_message: str = ""
    lengths: np.ndarray | None = field(default=None, repr=False)
    curve_steps: np.ndarray | None = field(default=None, repr=False)

    def save(self, path: str | Path, *, key: dict[str, Any] | None = None) -> None:
        """Write ``path`` (.npz arrays + a .json sidecar), atomically, with an integrity record.

        ``key``: the configuration a cache looks the result up by (default ``self.config``).
        """
        from .results import save_result

        arrays = {"etas": self.etas, "controls": self.controls, "curve": self.curve}
        if self.lengths is not None:  # large T: no per-step arrays (docs/theory.md §5)
            arrays = {
                "controls": self.controls,
                "lengths": self.lengths,
                "curve": self.curve,
                "curve_steps": self.curve_steps,
            }
        save_result(
            path,
            arrays,
            self.metadata(),
            config=self.config if key is None else key,
        )

    def metadata(self) -> dict[str, Any]:
        return {
            "loss": self.loss,
            "iterations": self.iterations,
            "evaluations": self.evaluations,
            "converged": self.converged,
            "message": self.message,
            "projected_gradient": self.projected_gradient,
            "wall_time": self.wall_time,
            "config": self.config,
            "solver_message": self.solver_message,
        }

    def transfer(
        self,
        T_new: int,
        *,
        method: str = "stretch",
        phase: str | None = None,
        xi: float | None = None,
        alpha: float | None = None,
    ) -> np.ndarray:
        """Per-step rates for another horizon ``T_new`` from this solved one (docs/theory.md §9).

        ``method="stretch"``: the phase's rule on the solved array (easy: the shape in t/T,
        level × (T'/T)^(−ξ), ξ = 1 − b/a; hard: plateau kept, annealing tail × (T'/T)^α);
        ``"recipe"``: the fitted closed form (:func:`rfmodel.transfer.fit_recipe`) at ``T_new``.
        ``phase``, ``xi`` and ``alpha`` default to the problem's (a, b) and the measured α.
        Returns a float64 array of shape ``(T_new,)``.
        """
        from . import transfer as tr

        if phase is None:
            phase, xi_rule = tr.result_rule(self.config)
            xi = xi_rule if xi is None else xi
        alpha = tr.ANNEAL_ALPHA if alpha is None else alpha
        if method == "stretch":
            return tr.transfer(self.etas, T_new, phase=phase, xi=xi, alpha=alpha)
        if method == "recipe":
            rec = tr.fit_recipe(self.etas, phase=phase, xi=0.0 if xi is None else xi, alpha=alpha)
            return rec.as_array(T_new)
        raise ValueError(f"method must be 'stretch' or 'recipe'; got method={method!r}")

    @classmethod
    def load(cls, path: str | Path, *, key: dict[str, Any] | None = None) -> ScheduleResult:
        """Load and validate a saved result (:func:`rfmodel.results.load_result`).

        Raises :class:`rfmodel.results.ResultError` (naming the file) when it is damaged, when
        its arrays do not fit its horizon, or when ``key`` is given and differs from the
        configuration it was saved under.
        """
        from .results import ResultError, load_result

        arrays, meta = load_result(path) if key is None else load_result(path, config=key)
        try:
            seg = None
            if "lengths" in arrays:
                from .segments import Piecewise

                seg = {"lengths": arrays["lengths"], "curve_steps": arrays["curve_steps"]}
                etas = Piecewise(arrays["controls"], arrays["lengths"])
            else:
                etas = arrays["etas"]
            res = cls(
                etas=etas,
                controls=arrays["controls"],
                curve=arrays["curve"],
                **{k: meta[k] for k in _META_FIELDS},
                **(seg or {}),
            )
            T = int(res.config["T"])
        except (KeyError, TypeError, ValueError) as e:
            raise ResultError(path, f"not a schedule result ({type(e).__name__}: {e})") from None
        K = T if res.config.get("controls") is None else int(res.config["controls"])
        n_curve = T + 1 if res.curve_steps is None else res.curve_steps.size
        if res.curve_steps is not None and (
            res.curve_steps.shape != res.curve.shape
            or res.curve_steps[0] != 0
            or res.curve_steps[-1] != T
        ):
            raise ResultError(path, f"curve_steps do not fit T={T}: {res.curve_steps.shape}")
        if res.etas.shape != (T,) or res.curve.shape != (n_curve,) or res.controls.ndim != 1:
            raise ResultError(
                path,
                f"arrays do not fit T={T}: etas {res.etas.shape}, curve {res.curve.shape}",
            )
        if res.controls.size != K:
            raise ResultError(path, f"{res.controls.size} controls, expected K={K}")
        return res


_META_FIELDS = (
    "loss",
    "iterations",
    "evaluations",
    "converged",
    "message",
    "projected_gradient",
    "wall_time",
    "config",
    "solver_message",
)


def lbfgsb(
    fg,
    x0: np.ndarray,
    bounds,
    *,
    maxiter: int = 5000,
    gtol: float = 1e-10,
    ftol: float = 1e-15,
    maxcor: int = 50,
    callback=None,
) -> optimize.OptimizeResult:
    """scipy's L-BFGS-B on ``fg(x) -> (f, ∇f)``, with BLAS held to one thread.

    OpenBLAS's worker threads and XLA's thread pool otherwise fight over the cores: measured 5×
    slower solves on 2 cores (1.9 s vs 0.38 s for 165 evaluations at N = 500, T = 1000).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return optimize.minimize(
            fg,
            x0,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            callback=callback,
            options={
                "maxiter": maxiter,
                "maxfun": 2 * maxiter,
                "ftol": ftol,
                "gtol": gtol,
                "maxcor": maxcor,
            },
        )


#: Largest projected gradient (on log L(T), i.e. relative) of a result called converged.
#: Converged solves measure 1e-10 … 3e-6.
KKT_TOLERANCE = 1e-4


def projected_gradient(x: np.ndarray, g: np.ndarray, lo: float, hi: float) -> float:
    """‖x − clip(x − g, lo, hi)‖_∞: zero exactly at first-order optimality under bounds."""
    return float(np.max(np.abs(x - np.clip(x - g, lo, hi))))


def _validate(problem: Problem, T: int, controls, eta_max, smoothness) -> tuple[int, float]:
    if not isinstance(T, int | np.integer) or T < 1:
        raise ValueError(f"T must be an integer >= 1; got T={T!r}")
    K = T if controls is None else controls
    if not isinstance(K, int | np.integer) or not 1 <= K <= T:
        raise ValueError(
            f"controls must be None (per step) or an integer in [1, T={T}]; "
            f"got controls={controls!r}"
        )
    if eta_max is None:
        eta_max = problem.eta_mode_bound()
    eta_max = float(eta_max)
    if not math.isfinite(eta_max) or eta_max <= 0:
        raise ValueError(f"eta_max must be a finite number > 0; got eta_max={eta_max}")
    if not math.isfinite(float(smoothness)) or smoothness < 0:
        raise ValueError(f"smoothness must be a finite number >= 0; got {smoothness}")
    return int(K), eta_max


def _initial(init, K: int, centers: np.ndarray | None = None) -> np.ndarray:
    from .segments import Piecewise

    dst = (np.arange(K) + 0.5) / K if centers is None else centers
    if isinstance(init, Piecewise):  # a large-T result: resample its segments, not its steps
        src = (init.edges[:-1] + 0.5 * init.lengths) / len(init)
        return np.interp(dst, src, init.values)
    try:
        x = np.asarray(init, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"init must be a number or a 1-D array of rates; got {init!r}") from None
    if not np.all(np.isfinite(x)) or np.any(x < 0):
        raise ValueError("init must be finite and >= 0 (learning rates)")
    if x.ndim == 0:
        return np.full(K, float(x))
    if x.shape == (K,):
        return x.copy()
    if x.ndim == 1 and x.size >= 1:  # any other length: resample on the fraction t/T
        src = (np.arange(x.size) + 0.5) / x.size
        return np.interp(dst, src, x)
    raise ValueError(f"init must be a scalar or a 1-D schedule; got shape {x.shape}")


# --------------------------------------------------------------------------- segment path
# Long horizons are evaluated by segment propagation (docs/theory.md §5: O(K·N²) per evaluation
# instead of O(T·N)). ``method="auto"`` picks it when its cost model is the smaller. Measured
# (float64, loss + gradient, N_eff = 575, K = 400, one process, on a loaded 2-core machine): the
# step recursion 5.9 ns per mode-step, the segment path 23-26 ns per segment per (mode)², a
# ratio of ≈ 4; with the quiet-machine 3.3 ns per mode-step that is _SEG_NS ≈ 14. Segments win
# once a segment holds more than ≈ 4·N steps (T = 10^7, K = 400: 25 000 steps per segment, about
# 10x faster); below _SEG_MIN_T steps the step recursion is used whatever the model says (it is
# cheap there, and the committed results up to T = 51 200 keep their path and cache keys).
_STEP_NS = 3.3
_SEG_NS = 14.0
_SEG_MIN_T = 100_000


@dataclass(frozen=True)
class _Segments:
    """The grid of a solve by segment propagation: K segment lengths summing to T."""

    lengths: np.ndarray


def _grid(problem: Problem, T: int, K: int, grid, method: str, batches):
    """Per-step control index (step recursion) or :class:`_Segments`, and the segment centres
    t/T for resampling a warm start (``None`` on the default uniform grid)."""
    from .segments import check_segments, log_lengths, uniform_lengths

    if method not in ("auto", "steps", "segments"):
        raise ValueError(f"method must be 'auto', 'steps' or 'segments'; got method={method!r}")
    if isinstance(grid, str):
        if grid not in ("uniform", "log"):
            raise ValueError(
                f"grid must be 'uniform', 'log' or K segment lengths summing to T; got {grid!r}"
            )
        lengths = None if grid == "uniform" else log_lengths(T, K)
    else:
        lengths = check_segments(np.ones(np.shape(grid)), grid)[1].astype(np.int64)
        if lengths.size != K or int(lengths.sum()) != T:
            raise ValueError(
                f"grid: {lengths.size} segment lengths summing to {int(lengths.sum())}; "
                f"expected K={K} lengths summing to T={T}"
            )
    n = problem.n_eff
    cheaper = T >= _SEG_MIN_T and T * n * _STEP_NS > K * n * n * _SEG_NS
    use = method == "segments" or (method == "auto" and cheaper and batches is None)
    if use and batches is not None:
        raise ValueError("batches: per-step batches need method='steps' (or 'auto')")
    centers = None
    if lengths is not None:
        centers = (np.cumsum(lengths) - 0.5 * lengths) / T
    if use:
        return _Segments(uniform_lengths(T, K) if lengths is None else lengths), centers
    if lengths is None:
        return segment_index(T, K), centers
    return np.repeat(np.arange(K), lengths), centers


def _controls_objective(problem: Problem, u: np.ndarray, seg, smoothness, batches):
    """log L(T) + κ Σ_j (u_{j+1} − u_j)², its gradient with respect to the controls u (η_t =
    u[seg[t]]), and L(0..T) (at the segment boundaries on the segment path)."""
    if isinstance(seg, _Segments):
        from .segments import log_final_loss_and_grad as segment_objective

        v, g, curve = segment_objective(problem, u, seg.lengths, with_curve=True)
    else:
        v, g, curve = log_final_loss_and_grad(problem, u[seg], batches, with_curve=True)
        g = np.bincount(seg, weights=g, minlength=len(u))  # chain rule through η_t = u[seg(t)]
    if smoothness:
        du = np.diff(u)
        v += smoothness * float(du @ du)
        g[:-1] -= 2 * smoothness * du
        g[1:] += 2 * smoothness * du
    return v, g, curve


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
):
    """L-BFGS-B on log L(T) (+ penalty) over the controls u (η_t = u[seg[t]]); returns (u, res).

    ``monotone_from``: keep u non-increasing from that control on (:class:`_Monotone`)."""
    # Segment propagation is exact to ~1e-14 relative but not smooth to the last bit (iterated
    # roots): stop on a relative reduction of 1e-13 there, not 1e-15, before the line search
    # chases rounding noise (measured: "ABNORMAL" stops at the same optimum otherwise).
    ftol = 1e-13 if isinstance(seg, _Segments) else 1e-15

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
    lo = log_max - 30.0
    if monotone_from is not None:
        mono = _Monotone(monotone_from, lo, log_max)
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
    res = lbfgsb(
        fg_log,
        x_start,
        [(lo, log_max)] * len(x0),
        maxiter=maxiter,
        gtol=tol,
        ftol=ftol,
        callback=callback,
    )
    return np.exp(np.asarray(res.x)), res


class _Monotone:
    """Controls non-increasing after the warmup: u_0..u_p free, then u_j = u_{j−1} e^{r_j} with
    r_j ≤ 0 (j > p). L-BFGS-B works on y = (log u_0, …, log u_p, r_{p+1}, …, r_{K−1}), where the
    constraint is a box; the peak index p is fixed (the warmup is the part before it)."""

    def __init__(self, peak: int, lo: float, log_max: float) -> None:
        self.p, self.lo, self.log_max = int(peak), lo, log_max

    def y_of(self, u: np.ndarray) -> np.ndarray:
        v = np.log(u)
        return np.concatenate([v[: self.p + 1], np.diff(v[self.p :])])

    def u_of(self, y: np.ndarray) -> np.ndarray:
        p = self.p
        return np.exp(np.concatenate([y[: p + 1], y[p] + np.cumsum(y[p + 1 :])]))

    def bounds(self, k: int) -> list[tuple[float, float]]:
        p = self.p
        return [(self.lo, self.log_max)] * (p + 1) + [(self.lo - self.log_max, 0.0)] * (k - p - 1)

    def grad_y(self, u: np.ndarray, g: np.ndarray) -> np.ndarray:
        """Chain rule from ∂f/∂u to ∂f/∂y: through u = e^v, then v_j = v_p + Σ_{i≤j} r_i."""
        gv = g * u
        tail = np.cumsum(gv[self.p :][::-1])[::-1]  # Σ_{j≥i} ∂f/∂v_j
        return np.concatenate([gv[: self.p], tail])

    def value_and_grad(self, fg, y: np.ndarray) -> tuple[float, np.ndarray]:
        u = self.u_of(y)
        v, g = fg(u)
        return v, self.grad_y(u, g)

    def projected_gradient(self, u: np.ndarray, g: np.ndarray) -> float:
        """The KKT residual of the constrained problem, in y."""
        y, gy = self.y_of(u), self.grad_y(u, g)
        lo, hi = np.array(self.bounds(len(u))).T
        return float(np.max(np.abs(y - np.clip(y - gy, lo, hi))))


def _best_constant(
    problem: Problem, T: int, eta_max: float, batches, method: str = "auto"
) -> tuple[float, int]:
    x0 = np.array([min(0.5 * problem.eta_critical(), eta_max)])
    seg, _ = _grid(problem, int(T), 1, "uniform", method, batches)
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
    _, eta_max = _validate(problem, T, None, eta_max, 0.0)
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
) -> ScheduleResult:
    """The learning-rate schedule minimizing L(T), subject to 0 ≤ η_t ≤ η_max.

    Args:
        problem: the :class:`~rfmodel.Problem`.
        T: number of SGD steps.
        controls: ``None`` for one control per step, or K for K piecewise-constant controls.
        eta_max: upper bound on η; default the per-step stability bound 2m/((m+1)λ_max), above
            which the top mode grows during that step.
        smoothness: κ ≥ 0 of the penalty κ Σ_j (u_{j+1} − u_j)² added to log L(T).
        init: initial schedule: scalar, length-K controls, or any 1-D schedule (resampled on
            t/T). Default: the best constant rate (:func:`best_constant_rate`). Measured: from
            there the easy-phase benchmarks need 3.5–4.9x fewer evaluations than from half the
            largest stable constant rate (P1: 24 vs 84, P4: 33 vs 163).
        batches: optional per-step batch sizes (held fixed).
        maxiter: L-BFGS-B iteration cap.
        tol: projected-gradient tolerance (on log L, i.e. relative).
        parameterization: ``"log"`` (default) searches over v = log η ∈ [log η_max − 30,
            log η_max] (so η ≥ 1e-13 η_max, i.e. 0 in practice); ``"linear"`` over η ∈ [0, η_max].
            Measured: log needs 1.7–8× fewer evaluations (S2: 128 vs 510, per-step hard phase
            at T = 1000: 609 vs 4792) for the same optimum. The penalty κ stays on η, so a strong
            one is better conditioned in ``"linear"`` (per-step hard phase, κ = 1: 702 iterations
            to a KKT point, where log stalls at a projected gradient of 0.04).
        progress: show a progress bar over solver iterations with the current objective
            (log L(T) + penalty); it counts iterations (no total: the cap is not an estimate).
        monotone: keep the schedule non-increasing after its warmup, the controls before the
            peak of the start (``init``; from the default constant start, none: the whole
            schedule is non-increasing). Solved in log coordinates on the decrements
            (:class:`_Monotone`); ``converged`` is the KKT test of that constrained problem.
        grid: where the K controls sit: ``"uniform"`` (step t uses control ⌊tK/T⌋),
            ``"log"`` (:func:`rfmodel.segments.log_lengths`: short segments near t = 0 and
            t = T, where the optimum changes fastest) or K segment lengths summing to T.
        method: how L(T) and its gradient are evaluated: ``"steps"`` (the step recursion,
            O(T·N) per evaluation), ``"segments"`` (exact segment propagation, O(K·N²)
            whatever T: docs/theory.md §5) or ``"auto"`` (segments when K ≪ T makes them
            cheaper, see ``_SEG_NS``; never below T = 100 000). On the segment path the result
            keeps ``etas`` as a :class:`rfmodel.segments.Piecewise` and ``curve`` at the
            boundaries and 2000 log-spaced steps (``curve_steps``).

    Returns:
        :class:`ScheduleResult`.
    """
    t0 = time.perf_counter()
    K, eta_max = _validate(problem, T, controls, eta_max, smoothness)
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
    seg, centers = _grid(problem, T, K, grid, method, batches)
    start_evaluations = 0
    if init is None:
        eta0, start_evaluations = _best_constant(problem, T, eta_max, batches, method)
        x0 = np.full(K, eta0)
    else:
        x0 = np.clip(_initial(init, K, centers), 0.0, eta_max)
        _check_start(problem, x0, seg, batches)
        start_evaluations = 1
    peak = None
    if monotone:  # the warmup ends at the start's peak; after it, the running minimum
        peak = int(np.argmax(x0))
        x0 = np.concatenate([x0[:peak], np.minimum.accumulate(x0[peak:])])
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc=f"optimizing T={T}", unit="it", leave=False)

    def callback(intermediate_result: optimize.OptimizeResult) -> None:
        if bar is not None:
            bar.update()
            bar.set_postfix(objective=f"{min(intermediate_result.fun, 1e300):.8g}", refresh=False)

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
    )
    if bar is not None:
        bar.close()
    # One evaluation at the optimum: the loss curve and the KKT residual (on log L + penalty).
    _, g, curve = _controls_objective(problem, u, seg, smoothness, batches)
    if peak is None:
        pg = projected_gradient(u, g, 0.0, eta_max)
    else:
        pg = _Monotone(peak, math.log(eta_max) - 30.0, math.log(eta_max)).projected_gradient(u, g)
    segments = None
    if isinstance(seg, _Segments):
        from .segments import Piecewise, log_steps, segment_losses

        etas = Piecewise(u, seg.lengths)
        steps = np.union1d(log_steps(T, 2000), etas.edges)
        curve = segment_losses(problem, u, seg.lengths, steps=steps)[1]
        segments = {"lengths": seg.lengths, "curve_steps": steps}
    else:
        etas = u[seg]
    converged, message = _stop_reason(res, pg, maxiter)
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
        "batches": _describe(batches),
        "init": _describe(init),
        "maxiter": int(maxiter),
        "tol": float(tol),
        **_optional_config(grid, method),
    }
    if monotone:  # only when set: the keys of existing results stay valid
        config["monotone"] = True
    if segments is not None:
        config["solved_on"] = "segments"
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
        **(segments or {}),
    )


def _optional_config(grid, method) -> dict[str, Any]:
    """The segment-grid options, in a configuration only when they are not at their default
    (so that the keys of results solved before they existed do not change)."""
    out: dict[str, Any] = {}
    if not (isinstance(grid, str) and grid == "uniform"):
        out["grid"] = grid if isinstance(grid, str) else _describe(grid)
    if method != "auto":
        out["method"] = method
    return out


def _describe(x) -> Any:
    """A JSON description of an init/batches argument for a result's configuration: None, the
    number, or a fingerprint of the array (its length and a SHA-1 of its float64 bytes)."""
    if x is None:
        return None
    a = np.asarray(x, np.float64)
    if a.ndim == 0:
        return float(a)
    import hashlib

    return {
        "length": int(a.size),
        "sha1": hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest(),
    }


def _check_start(
    problem: Problem, x0: np.ndarray, seg: np.ndarray, batches, name: str = "init"
) -> None:
    """Reject a start from which the solver cannot make honest progress: a diverging one, or
    one no better than not training (η ≡ 0, or an unstable rate that has not overflowed yet).
    In log coordinates η → 0 is a spurious stationary point, so such starts used to end at
    L(T) = L(0) with L-BFGS-B reporting convergence."""
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


def _stop_reason(res: optimize.OptimizeResult, pg: float, maxiter: int) -> tuple[bool, str]:
    """(converged, why it stopped): converged only at a first-order point of the bounded problem."""
    kkt = f"projected gradient {pg:.2g}"
    if res.success and pg <= KKT_TOLERANCE:
        return True, f"converged to a first-order point ({kkt} <= {KKT_TOLERANCE:g})"
    if res.nit >= maxiter:
        return False, f"stopped at the iteration cap maxiter={maxiter} ({kkt})"
    if res.success:
        return False, f"L-BFGS-B met its tolerances but the {kkt} is > {KKT_TOLERANCE:g}"
    return False, f"L-BFGS-B stopped: {res.message} ({kkt})"


_SOLVER_DEFAULTS = {
    "eta_max": None,
    "smoothness": 0.0,
    "batches": None,
    "maxiter": 5000,
    "tol": 1e-10,
    "parameterization": "log",
}


def horizon_keys(
    problem: Problem, Ts: Sequence[int], *, controls=None, init=None, **kwargs: Any
) -> dict[int, dict[str, Any]]:
    """The cache key of each horizon of :func:`optimize_schedules` (same arguments).

    A key holds every setting that changes the answer: the problem, T, the number of controls,
    every solver setting with its default filled in, and how the horizon was started (``init``
    for the first, a warm start from the previous horizon for the others).
    """
    Ts = list(Ts)
    for T in Ts:
        if not isinstance(T, int | np.integer) or isinstance(T, bool) or T < 1:
            raise ValueError(f"Ts must be integers >= 1; got {T!r}")
    optional = _optional_config(kwargs.pop("grid", "uniform"), kwargs.pop("method", "auto"))
    unknown = set(kwargs) - set(_SOLVER_DEFAULTS)
    if unknown:
        raise TypeError(f"unexpected solver arguments {sorted(unknown)}")
    solver = {**_SOLVER_DEFAULTS, **kwargs, **optional}
    solver["eta_max"] = _validate(problem, 1, None, solver["eta_max"], 0.0)[1]
    solver["batches"] = _describe(solver["batches"])
    out = {}
    for i, T in enumerate(sorted(int(T) for T in Ts)):
        out[T] = {
            "problem": problem.config(),
            "T": T,
            "controls": controls(T) if callable(controls) else controls,
            "solver": solver,
            "start": "warm start from the previous horizon" if i else _describe(init),
        }
    return out


def optimize_schedules(
    problem: Problem,
    Ts: Sequence[int],
    *,
    out_dir: str | Path | None = None,
    progress: bool = True,
    **kwargs: Any,
) -> dict[int, ScheduleResult]:
    """Optimize for each horizon in ``Ts`` (ascending), warm-starting each from the previous.

    The previous optimum, resampled on the fraction t/T, initializes the next horizon. With
    ``out_dir`` each result is saved as soon as it is done (``T{T}_<key>.npz`` + ``.json``) and
    a rerun loads finished horizons instead of recomputing them (resume). The key
    (:func:`horizon_keys`) covers every setting that changes the answer; a saved result is
    validated on load, and a damaged or mismatched one is moved aside with a warning and
    recomputed. ``kwargs`` go to :func:`optimize_schedule`; ``controls`` may be an int or a
    callable ``T -> K``.
    """
    from .results import config_key

    keys = horizon_keys(problem, Ts, **kwargs)
    prev = kwargs.pop("init", None)
    kwargs.pop("controls", None)  # in each horizon's key
    out = {}
    it = list(keys)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="optimal schedules", unit="T")
    for T in it:
        key = keys[T]
        path = None if out_dir is None else Path(out_dir) / f"T{T}_{config_key(key)}"
        saved = None if path is None else load_schedule(path, key)
        if saved is not None:
            out[T] = saved
        else:
            try:
                out[T] = optimize_schedule(
                    problem, T, controls=key["controls"], init=prev, **kwargs
                )
            except ValueError as e:
                if prev is None or not str(e).startswith("init:"):
                    raise
                # The previous optimum stretched to T can diverge (a hard-phase transient above
                # η_c held 10x longer): start from it clipped below η_c instead.
                out[T] = optimize_schedule(
                    problem,
                    T,
                    controls=key["controls"],
                    init=_below_critical(problem, prev),
                    **kwargs,
                )
            if path is not None:
                out[T].save(path, key=key)
        prev = out[T].etas
    return out


def _below_critical(problem: Problem, etas):
    """A warm start with every rate clipped to 0.99 of the largest stable constant rate."""
    from .segments import Piecewise

    cap = 0.99 * problem.eta_critical()
    if isinstance(etas, Piecewise):
        return Piecewise(np.minimum(etas.values, cap), etas.lengths)
    return np.minimum(np.asarray(etas, np.float64), cap)


def load_schedule(path: str | Path, key: dict[str, Any]) -> ScheduleResult | None:
    """The valid result saved at ``path`` under ``key``, or ``None`` (missing, or damaged and
    moved aside with a warning: :func:`rfmodel.results.load_valid`)."""
    from .results import ResultError, quarantine

    path = Path(path)
    if not path.with_suffix(".json").exists() and not path.with_suffix(".npz").exists():
        return None
    try:
        return ScheduleResult.load(path, key=key)
    except ResultError as e:
        quarantine(path, e.reason)
        return None
