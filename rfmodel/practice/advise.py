"""Advice: the schedule a fitted model recommends for a new horizon, robust to model error
(docs/theory.md §9).

A model fitted to a few short pilot runs is wrong in ways the fit cannot show: its free-form
optimum exploits those errors (measured: predicted 12% below what training then gave, and
worse than a tuned cosine, where the same fit predicted the cosine's loss to 1%). So the advice
is a *decision* made with the model, not the model's optimum:

1. **An ensemble.** The fit to every pilot and the fits leaving one pilot out
   (:func:`rfmodel.practice.fit_curves` on each subset). The leave-one-out fits predict the
   pilot they did not see: that error (``prede``, mean |err|/loss) says how far the model can
   be trusted, and their spread says how uncertain its predictions at the new horizon are.
2. **Candidates practitioners trust, tuned on the ensemble:** cosine (peak η) and
   warmup-stable-decay (peak η, linear decay over the last fraction d), each tuned to minimize
   the ensemble's mean predicted log-loss at T; and the free-form optimum of the fitted model
   (:func:`rfmodel.control.optimize_schedule`).
3. **Anchored peaks.** Pilots that are scaled copies of one schedule (an LR sweep) show where the
   best peak is at the pilot horizon. The ratio of that observed best peak to the model's best
   peak for the same schedule is applied to every candidate's peak: the model decides how the
   peak moves with the horizon and between shapes, the data fix its level. When the best pilot
   is at the sweep's edge the observed peak only bounds the best one, so the ratio is applied
   only in the direction the bound allows (up at the top edge, down at the bottom).
4. **A cap from the pilots:** no rate above the largest pilot rate that trained without
   diverging (the model was not checked beyond it), nor above ``lr_max``.
5. **The choice:** the trusted candidate with the best ensemble score, unless the free-form
   optimum beats it by more than the model's leave-one-out error (then it is worth the risk).
   That choice must in turn beat **the practitioner's schedule** (WSD with a 20% linear decay at
   the pilots' best peak) by more than the same error, or the advice is the practitioner's
   schedule: the model decides only where it has shown it predicts better than the margin it
   claims (untested, with fewer than three trained pilots, never). Measured: an online MLP
   whose two trained pilots gave a confident but wrong model (its best peak 3-6× below the real
   one) had been advised 1.32× the loss of a tuned WSD; the practitioner's schedule gives 1.03×.
6. **Refusal:** when the leave-one-out prediction of the pilots fails (``prede`` above
   :data:`REFUSE_PREDE`), the model does not describe the runs: the advice says so and
   recommends the best pilot's schedule stretched to T (what a practitioner would do).
   ``Advice.refused`` and ``Advice.reason`` record it.

Every number is in the units of the curves (your learning rate and your loss).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .._x64 import float64
from ..control import optimize_schedule
from ..dynamics import final_losses
from ..problem import check_finite, check_positive
from ..results import write_json, write_text
from ..schedules import FAMILIES, as_array, cosine, to_optax, tune, wsd
from ..schedules.transfer import fit_recipe, horizon_rule
from .curves import Run
from .fit import FitResult, fit_curves

__all__ = [
    "Advice",
    "Candidate",
    "advise",
    "ADVISE_FAMILIES",
    "REFUSE_PREDE",
    "WSD_DECAYS",
    "PRACTICE_DECAY",
    "MIN_PROGRESS",
    "MAX_REBOUND",
    "RISK_TOL",
    "pilot_status",
    "advise_runs",
    "edge_caution",
    "EDGE_TOL",
]

#: Baseline families tuned on the model for the table (names of rfmodel.schedules.FAMILIES).
ADVISE_FAMILIES = ("constant", "cosine", "wsd_linear")
#: Leave-one-out prediction error of the pilots (mean |err|/loss over a held-out pilot's logged
#: points, worst pilot) above which the advice refuses to use the model.
REFUSE_PREDE = 0.05
#: Decay fractions of the warmup-stable-decay candidate.
WSD_DECAYS = (0.1, 0.2, 0.3, 0.5)
#: Decay fraction of the practitioner's schedule the advice must beat (WSD at the pilots' best
#: peak; a 20% linear cooldown is the usual choice and matches a tuned cosine, Hägele et al. 2024).
PRACTICE_DECAY = 0.2
#: Peaks whose predicted loss is within this factor of the best are taken as equally good, and
#: the lowest of them is chosen: a rate too high can diverge at the longer horizon (no pilot
#: showed it), one slightly too low costs a little (half the 1% a tuned baseline is matched to).
RISK_TOL = 0.005
#: Peaks searched per candidate: a geometric grid below the cap, this many per factor 10.
_PEAKS_PER_DECADE = 16
#: Peaks searched: from cap / 10^_PEAK_DECADES to the cap.
_PEAK_DECADES = 2.5


# ----------------------------------------------------------------------------- the ensemble
class _Member:
    """One fitted model with its problem built once; predicts final losses of many schedules."""

    def __init__(self, fit: FitResult) -> None:
        self.fit = fit
        self.k = fit.stride
        self.problem = fit.problem(batch=fit.batch * self.k)

    def finals(self, lrs: np.ndarray) -> np.ndarray:
        """Predicted final loss (units of the curves) of each row of per-update rates (G, T);
        inf where the model diverges."""
        lrs = np.atleast_2d(np.asarray(lrs, np.float64))
        G, T = lrs.shape
        k = self.k
        if k > 1:
            n = math.ceil(T / k)
            lrs = np.pad(lrs, ((0, 0), (0, n * k - T))).reshape(G, n, k).sum(2)
        L = final_losses(self.problem, self.fit.lr_scale * lrs)
        out = self.fit.floor + self.fit.loss_scale * L
        return np.where(np.isfinite(out), out, np.inf)


def _ensemble_scores(members: Sequence[_Member], lrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean log predicted final loss over the members, the full fit's prediction) per row."""
    preds = np.stack([m.finals(lrs) for m in members])  # (members, G)
    with np.errstate(divide="ignore"):
        logs = np.log(preds)
    return np.mean(logs, axis=0), preds[0]


