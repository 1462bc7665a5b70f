"""Regenerate every figure in ``figures/`` from saved results (``rfmodel figures``).

The experiments live in ``experiments/*.py`` of the source checkout; each is a module with

- ``config(quick: bool) -> dict``: its full configuration (JSON-serializable);
- ``tasks(cfg, results_dir) -> list[Task]``: the units of computation, each with ``done`` set
  when its results are already saved under a key of the full configuration;
- ``summarize(cfg, results_dir) -> dict``: the measured numbers (fits with intervals);
- ``plot(cfg, summary, results_dir, out) -> list[Figure]``: writes its PNGs;
- ``table_rows(summary) -> list[dict]`` (optional): rows of the measured-vs-predicted table.

:func:`regenerate` runs only the tasks that are missing (a changed configuration changes the
keys, so stale results are never reused), in parallel worker processes with a progress bar,
then summarizes, draws every figure, and writes ``OUT/README.md`` (the table and the list of
figures, generated from the results) and ``OUT/data/summary.json``. Results are saved as soon as
each unit finishes (atomically, :mod:`rfmodel.results`), so an interrupted run resumes.
"""

from __future__ import annotations

import importlib
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Task",
    "Figure",
    "regenerate",
    "run_tasks",
    "experiments_dir",
    "load_experiment",
    "EXPERIMENTS",
    "default_workers",
    "fmt_fit",
]

#: Experiments in the order their figures appear in the README.
EXPERIMENTS = ("optimal_schedules", "baselines", "phase_diagram", "long_step_pattern")
_FULL_MARK = "<!-- rfmodel figures: full -->"
_QUICK_MARK = "<!-- rfmodel figures: quick -->"


@dataclass(frozen=True)
class Task:
    """One unit of computation of an experiment, runnable in a worker process.

    Attributes:
        experiment: module name in ``experiments/`` (e.g. ``"phase_diagram"``).
        func: name of the module-level function to call.
        kwargs: its keyword arguments (picklable: plain data and paths).
        name: label for the progress bar.
        cost: rough relative cost (kept-modes × steps × expected evaluations), used to start the
            longest tasks first.
        done: its results are already saved for this exact configuration.
    """

    experiment: str
    func: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    cost: float = 1.0
    done: bool = False


@dataclass(frozen=True)
class Figure:
    """A written figure: file name (relative to OUT), what it shows, the command that made it."""

    file: str
    description: str
    command: str = "rfmodel figures"


def experiments_dir() -> Path:
    """``experiments/`` next to the ``rfmodel`` package (a source checkout is required)."""
    d = Path(__file__).resolve().parent.parent / "experiments"
    if not d.is_dir():
        raise RuntimeError(
            f"rfmodel figures needs the source checkout's experiments/ folder; not found at {d}"
        )
    return d


def load_experiment(name: str):
    """Import ``experiments/<name>.py`` (the folder is put on ``sys.path``)."""
    d = str(experiments_dir())
    if d not in sys.path:
        sys.path.insert(0, d)
    return importlib.import_module(name)


def default_workers() -> int:
    """Worker processes: the CPU cores available to this process, at most 2 by default
    (override with the environment variable RFMODEL_WORKERS)."""
    env = os.environ.get("RFMODEL_WORKERS")
    if env:
        n = int(env)
        if n < 1:
            raise ValueError(f"RFMODEL_WORKERS must be an integer >= 1; got {env!r}")
        return n
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (not Linux)
        cores = os.cpu_count() or 1
    return max(1, min(2, cores))


