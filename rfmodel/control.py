"""Optimal control of the learning-rate schedule (docs/theory.md §6).

Minimize the final expected loss L(T) over η_0..η_{T−1} with 0 ≤ η_t ≤ η_max, by differentiating
L(T) through the exact recursion (:func:`rfmodel.dynamics.loss_curve`, whose reverse pass is the
adjoint/costate recursion) and running bounded L-BFGS-B (scipy), by default from the best
constant rate. Controls are either one rate per step or K piecewise-constant rates (step t uses
control ⌊tK/T⌋, segments as equal as possible). The objective is log L(T) (+ an optional
smoothness penalty κ Σ_j (u_{j+1} − u_j)² on the controls u), so the tolerances do not depend
on the loss scale.

``optimize=("eta", "batch")`` optimizes the batch sizes m_t jointly with the rates, under a
sample budget Σ_t m_t = S held exactly (an augmented Lagrangian around L-BFGS-B, then an exact
projection onto the budget; docs/theory.md §6). Each optimized control is a :class:`Control`
block (bounds, coordinates, an optional budget); the solver works on their concatenation.

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
from .problem import Problem, _finite

__all__ = [
    "ScheduleResult",
    "Control",
    "CONTROLS",
    "optimize_schedule",
    "optimize_schedules",
    "segment_index",
    "projected_gradient",
    "best_constant_rate",
    "horizon_keys",
    "load_schedule",
    "integer_batches",
    "project_budget",
    "FewestSteps",
    "fewest_steps",
]

#: The controls ``optimize_schedule(optimize=...)`` knows, in the order of their blocks.
CONTROLS = ("eta", "batch", "momentum")
#: Default bound on the optimized momentum β_t (the common practical value; any value < 1 may be
#: passed as ``beta_max``).
BETA_MAX = 0.9


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
            that is not first-order optimal for the bounded problem). Several controls: every
            block's residual counts, and a line-search failure at a residual 100× below the
            tolerance (the objective's rounding level) counts as converged.
        message: why it stopped, in words (L-BFGS-B's own message is in ``solver_message``).
        projected_gradient: ‖x − P(x − ∇ log L)‖_∞, the first-order optimality residual for the
            bound constraints (0 at a KKT point), on the log-loss objective; x = η, except on
            a non-uniform ``grid`` in log parameterization (not ``monotone``), where x = log η
            (the solver's coordinates: rates there span many decades, and a residual in η
            would weigh a rate annealed to 1e-8 a hundred million times its effect on L).
        wall_time: seconds, compile included.
        config: the full configuration (problem, T, controls, bounds, smoothness; with the batch
            optimized also ``optimize``, ``samples``, ``batch_min``, ``batch_max``).
        lengths: segment lengths when the schedule was solved by segment propagation
            (docs/theory.md §5); then ``etas`` is a :class:`rfmodel.segments.Piecewise` (built
            on use) and ``curve`` holds L only at the steps ``curve_steps`` (segment boundaries
            and log-spaced steps), so that a T = 10^7 result stays a few hundred kB.
        curve_steps: the steps of ``curve`` (``None``: every step 0..T).
        batches: per-step batch sizes m_t, shape ``(T,)``, when the batch was optimized
            (``optimize=("eta", "batch")``); else ``None`` (the problem's batch, or the fixed
            ``batches`` of the config).
        betas: per-step momenta β_t, shape ``(T,)``, when the momentum was optimized
            (``optimize=(..., "momentum")``) or given fixed (``betas=``); else ``None`` (SGD).
        budget_residual: Σ_t m_t − S in samples (|·| ≤ 1e-9 S is guaranteed), or ``None``.
        kkt: the first-order residual of each optimized control (``projected_gradient`` is
            their maximum), or ``None`` for the rate alone.
        multipliers: the Lagrange multiplier ν of each budget (∂ log L*(T)/∂S = −ν), or ``None``.
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
    batches: np.ndarray | None = field(default=None, repr=False)
    betas: np.ndarray | None = field(default=None, repr=False)
    budget_residual: float | None = None
    kkt: dict[str, float] | None = None
    multipliers: dict[str, float] | None = None

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
        if self.batches is not None:
            arrays["batches"] = self.batches
        if self.betas is not None:
            arrays["betas"] = self.betas
        save_result(path, arrays, self.metadata(), config=self.config if key is None else key)

    def metadata(self) -> dict[str, Any]:
        extra = {k: getattr(self, k) for k in _OPTIONAL_FIELDS if getattr(self, k) is not None}
        return {
            **extra,
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
                batches=arrays.get("batches"),
                betas=arrays.get("betas"),
                **{k: meta[k] for k in _META_FIELDS},
                **(seg or {}),
                **{k: meta[k] for k in _OPTIONAL_FIELDS if k in meta},
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
        if (
            res.etas.shape != (T,)
            or res.curve.shape != (n_curve,)
            or res.controls.ndim != 1
            or (res.batches is not None and res.batches.shape != (T,))
            or (res.betas is not None and res.betas.shape != (T,))
        ):
            raise ResultError(
                path,
                f"arrays do not fit T={T}: etas {res.etas.shape}, curve {res.curve.shape}"
                + ("" if res.batches is None else f", batches {res.batches.shape}"),
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
#: Saved only when set (results of the rate alone keep their metadata unchanged).
_OPTIONAL_FIELDS = ("budget_residual", "kkt", "multipliers")


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

    ``monotone_from``: keep u non-increasing from that control on (:class:`_Monotone`).
    ``scale``: a diagonal preconditioner s (log parameterization): L-BFGS-B works on
    y_j = s_j log u_j, a box again (:func:`_grid_scale`); ``upper``: per-control bounds
    u_j ≤ upper_j ≤ eta_max with it (:func:`_rate_bounds`)."""
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
    lo = log_max - _LOG_RANGE
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