def _peak(run: Run) -> float:
    """The largest rate of a run (rows without a rate skipped)."""
    return float(np.nanmax(run.lr))


def _logged(run: Run) -> np.ndarray:
    """The logged losses of a run (schedule-only rows skipped; a diverged loss stays inf)."""
    return run.loss[~np.isnan(run.loss)]


def _final(run: Run) -> float:
    """The last logged loss (inf when the run diverged)."""
    L = _logged(run)
    return float(L[-1]) if L.size and np.all(np.isfinite(L)) else math.inf


def _prede(fit: FitResult, run: Run) -> float:
    """Mean |predicted − observed| / observed over a run's logged points (step > 0)."""
    n = int(run.step[-1])
    lr, _ = run.rates(n)
    st, loss = run.points
    pred = fit.predict(lr)[st.astype(np.int64)]
    keep = st > 0
    err = np.abs(pred[keep] - loss[keep]) / loss[keep]
    return float(np.mean(err)) if np.all(np.isfinite(err)) else math.inf


def _loo(
    runs: Sequence[Run], fit_kwargs: dict[str, Any]
) -> tuple[list[FitResult], dict[str, float]]:
    """Fits leaving one run out (when the rest still has two schedules) and each one's error on
    the run it left out. Without the profile of a − b unless ``fit_kwargs`` asks for it: the
    profile leaves the fitted parameters as they are and takes a third to a half of a fit's time
    (measured: 1.5 of 5.0 s on two 2000-step runs, 24 of 55 s on nine 24 000-step runs)."""
    fits, errs = [], {}
    if len(runs) < 3:
        return fits, errs
    for i, r in enumerate(runs):
        rest = [q for j, q in enumerate(runs) if j != i]
        try:
            f = fit_curves(rest, **{"profile": False, **fit_kwargs})
        except ValueError:  # e.g. the rest share one schedule
            continue
        fits.append(f)
        errs[r.name] = _prede(f, r)
    return fits, errs


# ----------------------------------------------------------------------------- pilots
#: A pilot "made no progress" when it lowered its loss by less than this fraction of what the
#: best pilot achieved (relative to the initial loss): a run the model cannot describe (a dead
#: or stuck network), left out of the fit like a diverged one.
MIN_PROGRESS = 0.1


#: A pilot is "unstable" when it ended more than this factor above the lowest loss it reached
#: (a late blow-up: the rate was too high to hold).
MAX_REBOUND = 1.5


def pilot_status(runs: Sequence[Run]) -> dict[str, str]:
    """Each pilot's status: ``"ok"``; ``"diverged"`` (a loss that is not finite, or that rose
    above twice its initial value); ``"unstable"`` (it ended above :data:`MAX_REBOUND` × the
    lowest loss it reached); ``"no progress"`` (it lowered its loss by less than
    :data:`MIN_PROGRESS` of the best pilot's relative improvement). Only "ok" pilots are fitted;
    the others bound the rates (:func:`advise`)."""
    out: dict[str, str] = {}
    gains = {}
    for r in runs:
        L = _logged(r)
        if L.size < 2 or not np.all(np.isfinite(L)) or np.max(L) > 2.0 * L[0]:
            out[r.name] = "diverged"
        elif L[-1] > MAX_REBOUND * np.min(L):
            out[r.name] = "unstable"
        else:
            gains[r.name] = 1.0 - L[-1] / L[0]
    best = max(gains.values(), default=0.0)
    for name, g in gains.items():
        out[name] = "ok" if g >= MIN_PROGRESS * best and g > 0 else "no progress"
    return out


def _plateau(lr: np.ndarray) -> float:
    """Fraction of a schedule's updates at 90% of its peak or more (1 for a constant rate)."""
    lr = np.asarray(lr, np.float64)
    return float(np.mean(lr >= 0.9 * np.max(lr)))


def _updates(run: Run) -> np.ndarray:
    """A run's per-update rates over its logged updates, shape ``(step[-1],)``."""
    return run.rates(int(run.step[-1]))[0]


def _run_plateau(run: Run) -> float:
    """:func:`_plateau` of a run's per-update rates."""
    return _plateau(_updates(run))


