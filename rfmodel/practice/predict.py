"""Held-out prediction: fit some runs, predict others, and score the prediction with the field's
metrics (``r2, mae, rmse, prede, worste``), for rfmodel's fit and the empirical laws side by
side (docs/theory.md §9).

Every model is fitted to the same runs by the same objective (:mod:`~rfmodel.practice.
objective`) and scored on the same points: the logged losses of the predicted run at steps ≥ 1
(the laws are infinite at step 0). ``prede`` is the mean of |ŷ − y|/y over those points,
``worste`` its maximum (:func:`~rfmodel.practice.laws.prediction_metrics`).

>>> from rfmodel.practice import synthetic_runs
>>> runs = synthetic_runs(steps=200, every=10, noise=0.0)
>>> rows = compare_laws(runs, runs[:1], models=("annealing",))
>>> [(r["model"], r["run"]) for r in rows]
[('annealing', 'constant'), ('annealing', 'mean')]
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .curves import Run, validate_runs
from .fit import VERDICT, FitResult, fit_curves, systematic_rms
from .laws import LAWS, METRICS, LawFit, check_runs, fit_law, prediction_metrics
from .objective import HUBER_DELTA, check_delta

__all__ = [
    "MODELS",
    "METRICS",
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
    "comparison_rows",
    "summarize",
    "format_table",
]

#: The models of ``rfmodel fit --law``: rfmodel's fit and the two laws.
MODELS = ("rf", *LAWS)


def _check_models(models: Sequence[str]) -> tuple[str, ...]:
    models = tuple(models)
    bad = [m for m in models if m not in MODELS]
    if bad or not models:
        raise ValueError(f"models must be names from {MODELS}; got {list(models)}")
    return models


def check_fit_runs(models: Sequence[str], runs: Sequence[Run], source: str = "curves") -> None:
    """Whether every model can be fitted to ``runs`` (``ValueError`` naming the model and the
    problem, before any work)."""
    for m in _check_models(models):
        try:
            if m == "rf":
                validate_runs(runs, source=source)
            else:
                check_runs(m, list(runs))
        except ValueError as e:
            raise ValueError(f"{source}: cannot fit {m!r}: {e}") from None


def verdict(systematic: float, prede: float | None = None) -> str:
    """``good`` / ``usable`` / ``poor``: from the held-out ``prede`` when given (thresholds
    :data:`~rfmodel.practice.fit.VERDICT` ``["prede"]``), else from the systematic rms
    log-residual of the fit (``["systematic"]``)."""
    if prede is not None and math.isfinite(prede):
        good, usable = VERDICT["prede"]
        x = prede
    else:
        good, usable = VERDICT["systematic"]
        x = systematic
    return "good" if x <= good else "usable" if x <= usable else "poor"


def quality(fit: FitResult | LawFit, runs: Sequence[Run]) -> dict[str, Any]:
    """In-sample quality of a fit on its runs (steps ≥ 1): ``rms`` log-residual (root mean
    square over runs), ``systematic`` (:func:`~rfmodel.practice.fit.systematic_rms`) and its
    ``verdict``."""
    res, idx = [], []
    for i, r in enumerate(runs):
        st, y = r.points
        ok = st > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            res.append(np.log(predict_run(fit, r, st[ok])) - np.log(y[ok]))
        idx.append(np.full(int(ok.sum()), i))
    r, ri = np.concatenate(res), np.concatenate(idx)
    r = np.where(np.isfinite(r), r, 10.0)
    rms = math.sqrt(float(np.mean([np.mean(r[ri == i] ** 2) for i in np.unique(ri)])))
    sysr = systematic_rms(r, ri)
    return {"rms": rms, "systematic": sysr, "verdict": verdict(sysr)}


def fit_model(
    model: str, runs: Sequence[Run], *, huber_delta: float | str = HUBER_DELTA, **kwargs: Any
) -> FitResult | LawFit:
    """Fit ``model`` (``"rf"``, ``"mpl"`` or ``"annealing"``) to ``runs``: :func:`fit_curves`
    or :func:`~rfmodel.practice.laws.fit_law`, with the same Huber scale; ``kwargs`` go to
    that function."""
    _check_models([model])
    if model == "rf":
        return fit_curves(runs, huber_delta=huber_delta, **kwargs)
    return fit_law(model, list(runs), huber_delta=huber_delta, **kwargs)


def predict_run(fit: FitResult | LawFit, run: Run, steps=None) -> np.ndarray:
    """The fitted model's loss at ``run``'s logged steps (or ``steps``), float64."""
    if isinstance(fit, FitResult):
        return fit.predict(run, steps=steps)
    return fit.predict(run, run.points[0] if steps is None else steps)


def run_metrics(fit: FitResult | LawFit, run: Run) -> dict[str, float]:
    """:func:`~rfmodel.practice.laws.prediction_metrics` of ``fit`` on the logged losses of
    ``run`` at steps ≥ 1."""
    st, y = run.points
    ok = st > 0
    if not np.any(ok):
        raise ValueError(f"run {run.name!r}: no logged loss at a step >= 1 to predict")
    pred = predict_run(fit, run, st[ok])
    if not np.all(np.isfinite(pred)):
        return {k: math.inf if k != "r2" else -math.inf for k in METRICS}
    return prediction_metrics(y[ok], pred)


def evaluate(
    fits: dict[str, FitResult | LawFit], runs: Sequence[Run], *, split: str = "test"
) -> list[dict[str, Any]]:
    """Rows ``{"model", "run", "split", r2, mae, rmse, prede, worste}``: every fit on every
    run."""
    rows = []
    for name, f in fits.items():
        for r in runs:
            rows.append({"model": name, "run": r.name, "split": split, **run_metrics(f, r)})
    return rows


def _fit_all(models, runs, huber_delta, fit_kwargs) -> tuple[dict, dict[str, float]]:
    fits, seconds = {}, {}
    for m in models:
        t0 = time.perf_counter()
        fits[m] = fit_model(m, runs, huber_delta=huber_delta, **fit_kwargs.get(m, {}))
        seconds[m] = time.perf_counter() - t0
    return fits, seconds


def holdout(
    runs: Sequence[Run],
    names: Sequence[str],
    *,
    models: Sequence[str] = ("rf",),
    huber_delta: float | str = HUBER_DELTA,
    fit_kwargs: dict[str, dict[str, Any]] | None = None,
) -> tuple[dict[str, FitResult | LawFit], list[dict[str, Any]]]:
    """Fit ``models`` on the runs not in ``names`` and predict the runs in ``names``.
    Returns (fits, rows of :func:`evaluate`). ``ValueError`` names an unknown run or a
    training set that cannot be fitted (fewer than 2 runs, one schedule)."""
    models = _check_models(models)
    check_delta(huber_delta)
    known = [r.name for r in runs]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(
            f"--holdout: runs to hold out must be names from {known}; got {list(names)}"
        )
    train = [r for r in runs if r.name not in names]
    test = [r for r in runs if r.name in names]
    validate_runs(train, source="--holdout: the runs left to fit")
    fits, _ = _fit_all(models, train, huber_delta, fit_kwargs or {})
    return fits, evaluate(fits, test, split="holdout")


def cross_validate(
    runs: Sequence[Run],
    *,
    models: Sequence[str] = ("rf",),
    huber_delta: float | str = HUBER_DELTA,
    fit_kwargs: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Leave-one-run-out: for each run, fit ``models`` on the others and predict it (needs at
    least 3 runs; a run whose removal leaves a set that cannot be fitted is refused before
    any work, naming it). Rows of :func:`evaluate` with split ``"cv"``."""
    models = _check_models(models)
    check_delta(huber_delta)
    if len(runs) < 3:
        raise ValueError(
            f"--cv: leave-one-run-out needs at least 3 runs (2 left to fit); got {len(runs)}"
        )
    for r in runs:
        validate_runs(
            [q for q in runs if q is not r], source=f"--cv: the runs left without {r.name!r}"
        )
    rows = []
    for r in runs:
        fits, _ = _fit_all(models, [q for q in runs if q is not r], huber_delta, fit_kwargs or {})
        rows += evaluate(fits, [r], split="cv")
    return rows


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per model, the mean of each metric over its rows (``worste``: the maximum)."""
    out: dict[str, dict[str, float]] = {}
    for m in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == m and r["run"] != "mean"]
        out[m] = {
            k: float((np.max if k == "worste" else np.mean)([r[k] for r in mine])) for k in METRICS
        }
    return out


def compare_laws(
    fit_runs: Sequence[Run],
    test_runs: Sequence[Run],
    *,
    models: Sequence[str] = MODELS,
    huber_delta: float | str = HUBER_DELTA,
    fit_kwargs: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """rfmodel's fit and the empirical laws fitted to ``fit_runs`` by the same objective, each
    predicting every run of ``test_runs``.

    Returns rows ``{"model", "run", r2, mae, rmse, prede, worste, "seconds"}``: one per
    (model, test run), then per model a row with ``run = "mean"`` (metrics averaged over the
    test runs, ``worste`` their maximum; ``seconds``: the fit's wall time).

    On the advice benchmark's suite (docs/theory.md §9), with each run's exact schedule::

        s = rfmodel.experiments.advice.suite("chars", "results")
        fit = [r.with_rates(s["lr"][r.name]) for r in s["fit"]]
        test = [r.with_rates(s["lr"][r.name]) for r in s["test"]]
        rows = compare_laws(fit, test)
    """
    models = _check_models(models)
    check_delta(huber_delta)
    _check_test_runs(test_runs)
    fits, seconds = _fit_all(models, fit_runs, huber_delta, fit_kwargs or {})
    return comparison_rows(fits, test_runs, seconds)


def _check_test_runs(test_runs: Sequence[Run]) -> None:
    if (
        isinstance(test_runs, Run)
        or not isinstance(test_runs, Sequence)
        or not test_runs
        or not all(isinstance(r, Run) for r in test_runs)
    ):
        raise ValueError(
            "test_runs must be a non-empty sequence of Run (rfmodel.practice.read_curves); "
            f"got {type(test_runs).__name__}"
        )


def comparison_rows(
    fits: dict[str, FitResult | LawFit],
    test_runs: Sequence[Run],
    seconds: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """The rows of :func:`compare_laws` for fits made already (``{model: fit}``, e.g. by
    :func:`fit_model`), with each fit's wall time ``seconds[model]`` (default nan)."""
    if (
        not isinstance(fits, dict)
        or not fits
        or not all(isinstance(f, FitResult | LawFit) for f in fits.values())
    ):
        raise ValueError(
            "fits must be a non-empty dict {model: FitResult or LawFit} (fit_model's results); "
            f"got {type(fits).__name__}"
        )
    _check_test_runs(test_runs)
    rows = []
    for m, f in fits.items():
        sec = float((seconds or {}).get(m, math.nan))
        mine = evaluate({m: f}, test_runs)
        for r in mine:
            r.pop("split")
            r["seconds"] = sec
        rows += mine
        rows.append({"model": m, "run": "mean", **summarize(mine)[m], "seconds": sec})
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Text lines of a metrics table (model, run, the five metrics; prede and worste in %)."""
    out = [f"{'model':10s} {'run':22s} {'r2':>8s} {'mae':>10s} {'rmse':>10s} {'prede':>8s} "
           f"{'worste':>8s}"]  # fmt: skip
    for r in rows:
        out.append(
            f"{r['model']:10s} {str(r['run'])[:22]:22s} {r['r2']:8.4f} {r['mae']:10.4g} "
            f"{r['rmse']:10.4g} {100 * r['prede']:7.3f}% {100 * r['worste']:7.3f}%"
        )
    return out
