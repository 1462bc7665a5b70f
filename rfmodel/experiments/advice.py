"""The practitioner's benchmark: does schedule advice from a pilot budget beat what
practitioners do with the same pilots, and match schedules tuned at the target horizon?

Tasks (:mod:`rfmodel.experiments._nets`, plain SGD): ``teacher`` (online teacher–student
regression, a one-hidden-layer ReLU student, power-law input covariance), ``digits`` (MLP on
scikit-learn's digits, training-set loss), ``chars`` (character-level transformer, held-out
loss), ``digits_cnn`` (small CNN on noisy digits, population loss) and the sanity row
``linear`` (the linear random-feature model, where the theory is exact).

Per task (:mod:`rfmodel.experiments._bench`): a pilot budget of at most 4 runs of T0 steps (the
default plan: cosine at 1/3, 1 and 3 × the task's nominal rate and a constant at the nominal
rate); the advice (pluggable; ``advice`` in the config, default today's ``rfmodel.fit`` fit +
advise) for T = 4·T0 and 16·T0; against (a) cosine and WSD at the best pilot peak, held at T and
transferred by peak × (T/T0)^(−1/2), and (b) constant, cosine and WSD tuned at T on a grid that
is extended until its best point is interior. Every line is trained on 5 paired evaluation
seeds; reported: final loss mean ± SE, the paired ratio advised / line with a 95% t-interval,
tuning cost (runs × steps), whether the predicted final loss is within 3% of the measured one.
Plus a suite of logged curves per task for judging fits (:func:`rfmodel.experiments._bench.
suite_runs`).

Usage: ``python -m rfmodel.experiments.advice [--quick] [--out DIR]``. To measure another
advice design (or pilot plan), change the config; only its own stages are recomputed::

    from rfmodel.experiments import advice
    from rfmodel.runner import run_tasks

    cfg = advice.config(quick=False)
    cfg["advice"] = {"name": "mypackage.module:my_advice", "kwargs": {}}  # advise_fn(runs, T)
    cfg["bench"]["pilots"] = [{"family": "constant", "lr": 1.0}, ...]  # optional, ≤ 4 runs
    run_tasks(advice.tasks(cfg, "results"))
    print(advice.summarize(cfg, "results")["readme"])

The curves for judging fits: :func:`suite` (``advice.suite("teacher", "results")``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..practice import METRICS
from ..runner import Task
from . import _bench
from ._bench import GROUP, LINES, ORACLE, PRACTITIONER
from ._cli import experiment_main
from ._common import plt
from ._format import Figure, finish, md_table

__all__ = [
    "config",
    "tasks",
    "run_unit",
    "suite",
    "summarize",
    "laws_summary",
    "plot",
    "table_rows",
    "main",
    "SPS",
    "LAWS_GOAL",
]

#: Measured training throughput (run-steps per second, 5 runs per vmap, one XLA thread, logged
#: every T/25 steps, on a 2-core machine shared with other jobs, load ≈ 3.7) of the full-size
#: tasks: the unit of the tasks' ``cost`` (estimated seconds on one core). Conservative: the
#: full teacher cell at T = 16·T0 (logged every T/100) ran at 14 000 run-steps/s. Quick tasks:
#: as fast as ``teacher``.
SPS = {"teacher": 7600.0, "digits": 4400.0, "chars": 920.0, "digits_cnn": 2170.0}
#: Seconds of one compilation (first call of a horizon) per task; the linear task has none.
COMPILE_S = {"teacher": 4.0, "digits": 5.0, "chars": 10.0, "digits_cnn": 10.0}
#: Seconds of today's fit (4 starts, profile; once per process) and of one advise call, full
#: size (measured on the teacher task: 13 s for both at T = 16·T0).
FIT_S, ADVISE_S = 15.0, 5.0
#: Seconds of the laws comparison on one task's suite (three fits, full size; measured 1-5 s).
LAWS_S = 10.0


def _bench_cfg(quick: bool) -> dict[str, Any]:
    return {
        "pilots": [dict(s) for s in _bench.DEFAULT_PILOTS],
        "pilot_seed": 200,
        "horizons": [4, 16],
        "eval_seeds": [0, 1, 2] if quick else [0, 1, 2, 3, 4],
        "tuning_seeds": [100] if quick else [100, 101],
        "grid": {
            "ratio": 2.0 if quick else round(2**0.5, 6),
            "points": 3 if quick else 5,
            "step": 1 if quick else 2,
            "max_extend": 12,
        },
        "wsd_decays": [0.1, 0.2, 0.4],
        "transfer_exponent": 0.5,
        "log_points": 20 if quick else 100,
        "suite": {
            "seeds": [300, 301] if quick else list(range(300, 332)),
            "lr": 1.0,
            "long": 4,
            "two_stage": {"at": 0.5, "drop": 0.25},
            "wsd_decay": 0.2,
        },
    }


_LINEAR = {
    "task": "linear",
    "a": 2.5,
    "b": 1.2,
    "sigma": 0.3,
    "batch": 4,
    "n_modes": 10**8,
    "n_exact": 32,
    "bins_per_decade": 12,
}


def config(quick: bool) -> dict[str, Any]:
    """Tasks, benchmark settings and the advice (quick: tiny tasks, 3 seeds, coarse grids).

    A task's nominal rate ``lr`` centres the default pilot sweep and the oracle's starting grid:
    the best cosine peak at T0 of a coarse probe (peaks a factor √3 apart, one seed, 999, used
    nowhere else), rounded; the linear task's is half its stability bound. It is the same for
    every line, and the oracle's grids are extended past it wherever needed.
    """
    if quick:
        teacher = {
            "task": "teacher",
            "dim": 16,
            "b": 1.5,
            "teacher_width": 4,
            "width": 16,
            "batch": 8,
            "noise": 0.1,
            "n_eval": 256,
            "teacher_seed": 0,
        }
        nets = [
            {"name": "teacher", "net": teacher, "T0": 40, "every": 4, "lr": 0.1},
            {"name": "linear", "net": _LINEAR, "T0": 100, "every": 5, "lr": 0.5, "real": False},
        ]
        advice = {
            "name": "robust",
            "kwargs": {"fit": {"starts": 1, "profile": False}, "advise": {"controls": 20}},
        }
    else:
        nets = [
            {
                "name": "teacher",
                "net": {
                    "task": "teacher",
                    "dim": 64,
                    "b": 1.5,
                    "teacher_width": 16,
                    "width": 128,
                    "batch": 32,
                    "noise": 0.1,
                    "n_eval": 4096,
                    "teacher_seed": 0,
                },
                "T0": 500,
                "every": 20,
                "lr": 0.3,
            },
            {
                "name": "digits",
                "net": {"task": "digits", "n_train": 1500, "width": 128, "batch": 32},
                "T0": 250,
                "every": 10,
                "lr": 0.5,
            },
            {
                "name": "chars",
                "net": {
                    "task": "chars",
                    "ctx": 32,
                    "batch": 8,
                    "d": 32,
                    "layers": 1,
                    "heads": 4,
                    "val_seqs": 32,
                },
                "T0": 200,
                "every": 8,
                "lr": 1.5,
            },
            {
                "name": "digits_cnn",
                "net": {
                    "task": "digits_cnn",
                    "n_train": 1500,
                    "channels": [4, 8],
                    "batch": 32,
                    "input_noise": 0.5,
                    "eval_copies": 1,
                    "n_eval": 500,
                },
                "T0": 250,
                "every": 10,
                "lr": 0.5,
            },
            {"name": "linear", "net": _LINEAR, "T0": 1000, "every": 40, "lr": 0.5, "real": False},
        ]
        advice = {"name": "robust", "kwargs": {"version": 4}}
    for n in nets:
        n.setdefault("group", 5)
        n.setdefault("real", True)
    return {"nets": nets, "bench": _bench_cfg(quick), "advice": advice, "quick": quick}


# ----------------------------------------------------------------------------- units
def _net(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    for n in cfg["nets"]:
        if n["name"] == name:
            return n
    raise ValueError(f"advice: no task named {name!r} in the config")


def run_unit(results_dir: str, cfg: dict[str, Any], task: str, unit: str) -> dict[str, Any]:
    """One unit of a task: ``oracle_T<T>``, ``advice`` (pilots, then the practitioner lines and
    the advised schedule at every T) or ``suite`` (the suite, then the laws comparison on it);
    every stage is saved as it finishes."""
    net, bench = _net(cfg, task), cfg["bench"]
    if unit.startswith("oracle_T"):
        _bench.run_oracle(results_dir, net, bench, int(unit[len("oracle_T") :]))
    elif unit == "advice":
        _bench.pilots(results_dir, net, bench)
        for T in _bench.horizons(net, bench):
            _bench.run_practitioner(results_dir, net, bench, T)
            _bench.run_advised(results_dir, net, bench, T, cfg["advice"])
    elif unit == "suite":
        _bench.run_suite(results_dir, net, bench)
        _bench.run_laws(results_dir, net, bench)
    else:
        raise ValueError(f"advice: unknown unit {unit!r}")
    return {"task": task, "unit": unit}


def suite(
    task: str, results_dir: str | Path, *, quick: bool = False, compute: bool = True
) -> dict[str, Any] | None:
    """The fit-judging suite of one task of :func:`config` (computed and saved if missing unless
    ``compute=False``): ``{"fit": [Run], "test": [Run], "lr": {name: per-update rates},
    "losses": {name: (seeds, points)}, "seeds", "every"}``
    (:func:`rfmodel.experiments._bench.suite_runs`)."""
    cfg = config(quick)
    return _bench.suite_runs(results_dir, _net(cfg, task), cfg["bench"], compute=compute)


def _run_steps(net: dict[str, Any], bench: dict[str, Any], unit: str) -> tuple[float, int]:
    """(estimated run-steps, compilations) of a unit."""
    n_eval, n_tune = len(bench["eval_seeds"]), len(bench["tuning_seeds"])
    T0 = int(net["T0"])
    Ts = _bench.horizons(net, bench)
    if unit.startswith("oracle_T"):
        T = int(unit[len("oracle_T") :])
        pts = int(bench["grid"]["points"])
        configs = (2 + len(bench["wsd_decays"])) * pts + 3 * int(bench["grid"]["step"])
        return float((configs * n_tune + len(ORACLE) * n_eval) * T), 1
    if unit == "advice":
        pilots = sum(_bench.pilot_steps(s, T0) for s in bench["pilots"])
        return float(pilots + (len(PRACTITIONER) + 1) * n_eval * sum(Ts)), 1 + len(Ts)
    long = int(bench["suite"]["long"])
    return float(len(bench["suite"]["seeds"]) * (4 + 3 * long) * T0), 2


def _cost(cfg: dict[str, Any], net: dict[str, Any], unit: str) -> float:
    """Estimated wall seconds on one core (the unit of :attr:`rfmodel.runner.Task.cost`)."""
    steps, compiles = _run_steps(net, cfg["bench"], unit)
    name = net["net"]["task"]
    if name == "linear":
        seconds = steps * 2e-7 + 1.0  # exact loss curves: ~5·10⁶ run-steps per second
    else:
        sps = SPS.get(name, SPS["teacher"])
        seconds = steps / sps + compiles * COMPILE_S.get(name, 4.0)
    scale = 0.1 if cfg["quick"] else 1.0
    if unit == "advice":
        seconds += scale * (FIT_S + ADVISE_S * len(cfg["bench"]["horizons"]))
    elif unit == "suite":
        seconds += scale * LAWS_S
    return seconds


def _unit_done(results_dir, cfg, net, unit) -> bool:
    bench = cfg["bench"]
    try:
        if unit.startswith("oracle_T"):
            T = int(unit[len("oracle_T") :])
            return _bench.load_stage(results_dir, net, bench, "oracle", T) is not None
        if unit == "suite":
            return all(
                _bench.load_stage(results_dir, net, bench, stage) is not None
                for stage in ("suite", "laws")
            )
        for T in _bench.horizons(net, bench):
            for stage in ("practitioner", "advised"):
                adv = cfg["advice"] if stage == "advised" else None
                if _bench.load_stage(results_dir, net, bench, stage, T, adv) is None:
                    return False
        return _bench.load_stage(results_dir, net, bench, "pilots") is not None
    except ImportError:  # no scikit-learn: the unit says so when it runs
        return False


def tasks(cfg: dict[str, Any], results_dir: Path) -> list[Task]:
    """Per task: ``oracle_T<T>`` for each horizon, ``advice`` and ``suite``."""
    out = []
    for net in cfg["nets"]:
        units = [f"oracle_T{T}" for T in _bench.horizons(net, cfg["bench"])] + ["advice", "suite"]
        for unit in units:
            kwargs = {"results_dir": str(results_dir), "cfg": cfg, "task": net["name"]}
            out.append(
                Task(
                    GROUP,
                    "run_unit",
                    {**kwargs, "unit": unit},
                    name=f"{GROUP}/{net['name']}/{unit}",
                    cost=_cost(cfg, net, unit),
                    done=_unit_done(results_dir, cfg, net, unit),
                )
            )
    return out


# ----------------------------------------------------------------------------- summary
def _verdicts(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """The goals the advice is judged on (measured, not enforced)."""
    ok = [c for c in cells if "vs_oracle" in c]
    real = sorted({c["task"] for c in ok if c["real"]})
    both_T = [
        t
        for t in real
        if all(c["matches_oracle"] for c in ok if c["task"] == t)
        and len([c for c in ok if c["task"] == t]) >= 2
    ]
    return {
        "cells": len(cells),
        "advice_failed": [f"{c['task']} T={c['T']}" for c in cells if c.get("error")],
        "beats_practitioner_every_cell": bool(ok) and all(c["beats_practitioner"] for c in ok),
        "beats_practitioner": [f"{c['task']} T={c['T']}" for c in ok if c["beats_practitioner"]],
        "matches_oracle_real_tasks_both_T": both_T,
        "matches_oracle_goal": len(both_T) >= min(3, len(real)) and bool(real),
        "prediction_within_3pct": [f"{c['task']} T={c['T']}" for c in ok if c["prediction_ok"]],
        "prediction_goal": bool(ok) and all(c["prediction_ok"] for c in ok),
    }


#: The laws comparison's goal: rfmodel's mean held-out ``prede`` at most this on average.
LAWS_GOAL = 0.003


def laws_summary(cfg: dict[str, Any], results_dir: Path) -> list[dict[str, Any]]:
    """Per task with a saved laws comparison (:func:`rfmodel.experiments._bench.run_laws`): the
    suite's noise (mean over the test runs of :func:`rfmodel.experiments._bench.suite_noise`)
    and each model's held-out metrics averaged over the test runs (``worste``: the maximum),
    the number of suite seeds and the seeds each run diverged on (``{run: count}``)."""
    out = []
    for net in cfg["nets"]:
        try:
            got = _bench.load_stage(results_dir, net, cfg["bench"], "laws")
        except ImportError:
            continue
        if got is None:
            continue
        meta = got[1]
        noise = [float(v) for v in meta["noise"].values() if v is not None and math.isfinite(v)]
        out.append(
            {
                "task": net["name"],
                "real": bool(net.get("real", True)),
                "noise": float(np.mean(noise)) if noise else math.nan,
                "models": {
                    r["model"]: {k: r[k] for k in METRICS}
                    for r in meta["rows"]
                    if r["run"] == "mean"
                },
                "skipped": dict(meta.get("skipped", {})),
                "seeds": len(cfg["bench"]["suite"]["seeds"]),
                "diverged": {k: int(v) for k, v in meta.get("diverged", {}).items()},
                "seconds": float(meta["seconds"]),
            }
        )
    return out


def _laws_verdicts(laws: list[dict[str, Any]]) -> dict[str, Any]:
    """The goals a fit is judged on with the suite: rfmodel's mean held-out ``prede`` at most the
    better empirical law's on every task, and at most :data:`LAWS_GOAL` on average over the
    tasks (measured, not enforced)."""

    def prede(t, m):
        v = t["models"].get(m, {}).get("prede", math.nan)
        return v if v is not None and math.isfinite(v) else math.inf

    best = [
        t["task"]
        for t in laws
        if prede(t, "rf") <= min((prede(t, m) for m in t["models"] if m != "rf"), default=math.inf)
    ]
    rf = [prede(t, "rf") for t in laws]
    mean = float(np.mean(rf)) if rf else math.nan
    noise = [t["noise"] for t in laws if math.isfinite(t["noise"])]
    return {
        "rf_best": best,
        "rf_best_every_task": bool(laws) and len(best) == len(laws),
        "rf_mean_prede": mean,
        "mean_goal": bool(laws) and mean <= LAWS_GOAL,
        # what a perfect predictor of the seed means scores: the mean goal is reachable on
        # these curves only where this is below it
        "noise_mean_prede": float(np.mean(noise)) if noise else math.nan,
    }


def summarize(cfg: dict[str, Any], results_dir: Path) -> dict[str, Any]:
    """Every (task, T) cell (:func:`rfmodel.experiments._bench.evaluate_cell`), the goals,
    the compute spent and the README text."""
    cells, seconds, run_steps = [], 0.0, 0
    bench = cfg["bench"]
    for net in cfg["nets"]:
        try:
            Ts = _bench.horizons(net, bench)
            for T in Ts:
                c = _bench.evaluate_cell(results_dir, net, bench, T, cfg["advice"])
                if c is not None:
                    cells.append(c)
            stages = [("pilots", None, None), ("suite", None, None)]
            stages += [(s, T, None) for T in Ts for s in ("practitioner", "oracle")]
            stages += [("advised", T, cfg["advice"]) for T in Ts]
            for stage, T, adv in stages:
                got = _bench.load_stage(results_dir, net, bench, stage, T, adv)
                if got is not None:
                    arrays, meta = got
                    seconds += float(meta.get("seconds", 0.0))
                    if stage == "suite":  # every seed of every run
                        run_steps += sum(
                            arrays[f"{n}_loss"].shape[0] * arrays[f"{n}_lr"].size
                            for n in meta["sets"]
                        )
                    run_steps += int(meta.get("run_steps", 0))
        except ImportError:
            continue
    laws = laws_summary(cfg, results_dir)
    out = {
        "cells": cells,
        "laws": laws,
        "laws_goals": _laws_verdicts(laws),
        "goals": _verdicts(cells),
        "compute_seconds": seconds,
        "run_steps": run_steps,
        "advice": {"name": cfg["advice"]["name"], "kwargs": cfg["advice"].get("kwargs", {})},
    }
    out["readme"] = _readme(out)
    return out


def _ratio_text(r: dict[str, Any]) -> str:
    na, nb = r.get("diverged", (0, 0))
    text = (
        "—" if not math.isfinite(r["ratio"]) else f"{r['ratio']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}]"
    )
    if na or nb:  # the ratio is over the seeds where both trained
        text += f" on {r['n']}; diverged {na} vs {nb}"
    return text


def _final_text(line: dict[str, Any]) -> str:
    f = line["final"]
    d, n = f.get("diverged", 0), f.get("seeds", f["n"])
    if not math.isfinite(f["mean"]):
        return f"diverged on {d}/{n}" if d else "diverged"
    return f"{f['mean']:.4g} ± {f['se']:.2g}" + (f", diverged on {d}/{n}" if d else "")


def _readme(summary: dict[str, Any]) -> str:
    cells = summary["cells"]
    if not cells:
        return ""
    lines = [
        "## Practitioner's benchmark",
        "",
        "What the advice is worth on real training runs (docs/theory.md §9.5–§9.7): "
        "**Practitioner's benchmark** (plain SGD; advice "
        f"`{summary['advice']['name']}` from ≤ 4 pilot runs of T0 steps, used at T = 4·T0 and "
        "16·T0; final loss mean ± SE over the paired seeds where the run trained, and the seeds "
        "it diverged on (final loss above the initial one); advised / line: geometric mean of "
        "the per-seed ratios with a 95% t-interval over the seeds where both trained, with both "
        "divergence counts when any; < 1: the advice is better; it beats a line that diverged "
        "more often):",
        "",
    ]
    head = ["task", "T", "advised", "predicted"]
    head += [f"advised / {k}" for k in (*PRACTITIONER, *(f"oracle_{f}" for f in ORACLE))]
    rows = []
    for c in cells:
        L = c["lines"]
        if "advised" not in L:
            rows.append([c["task"], c["T"], f"advice failed: {c['error']}"] + [""] * 8)
            continue
        pred = c.get("predicted_final")
        refused = bool(c.get("info", {}).get("refused"))
        rows.append(
            [
                c["task"],
                c["T"],
                _final_text(L["advised"]),
                "—"
                if pred is None
                else f"{pred:.4g} ({c['prediction_error']:+.1%})"
                + (f", {c['info'].get('choice', 'refused')}: model refused" if refused else ""),
                *(_ratio_text(L[k]["ratio"]) for k in LINES[1:]),
            ]
        )
    lines += md_table(head, rows)
    lines += [
        "",
        "Tuning cost of each line (runs × steps; the advice and the practitioner lines use only "
        "the pilots; the oracle's grid runs at T on tuning seeds):",
        "",
    ]
    cost_rows = []
    for c in cells:
        L = c["lines"]
        cost_rows.append(
            [c["task"], c["T"]]
            + [
                f"{L[k]['cost']['runs']} runs, {L[k]['cost']['run_steps']:,} steps"
                if k in L
                else ""
                for k in ("advised", *(f"oracle_{f}" for f in ORACLE))
            ]
        )
    lines += md_table(
        ["task", "T", "advised (= practitioner)", *(f"oracle_{f}" for f in ORACLE)], cost_rows
    )
    g = summary["goals"]
    lines += [
        "",
        "Goals: advised beats every practitioner line (diverged on fewer seeds, or as often "
        "with the interval below 1) in "
        f"{len(g['beats_practitioner'])}/{sum('vs_oracle' in c for c in cells)} cells; matches "
        f"the best oracle within 1% at both T on {len(g['matches_oracle_real_tasks_both_T'])} "
        f"real task(s) ({', '.join(g['matches_oracle_real_tasks_both_T']) or 'none'}); "
        f"predicted final loss within 3% in {len(g['prediction_within_3pct'])} cell(s). "
        f"Compute: {summary['run_steps']:,} run-steps, {summary['compute_seconds'] / 60:.1f} min.",
    ]
    lines += _laws_readme(summary)
    return "\n".join(lines)


_LAW_NAMES = {"rf": "rf", "mpl": "MPL", "annealing": "annealing"}


def _diverged_text(laws: list[dict[str, Any]]) -> str:
    """Which runs diverged on how many seeds, per task (``"none did"``)."""
    out = []
    for t in laws:
        div = t.get("diverged", {})
        if not div:
            continue
        counts = sorted(set(div.values()))
        if len(counts) == 1:
            k = counts[0]
            out.append(f"{t['task']}, {k} seed{'s' if k > 1 else ''} in {len(div)} runs")
        else:
            out.append(f"{t['task']}, " + ", ".join(f"{r} {k}" for r, k in sorted(div.items())))
    return "; ".join(out) if out else "none did"


def _laws_readme(summary: dict[str, Any]) -> list[str]:
    laws = summary.get("laws") or []
    if not laws:
        return []
    models = list(dict.fromkeys(m for t in laws for m in (*t["models"], *t.get("skipped", {}))))
    lines = [
        "",
        "**The loss laws side by side** (docs/theory.md §9.8): per task the suite's fit set "
        "(constant, cosine and a two-stage run of T0 steps) fitted by rfmodel's model, the "
        "Multi-Power Law and the LR-annealing law (same objective, each run with its exact "
        "per-update rates), predicting the test set (constant and cosine at 4·T0, WSD at T0 and "
        f"4·T0); each curve the mean of the suite's {laws[0]['seeds']} seeds (a seed on which a "
        f"run diverged left out of that run's mean: {_diverged_text(laws)}). Mean held-out `prede` "
        "over the test runs, % (and `r2`), the best in bold; `noise`: the `prede` that a "
        "perfect predictor gets from the seed-mean's own noise; n/a: too few logged points to "
        "fit that law:",
        "",
    ]
    rows = []
    for t in laws:
        p = {m: t["models"][m]["prede"] for m in models if m in t["models"]}
        finite = [v for v in p.values() if v is not None and math.isfinite(v)]
        low = min(finite, default=math.nan)
        cells = []
        for m in models:
            if m not in t["models"]:  # too few logged points to fit it
                cells.append("n/a" if m in t.get("skipped", {}) else "")
                continue
            v, r2 = t["models"][m]["prede"], t["models"][m]["r2"]
            text = "—" if v is None or not math.isfinite(v) else f"{100 * v:.3g}"
            text += "" if r2 is None or not math.isfinite(r2) else f" ({r2:.3f})"
            cells.append(f"**{text}**" if v == low else text)
        noise = t["noise"]  # exact curves: zero up to rounding
        rows.append([t["task"], "0" if abs(noise) < 1e-9 else f"{100 * noise:.3g}", *cells])
    lines += md_table(["task", "noise", *(_LAW_NAMES.get(m, m) for m in models)], rows)
    g = summary["laws_goals"]
    lines += [
        "",
        f"Goals: rfmodel predicts at least as well as the better empirical law on "
        f"{len(g['rf_best'])}/{len(laws)} tasks ({', '.join(g['rf_best']) or 'none'}); its mean "
        f"held-out `prede` over the tasks is {100 * g['rf_mean_prede']:.3g}% (goal ≤ "
        f"{100 * LAWS_GOAL:.1f}%; a perfect predictor of these seed means scores "
        f"{100 * g['noise_mean_prede']:.3g}% from their noise alone). Time: "
        f"{sum(t['seconds'] for t in laws):.0f} s for the {len(laws)} comparisons (fits and "
        "predictions, as computed). Predictions against the measured curves: "
        "[advice_laws.png](advice_laws.png).",
    ]
    return lines


def table_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (task, T): advised / best oracle, and the prediction check."""
    rows = []
    for c in summary["cells"]:
        if "vs_oracle" not in c:
            continue
        r = c["vs_oracle"]
        pe = c["prediction_error"]
        rows.append(
            {
                "quantity": "advice benchmark: loss advised / best tuned at T",
                "setting": f"{c['task']}, T={c['T']} (= {c['T'] // c['T0']}·T0), "
                f"{c['lines']['advised']['final']['seeds']} seeds",
                "measured": f"{_ratio_text(r)} vs {c['best_oracle']}",
                "T_range": "one T",
                "drift": "predicted final "
                + ("—" if pe is None else f"{c['predicted_final']:.4g} ({pe:+.1%} vs measured)"),
                "predicted": "≤ 1.01, prediction within 3%",
                "verdict": ("matches" if c["matches_oracle"] else "worse")
                + (", prediction ok" if c["prediction_ok"] else ", prediction off"),
            }
        )
    return rows