def _caps(runs: Sequence[Run], status: dict[str, str], cap: float) -> list[tuple[float, float]]:
    """Rate caps from the pilots that failed, as (plateau fraction, cap) pairs: a schedule that
    holds its peak for a fraction f of its updates stays below the peak of every failed pilot
    that held its own for at most f (a rate too high to hold stays too high to hold longer),
    at the largest peak of a pilot that trained below it."""
    ok = [_peak(r) for r in runs if status[r.name] == "ok"]
    out = []
    for r in runs:
        if status[r.name] in ("diverged", "unstable"):
            p = _peak(r)
            below = [q for q in ok if q < p]
            out.append((_run_plateau(r), min(cap, max(below, default=p / 3))))
    return out


def _capped(peak: float, shape: np.ndarray, caps: list[tuple[float, float]]) -> float:
    f = _plateau(shape)
    return min([peak] + [c for pf, c in caps if pf <= f + 1e-9])


# ----------------------------------------------------------------------------- candidates
@dataclass(frozen=True)
class Candidate:
    """A schedule considered for the advice (units of the curves).

    Attributes:
        name: ``"cosine"``, ``"wsd"``, ``"optimal"`` (the free-form optimum) or ``"practice"``
            (WSD with a :data:`PRACTICE_DECAY` linear decay at the pilots' best peak).
        params: its parameters (``peak``; ``decay`` for WSD).
        lr: per-update rates, shape ``(T,)``.
        predicted: final loss predicted by the fit to every pilot.
        score: mean over the ensemble of the log predicted final loss (lower is better).
    """

    name: str
    params: dict[str, float]
    lr: np.ndarray = field(repr=False)
    predicted: float
    score: float


def _peak_grid(cap: float) -> np.ndarray:
    n = int(_PEAK_DECADES * _PEAKS_PER_DECADE) + 1
    return cap * 10.0 ** (-np.linspace(0.0, _PEAK_DECADES, n))[::-1]


def _shape(family: str, T: int, decay: float = 0.2) -> np.ndarray:
    """Per-update rates of ``family`` with peak 1."""
    s = cosine(1.0, T) if family == "cosine" else wsd(1.0, T, decay=decay)
    return np.asarray(as_array(s, T), np.float64)


def _best_scale(
    members, shape: np.ndarray, peaks: np.ndarray, tol: float = 0.0
) -> tuple[float, float, float]:
    """(peak, its ensemble score, the full fit's prediction) of ``peak × shape`` on the grid
    ``peaks``: the minimum of the ensemble's mean log loss (refined by a parabola in log peak),
    or with ``tol`` > 0 the lowest peak whose score is within log(1 + tol) of it."""
    scores, full = _ensemble_scores(members, peaks[:, None] * shape[None, :])
    i = int(np.argmin(scores))
    peak = float(peaks[i])
    if tol > 0 and np.isfinite(scores[i]):
        ok = np.flatnonzero(scores <= scores[i] + math.log1p(tol))
        j = int(ok[0])
        if j < i:  # the lowest equally good peak: interpolate where the score crosses the band
            lo = j - 1 if j > 0 else j
            x, y = np.log(peaks[[lo, j]]), scores[[lo, j]]
            band = scores[i] + math.log1p(tol)
            frac = 0.0 if lo == j or y[0] == y[1] else float((band - y[1]) / (y[0] - y[1]))
            return _score_at(members, float(np.exp(x[1] + frac * (x[0] - x[1]))), shape)
    if 0 < i < len(peaks) - 1 and np.all(np.isfinite(scores[i - 1 : i + 2])):
        x = np.log(peaks[i - 1 : i + 2])
        c = np.polyfit(x, scores[i - 1 : i + 2], 2)
        if c[0] > 0:
            peak = float(np.exp(np.clip(-c[1] / (2 * c[0]), x[0], x[2])))
    return _score_at(members, peak, shape)


def _score_at(members, peak: float, shape: np.ndarray) -> tuple[float, float, float]:
    s, f = _ensemble_scores(members, peak * shape[None, :])
    return peak, float(s[0]), float(f[0])


def _sweep(runs: Sequence[Run]) -> list[Run]:
    """The largest group of runs that are scaled copies of one schedule (an LR sweep: same
    length, rates proportional), at least two of them."""
    groups: list[list[Run]] = []
    for r in runs:
        shape = r.lr / max(_peak(r), 1e-300)
        for g in groups:
            q = g[0]
            if q.step.shape == r.step.shape and np.array_equal(q.step, r.step):
                if np.allclose(q.lr / max(_peak(q), 1e-300), shape, rtol=1e-6, equal_nan=True):
                    g.append(r)
                    break
        else:
            groups.append([r])
    best = max(groups, key=len, default=[])
    return best if len(best) >= 2 else []


