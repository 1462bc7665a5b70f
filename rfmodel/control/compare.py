"""The main job as a library call: the optimal schedule against every tuned baseline family on
the same dynamics (what ``rfmodel optimize`` prints and writes).

:func:`solve_and_compare` solves the optimum (optionally its monotone variant and the other choice
of controls, per step vs K), tunes each baseline family (:func:`rfmodel.schedules.tune`) under the
same rate cap, and returns a :class:`Comparison`: the table of final losses and ratios, the solved
results, and, with the batch or the momentum optimized, the optimum of the rate alone and what
integer batches cost. :meth:`Comparison.write` writes the run folder.

>>> from rfmodel import Problem
>>> p = Problem(a=2.5, b=1.2, sigma=0.5, n_modes=100, batch=4)
>>> c = solve_and_compare(p, 200, families=["constant", "cosine"])
>>> [r["schedule"] for r in c.rows], c.rows[0]["ratio_to_optimal"]
(['optimal', 'cosine', 'constant'], 1.0)
>>> all(r["ratio_to_optimal"] > 1 for r in c.rows[1:])
True
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..dynamics import loss_curve
from ..problem import Problem
from ..results import save_result, write_json, write_text
from ..schedules import FAMILIES, OPTAX_FAMILIES, TuneResult, tune
from .batch import integer_batches
from .controls import CONTROLS, optimize_names, validate_batch
from .result import ScheduleResult
from .solver import lowering_rate, optimize_schedule

__all__ = [
    "HARD_DEFAULT_CONTROLS",
    "EASY_MAX_CONTROLS",
    "default_controls",
    "integer_batch_costs",
    "Comparison",
    "CompareSetup",
    "setup_comparison",
    "run_comparison",
    "solve_and_compare",
    "check_eta_max",
    "write_schedule",
    "controls_label",
]

#: Controls of the default hard-phase schedule: K = min(T, this) piecewise-constant rates.
HARD_DEFAULT_CONTROLS = 100
#: Easy phase: one control per step up to this T, then this many (the solver's L-BFGS-B keeps
#: 2 × 50 vectors of K numbers: 0.8 GB for K = 10^6 per-step controls, 3 MB for K = 4096).
EASY_MAX_CONTROLS = 4096
#: How tables name each control.
SYMBOL = {"eta": "eta", "batch": "m", "momentum": "beta"}


def default_controls(phase: str, T: int) -> int | None:
    """The default K (None: one control per step): K = min(T, 100) in the hard phase, whose
    per-step optimum alternates long and short steps (η jumping ~0.9 ↔ 1.6 for a = 1.5, b = 2.5);
    one per step in the easy phase, where it is smooth, up to K = 4096."""
    if phase == "hard":
        return min(T, HARD_DEFAULT_CONTROLS)
    return None if T <= EASY_MAX_CONTROLS else EASY_MAX_CONTROLS


def controls_label(K: int | None) -> str:
    """``"per step"`` or ``"K=100"``."""
    return "per step" if K is None else f"K={K}"


def integer_batch_costs(problem: Problem, result: ScheduleResult) -> dict[str, Any]:
    """What rounding an optimized batch schedule to integers costs.

    Integer batches with the same total (:func:`integer_batches`, cumulative rounding), with the
    rates rescaled to keep η_t/m_t per step (``eta_int``, capped at the solve's η_max) or
    unchanged. Returns the per-step ``batch_int`` and ``eta_int`` and both final losses."""
    if result.batches is None:
        raise ValueError("result: not a solve with the batch optimized (no batches)")
    m_int = integer_batches(result.batches)
    eta_int = np.minimum(result.etas * m_int / result.batches, result.config["eta_max"])
    m = m_int.astype(np.float64)
    return {
        "batch_int": m_int,
        "eta_int": eta_int,
        "loss_integer_batches": float(loss_curve(problem, eta_int, m, result.betas)[-1]),
        "loss_integer_batches_same_rates": float(
            loss_curve(problem, result.etas, m, result.betas)[-1]
        ),
    }


@dataclass(frozen=True)
class Comparison:
    """The optimum against the tuned baselines (:func:`solve_and_compare`).

    Attributes:
        problem: the problem the baselines and the reference ran on (with the batch optimized:
            at the constant batch S/T).
        T: the horizon.
        optimal: the exported optimum (the monotone one when asked for).
        solved: every solved optimum as (label, result, K): the exported one first.
        reference: with the batch or the momentum optimized, the optimum of the rate alone
            (plain SGD at the constant batch S/T); else None.
        baselines: the tuned families by name.
        rows: the table, one dict per schedule (``schedule``, ``loss``, ``ratio_to_optimal``,
            ``params``, ``seconds``, ``note``): the optima first, then the baselines, best first.
        extra: with the batch optimized, the integer-batch costs; with the momentum, the gain
            over plain SGD.
        config: the settings that changed the answer.
        wall_time: seconds.
    """

    problem: Problem
    T: int
    optimal: ScheduleResult = field(repr=False)
    solved: list[tuple[str, ScheduleResult, int | None]] = field(repr=False)
    reference: ScheduleResult | None = field(repr=False)
    baselines: dict[str, TuneResult] = field(repr=False)
    rows: list[dict[str, Any]] = field(repr=False)
    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    config: dict[str, Any] = field(default_factory=dict)
    wall_time: float = 0.0

    def table_lines(self) -> list[str]:
        """The table as text lines (what ``rfmodel optimize`` prints)."""
        cap = self.config.get("eta_max")
        cap = "" if cap is None else f" (every schedule with η <= {cap:g})"
        lines = [f"{'schedule':28s} {'L(T)':>12s} {'ratio':>8s}  tuned parameters / note{cap}"]
        for r in self.rows:
            params = ", ".join(f"{k}={v:.4g}" for k, v in r["params"].items())
            info = params or f"{r['note']}, {r['seconds']:.1f} s"
            lines.append(
                f"{r['schedule']:28s} {r['loss']:12.6g} {r['ratio_to_optimal']:8.4f}  {info}"
            )
        return lines

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (``summary.json`` of the run folder)."""
        ref = {}
        if self.reference is not None:
            batch = self.optimal.batches is not None
            ref = {"constant_batch" if batch else "sgd": self.reference.metadata()}
        extra = {k: v for k, v in self.extra.items() if not isinstance(v, np.ndarray)}
        return {
            "problem": self.problem.config(),
            "T": self.T,
            "config": self.config,
            "theory": vars(self.problem.theory()),
            "eta_critical": self.problem.eta_critical(),
            "table": self.rows,
            "optimal": self.optimal.metadata(),
            **ref,
            **extra,
            "wall_time": self.wall_time,
        }

    def schedule_columns(self) -> dict[str, np.ndarray] | None:
        """Per-step columns of ``schedule.csv`` with the batch or the momentum optimized
        (``step, eta`` [``batch, batch_int, eta_int``] [``beta``]); None for the rate alone."""
        opt = self.optimal
        if self.reference is None:
            return None
        cols: dict[str, np.ndarray] = {"step": np.arange(self.T), "eta": opt.etas}
        if opt.batches is not None:
            cols.update(
                batch=opt.batches, batch_int=self.extra["batch_int"], eta_int=self.extra["eta_int"]
            )
        if opt.betas is not None:
            cols["beta"] = opt.betas
        return cols

    def figure(self, title: str = ""):
        """η(t) and L(t) of the optimum and the baselines (and m(t), β(t) when optimized)."""
        from ..plotting import optimize_figure

        opt = self.optimal
        shown = {
            n: {"etas": r.etas, "curve": r.curve, "loss": r.loss} for n, r in self.baselines.items()
        }
        if self.reference is not None:
            ref = self.reference
            shown[self.rows[1]["schedule"]] = {
                "etas": ref.etas,
                "curve": ref.curve,
                "loss": ref.loss,
            }
        best = {
            "etas": opt.etas,
            "curve": opt.curve,
            "loss": opt.loss,
            "batches": opt.batches,
            "betas": opt.betas,
        }
        return optimize_figure(best, shown, title)

    def write(self, out: str | Path, title: str = "") -> list[Path]:
        """Write the run folder: ``optimal.npz/.json`` (+ ``optimal_alternative{i}``),
        ``table.csv``, ``summary.json``, ``baselines.npz/.json``, ``schedule.csv/.json`` (batch
        or momentum optimized) and ``optimize.png``; returns the files' paths."""
        from ..plotting import save_figure

        out = Path(out)
        self.optimal.save(out / "optimal")
        for i, (_, r, _) in enumerate(self.solved[1:]):
            r.save(out / f"optimal_alternative{i + 1}")
        csv = "schedule,loss,ratio_to_optimal,params\n" + "".join(
            f"{r['schedule']},{r['loss']:.10g},{r['ratio_to_optimal']:.6f},"
            f'"{";".join(f"{k}={v:.6g}" for k, v in r["params"].items())}"\n'
            for r in self.rows
        )
        write_text(out / "table.csv", csv)
        paths = [out / "optimal.json", out / "table.csv"]
        cols = self.schedule_columns()
        if cols is not None:
            meta = {"samples": self.optimal.config["samples"]} if "batch" in cols else {}
            paths += write_schedule(out, cols, meta)
        write_json(out / "summary.json", self.summary())
        save_result(
            out / "baselines",
            {
                f"{n}_{k}": getattr(v, k)
                for n, v in self.baselines.items()
                for k in ("etas", "curve")
            },
            {n: {"loss": v.loss, "params": v.params} for n, v in self.baselines.items()},
        )
        paths += [out / "summary.json", out / "baselines.json"]
        paths.append(save_figure(self.figure(title), out / "optimize.png"))
        return paths


def write_schedule(out: Path, columns: dict[str, np.ndarray], meta: dict[str, Any]) -> list[Path]:
    """``schedule.csv`` and ``schedule.json``: one row per step, for a data loader or an optimizer
    to read per step."""
    fmt = [
        ("{:d}" if np.issubdtype(np.asarray(v).dtype, np.integer) else "{:.12g}")
        for v in columns.values()
    ]
    rows = "".join(
        ",".join(f.format(x) for f, x in zip(fmt, row, strict=True)) + "\n"
        for row in zip(*(np.asarray(v).tolist() for v in columns.values()), strict=True)
    )
    write_text(out / "schedule.csv", ",".join(columns) + "\n" + rows)
    write_json(
        out / "schedule.json", {**{k: np.asarray(v).tolist() for k, v in columns.items()}, **meta}
    )
    return [out / "schedule.csv", out / "schedule.json"]


def check_eta_max(problem: Problem, T: int, eta_max: float, *, name: str = "eta_max") -> None:
    """``eta_max`` must allow a rate that lowers the loss within T steps (the solver's start,
    :func:`rfmodel.control.solver.lowering_rate`); the error names it ``name`` (e.g. a flag)."""
    lowering_rate(problem, T, eta_max=eta_max, name=name)


@dataclass(frozen=True)
class CompareSetup:
    """The validated settings of a comparison (:func:`setup_comparison`), before any solve:
    the problem the references run on, K and the other choice of controls, the solver keywords
    of the joint controls, and ``config`` (every setting that changes the answer)."""

    problem: Problem
    T: int
    K: int | None
    alt_K: int | None | str
    names: tuple[str, ...]
    joint_kw: dict[str, Any]
    families: list[str]
    eta_max: float | None
    smoothness: float
    monotone: bool
    compare: bool
    config: dict[str, Any]


def setup_comparison(
    problem: Problem,
    T: int,
    *,
    controls: int | None | str = "auto",
    families: Sequence[str] | None = None,
    eta_max: float | None = None,
    smoothness: float = 0.0,
    monotone: bool = False,
    compare: bool | None = None,
    optimize: Sequence[str] | str = ("eta",),
    samples: float | None = None,
    batch_min: float | None = None,
    batch_max: float | None = None,
    beta_max: float | None = None,
) -> CompareSetup:
    """Check the settings of :func:`solve_and_compare` (same arguments) without solving
    anything; raises ``ValueError`` naming the argument that does not apply."""
    names = optimize_names(optimize)
    joint = names != ("eta",)
    known = [*FAMILIES, *OPTAX_FAMILIES]
    families = list(FAMILIES) if families is None else list(families)
    unknown = [f for f in families if f not in known]
    if unknown or not families:
        raise ValueError(f"families must be names from {known}; got {families}")
    kw: dict[str, Any] = {}
    if joint:
        kw["optimize"] = tuple(c for c in CONTROLS if c in names)
    if "batch" in names:
        S, lo, hi = validate_batch(
            problem,
            T,
            names,
            T * problem.batch if samples is None else samples,
            batch_min,
            batch_max,
            None,
        )
        kw.update(samples=S, batch_min=lo, batch_max=hi)
        problem = dataclasses.replace(problem, batch=S / T)  # the references run at m = S/T
    elif any(v is not None for v in (samples, batch_min, batch_max)):
        raise ValueError("samples, batch_min and batch_max need the batch optimized")
    if "momentum" in names:
        kw["beta_max"] = beta_max
    elif beta_max is not None:
        raise ValueError("beta_max needs the momentum optimized")
    if controls == "auto":
        K = default_controls(problem.phase, T)
    elif controls is not None and not (isinstance(controls, int) and 1 <= controls <= T):
        raise ValueError(
            f"controls must be 'auto', None (per step) or an integer in [1, T={T}]; "
            f"got {controls!r}"
        )
    else:
        K = None if controls == T else controls
    if compare is None:
        compare = problem.phase == "hard" and not joint
    alt_K = (min(T, HARD_DEFAULT_CONTROLS) if K is None else None) if compare else "none"
    config: dict[str, Any] = {
        "problem": problem.config(),
        "T": T,
        "controls": K,
        "eta_max": eta_max,
        "smoothness": smoothness,
        "monotone": monotone,
        "families": families,
        "compare": alt_K,
    }
    if joint:
        config["joint"] = {k: list(v) if isinstance(v, tuple) else v for k, v in kw.items()}
    if eta_max is not None:
        check_eta_max(problem, T, eta_max)
    return CompareSetup(
        problem=problem,
        T=T,
        K=K,
        alt_K=alt_K,
        names=names,
        joint_kw=kw,
        families=families,
        eta_max=eta_max,
        smoothness=smoothness,
        monotone=monotone,
        compare=bool(compare),
        config=config,
    )


def solve_and_compare(
    problem: Problem,
    T: int,
    *,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    **settings: Any,
) -> Comparison:
    """The optimal schedule for T steps against every tuned baseline family (the main job).

    Args:
        problem: the :class:`~rfmodel.Problem`.
        T: number of steps.
        progress: progress bars (solver iterations, families).
        log: called with a status line after the solve (e.g. ``print``).
        **settings: the settings of :func:`setup_comparison`:

            - ``controls``: K piecewise-constant controls, ``None`` for one per step, or
              ``"auto"`` (:func:`default_controls`);
            - ``families``: baseline families to tune (default every one of
              :data:`rfmodel.schedules.FAMILIES`; optax's factories
              :data:`rfmodel.schedules.OPTAX_FAMILIES` too);
            - ``eta_max``: cap on every rate, for the optimum and the baselines alike (their
              η-scale parameters are capped); default the per-step stability bound;
            - ``smoothness``: κ of the solver's smoothness penalty;
            - ``monotone``: also solve the best schedule whose rate is non-increasing after its
              warmup and export it;
            - ``compare``: also solve the other choice of controls (per step vs K); default on
              in the hard phase for the rate alone;
            - ``optimize``, ``samples``, ``batch_min``, ``batch_max``, ``beta_max``: the
              controls optimized jointly with the rate
              (:func:`rfmodel.control.optimize_schedule`); with the batch optimized the
              reference schedules run at the constant batch S/T.

    Returns:
        :class:`Comparison`. Raises ``ValueError`` (naming the argument) for a setting that does
        not apply, before any solve.
    """
    return run_comparison(setup_comparison(problem, T, **settings), progress=progress, log=log)


def run_comparison(
    setup: CompareSetup, *, progress: bool = False, log: Callable[[str], None] | None = None
) -> Comparison:
    """Solve and tune what ``setup`` (:func:`setup_comparison`) describes."""
    t0 = time.perf_counter()
    problem, T, K, alt_K, kw = setup.problem, setup.T, setup.K, setup.alt_K, setup.joint_kw
    names, joint = setup.names, setup.names != ("eta",)
    solve = dict(eta_max=setup.eta_max, smoothness=setup.smoothness, progress=progress)
    main = optimize_schedule(problem, T, controls=K, **solve, **kw)
    solved = [(controls_label(K), main, K)]
    # Warm starts from the main optimum: every optimized control of it.
    start = {"eta": main.etas, "batch": main.batches, "momentum": main.betas}
    start = {k: v for k, v in start.items() if k in names} if joint else main.etas
    if setup.compare:  # what the other choice costs (hard phase: per-step long steps vs smooth K)
        alt = optimize_schedule(problem, T, controls=alt_K, init=start, **solve, **kw)
        solved.append((controls_label(alt_K), alt, alt_K))
    if setup.monotone:  # non-increasing after the warmup (the part before the peak)
        mono = optimize_schedule(problem, T, controls=K, init=start, monotone=True, **solve, **kw)
        solved.insert(0, (f"{controls_label(K)}, monotone", mono, K))
    label, opt, _ = solved[0]
    if log is not None:
        what = " and ".join(SYMBOL[n] for n in names)
        what = f"optimal ({label})" if not joint else f"optimal {what} ({label})"
        log(
            f"{what}: L(T) = {opt.loss:.6g} ({opt.iterations} iterations, {opt.message}, "
            f"{opt.wall_time:.1f} s)"
        )
    baselines = {}
    it = setup.families
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(setup.families, desc="tuning baselines", unit="family")
    for name in it:
        if progress:
            it.set_postfix_str(name)
        baselines[name] = tune(name, problem, T, eta_max=setup.eta_max)
    rows = [
        {
            "schedule": "optimal" if i == 0 else f"optimal, {lab}",
            "controls": lab,
            "loss": r.loss,
            "ratio_to_optimal": r.loss / opt.loss,
            "params": {},
            "seconds": r.wall_time,
            "note": (
                f"{lab}, exported (optimal.npz)"
                if i == 0
                else ("--per-step" if k is None else f"--controls {k}")
                + f"; optimal_alternative{i}.npz"
            ),
        }
        for i, (lab, r, k) in enumerate(solved)
    ]
    reference = None
    extra: dict[str, Any] = {}
    if joint:  # the optimum of the rate alone (plain SGD, at the constant batch S/T)
        reference = optimize_schedule(
            problem, T, controls=K, **{**solve, "eta_max": opt.config["eta_max"]}
        )
        rows[0]["schedule"] = "optimal " + " and ".join(SYMBOL[n] for n in kw["optimize"])
        batch = "batch" in names
        rows.insert(
            1,
            {
                "schedule": f"optimal eta at m={problem.batch:g}" if batch else "optimal eta, SGD",
                "controls": controls_label(K),
                "loss": reference.loss,
                "ratio_to_optimal": reference.loss / opt.loss,
                "params": {},
                "seconds": reference.wall_time,
                "note": "the rate alone"
                + (" at the constant batch S/T" if batch else "")
                + (", no momentum" if opt.betas is not None else ""),
            },
        )
        if batch:
            extra.update(integer_batch_costs(problem, opt))
        if opt.betas is not None:
            extra.update(gain_over_sgd=reference.loss / opt.loss, loss_sgd=reference.loss)
    rows += [
        {
            "schedule": n,
            "loss": r.loss,
            "ratio_to_optimal": r.loss / opt.loss,
            "params": r.params,
            "seconds": None,
            "note": "",
        }
        for n, r in sorted(baselines.items(), key=lambda kv: kv[1].loss)
    ]
    return Comparison(
        problem=problem,
        T=T,
        optimal=opt,
        solved=solved,
        reference=reference,
        baselines=baselines,
        rows=rows,
        extra=extra,
        config=setup.config,
        wall_time=time.perf_counter() - t0,
    )
