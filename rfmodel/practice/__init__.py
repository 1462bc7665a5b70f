"""The theory brought to real training runs: logged curves (:mod:`~rfmodel.practice.curves`),
the model fitted to them (:mod:`~rfmodel.practice.fit`), the empirical loss laws
(:mod:`~rfmodel.practice.laws`), held-out prediction and its metrics
(:mod:`~rfmodel.practice.predict`) and the schedule advice drawn from the fit
(:mod:`~rfmodel.practice.advise`)."""

from .advise import ADVISE_FAMILIES, Advice, advise
from .curves import (
    LOSS_RANGE,
    MAX_STEP,
    MIN_POINTS,
    PiecewiseLinear,
    Run,
    read_curves,
    read_schedule,
    validate_runs,
    write_curves,
)
from .fit import MAX_MODEL_STEPS, MODEL, RESOLUTION, VERDICT, FitResult, fit_curves, synthetic_runs
from .laws import LAWS, METRICS, LawFit, LawRun, fit_law, law_curve, prediction_metrics
from .objective import HUBER_DELTA
from .predict import (
    MODELS,
    check_fit_runs,
    compare_laws,
    cross_validate,
    evaluate,
    fit_model,
    format_table,
    holdout,
    predict_run,
    quality,
    run_metrics,
    summarize,
    verdict,
)

__all__ = [
    "Run",
    "PiecewiseLinear",
    "read_curves",
    "read_schedule",
    "write_curves",
    "validate_runs",
    "MIN_POINTS",
    "MAX_STEP",
    "LOSS_RANGE",
    "FitResult",
    "fit_curves",
    "synthetic_runs",
    "MODEL",
    "MAX_MODEL_STEPS",
    "RESOLUTION",
    "VERDICT",
    "HUBER_DELTA",
    "LAWS",
    "METRICS",
    "LawRun",
    "LawFit",
    "fit_law",
    "law_curve",
    "prediction_metrics",
    "MODELS",
    "fit_model",
    "check_fit_runs",
    "quality",
    "verdict",
    "predict_run",
    "run_metrics",
    "evaluate",
    "holdout",
    "cross_validate",
    "compare_laws",
    "summarize",
    "format_table",
    "Advice",
    "advise",
    "ADVISE_FAMILIES",
]