def _worker_init() -> None:
    # One compute thread per worker process: the workers are the parallelism.
    os.environ.setdefault(
        "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    )


def _call(experiment: str, func: str, kwargs: dict[str, Any]) -> Any:
    mod = load_experiment(experiment)
    return getattr(mod, func)(**kwargs)


def run_tasks(
    tasks: Sequence[Task],
    *,
    workers: int | None = None,
    progress: bool = True,
    desc: str = "computing",
) -> dict[str, Any]:
    """Run the tasks not yet ``done``, longest first, on ``workers`` processes.

    Args:
        tasks: the tasks (done ones are skipped).
        workers: worker processes (default :func:`default_workers`); 1 runs in this process.
        progress: show a tqdm progress bar (weighted by task cost).
        desc: progress-bar label.

    Returns:
        ``{"run": [names], "seconds": wall seconds, "results": {name: return value}}``.

    Raises:
        RuntimeError: after every other task finished, if any task raised (its traceback is
        printed); finished tasks are saved regardless.
    """
    todo = sorted((t for t in tasks if not t.done), key=lambda t: -t.cost)
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be an integer >= 1; got workers={workers}")
    t0 = time.perf_counter()
    out: dict[str, Any] = {"run": [t.name for t in todo], "results": {}}
    if not todo:
        out["seconds"] = 0.0
        return out
    from tqdm.auto import tqdm

    total = sum(t.cost for t in todo)
    bar = tqdm(
        total=total,
        desc=desc,
        unit="cost",
        disable=not progress,
        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} [{elapsed}<{remaining}] {postfix}",
    )
    failed: list[str] = []

    def finish(task: Task, fut_or_value: Any, error: BaseException | None) -> None:
        if error is not None:
            import traceback

            failed.append(task.name)
            traceback.print_exception(type(error), error, error.__traceback__)
        else:
            out["results"][task.name] = fut_or_value
        bar.update(task.cost)
        bar.set_postfix_str(f"done: {task.name}")

    if workers == 1 or len(todo) == 1:
        for task in todo:
            bar.set_postfix_str(f"running: {task.name}")
            try:
                finish(task, _call(task.experiment, task.func, task.kwargs), None)
            except Exception as e:  # noqa: BLE001 - reported after the others ran
                finish(task, None, e)
    else:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # JAX is not fork-safe
        with ProcessPoolExecutor(
            max_workers=min(workers, len(todo)), mp_context=ctx, initializer=_worker_init
        ) as pool:
            futs = {pool.submit(_call, t.experiment, t.func, t.kwargs): t for t in todo}
            pending = set(futs)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    err = f.exception()
                    finish(futs[f], None if err else f.result(), err)
    bar.close()
    out["seconds"] = time.perf_counter() - t0
    if failed:
        raise RuntimeError(f"{len(failed)} task(s) failed: {', '.join(failed)}")
    return out


