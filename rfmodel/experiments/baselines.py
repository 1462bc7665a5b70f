"""Final loss against T for the optimal schedule and every tuned baseline family.

Both settings and all horizons of :mod:`optimal_schedules` (same problems, N effectively
infinite). Each family of :data:`rfmodel.schedules.FAMILIES` (constant, power law, cosine,
linear, polynomial, four WSD decay shapes, Power Scheduler, exponential, inverse square root) is
tuned at every T on the exact dynamics with :func:`rfmodel.schedules.tune`; every (family, T)
result is saved as soon as it is tuned, then each horizon's parameters are also tried at its
neighbouring horizons (the tuning is not convex) and the best is kept. One task per (setting,
family). Reported per family: the loss exponent (fit over the top horizons and over sliding
windows) and the ratio of its loss to the optimum at the largest T; for the constant family also
the exponent of the tuned rate, η_c(T) ~ T^(−γ).

Usage: ``python -m rfmodel.experiments.baselines [--quick] [--results DIR] [--out DIR]``
(or ``python experiments/baselines.py`` in the source checkout).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..dynamics import loss_curve
from ..results import config_key, load_valid, save_result
from ..runner import Task
from ..scaling import power_law_fit, sliding_fits
from ..schedules import FAMILIES, as_array, tune
from ._cli import experiment_main
from ._common import find_chain, make_problem, plt, setting_label
from ._format import Figure, finish, fit_range, fmt_fit, sliding_fit_text

__all__ = ["config", "tasks", "tune_family", "summarize", "plot", "table_rows", "main"]

GROUP = "baselines"
#: Seconds per (kept mode × step) for tuning all families at one horizon (measured ≈ 7e-6).
_TUNE_COST = 7e-6
_QUICK_FAMILIES = ["constant", "power_law", "cosine", "polynomial", "wsd_linear"]


def config(quick: bool) -> dict[str, Any]:
    """Settings and horizons of the optimal-schedule main chains; families; tuning options."""
    from . import optimal_schedules

    oc = optimal_schedules.config(quick)
    mains = {c["phase"]: c for c in oc["chains"] if c["role"] == "main"}
    families = _QUICK_FAMILIES if quick else list(FAMILIES)
    return {
        "settings": {ph: c["setting"] for ph, c in mains.items()},
        "Ts": mains["easy"]["Ts"],
        "families": families,
        "tune": {"maxiter": 200, "n_starts": 2 if quick else 3},
        "main_chains": mains,
        "top": oc["top"],
        "quick": quick,
    }


def _family_spec(name: str) -> list[dict[str, Any]] | dict[str, Any]:
    return FAMILIES[name].spec()


def _tune_key(setting: dict, T: int, family: str, tune_kw: dict) -> dict[str, Any]:
    return {
        "problem": make_problem(setting).config(),
        "T": T,
        "family": family,
        "params": _family_spec(family),
        "tune": tune_kw,
    }


def _path(results_dir: Path, phase: str, setting: dict, T: int, family: str, tune_kw: dict) -> Path:
    key = config_key(_tune_key(setting, T, family, tune_kw))
    return Path(results_dir) / GROUP / phase / f"T{T}_{family}_{key}"


def _family_key(setting: dict, Ts: list[int], family: str, tune_kw: dict) -> dict[str, Any]:
    return {
        "problem": make_problem(setting).config(),
        "Ts": list(Ts),
        "family": family,
        "params": _family_spec(family),
        "tune": tune_kw,
        "transfer": True,
    }


def _family_path(
    results_dir: Path, phase: str, setting: dict, Ts: list[int], family: str, tune_kw: dict
) -> Path:
    key = config_key(_family_key(setting, Ts, family, tune_kw))
    return Path(results_dir) / GROUP / phase / f"family_{family}_{key}"


def _load_family(
    results_dir: Path, phase: str, setting: dict, Ts: list[int], family: str, tune_kw: dict
) -> dict[str, Any] | None:
    """The saved, valid record of one family over all horizons (or None: missing/damaged)."""
    path = _family_path(results_dir, phase, setting, Ts, family, tune_kw)
    got = load_valid(path, config=_family_key(setting, Ts, family, tune_kw))
    return None if got is None else got[1]


def _tune_one(path: Path, family: str, problem, T: int, tune_kw: dict[str, Any]) -> dict:
    """Tune one family at one horizon, or load it; the raw tuner result, saved at ``path``."""
    key = {
        "problem": problem.config(),
        "T": int(T),
        "family": family,
        "params": _family_spec(family),
        "tune": tune_kw,
    }
    got = load_valid(path, config=key)
    if got is not None:
        return got[1]
    t0 = time.perf_counter()
    r = tune(family, problem, int(T), **tune_kw)
    rec = {
        "family": family,
        "T": int(T),
        "params": r.params,
        "loss": r.loss,
        "evaluations": r.evaluations,
        "at_bound": list(r.at_bound),
        "wall_time": time.perf_counter() - t0,
        "config": key,
    }
    save_result(path, None, rec, config=key)
    return rec


def _loss_with(family: str, problem, T: int, params: dict[str, float]) -> float:
    """L(T) of the family's schedule with the given parameters (inf if it diverges)."""
    etas = np.asarray(as_array(FAMILIES[family].make(T, problem.batch, **params), T))
    v = float(loss_curve(problem, etas)[-1])
    return v if math.isfinite(v) else math.inf


