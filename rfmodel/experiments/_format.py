"""Shared formatting of the experiments: markdown tables, fit text, figure layouts, ``main``.

Not an experiment itself. Each experiment module keeps what is about its experiment (what it
computes, what it measures, what its figures show); the pieces every one of them repeats live
here:

- text: :func:`md_table` (lines of a markdown table), :func:`fit_range` and
  :func:`sliding_fit_text` (a :class:`rfmodel.scaling.PowerLawFit` dict as table cells),
  :func:`within` (a verdict against a prediction), :func:`sliding_series`;
- figures: :func:`finish` (title, layout, atomic PNG, the :class:`rfmodel.figures.Figure`
  record), :func:`style` (axis settings with a legend), :func:`fit_line` (a fitted power law
  drawn over its range), :func:`viridis` (colours of a sequence of horizons);
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..plotting import save_figure
from ._common import plt, sliding_text

__all__ = [
    "Figure",
    "fmt_fit",
    "TABLE_COLUMNS",
    "measured_table",
    "plt",
    "md_table",
    "centres",
    "sliding_series",
    "sliding_fit_text",
    "fit_range",
    "within",
    "finish",
    "style",
    "fit_line",
    "viridis",
]


# ----------------------------------------------------------------------------- text
@dataclass(frozen=True)
class Figure:
    """A written figure: file name (relative to OUT), what it shows, the command that made it."""

    file: str
    description: str
    command: str = "rfmodel figures"


def fmt_fit(fit: dict[str, Any] | None, digits: int = 3) -> str:
    """``"0.601 [0.598, 0.604]"`` from a :class:`rfmodel.scaling.PowerLawFit` dict (or ±SE)."""
    if not fit:
        return "—"
    v = fit["exponent"]
    lo, hi = fit.get("lo", math.nan), fit.get("hi", math.nan)
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{v:.{digits}f}"
    return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


#: Columns of the measured-vs-predicted table of figures/README.md (key, title).
TABLE_COLUMNS = [
    ("quantity", "quantity"),
    ("setting", "setting"),
    ("measured", "measured (95% interval)"),
    ("T_range", "fit range of T"),
    ("drift", "as the T range grows (sliding windows)"),
    ("predicted", "predicted"),
    ("verdict", "verdict"),
]


def measured_table(rows: Sequence[dict[str, Any]]) -> str:
    """The measured-vs-predicted table (:data:`TABLE_COLUMNS`) of ``rows`` as markdown."""
    cells = ([str(r.get(k, "")).replace("|", "\\|") for k, _ in TABLE_COLUMNS] for r in rows)
    return "\n".join(md_table([title for _, title in TABLE_COLUMNS], cells))


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]] = ()) -> list[str]:
    """Lines of a markdown table: the header, its ``|---|`` rule and one line per row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]


def centres(fits: Sequence[dict[str, Any]]) -> list[float]:
    """Geometric centre √(x_min·x_max) of each fit's window (sliding fits over T)."""
    return [math.sqrt(f["x_min"] * f["x_max"]) for f in fits]


def sliding_series(
    block: dict[str, Any] | None, key: str | None = None
) -> tuple[list[float], list[float], list[float]]:
    """(window centres, exponents, standard errors) of the ``"sliding"`` fits of a fit block
    (``block[key]`` when ``key`` is given; empty lists when there are none)."""
    if key is not None:
        block = (block or {}).get(key, {})
    fits = (block or {}).get("sliding") or []
    return centres(fits), [f["exponent"] for f in fits], [f["stderr"] for f in fits]


def sliding_fit_text(block: dict[str, Any] | None, digits: int = 3) -> str:
    """The exponents of a fit block's sliding fits along T (:func:`sliding_text`)."""
    x, y, _ = sliding_series(block)
    return sliding_text(x, y, digits)


def fit_range(fit: dict[str, Any] | None, spec: str = ".0f") -> str:
    """``"400–51200 (3 T)"``: the range of T of a fit and its number of horizons."""
    if not fit:
        return "—"
    return f"{fit['x_min']:{spec}}–{fit['x_max']:{spec}} ({fit['n']} T)"


def within(measured: float, predicted: float, tol: float) -> str:
    """``"within 0.05 (Δ = +0.012)"`` or ``"off by +0.071 (tolerance 0.05)"``."""
    d = measured - predicted
    return (
        f"within {tol:g} (Δ = {d:+.3f})"
        if abs(d) <= tol
        else f"off by {d:+.3f} (tolerance {tol:g})"
    )


# ----------------------------------------------------------------------------- figures
def finish(
    fig: Any,
    out: str | Path,
    name: str,
    description: str,
    title: str | None = None,
    fontsize: float | None = 10,
    rect: tuple[float, float, float, float] | None = None,
) -> Figure:
    """Give ``fig`` its suptitle (if any), lay it out (within ``rect``, e.g. to leave room for a
    figure legend below), save it as ``out/name`` (atomically) and return the :class:`Figure`
    record with ``description``."""
    if title is not None:
        fig.suptitle(title, **({} if fontsize is None else {"fontsize": fontsize}))
    fig.tight_layout(rect=rect)
    save_figure(fig, Path(out) / name)
    return Figure(name, description)


def style(ax: Any, legend: float | None = 7, ncol: int = 1, **settings: Any) -> None:
    """``ax.set(**settings)`` and a legend of font size ``legend`` (none when None)."""
    ax.set(**settings)
    if legend is not None:
        ax.legend(fontsize=legend, **({"ncol": ncol} if ncol != 1 else {}))


def fit_line(ax: Any, fit: dict[str, Any], fmt: str = "-", shift: float = 0.0, **kw: Any) -> None:
    """The fitted power law ``prefactor·x^(exponent + shift)`` over the fit's range."""
    xs = np.array([fit["x_min"], fit["x_max"]])
    ax.loglog(xs, fit["prefactor"] * xs ** (fit["exponent"] + shift), fmt, **kw)


def viridis(n: int) -> list[Any]:
    """``n`` colours evenly along viridis (for a sequence of horizons)."""
    cm = plt().cm.viridis
    return [cm(i / max(1, n - 1)) for i in range(n)]


# ----------------------------------------------------------------------------- boilerplate