def _observed_best_peak(sweep: Sequence[Run]) -> tuple[float, str]:
    """The best peak of an LR sweep from the final losses (a parabola in log peak through the
    best point and its neighbours; diverged runs count as worse than any finite one), and which
    edge of the sweep it sits at: ``"top"``, ``"bottom"`` or ``""`` (bracketed: a worse run on
    each side, a diverged one included; then without a parabola when a neighbour diverged).

    >>> from rfmodel.practice.curves import Run
    >>> def run(peak, final):
    ...     return Run("r", [0, 10], [peak, peak], [1.0, final], 1.0)
    >>> _observed_best_peak([run(0.1, 0.5), run(0.3, 0.2), run(1.0, np.inf)])
    (0.3, '')
    >>> _observed_best_peak([run(0.1, 0.5), run(0.3, 0.2)])
    (0.3, 'top')
    """
    peaks = np.array([_peak(r) for r in sweep])
    finals = np.array([_final(r) for r in sweep])
    order = np.argsort(peaks)
    peaks, finals = peaks[order], finals[order]
    i = int(np.argmin(finals))
    if i in (0, len(peaks) - 1):
        return float(peaks[i]), "bottom" if i == 0 else "top"
    if not np.all(np.isfinite(finals[i - 1 : i + 2])):
        return float(peaks[i]), ""
    x, y = np.log(peaks[i - 1 : i + 2]), np.log(finals[i - 1 : i + 2])
    c = np.polyfit(x, y, 2)
    if c[0] <= 0:
        return float(peaks[i]), ""
    return float(np.exp(np.clip(-c[1] / (2 * c[0]), x[0], x[2]))), ""


# ----------------------------------------------------------------------------- the advice
@dataclass(frozen=True)
class Advice:
    """The recommended schedule for ``T`` updates, its predicted loss and how it was chosen,
    all in the units of the curves (docs/theory.md §9).

    Attributes:
        T: updates of the run advised.
        lr: the recommended per-update rates, shape ``(T,)``.
        predicted: the fit's predicted loss after 0..T updates of ``lr``, shape ``(T+1,)``.
        loss: its predicted final loss.
        baselines: families tuned on the fitted model (``loss``, ``params``, ``lr``) for the
            table.
        recipe: the closed form fitted to the free-form optimum (:class:`rfmodel.schedules.
            transfer.Recipe`).
        fit: the fit to every pilot.
        lr_max: the cap on the rates (the user's, or the largest stable pilot rate).
        choice: the recommended candidate: ``"cosine"``, ``"wsd"``, ``"optimal"``,
            ``"practice"`` (the practitioner's WSD at the pilots' best peak, when the model's best
            does not beat it by more than the model's error) or, when refused, ``"pilot"``.
        candidates: every candidate considered (:class:`Candidate`).
        reason: why this one, in words.
        refused: True when the model failed the leave-one-out check (the advice is then the
            best pilot's schedule stretched to T).
        loo_prede: each pilot's error when predicted by the fit that left it out.
        anchor: the factor applied to the model's peaks (observed best pilot peak / the model's).
        next_pilot: the extra pilot that would pin the advice down best, or None.
        calibration: the factor applied to the fit's predictions (observed / predicted final
            loss of the pilots, geometric mean).
        status: each pilot's :func:`pilot_status`.
        caution: when the advice runs at or above some rate for more updates than any
            trained pilot did (:func:`edge_caution`): ``why``, the ``level`` and counts, and the
            next lower pilot ``peak`` to fall back on; else None.
    """

    T: int
    lr: np.ndarray = field(repr=False)
    predicted: np.ndarray = field(repr=False)
    loss: float
    baselines: dict[str, dict[str, Any]] = field(repr=False)
    recipe: Any = field(repr=False)
    fit: FitResult = field(repr=False)
    lr_max: float = math.nan
    choice: str = "optimal"
    candidates: dict[str, Candidate] = field(default_factory=dict, repr=False)
    reason: str = ""
    refused: bool = False
    loo_prede: dict[str, float] = field(default_factory=dict, repr=False)
    anchor: float = 1.0
    next_pilot: dict[str, Any] | None = None
    calibration: float = 1.0
    status: dict[str, str] = field(default_factory=dict)
    caution: dict[str, Any] | None = None

    def table(self) -> list[dict[str, Any]]:
        """Rows (schedule, predicted final loss, ratio to the recommended), the recommended
        first, then the other candidates and the tuned baselines, best first; every loss
        calibrated like :attr:`loss`."""
        rows = [{"schedule": f"recommended ({self.choice})", "loss": self.loss, "ratio": 1.0}]
        c = self.calibration  # every prediction on the same (calibrated) footing
        others = {f"{n} (candidate)": c * v.predicted for n, v in self.candidates.items()}
        others.update({n: c * v["loss"] for n, v in self.baselines.items()})
        rows += [
            {"schedule": n, "loss": v, "ratio": v / self.loss}
            for n, v in sorted(others.items(), key=lambda kv: kv[1])
        ]
        return rows

    def schedule(self):
        """The recommended schedule as an optax schedule (pure ``jnp``; warns past T when
        called eagerly)."""
        return to_optax(self.lr)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (``advice.json``)."""
        return {
            "T": self.T,
            "choice": self.choice,
            "reason": self.reason,
            "refused": self.refused,
            "predicted_final_loss": self.loss,
            "lr_max": self.lr_max,
            "anchor": self.anchor,
            "calibration": self.calibration,
            "pilots": self.status,
            "loo_prede": self.loo_prede,
            "next_pilot": self.next_pilot,
            "caution": self.caution,
            "table": self.table(),
            "candidates": {
                n: {"params": c.params, "predicted": c.predicted, "score": c.score}
                for n, c in self.candidates.items()
            },
            "baselines": {
                n: {"loss": v["loss"], "params": v["params"]} for n, v in self.baselines.items()
            },
            "recipe": None
            if self.recipe is None
            else {
                "kind": self.recipe.kind,
                "params": self.recipe.params,
                "rel_error": self.recipe.rel_error,
                "lr_scale": self.fit.lr_scale,
            },
            "fit": self.fit.to_dict(),
        }

    def write(self, out: str | Path) -> list[Path]:
        """Write ``schedule.csv`` (step, lr), ``schedule.py`` (an optax schedule) and
        ``advice.json`` into ``out``; returns the paths."""
        out = Path(out)
        csv_text = "step,lr\n" + "".join(f"{t},{v:.10g}\n" for t, v in enumerate(self.lr))
        write_text(out / "schedule.csv", csv_text)
        write_text(out / "schedule.py", self.python())
        write_json(out / "advice.json", self.to_dict())
        return [out / "schedule.csv", out / "schedule.py", out / "advice.json"]

    def python(self) -> str:
        """Source of ``schedule.py``: the recommended rates (read from schedule.csv next to it)
        as an optax schedule: pure ``jnp`` under ``jit``/``vmap``; called with a plain integer
        past T it warns (its last rate is held there)."""
        return (
            f'"""Learning-rate schedule recommended by `rfmodel advise` for T = {self.T} '
            f"updates ({self.choice}).\n\n"
            "Use: optax.sgd(learning_rate=schedule) (count 0 is the first update). Past T it "
            "holds\nits last rate (and says so when called with a plain integer).\n"
            '"""\n\n'
            "import warnings\n"
            "from pathlib import Path\n\n"
            "import jax.numpy as jnp\n"
            "import numpy as np\n\n"
            "_LR = np.loadtxt(Path(__file__).with_name('schedule.csv'), delimiter=',', "
            "skiprows=1, usecols=1, ndmin=1)\n"
            "T = _LR.shape[0]\n\n\n"
            "def schedule(count):\n"
            '    """The rate of update `count` (0 = first)."""\n'
            "    if isinstance(count, (int, np.integer)) and count >= T:\n"
            "        warnings.warn(\n"
            "            f'schedule evaluated at step {count}, past its horizon of {T} steps: '\n"
            "            'it holds its last rate; ask rfmodel advise for the real run length',\n"
            "            stacklevel=2,\n"
            "        )\n"
            "    lr = jnp.asarray(_LR, dtype=float)\n"
            "    return lr[jnp.clip(jnp.asarray(count), 0, T - 1).astype(jnp.int32)]\n"
        )