def tune_family(
    results_dir: str,
    phase: str,
    setting: dict[str, Any],
    Ts: list[int],
    family: str,
    tune_kw: dict[str, Any],
) -> dict[str, Any]:
    """Tune one family at every horizon, then share parameters between neighbouring horizons.

    Each horizon is tuned by :func:`rfmodel.schedules.tune` (grid + multistart L-BFGS-B) and
    saved as it finishes. The tuning is not convex (e.g. the four-parameter Power Scheduler has
    several basins), so afterwards the parameters tuned at each horizon are also tried at its
    neighbours (sweeps up and down in T until nothing improves): a family's loss at T is the
    best of its own tuning and its neighbours' parameters. Both numbers are saved
    (``family_<name>_<key>.json``).
    """
    p = make_problem(setting)
    Ts = sorted(int(T) for T in Ts)
    raw = {
        T: _tune_one(
            _path(Path(results_dir), phase, setting, T, family, tune_kw), family, p, T, tune_kw
        )
        for T in Ts
    }
    best = {T: {"loss": raw[T]["loss"], "params": raw[T]["params"], "source": "tuned"} for T in Ts}
    for sweep in range(6):
        order = Ts if sweep % 2 == 0 else Ts[::-1]
        changed = False
        for prev, T in zip(order[:-1], order[1:], strict=True):
            cand = _loss_with(family, p, T, best[prev]["params"])
            if cand < best[T]["loss"] * (1 - 1e-12):
                best[T] = {
                    "loss": cand,
                    "params": best[prev]["params"],
                    "source": f"parameters of T={prev}"
                    if best[prev]["source"] == "tuned"
                    else best[prev]["source"],
                }
                changed = True
        if not changed and sweep >= 1:
            break
    rec = {
        "family": family,
        "Ts": Ts,
        "raw": {str(T): raw[T] for T in Ts},
        "best": {str(T): best[T] for T in Ts},
        "wall_time": sum(r["wall_time"] for r in raw.values()),
    }
    save_result(
        _family_path(Path(results_dir), phase, setting, Ts, family, tune_kw),
        None,
        rec,
        config=_family_key(setting, Ts, family, tune_kw),
    )
    return {
        "family": family,
        "phase": phase,
        "improved": [T for T in Ts if best[T]["source"] != "tuned"],
    }


#: Relative tuning cost of the families (measured wall times, constant = 1).
_FAMILY_COST = {"power_scheduler": 3.0, "cosine": 1.7, "wsd_exponential": 1.5, "wsd_1-sqrt": 1.5}


