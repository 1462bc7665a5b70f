"""Optimal control of the schedule (docs/theory.md §6): one solver over composable controls.

- :mod:`~rfmodel.control.solver`: :func:`optimize_schedule`, composed of controls, an evaluator
  (:mod:`rfmodel.dynamics.evaluators`: SGD steps, heavy-ball steps, segment propagation) and
  one solver (L-BFGS-B on log L(T) with the adjoint gradient; budgets by an augmented
  Lagrangian; restarts; the KKT test), and :func:`best_constant_rate`;
- :mod:`~rfmodel.control.controls`: the controls, each one object with its bounds, coordinates,
  start, budget and KKT residual: :class:`Rate`, :class:`Batch` (with its sample budget),
  :class:`Momentum`, over the generic :class:`Control`; ``Quality`` (the data quality with its
  clean-sample budget) and ``Average`` (iterate-averaging weights) in
  :mod:`~rfmodel.control.controls`;
- :mod:`~rfmodel.control.grid`: where the controls sit (uniform or log segments, step recursion or
  segment propagation), warm starts, growth bounds, the monotone coordinates;
- :mod:`~rfmodel.control.result`: :class:`ScheduleResult`, saved and validated;
- :mod:`~rfmodel.control.chains`: chains of horizons with warm starts and resume;
- :mod:`~rfmodel.control.batch`: integer batches and the fewest steps to a target loss.

>>> from rfmodel import Problem, loss_curve
>>> import numpy as np
>>> p = Problem(a=2.5, b=1.2, sigma=0.5, n_modes=100, batch=4)
>>> res = optimize_schedule(p, 200, controls=20)
>>> res.converged, res.etas.shape, res.loss < float(loss_curve(p, np.full(200, 0.1))[-1])
(True, (200,), True)
"""

from ..optim import KKT_TOLERANCE, lbfgsb, projected_gradient
from .batch import FewestSteps, fewest_steps, integer_batches
from .chains import horizon_keys, optimize_schedules
from .controls import BETA_MAX, CONTROLS, Batch, Control, Momentum, Rate, project_budget
from .grid import segment_index
from .result import ScheduleResult, load_schedule
from .solver import best_constant_rate, optimize_schedule

__all__ = [
    "ScheduleResult",
    "Control",
    "Rate",
    "Batch",
    "Momentum",
    "CONTROLS",
    "BETA_MAX",
    "KKT_TOLERANCE",
    "optimize_schedule",
    "optimize_schedules",
    "segment_index",
    "projected_gradient",
    "lbfgsb",
    "best_constant_rate",
    "horizon_keys",
    "load_schedule",
    "integer_batches",
    "project_budget",
    "FewestSteps",
    "fewest_steps",
]