# ----------------------------------------------------------------------------- formatting
def fmt_fit(fit: dict[str, Any] | None, digits: int = 3) -> str:
    """``"0.601 [0.598, 0.604]"`` from a :class:`rfmodel.scaling.PowerLawFit` dict (or ±SE)."""
    if not fit:
        return "—"
    v = fit["exponent"]
    lo, hi = fit.get("lo", math.nan), fit.get("hi", math.nan)
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{v:.{digits}f}"
    return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _md_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    head = "| " + " | ".join(title for _, title in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = [
        "| " + " | ".join(str(r.get(k, "")).replace("|", "\\|") for k, _ in columns) + " |"
        for r in rows
    ]
    return "\n".join([head, sep, *body])


_TABLE_COLUMNS = [
    ("quantity", "quantity"),
    ("setting", "setting"),
    ("measured", "measured (95% interval)"),
    ("T_range", "fit range of T"),
    ("drift", "as the T range grows (sliding windows)"),
    ("predicted", "predicted"),
    ("verdict", "verdict"),
]


def _readme(
    quick: bool,
    sections: list[tuple[str, dict[str, Any], list[Figure]]],
    rows: list[dict[str, Any]],
    other_pngs: list[str],
    compute_seconds: float,
) -> str:
    mark = _QUICK_MARK if quick else _FULL_MARK
    cmd = "rfmodel figures --quick --out DIR" if quick else "rfmodel figures"
    lines = [
        mark,
        "# Figures",
        "",
        f"Generated by `{cmd}` from the results in `data/` (regenerating reuses every saved "
        "result whose configuration is unchanged and computes only what is missing). "
        "Everything below, including the table, is written by `rfmodel.figures` from those "
        "results; do not edit by hand."
        + (
            " **Quick (CI) version: small horizons and grids, not for conclusions.**"
            if quick
            else ""
        ),
        "",
        "All exponent experiments use effectively infinite N: an exact head of modes plus a "
        "geometrically binned tail (THEORY.md section 1), with N stated on each figure.",
        "",
        "## Measured vs predicted",
        "",
        "Intervals are 95% Student-t intervals of log-log least squares over the stated T range. "
        "The data are exact expected losses, so an interval measures curvature over the range "
        "(finite-T drift), not noise; the sliding-window column shows the drift directly "
        "(fits over windows of 3 consecutive horizons, smallest T → largest T).",
        "",
        _md_table(rows, _TABLE_COLUMNS),
        "",
    ]
    for _, summary, _ in sections:
        text = summary.get("readme", "")
        if text:
            lines += [text.rstrip(), ""]
    lines += ["## Figures", "", "| file | made by | shows |", "|---|---|---|"]
    for _, _, figs in sections:
        for f in figs:
            lines.append(f"| [{f.file}]({f.file}) | `{f.command}` | {f.description} |")
    for png in other_pngs:
        stem = Path(png).stem
        script = experiments_dir() / f"{stem}.py"
        made = f"`python experiments/{stem}.py`" if script.exists() else "(not by this pipeline)"
        lines.append(f"| [{png}]({png}) | {made} | not regenerated by `rfmodel figures` |")
    lines += [
        "",
        f"Compute time of the saved results (sum over tasks, all workers): "
        f"{compute_seconds / 60:.1f} min.",
        "",
    ]
    return "\n".join(lines)


def _guard_out(out: Path, quick: bool) -> None:
    readme = out / "README.md"
    if quick and readme.exists() and _FULL_MARK in readme.read_text():
        raise ValueError(
            f"out: {out} holds the full figures; --quick would overwrite them with "
            f"small versions. Pass another folder, e.g. --out build/figures-quick"
        )


def regenerate(
    out: Path | str = Path("figures"),
    quick: bool = False,
    results_dir: Path | str | None = None,
    *,
    workers: int | None = None,
    progress: bool = True,
    experiments: Sequence[str] = EXPERIMENTS,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Regenerate every figure and ``OUT/README.md`` from saved results, computing what is missing.

    Args:
        out: figure folder (PNGs and README.md are written here).
        quick: the small CI version (horizons up to 800, a 3 × 3 phase grid; a few minutes).
            Refuses to write into a folder holding the full figures.
        results_dir: results cache; default ``OUT/data`` (committed with the figures so that a
            fresh clone regenerates them without recomputing).
        workers: worker processes (default :func:`default_workers`).
        progress: show progress bars.
        experiments: which experiments to run (default all, in README order).
        log: where to print one-line status messages (``None``: silent).

    Returns:
        ``{"computed": [task names], "compute_seconds": wall seconds of this call's computing,
        "summaries": {experiment: summary}, "figures": [file names], "wall_time": seconds}``.
    """
    t0 = time.perf_counter()
    out = Path(out)
    if results_dir is None:
        results_dir = out / "data"
    results_dir = Path(results_dir)
    unknown = [e for e in experiments if e not in EXPERIMENTS]
    if unknown:
        raise ValueError(f"experiments must be names from {EXPERIMENTS}; got {unknown}")
    _guard_out(out, quick)
    say = log or (lambda s: None)
    mods = {name: load_experiment(name) for name in experiments}
    cfgs = {name: mod.config(quick) for name, mod in mods.items()}
    tasks = [t for name, mod in mods.items() for t in mod.tasks(cfgs[name], results_dir)]
    n_todo = sum(not t.done for t in tasks)
    say(
        f"rfmodel figures{' --quick' if quick else ''}: {len(tasks)} tasks, {n_todo} to compute "
        f"(results in {results_dir})"
    )
    ran = run_tasks(tasks, workers=workers, progress=progress, desc="computing results")
    summaries, sections, rows, files = {}, [], [], []
    for name, mod in mods.items():
        summary = mod.summarize(cfgs[name], results_dir)
        figs = mod.plot(cfgs[name], summary, results_dir, out)
        summaries[name] = summary
        sections.append((name, summary, figs))
        if hasattr(mod, "table_rows"):
            rows += mod.table_rows(summary)
        files += [f.file for f in figs]
    compute = sum(float(s.get("compute_seconds", 0.0)) for s in summaries.values())
    mine = set(files)
    others = sorted(p.name for p in out.glob("*.png") if p.name not in mine)
    from .results import write_json, write_text

    write_text(out / "README.md", _readme(quick, sections, rows, others, compute))
    write_json(
        results_dir / "summary.json",
        {"quick": quick, "experiments": {k: cfgs[k] for k in cfgs}, "summaries": summaries},
    )
    wall = time.perf_counter() - t0
    say(
        f"wrote {len(files)} figures and README.md to {out} in {wall:.1f} s "
        f"({len(ran['run'])} tasks computed in {ran['seconds']:.1f} s)"
    )
    return {
        "computed": ran["run"],
        "compute_seconds": ran["seconds"],
        "summaries": summaries,
        "figures": files,
        "wall_time": wall,
    }