def advise_runs(
    runs: Sequence[Run], T: int, *, fit_kwargs: dict[str, Any] | None = None, **kwargs: Any
) -> Advice:
    """Fit the pilots that trained (:func:`pilot_status` "ok") and :func:`advise` with all of
    them: the whole advice from logged pilot runs (``rfmodel advise``).

    ``fit_kwargs`` go to :func:`~rfmodel.practice.fit_curves`, ``kwargs`` to :func:`advise`.
    """
    _check_args(
        T,
        kwargs.get("lr_max"),
        kwargs.get("families", ADVISE_FAMILIES),
        kwargs.get("controls"),
        kwargs.get("batch"),
    )
    runs = list(runs)
    status = pilot_status(runs)
    ok = [r for r in runs if status[r.name] == "ok"]
    if len(ok) < 2:
        bad = ", ".join(f"{n}: {s}" for n, s in status.items() if s != "ok") or "none"
        raise ValueError(
            f"runs: need at least 2 pilot runs that trained (finite, falling losses); got "
            f"{len(ok)} of {len(runs)} ({bad})"
        )
    fit = fit_curves(ok, **dict(fit_kwargs or {}))
    return advise(fit, T, runs=runs, fit_kwargs=fit_kwargs, **kwargs)


def _check_args(T, lr_max, families, controls, batch) -> float | None:
    """The arguments of :func:`advise` that need no fit, checked before any work."""
    if isinstance(T, bool) or not isinstance(T, int | np.integer) or T < 2:
        raise ValueError(f"T must be an integer >= 2; got T={T!r}")
    if controls is not None and (
        isinstance(controls, bool) or not isinstance(controls, int | np.integer) or controls < 1
    ):
        raise ValueError(f"controls must be an integer >= 1 or None; got controls={controls!r}")
    if batch is not None and check_finite("batch", batch) < 1:
        raise ValueError(f"batch must be a finite number >= 1; got batch={batch!r}")
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"families must be names from {sorted(FAMILIES)}; got {unknown}")
    return None if lr_max is None else check_positive("lr_max", lr_max)


def _check(fit: FitResult, T, lr_max, families, controls, batch) -> float | None:
    lr_max = _check_args(T, lr_max, families, controls, batch)
    if lr_max is not None:
        bound = fit.problem().eta_mode_bound()
        if lr_max * fit.lr_scale < 1e-12 * bound:
            raise ValueError(
                f"lr_max={lr_max:g} is too small to train: below 1e-12 of the fitted "
                f"stability bound {bound / fit.lr_scale:.4g} (units of the curves)"
            )
    return lr_max