#: Growth allowed to one segment on its own (see :func:`_rate_bounds`): e^GROWTH.
_GROWTH = 5.0
#: Log-rate controls are searched in [log eta_max − _LOG_RANGE, log eta_max].
_LOG_RANGE = 30.0


def _top_rate(problem: Problem, eta_max: float) -> float:
    """The largest rate of a growth-bounded solve: eta_max, but never closer than 1e-6
    (relative) to the per-mode bound, where the top mode's pole ε reaches 0 and coincides with
    the origin of root 0: the segment adjoint is off there (measured: ∂ log L/∂ log η = 6e-3
    against −5e-8 by finite differences at the bound, exact again from 1e-6 below it)."""
    return min(float(eta_max), problem.eta_mode_bound() * (1 - 1e-6))


def _rate_bounds(problem: Problem, lengths: np.ndarray, eta_max: float) -> np.ndarray:
    """Per-segment upper bounds on the rate: the largest η ≤ ``eta_max`` at which a segment of
    n_j steps at constant η amplifies the state by at most e^_GROWTH on its own.

    Above η_c the map's top eigenvalue μ_0 = 1 − ν_0 exceeds 1 and n steps grow by μ_0ⁿ; on a log
    grid a 2·10^6-step segment overflows float64 a fraction of a percent above η_c, a one-step
    segment never. The hard-phase optimum holds its plateau 0.7% below η_c, so from the box
    [0, eta_max] the line search kept landing on overflowed schedules (no value, no gradient) and
    L-BFGS-B stopped after 10 iterations (T = 10^7, K = 60). ν_0 ≥ −c with c = expm1(G/n) is
    Σ_k z_k/(ε_k + c) ≤ 1 (the secular equation of docs/theory.md §5 is increasing below its
    first pole), the stability sum S(η) with every pole shifted by c: one root-finding in η per
    distinct length, O(N) per evaluation. An optimum growing its loss e^5-fold within one
    segment would not be an optimum, so the bound is inactive there (``optimize_schedule``
    warns if a rate ends on it).
    """
    from .segments import _poles

    m = float(problem.batch)
    lam, w = problem.lam, problem.weight
    n_all = np.asarray(lengths, np.int64)
    eta_max = _top_rate(problem, eta_max)
    out = np.full(n_all.shape, eta_max)

    def excess(eta: float, c: float) -> float:
        eps, g = _poles(lam, eta, m)
        return float(np.sum(g * w * lam * lam / (eps + c))) - 1.0

    lo = min(problem.eta_critical(), float(eta_max))
    for n in np.unique(n_all):
        c = math.expm1(_GROWTH / float(n))
        if excess(eta_max, c) <= 0:
            continue
        root = optimize.brentq(excess, lo, eta_max, args=(c,), xtol=1e-15, rtol=1e-14)
        out[n_all == n] = root
    return out


