"""Run an experiment's tasks: only the missing ones, longest first, on worker processes.

A :class:`Task` names a module-level function of an experiment module
(``rfmodel.experiments.<name>``) and its keyword arguments, so any process that can import
rfmodel can run it. :func:`run_tasks` runs the tasks not yet ``done``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Task", "run_tasks", "default_workers"]


@dataclass(frozen=True)
class Task:
    """One unit of computation of an experiment, runnable in a worker process.

    Attributes:
        experiment: module name in :mod:`rfmodel.experiments` (e.g. ``"phase_diagram"``).
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
    from .experiments import load_experiment

    return getattr(load_experiment(experiment), func)(**kwargs)


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
