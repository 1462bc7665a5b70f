"""The solver's evaluators: log L(T) of a schedule of K piecewise-constant controls and its gradient
with respect to each control's K values, one object per evaluation path (docs/theory.md §2, §4,
§5, §6).

An evaluator is built on a grid (K segment lengths n_j summing to T), with the controls it
differentiates (``wrt``) and fixed per-step inputs (``fixed``, e.g. given batch sizes); called on
``{name: K values}`` it returns ``(log L(T), {name: ∂ log L(T)/∂ values}, curve)``, the gradient of
every control in ``values`` summed over its segment's steps (chain rule through u_t = u[j(t)]).
Once the run diverges the value is ``inf`` and the gradients NaN. The classes declare what they
can do, so that :func:`rfmodel.control.optimize_schedule` composes controls with a path or
refuses the combination by name:

=========================== ========= ============================ ===========================
evaluator                   path      differentiates               fixed per-step inputs
=========================== ========= ============================ ===========================
:class:`SGDSteps`           steps     eta, batch, quality          batch, noise, quality, eta
:class:`HeavyBallSteps`     steps     eta, momentum, batch         batch, momentum
:class:`AveragedSteps`      steps     eta, batch, quality, average batch, noise, quality, eta,
                                                                   average
:class:`SegmentPropagation` segments  eta                          (none: the problem's batch)
=========================== ========= ============================ ===========================

The data-quality control q_t (the clean fraction of update t's batch, docs/theory.md §10) sets
the per-step label noise σ_t² = q_t σ_c² + (1 − q_t) σ_n², with (σ_c², σ_n²) held as the fixed
input ``"mix"``; its gradient is (σ_c² − σ_n²) ∂ log L/∂σ_t² from the same adjoint. ``"noise"``
holds given σ_t² fixed, ``"eta"`` given rates (the quality or the averaging weights optimized
under a fixed rate schedule), ``"average"`` given averaging weights τ_t (docs/theory.md §11).
A preconditioned problem needs nothing here: its effective spectrum is the problem's (§12).

>>> import numpy as np
>>> from rfmodel import Problem
>>> p = Problem(a=2.5, b=1.2, sigma=0.5, n_modes=50, batch=4)
>>> ev = SGDSteps(p, [60, 40], wrt=("eta", "batch"))
>>> v, g, curve = ev({"eta": np.array([0.5, 0.2]), "batch": np.array([4.0, 8.0])})
>>> sorted(g), g["eta"].shape, curve.shape
(['batch', 'eta'], (2,), (101,))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import numpy as np

from ..problem import Problem
from . import averaging, momentum, segments, steps

__all__ = [
    "Evaluator",
    "SGDSteps",
    "HeavyBallSteps",
    "AveragedSteps",
    "SegmentPropagation",
    "EVALUATORS",
]


class Evaluator:
    """log L(T) and its gradient by control on a grid of K segments (the interface).

    Args:
        problem: the :class:`~rfmodel.Problem`.
        lengths: the K segment lengths n_j ≥ 1 (T = Σ n_j); control j is used by the n_j steps
            of segment j.
        wrt: the controls whose gradients are computed (a subset of :attr:`differentiates`);
            evaluating a subset of them still runs the same compiled program, so the start of a
            solve and the solve share one compilation (and one rounding).
        fixed: fixed per-step inputs by name (arrays of shape ``(T,)``, names in
            :attr:`accepts`).
    """

    #: ``"steps"`` or ``"segments"``: the ``method`` of :func:`rfmodel.control.optimize_schedule`.
    path: ClassVar[str] = ""
    #: The controls whose gradient this path computes.
    differentiates: ClassVar[frozenset[str]] = frozenset()
    #: The per-step inputs this path can hold fixed.
    accepts: ClassVar[frozenset[str]] = frozenset()
    #: L-BFGS-B's relative-reduction tolerance on this path (see :class:`SegmentPropagation`).
    ftol: ClassVar[float] = 1e-15
    #: Restart after a failed line search, lifting stranded log-coordinate values
    #: (:func:`rfmodel.control.solver.minimize`; see :class:`HeavyBallSteps`).
    restart_stuck: ClassVar[bool] = False

    def __init__(
        self,
        problem: Problem,
        lengths,
        *,
        wrt: Iterable[str] = ("eta",),
        fixed: Mapping[str, Any] | None = None,
    ) -> None:
        self.problem = problem
        self.lengths = np.asarray(lengths, np.int64)
        self.K = int(self.lengths.size)
        self.T = int(self.lengths.sum())
        self.n = self.lengths.astype(np.float64)  # steps per segment (budgets, multipliers)
        self.wrt = tuple(wrt)
        self.fixed = {k: v for k, v in (fixed or {}).items() if v is not None}
        for name in self.wrt:
            if name not in self.differentiates:
                raise ValueError(self.refusal(name))
        for name in self.fixed:
            if name not in self.accepts:
                raise ValueError(self.refusal(name, fixed=True))

    @classmethod
    def refusal(cls, name: str, *, fixed: bool = False) -> str:
        """Why this path cannot take the control (or fixed input) ``name``."""
        what = f"a fixed per-step {name!r}" if fixed else f"the {name!r} control"
        can = sorted(cls.accepts if fixed else cls.differentiates)
        verb = "holds fixed" if fixed else "differentiates"
        return (
            f"{what} is not available on the {cls.path} path ({cls.__name__} {verb} only "
            f"{can or 'nothing'})"
        )

    @classmethod
    def supports(cls, names: Iterable[str], fixed: Iterable[str] = ()) -> bool:
        return set(names) <= cls.differentiates and set(fixed) <= cls.accepts

    def on(self, lengths, fixed: Mapping[str, Any] | None = None) -> Evaluator:
        """The same path and gradients on another grid with other fixed inputs (e.g. one
        segment for the search of a constant start)."""
        return type(self)(self.problem, lengths, wrt=self.wrt, fixed=fixed)

    def __call__(
        self, values: Mapping[str, np.ndarray]
    ) -> tuple[float, dict[str, np.ndarray], np.ndarray]:
        raise NotImplementedError

    def expand(self, u: np.ndarray) -> np.ndarray:
        """Per-step values, shape ``(T,)``, of K control values."""
        return np.repeat(np.asarray(u), self.lengths)

    def schedule(self, values: Mapping[str, np.ndarray], curve: np.ndarray):
        """(per-step rates, the loss curve to report, extra result fields) at ``values``."""
        return self.expand(values["eta"]), curve, {}


class _Steps(Evaluator):
    """The step recursion: per-step gradients from the adjoint, summed per segment."""

    path = "steps"

    def __init__(self, problem: Problem, lengths, **kw: Any) -> None:
        super().__init__(problem, lengths, **kw)
        self.index = np.repeat(np.arange(self.K), self.lengths)  # control of each step

    def expand(self, u: np.ndarray) -> np.ndarray:
        return np.asarray(u)[self.index]

    def per_step(self, values: Mapping[str, np.ndarray], name: str):
        """The per-step input ``name``: the control's values if optimized, else the fixed ones
        (``None``: the dynamics' default)."""
        if name in values:
            return values[name][self.index]
        return self.fixed.get(name)

    def reduce(self, values, per_step: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """∂/∂u_j = Σ_{t in segment j} ∂/∂u_t for every control in ``values``."""
        return {k: np.bincount(self.index, weights=per_step[k], minlength=self.K) for k in values}

    def noise(self, values: Mapping[str, np.ndarray]) -> np.ndarray | None:
        """Per-step σ_t²: q_t σ_c² + (1 − q_t) σ_n² from the quality (optimized or fixed, with
        the ``"mix"`` (σ_c², σ_n²)), else the fixed ``"noise"``, else ``None`` (the problem's)."""
        q = self.per_step(values, "quality")
        if q is None:
            return self.fixed.get("noise")
        clean, noisy = self.fixed["mix"]
        return q * clean + (1.0 - q) * noisy

    def with_quality(self, per_step: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``per_step`` with ∂/∂q_t = (σ_c² − σ_n²) ∂/∂σ_t² when a mix is held."""
        if "mix" in self.fixed:
            clean, noisy = self.fixed["mix"]
            per_step["quality"] = (clean - noisy) * per_step["noise"]
        return per_step

    def schedule(self, values, curve):
        """Per-step rates (optimized or the fixed ones) and the curve."""
        return self.per_step(values, "eta"), curve, {}


class SGDSteps(_Steps):
    """Plain SGD one step at a time (:func:`rfmodel.dynamics.steps.log_final_loss_and_grad`),
    O(T·N) per evaluation; ∂/∂m_t from the same adjoint pass when ``"batch"`` is in ``wrt``."""

    differentiates = frozenset({"eta", "batch", "quality"})
    accepts = frozenset({"batch", "noise", "quality", "mix", "eta"})

    def __call__(self, values):
        etas, m = self.per_step(values, "eta"), self.per_step(values, "batch")
        noise = self.noise(values)
        if noise is not None:  # data of per-step quality (docs/theory.md §10)
            v, per_step, curve = steps.log_final_loss_and_grads(
                self.problem, etas, m, noise, with_curve=True
            )
            return v, self.reduce(values, self.with_quality(per_step)), curve
        if "batch" in self.wrt:
            v, (ge, gm), curve = steps.log_final_loss_and_grad(
                self.problem, etas, m, with_curve=True, batch_grad=True
            )
            per_step = {"eta": ge, "batch": gm}
        else:
            v, ge, curve = steps.log_final_loss_and_grad(self.problem, etas, m, with_curve=True)
            per_step = {"eta": ge}
        return v, self.reduce(values, per_step), curve


class HeavyBallSteps(_Steps):
    """Heavy-ball SGD one step at a time (:func:`rfmodel.dynamics.momentum.
    log_final_loss_and_grads`): ∂/∂(η_t, β_t, m_t) from one three-moment adjoint pass."""

    differentiates = frozenset({"eta", "momentum", "batch"})
    accepts = frozenset({"batch", "momentum"})
    # Rates on this path strand at the bottom of their box, with the momentum optimized (see
    # rfmodel.control.controls.Momentum) or held fixed: with β ≡ 0.99 held (a = 1.5, b = 2.5,
    # K = 64, warm-started chains) L-BFGS-B stopped on failed line searches at 5 of 7 horizons,
    # T = 4096 … 65 536, projected gradient 1.1-1.6.
    restart_stuck = True

    def __call__(self, values):
        etas, m = self.per_step(values, "eta"), self.per_step(values, "batch")
        beta = self.per_step(values, "momentum")
        if beta is None:
            beta = np.zeros(self.T)
        v, per_step, curve = momentum.log_final_loss_and_grads(
            self.problem, etas, beta, m, with_curve=True, batch_grad="batch" in self.wrt
        )
        return v, self.reduce(values, per_step), curve


class AveragedSteps(_Steps):
    """SGD one step at a time with the loss of the averaged iterate w̄ as the objective
    (:func:`rfmodel.dynamics.averaging.log_final_loss_and_grads`): log L̄(T) and
    ∂/∂(η_t, m_t, σ_t², τ_t) from one three-moment adjoint pass (docs/theory.md §11); per-step
    noise and the quality control as :class:`SGDSteps`. The curve is L̄(0..T); :meth:`schedule`
    adds the SGD iterate's L(0..T) as ``iterate_curve``."""

    differentiates = frozenset({"eta", "batch", "quality", "average"})
    accepts = frozenset({"batch", "noise", "quality", "mix", "eta", "average"})

    def taus(self, values) -> np.ndarray:
        tau = self.per_step(values, "average")
        return np.ones(self.T) if tau is None else tau

    def __call__(self, values):
        etas, m = self.per_step(values, "eta"), self.per_step(values, "batch")
        v, per_step, curves = averaging.log_final_loss_and_grads(
            self.problem, etas, m, self.noise(values), self.taus(values), with_curve=True
        )
        return v, self.reduce(values, self.with_quality(per_step)), curves[0]

    def schedule(self, values, curve):
        etas = self.per_step(values, "eta")
        m = self.per_step(values, "batch")
        curves = averaging.loss_curves(self.problem, etas, m, self.noise(values), self.taus(values))
        return etas, curve, {"iterate_curve": np.asarray(curves[1])}


class SegmentPropagation(Evaluator):
    """Piecewise-constant rates by exact segment propagation (:mod:`rfmodel.dynamics.segments`),
    O(K·N²) per evaluation whatever T, at the problem's batch; the curve at the K+1 boundaries
    (:meth:`schedule` adds 2000 log-spaced steps).

    Segment propagation is exact to ~1e-14 relative but not smooth to the last bit (iterated
    roots): L-BFGS-B stops on a relative reduction of 1e-13 here, not 1e-15, before the line
    search chases rounding noise (measured: "ABNORMAL" stops at the same optimum otherwise)."""

    path = "segments"
    differentiates = frozenset({"eta"})
    ftol = 1e-13

    def __call__(self, values):
        v, g, curve = segments.log_final_loss_and_grad(
            self.problem, values["eta"], self.lengths, with_curve=True
        )
        return v, {"eta": g}, curve

    def expand(self, u: np.ndarray) -> segments.Piecewise:
        return segments.Piecewise(u, self.lengths)

    def schedule(self, values, curve):
        u = values["eta"]
        etas = self.expand(u)
        at = np.union1d(segments.log_steps(self.T, 2000), etas.edges)
        curve = segments.segment_losses(self.problem, u, self.lengths, steps=at)[1]
        return etas, curve, {"lengths": self.lengths, "curve_steps": at}


#: Every evaluator, in the order :func:`rfmodel.control.optimize_schedule` tries them on a path
#: (the first that takes every control and fixed input).
EVALUATORS: tuple[type[Evaluator], ...] = (
    SGDSteps,
    HeavyBallSteps,
    AveragedSteps,
    SegmentPropagation,
)