def _grid_scale(lengths: np.ndarray) -> np.ndarray:
    """Diagonal preconditioner for log-rate controls on a non-uniform grid: s_j = (n_j/n̄)^¼.

    On a log grid the segment lengths n_j span six decades (T = 10^7, K = 60: 1 … 2·10^6 steps)
    and so does the curvature of log L in log η_j; a single L-BFGS-B step length fits none of
    them. Measured on the easy problem of ``benchmarks/bench_segments.py`` (T = 10^7, K = 60,
    log grid, from the best constant rate): unscaled, 500 iterations end still moving, 5e-8
    (relative) above the optimum; s = (n/n̄)^¼ reaches it (a gradient of 5e-8 in log
    coordinates) in 115 iterations; s = (n/n̄)^½ overshoots (stalls after 71 at a gradient of
    1e-2), and s = √(|∂ log L/∂ log η| at the start) takes 145. On the uniform grid s ≡ 1 (not
    applied).
    """
    n = np.asarray(lengths, np.float64)
    return (n / n.mean()) ** 0.25


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


# --------------------------------------------------------------------------- several controls
@dataclass(frozen=True)
class Control:
    """One optimized control: K piecewise-constant values u_j (step t uses u[⌊tK/T⌋]).

    A block of the solver's vector with its own bounds ``lo ≤ u ≤ hi``, its coordinates (``log``:
    the solver moves x = log u, with x ≥ log hi − 30 when lo = 0; ``log1m``: x = −log(1 − u),
    for a momentum u ∈ [0, 1); else x = u), an optional
    budget Σ_t u_t = ``total`` (an equality: Σ_j n_j u_j = total over segment lengths n_j), and
    the coordinates of its first-order residual (``kkt_log``: in log u, i.e. relative; else in
    u). docs/theory.md §6.
    """

    name: str
    lo: float
    hi: float
    log: bool = True
    total: float | None = None
    kkt_log: bool = False
    log1m: bool = False

    def x_bounds(self) -> tuple[float, float]:
        if self.log1m:
            return -math.log1p(-self.lo), -math.log1p(-self.hi)
        if not self.log:
            return self.lo, self.hi
        top = math.log(self.hi)
        return (math.log(self.lo) if self.lo > 0 else top - _LOG_RANGE), top

    def to_x(self, u: np.ndarray) -> np.ndarray:
        if self.log1m:
            return -np.log1p(-np.clip(u, self.lo, self.hi))
        if not self.log:
            return np.clip(u, self.lo, self.hi)
        return np.log(np.clip(u, math.exp(self.x_bounds()[0]), self.hi))

    def from_x(self, x: np.ndarray) -> np.ndarray:
        if self.log1m:
            return -np.expm1(-x)
        return np.exp(x) if self.log else x

    def dudx(self, u: np.ndarray) -> np.ndarray:
        """du/dx: the chain rule from u to the solver's coordinates."""
        if self.log1m:
            return 1.0 - u
        return u if self.log else np.ones_like(u)

    def residual(self, u: np.ndarray, g: np.ndarray, n: np.ndarray, nu: float) -> float:
        """Projected gradient of the Lagrangian ∇_u log L + ν ∇_u (Σ_j n_j u_j) (ν = 0 without a
        budget), in this block's residual coordinates: zero exactly at a KKT point."""
        g = g + nu * n
        if not self.kkt_log:
            return projected_gradient(u, g, self.lo, self.hi)
        return projected_gradient(np.log(u), u * g, math.log(self.lo), math.log(self.hi))

    def multiplier(self, u: np.ndarray, g: np.ndarray, n: np.ndarray) -> float:
        """Least-squares estimate of the budget's multiplier ν from the values strictly inside
        their bounds (exact at a KKT point with at least one of them); 0 without a budget."""
        if self.total is None:
            return 0.0
        free = (u > self.lo * (1 + 1e-9)) & (u < self.hi * (1 - 1e-9))
        if not np.any(free):
            free = np.ones_like(u, dtype=bool)
        w = self.dudx(u) if self.kkt_log else np.ones_like(u)
        a, h = (w * g)[free], (w * n)[free]
        return float(-(a @ h) / (h @ h))