@float64
def advise(
    fit: FitResult,
    T: int,
    *,
    runs: Sequence[Run] | None = None,
    lr_max: float | None = None,
    controls: int | None = None,
    batch: float | None = None,
    families: Sequence[str] = ADVISE_FAMILIES,
    fit_kwargs: dict[str, Any] | None = None,
) -> Advice:
    """The schedule to run for ``T`` updates, chosen with the fitted model (module docstring).

    Args:
        fit: the model fitted to the pilot runs (:func:`rfmodel.practice.fit_curves`).
        T: updates of the run to advise.
        runs: the pilot runs the fit was made from. With them the advice uses the
            leave-one-out ensemble, anchors the peaks on the observed LR sweep, caps the rates
            at the largest stable pilot rate, and may refuse; without them it uses the fit
            alone (no ensemble, no anchor, no refusal).
        lr_max: cap on every rate (units of the curves); default: the largest rate of a pilot
            that did not diverge (``fit.lr_max`` without runs).
        controls: piecewise-constant controls of the free-form optimum (default min(T, 200)).
        batch: batch size of the new run (default: the pilots').
        families: baseline families tuned on the model for the table.
        fit_kwargs: keywords of :func:`~rfmodel.practice.fit_curves` for the leave-one-out fits
            (default: made like ``fit``: its floor, noise and κ, fitted or held at its value).

    Returns:
        :class:`Advice`.
    """
    lr_max = _check(fit, T, lr_max, families, controls, batch)
    T = int(T)
    runs = list(runs or [])
    status = pilot_status(runs) if runs else {}
    stable = [r for r in runs if status[r.name] == "ok"]
    cap = lr_max
    if cap is None:
        cap = max((_peak(r) for r in stable), default=fit.lr_max)
    caps = _caps(runs, status, cap)
    k = fit.stride
    Tm = math.ceil(T / k)
    m = (fit.batch if batch is None else float(batch)) * k
    fit_b = fit if batch is None else replace(fit, batch=float(batch))

    # 1. the ensemble and the leave-one-out errors
    like_fit = {"floor": fit.fit_floor, "noise": fit.noise}  # left-out fits made like ``fit``
    like_fit["kappa"] = "fit" if fit.fit_kappa else fit.kappa
    loo_fits, loo = _loo(stable, {**like_fit, **(fit_kwargs or {})})
    members = [_Member(fit_b)] + [_Member(f if batch is None else replace(f, batch=float(batch)))
                                  for f in loo_fits]  # fmt: skip
    worst = max(loo.values(), default=0.0)

    # 3. the anchor: the observed best peak of an LR sweep against the model's
    sweep = _sweep(stable + [r for r in runs if r not in stable])
    anchor, edge, observed = 1.0, "", None
    if sweep:
        observed, edge = _observed_best_peak(sweep)
        ref = max(sweep, key=lambda r: _peak(r))
        n0 = int(ref.step[-1])
        shape0 = ref.rates(n0)[0] / _peak(ref)
        model0, _, _ = _best_scale(members, shape0, _peak_grid(max(cap, observed) * 3.0))
        anchor = observed / model0
        if edge:  # the best pilot is at the sweep's edge: the observed peak only bounds the best
            anchor = max(anchor, 1.0) if edge == "top" else min(anchor, 1.0)
        anchor = float(np.clip(anchor, 0.25, 4.0))

    # the model's honest error: what a prediction must beat to be worth trusting over the pilots
    # (untested, fewer than 3 pilots trained: never)
    margin = math.log1p(max(worst, 0.01)) if loo else math.inf
    # the practitioner's peak: the best of the LR sweep, else the best pilot's
    best = min(stable, key=_final) if stable else None
    held = observed if sweep else (_peak(best) if best is not None else None)

    # 2. candidates at T, peaks anchored and capped
    candidates: dict[str, Candidate] = {}
    grid = _peak_grid(cap / anchor)  # model peaks whose anchored value is at most the cap

    def add(name: str, shape: np.ndarray, params: dict[str, float]) -> None:
        peak, _, _ = _best_scale(members, shape, grid, tol=RISK_TOL)
        peak = _capped(min(peak * anchor, cap), shape, caps)
        lr = peak * shape
        score, full = _ensemble_scores(members, lr[None, :])
        cand = Candidate(name, {"peak": peak, **params}, lr, float(full[0]), float(score[0]))
        if name not in candidates or cand.score < candidates[name].score:
            candidates[name] = cand

    add("cosine", _shape("cosine", T), {})
    for d in WSD_DECAYS:
        add("wsd", _shape("wsd", T, d), {"decay": d})
    problem = fit_b.problem(batch=m)
    free_cap = min([cap] + [c for _, c in caps])  # the free-form optimum may hold any rate
    eta_max = min(fit.lr_scale * free_cap * k, problem.eta_mode_bound())
    K = min(Tm, 200) if controls is None else int(controls)
    opt_lr = None
    try:
        opt = optimize_schedule(problem, Tm, controls=K, eta_max=eta_max)
    except ValueError:  # e.g. no rate under the cap lowers the fitted model's loss
        opt = None
    if opt is not None and math.isfinite(opt.loss):
        opt_lr = np.repeat(np.asarray(opt.etas) / (fit.lr_scale * k), k)[:T]
        score, full = _ensemble_scores(members, opt_lr[None, :])
        candidates["optimal"] = Candidate("optimal", {"peak": float(np.max(opt_lr))}, opt_lr,
                                          float(full[0]), float(score[0]))  # fmt: skip

    # the practitioner's schedule: WSD with a 20% linear decay at the pilots' best peak
    if held is not None:
        shape = _shape("wsd", T, PRACTICE_DECAY)
        p_h = _capped(min(held, cap), shape, caps)
        score, full = _ensemble_scores(members, (p_h * shape)[None, :])
        params = {"peak": p_h, "decay": PRACTICE_DECAY}
        candidates["practice"] = Candidate(
            "practice", params, p_h * shape, float(full[0]), float(score[0])
        )

    # 5. the choice
    trusted = min(("cosine", "wsd"), key=lambda n: candidates[n].score)
    # the free-form optimum must beat the trusted shape by more than the model's leave-one-out
    # error; untested (fewer than 3 pilots trained) it is not taken
    gain = candidates[trusted].score - candidates.get("optimal", candidates[trusted]).score
    if gain > margin:
        choice = "optimal"
        reason = (
            f"the free-form optimum beats the best trusted shape ({trusted}) by "
            f"{math.expm1(gain):.1%} in predicted loss, more than the model's leave-one-out "
            f"error {math.expm1(margin):.1%}"
        )
    else:
        choice = trusted
        why = (
            f"within the model's leave-one-out error {math.expm1(margin):.1%}"
            if loo
            else "untested: too few pilots trained for a leave-one-out check"
        )
        reason = (
            f"{trusted} tuned on the fitted ensemble; the free-form optimum would gain "
            f"{math.expm1(max(gain, 0.0)):.1%} in predicted loss, {why}"
        )
    if "practice" in candidates:  # the model's choice must beat what practitioners run
        over = candidates["practice"].score - candidates[choice].score
        if not over > margin:
            reason = (
                f"the practitioner's schedule (WSD, {PRACTICE_DECAY:.0%} linear decay, at the "
                f"pilots' best peak {candidates['practice'].params['peak']:.4g}): the model's best "
                f"({choice}) would gain {math.expm1(max(over, 0.0)):.1%} in predicted loss, "
                + (
                    f"within its leave-one-out error {math.expm1(margin):.1%}"
                    if loo
                    else "untested: too few pilots trained for a leave-one-out check"
                )
            )
            choice = "practice"
    refused = worst > REFUSE_PREDE
    if refused:  # 6. the model does not describe the pilots: the best pilot, stretched
        n0 = int(best.step[-1])
        lr0 = best.rates(n0)[0]
        lr = np.interp((np.arange(T) + 0.5) * n0 / T, np.arange(n0) + 0.5, lr0)
        choice = "pilot"
        reason = (
            f"refused: the model predicts a pilot it did not see with {worst:.1%} mean error "
            f"(> {REFUSE_PREDE:.0%}); recommending the best pilot's schedule ({best.name}) "
            "stretched to T"
        )
    else:
        lr = candidates[choice].lr
    if anchor != 1.0 and not refused and choice != "practice":
        reason += f"; peaks × {anchor:.3g} to match the best peak of the pilots' LR sweep"

    # next pilot: where the data leave the advice undetermined
    next_pilot = None
    if sweep and edge:
        p = float(observed)
        next_pilot = {
            "why": "the best pilot is at the edge of the LR sweep: the best peak is not bracketed",
            "schedule": "like the sweep",
            "peak": p / 3 if edge == "bottom" else p * 3,
        }
    elif not sweep and runs:
        next_pilot = {
            "why": "no two pilots are scaled copies of one schedule: the best peak is unobserved",
            "schedule": "the best pilot's shape",
            "peak": _peak(best) / 3,
        }
    elif runs and not loo:  # untested: a third pilot that trains lets the model be checked
        failed = [r for r in runs if status[r.name] != "ok"]
        why = (
            f"only {len(stable)} pilots trained: the model cannot be checked on a pilot it did "
            "not see (that needs 3), so it cannot overrule the practitioner's schedule"
        )
        if failed:  # the failed pilot that held its peak longest, at the rate that trained
            f = max(failed, key=_run_plateau)
            below = [_peak(q) for q in stable if _peak(q) < _peak(f)]
            schedule = f"like {f.name} ({status[f.name]}), lower"
            peak = max(below, default=_peak(f) / 3)
            next_pilot = {"why": why, "schedule": schedule, "peak": peak}
        else:
            next_pilot = {"why": why, "schedule": "a constant rate", "peak": float(held) / 3}

    baselines = _baselines(fit_b, problem, Tm, T, k, eta_max, families)
    # The prediction, calibrated: the fit's level error on the pilots' final losses (geometric
    # mean of observed / predicted) carried to the new horizon.
    calibration = _calibration(fit_b, stable)
    predicted = calibration * fit_b.predict(lr)
    recipe = None
    if opt_lr is not None:
        _, xi = horizon_rule(fit.a, fit.b)
        recipes = [fit_recipe(opt_lr, phase=ph, xi=xi) for ph in ("easy", "hard")]
        recipe = min(recipes, key=lambda r: float(np.mean(np.abs(r.as_array(T) - opt_lr))))
    return Advice(
        T=T,
        lr=np.asarray(lr, np.float64),
        predicted=predicted,
        loss=float(predicted[-1]),
        baselines=baselines,
        recipe=recipe,
        fit=fit,
        lr_max=float(cap),
        choice=choice,
        candidates=candidates,
        reason=reason,
        refused=refused,
        loo_prede=loo,
        anchor=anchor,
        next_pilot=next_pilot,
        calibration=calibration,
        status=status,
        caution=edge_caution(lr, stable),
    )


