"""Advice: the schedule a fitted model recommends for a new horizon, against tuned baselines
(docs/theory.md §9)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .._x64 import float64
from ..control import optimize_schedule
from ..results import write_json, write_text
from ..schedules import FAMILIES, to_optax, tune
from ..schedules.transfer import fit_recipe, horizon_rule
from .fit import FitResult

__all__ = ["Advice", "advise", "ADVISE_FAMILIES"]


# ----------------------------------------------------------------------------- advice
@dataclass(frozen=True)
class Advice:
    """The recommended schedule for ``T`` updates and its predicted loss against tuned
    baselines, all in the units of the curves (docs/theory.md §9)."""

    T: int
    lr: np.ndarray = field(repr=False)
    predicted: np.ndarray = field(repr=False)
    loss: float
    baselines: dict[str, dict[str, Any]] = field(repr=False)
    recipe: Any = field(repr=False)
    fit: FitResult = field(repr=False)
    lr_max: float = math.nan

    def table(self) -> list[dict[str, Any]]:
        """Rows (schedule, predicted final loss, ratio to the recommended), best first."""
        rows = [{"schedule": "recommended (optimal)", "loss": self.loss, "ratio": 1.0}]
        rows += [
            {"schedule": n, "loss": v["loss"], "ratio": v["loss"] / self.loss}
            for n, v in sorted(self.baselines.items(), key=lambda kv: kv[1]["loss"])
        ]
        return rows

    def schedule(self):
        """The recommended schedule as an optax schedule (warns past T)."""
        return to_optax(self.lr)

    def write(self, out: str | Path) -> list[Path]:
        """Write ``schedule.csv`` (step, lr), ``schedule.py`` (an optax schedule) and
        ``advice.json`` into ``out``; returns the paths."""
        out = Path(out)
        csv_text = "step,lr\n" + "".join(f"{t},{v:.10g}\n" for t, v in enumerate(self.lr))
        write_text(out / "schedule.csv", csv_text)
        write_text(out / "schedule.py", self.python())
        write_json(
            out / "advice.json",
            {
                "T": self.T,
                "predicted_final_loss": self.loss,
                "lr_max": self.lr_max,
                "table": self.table(),
                "baselines": {
                    n: {"loss": v["loss"], "params": v["params"]} for n, v in self.baselines.items()
                },
                "recipe": {
                    "kind": self.recipe.kind,
                    "params": self.recipe.params,
                    "rel_error": self.recipe.rel_error,
                    "lr_scale": self.fit.lr_scale,
                },
                "fit": self.fit.to_dict(),
            },
        )
        return [out / "schedule.csv", out / "schedule.py", out / "advice.json"]

    def python(self) -> str:
        """Source of ``schedule.py``: the exact recommended rates (read from schedule.csv next
        to it) as an optax schedule, and the fitted closed form as an alternative."""
        rec = self.recipe.to_python(self.T)  # fitted on the rates in your units
        rec = rec.replace("def schedule(count):", "def closed_form(count):")
        rec = rec.replace("import jax.numpy as jnp\n\n\n", "")
        return (
            f'"""Learning-rate schedule recommended by `rfmodel advise` for T = {self.T} '
            "updates.\n\n"
            "Use: optax.sgd(learning_rate=schedule) (count 0 is the first update). Past T it "
            "holds\nits last rate. `closed_form` is the fitted "
            f"{self.recipe.kind} recipe (rms relative error\n"
            f'{self.recipe.rel_error:.3f} of log-rate).\n"""\n\n'
            "from pathlib import Path\n\n"
            "import jax.numpy as jnp\n"
            "import numpy as np\n\n"
            "_LR = np.loadtxt(Path(__file__).with_name('schedule.csv'), delimiter=',', "
            "skiprows=1, usecols=1)\n\n\n"
            "def schedule(count):\n"
            '    """The rate of update `count` (0 = first)."""\n'
            "    lr = jnp.asarray(_LR, dtype=float)\n"
            "    return lr[jnp.clip(jnp.asarray(count, jnp.int32), 0, lr.shape[0] - 1)]\n\n\n" + rec
        )


#: Baseline families tuned against the recommendation (names of rfmodel.schedules.FAMILIES).
ADVISE_FAMILIES = ("constant", "cosine", "wsd_linear")


@float64
def advise(
    fit: FitResult,
    T: int,
    *,
    lr_max: float | None = None,
    controls: int | None = None,
    batch: float | None = None,
    families: Sequence[str] = ADVISE_FAMILIES,
) -> Advice:
    """The schedule the fitted model recommends for ``T`` updates, and tuned baselines.

    The optimal schedule of the fitted problem (:func:`rfmodel.control.optimize_schedule`, K
    piecewise-constant controls) with rates capped at ``lr_max`` (default: the largest rate in
    the curves: the model was not checked beyond it); every baseline family tuned on the same
    model under the same cap (:func:`rfmodel.schedules.tune`).
    """
    if isinstance(T, bool) or not isinstance(T, int | np.integer) or T < 2:
        raise ValueError(f"T must be an integer >= 2; got T={T!r}")
    lr_max = fit.lr_max if lr_max is None else float(lr_max)
    if not math.isfinite(lr_max) or lr_max <= 0:
        raise ValueError(f"lr_max must be a finite number > 0; got lr_max={lr_max!r}")
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"families must be names from {sorted(FAMILIES)}; got {unknown}")
    k = fit.stride
    Tm = math.ceil(T / k)
    m = (fit.batch if batch is None else float(batch)) * k
    problem = fit.problem(batch=m)
    eta_max = min(fit.lr_scale * lr_max * k, problem.eta_mode_bound())
    K = min(Tm, 200) if controls is None else int(controls)
    opt = optimize_schedule(problem, Tm, controls=K, eta_max=eta_max)

    def to_lr(etas):
        return np.repeat(np.asarray(etas) / (fit.lr_scale * k), k)[:T]

    baselines = {}
    for name in families:
        fam = FAMILIES[name]
        params = tuple(
            replace(p, lo=p.lo * eta_max, hi=p.hi * eta_max, scale="") if p.scale == "eta" else p
            for p in fam.params
        )
        r = tune(replace(fam, params=params), problem, Tm)
        conv = {
            n: (v / (fit.lr_scale * k) if any(p.name == n and p.scale for p in fam.params) else v)
            for n, v in r.params.items()
        }
        baselines[name] = {
            "loss": fit.floor + fit.loss_scale * r.loss,
            "params": conv,
            "lr": to_lr(r.etas),
        }
    _, xi = horizon_rule(fit.a, fit.b)
    lr = to_lr(opt.etas)
    # The closed form that describes this schedule best (a schedule held at the rate cap looks
    # like WSD even in the easy phase): mean absolute error relative to the mean rate.
    recipes = [fit_recipe(lr, phase=ph, xi=xi) for ph in ("easy", "hard")]
    recipe = min(recipes, key=lambda r: float(np.mean(np.abs(r.as_array(T) - lr))))
    return Advice(
        T=int(T),
        lr=lr,
        predicted=fit.floor + fit.loss_scale * np.asarray(opt.curve),
        loss=fit.floor + fit.loss_scale * opt.loss,
        baselines=baselines,
        recipe=recipe,
        fit=fit,
        lr_max=lr_max,
    )
