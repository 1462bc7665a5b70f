"""Learning-rate transfer across horizons, in theory (docs/theory.md §9).

Two measurements on the reference problems of :mod:`rfmodel.experiments.optimal_schedules`
(easy a = 2.5, b = 1.2; hard a = 1.5, b = 2.5; binned tails, effectively infinite N):

1. **Base-rate sweeps.** Final loss against the base rate η for several horizons T, for a
   constant rate and for two annealed shapes with η as their peak (linear decay to zero, and WSD
   with a linear decay over the last 20%). Where does the best base rate η*(T) move with T?
   Predicted (docs/theory.md §6): constant rate η* ~ T^(−(a−1)/(a−1+b)) in both phases;
   annealed, η* ~ T^(−ξ) with ξ = 1 − b/a in the easy phase and ξ = 0 (it stays) in the hard
   phase.
2. **Horizon transfer of the optimal schedule.** The optimum solved at T, transferred to 2T and
   4T (:meth:`rfmodel.control.ScheduleResult.transfer`: stretch rule and fitted closed form),
   against the optimum re-solved there (chains of optimal schedules over T, solved with the
   control rules of optimal_schedules and saved here), and against holding the last rate past
   T (what an exported schedule used to do).

Usage: ``python -m rfmodel.experiments.lr_transfer [--quick]`` (or
``experiments/lr_transfer.py``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..plotting import plain_ticks
from ..results import config_key, load_valid, save_result
from ..runner import Task
from ._cli import experiment_main
from ._common import chain_task, find_chain, make_problem, plt, run_chain
from ._format import Figure, finish, fmt_fit

__all__ = ["config", "tasks", "sweep", "run_chain", "summarize", "plot", "table_rows"]

GROUP = "lr_transfer"
_SHAPES = ("constant", "linear", "wsd")


def config(quick: bool) -> dict[str, Any]:
    """Settings (those of optimal_schedules), horizons, the η grid, transfer factors."""
    from . import optimal_schedules as opt

    oc = opt.config(quick)
    mains = [c for c in oc["chains"] if c["role"] == "main"]
    settings = {c["phase"]: c["setting"] for c in mains}
    chain_Ts = [100, 200, 400] if quick else [200 * 2**k for k in range(7)]
    chains = [
        {
            "name": f"{c['phase']}_transfer",
            "phase": c["phase"],
            "setting": c["setting"],
            "Ts": chain_Ts,
            "rule": c["rule"],
        }
        for c in mains
    ]
    return {
        "settings": settings,
        "chains": chains,
        "Ts": [100, 400] if quick else [200, 800, 3200, 12800],
        "n_eta": 12 if quick else 48,
        "eta_range": [1e-3, 1.0],  # × the per-step stability bound
        "shapes": list(_SHAPES),
        "factors": [2, 4],
        "quick": quick,
    }


def _etas(shape: str, T: int, eta: np.ndarray) -> np.ndarray:
    """(G, T) rates of ``shape`` with base rates ``eta`` (G,)."""
    t = np.arange(T) / T
    if shape == "constant":
        f = np.ones(T)
    elif shape == "linear":
        f = 1 - t
    else:
        f = np.clip((1 - t) / 0.2, 0.0, 1.0)
    return eta[:, None] * f[None, :]


def _grid(cfg, phase) -> np.ndarray:
    p = make_problem(cfg["settings"][phase])
    lo, hi = cfg["eta_range"]
    return p.eta_mode_bound() * np.geomspace(lo, hi, cfg["n_eta"])


def _key(cfg, phase) -> dict[str, Any]:
    return {k: cfg[k] for k in ("Ts", "n_eta", "eta_range", "shapes")} | {
        "problem": make_problem(cfg["settings"][phase]).config(),
        "refine": "33 rates between the best grid point's neighbours",
    }


def _path(results_dir, cfg, phase) -> Path:
    return Path(results_dir) / GROUP / f"sweep_{phase}_{config_key(_key(cfg, phase))}"


def sweep(results_dir: str, cfg: dict[str, Any], phase: str) -> dict[str, Any]:
    """Final losses on the η grid for every shape and horizon: array (shapes, Ts, η)."""
    from ..dynamics import final_losses

    t0 = time.perf_counter()
    p = make_problem(cfg["settings"][phase])
    eta = _grid(cfg, phase)
    loss = np.array([[final_losses(p, _etas(s, T, eta)) for T in cfg["Ts"]] for s in cfg["shapes"]])
    loss = np.where(np.isfinite(loss), loss, np.inf)
    # η*(T): the grid's best point refined on a fine grid between its neighbours (a parabola
    # misses the optimum next to the stability cliff of the hard phase).
    best = np.array(
        [
            [_refine(p, sh, T, eta, loss[s, j]) for j, T in enumerate(cfg["Ts"])]
            for s, sh in enumerate(cfg["shapes"])
        ]
    )
    # cross[s, i, j]: loss at horizon Ts[i] with the base rate best at Ts[j].
    cross = np.array(
        [
            [final_losses(p, _etas(sh, T, best[s])) for T in cfg["Ts"]]
            for s, sh in enumerate(cfg["shapes"])
        ]
    )
    seconds = time.perf_counter() - t0
    save_result(
        _path(results_dir, cfg, phase),
        {"loss": loss, "eta": eta, "best": best, "cross": cross},
        {"seconds": seconds},
        config=_key(cfg, phase),
    )
    return {"seconds": seconds}


def tasks(cfg: dict[str, Any], results_dir: Path) -> list[Task]:
    """One sweep per phase, and one chain of optimal schedules per phase."""
    chains = [chain_task(GROUP, results_dir, GROUP, c) for c in cfg["chains"]]
    return chains + [
        Task(
            GROUP,
            "sweep",
            {"results_dir": str(results_dir), "cfg": cfg, "phase": ph},
            name=f"{GROUP}/{ph}",
            cost=sum(cfg["Ts"]) * cfg["n_eta"] * 3 * 700 * 2e-8,
            done=load_valid(_path(results_dir, cfg, ph), config=_key(cfg, ph)) is not None,
        )
        for ph in cfg["settings"]
    ]


def _refine(problem, shape: str, T: int, eta: np.ndarray, loss: np.ndarray) -> float:
    """The best base rate: the grid's best point, then the best of 33 rates spaced evenly in
    log η between its two neighbours (one batched evaluation)."""
    from ..dynamics import final_losses

    i = int(np.argmin(loss))
    fine = np.geomspace(eta[max(i - 1, 0)], eta[min(i + 1, len(eta) - 1)], 33)
    fl = final_losses(problem, _etas(shape, T, fine))
    fl = np.where(np.isfinite(fl), fl, np.inf)
    return float(fine[int(np.argmin(fl))]) if np.min(fl) < loss[i] else float(eta[i])


def _predicted(shape: str, a: float, b: float) -> float:
    if shape == "constant":
        return (a - 1) / (a - 1 + b)
    return 1 - b / a if a > b else 0.0


def _transfer(cfg, results_dir) -> dict[str, Any]:
    """Transferred vs re-solved optimal loss (cached, keyed by the chains' configuration)."""
    from ..dynamics import loss_curve

    chains = cfg["chains"]
    key = {"chains": chains, "factors": cfg["factors"]}
    path = Path(results_dir) / GROUP / f"transfer_{config_key(key)}"
    got = load_valid(path, config=key)
    if got is not None:
        return got[1]
    out: dict[str, Any] = {}
    for c in chains:
        res = find_chain(results_dir, GROUP, c)
        if len(res) < len(c["Ts"]):
            return {}  # the chains are not computed yet
        p = make_problem(c["setting"])
        rows = []
        for T, r in sorted(res.items()):
            for f in cfg["factors"]:
                if f * T not in res:
                    continue
                ref = res[f * T].loss
                held = np.concatenate([r.etas, np.full((f - 1) * T, r.etas[-1])])
                row = {"T": T, "factor": f, "resolved": ref}
                for name, e in (
                    ("stretch", r.transfer(f * T)),
                    ("recipe", r.transfer(f * T, method="recipe")),
                    ("held", held),
                ):
                    row[name] = float(loss_curve(p, e)[-1]) / ref - 1
                rows.append(row)
        out[c["phase"]] = rows
    save_result(path, None, out, config=key)
    return out


def summarize(cfg: dict[str, Any], results_dir: Path) -> dict[str, Any]:
    """η*(T) per phase and shape with power-law fits; the transfer table."""
    from ..scaling import power_law_fit

    out: dict[str, Any] = {"phases": {}, "compute_seconds": 0.0}
    for ph, setting in cfg["settings"].items():
        got = load_valid(_path(results_dir, cfg, ph), config=_key(cfg, ph))
        if got is None:
            continue
        arr, meta = got
        out["compute_seconds"] += meta["seconds"]
        a, b = setting["a"], setting["b"]
        shapes = {}
        for i, s in enumerate(cfg["shapes"]):
            best = [float(v) for v in arr["best"][i]]
            fit = power_law_fit(cfg["Ts"], best).negated()
            cross = arr["cross"][i]
            shapes[s] = {
                "eta_star": best,
                "fit": fit.as_dict(),
                "predicted": _predicted(s, a, b),
                "untransferred_cost": float(cross[-1, 0] / cross[-1, -1] - 1),
            }
        out["phases"][ph] = {"a": a, "b": b, "shapes": shapes}
    out["transfer"] = _transfer(cfg, Path(results_dir))
    out["readme"] = _readme(cfg, out)
    return out


def _cost(c: float) -> str:
    """A relative loss increase: +x.x%, or ×N when large, or 'diverges'."""
    if not np.isfinite(c) or c > 1e3:
        return "diverges"
    return f"{c:+.1%}" if c < 1 else f"×{1 + c:.3g}"


def _worst(rows, key, factor):
    vals = [r[key] for r in rows if r["factor"] == factor]
    return max(vals) if vals else float("nan")


def _readme(cfg, s) -> str:
    Ts = cfg["Ts"]
    lines = [
        f"**Learning-rate transfer** (best base rate η*(T) over T = {Ts[0]}…{Ts[-1]}; "
        "exponent γ of η* ~ T^−γ, 95% interval; 'not transferred' = loss at T_max with the "
        "base rate that was best at T_min, relative to the best):",
        "",
        "| phase | schedule | η*(T) | γ measured | γ predicted | not transferred |",
        "|---|---|---|---|---|---|",
    ]
    for ph, d in s["phases"].items():
        for sh, v in d["shapes"].items():
            etas = " → ".join(f"{e:.3g}" for e in v["eta_star"])
            lines.append(
                f"| {ph} | {sh} | {etas} | {fmt_fit(v['fit'])} | {v['predicted']:.3f} | "
                f"{_cost(v['untransferred_cost'])} |"
            )
    if s["transfer"]:
        lines += [
            "",
            "**Horizon transfer of the optimal schedule** (loss of the transferred schedule / "
            "re-solved optimum − 1, worst over the saved horizons T → fT):",
            "",
            "| phase | f | stretch rule | fitted closed form | holding the last rate |",
            "|---|---|---|---|---|",
        ]
        for ph, rows in s["transfer"].items():
            for f in cfg["factors"]:
                lines.append(
                    f"| {ph} | {f} | {_worst(rows, 'stretch', f):+.2%} | "
                    f"{_worst(rows, 'recipe', f):+.2%} | {_worst(rows, 'held', f):+.1%} |"
                )
    return "\n".join(lines)


def plot(
    cfg: dict[str, Any], summary: dict[str, Any], results_dir: Path, out: Path
) -> list[Figure]:
    """lr_transfer.png (loss vs base rate) and horizon_transfer.png (transfer accuracy)."""
    figs = []
    phases = [ph for ph in cfg["settings"] if ph in summary["phases"]]
    if phases:
        fig, axs = plt().subplots(
            len(phases), len(cfg["shapes"]), figsize=(14, 4 * len(phases)), squeeze=False
        )
        for r, ph in enumerate(phases):
            arr, _ = load_valid(_path(results_dir, cfg, ph), config=_key(cfg, ph))
            for c, sh in enumerate(cfg["shapes"]):
                ax = axs[r, c]
                v = summary["phases"][ph]["shapes"][sh]
                for j, T in enumerate(cfg["Ts"]):
                    L = arr["loss"][c, j]
                    ax.plot(arr["eta"], L / np.min(L), color=f"C{j}", label=f"T = {T}")
                    ax.axvline(v["eta_star"][j], color=f"C{j}", ls=":", lw=1)
                ax.plot([], [], color="gray", ls=":", lw=1, label="best rate η*(T)")
                ax.set(
                    xscale="log",
                    yscale="log",
                    ylim=(0.95, 3),
                    xlabel="base rate η",
                    ylabel="L(T) / min over η",
                    title=f"{ph}: {sh}; η* ~ T^−γ, γ = {v['fit']['exponent']:.2f} "
                    f"(pred. {v['predicted']:.2f})",
                )
                plain_ticks(ax)
                ax.legend(fontsize=7)
        figs.append(
            finish(
                fig,
                out,
                "lr_transfer.png",
                "Final loss against the base rate for several T, "
                "constant and annealed (linear, WSD), both phases; dotted: η*(T).",
            )
        )
    if summary.get("transfer"):
        fig, ax = plt().subplots(1, 1, figsize=(7, 4.5))
        for i, (ph, rows) in enumerate(summary["transfer"].items()):
            for f, ls in zip(cfg["factors"], ("-", "--"), strict=False):
                rr = [r for r in rows if r["factor"] == f]
                Ts = [r["T"] for r in rr]
                for k, mk in (("stretch", "o"), ("recipe", "s"), ("held", "x")):
                    ax.plot(
                        Ts,
                        [max(r[k], 1e-6) for r in rr],
                        ls=ls,
                        marker=mk,
                        color=f"C{2 * i + (k != 'stretch')}" if k != "held" else "gray",
                        label=f"{ph} {k} ×{f}",
                    )
        ax.axhline(0.01, color="k", lw=0.8, ls=":", label="1%")
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="solved horizon T",
            ylabel="L(transferred) / L(re-solved) − 1",
            title="optimal schedule transferred T → 2T, 4T",
        )
        plain_ticks(ax, "x")
        ax.legend(fontsize=6, ncol=2)
        figs.append(
            finish(
                fig,
                out,
                "horizon_transfer.png",
                "Optimal schedule transferred from T to 2T and "
                "4T (stretch rule, fitted closed form, holding the last rate) against "
                "the re-solved optimum, both phases; dotted: 1%.",
            )
        )
    return figs