def tasks(cfg: dict[str, Any], results_dir: Path) -> list[Task]:
    """One task per (setting, family): tune it at every horizon, then share parameters."""
    out = []
    for ph, s in cfg["settings"].items():
        n_eff = make_problem(s).n_eff
        for fam in cfg["families"]:
            done = _load_family(results_dir, ph, s, cfg["Ts"], fam, cfg["tune"]) is not None
            out.append(
                Task(
                    "baselines",
                    "tune_family",
                    {
                        "results_dir": str(results_dir),
                        "phase": ph,
                        "setting": s,
                        "Ts": cfg["Ts"],
                        "family": fam,
                        "tune_kw": cfg["tune"],
                    },
                    name=f"baselines/{ph}/{fam}",
                    cost=_TUNE_COST * n_eff * sum(cfg["Ts"]) / 12 * _FAMILY_COST.get(fam, 1.2),
                    done=done,
                )
            )
    return out


# ----------------------------------------------------------------------------- analysis
def _load(results_dir: Path, cfg: dict[str, Any], ph: str) -> dict[str, dict[str, Any]]:
    s = cfg["settings"][ph]
    out: dict[str, dict[str, Any]] = {}
    for fam in cfg["families"]:
        rec = _load_family(results_dir, ph, s, cfg["Ts"], fam, cfg["tune"])
        if rec is not None:
            out[fam] = rec
    return out


def _fit_block(Ts: np.ndarray, y: np.ndarray, top: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "all": power_law_fit(Ts, y).negated().as_dict(),
        "top": power_law_fit(Ts[-top:], y[-top:]).negated().as_dict(),
    }
    if Ts.size >= 3:
        out["sliding"] = [f.negated().as_dict() for f in sliding_fits(Ts, y, window=3)]
    return out


def summarize(cfg: dict[str, Any], results_dir: Path) -> dict[str, Any]:
    """Per setting and family: losses over T, fitted exponents, ratio to the optimum."""
    phases: dict[str, Any] = {}
    seconds = 0.0
    for ph, s in cfg["settings"].items():
        p = make_problem(s)
        tuned = _load(results_dir, cfg, ph)
        opt = find_chain(results_dir, "optimal", cfg["main_chains"][ph])
        fams: dict[str, Any] = {}
        for fam, rec in tuned.items():
            best = {int(T): v for T, v in rec["best"].items()}
            raw = {int(T): v for T, v in rec["raw"].items()}
            seconds += float(rec["wall_time"])
            Ts = sorted(T for T in best if T in opt) if opt else sorted(best)
            if len(Ts) < 2:
                continue
            T_arr = np.array(Ts, dtype=np.float64)
            L = np.array([best[T]["loss"] for T in Ts])
            entry = {
                "Ts": Ts,
                "loss": L.tolist(),
                "fit": _fit_block(T_arr, L, cfg["top"]),
                "params": [best[T]["params"] for T in Ts],
                "source": [best[T]["source"] for T in Ts],
                "tuned_loss": [raw[T]["loss"] for T in Ts],
                "at_bound": [raw[T]["at_bound"] for T in Ts],
            }
            if opt:
                Lopt = np.array([opt[T].loss for T in Ts])
                entry["ratio"] = (L / Lopt).tolist()
            if fam == "constant":
                eta = np.array([best[T]["params"]["eta0"] for T in Ts])
                entry["eta_fit"] = _fit_block(T_arr, eta, cfg["top"])
            fams[fam] = entry
        opt_T = sorted(opt)
        phases[ph] = {
            "setting": s,
            "label": setting_label(s, p),
            "theory": vars(p.theory()),
            "families": fams,
            "optimal": {"Ts": opt_T, "loss": [opt[T].loss for T in opt_T]},
        }
        if len(opt_T) >= 2:
            T_arr = np.array(opt_T, dtype=np.float64)
            phases[ph]["optimal"]["fit"] = _fit_block(
                T_arr, np.array([opt[T].loss for T in opt_T]), cfg["top"]
            )
    summary = {
        "phases": phases,
        "compute_seconds": seconds,
        "config": {k: v for k, v in cfg.items() if k != "main_chains"},
    }
    summary["readme"] = _readme_text(summary)
    return summary