def _optimize_names(optimize) -> tuple[str, ...]:
    names = (optimize,) if isinstance(optimize, str) else optimize
    try:
        names = tuple(str(x) for x in names)
    except TypeError:
        names = ()
    unknown = [x for x in names if x not in CONTROLS]
    if not names or unknown or "eta" not in names:
        raise ValueError(
            f"optimize must name controls from {list(CONTROLS)} and include 'eta'; got "
            f"optimize={optimize!r}"
        )
    return tuple(x for x in CONTROLS if x in names)


def _validate_batch(
    problem: Problem, T: int, names, samples, batch_min, batch_max, batches
) -> tuple[float, float, float] | None:
    """(S, batch_min, batch_max) when the batch is optimized, else None (checked first)."""
    if "batch" not in names:
        for name, v in (("samples", samples), ("batch_min", batch_min), ("batch_max", batch_max)):
            if v is not None:
                raise ValueError(
                    f"{name} is a setting of the batch control: pass optimize=('eta', 'batch') "
                    f"with it; got {name}={v!r} and optimize={names!r}"
                )
        return None
    if batches is not None:
        raise ValueError(
            "batches (fixed per-step batch sizes) cannot be given with optimize=('eta', 'batch'),"
            " which optimizes them; pass samples=S (and batch_min/batch_max) instead"
        )
    S = T * float(problem.batch) if samples is None else _finite("samples", samples)
    lo = 1.0 if batch_min is None else _finite("batch_min", batch_min)
    if lo < 1:
        raise ValueError(f"batch_min must be >= 1; got batch_min={batch_min!r}")
    hi = None if batch_max is None else _finite("batch_max", batch_max)
    if hi is not None and hi < lo:
        raise ValueError(f"batch_max must be >= batch_min={lo:g}; got batch_max={hi:g}")
    if hi is None:
        hi = max(lo, S - (T - 1) * lo)  # the most one step can take
    if not T * lo <= S <= T * hi:
        raise ValueError(
            f"samples must be in [T*batch_min, T*batch_max] = [{T * lo:g}, {T * hi:g}] (each "
            f"of the T steps takes between batch_min and batch_max samples); got "
            f"samples={S:g} with T={T}"
        )
    return S, lo, hi


def _validate_momentum(names, beta_max, betas, T: int) -> float | None:
    """β_max when the momentum is optimized, else None; fixed ``betas`` checked (shape (T,),
    each in [0, 1)) and refused together with an optimized momentum."""
    if "momentum" not in names:
        if beta_max is not None:
            raise ValueError(
                "beta_max is a setting of the momentum control: pass "
                f"optimize=('eta', 'momentum') with it; got beta_max={beta_max!r}"
            )
    elif betas is not None:
        raise ValueError(
            "betas (fixed per-step momenta) cannot be given with optimize=(..., 'momentum'), "
            "which optimizes them; pass beta_max instead"
        )
    if betas is not None:
        from ._momentum import check_betas

        check_betas(betas, np.zeros(T))
    if "momentum" not in names:
        return None
    bm = BETA_MAX if beta_max is None else _finite("beta_max", beta_max)
    if not 0 < bm < 1:
        raise ValueError(f"beta_max must be in (0, 1); got beta_max={beta_max!r}")
    return bm


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
        from ._momentum import log_final_loss_and_grads

        v, per_step, curve = log_final_loss_and_grads(problem, u[seg], beta, m, with_curve=True)
    grads = {k: np.bincount(seg, weights=per_step[k], minlength=K) for k in values}
    return _penalize(v, grads["eta"], u, smoothness), grads, curve


