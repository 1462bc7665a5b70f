"""The experiments behind ``figures/``: one module per experiment family.

Each module has

- ``config(quick: bool) -> dict``: its full configuration (JSON-serializable);
- ``tasks(cfg, results_dir) -> list[Task]``: the units of computation
  (:class:`rfmodel.runner.Task`), each ``done`` when its results are already saved under a key of
  the full configuration;
- ``summarize(cfg, results_dir) -> dict``: the measured numbers (fits with intervals);
- ``plot(cfg, summary, results_dir, out) -> list[Figure]``: writes its PNGs;
- ``table_rows(summary) -> list[dict]`` (optional): rows of the measured-vs-predicted table;
- ``main(argv)``: run it alone (``python -m rfmodel.experiments.<name>``, or the thin script
  ``experiments/<name>.py`` of the source checkout).

``rfmodel figures`` (:func:`rfmodel.figures.regenerate`) runs them all. They are part of the
installed package: nothing here imports from outside rfmodel.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXPERIMENTS", "load_experiment"]

#: Experiments in the order their figures appear in the README.
EXPERIMENTS = (
    "optimal_schedules",
    "baselines",
    "phase_diagram",
    "long_step_pattern",
    "long_horizons",
    "lr_transfer",
    "advice",
    "batch_schedules",
    "compute_optimal",
    "momentum",
    "curriculum",
    "preconditioning",
)


def load_experiment(name: str) -> ModuleType:
    """The experiment module ``rfmodel.experiments.<name>`` (or a helper such as ``_common``)."""
    return importlib.import_module(f"{__name__}.{name}")
