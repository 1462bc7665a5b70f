"""Optimal control of the schedule (docs/theory.md §6): one solver over composable controls.

- :mod:`~rfmodel.control.solver`: :func:`optimize_schedule` (L-BFGS-B on log L(T) with the
  adjoint gradient; budgets by an augmented Lagrangian) and :func:`best_constant_rate`;
- :mod:`~rfmodel.control.controls`: the controls (rate, batch with its sample budget, momentum),
  each a :class:`Control` block with its bounds, coordinates and KKT residual;
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
from .controls import BETA_MAX, CONTROLS, Control, project_budget
from .grid import segment_index
from .result import ScheduleResult, load_schedule
from .solver import best_constant_rate, optimize_schedule

__all__ = [
    "ScheduleResult",
    "Control",
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
