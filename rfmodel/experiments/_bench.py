"""The practitioner's benchmark of schedule advice: real tasks, a pilot budget, paired seeds.

A practitioner who wants a learning-rate schedule for a run of T updates first spends a small
*pilot budget*: at most :data:`MAX_PILOTS` runs of at most T/4 steps each. This module measures
what an advice design does with that budget, against what practitioners do with the same pilots
and against schedules tuned at T:

1. **pilots** (:func:`pilots`): the runs of a *pilot plan* (a list of specs, a parameter: the
   advice designer chooses it; :data:`DEFAULT_PILOTS` is an LR sweep of cosine runs over rates a
   factor 3 apart around the task's nominal rate, and one constant run) at the pilot horizon T0,
   all with the one ``pilot_seed``. :func:`check_pilot_budget` enforces the budget.
2. **advised** (:func:`run_advised`): the advice is a pluggable callable
   ``advise_fn(pilots: list[rfmodel.fit.Run], T: int) -> dict`` returning at least ``{"lr":
   per-update rates (T,), "predicted_final": float or None}``; :func:`current_advice` is today's
   ``rfmodel.fit.fit_curves`` + ``rfmodel.fit.advise``. It is called for T = 4·T0 and 16·T0
   (``horizons``) and its schedule is trained on every evaluation seed.
3. **practitioner lines** (a) (:func:`run_practitioner`), from the same pilots: cosine and WSD
   (linear decay over the last 20%) at the *best pilot peak* (the peak rate of the pilot with the
   lowest final loss among the longest pilots), ``held`` (the same peak at T) and
   ``transfer`` (peak × (T/T0)^(−1/2), the textbook rate of SGD for a fixed horizon, η ∝ 1/√T;
   the exponent is ``transfer_exponent``).
4. **oracle lines** (b) (:func:`run_oracle`): constant, cosine and WSD with the peak tuned on a
   geometric grid at T (and WSD's decay fraction on a small grid), on the ``tuning_seeds``
   (objective: the mean final loss over them; a diverged run counts as inf). A grid whose best
   point sits at an edge is extended past that edge until the best point is interior
   (:func:`tune_grid`; the extensions are recorded; a decay fraction of 1 is the end of its
   range); then the tuned schedules are trained on every evaluation seed.
5. :func:`evaluate_cell`: per line the final loss (mean ± SE over the evaluation seeds where it
   trained) and the seeds it diverged on (:func:`diverged`: a final loss not finite or above
   the initial one), the paired ratio advised / line with a 95% t-interval on the log ratios
   over the seeds where both trained, with both divergence counts (:func:`compare`; the advice
   beats a line when it diverged on fewer seeds, or as often with the interval below 1), the
   tuning cost (runs × steps), and whether the advice's predicted final loss is within 3% of
   the measured mean (never when the advice diverged on a seed).

Every evaluation seed draws the same initialization and minibatches for every line (paired);
evaluation, tuning and pilot seeds are disjoint (:func:`check_seeds`). Each stage is a cached
result (:mod:`rfmodel.results`) keyed by the full configuration it depends on (the oracle does
not depend on the pilots or the advice; the practitioner lines not on the advice), so a new
advice design recomputes only its own stage.

Also a **suite of logged curves** for judging fits (:func:`run_suite`, :func:`suite_runs`): per
task a fit set (constant, cosine and a two-stage constant run at T1 = T0) and a test set
(constant and cosine at 4·T1, WSD at T1 and 4·T1), each with its exact per-update rates and the
losses of every suite seed; and the laws comparison on it (:func:`run_laws`): rfmodel's fit,
the Multi-Power Law and the LR-annealing law fitted to the fit set, each predicting the test set.

A task entry (``task``) is ``{"name", "net": load_task config, "T0", "every", "lr": nominal
rate, "group", "real"}``; the benchmark settings (``bench``) are those of
:func:`rfmodel.experiments.advice.config`.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..practice.fit import FIT_VERSION
from ..practice.pilot import MAX_PILOTS, SWEEP_FACTOR
from ..results import config_key, load_valid, save_result

__all__ = [
    "GROUP",
    "MAX_PILOTS",
    "DEFAULT_PILOTS",
    "PRACTITIONER",
    "ORACLE",
    "LINES",
    "ADVICE",
    "schedule",
    "pilot_steps",
    "check_pilot_budget",
    "check_seeds",
    "horizons",
    "as_run",
    "transfer_peak",
    "best_pilot",
    "current_advice",
    "robust_advice",
    "resolve_advice",
    "mean_se",
    "paired_ratio",
    "diverged",
    "compare",
    "tune_grid",
    "tune_wsd",
    "Trainer",
    "fingerprint",
    "pilots",
    "run_practitioner",
    "run_oracle",
    "run_advised",
    "run_suite",
    "suite_runs",
    "suite_noise",
    "run_laws",
    "LAWS_VERSION",
    "load_stage",
    "evaluate_cell",
]

GROUP = "advice"
#: The default pilot plan: ``rfmodel pilot``'s (:func:`rfmodel.practice.plan_pilots`), rates as
#: multiples of the task's nominal rate: an LR sweep of cosine runs a factor 3 apart and one
#: constant run, all T0 long; not tuned to favour any line.
DEFAULT_PILOTS: tuple[dict[str, Any], ...] = (
    {"family": "cosine", "lr": 1 / SWEEP_FACTOR},
    {"family": "cosine", "lr": 1.0},
    {"family": "cosine", "lr": SWEEP_FACTOR},
    {"family": "constant", "lr": 1.0},
)
#: Practitioner lines (a): from the best pilot peak, held at T or transferred.
PRACTITIONER = ("cosine_held", "wsd_held", "cosine_transfer", "wsd_transfer")
#: Oracle lines (b): tuned at T.
ORACLE = ("constant", "cosine", "wsd")
#: Every line of a cell, the advised schedule first.
LINES = ("advised", *PRACTITIONER, *(f"oracle_{f}" for f in ORACLE))
#: Schedule families of :func:`schedule` (and of pilot specs).
FAMILIES = ("constant", "cosine", "wsd", "linear", "two_stage")
#: WSD decay of the practitioner lines, the suite and the default WSD.
WSD_DECAY = 0.2
#: Relative tolerance of "the predicted final loss is right".
PREDICTION_TOL = 0.03
#: Tolerance of "advised matches the oracle": advised ≤ (1 + tol) × best tuned.
ORACLE_TOL = 0.01


# ----------------------------------------------------------------------------- schedules
def schedule(family: str, peak: float, T: int, **kw: Any) -> np.ndarray:
    """Per-update rates (T,) float64 of ``family`` with peak rate ``peak``.

    ``constant``; ``cosine`` (to 0 at T); ``wsd`` (linear decay over the last ``decay``
    fraction, default 0.2: ``rfmodel.schedules.wsd``); ``linear`` (to 0 at T); ``two_stage``
    (``peak`` until ``at``·T, default 0.5, then ``drop``·peak, default 0.25).
    """
    from ..schedules import as_array, cosine, linear, wsd

    T = int(T)
    if family == "constant":
        return np.full(T, float(peak))
    if family == "cosine":
        return np.asarray(as_array(cosine(float(peak), T), T), np.float64)
    if family == "wsd":
        decay = float(kw.get("decay", WSD_DECAY))
        return np.asarray(as_array(wsd(float(peak), T, decay=decay), T), np.float64)
    if family == "linear":
        return np.asarray(as_array(linear(float(peak), T), T), np.float64)
    if family == "two_stage":
        at, drop = float(kw.get("at", 0.5)), float(kw.get("drop", 0.25))
        out = np.full(T, float(peak))
        out[int(round(at * T)) :] *= drop
        return out
    raise ValueError(f"schedule family must be one of {', '.join(FAMILIES)}; got {family!r}")


def _spec_kwargs(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k not in ("family", "lr", "length", "name")}


def pilot_steps(spec: dict[str, Any], T0: int) -> int:
    """Steps of one pilot spec: ``length`` (fraction of T0, default 1) × T0."""
    return int(round(float(spec.get("length", 1.0)) * int(T0)))


def _pilot_name(i: int, spec: dict[str, Any]) -> str:
    return str(spec.get("name") or f"p{i}_{spec['family']}_{float(spec['lr']):.4g}")


def check_pilot_budget(plan: Sequence[dict[str, Any]], T0: int, Ts: Sequence[int]) -> None:
    """Raise ``ValueError`` (naming the pilot budget) unless the plan has 1 to
    :data:`MAX_PILOTS` runs, each a known family with a rate > 0 and at most min(Ts)/4 steps."""
    plan = list(plan)
    if not 1 <= len(plan) <= MAX_PILOTS:
        raise ValueError(
            f"pilot budget: at most {MAX_PILOTS} pilot runs (and at least 1); the plan has "
            f"{len(plan)}"
        )
    T = int(min(Ts))
    for i, spec in enumerate(plan):
        if not isinstance(spec, dict) or spec.get("family") not in FAMILIES:
            raise ValueError(
                f"pilot plan: pilot {i} must be a dict with family in {FAMILIES}; got {spec!r}"
            )
        lr = float(spec.get("lr", math.nan))
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"pilot plan: pilot {i} needs a rate lr > 0; got {spec!r}")
        n = pilot_steps(spec, T0)
        if n < 1 or n > T // 4:
            raise ValueError(
                f"pilot budget: pilot {i} ({spec['family']}) runs {n} steps; at most T/4 = "
                f"{T // 4} steps for the horizon T = {T}"
            )


def check_seeds(bench: dict[str, Any]) -> None:
    """Evaluation, tuning, pilot and suite seeds must be disjoint (``ValueError``)."""
    groups = {
        "eval_seeds": set(bench["eval_seeds"]),
        "tuning_seeds": set(bench["tuning_seeds"]),
        "pilot_seed": {bench["pilot_seed"]},
        "suite seeds": set(bench.get("suite", {}).get("seeds", ())),
    }
    if len(groups["eval_seeds"]) < 2:
        raise ValueError("eval_seeds: need at least 2 paired evaluation seeds")
    names = list(groups)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            common = groups[a] & groups[b]
            if common:
                raise ValueError(f"seeds: {a} and {b} share {sorted(common)}; keep them apart")


def horizons(task: dict[str, Any], bench: dict[str, Any]) -> list[int]:
    """The advice horizons T = k·T0 for k in ``bench["horizons"]``."""
    return [int(k) * int(task["T0"]) for k in bench["horizons"]]


def _every(task: dict[str, Any], bench: dict[str, Any], T: int) -> int:
    """Logging interval of the runs at horizon T (``log_points`` points per run)."""
    every = int(T) // int(bench["log_points"])
    if every < 1 or int(T) % every:
        raise ValueError(f"T={T} must be a multiple of log_points={bench['log_points']}")
    return every


def as_run(name: str, lr: np.ndarray, loss: np.ndarray, every: int, batch: float):
    """A :class:`rfmodel.fit.Run` from per-update rates (T,) and losses logged every ``every``
    updates (T/every + 1,): ``lr[i]`` of the Run is the rate of update ``step[i]`` (the last
    update's rate at step T)."""
    from ..fit import Run

    lr = np.asarray(lr, np.float64)
    steps = np.arange(0, lr.size + 1, int(every))
    return Run(
        name,
        steps.astype(np.float64),
        lr[np.minimum(steps, lr.size - 1)],
        np.asarray(loss, np.float64),
        np.full(steps.size, float(batch)),
    )


def transfer_peak(peak: float, T: int, T0: int, exponent: float = 0.5) -> float:
    """The usual horizon transfer of a peak rate found at T0: peak · (T/T0)^(−exponent)."""
    return float(peak) * (int(T) / int(T0)) ** (-float(exponent))


def best_pilot(runs, lengths: Sequence[int]) -> int:
    """Index of the pilot with the lowest final loss among the longest pilots."""
    longest = max(lengths)
    idx = [i for i, n in enumerate(lengths) if n == longest]
    finals = [float(runs[i].loss[-1]) if np.isfinite(runs[i].loss[-1]) else math.inf for i in idx]
    return idx[int(np.argmin(finals))]


# ----------------------------------------------------------------------------- advice
_FITS: dict[str, Any] = {}


def _fit(runs, fit_kwargs: dict[str, Any]):
    """``rfmodel.fit.fit_curves`` memoized on the runs' contents (the same pilots at two T)."""
    from ..fit import fit_curves

    h = hashlib.sha256(json.dumps(fit_kwargs, sort_keys=True).encode())
    for r in runs:
        h.update(r.name.encode())
        for x in (r.step, r.lr, r.loss, r.batch):
            h.update(np.ascontiguousarray(x, np.float64).tobytes())
    key = h.hexdigest()
    if key not in _FITS:
        if len(_FITS) >= 8:
            _FITS.clear()
        _FITS[key] = fit_curves(runs, **fit_kwargs)
    return _FITS[key]


def current_advice(
    runs, T: int, *, fit: dict[str, Any] | None = None, advise: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Today's advice: ``rfmodel.fit.fit_curves(runs, **fit)`` then
    ``rfmodel.fit.advise(fit, T, **advise)`` (the fit is reused across horizons). Pilots that
    diverged (a loss that is not finite) are left out of the fit, as a practitioner would.

    Returns ``{"lr", "predicted_final", "predicted", "fit", "table", "pilots_used"}``.
    """
    from ..fit import advise as advise_fn

    kept = [r for r in runs if np.all(np.isfinite(r.loss))]
    f = _fit(kept, dict(fit or {}))
    adv = advise_fn(f, int(T), **(advise or {}))
    return _advice_record(adv, f, kept)


def _advice_record(adv, f, kept) -> dict[str, Any]:
    """What every advice design returns: the rates, the predictions, the fit, the table and
    the pilots fitted."""
    return {
        "lr": np.asarray(adv.lr, np.float64),
        "predicted_final": float(adv.loss),
        "predicted": np.asarray(adv.predicted, np.float64),
        "fit": f.to_dict(),
        "table": adv.table(),
        "pilots_used": [r.name for r in kept],
    }


def robust_advice(
    runs,
    T: int,
    *,
    fit: dict[str, Any] | None = None,
    advise: dict[str, Any] | None = None,
    version: int = 1,
) -> dict[str, Any]:
    """The advice of :func:`rfmodel.practice.advise` given the pilots themselves (leave-one-out
    ensemble, anchored peaks, cap at the largest stable pilot rate, refusal): the fit uses the
    pilots that did not diverge; the advice sees all of them.

    Returns ``{"lr", "predicted_final", "predicted", "fit", "table", "choice", "reason",
    "refused", "anchor", "loo_prede", "pilots_used"}``.
    """
    from ..practice import advise as advise_fn
    from ..practice import pilot_status

    status = pilot_status(runs)
    kept = [r for r in runs if status[r.name] == "ok"]
    f = _fit(kept, dict(fit or {}))
    adv = advise_fn(f, int(T), runs=list(runs), fit_kwargs=dict(fit or {}), **(advise or {}))
    return {
        **_advice_record(adv, f, kept),
        "choice": adv.choice,
        "reason": adv.reason,
        "refused": adv.refused,
        "anchor": adv.anchor,
        "calibration": adv.calibration,
        "status": adv.status,
        "loo_prede": adv.loo_prede,
        "candidates": {n: c.params for n, c in adv.candidates.items()},
    }


#: Advice designs by name (``{"name": ..., "kwargs": {...}}`` in a config); any other name is
#: ``"package.module:function"``.
ADVICE: dict[str, Callable[..., dict[str, Any]]] = {
    "current": current_advice,
    "robust": robust_advice,
}


def resolve_advice(spec: dict[str, Any]) -> Callable[[list, int], dict[str, Any]]:
    """The callable of an advice spec: ``spec["fn"]`` if given (a callable; ``spec["name"]`` is
    then its label), else :data:`ADVICE` ``[name]`` or ``module:function``; bound to
    ``spec["kwargs"]``."""
    fn = spec.get("fn")
    if fn is None:
        name = str(spec["name"])
        if name in ADVICE:
            fn = ADVICE[name]
        elif ":" in name:
            mod, attr = name.split(":", 1)
            fn = getattr(importlib.import_module(mod), attr)
        else:
            raise ValueError(
                f"advice: unknown name {name!r}; one of {sorted(ADVICE)} or 'module:function'"
            )
    kwargs = dict(spec.get("kwargs") or {})
    return functools.partial(fn, **kwargs) if kwargs else fn


def _advice_key(spec: dict[str, Any]) -> dict[str, Any]:
    return {"name": str(spec["name"]), "kwargs": spec.get("kwargs") or {}}


def _check_advice(out: Any, T: int) -> tuple[np.ndarray, float | None]:
    if not isinstance(out, dict) or "lr" not in out:
        raise ValueError("advice: advise_fn must return a dict with 'lr' (and 'predicted_final')")
    lr = np.asarray(out["lr"], np.float64)
    if lr.shape != (T,) or not np.all(np.isfinite(lr)) or np.any(lr < 0):
        raise ValueError(f"advice: 'lr' must be {T} finite rates >= 0; got shape {lr.shape}")
    pred = out.get("predicted_final")
    return lr, (None if pred is None else float(pred))


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if k in ("lr", "predicted", "predicted_final"):
            continue
        try:
            json.dumps(v, allow_nan=True)
        except (TypeError, ValueError):
            continue
        out[k] = v
    return out


# ----------------------------------------------------------------------------- statistics
def mean_se(x: Sequence[float]) -> dict[str, float]:
    """Mean and standard error (sd / √n, ddof 1) of final losses; inf when any is inf or there
    are none."""
    x = np.asarray(x, np.float64)
    if x.size == 0 or not np.all(np.isfinite(x)):
        return {"mean": math.inf, "se": math.inf, "n": int(x.size)}
    se = float(np.std(x, ddof=1) / math.sqrt(x.size)) if x.size > 1 else math.nan
    return {"mean": float(np.mean(x)), "se": se, "n": int(x.size)}


def paired_ratio(num: Sequence[float], den: Sequence[float], level: float = 0.95) -> dict:
    """Paired ratio num/den over seeds: the geometric mean of the per-seed ratios and a
    t-interval on the log ratios (n − 1 degrees of freedom) at ``level``.

    Returns ``{"ratio", "lo", "hi", "log_mean", "log_se", "n"}`` (inf/nan when a loss is not
    finite; a zero spread gives a zero-width interval).
    """
    from scipy.stats import t as student

    a, b = np.asarray(num, np.float64), np.asarray(den, np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size < 2:
        raise ValueError("paired_ratio: two 1-D arrays of equal length >= 2 (one value per seed)")
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(a) - np.log(b)
    n = int(a.size)
    if not np.all(np.isfinite(logs)):
        m = float(np.mean(logs)) if not np.any(np.isnan(logs)) else math.nan
        v = math.exp(m) if not math.isnan(m) else math.nan
        return {"ratio": v, "lo": v, "hi": v, "log_mean": m, "log_se": math.nan, "n": n}
    m = float(np.mean(logs))
    se = float(np.std(logs, ddof=1) / math.sqrt(n))
    q = float(student.ppf(0.5 + level / 2, n - 1))
    return {
        "ratio": math.exp(m),
        "lo": math.exp(m - q * se),
        "hi": math.exp(m + q * se),
        "log_mean": m,
        "log_se": se,
        "n": n,
    }


def diverged(losses) -> np.ndarray:
    """Per seed (rows of ``losses``, shape (seeds, points), the first column the initial loss):
    True where the run diverged, its final loss not finite or above its initial one (a loss
    that blew up to 1e13 without overflowing counts too).

    >>> diverged([[4.8, 2.0], [4.8, 1.7e13], [4.8, float("inf")]]).tolist()
    [False, True, True]
    """
    L = np.asarray(losses, np.float64)
    if L.ndim != 2 or L.shape[1] < 2:
        raise ValueError(f"losses must have shape (seeds, points >= 2); got {L.shape}")
    return ~np.isfinite(L[:, -1]) | (L[:, -1] > L[:, 0])


def compare(num, den, num_div, den_div, level: float = 0.95) -> dict:
    """Line ``num`` against line ``den`` over paired seeds, divergence apart: the
    :func:`paired_ratio` of the final losses on the seeds where both trained, with
    ``"diverged"``: (seeds num diverged on, seeds den diverged on) and ``"better"``: num is
    better when it diverged on fewer seeds, or as often with the ratio's interval below 1.

    >>> r = compare([1.0, 2.0, 9e9], [1.1, 2.2, 3.0], [False, False, True], [False] * 3)
    >>> round(r["ratio"], 4), r["n"], r["diverged"], r["better"]
    (0.9091, 2, (1, 0), False)
    """
    a, b = np.asarray(num, np.float64), np.asarray(den, np.float64)
    da, db = np.asarray(num_div, bool), np.asarray(den_div, bool)
    both = ~(da | db)
    if both.sum() >= 2:
        r = paired_ratio(a[both], b[both], level)
    else:
        nan = math.nan
        r = {"ratio": nan, "lo": nan, "hi": nan, "log_mean": nan, "log_se": nan}
        r["n"] = int(both.sum())
    r["diverged"] = (int(da.sum()), int(db.sum()))
    na, nb = r["diverged"]
    r["better"] = bool(na < nb or (na == nb and r["hi"] < 1))
    return r


# ----------------------------------------------------------------------------- grid tuning
def tune_grid(
    evaluate: Callable[[list[float]], Sequence[float]],
    values: Sequence[float],
    *,
    ratio: float,
    step: int = 2,
    max_extend: int = 12,
    lo: float = 0.0,
    hi: float = math.inf,
) -> dict[str, Any]:
    """Minimize ``evaluate`` (losses of a list of values; inf = diverged) over a geometric grid,
    extending it past an edge while the best value sits there.

    Starting from ``values``, while the best (lowest) loss is at the grid's first or last value
    (or every loss is inf: then downward), ``step`` more values spaced by ``ratio`` are added
    beyond that edge (clipped to ``[lo, hi]``). The result's best value is always interior, or at
    ``lo``/``hi`` (``at_bound``: the end of the range, e.g. a decay fraction of 1). Raises
    ``ValueError`` after ``max_extend`` added values with the best still at an edge.

    Returns ``{"best", "best_loss", "values", "losses", "extended", "at_bound", "evaluated"}``.
    """
    if ratio <= 1:
        raise ValueError(f"tune_grid: ratio must be > 1; got {ratio}")
    vals = sorted(float(v) for v in values)
    if len(vals) < 3 or len(set(vals)) != len(vals):
        raise ValueError(f"tune_grid: need at least 3 distinct starting values; got {values}")
    losses = [float(x) for x in evaluate(vals)]
    extended, at_bound = 0, False
    while True:
        L = np.array([x if np.isfinite(x) else math.inf for x in losses])
        finite = bool(np.any(np.isfinite(L)))
        i = int(np.argmin(L)) if finite else 0
        if finite and 0 < i < len(vals) - 1:
            break
        down = i == 0
        edge, bound = (vals[0], lo) if down else (vals[-1], hi)
        side = "lower" if down else "upper"
        if edge == bound:
            if finite:  # the end of the range: nothing lies beyond
                at_bound = True
                break
            raise ValueError(f"tune_grid: every value diverged, down to the bound {lo:.4g}")
        if extended >= max_extend:
            raise ValueError(
                f"tune_grid: the best value is still at the grid's {side} edge {edge:.4g} after "
                f"{extended} added values (grid {vals}, losses {losses})"
            )
        new = []
        for k in range(1, step + 1):
            v = edge / ratio**k if down else edge * ratio**k
            v = min(max(v, lo), hi)
            if v not in vals and v not in new:
                new.append(v)
        new_losses = [float(x) for x in evaluate(new)]
        extended += len(new)
        pairs = sorted(zip(vals + new, losses + new_losses, strict=True))
        vals, losses = [p[0] for p in pairs], [p[1] for p in pairs]
    return {
        "best": vals[i],
        "best_loss": float(L[i]),
        "values": vals,
        "losses": losses,
        "extended": extended,
        "at_bound": at_bound,
        "evaluated": len(vals),
    }


def tune_wsd(
    evaluate: Callable[[list[float], float], Sequence[float]],
    peaks: Sequence[float],
    decays: Sequence[float],
    *,
    ratio: float,
    decay_ratio: float = 2.0,
    step: int = 2,
    max_extend: int = 12,
    min_decay: float = 0.0,
) -> dict[str, Any]:
    """Tune WSD's (peak, decay fraction): for each decay fraction, :func:`tune_grid` over the peak
    (``peaks`` for the first, then the same number of points around the best peak so far); the
    decay grid itself is a :func:`tune_grid` of the per-decay best losses (ratio
    ``decay_ratio``, within (``min_decay``, 1]). ``evaluate(peaks, decay)`` gives losses.

    Returns ``{"best", "decay", "best_loss", "per_decay": {decay: tune_grid result}, "decays":
    tune_grid result of the decay grid, "evaluated": configurations trained}``.
    """
    per: dict[float, dict[str, Any]] = {}
    n = len(peaks)

    def at_decays(ds: list[float]) -> list[float]:
        out = []
        for d in ds:
            if per:
                best = min(per.values(), key=lambda r: r["best_loss"])["best"]
                grid = [best * ratio ** (k - (n - 1) / 2) for k in range(n)]
            else:
                grid = list(peaks)
            per[d] = tune_grid(
                lambda ps, d=d: evaluate(ps, d),
                grid,
                ratio=ratio,
                step=step,
                max_extend=max_extend,
            )
            out.append(per[d]["best_loss"])
        return out

    rd = tune_grid(
        at_decays, decays, ratio=decay_ratio, step=1, max_extend=max_extend, lo=min_decay, hi=1.0
    )
    d = rd["best"]
    return {
        "best": per[d]["best"],
        "decay": d,
        "best_loss": per[d]["best_loss"],
        "per_decay": {f"{k:.6g}": v for k, v in sorted(per.items())},
        "decays": rd,
        "evaluated": sum(v["evaluated"] for v in per.values()),
    }


# ----------------------------------------------------------------------------- training
class Trainer:
    """Trains rate arrays on seeds for one task (``rfmodel.experiments._nets``), ``group`` runs per
    ``vmap`` (padded: one compilation per horizon); counts run-steps and seconds."""

    def __init__(self, task: dict[str, Any]) -> None:
        from ._nets import load_task

        self.task = task
        self.model = load_task(task["net"])
        self.group = int(task.get("group", 5))
        self.run_steps = 0
        self.seconds = 0.0

    @property
    def fingerprint(self) -> str:
        return str(self.model["fingerprint"])

    @property
    def batch(self) -> float:
        return float(self.task["net"]["batch"])

    def __call__(self, lrs: Sequence[np.ndarray], seeds: Sequence[int], every: int) -> np.ndarray:
        """Losses (n, T/every + 1) of runs ``lrs[i]`` (all of one length T) with ``seeds[i]``;
        diverged runs are inf."""
        from ._nets import train

        t0 = time.perf_counter()
        lrs = [np.asarray(r, np.float64) for r in lrs]
        if len({r.size for r in lrs}) != 1:
            raise ValueError("Trainer: every run of one call must have the same length")
        G, out = self.group, []
        for i in range(0, len(lrs), G):
            rows, ss = list(lrs[i : i + G]), [int(s) for s in seeds[i : i + G]]
            n = len(rows)
            rows += [rows[-1]] * (G - n)
            ss += [ss[-1]] * (G - n)
            out.append(train(self.model, np.stack(rows), ss, int(every))[:n])
        res = np.concatenate(out)
        self.run_steps += len(lrs) * lrs[0].size
        self.seconds += time.perf_counter() - t0
        return np.where(np.isfinite(res), res, np.inf)


_TRAINERS: dict[str, Trainer] = {}


def _trainer(task: dict[str, Any]) -> Trainer:
    """One :class:`Trainer` per task config in this process (its compilations are reused)."""
    key = json.dumps(task, sort_keys=True)
    if key not in _TRAINERS:
        _TRAINERS[key] = Trainer(task)
    return _TRAINERS[key]


@functools.lru_cache(maxsize=32)
def _fingerprint_of(net_json: str) -> str:
    from ._nets import load_task

    return str(load_task(json.loads(net_json))["fingerprint"])


def fingerprint(task: dict[str, Any]) -> str:
    """The data fingerprint of a task (part of every cached result's key)."""
    return _fingerprint_of(json.dumps(task["net"], sort_keys=True))


# ----------------------------------------------------------------------------- cache
def _task_key(task: dict[str, Any]) -> dict[str, Any]:
    return {k: task[k] for k in ("name", "net", "T0", "every", "lr", "group")}


def _pilot_key(task, bench) -> dict[str, Any]:
    return {"plan": list(bench["pilots"]), "seed": bench["pilot_seed"]}


def _key(task, bench, stage: str, T: int | None = None, advice=None) -> dict[str, Any]:
    """The configuration a stage's result answers (only what it depends on)."""
    key: dict[str, Any] = {"stage": stage, "task": _task_key(task), "data": fingerprint(task)}
    if T is not None:
        key["T"] = int(T)
        key["log_points"] = bench["log_points"]
    if stage == "pilots":
        key["pilots"] = _pilot_key(task, bench)
    elif stage == "practitioner":
        key["pilots"] = _pilot_key(task, bench)
        key["eval_seeds"] = list(bench["eval_seeds"])
        key["transfer_exponent"] = bench["transfer_exponent"]
    elif stage == "advised":
        key["pilots"] = _pilot_key(task, bench)
        key["eval_seeds"] = list(bench["eval_seeds"])
        key["advice"] = _advice_key(advice)
        key["fit_version"] = FIT_VERSION
    elif stage == "oracle":
        key["eval_seeds"] = list(bench["eval_seeds"])
        key["tuning_seeds"] = list(bench["tuning_seeds"])
        key["grid"] = bench["grid"]
        key["wsd_decays"] = list(bench["wsd_decays"])
    elif stage == "suite":
        key["suite"] = bench["suite"]
    elif stage == "laws":
        key["suite"] = bench["suite"]
        key["version"] = LAWS_VERSION
        key["fit_version"] = FIT_VERSION
    return key


def _path(results_dir, task, key) -> Path:
    return Path(results_dir) / GROUP / f"{task['name']}_{key['stage']}_{config_key(key)}"


def load_stage(results_dir, task, bench, stage, T=None, advice=None):
    """``(arrays, metadata)`` of a saved stage, or None when it is not computed (yet)."""
    key = _key(task, bench, stage, T, advice)
    return load_valid(_path(results_dir, task, key), config=key)


def _stage(results_dir, task, bench, stage, compute, T=None, advice=None):
    got = load_stage(results_dir, task, bench, stage, T, advice)
    if got is None:
        key = _key(task, bench, stage, T, advice)
        arrays, meta = compute()
        save_result(_path(results_dir, task, key), arrays, meta, config=key)
        got = load_valid(_path(results_dir, task, key), config=key)
    return got


# ----------------------------------------------------------------------------- stages
def _check(task, bench) -> list[int]:
    Ts = horizons(task, bench)
    check_pilot_budget(bench["pilots"], task["T0"], Ts)
    check_seeds(bench)
    return Ts


def pilots(results_dir, task: dict[str, Any], bench: dict[str, Any]):
    """The pilot runs (computed and saved if missing) as ``(runs, lrs, lengths)``: a list of
    :class:`rfmodel.fit.Run`, their per-update rates and their lengths in steps."""
    _check(task, bench)
    plan = list(bench["pilots"])
    T0, every, nominal = int(task["T0"]), int(task["every"]), float(task["lr"])
    lengths = [pilot_steps(s, T0) for s in plan]
    lrs = [
        schedule(s["family"], float(s["lr"]) * nominal, n, **_spec_kwargs(s))
        for s, n in zip(plan, lengths, strict=True)
    ]
    for i, n in enumerate(lengths):
        if n % every:
            raise ValueError(f"pilot plan: pilot {i} has {n} steps, not a multiple of {every}")

    def compute():
        tr = _trainer(task)
        t0 = time.perf_counter()
        arrays = {}
        for n in sorted(set(lengths)):
            idx = [i for i, m in enumerate(lengths) if m == n]
            loss = tr([lrs[i] for i in idx], [bench["pilot_seed"]] * len(idx), every)
            for j, i in enumerate(idx):
                arrays[f"loss_{i}"] = loss[j]
        for i, lr in enumerate(lrs):
            arrays[f"lr_{i}"] = lr
        meta = {
            "names": [_pilot_name(i, s) for i, s in enumerate(plan)],
            "lengths": lengths,
            "run_steps": int(sum(lengths)),
            "seconds": time.perf_counter() - t0,
        }
        return arrays, meta

    arrays, meta = _stage(results_dir, task, bench, "pilots", compute)
    runs = [
        as_run(meta["names"][i], arrays[f"lr_{i}"], arrays[f"loss_{i}"], every, _batch(task))
        for i in range(len(plan))
    ]
    return runs, [arrays[f"lr_{i}"] for i in range(len(plan))], list(meta["lengths"])


def _batch(task) -> float:
    return float(task["net"]["batch"])


def run_practitioner(results_dir, task, bench, T: int):
    """Practitioner lines (a) at horizon T on every evaluation seed (saved)."""
    _check(task, bench)
    runs, _, lengths = pilots(results_dir, task, bench)
    b = best_pilot(runs, lengths)
    peak, T0 = float(np.max(runs[b].lr)), int(lengths[b])
    x = float(bench["transfer_exponent"])
    peaks = {
        "cosine_held": ("cosine", peak),
        "wsd_held": ("wsd", peak),
        "cosine_transfer": ("cosine", transfer_peak(peak, T, T0, x)),
        "wsd_transfer": ("wsd", transfer_peak(peak, T, T0, x)),
    }

    def compute():
        tr = _trainer(task)
        t0 = time.perf_counter()
        seeds = list(bench["eval_seeds"])
        lrs = [schedule(f, p, T) for f, p in peaks.values() for _ in seeds]
        loss = tr(lrs, seeds * len(peaks), _every(task, bench, T))
        arrays = {k: loss[i * len(seeds) : (i + 1) * len(seeds)] for i, k in enumerate(peaks)}
        meta = {
            "best_pilot": runs[b].name,
            "pilot_peak": peak,
            "pilot_T0": T0,
            "peaks": {k: v[1] for k, v in peaks.items()},
            "run_steps": len(lrs) * int(T),
            "seconds": time.perf_counter() - t0,
        }
        return arrays, meta

    return _stage(results_dir, task, bench, "practitioner", compute, T)


def run_oracle(results_dir, task, bench, T: int):
    """Oracle lines (b) at horizon T: grid-tuned on the tuning seeds, then trained on every
    evaluation seed (saved)."""
    _check(task, bench)

    def compute():
        tr = _trainer(task)
        t0 = time.perf_counter()
        every = _every(task, bench, T)
        g = bench["grid"]
        ratio, npts = float(g["ratio"]), int(g["points"])
        kw = {"ratio": ratio, "step": int(g["step"]), "max_extend": int(g["max_extend"])}
        grid = [float(task["lr"]) * ratio ** (k - (npts - 1) / 2) for k in range(npts)]
        tseeds = list(bench["tuning_seeds"])
        counts = {f: 0 for f in ORACLE}

        def objective(fam, decay=None):
            def f(peaks):
                lrs = [
                    schedule(fam, p, T, **({} if decay is None else {"decay": decay}))
                    for p in peaks
                    for _ in tseeds
                ]
                counts[fam] += len(lrs)
                fin = tr(lrs, tseeds * len(peaks), every)[:, -1].reshape(len(peaks), len(tseeds))
                return [float(np.mean(r)) if np.all(np.isfinite(r)) else math.inf for r in fin]

            return f

        tuned: dict[str, Any] = {}
        for fam in ("constant", "cosine"):
            r = tune_grid(objective(fam), grid, **kw)
            tuned[fam] = {"peak": r["best"], "grid": r}
        r = tune_wsd(
            lambda ps, d: objective("wsd", d)(ps),
            grid,
            list(bench["wsd_decays"]),
            min_decay=1.0 / T,
            **kw,
        )
        tuned["wsd"] = {"peak": r["best"], "decay": r["decay"], "grid": r}
        for fam in ORACLE:
            tuned[fam]["tuning_runs"] = counts[fam]
            tuned[fam]["tuning_run_steps"] = counts[fam] * int(T)
        seeds = list(bench["eval_seeds"])
        best = {
            f: schedule(
                f, tuned[f]["peak"], T, **({"decay": tuned[f]["decay"]} if f == "wsd" else {})
            )
            for f in ORACLE
        }
        loss = tr([best[f] for f in ORACLE for _ in seeds], seeds * len(ORACLE), every)
        arrays = {f: loss[i * len(seeds) : (i + 1) * len(seeds)] for i, f in enumerate(ORACLE)}
        meta = {
            "tuned": tuned,
            "run_steps": sum(counts.values()) * int(T) + len(ORACLE) * len(seeds) * int(T),
            "seconds": time.perf_counter() - t0,
        }
        return arrays, meta

    return _stage(results_dir, task, bench, "oracle", compute, T)


def _tuned_schedule(fam: str, tuned: dict[str, Any], T: int) -> np.ndarray:
    return schedule(
        fam, tuned["peak"], T, **({"decay": tuned["decay"]} if "decay" in tuned else {})
    )


def run_advised(results_dir, task, bench, T: int, advice: dict[str, Any]):
    """The advised schedule at horizon T on every evaluation seed (saved). An advice that raises
    (or returns bad rates) is saved as its error message: a measured failure.

    The cache key of an advice is its ``name`` and ``kwargs`` (not its code): when the code
    behind a name changes, give it a new name (e.g. ``"mine-v2"``) to recompute."""
    _check(task, bench)
    runs, _, _ = pilots(results_dir, task, bench)
    fn = resolve_advice(advice)

    def compute():
        t0 = time.perf_counter()
        try:
            out = fn(list(runs), int(T))
            lr, pred = _check_advice(out, int(T))
        except Exception as e:  # noqa: BLE001 (an advice that fails is a measured result)
            return {}, {"error": f"{type(e).__name__}: {e}", "seconds_advice": 0.0}
        t_adv = time.perf_counter() - t0
        seeds = list(bench["eval_seeds"])
        loss = _trainer(task)([lr] * len(seeds), seeds, _every(task, bench, T))
        arrays = {"loss": loss, "lr": lr}
        if out.get("predicted") is not None:
            arrays["predicted"] = np.asarray(out["predicted"], np.float64)
        meta = {
            "predicted_final": pred,
            "info": _jsonable(out),
            "seconds_advice": t_adv,
            "run_steps": len(seeds) * int(T),
            "seconds": time.perf_counter() - t0,
        }
        return arrays, meta

    return _stage(results_dir, task, bench, "advised", compute, T, advice)


def _suite_plan(task, bench) -> dict[str, tuple[str, str, int, dict]]:
    """name → (set, family, T, kwargs) of the suite."""
    s = bench["suite"]
    T1, long = int(task["T0"]), int(s["long"]) * int(task["T0"])
    two = {"at": float(s["two_stage"]["at"]), "drop": float(s["two_stage"]["drop"])}
    d = {"decay": float(s["wsd_decay"])}
    return {
        "constant": ("fit", "constant", T1, {}),
        "cosine": ("fit", "cosine", T1, {}),
        "two_stage": ("fit", "two_stage", T1, two),
        f"constant_{long}": ("test", "constant", long, {}),
        f"cosine_{long}": ("test", "cosine", long, {}),
        "wsd": ("test", "wsd", T1, d),
        f"wsd_{long}": ("test", "wsd", long, d),
    }


def run_suite(results_dir, task, bench):
    """The suite of logged curves for judging fits (saved): every run of :func:`_suite_plan` on
    every suite seed, logged every ``task["every"]`` updates, with its per-update rates."""
    check_seeds(bench)
    plan = _suite_plan(task, bench)
    peak = float(bench["suite"]["lr"]) * float(task["lr"])

    def compute():
        tr = _trainer(task)
        t0 = time.perf_counter()
        seeds = list(bench["suite"]["seeds"])
        arrays = {}
        for T in sorted({p[2] for p in plan.values()}):
            names = [k for k, p in plan.items() if p[2] == T]
            lrs = {k: schedule(plan[k][1], peak, T, **plan[k][3]) for k in names}
            loss = tr([lrs[k] for k in names for _ in seeds], seeds * len(names), task["every"])
            for i, k in enumerate(names):
                arrays[f"{k}_loss"] = loss[i * len(seeds) : (i + 1) * len(seeds)]
                arrays[f"{k}_lr"] = lrs[k]
        meta = {
            "sets": {k: p[0] for k, p in plan.items()},
            "peak": peak,
            "seeds": seeds,
            "every": int(task["every"]),
            "seconds": time.perf_counter() - t0,
        }
        return arrays, meta

    return _stage(results_dir, task, bench, "suite", compute)


def suite_runs(results_dir, task, bench, *, compute: bool = True) -> dict[str, Any] | None:
    """The suite as fit inputs: ``{"fit": [Run], "test": [Run], "lr": {name: per-update rates},
    "losses": {name: (seeds, points)}, "trained": {name: (seeds,) bool}, "seeds", "every"}``.
    A Run's losses are the mean over the seeds on which that run trained (``trained``: not
    :func:`diverged`, as a practitioner averages the runs that trained; a seed that blew up
    would dominate the mean); inf when none did. ``losses`` keeps every seed.
    ``compute=False``: None when not saved."""
    got = (
        run_suite(results_dir, task, bench)
        if compute
        else load_stage(results_dir, task, bench, "suite")
    )
    if got is None:
        return None
    arrays, meta = got
    out: dict[str, Any] = {"fit": [], "test": [], "lr": {}, "losses": {}, "trained": {}}
    for name, which in meta["sets"].items():
        lr, loss = arrays[f"{name}_lr"], arrays[f"{name}_loss"]
        ok = ~diverged(loss)
        out["lr"][name], out["losses"][name], out["trained"][name] = lr, loss, ok
        mean = np.mean(loss[ok], axis=0) if ok.any() else np.full(loss.shape[1], np.inf)
        out[which].append(as_run(name, lr, mean, meta["every"], _batch(task)))
    out["seeds"], out["every"] = meta["seeds"], meta["every"]
    return out


#: Version of the laws comparison's fits: bump it when a model's fit changes, so that saved
#: comparisons are recomputed (2: the stage keeps every model's predictions of the test runs).
LAWS_VERSION = 2


def suite_noise(losses) -> float:
    """The ``prede`` that a perfect predictor of a seed-mean curve gets from the mean's own noise:
    the mean over the logged points at steps ≥ 1 of E|mean − truth| / truth = √(2/π)·σ/(√n·mean)
    for Gaussian seed-to-seed spread σ over n seeds, σ estimated without bias as s/c4(n) (s the
    sample standard deviation; c4(3) = 0.886). ``losses`` has shape (seeds, points); nan with
    fewer than two seeds or a loss that is not finite.

    >>> round(suite_noise([[1.0, 1.0, 1.0], [1.0, 1.2, 0.8]]), 4)  # two seeds, two points
    0.101
    """
    L = np.asarray(losses, np.float64)
    if L.ndim != 2:
        raise ValueError(f"losses must have shape (seeds, points); got shape {L.shape}")
    L = L[:, 1:]
    n = L.shape[0]
    if n < 2 or L.size == 0 or not np.all(np.isfinite(L)):
        return math.nan
    c4 = math.sqrt(2.0 / (n - 1)) * math.exp(math.lgamma(n / 2) - math.lgamma((n - 1) / 2))
    se = np.std(L, axis=0, ddof=1) / (c4 * math.sqrt(n))
    return float(np.mean(math.sqrt(2.0 / math.pi) * se / np.mean(L, axis=0)))


def run_laws(results_dir, task, bench):
    """rfmodel's fit and the two empirical laws fitted to the suite's fit set, predicting its
    test set (saved; the suite is computed first when missing): every model's held-out metrics
    per test run and their mean (:func:`rfmodel.practice.compare_laws`'s rows, each run with its
    exact per-update rates), each test run's :func:`suite_noise` over the seeds it trained on,
    and ``diverged``: how many seeds each run diverged on (left out of its mean; runs with none
    are not listed). A model the fit set cannot determine (a law needs 5 logged points per
    parameter; short quick suites have fewer) is left out and named in ``skipped`` with the
    reason. A run that diverged on every seed is an error that names it (the suite's rate is
    too high for the task).

    Arrays: per test run, ``step__RUN`` (the logged steps ≥ 1), ``loss__RUN`` (the seed mean
    there) and ``pred__MODEL__RUN`` (each fitted model's prediction there)."""
    from ..practice import MODELS, comparison_rows, fit_model, predict_run

    def compute():
        s = suite_runs(results_dir, task, bench)
        lost = [n for n, ok in s["trained"].items() if not ok.any()]
        if lost:
            raise ValueError(
                f"suite of {task['name']!r}: run(s) {lost} diverged on every seed; lower the "
                f"suite's rate (bench['suite']['lr'], now {bench['suite']['lr']})"
            )
        fit = [r.with_rates(s["lr"][r.name]) for r in s["fit"]]
        test = [r.with_rates(s["lr"][r.name]) for r in s["test"]]
        t0 = time.perf_counter()
        fits: dict[str, Any] = {}
        seconds: dict[str, float] = {}
        skipped: dict[str, str] = {}
        for m in MODELS:
            t1 = time.perf_counter()
            try:
                fits[m] = fit_model(m, fit)
            except ValueError as e:  # too few points for this model: the others still compare
                skipped[m] = str(e)
                continue
            seconds[m] = time.perf_counter() - t1
        rows = comparison_rows(fits, test, seconds)
        arrays: dict[str, np.ndarray] = {}
        for r in test:
            st, loss = r.points
            arrays[f"step__{r.name}"], arrays[f"loss__{r.name}"] = st[st > 0], loss[st > 0]
            for m, f in fits.items():
                arrays[f"pred__{m}__{r.name}"] = predict_run(f, r, st[st > 0])
        noise = {r.name: suite_noise(s["losses"][r.name][s["trained"][r.name]]) for r in test}
        div = {n: int(np.sum(~ok)) for n, ok in s["trained"].items() if not ok.all()}
        meta = {"rows": rows, "skipped": skipped, "noise": noise, "diverged": div}
        return arrays, {**meta, "seconds": time.perf_counter() - t0}

    return _stage(results_dir, task, bench, "laws", compute)


# ----------------------------------------------------------------------------- evaluation
def _extended(grid: dict[str, Any]) -> int:
    """Values added past the starting grids of a tuning (peaks and, for WSD, decays)."""
    if "per_decay" in grid:
        return int(grid["decays"]["extended"]) + sum(
            int(v["extended"]) for v in grid["per_decay"].values()
        )
    return int(grid["extended"])


def evaluate_cell(
    results_dir, task, bench, T: int, advice: dict[str, Any]
) -> dict[str, Any] | None:
    """The numbers of one (task, T) cell from saved stages (None when a stage is missing):
    per line the final loss (mean ± SE, per seed), the paired ratio advised / line (95%
    t-interval), its tuning cost; the prediction check and the goals."""
    pi = load_stage(results_dir, task, bench, "pilots")
    pr = load_stage(results_dir, task, bench, "practitioner", T)
    orc = load_stage(results_dir, task, bench, "oracle", T)
    adv = load_stage(results_dir, task, bench, "advised", T, advice)
    if any(x is None for x in (pi, pr, orc, adv)):
        return None
    pm, (ra, rm), (oa, om), (aa, am) = pi[1], pr, orc, adv
    pilot_cost = {"runs": len(pm["lengths"]), "run_steps": int(pm["run_steps"])}
    curves: dict[str, np.ndarray] = {}
    cost: dict[str, dict[str, int]] = {}
    params: dict[str, dict[str, Any]] = {}
    if "loss" in aa:
        curves["advised"] = aa["loss"]
    cost["advised"] = pilot_cost
    params["advised"] = {"peak": float(np.max(aa["lr"])) if "lr" in aa else None}
    for k in PRACTITIONER:
        curves[k] = ra[k]
        cost[k] = pilot_cost
        params[k] = {"peak": rm["peaks"][k]}
    for f in ORACLE:
        t = om["tuned"][f]
        curves[f"oracle_{f}"] = oa[f]
        cost[f"oracle_{f}"] = {"runs": t["tuning_runs"], "run_steps": t["tuning_run_steps"]}
        params[f"oracle_{f}"] = {
            "peak": t["peak"],
            **({"decay": t["decay"]} if "decay" in t else {}),
        }
        g = t["grid"]
        params[f"oracle_{f}"]["extended"] = g["decays"]["extended"] if f == "wsd" else g["extended"]
    finals = {k: v[:, -1] for k, v in curves.items()}
    div = {k: diverged(v) for k, v in curves.items()}
    lines = {}
    for k, v in finals.items():
        lines[k] = {
            "final": {**mean_se(v[~div[k]]), "diverged": int(div[k].sum()), "seeds": int(v.size)},
            "per_seed": v.tolist(),
            "cost": cost[k],
            **params[k],
        }
        if "advised" in finals and k != "advised":
            lines[k]["ratio"] = compare(finals["advised"], v, div["advised"], div[k])
    out: dict[str, Any] = {
        "task": task["name"],
        "real": bool(task.get("real", True)),
        "T": int(T),
        "T0": int(task["T0"]),
        "lines": lines,
        "error": am.get("error"),
        "best_pilot": rm["best_pilot"],
        "advice_seconds": am.get("seconds_advice"),
        "info": am.get("info", {}),
    }
    if "advised" not in finals:
        return out
    measured = lines["advised"]["final"]["mean"]
    pred = am.get("predicted_final")
    out["predicted_final"] = pred
    out["prediction_error"] = None if pred is None else pred / measured - 1
    out["prediction_ok"] = (
        pred is not None and not div["advised"].any() and abs(pred / measured - 1) <= PREDICTION_TOL
    )
    best_oracle = min(
        (f"oracle_{f}" for f in ORACLE),
        key=lambda k: (lines[k]["final"]["diverged"], lines[k]["final"]["mean"]),
    )
    out["best_oracle"] = best_oracle
    r = lines[best_oracle]["ratio"]
    out["vs_oracle"] = r
    # a match: diverged no more often than the best tuned line, and within 1% where both trained
    out["matches_oracle"] = bool(
        r["diverged"][0] <= r["diverged"][1] and r["ratio"] <= 1 + ORACLE_TOL
    )
    out["beats_practitioner"] = bool(all(lines[k]["ratio"]["better"] for k in PRACTITIONER))
    return out
