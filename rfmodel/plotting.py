"""Figures: one function per figure, each a function of saved (or returned) numbers.

Uses matplotlib's non-interactive Agg backend; nothing is drawn on import.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["simulation_figure", "optimize_figure", "save_figure"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


#: Longest line drawn point by point; longer ones are thinned (:func:`_thin`). Matplotlib holds
#: ~64 bytes per point of a line (measured: 250 MB for four lines of 10^6 points), so an
#: optimize figure of T = 10^7 steps and six baselines needed ~9 GB; thinned, a few MB.
_MAX_POINTS = 4000


def _starts(n: int) -> np.ndarray | None:
    """First index of each thinning bucket of ``n`` points (None: draw them all): the union of
    _MAX_POINTS linearly and _MAX_POINTS log-spaced edges, fine on linear and log axes alike."""
    if n <= 4 * _MAX_POINTS:
        return None
    edges = np.concatenate(
        [
            np.linspace(0, n, _MAX_POINTS, endpoint=False),
            np.geomspace(1, n, _MAX_POINTS, endpoint=False),
            [0],
        ]
    )
    return np.unique(edges.astype(np.int64))


def _thin(y, first: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(t, y) to draw for the per-step values ``y`` at steps first, first+1, …: all of them when
    short; else, per bucket (:func:`_starts`), its first value, then its minimum and maximum at
    its middle step, so an alternating or noisy curve keeps its envelope."""
    y = np.asarray(y, np.float64)
    t = np.arange(first, first + y.shape[0])
    starts = _starts(y.shape[0])
    if starts is None:
        return t, y
    ends = np.append(starts[1:], y.shape[0])
    mid = first + (starts + ends - 1) / 2.0
    lo, hi = np.minimum.reduceat(y, starts), np.maximum.reduceat(y, starts)
    return (
        np.stack([starts + first, mid, mid], 1).ravel(),
        np.stack([y[starts], lo, hi], 1).ravel(),
    )


def _thin_band(lower, upper, first: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t, lower, upper) of a band, thinned as :func:`_thin` (bucket minimum of the lower edge,
    maximum of the upper one)."""
    t, lo = _thin(lower, first)
    _, hi = _thin(upper, first)
    if lo.shape[0] == np.shape(lower)[0]:
        return t, lo, hi
    lo, hi = lo.reshape(-1, 3), hi.reshape(-1, 3)
    lo[:, 2], hi[:, 1] = lo[:, 1], hi[:, 2]  # min/min below, max/max above
    return t, lo.ravel(), hi.ravel()


def save_figure(fig, path: str | Path) -> Path:
    """Save a figure as PNG atomically (temp file + rename; readable by others, like every
    result: :func:`rfmodel.results.write_text`) and close it."""
    from .results import atomic_write

    path = Path(path)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=130, bbox_inches="tight"))
    _plt().close(fig)
    return path


def simulation_figure(
    theory: np.ndarray, mc_mean: np.ndarray, mc_sem: np.ndarray, etas: np.ndarray, title: str = ""
):
    """Log-log excess loss against step: theory line, Monte-Carlo mean with a ±2 SE band."""
    plt = _plt()
    fig, (ax, ax_eta) = plt.subplots(1, 2, figsize=(10, 4), width_ratios=[2, 1])
    mc_mean, mc_sem = np.asarray(mc_mean), np.asarray(mc_sem)
    ax.fill_between(
        *_thin_band((mc_mean - 2 * mc_sem)[1:], (mc_mean + 2 * mc_sem)[1:], first=1),
        color="C1",
        alpha=0.3,
        lw=0,
        label="Monte-Carlo ±2 SE",
    )
    ax.plot(*_thin(mc_mean[1:], first=1), color="C1", lw=1, label="Monte-Carlo mean")
    ax.plot(*_thin(np.asarray(theory)[1:], first=1), color="k", lw=1.5, ls="--",
            label="exact recursion")  # fmt: skip
    ax.set(xscale="log", yscale="log", xlabel="step t", ylabel="excess loss L(t)", title=title)
    ax.legend()
    ax_eta.plot(*_thin(etas), color="C0")
    ax_eta.set(xlabel="step t", ylabel="learning rate η(t)", title="schedule")
    fig.tight_layout()
    return fig


def optimize_figure(
    optimal: Mapping[str, Any], baselines: Mapping[str, Mapping[str, Any]], title: str = ""
):
    """Two panels: η(t) of the optimum and each tuned baseline; L(t) on log-log axes; one more
    for each other optimized control of ``optimal``: its batch m(t) (``"batches"``) and its
    momentum β(t) (``"betas"``), when not None.

    ``optimal`` and each baseline map ``"etas"`` (T,), ``"curve"`` (T+1,), ``"loss"``.
    """
    plt = _plt()
    extra = [k for k in ("batches", "betas") if optimal.get(k) is not None]
    fig, axes = plt.subplots(1, 2 + len(extra), figsize=(6 + 5.5 * (1 + len(extra)), 4.5))
    ax_eta, ax_loss = axes[0], axes[1]
    for ax, k in zip(axes[2:], extra, strict=True):
        u = np.asarray(optimal[k])
        if k == "batches":
            ax.plot(*_thin(u), color="k", lw=2.2, label="optimal m(t)")
            ax.axhline(np.mean(u), color="gray", ls=":", label="constant m = S/T")
            ax.set(xlabel="step t", ylabel="batch size m(t)", title="optimal batch schedule")
        else:
            ax.plot(*_thin(u), color="k", lw=2.2, label="optimal β(t)")
            ax.axhline(0.0, color="gray", ls=":", label="plain SGD (β = 0)")
            ax.set(xlabel="step t", ylabel="momentum β(t)", title="optimal momentum schedule")
        ax.legend(fontsize=8)
    items = [("optimal", optimal)] + sorted(baselines.items(), key=lambda kv: kv[1]["loss"])
    for i, (name, r) in enumerate(items):
        style = (
            {"color": "k", "lw": 2.2, "zorder": 10}
            if name == "optimal"
            else {"color": plt.cm.tab20(i % 20), "lw": 1.0}
        )
        label = f"{name}: {r['loss']:.4g}"
        ax_eta.plot(*_thin(r["etas"]), label=label, **style)
        ax_loss.plot(*_thin(np.asarray(r["curve"])[1:], first=1), label=label, **style)
    ax_eta.set(xlabel="step t", ylabel="learning rate η(t)", title="schedules")
    ax_loss.set(
        xscale="log",
        yscale="log",
        xlabel="step t",
        ylabel="excess loss L(t)",
        title="loss curves (final loss in legend)",
    )
    ax_loss.legend(fontsize=7, ncol=2)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