def project_budget(u: np.ndarray, n: np.ndarray, total: float, lo: float, hi: float) -> np.ndarray:
    """A point of {lo ≤ u ≤ hi, Σ_j n_j u_j = total}: u·e^τ clipped to the bounds (the same
    relative change for every value not at a bound), the scalar τ solved to machine precision
    (the sum is monotone in τ).

    >>> project_budget(np.array([1.0, 2.0, 4.0]), np.ones(3), 14.0, 1.0, 8.0).tolist()
    [2.0, 4.0, 8.0]
    >>> np.round(project_budget(np.array([1.0, 2.0, 3.0]), np.ones(3), 12.0, 1.0, 5.0), 9).tolist()
    [2.333333333, 4.666666667, 5.0]
    """
    u = np.asarray(u, np.float64)

    def excess(tau: float) -> float:
        return float(n @ np.clip(u * math.exp(tau), lo, hi)) - total

    a, b = math.log(lo / float(np.max(u))), math.log(hi / float(np.min(u)))
    tau = optimize.brentq(excess, a, b, xtol=1e-15, rtol=4 * np.finfo(float).eps)
    return np.clip(u * math.exp(tau), lo, hi)


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
            u = _initial(given[b.name], K, centers)
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
        out["eta"] = np.clip(_initial(given["eta"], K, centers) * rescale, 0.0, eta_max)
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
        from ._momentum import eta_critical

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
    names = _optimize_names(optimize)
    budget = _validate_batch(problem, T, names, samples, batch_min, batch_max, batches)
    if budget is not None and eta_max is None:
        eta_max = problem.eta_mode_bound(budget[2])
    K, eta_max = _validate(problem, T, controls, eta_max, smoothness)
    beta_max = _validate_momentum(names, beta_max, betas, T)
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
    seg, centers = _grid(problem, T, K, grid, method if alone else "steps", batches)
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
            x0 = np.clip(_initial(init, K, centers), 0.0, eta_max)
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
            lengths = seg.lengths if isinstance(seg, _Segments) else np.bincount(seg, minlength=K)
            scale = _grid_scale(lengths)
            # growth bounds at the problem's batch (given per-step batches: the plain box)
            upper = np.full(K, eta_max)
            if batches is None:
                upper = _rate_bounds(problem, lengths, eta_max)
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
            pg = projected_gradient(np.log(u), g * u, log_max - _LOG_RANGE, np.log(upper))
            held = (upper < _top_rate(problem, eta_max)) & (u >= upper * (1 - 1e-9))
            if np.any(held):
                warnings.warn(
                    f"optimize_schedule: {int(held.sum())} rate(s) end on the growth bound of "
                    f"their segment (e^{_GROWTH:g} within the segment, see _rate_bounds); "
                    "the optimum may lie beyond it",
                    RuntimeWarning,
                    stacklevel=2,
                )
        elif peak is None:
            pg = projected_gradient(u, g, 0.0, eta_max)
        else:
            log_max = math.log(eta_max)
            pg = _Monotone(peak, log_max - _LOG_RANGE, log_max).projected_gradient(u, g)
        if isinstance(seg, _Segments):
            from .segments import Piecewise, log_steps, segment_losses

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
        "batches": _describe(batches),
        "init": _describe(init),
        "maxiter": int(maxiter),
        "tol": float(tol),
        **_optional_config(grid, method),
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
        config["betas"] = _describe(betas)
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


def _optional_config(grid, method) -> dict[str, Any]:
    """The segment-grid options, in a configuration only when they are not at their default
    (so that the keys of results solved before they existed do not change)."""
    out: dict[str, Any] = {}
    if not (isinstance(grid, str) and grid == "uniform"):
        out["grid"] = grid if isinstance(grid, str) else _describe(grid)
        # revision 2: preconditioned log coordinates, KKT residual in them, per-segment growth
        # bounds (:func:`_grid_scale`, :func:`_rate_bounds`); results of revision 1 are
        # recomputed rather than reused.
        out["grid_revision"] = 2
    if method != "auto":
        out["method"] = method
    return out


