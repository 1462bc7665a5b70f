"""Shared helpers of the experiments: problems, control rules, cached optimal-schedule chains.

Not an experiment itself.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import Problem
from ..control import (
    ScheduleResult,
    horizon_keys,
    load_schedule,
    optimize_schedules,
    segment_index,
)
from ..results import config_key, write_json
from ..runner import Task

_RES = {"n_exact": 200, "bins_per_decade": 100}
#: The two reference settings of docs/theory.md §6 (N effectively infinite via the binned tail:
#: the hard phase's target tail Σ_{k>N} k^-a ~ N^-0.5 must stay far below the loss, hence its
#: larger N).
REFERENCE_SETTINGS: dict[str, dict[str, Any]] = {
    "easy": {"a": 2.5, "b": 1.2, "sigma": 0.3, "batch": 4, "n_modes": 10**6, **_RES},
    "hard": {"a": 1.5, "b": 2.5, "sigma": 0.5, "batch": 4, "n_modes": 10**8, **_RES},
}

#: Cost of one loss+gradient evaluation per (kept mode × step), in seconds (3.3 ns measured on
#: a quiet 2-core CPU, doubled for a busy one).
NS_PER_MODE_STEP = 7e-9
#: Fixed seconds per solve (compilation, the search for the start).
SOLVE_OVERHEAD = 0.3


def solve_seconds(n_eff: int, Ts: Sequence[int], evaluations: float) -> float:
    """Estimated wall seconds of one solve per horizon in ``Ts``: the unit of every experiment's
    :attr:`rfmodel.runner.Task.cost` (so the progress bar of ``rfmodel figures`` is honest).
    Checked against the committed full results: within a factor 2 for chains, phase points and
    the long-step variants."""
    return sum(n_eff * int(T) * evaluations * NS_PER_MODE_STEP + SOLVE_OVERHEAD for T in Ts)


def make_problem(setting: dict[str, Any]) -> Problem:
    """A :class:`Problem` from a setting dict (a, b, sigma, batch, n_modes, n_exact, bins...)."""
    keys = (
        "a",
        "b",
        "sigma",
        "batch",
        "n_modes",
        "n_exact",
        "bins_per_decade",
        "precondition",
        "normalize",
    )
    return Problem(**{k: setting[k] for k in keys if k in setting})


def setting_label(setting: dict[str, Any], problem: Problem | None = None) -> str:
    """One-line description for figure titles, stating N and the binned tail."""
    p = problem or make_problem(setting)
    n = p.n_modes
    exp = int(round(math.log10(n))) if n > 0 else 0
    ntxt = f"10^{exp}" if 10**exp == n else f"{n}"
    return (
        f"a={p.a:g}, b={p.b:g}, σ={p.sigma:g}, m={p.batch:g}, N={ntxt} modes "
        f"(binned tail, {p.n_eff} kept: effectively infinite N)"
    )


def controls_for(T: int, rule: dict[str, int] | None) -> int | None:
    """Number of controls K at horizon T for a rule ``{per_step_max, K, steps_per_control}``.

    ``None`` rule: one control per step (returns None). Otherwise T ≤ per_step_max → K = T
    (per step); else K = min(rule K, T // steps_per_control).
    """
    if rule is None:
        return None
    if T <= rule.get("per_step_max", 0):
        return T
    return max(1, min(int(rule["K"]), T // int(rule.get("steps_per_control", 1))))


def segment_centers(T: int, K: int) -> np.ndarray:
    """Mean of (t + ½)/T over the steps of each of the K segments, shape ``(K,)``."""
    seg = segment_index(T, K)
    frac = (np.arange(T) + 0.5) / T
    return np.bincount(seg, weights=frac, minlength=K) / np.bincount(seg, minlength=K)


def result_centers(res: ScheduleResult) -> np.ndarray:
    """Segment centres t/T of a result's controls, on its own grid (uniform or not)."""
    T = int(res.config["T"])
    K = np.asarray(res.controls).size
    lengths = res.lengths
    if lengths is None and res.config.get("grid") == "log":  # log grid, solved step by step
        from ..dynamics.segments import log_lengths

        lengths = log_lengths(T, K)
    if lengths is None:
        return segment_centers(T, K)
    n = np.asarray(lengths, np.float64)
    return (np.cumsum(n) - 0.5 * n) / T


def _chain_kwargs(chain: dict[str, Any]) -> dict[str, Any]:
    """Solver keywords of a chain; optional entries (absent from older chains, so their keys do
    not change): ``grid``, ``method``, ``eta_max``, ``optimize``, ``init`` (the start of the
    first horizon, e.g. ``{"momentum": 0.99}``); for the batch control ``mean_batch`` (the
    budget S = mean_batch·T of each horizon) and ``batch_max``; for the momentum ``beta_max``,
    or ``beta_const`` (a fixed constant β under optimal rates)."""
    kw: dict[str, Any] = {k: chain[k] for k in ("grid", "method", "init") if k in chain}
    if chain.get("smoothness"):
        kw["smoothness"] = float(chain["smoothness"])
    if chain.get("maxiter"):
        kw["maxiter"] = int(chain["maxiter"])
    if chain.get("eta_max") is not None:
        kw["eta_max"] = float(chain["eta_max"])
    if chain.get("optimize"):
        kw["optimize"] = tuple(chain["optimize"])
    if "batch" in kw.get("optimize", ()):
        mean = float(chain["mean_batch"])
        kw["samples"] = lambda T: mean * T
        if chain.get("batch_max") is not None:
            kw["batch_max"] = float(chain["batch_max"])
    if chain.get("beta_max") is not None:
        kw["beta_max"] = float(chain["beta_max"])
    if chain.get("beta_const") is not None:  # a fixed constant momentum under optimal rates
        beta = float(chain["beta_const"])
        kw["betas"] = lambda T: np.full(T, beta)
    return kw


def chain_dir(results_dir: Path, group: str, chain: dict[str, Any]) -> Path:
    """Folder of one chain of optimal schedules, keyed by its configuration less the horizons
    and the iteration cap (each saved horizon carries its own full key,
    :func:`rfmodel.control.horizon_keys`, so extending ``Ts`` reuses the horizons solved)."""
    key = config_key({k: v for k, v in chain.items() if k not in ("Ts", "maxiter")})
    return Path(results_dir) / group / f"{chain['name']}_{key}"


def _horizon_keys(chain: dict[str, Any]) -> dict[int, dict[str, Any]]:
    rule = chain.get("rule")
    return horizon_keys(
        make_problem(chain["setting"]),
        [int(T) for T in chain["Ts"]],
        controls=lambda T: controls_for(T, rule),
        **_chain_kwargs(chain),
    )


def find_chain(results_dir: Path, group: str, chain: dict[str, Any]) -> dict[int, ScheduleResult]:
    """The saved, valid optimal schedules of a chain (damaged ones are moved aside).

    A chain is ``{"name", "setting", "Ts", "rule", "smoothness"?, "maxiter"?}``.
    """
    d = chain_dir(Path(results_dir), group, chain)
    out = {}
    for T, key in _horizon_keys(chain).items():
        res = load_schedule(d / f"T{T}_{config_key(key)}", key)
        if res is not None:
            out[T] = res
    return out


def chain_done(results_dir: Path, group: str, chain: dict[str, Any]) -> bool:
    """Every horizon of the chain is saved and valid."""
    return set(find_chain(results_dir, group, chain)) == {int(T) for T in chain["Ts"]}


def run_chain(results_dir: str, group: str, chain: dict[str, Any]) -> dict[str, Any]:
    """Optimal schedules for every horizon of a chain (ascending T, warm starts, resumable).

    Each horizon is saved as it finishes (``optimize_schedules(out_dir=...)``); a rerun loads
    the finished ones. Returns ``{"seconds", "losses"}``.
    """
    t0 = time.perf_counter()
    problem = make_problem(chain["setting"])
    rule = chain.get("rule")
    d = chain_dir(Path(results_dir), group, chain)
    d.mkdir(parents=True, exist_ok=True)
    write_json(d / "chain.json", {k: v for k, v in chain.items() if k != "Ts"})
    res = optimize_schedules(
        problem,
        [int(T) for T in chain["Ts"]],
        controls=lambda T: controls_for(T, rule),
        out_dir=d,
        progress=False,
        **_chain_kwargs(chain),
    )
    return {"seconds": time.perf_counter() - t0, "losses": {T: r.loss for T, r in res.items()}}


def chain_task(
    experiment: str, results_dir: Path, group: str, chain: dict[str, Any], evals: float = 60.0
) -> Task:
    """A :class:`Task` running :func:`run_chain` (cost: estimated seconds, :func:`solve_seconds`
    with ``evals`` evaluations per horizon)."""
    cost = solve_seconds(make_problem(chain["setting"]).n_eff, chain["Ts"], evals)
    return Task(
        experiment=experiment,
        func="run_chain",
        kwargs={"results_dir": str(results_dir), "group": group, "chain": chain},
        name=f"{group}/{chain['name']}",
        cost=cost,
        done=chain_done(results_dir, group, chain),
    )


def chain_seconds(results: dict[int, ScheduleResult]) -> float:
    """Sum of the solver wall times of a chain's saved horizons."""
    return float(sum(r.wall_time for r in results.values()))


def interp_crossing(x: np.ndarray, y: np.ndarray, level: float, start: float) -> float:
    """First x ≥ ``start`` where the piecewise-linear y(x) falls below ``level`` (NaN if never).

    Linear interpolation between the last point above and the first point below.
    """
    idx = np.flatnonzero((x >= start) & (y < level))
    if idx.size == 0:
        return math.nan
    j = int(idx[0])
    if j == 0 or y[j - 1] < level:
        return float(x[j])
    x0, x1, y0, y1 = x[j - 1], x[j], y[j - 1], y[j]
    return float(x0 + (y0 - level) * (x1 - x0) / (y0 - y1))


def sliding_text(
    xs: Sequence[float], vals: Sequence[float], digits: int = 3, max_items: int = 6
) -> str:
    """``"0.67 (T≈141) → … → 0.60 (T≈36204)"``: a compact list of values along T."""
    items = [f"{v:.{digits}f} ({_tfmt(x)})" for x, v in zip(xs, vals, strict=True)]
    if len(items) > max_items:
        keep = np.unique(np.linspace(0, len(items) - 1, max_items).round().astype(int))
        items = [items[i] for i in keep]
    return " → ".join(items)


def _tfmt(x: float) -> str:
    return f"T≈{x:.0f}" if abs(x - round(x)) > 1e-6 else f"T={x:.0f}"


def plt():
    """matplotlib.pyplot with the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot
