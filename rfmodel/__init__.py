"""rfmodel: optimal learning-rate schedules for power-law random-feature models.

The layers, each importing only the ones above it in this list:

- :mod:`rfmodel.problem`: :class:`Problem` (spectrum, target, noise, finite-N models);
- :mod:`rfmodel.dynamics`: the exact loss curve and its adjoint (:func:`loss_curve`);
- :mod:`rfmodel.schedules`: the practitioners' families, optax export, fair tuning, horizon
  transfer;
- :mod:`rfmodel.control`: the optimal schedule (:func:`optimize_schedule`);
- :mod:`rfmodel.practice`: the model fitted to logged training curves and the advice drawn from it;
- :mod:`rfmodel.experiments`, :mod:`rfmodel.figures`, :mod:`rfmodel.cli`: the experiments, the
  figures and the command line.

The names below are importable from the top level (``from rfmodel import optimize_schedule``);
the modules behind the heavier ones load on first use.

rfmodel computes in float64 inside its own calls and leaves JAX's global configuration alone:
importing it does not enable ``jax_enable_x64`` (see :mod:`rfmodel._x64`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import dynamics
from .dynamics import loss_curve, segment_losses
from .problem import Problem, TheoryExponents

__version__ = "0.2.0"

#: Public names loaded on first access: name -> module.
_LAZY = {
    "optimize_schedule": "rfmodel.control",
    "optimize_schedules": "rfmodel.control",
    "best_constant_rate": "rfmodel.control",
    "ScheduleResult": "rfmodel.control",
    "tune": "rfmodel.schedules",
    "to_optax": "rfmodel.schedules",
    "to_optax_sgd": "rfmodel.schedules",
    "FAMILIES": "rfmodel.schedules",
    "Run": "rfmodel.practice",
    "read_curves": "rfmodel.practice",
    "write_curves": "rfmodel.practice",
    "fit_curves": "rfmodel.practice",
    "FitResult": "rfmodel.practice",
    "advise": "rfmodel.practice",
    "Advice": "rfmodel.practice",
}
_SUBMODULES = ("control", "schedules", "practice", "simulate", "results", "scaling")

__all__ = [
    "Problem",
    "TheoryExponents",
    "loss_curve",
    "segment_losses",
    "dynamics",
    # loaded on first use (_LAZY, _SUBMODULES)
    "optimize_schedule",
    "optimize_schedules",
    "best_constant_rate",
    "ScheduleResult",
    "tune",
    "to_optax",
    "to_optax_sgd",
    "FAMILIES",
    "Run",
    "read_curves",
    "write_curves",
    "fit_curves",
    "FitResult",
    "advise",
    "Advice",
    "control",
    "schedules",
    "practice",
    "simulate",
    "results",
    "scaling",
    "__version__",
]

if TYPE_CHECKING:  # pragma: no cover
    from . import control, practice, results, scaling, schedules, simulate
    from .control import ScheduleResult, best_constant_rate, optimize_schedule, optimize_schedules
    from .practice import Advice, FitResult, Run, advise, fit_curves, read_curves, write_curves
    from .schedules import FAMILIES, to_optax, to_optax_sgd, tune


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module 'rfmodel' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