# ----------------------------------------------------------------------------- figures
def plot(
    cfg: dict[str, Any], summary: dict[str, Any], results_dir: Path, out: Path
) -> list[Figure]:
    """The paired ratios of every line (per task and T), and the loss curves of one task."""
    from matplotlib import ticker

    cells = [c for c in summary["cells"] if "vs_oracle" in c]
    if not cells:
        return []
    names = list(dict.fromkeys(c["task"] for c in cells))
    Ts = sorted({c["T"] // c["T0"] for c in cells})
    fig, axs = plt().subplots(
        len(Ts), len(names), figsize=(3.2 * len(names), 2.8 * len(Ts)), squeeze=False
    )
    for c in cells:
        ax = axs[Ts.index(c["T"] // c["T0"]), names.index(c["task"])]
        ks = list(LINES[1:])
        for y, k in enumerate(ks):
            r = c["lines"][k]["ratio"]
            na, nb = r.get("diverged", (0, 0))
            if not math.isfinite(r["ratio"]):
                ax.text(1.0, y, f"diverged {na} vs {nb}", fontsize=7, va="center")
                continue
            if na or nb:
                ax.annotate(f"div {na}:{nb}", (r["ratio"], y), xytext=(0, 4),
                            textcoords="offset points", fontsize=6, ha="center")  # fmt: skip
            colour = "C0" if k in PRACTITIONER else "C3"
            ax.errorbar(
                r["ratio"],
                y,
                xerr=[[r["ratio"] - r["lo"]], [r["hi"] - r["ratio"]]],
                fmt="o",
                color=colour,
                ms=4,
                capsize=2,
            )
        ax.axvline(1.0, color="k", lw=0.8)
        ax.axvspan(1.0, 1.0 + _bench.ORACLE_TOL, color="0.85", zorder=0)
        ax.set_yticks(range(len(ks)), ks if names.index(c["task"]) == 0 else [""] * len(ks))
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.FuncFormatter(lambda v, _: ""))
        ax.set_title(f"{c['task']}, T = {c['T'] // c['T0']}·T0 = {c['T']}", fontsize=9)
        ax.tick_params(labelsize=7)
        if Ts.index(c["T"] // c["T0"]) == len(Ts) - 1:
            ax.set_xlabel("advised / line (paired, 95%)", fontsize=8)
    figs = [
        finish(
            fig,
            out,
            "advice_ratios.png",
            "Practitioner's benchmark: final loss of the advised schedule over every other line, "
            "paired over the evaluation seeds where both trained (geometric mean, 95% "
            "t-interval; < 1: the advice is better; 'div a:b': seeds the advice and the line "
            "diverged on). Blue: what practitioners do with the same pilots (cosine/WSD at "
            "the best pilot peak, held or transferred ∝ (T/T0)^-1/2); red: tuned at T. "
            "Grey: within 1%.",
            title=f"advice `{summary['advice']['name']}` vs practitioners and tuned schedules",
        )
    ]
    figs += _plot_curves(cfg, results_dir, out, names[0])
    figs += _plot_laws(cfg, results_dir, out)
    return figs


def _plot_laws(cfg, results_dir, out) -> list[Figure]:
    """The laws comparison's held-out predictions: per task (column) and test run (row), the
    suite's seed-mean loss and each model's prediction."""
    got = {}
    for net in cfg["nets"]:
        try:
            stage = _bench.load_stage(results_dir, net, cfg["bench"], "laws")
        except ImportError:
            continue
        if stage is not None and stage[0]:
            got[net["name"]] = (int(net["T0"]), *stage)
    if not got:
        return []
    n_rows = max(len(m["noise"]) for _, _, m in got.values())
    fig, axs = plt().subplots(
        n_rows, len(got), figsize=(3.0 * len(got), 2.2 * n_rows), squeeze=False
    )
    colours = {"rf": "C0", "mpl": "C1", "annealing": "C2"}
    for j, (task, (T0, arrays, meta)) in enumerate(got.items()):
        prede = {(r["model"], r["run"]): r["prede"] for r in meta["rows"]}
        runs = sorted(meta["noise"])  # constant_L, cosine_L, wsd, wsd_L: the same rows
        for i in range(n_rows):
            ax = axs[i, j]
            if i >= len(runs) or f"step__{runs[i]}" not in arrays:
                ax.set_visible(False)
                continue
            run = runs[i]
            st = arrays[f"step__{run}"]
            ax.plot(st, arrays[f"loss__{run}"], "k.", ms=2.5, label="measured (seed mean)")
            for m, c in colours.items():
                pred = arrays.get(f"pred__{m}__{run}")
                if pred is not None:
                    label = f"{_LAW_NAMES.get(m, m)} {100 * prede[(m, run)]:.3g}%"
                    ax.plot(st, np.where(pred > 0, pred, np.nan), color=c, lw=1.1, label=label)
            ax.axvspan(T0, max(float(st[-1]), T0), color="0.93", zorder=0)
            ax.set_yscale("log")
            ax.tick_params(labelsize=6)
            ax.legend(fontsize=5.5, loc="best")
            ax.set_title(f"{task}: {run}", fontsize=8)
            if i == n_rows - 1:
                ax.set_xlabel("step", fontsize=7)
    return [
        finish(
            fig,
            out,
            "advice_laws.png",
            "The loss laws side by side: each model fitted to the suite's fit set (constant, "
            "cosine and two-stage runs of T0 steps) predicting the held-out runs (rows) of "
            "each task (columns); black: the seed-mean loss; the legend gives each model's "
            "mean prede on that run. Grey: past T0, where the fit set ends.",
        )
    ]


def _plot_curves(cfg, results_dir, out, name) -> list[Figure]:
    net, bench = _net(cfg, name), cfg["bench"]
    T = _bench.horizons(net, bench)[-1]
    got = {
        "advised": _bench.load_stage(results_dir, net, bench, "advised", T, cfg["advice"]),
        "practitioner": _bench.load_stage(results_dir, net, bench, "practitioner", T),
        "oracle": _bench.load_stage(results_dir, net, bench, "oracle", T),
    }
    if any(v is None for v in got.values()) or "loss" not in got["advised"][0]:
        return []
    every = T // int(bench["log_points"])
    fig, axs = plt().subplots(1, 2, figsize=(12, 4.2))
    curves = {"advised": got["advised"][0]["loss"]}
    curves.update({k: got["practitioner"][0][k] for k in PRACTITIONER})
    curves.update({f"oracle_{f}": got["oracle"][0][f] for f in ORACLE})
    steps = np.arange(0, T + 1, every)
    for i, (k, v) in enumerate(curves.items()):
        m = np.mean(v, axis=0)
        style = "-" if k == "advised" else ("--" if k in PRACTITIONER else ":")
        lw = 2 if k == "advised" else 1.2
        axs[0].plot(steps[1:], m[1:], style, color=f"C{i}", lw=lw, label=k)
    pred = got["advised"][0].get("predicted")
    if pred is not None and pred.size == T + 1:
        t = np.arange(1, T + 1)
        axs[0].plot(t, pred[1:], "k-", lw=0.8, alpha=0.6, label="advised: predicted")
    axs[0].set(xscale="log", yscale="log", xlabel="step", ylabel="logged loss")
    axs[0].set_title(f"{name}, T = {T}: mean over evaluation seeds", fontsize=9)
    axs[0].legend(fontsize=7)
    axs[1].plot(got["advised"][0]["lr"], lw=2, label="advised")
    om = got["oracle"][1]["tuned"]
    for f in ORACLE:
        axs[1].plot(_bench._tuned_schedule(f, om[f], T), ":", label=f"oracle {f}")
    pm = got["practitioner"][1]["peaks"]
    for k in ("cosine_held", "cosine_transfer"):
        axs[1].plot(_bench.schedule("cosine", pm[k], T), "--", lw=1, label=k)
    top = float(np.max(got["advised"][0]["lr"]))
    axs[1].set(xlabel="step", ylabel="learning rate", yscale="log", ylim=(1e-3 * top, 3 * top))
    axs[1].set_title("schedules", fontsize=9)
    axs[1].legend(fontsize=7)
    return [
        finish(
            fig,
            out,
            f"advice_curves_{name}.png",
            f"{name} at T = 16·T0: loss curves (mean over evaluation seeds) of the advised "
            "schedule, the practitioner lines and the tuned schedules, with the advice's "
            "prediction; the schedules.",
        )
    ]


main = experiment_main(GROUP, __doc__)

if __name__ == "__main__":
    main()
