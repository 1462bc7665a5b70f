"""Logged training curves: the :class:`Run` type, the curves CSV and the schedule CSV
(docs/theory.md §9).

**The curves CSV** has the columns ``run, step, lr, loss`` (optional ``batch``; a UTF-8 byte
order mark, other columns and blank lines are ignored; a known column named twice is refused).
Each row is one step of one run:

- ``loss``: the loss logged after ``step`` updates. **Empty**: a *schedule-only* row, which
  gives the rate of update ``step`` without a loss (every warmup step, say, or every step).
- ``lr``: the rate of update ``step`` (updates count from 0). **Empty**: no rate on this row
  (the last row, step = T, whose update never happens, may leave it empty, or any logged row
  when the rates come from other rows or from a schedule file).
- ``batch``: the batch size of update ``step`` (≥ 1; default 1 without the column). A row with
  a rate needs a batch when the column is there.

A row needs a rate, a loss or both. The per-update schedule of a run is **linear between the
rows that carry a rate** (its *knots*), held before the first and after the last: a warmup
logged row by row, or only at its corners, is followed exactly; a step change needs the rates
on both sides of it (steps k−1 and k). Losses are finite numbers in [1e-200, 1e200], steps
integers in [0, 10¹²] increasing within a run (rows of a run may be interleaved with other
runs' rows).

**The schedule CSV** (``rfmodel fit --schedule``) has the columns ``run, step, lr``
(optional ``batch``) and gives the rates apart from the losses: its rows are merged into the
curves' runs of the same name as schedule-only rows (a rate given in both files must agree).

:func:`write_curves` writes what :func:`read_curves` reads (empty fields stay empty): the round
trip keeps every row.

>>> r = Run.from_rates("wsd", [1.0] * 80 + [0.5] * 20, step=[0, 50, 100], loss=[3.0, 2.0, 1.5])
>>> r.knots[0].tolist(), r.knots[1].tolist()
([0.0, 79.0, 80.0, 99.0], [1.0, 1.0, 0.5, 0.5])
>>> r.points[0].tolist(), float(r.schedule().s1(100))
([0.0, 50.0, 100.0], 90.0)
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..results import write_text

__all__ = [
    "Run",
    "PiecewiseLinear",
    "read_curves",
    "read_schedule",
    "write_curves",
    "validate_runs",
    "simplify_knots",
    "MIN_POINTS",
    "MAX_STEP",
    "LOSS_RANGE",
]

#: Fewest logged points per run (a curve's shape needs a few points per decade of steps).
MIN_POINTS = 5
#: Largest step accepted (sums over the schedule are exact closed forms; nothing per update).
MAX_STEP = 10**12
#: Accepted range of a logged loss (its logarithm and reciprocal stay far from overflow).
LOSS_RANGE = (1e-200, 1e200)
#: Most per-update values :meth:`Run.rates` returns (8·10⁷ float64: 640 MB).
MAX_RATES = 8 * 10**7
_REQUIRED = ("run", "step", "lr", "loss")
_SCHEDULE_REQUIRED = ("run", "step", "lr")
_KNOWN = ("run", "step", "lr", "loss", "batch")


# ----------------------------------------------------------------------------- schedules
class PiecewiseLinear:
    """A per-update quantity ``v[u]`` (u = 0, 1, ...) linear between knots ``(k_i, v_i)``
    (integer k, increasing), held before the first and after the last, with exact closed-form
    sums: nothing per update is stored, whatever the step count.

    >>> p = PiecewiseLinear([0, 10], [1.0, 0.0])
    >>> float(p.s1(10)), float(p.s1(20)), float(p.mean(0, 10))
    (5.5, 5.5, 0.55)
    """

    def __init__(self, knot_step: Sequence[float] | np.ndarray, knot_value) -> None:
        self.k = np.asarray(knot_step, np.float64)
        self.v = np.asarray(knot_value, np.float64)
        n = np.diff(self.k)
        self.slope = np.diff(self.v) / n if self.k.size > 1 else np.zeros(0)
        self.slope_pad = np.concatenate([[0.0], self.slope, [0.0]])
        seg = n * self.v[:-1] + self.slope * n * (n - 1) / 2  # Σ v over [k_i, k_{i+1})
        self.cum = self.k[0] * self.v[0] + np.concatenate([[0.0], np.cumsum(seg)])  # S1(k_i)

    def lr(self, u):
        """v[u] (any real u: the linear interpolant)."""
        return np.interp(u, self.k, self.v)

    def _piece(self, x):
        return np.searchsorted(self.k, x, side="right") - 1

    def s1(self, x):
        """S1(x) = Σ_{u<x} v[u] for integers x ≥ 0 (exact)."""
        x = np.asarray(x, np.float64)
        i = self._piece(x)
        last = self.k.size - 1
        ic = np.clip(i, 0, last)
        m = x - self.k[ic]
        sl = self.slope_pad[ic + 1] * (i < last)
        inside = self.cum[ic] + m * self.v[ic] + sl * m * (m - 1) / 2
        return np.where(i < 0, x * self.v[0], inside)

    def area(self, u, s):
        """Σ_{u ≤ w < s} v[w] (u ≤ s), directly when [u, s) is one linear piece."""
        u, s = np.broadcast_arrays(np.asarray(u, np.float64), np.asarray(s, np.float64))
        same = self._piece(u) == self._piece(np.maximum(s - 1, u))
        direct = (s - u) * (self.lr(u) + self.lr(np.maximum(s - 1, u))) / 2
        return np.maximum(np.where(same, direct, self.s1(s) - self.s1(u)), 0.0)

    def mean(self, a, b):
        """Mean of v over the updates [a, b) (b > a): ``area(a, b) / (b − a)``."""
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        return self.area(a, b) / (b - a)


def simplify_knots(y: np.ndarray, tol: float) -> np.ndarray:
    """Indices of the per-update values ``y`` kept as knots: the ends, and every point further
    than ``tol`` from the straight line through the kept ones (Ramer–Douglas–Peucker), so a
    piecewise-linear schedule keeps only its corners."""
    y = np.asarray(y, np.float64)
    n = y.size
    if n <= 2:
        return np.arange(n)
    keep = np.zeros(n, bool)
    keep[[0, n - 1]] = True
    stack = [(0, n - 1)]
    while stack:
        i, j = stack.pop()
        if j - i < 2:
            continue
        t = np.arange(i + 1, j)
        dev = np.abs(y[t] - (y[i] + (y[j] - y[i]) * (t - i) / (j - i)))
        m = int(np.argmax(dev))
        if dev[m] > tol:
            keep[t[m]] = True
            stack += [(i, int(t[m])), (int(t[m]), j)]
    return np.flatnonzero(keep)


# ----------------------------------------------------------------------------- runs
@dataclass(frozen=True, eq=False)
class Run:
    """One run as rows of the curves CSV: ``step`` (n,) increasing integers; ``lr`` (n,) the
    rate of update ``step[i]`` or NaN (no rate on that row); ``loss`` (n,) the loss after
    ``step[i]`` updates or NaN (a schedule-only row); ``batch`` (n,) the batch of update
    ``step[i]`` (NaN allowed where ``lr`` is NaN). float64 arrays of equal length.

    The schedule is linear in the update index between the rows with a rate (:attr:`knots`),
    held before the first and after the last (:meth:`schedule`); the logged losses are
    :attr:`points`.
    """

    name: str
    step: np.ndarray
    lr: np.ndarray
    loss: np.ndarray
    batch: np.ndarray

    def __post_init__(self) -> None:
        arrays = {}
        for k in ("step", "lr", "loss", "batch"):
            a = np.asarray(getattr(self, k), np.float64)
            if a.ndim == 0:
                a = np.full(np.shape(self.step), float(a))
            arrays[k] = a
        n = arrays["step"].shape
        for k, a in arrays.items():
            if a.ndim != 1 or a.shape != n:
                raise ValueError(
                    f"run {self.name!r}: {k} must be a 1-D array of the length of step {n}; "
                    f"got shape {a.shape}"
                )
            object.__setattr__(self, k, a)

    @classmethod
    def from_rates(
        cls,
        name: str,
        lr: Sequence[float] | np.ndarray,
        *,
        step: Sequence[float] | np.ndarray = (),
        loss: Sequence[float] | np.ndarray = (),
        batch: float | Sequence[float] | np.ndarray = 1.0,
        rtol: float = 1e-9,
    ) -> Run:
        """A run from per-update rates ``lr`` (T,) (update 0, 1, ..., T−1) and the losses
        ``loss`` logged after ``step`` updates: the rates become knots at their corners only
        (:func:`simplify_knots` with tolerance ``rtol`` × max lr, batches likewise), so a 10⁶-step
        WSD run needs four rows."""
        lr = np.asarray(lr, np.float64)
        if lr.ndim != 1 or lr.size == 0 or not np.all(np.isfinite(lr) & (lr >= 0)):
            raise ValueError(
                f"run {name!r}: lr must be a non-empty 1-D array of per-update rates, finite "
                "and >= 0"
            )
        b = np.broadcast_to(np.asarray(batch, np.float64), lr.shape)
        keep = np.union1d(
            simplify_knots(lr, rtol * float(np.max(np.abs(lr), initial=0.0))),
            simplify_knots(b, rtol * float(np.max(b, initial=0.0))),
        )
        st = np.asarray(step, np.float64)
        rows = np.union1d(keep.astype(np.float64), st)
        out_lr = np.full(rows.size, math.nan)
        out_b = np.full(rows.size, math.nan)
        ki = np.searchsorted(rows, keep)
        out_lr[ki], out_b[ki] = lr[keep], b[keep]
        out_loss = np.full(rows.size, math.nan)
        out_loss[np.searchsorted(rows, st)] = np.asarray(loss, np.float64)
        return cls(name, rows, out_lr, out_loss, out_b)

    def with_rates(self, lr: Sequence[float] | np.ndarray, *, rtol: float = 1e-9) -> Run:
        """This run's logged losses with the whole per-update schedule ``lr`` (T,) as knots
        (:meth:`from_rates`; the batch of its first rate row), e.g. a logged run whose rates
        were logged only every k steps, given the exact schedule it was trained with."""
        st, loss = self.points
        b = self.knots[2]
        return Run.from_rates(
            self.name, lr, step=st, loss=loss, batch=float(b[0]) if b.size else 1.0, rtol=rtol
        )

    @property
    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """(step, loss) of the rows with a loss."""
        ok = np.isfinite(self.loss)
        return self.step[ok], self.loss[ok]

    @property
    def knots(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(step, lr, batch) of the rows with a rate: the knots of the schedule."""
        ok = np.isfinite(self.lr)
        return self.step[ok], self.lr[ok], self.batch[ok]

    @property
    def horizon(self) -> int:
        """The last logged step (the run's length in updates)."""
        return int(self.points[0][-1])

    def schedule(self) -> PiecewiseLinear:
        """The per-update rate as a :class:`PiecewiseLinear` (exact sums at any step count)."""
        k, v, _ = self.knots
        return PiecewiseLinear(k, v)

    def batch_schedule(self) -> PiecewiseLinear:
        """The per-update batch as a :class:`PiecewiseLinear`."""
        k, _, b = self.knots
        return PiecewiseLinear(k, b)

    def rates(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-update (lr, batch) for updates 0..n−1 (n ≤ :data:`MAX_RATES`)."""
        if not 0 <= int(n) <= MAX_RATES:
            raise ValueError(
                f"run {self.name!r}: rates(n) gives n per-update values; n must be in "
                f"[0, {MAX_RATES}]; got {n} (use schedule() for sums over longer runs)"
            )
        t = np.arange(int(n), dtype=np.float64)
        k, v, b = self.knots
        return np.interp(t, k, v), np.interp(t, k, b)


# ----------------------------------------------------------------------------- reading
def _number(text: str, where: str, column: str, rule: str, ok) -> float:
    try:
        v = float(text)
    except (TypeError, ValueError):
        v = math.nan
    if not math.isfinite(v) or not ok(v):
        raise ValueError(f"{where}, column {column!r}: must be {rule}; got {text!r}")
    return v


def _rows(path: Path, required: Sequence[str], what: str) -> Iterator[tuple[str, dict[str, str]]]:
    """(where, {column: text}) of each non-blank row, the header checked first."""
    if not path.is_file():
        raise ValueError(f"{what}: no such file {str(path)!r}")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            try:
                header = [h.strip().lower() for h in next(reader)]
            except StopIteration:
                raise ValueError(
                    f"{path}: empty file (need a header {','.join(required)})"
                ) from None
            for c in _KNOWN:
                where = [i + 1 for i, h in enumerate(header) if h == c]
                if len(where) > 1:
                    raise ValueError(
                        f"{path}: line 1: column {c!r} appears {len(where)} times in the header "
                        f"(columns {', '.join(map(str, where))}); keep one"
                    )
            missing = [c for c in required if c not in header]
            if missing:
                raise ValueError(
                    f"{path}: missing column(s) {', '.join(missing)} (the header must name "
                    f"{', '.join(required)}; batch is optional); got columns {header}"
                )
            col = {c: header.index(c) for c in _KNOWN if c in header}
            for row in reader:
                if not row or all(not x.strip() for x in row):
                    continue
                where = f"{path}: line {reader.line_num}"
                if len(row) < len(header):
                    raise ValueError(f"{where}: {len(row)} fields, the header has {len(header)}")
                yield where, {c: row[i].strip() for c, i in col.items()}
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def _parse_row(where: str, cells: dict[str, str], need_loss_column: bool):
    name = cells["run"]
    if not name:
        raise ValueError(f"{where}, column 'run': empty run name")
    step = _number(
        cells["step"],
        where,
        "step",
        f"an integer in [0, {MAX_STEP:.0e}]",
        lambda v: 0 <= v <= MAX_STEP and v == int(v),
    )
    lr = math.nan
    if cells["lr"]:
        lr = _number(cells["lr"], where, "lr", "a finite number >= 0 (or empty)", lambda v: v >= 0)
    loss = math.nan
    if need_loss_column and cells["loss"]:
        lo, hi = LOSS_RANGE
        loss = _number(
            cells["loss"],
            where,
            "loss",
            f"a finite number in [{lo:g}, {hi:g}] (or empty: a schedule-only row)",
            lambda v: lo <= v <= hi,
        )
    batch = math.nan if "batch" in cells else 1.0
    if cells.get("batch"):
        batch = _number(cells["batch"], where, "batch", "a finite number >= 1", lambda v: v >= 1)
    elif "batch" in cells and math.isfinite(lr):
        raise ValueError(
            f"{where}, column 'batch': a row with a rate needs its batch (a finite number >= 1)"
        )
    if need_loss_column and math.isnan(lr) and math.isnan(loss):
        raise ValueError(
            f"{where}: both 'lr' and 'loss' are empty; a row needs a rate, a loss or both"
        )
    if not need_loss_column and math.isnan(lr):
        raise ValueError(f"{where}, column 'lr': a schedule row needs a rate (finite, >= 0)")
    return name, step, lr, loss, batch


def read_schedule(path: str | Path) -> dict[str, list[tuple[str, float, float, float]]]:
    """Read a schedule CSV (``run, step, lr`` [, ``batch``]): per run, its rows
    ``(where, step, lr, batch)`` in file order. ``ValueError`` names the line and column of the
    first bad value (rates finite ≥ 0, steps increasing integers)."""
    path = Path(path)
    out: dict[str, list[tuple[str, float, float, float]]] = {}
    for where, cells in _rows(path, _SCHEDULE_REQUIRED, "schedule"):
        name, step, lr, _, batch = _parse_row(where, cells, need_loss_column=False)
        prev = out.setdefault(name, [])
        if prev and step <= prev[-1][1]:
            raise ValueError(
                f"{where}, column 'step': steps of run {name!r} must increase; got "
                f"{int(step)} after {int(prev[-1][1])}"
            )
        prev.append((where, step, lr, batch))
    if not out:
        raise ValueError(f"{path}: no rows (need run, step, lr rows)")
    return out


def read_curves(
    path: str | Path,
    *,
    schedule: str | Path | dict[str, list] | None = None,
    distinct: bool = True,
    other_runs_ok: bool = False,
) -> list[Run]:
    """Read and validate a curves CSV (module docstring), merging a schedule CSV's rates.

    ``schedule``: a schedule CSV's path or :func:`read_schedule`'s result; a run it names must
    be in the curves unless ``other_runs_ok``. ``distinct``: require two runs with different
    schedules (:func:`validate_runs`; a file of runs to predict needs not).

    Raises ``ValueError`` naming the file, line and column of the first bad value: a missing
    or duplicated column, a step that is not an integer in [0, 10¹²] or does not increase within
    its run, a rate that is not finite and ≥ 0, a loss outside [1e-200, 1e200] (NaN included), a
    batch < 1, a row with neither rate nor loss, a schedule rate that contradicts the curves';
    then the checks of :func:`validate_runs`.
    """
    path = Path(path)
    rows: dict[str, dict[float, list]] = {}
    for where, cells in _rows(path, _REQUIRED, "curves"):
        name, step, lr, loss, batch = _parse_row(where, cells, need_loss_column=True)
        prev = rows.setdefault(name, {})
        if prev and step <= max(prev):
            raise ValueError(
                f"{where}, column 'step': steps of run {name!r} must increase; got "
                f"{int(step)} after {int(max(prev))}"
            )
        prev[step] = [lr, loss, batch, where]
    if schedule is not None:
        sched = schedule if isinstance(schedule, dict) else read_schedule(schedule)
        for name, srows in sched.items():
            if name not in rows:
                if other_runs_ok:
                    continue
                raise ValueError(
                    f"{srows[0][0]}, column 'run': run {name!r} of the schedule is not in "
                    f"{path} (runs: {', '.join(rows) or 'none'})"
                )
            got = rows[name]
            for where, step, lr, batch in srows:
                if step not in got:
                    got[step] = [lr, math.nan, batch, where]
                    continue
                old = got[step]
                if math.isfinite(old[0]) and abs(old[0] - lr) > 1e-9 * max(abs(lr), abs(old[0])):
                    raise ValueError(
                        f"{where}, column 'lr': rate {lr:g} of run {name!r} at step {int(step)} "
                        f"contradicts {old[3]} (lr {old[0]:g}); give a rate in one file only"
                    )
                old[0] = lr
                old[2] = batch if not math.isnan(batch) or math.isnan(old[2]) else old[2]
    runs = []
    for name, r in rows.items():
        st = sorted(r)
        cols = np.array([r[s][:3] for s in st], np.float64).reshape(-1, 3)
        runs.append(Run(name, np.array(st, np.float64), cols[:, 0], cols[:, 1], cols[:, 2]))
    validate_runs(runs, source=str(path), distinct=distinct)
    return runs


def validate_runs(runs: Sequence[Run], *, source: str = "curves", distinct: bool = True) -> None:
    """Check runs before any work; ``ValueError`` names the run.

    At least two runs (with ``distinct``), unique names, each with ≥ :data:`MIN_POINTS`
    logged losses in :data:`LOSS_RANGE`, increasing integer steps in [0, :data:`MAX_STEP`], at
    least one rate (finite ≥ 0, a nonzero one) with a batch ≥ 1; and with ``distinct`` at least
    two different schedules (with one schedule the time scale and the noise are not
    identifiable). Nothing per update is formed.
    """
    runs = list(runs)
    if distinct and len(runs) < 2:
        names = ", ".join(repr(r.name) for r in runs) or "none"
        raise ValueError(
            f"{source}: need at least 2 runs with different schedules; got {len(runs)} ({names})"
        )
    if not runs:
        raise ValueError(f"{source}: no runs")
    names = [r.name for r in runs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"{source}: run names must be unique; {dup} appear more than once")
    lo, hi = LOSS_RANGE
    for r in runs:
        st, loss = r.points
        if st.size < MIN_POINTS:
            raise ValueError(
                f"{source}: run {r.name!r} has {st.size} logged losses; need at least "
                f"{MIN_POINTS} per run"
            )
        bad = (loss < lo) | (loss > hi)
        if np.any(bad):
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{source}: run {r.name!r}: loss at step {int(st[i])} must be a finite number in "
                f"[{lo:g}, {hi:g}]; got {loss[i]!r}"
            )
        s = r.step
        if np.any(~np.isfinite(s) | (s < 0) | (s > MAX_STEP) | (s != np.round(s))):
            raise ValueError(
                f"{source}: run {r.name!r}: steps must be integers in [0, {MAX_STEP:.0e}]"
            )
        if np.any(np.diff(s) <= 0):
            raise ValueError(f"{source}: run {r.name!r}: steps must increase")
        k, v, b = r.knots
        if k.size == 0:
            raise ValueError(f"{source}: run {r.name!r}: no row gives a rate (lr)")
        if np.any(v < 0) or np.any(~np.isfinite(b) | (b < 1)):
            raise ValueError(
                f"{source}: run {r.name!r}: rates must be finite >= 0 and batches >= 1"
            )
        if not np.any(v > 0):
            raise ValueError(f"{source}: run {r.name!r}: every lr is 0 (nothing to fit)")
    if distinct and _all_same_schedule(runs):
        raise ValueError(
            f"{source}: every run uses the same learning-rate schedule; the fit needs at least "
            "two different schedules (e.g. a constant rate and a decaying one)"
        )


def _all_same_schedule(runs: Sequence[Run]) -> bool:
    """Whether every run's per-update rate (up to the longest horizon) is the same: compared at
    every knot of any run and its neighbours (piecewise-linear functions agree everywhere iff
    they agree there)."""
    n = max(r.horizon for r in runs)
    grid = np.unique(np.concatenate([r.knots[0] for r in runs] + [np.array([0.0, n - 1.0])]))
    grid = np.unique(np.clip(np.concatenate([grid - 1, grid, grid + 1]), 0, max(n - 1, 0)))
    vals = [np.round(r.schedule().lr(grid), 12) for r in runs]
    return all(np.array_equal(vals[0], v) for v in vals[1:])


# ----------------------------------------------------------------------------- writing
def _cell(v: float) -> str:
    return "" if math.isnan(v) else repr(float(v))


def write_curves(path: str | Path, runs: Sequence[Run]) -> None:
    """Write runs as a curves CSV (atomically): every row, empty fields where a row has no
    rate, loss or batch; :func:`read_curves` reads it back exactly."""
    lines = ["run,step,lr,loss,batch"]
    for r in runs:
        lines += [
            f"{r.name},{int(s)},{_cell(lr)},{_cell(loss)},{_cell(b)}"
            for s, lr, loss, b in zip(r.step, r.lr, r.loss, r.batch, strict=True)
        ]
    write_text(path, "\n".join(lines) + "\n")
