"""Command line shared by the experiments (``python experiments/<name>.py`` or
``python -m rfmodel.experiments.<name>``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ..runner import Interrupted, default_workers, run_tasks
from . import load_experiment
from ._format import measured_table

__all__ = ["run_experiment", "experiment_main"]

#: Experiments whose results another one reads (their tasks run first, skipped when saved).
DEPENDS = {"baselines": ("optimal_schedules",)}


def run_experiment(name: str, doc: str | None, argv: Sequence[str] | None = None) -> dict:
    """Compute what is missing for one experiment, draw its figures, print its table.

    Uses the same configuration, cache and figure code as ``rfmodel figures``.
    """
    ap = argparse.ArgumentParser(description=(doc or name).splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small version (CI)")
    ap.add_argument("--out", type=Path, default=Path("figures"), help="figure folder")
    ap.add_argument("--results", type=Path, default=None, help="results cache (default OUT/data)")
    ap.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="worker processes (default %(default)s)",
    )
    args = ap.parse_args(argv)
    results = args.results or args.out / "data"
    deps = [load_experiment(d) for d in DEPENDS.get(name, ())]
    mod = load_experiment(name)
    tasks = []
    for dep in deps:
        c = dep.config(args.quick)
        tasks += [t for t in dep.tasks(c, results) if "main" in t.name or dep is mod]
    cfg = mod.config(args.quick)
    tasks += mod.tasks(cfg, results)
    try:
        run_tasks(tasks, workers=args.workers, desc=name)
    except Interrupted as e:  # every worker is stopped; finished results are saved
        print(
            f"{name}: interrupted by {e.signal_name}: {len(e.finished)} task(s) saved; "
            "run it again to resume",
            file=sys.stderr,
        )
        sys.exit(e.exit_status)
    summary = mod.summarize(cfg, results)
    figs = mod.plot(cfg, summary, results, args.out)
    if hasattr(mod, "table_rows"):
        print(measured_table(mod.table_rows(summary)))
    if summary.get("readme"):
        print(summary["readme"])
    for f in figs:
        print(f"wrote {args.out / f.file}")
    return summary


def experiment_main(
    name: str,
    doc: str | None,
    summary: str = "Run this experiment alone: compute what is missing, print the table, "
    "draw figures.",
) -> Callable[[list[str] | None], None]:
    """The ``main(argv)`` of experiment ``name`` (:func:`rfmodel.experiments._cli.run_experiment`
    with the module's docstring ``doc`` as its help)."""

    def main(argv: list[str] | None = None) -> None:
        run_experiment(name, doc, argv)

    main.__doc__ = summary
    return main