def table_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows: the annealed base-rate exponent per phase, and the worst 4× transfer gap."""
    rows = []
    for ph, d in summary["phases"].items():
        v = d["shapes"].get("linear")
        if v is None:
            continue
        f = v["fit"]
        ok = f["lo"] - 0.05 <= v["predicted"] <= f["hi"] + 0.05
        rows.append(
            {
                "quantity": "best base rate of an annealed (linear) schedule η* ~ T^−γ",
                "setting": f"{ph} a={d['a']:g}, b={d['b']:g}",
                "measured": fmt_fit(f),
                "T_range": f"{f['x_min']:g}–{f['x_max']:g} ({f['n']} T)",
                "drift": " → ".join(f"{e:.3g}" for e in v["eta_star"]),
                "predicted": f"{v['predicted']:.3f} (ξ)",
                "verdict": "within 0.05" if ok else "differs",
            }
        )
    for ph, rr in summary.get("transfer", {}).items():
        w = max((r["stretch"] for r in rr if r["factor"] == 4), default=float("nan"))
        rows.append(
            {
                "quantity": "optimal schedule transferred T → 4T vs re-solved",
                "setting": ph,
                "measured": f"{w:+.2%} (worst over T)",
                "T_range": "all saved T",
                "drift": "—",
                "predicted": "within 1%",
                "verdict": "holds" if w < 0.01 else "above 1%",
            }
        )
    return rows


main = experiment_main(GROUP, __doc__)

if __name__ == "__main__":
    main()
