"""Logged training curves: the :class:`Run` type and the curves CSV (docs/theory.md §9).

Curves are a CSV with columns ``run, step, lr, loss`` (optional ``batch``), one row per logged
step (:func:`read_curves`); at least two runs with different schedules.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..results import write_text

__all__ = ["Run", "read_curves", "write_curves", "validate_runs", "MIN_POINTS"]

#: Fewest logged points per run (a curve's shape needs a few points per decade of steps).
MIN_POINTS = 5
_REQUIRED = ("run", "step", "lr", "loss")


# ----------------------------------------------------------------------------- curves
@dataclass(frozen=True)
class Run:
    """One logged run: the loss after ``step[i]`` updates, the rate ``lr[i]`` of update
    ``step[i]``, and the batch size (float64 arrays of equal length, steps increasing)."""

    name: str
    step: np.ndarray
    lr: np.ndarray
    loss: np.ndarray
    batch: np.ndarray

    def rates(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-update (lr, batch) for updates 0..n−1: linear interpolation between the logged
        steps, held before the first and after the last."""
        t = np.arange(n, dtype=np.float64)
        return np.interp(t, self.step, self.lr), np.interp(t, self.step, self.batch)


def _number(text: str, where: str, column: str, rule: str, ok) -> float:
    try:
        v = float(text)
    except (TypeError, ValueError):
        v = math.nan
    if not math.isfinite(v) or not ok(v):
        raise ValueError(f"{where}, column {column!r}: must be {rule}; got {text!r}")
    return v


def read_curves(path: str | Path) -> list[Run]:
    """Read and validate a curves CSV (``run, step, lr, loss`` [, ``batch``]).

    Raises ``ValueError`` naming the line and column of the first bad value: a missing
    column, a step that is not an integer ≥ 0 or does not increase within its run, a rate
    that is not finite and ≥ 0, a loss that is not finite and > 0 (NaN included), a batch < 1;
    then the checks of :func:`validate_runs`.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"curves: no such file {str(path)!r}")
    with path.open(newline="") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip().lower() for h in next(reader)]
        except StopIteration:
            raise ValueError(f"{path}: empty file (need a header run,step,lr,loss)") from None
        missing = [c for c in _REQUIRED if c not in header]
        if missing:
            raise ValueError(
                f"{path}: missing column(s) {', '.join(missing)} (the header must name "
                f"run, step, lr, loss; batch is optional); got columns {header}"
            )
        col = {c: header.index(c) for c in (*_REQUIRED, "batch") if c in header}
        rows: dict[str, list[tuple[float, float, float, float]]] = {}
        for line, row in enumerate(reader, start=2):
            if not row or all(not x.strip() for x in row):
                continue
            where = f"{path}: line {line}"
            if len(row) < len(header):
                raise ValueError(f"{where}: {len(row)} fields, the header has {len(header)}")
            name = row[col["run"]].strip()
            if not name:
                raise ValueError(f"{where}, column 'run': empty run name")
            step = _number(
                row[col["step"]], where, "step", "an integer >= 0", lambda v: v >= 0 and v == int(v)
            )
            lr = _number(row[col["lr"]], where, "lr", "a finite number >= 0", lambda v: v >= 0)
            loss = _number(row[col["loss"]], where, "loss", "a finite number > 0", lambda v: v > 0)
            batch = (
                _number(row[col["batch"]], where, "batch", "a finite number >= 1", lambda v: v >= 1)
                if "batch" in col
                else 1.0
            )
            prev = rows.setdefault(name, [])
            if prev and step <= prev[-1][0]:
                raise ValueError(
                    f"{where}, column 'step': steps of run {name!r} must increase; got "
                    f"{int(step)} after {int(prev[-1][0])}"
                )
            prev.append((step, lr, loss, batch))
    runs = [
        Run(n, *(np.array(c, np.float64) for c in zip(*r, strict=True))) for n, r in rows.items()
    ]
    validate_runs(runs, source=str(path))
    return runs


def validate_runs(runs: Sequence[Run], *, source: str = "curves") -> None:
    """At least two runs, each with ≥ :data:`MIN_POINTS` points and a nonzero rate, and at least
    two different schedules (with one schedule the time scale and the noise are not
    identifiable). Raises ``ValueError`` naming the run."""
    if len(runs) < 2:
        names = ", ".join(repr(r.name) for r in runs) or "none"
        raise ValueError(
            f"{source}: need at least 2 runs with different schedules; got {len(runs)} ({names})"
        )
    for r in runs:
        if r.step.size < MIN_POINTS:
            raise ValueError(
                f"{source}: run {r.name!r} has {r.step.size} rows; need at least {MIN_POINTS} "
                "logged steps per run"
            )
        if not np.any(r.lr > 0):
            raise ValueError(f"{source}: run {r.name!r}: every lr is 0 (nothing to fit)")
        if np.any(np.diff(r.step) <= 0):
            raise ValueError(f"{source}: run {r.name!r}: steps must increase")
    n = int(max(r.step[-1] for r in runs))
    scheds = [np.round(r.rates(n)[0], 12) for r in runs]
    if all(np.array_equal(scheds[0], s) for s in scheds[1:]):
        raise ValueError(
            f"{source}: every run uses the same learning-rate schedule; the fit needs at least "
            "two different schedules (e.g. a constant rate and a decaying one)"
        )


def write_curves(path: str | Path, runs: Sequence[Run]) -> None:
    """Write runs as a curves CSV (atomically)."""
    lines = ["run,step,lr,loss,batch"]
    for r in runs:
        lines += [
            f"{r.name},{int(s)},{lr:.10g},{loss:.10g},{b:g}"
            for s, lr, loss, b in zip(r.step, r.lr, r.loss, r.batch, strict=True)
        ]
    write_text(path, "\n".join(lines) + "\n")