def _describe(x) -> Any:
    """A JSON description of an init/batches argument for a result's configuration: None, the
    number, or a fingerprint of the array (its length and a SHA-1 of its float64 bytes)."""
    if x is None:
        return None
    if isinstance(x, dict):
        return {str(k): _describe(v) for k, v in x.items()}
    a = np.asarray(x, np.float64)
    if a.ndim == 0:
        return float(a)
    import hashlib

    return {
        "length": int(a.size),
        "sha1": hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest(),
    }


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
    optional = _optional_config(kwargs.pop("grid", "uniform"), kwargs.pop("method", "auto"))
    batch_kw = {k: kwargs.pop(k) for k in _JOINT_OPTIONS if k in kwargs}
    unknown = set(kwargs) - set(_SOLVER_DEFAULTS)
    if unknown:
        raise TypeError(f"unexpected solver arguments {sorted(unknown)}")
    solver = {**_SOLVER_DEFAULTS, **kwargs, **optional}
    names = _optimize_names(batch_kw.get("optimize", ("eta",)))
    _validate_momentum(names, batch_kw.get("beta_max"), None, 1)
    if "batch" not in names:
        _validate_batch(problem, 1, names, *(batch_kw.get(k) for k in _BATCH_OPTIONS[1:]), None)
        solver["eta_max"] = _validate(problem, 1, None, solver["eta_max"], 0.0)[1]
    solver["batches"] = _describe(solver["batches"])
    out = {}
    for i, T in enumerate(sorted(int(T) for T in Ts)):
        out[T] = {
            "problem": problem.config(),
            "T": T,
            "controls": controls(T) if callable(controls) else controls,
            "solver": _solver_key(problem, T, solver, names, batch_kw),
            "start": "warm start from the previous horizon" if i else _describe(init),
        }
    return out


def _solver_key(problem, T: int, solver, names, batch_kw) -> dict[str, Any]:
    """The solver part of a horizon's key: ``solver`` as is for the rate alone of plain SGD."""
    key = _batch_solver_key(problem, T, solver, names, batch_kw) if "batch" in names else solver
    if names == ("eta",) and batch_kw.get("betas") is None:
        return key
    key = {**key, "optimize": list(names)}
    if "momentum" in names:
        key["beta_max"] = _validate_momentum(names, batch_kw.get("beta_max"), None, T)
    betas = batch_kw.get("betas")
    if betas is not None:
        betas = betas(T) if callable(betas) else betas
        _validate_momentum(names, None, betas, T)
        key["betas"] = _describe(betas)
    return key


def _batch_solver_key(problem, T: int, solver, names, batch_kw) -> dict[str, Any]:
    samples = batch_kw.get("samples")
    S, lo, hi = _validate_batch(
        problem,
        T,
        names,
        samples(T) if callable(samples) else samples,
        batch_kw.get("batch_min"),
        batch_kw.get("batch_max"),
        solver["batches"],
    )
    eta_max = problem.eta_mode_bound(hi) if solver["eta_max"] is None else solver["eta_max"]
    eta_max = _validate(problem, 1, None, eta_max, 0.0)[1]
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
    samples = kwargs.pop("samples", None)  # a number or T -> S
    betas = kwargs.pop("betas", None)  # an array or T -> betas
    names = _optimize_names(kwargs.get("optimize", ("eta",)))
    batch = "batch" in names
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
            if batch:
                kwargs["samples"] = samples(T) if callable(samples) else samples
            if betas is not None:
                kwargs["betas"] = betas(T) if callable(betas) else betas
            try:
                out[T] = optimize_schedule(
                    problem, T, controls=key["controls"], init=prev, **kwargs
                )
            except ValueError as e:
                if prev is None or not str(e).startswith("init:"):
                    raise
                # The previous optimum stretched to T can diverge (a hard-phase transient above
                # η_c held 10x longer): start from it clipped below η_c instead; with several
                # controls (a momentum near 1 held longer is as unstable) from the default start.
                out[T] = optimize_schedule(
                    problem,
                    T,
                    controls=key["controls"],
                    init=None if isinstance(prev, dict) else _below_critical(problem, prev),
                    **kwargs,
                )
            if path is not None:
                out[T].save(path, key=key)
        prev = out[T].etas
        if names != ("eta",):  # every optimized control carries over
            prev = {"eta": out[T].etas, "batch": out[T].batches, "momentum": out[T].betas}
            prev = {k: v for k, v in prev.items() if k in names}
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
        if _finite(name, v) <= 0:
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