def table_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the measured-vs-predicted table: constant-rate exponents in both phases."""
    rows = []
    for ph, d in summary["phases"].items():
        c = d["families"].get("constant")
        if not c:
            continue
        th = d["theory"]
        lab = f"{ph} a={d['setting']['a']:g}, b={d['setting']['b']:g}"
        f = c["fit"]["top"]
        pred = th["constant_loss"]
        rows.append(
            {
                "quantity": "loss with the best constant η ~ T^−r",
                "setting": lab,
                "measured": fmt_fit(f),
                "T_range": fit_range(f),
                "drift": sliding_fit_text(c["fit"]),
                "predicted": f"{pred:.3f} ((a−1)/(a−1+b))",
                "verdict": f"Δ = {f['exponent'] - pred:+.3f}; optimum/constant at T = "
                f"{c['Ts'][-1]}: {1 / c['ratio'][-1]:.3f}"
                if "ratio" in c
                else f"Δ = {f['exponent'] - pred:+.3f}",
            }
        )
        e = c["eta_fit"]["top"]
        rows.append(
            {
                "quantity": "best constant η ~ T^−γ",
                "setting": lab,
                "measured": fmt_fit(e),
                "T_range": fit_range(e),
                "drift": sliding_fit_text(c["eta_fit"]),
                "predicted": f"{th['constant_eta']:.3f} ((a−1)/(a−1+b))",
                "verdict": f"Δ = {e['exponent'] - th['constant_eta']:+.3f}",
            }
        )
        pl = d["families"].get("power_law")
        if pl:
            f = pl["fit"]["top"]
            rows.append(
                {
                    "quantity": "loss with the best power law η₀(1+t)^−χ",
                    "setting": lab,
                    "measured": fmt_fit(f),
                    "T_range": fit_range(f),
                    "drift": sliding_fit_text(pl["fit"]),
                    "predicted": f"between constant {pred:.3f} and optimal "
                    f"{th['optimal_loss']:.3f}",
                    "verdict": f"χ at T={pl['Ts'][-1]}: {pl['params'][-1]['chi']:.3f}",
                }
            )
    return rows


def _readme_text(summary: dict[str, Any]) -> str:
    lines = [
        "## Baseline families against the optimum",
        "",
        "Each family tuned at every T on the same dynamics (`rfmodel.schedules.tune`: grid "
        "+ L-BFGS-B). Exponent r of L(T) ~ T^−r fitted over the top horizons (95% "
        "interval); ratio = L_family / L* at the largest T.",
        "",
    ]
    phs = list(summary["phases"])
    head = "| family | " + " | ".join(f"{ph}: r | {ph}: ratio at T_max" for ph in phs) + " |"
    lines += [head, "|---|" + "---|---|" * len(phs)]
    fams: list[str] = []
    for ph in phs:
        fams += [f for f in summary["phases"][ph]["families"] if f not in fams]
    opt_cells = []
    for ph in phs:
        o = summary["phases"][ph]["optimal"]
        opt_cells.append(f"{fmt_fit(o['fit']['top'])} | 1" if o.get("fit") else "— | —")
    lines.append("| **optimal** | " + " | ".join(opt_cells) + " |")
    for fam in fams:
        cells = []
        for ph in phs:
            e = summary["phases"][ph]["families"].get(fam)
            if not e:
                cells.append("— | —")
                continue
            ratio = f"{e['ratio'][-1]:.3f}" if "ratio" in e else "—"
            cells.append(f"{fmt_fit(e['fit']['top'])} | {ratio}")
        lines.append(f"| {fam} | " + " | ".join(cells) + " |")
    moved = []
    for ph in phs:
        for fam, e in summary["phases"][ph]["families"].items():
            for T, src, lt, lb in zip(
                e["Ts"], e["source"], e["tuned_loss"], e["loss"], strict=True
            ):
                if src != "tuned":
                    moved.append(f"{ph}/{fam} T={T} ({src}: {lt / lb - 1:.2%} better)")
    lines.append("")
    lines.append(
        "Tuning is not convex; each horizon's tuned parameters are also tried at the "
        "neighbouring horizons and the best is kept. "
        + (
            f"That improved {len(moved)} (family, T) results: " + "; ".join(moved) + "."
            if moved
            else "That improved none of the results."
        )
    )
    for ph in phs:
        o = summary["phases"][ph]["optimal"]
        if o.get("fit"):
            f = o["fit"]["top"]
            lines.append(
                f"\n{ph}: {summary['phases'][ph]['label']}; fits over T = "
                f"{f['x_min']:.0f}–{f['x_max']:.0f}."
            )
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- figures
def plot(
    cfg: dict[str, Any], summary: dict[str, Any], results_dir: Path, out: Path
) -> list[Figure]:
    """One figure per setting: L(T) of every family and the optimum; ratio; schedules at T_max."""
    pyplot = plt()
    figs = []
    for ph, d in summary["phases"].items():
        if not d["families"] or not d["optimal"]["Ts"]:
            continue
        fig, (a0, a1, a2) = pyplot.subplots(1, 3, figsize=(18, 5.2))
        o = d["optimal"]
        of = o.get("fit", {}).get("top")
        a0.loglog(
            o["Ts"],
            o["loss"],
            "k-",
            lw=2.5,
            zorder=10,
            label=f"optimal: r = {fmt_fit(of)}" if of else "optimal",
        )
        order = sorted(d["families"], key=lambda f: d["families"][f]["loss"][-1])
        cm = pyplot.cm.tab20
        for i, fam in enumerate(order):
            e = d["families"][fam]
            kw = {"ms": 3, "lw": 1, "color": cm(i % 20)}
            a0.loglog(
                e["Ts"], e["loss"], "o-", label=f"{fam}: r = {fmt_fit(e['fit']['top'])}", **kw
            )
            if "ratio" in e:
                a1.semilogx(e["Ts"], e["ratio"], "o-", label=f"{fam}: {e['ratio'][-1]:.3f}", **kw)
        a0.set(
            xlabel="T",
            ylabel="final excess loss L(T)",
            title="tuned families vs optimum (r: fit over the top horizons)",
        )
        a0.legend(fontsize=6.5)
        a1.axhline(1, color="k", lw=2)
        a1.set(
            xlabel="T",
            ylabel="L_family(T) / L*(T)",
            title="ratio to the optimum (value at the largest T)",
        )
        a1.legend(fontsize=6.5)
        T = max(o["Ts"])
        opt = find_chain(results_dir, "optimal", cfg["main_chains"][ph])
        m = float(d["setting"]["batch"])
        t = np.arange(T)
        for i, fam in enumerate(order):
            e = d["families"][fam]
            if e["Ts"][-1] != T:
                continue
            etas = np.asarray(as_array(FAMILIES[fam].make(T, m, **e["params"][-1]), T))
            a2.plot((t + 0.5) / T, etas, lw=1, color=cm(i % 20), label=fam)
        ylo = None
        if T in opt:
            a2.plot((t + 0.5) / T, opt[T].etas, "k-", lw=2.5, label="optimal", zorder=10)
            ylo = 0.2 * float(np.min(opt[T].etas[opt[T].etas > 0]))
        a2.set(
            xlabel="t / T",
            ylabel="η(t)",
            title=f"tuned schedules at T = {T}",
            yscale="log",
            ylim=(ylo, None),
        )
        a2.legend(fontsize=6.5, ncol=2)
        figs.append(
            finish(
                fig,
                out,
                f"baselines_{ph}.png",
                f"{ph.capitalize()} phase ({d['label']}): final loss against T "
                f"for the optimum and every tuned family with fitted exponents; "
                f"ratio to the optimum against T; the tuned schedules at "
                f"T = {T}.",
                f"{ph.capitalize()} phase baselines: {d['label']}",
            )
        )
    return figs


main = experiment_main(
    "baselines",
    __doc__,
    "Run this experiment alone (and the optimal-schedule main chains it compares to).",
)

if __name__ == "__main__":
    main()