#: Rates within this fraction of a level count as at it (:func:`edge_caution`).
EDGE_TOL = 0.01


def edge_caution(lr, stable: Sequence[Run]) -> dict[str, Any] | None:
    """A caution when the schedule ``lr`` runs at or above some rate r for more updates than any
    trained pilot did, for an r above the next lower pilot peak (the rate to fall back on); else
    None.

    A pilot shows that its rates train for as many updates as it ran them, not for more: the
    largest stable rate can fall as a run gets longer (docs/theory.md §9.6: on the
    benchmark's transformer a peak of 1.5 trained for 200 updates and diverged in runs of 800).
    Levels r are taken between the next lower pilot peak (a third of the top one when there is
    none) and the top pilot peak, each counted within :data:`EDGE_TOL`; the caution reports the
    highest level exceeded and names the next lower peak.

    >>> import numpy as np
    >>> from rfmodel.practice import Run
    >>> def run(p):  # a constant rate p for 100 updates
    ...     return Run(f"c{p}", np.arange(1, 101), np.full(100, p), np.linspace(1, 0.5, 100), 1.0)
    >>> pilots = [run(0.1), run(0.3)]
    >>> c = edge_caution(np.full(400, 0.3), pilots)
    >>> c["peak"], c["level"], c["held_by_pilots"], c["held_by_advice"]
    (0.1, 0.3, 100, 400)
    >>> edge_caution(np.full(400, 0.1), pilots) is None  # at the fallback itself
    True
    >>> edge_caution(np.full(100, 0.3), pilots) is None  # no longer than the pilot
    True
    >>> edge_caution([0.3, float("nan")], pilots)
    Traceback (most recent call last):
    ...
    ValueError: lr must be a 1-D array of per-update rates, finite and >= 0; got shape (2,)
    """
    lr = np.asarray(lr, np.float64)
    if lr.ndim != 1 or not np.all(np.isfinite(lr) & (lr >= 0)):
        raise ValueError(
            f"lr must be a 1-D array of per-update rates, finite and >= 0; got shape {lr.shape}"
        )
    lr = np.sort(lr)
    if not stable or lr.size == 0:
        return None
    top = max(_peak(r) for r in stable)
    lower = [_peak(r) for r in stable if _peak(r) < top * (1.0 - EDGE_TOL)]
    floor = max(lower, default=top / 3)
    pilots = [np.sort(_updates(r)) for r in stable]
    levels = np.geomspace(floor * (1.0 + 2.0 * EDGE_TOL), top, 64)  # all above the fallback
    at = levels * (1.0 - EDGE_TOL)  # a rate within EDGE_TOL of a level counts as at it
    n_adv = lr.size - np.searchsorted(lr, at)
    n_pil = np.max([p.size - np.searchsorted(p, at) for p in pilots], axis=0)
    exceeded = np.flatnonzero(n_adv > n_pil)
    if exceeded.size == 0:
        return None
    i = int(exceeded[-1])  # the highest level the advice runs longer than any pilot
    level, n, held = float(levels[i]), int(n_adv[i]), int(n_pil[i])
    why = (
        f"the advice runs at {level:.4g} or above for {n} updates; no pilot that trained did for "
        f"more than {held}, and the largest stable rate can fall as a run gets longer "
        f"(docs/theory.md §9.6). If the run diverges, rerun it with peak {floor:.4g}, the next "
        "lower pilot peak"
    )
    return {
        "why": why,
        "peak": float(floor),
        "level": level,
        "held_by_pilots": held,
        "held_by_advice": n,
    }


