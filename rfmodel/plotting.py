"""Figures: one function per figure, each a function of saved (or returned) numbers.

Uses matplotlib's non-interactive Agg backend; nothing is drawn on import.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["simulation_figure", "optimize_figure", "save_figure", "plain_ticks"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> Path:
    """Save a figure as PNG atomically (temp file + rename; readable by others, like every
    result: :func:`rfmodel.results.write_text`) and close it."""
    from .results import atomic_write

    path = Path(path)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=130, bbox_inches="tight"))
    _plt().close(fig)
    return path


def plain_ticks(ax, axis: str = "both") -> None:
    """Plain numbers on log axes at 1, 2, 5 × 10^k (0.1, 0.2, 0.5, not 10^-1, 2×10^-1)."""
    import matplotlib.ticker as mt

    for a, scale in (("x", ax.get_xscale()), ("y", ax.get_yscale())):
        if axis not in (a, "both") or scale != "log":
            continue
        part = getattr(ax, f"{a}axis")
        part.set_major_locator(mt.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        part.set_major_formatter(mt.FuncFormatter(lambda v, _: f"{v:g}"))
        part.set_minor_formatter(mt.NullFormatter())


def simulation_figure(
    theory: np.ndarray, mc_mean: np.ndarray, mc_sem: np.ndarray, etas: np.ndarray, title: str = ""
):
    """Log-log excess loss against step: theory line, Monte-Carlo mean with a ±2 SE band; the
    schedule beside it (from 0, so a constant rate reads as one)."""
    plt = _plt()
    fig, (ax, ax_eta) = plt.subplots(1, 2, figsize=(10, 4), width_ratios=[2, 1])
    t = np.arange(len(theory))
    ax.fill_between(
        t[1:],
        (mc_mean - 2 * mc_sem)[1:],
        (mc_mean + 2 * mc_sem)[1:],
        color="C1",
        alpha=0.3,
        lw=0,
        label="Monte-Carlo ±2 SE",
    )
    ax.plot(t[1:], mc_mean[1:], color="C1", lw=1, label="Monte-Carlo mean")
    ax.plot(t[1:], theory[1:], color="k", lw=1.5, ls="--", label="exact recursion")
    ax.set(xscale="log", yscale="log", xlabel="step t", ylabel="excess loss L(t)")
    plain_ticks(ax)
    ax.legend()
    ax_eta.plot(np.arange(len(etas)), etas, color="C0")
    ax_eta.set(xlabel="step t", ylabel="learning rate η(t)", title="schedule")
    ax_eta.set_ylim(0, 1.1 * float(np.max(etas)))
    fig.suptitle(title)
    fig.tight_layout()
    return fig


#: Baselines drawn in colour (the best ones); the rest are grey lines, every one still named in
#: the final-loss panel.
SHOWN_BASELINES = 4


def optimize_figure(
    optimal: Mapping[str, Any], baselines: Mapping[str, Mapping[str, Any]], title: str = ""
):
    """The optimum against the tuned baselines.

    Panels: η(t) of the optimum and the baselines (the best :data:`SHOWN_BASELINES` in colour,
    the others grey); L(t) on log-log axes, styled alike; every schedule's final loss relative
    to the optimum (a bar each, best first); then one panel for each other optimized control of
    ``optimal``: its batch m(t) (``"batches"``) and its momentum β(t) (``"betas"``), when not
    None. With momentum the η panel shows the optimum's effective rate η/(1 − β), the rate
    comparable with the baselines' η. One legend, below the panels.

    ``optimal`` and each baseline map ``"etas"`` (T,), ``"curve"`` (T+1,), ``"loss"``.
    """
    plt = _plt()
    extra = [k for k in ("batches", "betas") if optimal.get(k) is not None]
    n = 3 + len(extra)
    fig, axes = plt.subplots(
        1, n, figsize=(5.2 * n, 4.6), width_ratios=[1.2, 1.2, 0.9] + [1] * len(extra)
    )
    ax_eta, ax_loss, ax_bar = axes[0], axes[1], axes[2]
    for ax, k in zip(axes[3:], extra, strict=True):
        u = np.asarray(optimal[k])
        if k == "batches":
            ax.plot(np.arange(len(u)), u, color="k", lw=2.2)
            ax.axhline(np.mean(u), color="gray", ls=":", label="constant batch m = S/T")
            ax.set(xlabel="step t", ylabel="batch size m(t)", title="optimal batch schedule")
        else:
            ax.plot(np.arange(len(u)), u, color="k", lw=2.2)
            ax.axhline(0.0, color="gray", ls=":", label="plain SGD (β = 0)")
            ax.set(xlabel="step t", ylabel="momentum β(t)", title="optimal momentum schedule")
        ax.legend(fontsize=8, loc="best")
    ranked = sorted(baselines.items(), key=lambda kv: kv[1]["loss"])
    colours = plt.cm.tab10.colors
    eta = np.asarray(optimal["etas"], np.float64)
    if optimal.get("betas") is not None:
        eta = eta / (1.0 - np.asarray(optimal["betas"], np.float64))
    lines = [("optimal" + (" η/(1−β)" if optimal.get("betas") is not None else ""), eta,
              optimal["curve"], {"color": "k", "lw": 2.4, "zorder": 10})]  # fmt: skip
    for i, (name, r) in enumerate(ranked):
        style = (
            {"color": colours[(i + 1) % 10], "lw": 1.6, "zorder": 5}
            if i < SHOWN_BASELINES
            else {"color": "0.75", "lw": 0.8, "zorder": 1}
        )
        lines.append((name, np.asarray(r["etas"]), r["curve"], style))
    for i, (name, e, curve, style) in enumerate(lines):
        label = name if i <= SHOWN_BASELINES else None
        ax_eta.plot(np.arange(len(e)), e, label=label, **style)
        c = np.asarray(curve)[1:]
        ax_loss.plot(np.arange(1, len(c) + 1), c, **style)
    if len(ranked) > SHOWN_BASELINES:
        ax_eta.plot(
            [], [], color="0.75", lw=0.8, label=f"{len(ranked) - SHOWN_BASELINES} other families"
        )
    ax_eta.set(xlabel="step t", ylabel="learning rate η(t)", title="schedules")
    ax_loss.set(xscale="log", yscale="log", xlabel="step t", ylabel="excess loss L(t)",
                title="loss curves")  # fmt: skip
    plain_ticks(ax_loss)
    names = ["optimal"] + [n for n, _ in ranked]
    ratios = [1.0] + [r["loss"] / optimal["loss"] for _, r in ranked]
    bar_colours = ["k"] + [colours[(i + 1) % 10] if i < SHOWN_BASELINES else "0.75"
                           for i in range(len(ranked))]  # fmt: skip
    y = np.arange(len(names))[::-1]
    ax_bar.barh(y, np.asarray(ratios) - 1.0, left=1.0, color=bar_colours, height=0.7)
    ax_bar.set_yticks(y, names, fontsize=8)
    ax_bar.axvline(1.0, color="k", lw=0.8)
    ax_bar.set(xlabel="final loss / optimal", title="final loss L(T)")
    ax_bar.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.3g}"))
    fig.suptitle(title)
    fig.legend(*ax_eta.get_legend_handles_labels(), loc="lower center", ncol=min(6, len(lines) + 1),
               fontsize=8, frameon=False, bbox_to_anchor=(0.5, -0.02))  # fmt: skip
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig
