"""Command line shared by the experiments (``python experiments/<name>.py`` or
``python -m rfmodel.experiments.<name>``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ..figures import _TABLE_COLUMNS, _md_table
from ..runner import default_workers, run_tasks
from . import load_experiment

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
    run_tasks(tasks, workers=args.workers, desc=name)
    summary = mod.summarize(cfg, results)
    figs = mod.plot(cfg, summary, results, args.out)
    if hasattr(mod, "table_rows"):
        print(_md_table(mod.table_rows(summary), _TABLE_COLUMNS))
    if summary.get("readme"):
        print(summary["readme"])
    for f in figs:
        print(f"wrote {args.out / f.file}")
    return summary
