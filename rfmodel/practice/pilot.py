"""The pilot plan: which short runs to train before a long one, so that the advice
(:func:`rfmodel.practice.advise_runs`) is pinned down (``rfmodel pilot``).

What the advice needs from the pilots, and the part of the plan that gives it:

- **where the best peak is** at the pilot horizon: an LR sweep of scaled copies of one schedule
  (cosine), three peaks a factor 3 apart around your usual rate, so the best one is bracketed
  and the advice's peaks are anchored on it;
- **what a schedule's shape does** (how much annealing buys over holding the rate): a constant
  run at the usual rate beside the decaying ones, which separates the noise level from the
  time scale in the fit;
- **where training stops being stable**: the top of the sweep; a pilot that diverges is
  information, not waste (the advice keeps its rates below it);
- **as little extrapolation as possible**: every pilot as long as the budget allows, a quarter
  of the run advised.

With fewer runs the plan drops, in order, the sweep's low end (2 sweep points and the constant)
and then the constant (a 2-point sweep). ``advise`` names the extra pilot that would help most
when the data leave the advice undetermined (``Advice.next_pilot``).

>>> plan = plan_pilots(4000, lr=0.1)
>>> [p.name for p in plan], [round(p.peak, 4) for p in plan], {p.steps for p in plan}
(['cosine_lr/3', 'cosine_lr', 'cosine_3lr', 'constant_lr'], [0.0333, 0.1, 0.3, 0.1], {1000})
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..problem import check_positive
from ..results import write_json, write_text
from ..schedules import as_array, constant, cosine

__all__ = ["Pilot", "plan_pilots", "write_plan", "MAX_PILOTS", "SWEEP_FACTOR"]

#: At most this many pilot runs (each at most T/4 steps): what a practitioner spends before a
#: long run.
MAX_PILOTS = 4
#: Ratio of neighbouring peaks of the pilots' LR sweep.
SWEEP_FACTOR = 3.0


@dataclass(frozen=True)
class Pilot:
    """One pilot run: a schedule family, its peak rate, its length in steps."""

    name: str
    schedule: str
    peak: float
    steps: int

    def rates(self) -> np.ndarray:
        """Per-update rates, shape ``(steps,)`` (optax conventions, count 0 the first update)."""
        s = cosine(self.peak, self.steps) if self.schedule == "cosine" else constant(self.peak)
        return np.asarray(as_array(s, self.steps), np.float64)


def plan_pilots(T: int, *, lr: float, budget: int = MAX_PILOTS) -> list[Pilot]:
    """The pilot plan for a run of ``T`` updates whose usual peak rate is ``lr`` (module
    docstring): at most ``budget`` runs (2 to :data:`MAX_PILOTS`) of ⌊T/4⌋ steps."""
    if isinstance(T, bool) or not isinstance(T, int | np.integer) or T < 8:
        raise ValueError(f"T must be an integer >= 8 (pilots of T/4 >= 2 steps); got T={T!r}")
    check_positive("lr", lr, "a finite rate > 0 (your usual peak rate)")
    if isinstance(budget, bool) or not isinstance(budget, int | np.integer):
        raise ValueError(f"budget must be an integer in [2, {MAX_PILOTS}]; got {budget!r}")
    if not 2 <= budget <= MAX_PILOTS:
        raise ValueError(f"budget must be an integer in [2, {MAX_PILOTS}]; got budget={budget}")
    n, lr, f = int(T) // 4, float(lr), SWEEP_FACTOR
    sweep = [("cosine_lr/3", lr / f), ("cosine_lr", lr), ("cosine_3lr", lr * f)]
    plan = [Pilot(name, "cosine", peak, n) for name, peak in sweep]
    plan.append(Pilot("constant_lr", "constant", lr, n))
    drop = {4: (), 3: ("cosine_lr/3",), 2: ("cosine_lr/3", "constant_lr")}[int(budget)]
    return [p for p in plan if p.name not in drop]


def write_plan(plan: list[Pilot], out: str | Path, T: int) -> list[Path]:
    """``pilots.csv`` (name, schedule, peak, steps), ``pilots.json`` (the same and why) and
    ``pilot_schedules.csv`` (``run, step, lr``: every update's rate, the format of
    ``rfmodel fit --schedule``) into ``out``; returns the paths."""
    out = Path(out)
    rows = "".join(f"{p.name},{p.schedule},{p.peak:.10g},{p.steps}\n" for p in plan)
    write_text(out / "pilots.csv", "name,schedule,peak,steps\n" + rows)
    sched = "".join(
        f"{p.name},{t},{v:.10g}\n" for p in plan for t, v in enumerate(p.rates().tolist())
    )
    write_text(out / "pilot_schedules.csv", "run,step,lr\n" + sched)
    record: dict[str, Any] = {
        "T": int(T),
        "pilots": [asdict(p) for p in plan],
        "log": "log the loss of each pilot every few steps as rows run,step,lr,loss (the name "
        "as run), then: rfmodel advise CURVES.csv --T T",
        "why": __doc__.split("\n\n")[1],
    }
    write_json(out / "pilots.json", record)
    return [out / "pilots.csv", out / "pilots.json", out / "pilot_schedules.csv"]
