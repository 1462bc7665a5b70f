"""Exact expected-loss dynamics (docs/theory.md §2, §4, §5): one interface, several evaluators.

For Gaussian data the per-mode second moments of SGD close exactly::

    C_k(t+1) = d_k(t) C_k(t) + (η_t²/m_t) λ_k [L(t) + σ²],
    d_k(t)   = 1 − 2 η_t λ_k + ((m_t+1)/m_t) η_t² λ_k²,        L(t) = Σ_k w_k λ_k C_k(t)

(w_k is the multiplicity of a binned mode, 1 otherwise). Every evaluator returns L(0), …, L(T)
for a schedule η_0..η_{T−1} (η_t is the rate used by update t, the optax convention) and the
gradient of log L(T) with respect to each per-step control through a hand-written adjoint:

- :mod:`~rfmodel.dynamics.steps`: SGD one step at a time (``lax.scan``, checkpointed adjoint),
  O(T·N) per evaluation; also the plain-``scan`` reference that is the test oracle;
- :mod:`~rfmodel.dynamics.momentum`: heavy-ball SGD, three moments per mode, same structure;
- :mod:`~rfmodel.dynamics.averaging`: the loss of an averaged iterate (EMA, uniform average of
  the last iterates), three moments per mode, same structure (docs/theory.md §11);
- :mod:`~rfmodel.dynamics.segments`: piecewise-constant schedules by exact segment propagation,
  O(K·N²) whatever T;
- :mod:`~rfmodel.dynamics.ode`: the continuous-time limit (diffrax), a check of the others;
- :mod:`~rfmodel.dynamics.evaluators`: the solver's view of them, one object per path
  (:class:`~rfmodel.dynamics.evaluators.SGDSteps`, ``HeavyBallSteps``, ``SegmentPropagation``):
  log L(T) and its gradient by control on a grid of K segments, each declaring the controls it
  differentiates.

:func:`loss_curve` picks the evaluator from the controls it is given. Divergence is explicit:
once L(t) overflows, it and every later entry is ``inf`` (never NaN); :func:`diverged` tests a
curve.

>>> import numpy as np
>>> from rfmodel import Problem
>>> p = Problem(a=2.0, b=1.5, sigma=0.0, n_modes=3, batch=1e12)
>>> curve = loss_curve(p, np.full(5, 0.5))
>>> curve.shape, bool(np.all(np.diff(curve) < 0))
((6,), True)
"""

from __future__ import annotations

import numpy as np

from .._x64 import float64
from ..problem import Problem
from . import averaging, evaluators, momentum, segments, steps
from ._common import Array, check_schedule, diverged, problem_arrays
from .segments import segment_losses
from .steps import final_loss, final_losses, log_final_loss_and_grad

__all__ = [
    "loss_curve",
    "loss_curve_reference",
    "final_loss",
    "final_losses",
    "log_final_loss_and_grad",
    "diverged",
    "check_schedule",
    "problem_arrays",
    "segment_losses",
    "steps",
    "momentum",
    "segments",
    "evaluators",
    "averaging",
]


def _refuse_with_momentum(betas, noise, average) -> None:
    """The heavy-ball recursion (§4) has neither per-step noise nor an averaged iterate."""
    if betas is None:
        return
    for name, v, what in (
        ("noise", noise, "per-step label noise"),
        ("average", average, "averaged iterate"),
    ):
        if v is not None:
            raise ValueError(
                f"{name} cannot be combined with betas (heavy-ball momentum): the momentum "
                f"recursion (docs/theory.md §4) has no {what}; pass betas=None for SGD with "
                f"{name}"
            )


@float64
def loss_curve(
    problem: Problem, etas, batches=None, betas=None, *, noise=None, average=None
) -> Array | np.ndarray:
    """Exact expected excess loss L(t) = Σ_k λ_k C_k(t), t = 0..T (docs/theory.md §2).

    Args:
        problem: the :class:`~rfmodel.Problem`.
        etas: per-step learning rates, shape ``(T,)``; ``etas[t]`` is used by update t.
        batches: optional per-step batch sizes, shape ``(T,)`` (real-valued, ≥ 1); default
            ``problem.batch`` at every step.
        betas: optional per-step heavy-ball momenta in [0, 1), shape ``(T,)``, optax's
            convention ``v' = β_t v + g``, ``w' = w − η_t v'`` (docs/theory.md §4); default none
            (plain SGD).
        noise: optional per-step label-noise variances σ_t² ≥ 0, shape ``(T,)``: update t's
            samples have labels y = w*·x + ε with ε ~ N(0, σ_t²) (data of varying quality,
            docs/theory.md §10); default the problem's σ² at every step (a constant σ_t² = σ²
            gives the same curve bit for bit).
        average: optional iterate-averaging weights τ_t ∈ [0, 1], a scalar or shape ``(T,)``:
            returns the loss L̄(t) of the average w̄_{t+1} = (1 − τ_t) w̄_t + τ_t w_{t+1},
            w̄_0 = w_0 (docs/theory.md §11; τ ≡ 1 is the SGD curve bit for bit, a constant τ an
            EMA, :func:`~rfmodel.dynamics.averaging.uniform_average` the uniform average of
            the last iterates). Not with ``betas``.

    A preconditioned problem (``Problem(..., precondition=γ)``) runs preconditioned SGD,
    w ← w − η P ĝ, P = diag(λ_k^−γ), through its effective spectrum (docs/theory.md §12).

    Returns:
        float64 array of shape ``(T+1,)``; ``inf`` from the first step whose loss overflowed.
        A NumPy array for concrete inputs (whatever JAX's global x64 setting), a JAX array
        inside ``jit``/``grad``/``vmap``.

    Differentiable (``jax.grad``, ``jax.vjp``) with respect to ``etas``, ``batches``,
    ``betas``, ``noise`` and ``average`` through hand-written adjoints
    (:mod:`rfmodel.dynamics.steps`, ``momentum``, ``averaging``). Gradients with respect to
    the problem's spectrum are not provided (they are constants of a :class:`Problem`).
    """
    _refuse_with_momentum(betas, noise, average)
    if betas is not None:
        return momentum.loss_curve(problem, etas, batches, betas)
    if average is not None:
        return averaging.loss_curve(problem, etas, batches, noise, average)
    return steps.loss_curve(problem, etas, batches, noise)


@float64
def loss_curve_reference(
    problem: Problem, etas, batches=None, betas=None, *, noise=None, average=None
) -> Array | np.ndarray:
    """L(0..T) by a plain ``lax.scan`` (autodiff keeps every state): the test oracle of
    :func:`loss_curve`. With ``betas``, heavy-ball momentum (docs/theory.md §4); with
    ``average``, the averaged iterate's L̄ (§11)."""
    _refuse_with_momentum(betas, noise, average)
    if betas is not None:
        return momentum.loss_curve_reference(problem, etas, batches, betas)
    if average is not None:
        return averaging.loss_curves_reference(problem, etas, batches, noise, average)[0]
    return steps.loss_curve_reference(problem, etas, batches, noise)
