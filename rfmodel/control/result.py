"""The result of a solve: :class:`ScheduleResult` (the schedule, its loss curve, the solver's
diagnostics and the full configuration), saved atomically and validated on load."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..dynamics.segments import Piecewise
from ..results import ResultError, load_result, quarantine, save_result
from ..schedules import transfer as tr

__all__ = ["ScheduleResult", "load_schedule"]


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
        quality: per-step clean fractions q_t, shape ``(T,)``, when the data quality was
            optimized (docs/theory.md §10); else ``None``.
        noise: per-step label-noise variances σ_t², shape ``(T,)``, with the quality optimized
            or a fixed ``noise``; else ``None`` (the problem's σ²).
        average: per-step averaging weights τ_t, shape ``(T,)``, when the objective is the
            averaged iterate's loss (docs/theory.md §11); ``curve`` and ``loss`` are then L̄.
        iterate_curve: with ``average``, the SGD iterate's own L(0..T); else ``None``.
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
    quality: np.ndarray | None = field(default=None, repr=False)
    noise: np.ndarray | None = field(default=None, repr=False)
    average: np.ndarray | None = field(default=None, repr=False)
    iterate_curve: np.ndarray | None = field(default=None, repr=False)

    def save(self, path: str | Path, *, key: dict[str, Any] | None = None) -> None:
        """Write ``path`` (.npz arrays + a .json sidecar), atomically, with an integrity record.

        ``key``: the configuration a cache looks the result up by (default ``self.config``).
        """

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
        for name in _OPTIONAL_ARRAYS:  # only when set: other results keep their files unchanged
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name)
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

        arrays, meta = load_result(path) if key is None else load_result(path, config=key)
        try:
            seg = None
            if "lengths" in arrays:
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
                **{k: arrays[k] for k in _OPTIONAL_ARRAYS if k in arrays},
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
            or any(
                getattr(res, k) is not None
                and getattr(res, k).shape != (n_curve if k == "iterate_curve" else T,)
                for k in _OPTIONAL_ARRAYS
            )
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
#: Per-step arrays of the data-quality and averaging controls (docs/theory.md §10, §11).
_OPTIONAL_ARRAYS = ("quality", "noise", "average", "iterate_curve")


def load_schedule(path: str | Path, key: dict[str, Any]) -> ScheduleResult | None:
    """The valid result saved at ``path`` under ``key``, or ``None`` (missing, or damaged and
    moved aside with a warning: :func:`rfmodel.results.load_valid`)."""

    path = Path(path)
    if not path.with_suffix(".json").exists() and not path.with_suffix(".npz").exists():
        return None
    try:
        return ScheduleResult.load(path, key=key)
    except ResultError as e:
        quarantine(path, e.reason)
        return None