def _calibration(fit: FitResult, runs: Sequence[Run]) -> float:
    """Geometric mean over ``runs`` of observed / predicted final loss (1 without runs)."""
    logs = []
    for r in runs:
        n = int(r.step[-1])
        pred = float(fit.predict(r.rates(n)[0])[-1])
        if pred > 0 and math.isfinite(pred):
            logs.append(math.log(_final(r) / pred))
    return float(math.exp(np.mean(logs))) if logs else 1.0


def _baselines(fit, problem, Tm: int, T: int, k: int, eta_max: float, families) -> dict:
    """Each family tuned on the fitted model under the cap (:func:`rfmodel.schedules.tune`),
    in the units of the curves."""

    def to_lr(etas):
        return np.repeat(np.asarray(etas) / (fit.lr_scale * k), k)[:T]

    out = {}
    for name in families:
        fam = FAMILIES[name]
        params = tuple(
            replace(p, lo=p.lo * eta_max, hi=p.hi * eta_max, scale="") if p.scale == "eta" else p
            for p in fam.params
        )
        r = tune(replace(fam, params=params), problem, Tm)
        conv = {
            n: (v / (fit.lr_scale * k) if any(p.name == n and p.scale == "eta" for p in fam.params)
                else v)
            for n, v in r.params.items()
        }  # fmt: skip
        out[name] = {
            "loss": fit.floor + fit.loss_scale * r.loss,
            "params": conv,
            "lr": to_lr(r.etas),
        }
    return out
