"""The theory brought to real training runs: logged curves (:mod:`~rfmodel.practice.curves`),
the model fitted to them (:mod:`~rfmodel.practice.fit`) and the schedule advice drawn from the
fit (:mod:`~rfmodel.practice.advise`)."""

from .advise import ADVISE_FAMILIES, Advice, advise, advise_runs, pilot_status
from .curves import MIN_POINTS, Run, read_curves, validate_runs, write_curves
from .fit import MAX_MODEL_STEPS, MODEL, FitResult, fit_curves, synthetic_runs
from .pilot import Pilot, plan_pilots, write_plan

__all__ = [
    "Run",
    "read_curves",
    "write_curves",
    "validate_runs",
    "MIN_POINTS",
    "FitResult",
    "fit_curves",
    "synthetic_runs",
    "MODEL",
    "MAX_MODEL_STEPS",
    "Advice",
    "advise",
    "advise_runs",
    "pilot_status",
    "ADVISE_FAMILIES",
    "Pilot",
    "plan_pilots",
    "write_plan",
]
