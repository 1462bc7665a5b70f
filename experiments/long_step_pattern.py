"""Hard phase: per-step optimal control without smoothing vs K-piecewise and smoothed optima.

With one control per step and no smoothing, the hard-phase optimum alternates large and small
steps (a long-step pattern exploiting the two-step stability of the top modes, THEORY.md §6);
K piecewise-constant controls or a smoothness penalty give the warmup-stable-decay shape. This
script solves all three on the same problem and reports their final losses.

Usage: ``python experiments/long_step_pattern.py [--out figures]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from rfmodel import Problem
from rfmodel.control import optimize_schedule
from rfmodel.plotting import save_figure
from rfmodel.results import write_json

PROBLEM = dict(a=1.5, b=2.5, sigma=0.5, n_modes=500, batch=5)  # P2 of the solver benchmark
T, ETA_MAX = 1000, 2.0
VARIANTS = {"per-step, no smoothing": dict(), "K = 100 piecewise": dict(controls=100),
            "per-step, κ = 1e-2": dict(smoothness=1e-2), "per-step, κ = 1": dict(smoothness=1.0)}


def run() -> dict[str, dict]:
    """Solve every variant; return {name: {loss, etas, iterations, projected_gradient}}."""
    p = Problem(**PROBLEM, n_exact=PROBLEM["n_modes"])
    out = {}
    for name, kw in VARIANTS.items():
        r = optimize_schedule(p, T, eta_max=ETA_MAX, maxiter=20_000, **kw)
        out[name] = {"loss": r.loss, "etas": r.etas, "iterations": r.iterations,
                     "projected_gradient": r.projected_gradient, "converged": r.converged}
    return out


def figure(res: dict[str, dict]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, axz) = plt.subplots(1, 2, figsize=(12, 4))
    for i, (name, r) in enumerate(res.items()):
        kw = {"lw": 0.6 if i == 0 else 1.6, "color": f"C{i}"}
        label = f"{name}: L(T) = {r['loss']:.6f}"
        ax.plot(r["etas"], label=label, **kw)
        axz.plot(np.arange(T - 120, T), r["etas"][-120:], marker="." if i == 0 else None,
                 label=label, **kw)
    p = Problem(**PROBLEM)
    for a in (ax, axz):
        a.axhline(p.eta_critical(), color="gray", ls=":", lw=1)
        a.set(xlabel="step t", ylabel="η(t)")
    ax.set_title(f"hard phase a={PROBLEM['a']}, b={PROBLEM['b']}, σ={PROBLEM['sigma']}, "
                 f"m={PROBLEM['batch']}, N={PROBLEM['n_modes']}, T={T} (dotted: η_c)")
    axz.set_title("last 120 steps")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("figures"))
    args = ap.parse_args()
    res = run()
    best = min(r["loss"] for r in res.values())
    for name, r in res.items():
        print(f"{name:24s} L(T) = {r['loss']:.10f}  (+{r['loss'] / best - 1:.2e})  "
              f"{r['iterations']:6d} iterations, projected gradient {r['projected_gradient']:.1e}")
    save_figure(figure(res), args.out / "long_step_pattern.png")
    write_json(args.out / "data" / "long_step_pattern.json",
               {k: {kk: vv for kk, vv in v.items() if kk != "etas"} for k, v in res.items()})


if __name__ == "__main__":
    main()
