"""Optimal schedules over horizons spanning > 2 decades, in one easy and one hard setting.

Settings (reference settings of docs/theory.md §6; N effectively infinite via the binned tail):

- easy: a = 2.5, b = 1.2, σ = 0.3, m = 4, N = 10^6 modes.
- hard: a = 1.5, b = 2.5, σ = 0.5, m = 4, N = 10^8 modes (the target tail Σ_{k>N} k^-a ~ N^-0.5
  must stay far below the loss, hence the larger N).

Horizons T = 100·2^k up to 51 200, each solved by :func:`rfmodel.control.optimize_schedules`
(warm start from the previous T, every horizon saved as it finishes). Controls: easy — one per
step up to T = 1600, then K = 512 piecewise-constant; hard — K = min(512, T/4) (per-step hard
optima alternate large and small steps, see below). Extra chains: the same horizons with K
halved (the fitted numbers must not depend on K), and per-step hard optima at small T.

Measured at each T (from the controls at their segment centres t/T):
- ξ: η*(t = 0.2T) ~ T^(−ξ) (the amplitude of c T^(−ξ)(1 − t/T)^δ at a fixed point of the shape;
  the peak max_t η* is reported too: its position t_peak/T drifts to 0, which biases it).
- δ: slope of log η* against log(1 − t/T) over t/T ∈ [0.3, 0.9], at each T.
- loss exponent: L*(T) ~ T^(−r), fitted over the top horizons and over sliding windows.
- hard: plateau = median η* over t/T ∈ [0.1, 0.5]; annealing length A(T) = T − t_½ where t_½ is
  the first time η* falls below half the plateau (linear interpolation between segment
  centres); A ~ T^α with α measured (an open question).

Usage: ``python -m rfmodel.experiments.optimal_schedules [--quick] [--results DIR] [--out DIR]``
(or ``python experiments/optimal_schedules.py`` in the source checkout).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..runner import Task
from ..scaling import local_exponents, power_law_fit, sliding_fits
from ._cli import experiment_main
from ._common import (
    REFERENCE_SETTINGS,
    chain_seconds,
    chain_task,
    find_chain,
    interp_crossing,
    make_problem,
    result_centers,
    run_chain,
    segment_centers,
    setting_label,
    sliding_text,
)
from ._format import (
    Figure,
    finish,
    fit_line,
    fit_range,
    fmt_fit,
    md_table,
    plt,
    sliding_fit_text,
    sliding_series,
    style,
    viridis,
    within,
)

__all__ = [
    "SETTINGS",
    "config",
    "tasks",
    "summarize",
    "plot",
    "table_rows",
    "run_chain",
    "schedule_stats",
    "main",
]

GROUP = "optimal"
SETTINGS = REFERENCE_SETTINGS
QUICK_RESOLUTION = {"n_exact": 100, "bins_per_decade": 30}


def config(quick: bool) -> dict[str, Any]:
    """Settings, horizons, control rules and analysis windows (full or quick)."""
    if quick:
        settings = {
            "easy": {**SETTINGS["easy"], **QUICK_RESOLUTION, "n_modes": 10**5},
            "hard": {**SETTINGS["hard"], **QUICK_RESOLUTION, "n_modes": 10**6},
        }
        Ts = [100, 200, 400, 800]
        kcheck_Ts, perstep_Ts = [400, 800], [100, 200]
        rules = {
            "easy": {"per_step_max": 400, "K": 128, "steps_per_control": 1},
            "hard": {"per_step_max": 0, "K": 64, "steps_per_control": 4},
        }
        perstep_maxiter = 400
    else:
        settings = SETTINGS
        Ts = [100 * 2**k for k in range(10)]
        kcheck_Ts, perstep_Ts = [1600 * 2**k for k in range(6)], [100, 200, 400, 800]
        rules = {
            "easy": {"per_step_max": 1600, "K": 512, "steps_per_control": 1},
            "hard": {"per_step_max": 0, "K": 512, "steps_per_control": 4},
        }
        perstep_maxiter = 5000

    def chain(role: str, ph: str, Ts: list[int], rule: dict | None, **extra) -> dict[str, Any]:
        name, setting = f"{ph}_{role}", settings[ph]
        return {"name": name, "role": role, "phase": ph, "setting": setting, "Ts": Ts} | {
            "rule": rule,
            **extra,
        }

    chains = []
    for ph in ("easy", "hard"):
        r = rules[ph]
        chains.append(chain("main", ph, Ts, r))
        # K halved at every horizon of the check (per-step horizons become K = T/2).
        k, steps = max(1, r["K"] // 2), 2 * r["steps_per_control"]
        half = {"per_step_max": 0, "K": k, "steps_per_control": steps}
        chains.append(chain("kcheck", ph, kcheck_Ts, half))
    chains.append(chain("perstep", "hard", perstep_Ts, None, maxiter=perstep_maxiter))
    return {
        "chains": chains,
        "top": 3,
        "eta_frac": 0.2,
        "delta_window": [0.3, 0.9],
        "plateau_window": [0.1, 0.5],
        "quick": quick,
    }


def tasks(cfg: dict[str, Any], results_dir: Path) -> list[Task]:
    """One task per chain (each chain is sequential: warm starts over T)."""
    # Evaluations per horizon, measured on the full run (warm starts): easy ≈ 25, hard ≈ 95;
    # per-step chains are short (T <= 800).
    evals = {"easy": 25.0, "hard": 95.0}
    return [
        chain_task(
            "optimal_schedules",
            results_dir,
            GROUP,
            c,
            200.0 if c["role"] == "perstep" else evals[c["phase"]],
        )
        for c in cfg["chains"]
    ]


# ----------------------------------------------------------------------------- analysis
def schedule_stats(res, cfg: dict[str, Any]) -> dict[str, Any]:
    """Numbers read off one optimal schedule (controls at their segment centres).

    Returns a dict with T, K, loss, eta_frac (η* at t = eta_frac·T), peak, peak_frac,
    warmup_ratio (η*(0)/peak), delta (a :class:`PowerLawFit` dict of η* against 1 − t/T over
    ``delta_window``), plateau (median η* over ``plateau_window``), t_half_frac and anneal
    (A = T − t_½ in steps; NaN when η* never falls below half the plateau).
    """
    T = int(res.config["T"])
    u = np.asarray(res.controls, dtype=np.float64)
    K = u.size
    x = result_centers(res)
    lo, hi = cfg["delta_window"]
    sel = (x >= lo) & (x <= hi) & (u > 0)
    delta = None
    if np.unique(x[sel]).size >= 3:
        delta = power_law_fit(1 - x[sel], u[sel]).as_dict()
    plo, phi = cfg["plateau_window"]
    plateau = (
        float(np.median(u[(x >= plo) & (x <= phi)]))
        if np.any((x >= plo) & (x <= phi))
        else math.nan
    )
    t_half = interp_crossing(x, u, 0.5 * plateau, plo)
    return {
        "T": T,
        "K": K,
        "loss": float(res.loss),
        "eta_frac": float(np.interp(cfg["eta_frac"], x, u)),
        "peak": float(u.max()),
        "peak_frac": float(x[np.argmax(u)]),
        "warmup_ratio": float(u[0] / u.max()),
        "delta": delta,
        "plateau": plateau,
        "t_half_frac": t_half,
        "anneal": float(T * (1 - t_half)) if math.isfinite(t_half) else math.nan,
        "iterations": int(res.iterations),
        "converged": bool(res.converged),
        "projected_gradient": float(res.projected_gradient),
    }


def _fits(Ts: np.ndarray, y: np.ndarray, top: int, negate: bool) -> dict[str, Any]:
    """Top-range fit, all-range fit, sliding 3-point fits and consecutive local slopes."""
    ok = np.isfinite(y) & (y > 0)
    Ts, y = Ts[ok], y[ok]
    if Ts.size < 2:
        return {}

    def f(fit):
        return (fit.negated() if negate else fit).as_dict()

    out = {
        "all": f(power_law_fit(Ts, y)),
        "top": f(power_law_fit(Ts[-top:], y[-top:])) if Ts.size >= 2 else None,
    }
    if Ts.size >= 3:
        out["sliding"] = [f(s) for s in sliding_fits(Ts, y, window=3)]
    xc, sl = local_exponents(Ts, y, window=2)
    out["local_T"], out["local"] = xc.tolist(), (-sl if negate else sl).tolist()
    return out


def _chain_summary(results: dict, cfg: dict[str, Any], problem) -> dict[str, Any]:
    Ts = sorted(results)
    stats = [schedule_stats(results[T], cfg) for T in Ts]
    T_arr = np.array(Ts, dtype=np.float64)
    col = {
        k: np.array([s[k] for s in stats], dtype=np.float64)
        for k in ("loss", "eta_frac", "peak", "plateau", "anneal")
    }
    top = cfg["top"]
    out: dict[str, Any] = {
        "Ts": Ts,
        "stats": stats,
        "seconds": chain_seconds(results),
        "eta_critical": problem.eta_critical(),
        "eta_mode_bound": problem.eta_mode_bound(),
    }
    if len(Ts) >= 2:
        out["loss_fit"] = _fits(T_arr, col["loss"], top, negate=True)
        out["xi_fit"] = _fits(T_arr, col["eta_frac"], top, negate=True)
        out["xi_peak_fit"] = _fits(T_arr, col["peak"], top, negate=True)
        out["anneal_fit"] = _fits(T_arr, col["anneal"], top, negate=False)
    return out


def summarize(cfg: dict[str, Any], results_dir: Path) -> dict[str, Any]:
    """Per chain: per-T statistics and fits; K sensitivity; per-step vs piecewise (hard)."""
    chains: dict[str, Any] = {}
    seconds = 0.0
    for c in cfg["chains"]:
        res = find_chain(results_dir, GROUP, c)
        p = make_problem(c["setting"])
        chains[c["name"]] = {
            "role": c["role"],
            "phase": c["phase"],
            "setting": c["setting"],
            "rule": c["rule"],
            "theory": vars(p.theory()),
            "label": setting_label(c["setting"], p),
            **_chain_summary(res, cfg, p),
        }
        seconds += chains[c["name"]]["seconds"]
    summary = {"chains": chains, "compute_seconds": seconds, "config": cfg}
    summary["kcheck"] = _kcheck(chains, cfg)
    summary["perstep"] = _perstep(chains, results_dir, cfg)
    summary["readme"] = _readme_text(summary)
    return summary


def _kcheck(chains: dict[str, Any], cfg: dict[str, Any]) -> dict[str, Any]:
    """Fits of the main chain and of the K-halved chain over the same horizons."""
    out = {}
    for ph in ("easy", "hard"):
        main, chk = chains.get(f"{ph}_main"), chains.get(f"{ph}_kcheck")
        if not main or not chk or not chk["Ts"]:
            continue
        common = sorted(set(main["Ts"]) & set(chk["Ts"]))
        if len(common) < 2:
            continue

        def pick(ch, key, common=common):
            by_T = {s["T"]: s for s in ch["stats"]}
            return np.array([by_T[T][key] for T in common], dtype=np.float64)

        T_arr = np.array(common, dtype=np.float64)
        row: dict[str, Any] = {"Ts": common}
        for name, key in (("loss", "loss"), ("xi", "eta_frac")):
            a = power_law_fit(T_arr, pick(main, key)).negated().exponent
            b = power_law_fit(T_arr, pick(chk, key)).negated().exponent
            row[name] = {"main": a, "half_K": b, "diff": b - a}
        if ph == "hard":
            a_m, a_c = pick(main, "anneal"), pick(chk, "anneal")
            if np.all(np.isfinite(a_m)) and np.all(np.isfinite(a_c)):
                a = power_law_fit(T_arr, a_m).exponent
                b = power_law_fit(T_arr, a_c).exponent
                row["anneal"] = {"main": a, "half_K": b, "diff": b - a}
        else:
            dm = [s["delta"]["exponent"] for s in main["stats"] if s["T"] == common[-1]][0]
            dc = [s["delta"]["exponent"] for s in chk["stats"] if s["T"] == common[-1]][0]
            row["delta_at_Tmax"] = {"main": dm, "half_K": dc, "diff": dc - dm}
        row["loss_ratio_max"] = float(np.max(np.abs(pick(chk, "loss") / pick(main, "loss") - 1)))
        row["K_main"] = [s["K"] for s in main["stats"] if s["T"] in common]
        row["K_half"] = [s["K"] for s in chk["stats"] if s["T"] in common]
        out[ph] = row
    return out


def _perstep(chains: dict[str, Any], results_dir: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """Hard phase: per-step (no smoothing) optima against the K-piecewise main chain."""
    ps, main = chains.get("hard_perstep"), chains.get("hard_main")
    if not ps or not main:
        return {}
    by_T = {s["T"]: s for s in main["stats"]}
    rows = []
    for s in ps["stats"]:
        m = by_T.get(s["T"])
        if m is None:
            continue
        rows.append(
            {
                "T": s["T"],
                "loss_perstep": s["loss"],
                "loss_piecewise": m["loss"],
                "K_piecewise": m["K"],
                "ratio": s["loss"] / m["loss"],
                "iterations": s["iterations"],
                "converged": s["converged"],
            }
        )
    # Alternation: mean |η_{t+1} − η_t| / mean η over the plateau of the largest per-step T.
    c = next(ch for ch in cfg["chains"] if ch["name"] == "hard_perstep")
    res = find_chain(results_dir, GROUP, c)
    alt = None
    if res:
        T = max(res)
        e = res[T].etas
        x = (np.arange(T) + 0.5) / T
        sel = (x > 0.1) & (x < 0.6)
        alt = float(np.mean(np.abs(np.diff(e[sel]))) / np.mean(e[sel]))
    return {"rows": rows, "alternation": alt}


# ----------------------------------------------------------------------------- text
def _within_fit(predicted: float, tol: float, note: str = ""):
    """Verdict for a fit: its exponent against ``predicted`` within ``tol`` (+ a note)."""
    return lambda fit: within(fit["exponent"], predicted, tol) + note


def _fit_row(chain, key, quantity, setting, predicted, verdict) -> dict[str, Any]:
    """A table row for the top-range exponent fit ``chain[key]``; ``verdict(fit) -> str``."""
    fit = chain[key]["top"]
    return {
        "quantity": quantity,
        "setting": setting,
        "measured": fmt_fit(fit),
        "T_range": fit_range(fit),
        "drift": sliding_fit_text(chain.get(key)),
        "predicted": predicted,
        "verdict": verdict(fit),
    }


def table_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the measured-vs-predicted table for the optimal schedules."""
    rows = []
    easy, hard = summary["chains"].get("easy_main"), summary["chains"].get("hard_main")
    if easy and easy.get("loss_fit"):
        th = easy["theory"]
        lab = f"easy a={easy['setting']['a']:g}, b={easy['setting']['b']:g}"
        rows.append(
            _fit_row(
                easy,
                "xi_fit",
                "ξ: η*(t = 0.2T) ~ T^−ξ",
                lab,
                f"{th['xi']:.3f} (1 − b/a)",
                _within_fit(th["xi"], 0.05),
            )
        )
        rows.append(
            _fit_row(
                easy,
                "xi_peak_fit",
                "ξ from the peak max_t η*(t)",
                lab,
                f"{th['xi']:.3f}",
                _within_fit(th["xi"], 0.05, "; biased low: the peak moves to t/T → 0"),
            )
        )
        st = easy["stats"]
        d_last = st[-1]["delta"]
        inc = (
            (st[-1]["delta"]["exponent"] - st[-2]["delta"]["exponent"]) if len(st) > 1 else math.nan
        )
        rows.append(
            {
                "quantity": "δ: η* ∝ (1 − t/T)^δ, t/T ∈ [0.3, 0.9]",
                "setting": lab,
                "measured": fmt_fit(d_last),
                "T_range": f"T = {st[-1]['T']}",
                "drift": sliding_text(
                    [s["T"] for s in st], [s["delta"]["exponent"] for s in st], 3
                ),
                "predicted": f"{th['delta']:.2f} (2b − 1)",
                "verdict": f"rising {inc:+.3f} per doubling of T at the top; "
                f"{th['delta'] - d_last['exponent']:.2f} below theory",
            }
        )
        rows.append(
            _fit_row(
                easy,
                "loss_fit",
                "optimal loss L*(T) ~ T^−r",
                lab,
                f"{th['optimal_loss']:.3f} ((a−1)/a)",
                _within_fit(th["optimal_loss"], 0.02),
            )
        )
    if hard and hard.get("loss_fit"):
        th = hard["theory"]
        lab = f"hard a={hard['setting']['a']:g}, b={hard['setting']['b']:g}"
        rows.append(
            _fit_row(
                hard,
                "loss_fit",
                "optimal loss L*(T) ~ T^−r",
                lab,
                f"{th['optimal_loss']:.3f} ((a−1)/b)",
                _within_fit(th["optimal_loss"], 0.02),
            )
        )
        rows.append(
            _fit_row(hard, "xi_fit", "ξ: η*(t = 0.2T) ~ T^−ξ", lab, "0", _within_fit(0.0, 0.05))
        )
        st = hard["stats"]
        ec = hard["eta_critical"]
        ratios = [s["plateau"] / ec for s in st]
        rows.append(
            {
                "quantity": "plateau η* (median over t/T ∈ [0.1, 0.5]) / η_c",
                "setting": lab,
                "measured": f"{ratios[-1]:.3f} (η = {st[-1]['plateau']:.3f}, η_c = {ec:.4f})",
                "T_range": f"T = {st[-1]['T']}",
                "drift": sliding_text([s["T"] for s in st], ratios, 3),
                "predicted": "O(1) in T, below the stability edge η_c",
                "verdict": f"O(1): {min(ratios):.3f}–{max(ratios):.3f} of η_c over all T, "
                f"approaching η_c from below"
                if max(ratios) <= 1
                else f"exceeds η_c (max {max(ratios):.3f})",
            }
        )
        if hard.get("anneal_fit", {}).get("top"):
            fr = [s["anneal"] / s["T"] for s in st]
            rows.append(
                _fit_row(
                    hard,
                    "anneal_fit",
                    "annealing length A(T) ~ T^α (steps after η* < plateau/2)",
                    lab,
                    "open question (fraction → 0 needs α < 1)",
                    lambda _: (
                        f"fraction A/T: {fr[0]:.3f} (T={st[0]['T']}) → "
                        f"{fr[-1]:.3f} (T={st[-1]['T']})"
                    ),
                )
            )
    return rows


def _readme_text(summary: dict[str, Any]) -> str:
    ch = summary["chains"]
    lines = ["## Optimal schedules: settings, K sensitivity, per-step pattern", ""]
    for name in ("easy_main", "hard_main"):
        c = ch.get(name)
        if c and c["Ts"]:
            Ks = sorted({s["K"] for s in c["stats"]})
            conv = sum(s["converged"] for s in c["stats"])
            pg = max(s["projected_gradient"] for s in c["stats"])
            lines.append(
                f"- **{c['phase']}**: {c['label']}; T = {c['Ts'][0]}…{c['Ts'][-1]} "
                f"({len(c['Ts'])} horizons, ×2 apart), controls per horizon K ∈ "
                f"{{{', '.join(map(str, Ks))}}} (K = T means one per step); "
                f"{conv}/{len(c['Ts'])} solves report convergence, largest projected "
                f"gradient of log L {pg:.1e}; solver time {c['seconds']:.0f} s."
            )
    kc = summary.get("kcheck", {})
    if kc:
        lines += [
            "",
            "K sensitivity (main chain vs K halved at every horizon, fits over the same horizons):",
            "",
        ]
        head = ("setting", "horizons", "K main → K halved", "loss exponent", "ξ", "other")
        lines += md_table(
            (*head, "max relative ΔL"), (_kcheck_cells(ph, r) for ph, r in kc.items())
        )
    ps = summary.get("perstep", {})
    if ps and ps.get("rows"):
        lines += [
            "",
            "Hard phase, one control per step without smoothing vs K piecewise-constant "
            "controls (the per-step optimum alternates large and small steps, a long-step "
            "pattern of the discrete recursion; the piecewise optimum is the smooth "
            "warmup-stable-decay shape):",
            "",
        ]
        head = ("T", "L per step", "L piecewise (K)", "ratio", "per-step iterations")
        lines += md_table(
            head,
            (
                (
                    r["T"],
                    f"{r['loss_perstep']:.6f}",
                    f"{r['loss_piecewise']:.6f} ({r['K_piecewise']})",
                    f"{r['ratio']:.5f}",
                    f"{r['iterations']}{'' if r['converged'] else ' (cap)'}",
                )
                for r in ps["rows"]
            ),
        )
        if ps.get("alternation") is not None:
            lines.append(
                f"\nMean |η_(t+1) − η_t| / mean η on the plateau of the largest per-step "
                f"optimum: {ps['alternation']:.3f} (0 for a smooth schedule)."
            )
    return "\n".join(lines) + "\n"


def _kcheck_cells(ph: str, r: dict[str, Any]) -> tuple[str, ...]:
    """One row of the K-sensitivity table: main chain → K halved."""
    other = r.get("delta_at_Tmax") or r.get("anneal")
    oname = "δ at T_max" if "delta_at_Tmax" in r else "annealing α"
    return (
        ph,
        f"{r['Ts'][0]}–{r['Ts'][-1]}",
        f"{r['K_main'][0]}…{r['K_main'][-1]} → {r['K_half'][0]}…{r['K_half'][-1]}",
        f"{r['loss']['main']:.4f} → {r['loss']['half_K']:.4f}",
        f"{r['xi']['main']:.4f} → {r['xi']['half_K']:.4f}",
        f"{oname}: {other['main']:.3f} → {other['half_K']:.3f}" if other else "—",
        f"{r['loss_ratio_max']:.1e}",
    )


# ----------------------------------------------------------------------------- figures


def _load_main(cfg, results_dir, phase):
    c = next(ch for ch in cfg["chains"] if ch["name"] == f"{phase}_main")
    return find_chain(results_dir, GROUP, c)


def _plot_easy(cfg, summary, results_dir, out) -> Figure | None:
    ch = summary["chains"]["easy_main"]
    res = _load_main(cfg, results_dir, "easy")
    if len(res) < 2:
        return None
    Ts = sorted(res)
    xi, th = ch["xi_fit"]["top"]["exponent"], ch["theory"]
    fig, axs = plt().subplots(2, 2, figsize=(13, 9.5))
    a0, a1, a2, a3 = axs.ravel()
    lo, hi = cfg["delta_window"]
    for T, c in zip(Ts, viridis(len(Ts)), strict=True):
        r = res[T]
        x = segment_centers(T, r.controls.size)
        a0.plot(np.arange(1, T + 1), r.etas, color=c, lw=1, label=f"T={T}")
        a1.plot(x, T**xi * r.controls, color=c, lw=1)
        a2.plot(1 - x, T**xi * r.controls, color=c, lw=1)
    d_fit = ch["stats"][-1]["delta"]
    r = res[Ts[-1]]
    x = segment_centers(Ts[-1], r.controls.size)
    amp = float(np.interp(cfg["eta_frac"], x, Ts[-1] ** xi * r.controls))
    xs = np.linspace(0, 1, 400)
    f02 = 1 - cfg["eta_frac"]
    for ax in (a1, a2):
        ax_x = xs if ax is a1 else 1 - xs
        d, lab = d_fit["exponent"], f"fitted (1−t/T)^{d_fit['exponent']:.2f} (T={Ts[-1]})"
        ax.plot(ax_x, amp * ((1 - xs) / f02) ** d, "k--", lw=1.5, label=lab)
        d, lab = th["delta"], f"predicted (1−t/T)^{th['delta']:.1f} (δ = 2b−1)"
        ax.plot(ax_x, amp * ((1 - xs) / f02) ** d, "r:", lw=2, label=lab)
    title = "optimal schedules η*(t), all horizons"
    style(a0, 7, 2, xscale="log", yscale="log", xlabel="step t", ylabel="η*(t)", title=title)
    ylabel = f"T^ξ η*(t)   (ξ = {xi:.3f} fitted)"
    style(a1, 8, xlabel="t / T", ylabel=ylabel, title="collapse: T^ξ η* against t/T")
    a2.axvspan(1 - hi, 1 - lo, color="0.9", label=f"δ fit window t/T ∈ [{lo}, {hi}]")
    title = "the same, log-log in 1 − t/T (slope = δ)"
    settings = {"xlabel": "1 − t/T", "ylabel": "T^ξ η*(t)", "title": title}
    style(a2, 8, xscale="log", yscale="log", ylim=(amp * 1e-3, None), **settings)
    st = ch["stats"]
    sT = [s["T"] for s in st]
    a3.plot(
        sT, [s["delta"]["exponent"] for s in st], "o-", color="C0", label="δ(T) fitted at each T"
    )
    a3.axhline(th["delta"], color="C0", ls=":", label=f"δ predicted {th['delta']:.2f}")
    x, y, _ = sliding_series(ch, "xi_fit")
    a3.plot(x, y, "s-", color="C1", label="ξ, sliding 3-horizon fits of η*(0.2T)")
    x, y, _ = sliding_series(ch, "xi_peak_fit")
    a3.plot(x, y, "^--", color="C1", alpha=0.6, label="ξ from the peak η* (biased)")
    a3.axhline(th["xi"], color="C1", ls=":", label=f"ξ predicted {th['xi']:.3f}")
    a3.plot(sT, [s["warmup_ratio"] for s in st], "d-", color="C2", label="warmup η*(0)/peak")
    style(a3, 7, xscale="log", xlabel="T", ylabel="exponent", title="drift with T")
    return finish(
        fig,
        out,
        "optimal_schedules_easy.png",
        f"Easy phase ({ch['label']}): η*(t) for T = {Ts[0]}…{Ts[-1]}; the collapse "
        f"T^ξ η* against t/T with the fitted and predicted (1−t/T)^δ (linear and "
        f"log-log); δ(T), local ξ and the warmup ratio against T.",
        f"Easy phase optimal schedules: {ch['label']}",
    )


def _plot_hard(cfg, summary, results_dir, out) -> Figure | None:
    ch = summary["chains"]["hard_main"]
    res = _load_main(cfg, results_dir, "hard")
    if len(res) < 2:
        return None
    Ts = sorted(res)
    fig, axs = plt().subplots(2, 2, figsize=(13, 9.5))
    a0, a1, a2, a3 = axs.ravel()
    for T, c in zip(Ts, viridis(len(Ts)), strict=True):
        r = res[T]
        a0.plot(np.arange(1, T + 1), r.etas, color=c, lw=1, label=f"T={T}")
        a1.plot(T - np.arange(T), r.etas, color=c, lw=1)
    ec, eb = ch["eta_critical"], ch["eta_mode_bound"]
    for ax in (a0, a1):
        ax.axhline(ec, color="k", ls=":", lw=1, label=f"η_c = {ec:.3f} (largest stable constant)")
        ax.axhline(eb, color="r", ls=":", lw=1, label=f"per-step bound {eb:.2f}")
    title = "optimal schedules: warmup-stable-decay"
    style(a0, 7, 2, xscale="log", xlabel="step t", ylabel="η*(t)", title=title)
    settings = {"xlabel": "steps before the end, T − t", "ylabel": "η*(t)"}
    style(a1, 7, xscale="log", title="the decay, against steps to go", **settings)
    st = ch["stats"]
    T_arr = np.array([s["T"] for s in st], dtype=float)
    A = np.array([s["anneal"] for s in st])
    a2.loglog(T_arr, A, "o", color="C0", label="annealing length A(T) (steps)")
    a2.loglog(T_arr, A / T_arr, "s", color="C1", label="annealing fraction A/T")
    af = ch["anneal_fit"]
    if af.get("top"):
        for key, ls in (("all", "-"), ("top", "--")):
            f = af[key]
            label = f"fit T ∈ [{f['x_min']:.0f}, {f['x_max']:.0f}]: α = {fmt_fit(f)}"
            fit_line(a2, f, ls, color="C0", label=label)
            fit_line(a2, f, ls, shift=-1, color="C1")
    title = "annealing: steps after η* first drops below half its plateau"
    style(a2, 7, xlabel="T", title=title)
    ratios = [s["plateau"] / ec for s in st]
    a3.semilogx(T_arr, ratios, "o-", label="plateau η* / η_c")
    label = "max_t η* / η_c (early transient)"
    a3.semilogx(T_arr, [s["peak"] / ec for s in st], "^-", alpha=0.6, label=label)
    a3.axhline(1.0, color="k", ls=":", lw=1)
    ax3b = a3.twinx()
    x, y, _ = sliding_series(af)
    ax3b.semilogx(x, y, "s--", color="C3", label="α, sliding 3-horizon fits")
    ax3b.set_ylabel("local α", color="C3")
    a3.set(xlabel="T", ylabel="ratio to η_c", title="plateau vs stability edge; local α")
    h1, l1 = a3.get_legend_handles_labels()
    h2, l2 = ax3b.get_legend_handles_labels()
    a3.legend(h1 + h2, l1 + l2, fontsize=7, loc="lower left")
    return finish(
        fig,
        out,
        "optimal_schedules_hard.png",
        f"Hard phase ({ch['label']}): η*(t) for T = {Ts[0]}…{Ts[-1]} against t and "
        f"against steps to go T − t, with η_c; the annealing length A(T) and fraction "
        f"A/T with power-law fits; plateau/η_c and the local annealing exponent.",
        f"Hard phase optimal schedules: {ch['label']}",
    )


def _plot_perstep(cfg, summary, results_dir, out) -> Figure | None:
    ps = summary.get("perstep") or {}
    if not ps.get("rows"):
        return None
    c = next(ch for ch in cfg["chains"] if ch["name"] == "hard_perstep")
    per = find_chain(results_dir, GROUP, c)
    main = _load_main(cfg, results_dir, "hard")
    T = max(per)
    if T not in main:
        return None
    fig, (a0, a1, a2) = plt().subplots(1, 3, figsize=(16, 4.5))
    for ax, sl in ((a0, slice(None)), (a1, slice(int(0.75 * T), None))):
        t = np.arange(T)[sl]
        marker, label = "." if ax is a1 else None, f"per step: L = {per[T].loss:.6f}"
        ax.plot(t, per[T].etas[sl], color="C0", lw=0.7, marker=marker, ms=3, label=label)
        label = f"K = {main[T].controls.size} piecewise: L = {main[T].loss:.6f}"
        ax.plot(t, main[T].etas[sl], color="C1", lw=2, label=label)
        ec = summary["chains"]["hard_main"]["eta_critical"]
        ax.axhline(ec, color="k", ls=":", lw=1, label="η_c")
        style(ax, 7, xlabel="step t", ylabel="η*(t)")
    a0.set_title(f"hard phase, T = {T}")
    a1.set_title("last quarter of the steps")
    rows = ps["rows"]
    a2.semilogx([r["T"] for r in rows], [r["ratio"] for r in rows], "o-")
    a2.axhline(1.0, color="k", ls=":", lw=1)
    title = "per-step gain over the smooth piecewise optimum"
    a2.set(xlabel="T", ylabel="L(per step) / L(piecewise)", title=title)
    return finish(
        fig,
        out,
        "hard_perstep_vs_piecewise.png",
        "Hard phase: the per-step optimum without smoothing (alternating large and "
        "small steps) against the K-piecewise warmup-stable-decay optimum at the same T,"
        " and the ratio of their final losses against T.",
        f"Hard phase, per-step controls without smoothing vs K piecewise-constant: "
        f"{summary['chains']['hard_main']['label']}",
    )


def _plot_drift(cfg, summary, out) -> Figure | None:
    ch = summary["chains"]
    easy, hard = ch.get("easy_main"), ch.get("hard_main")
    if not easy or not hard or not easy.get("loss_fit") or not hard.get("loss_fit"):
        return None
    fig, (a0, a1) = plt().subplots(1, 2, figsize=(13, 4.8))
    for c, col, nm in ((easy, "C0", "easy"), (hard, "C3", "hard")):
        x, y, e = sliding_series(c, "loss_fit")
        label = f"{nm}: optimal loss, sliding 3-horizon fits"
        a0.errorbar(x, y, yerr=e, fmt="o-", color=col, capsize=2, label=label)
        lf, label = c["loss_fit"], f"{nm}: consecutive-T slopes"
        a0.plot(lf["local_T"], lf["local"], ".", color=col, alpha=0.5, label=label)
        r, label = c["theory"]["optimal_loss"], f"{nm}: predicted {c['theory']['optimal_loss']:.3f}"
        a0.axhline(r, color=col, ls=":", label=label)
        k = ch.get(f"{nm}_kcheck")
        if k and k.get("loss_fit", {}).get("sliding"):
            x, y, _ = sliding_series(k, "loss_fit")
            a0.plot(x, y, "x--", color=col, alpha=0.7, label=f"{nm}: K halved")
    settings = {"xlabel": "T (window centre)", "ylabel": "r in L* ~ T^−r"}
    style(a0, 7, xscale="log", title="optimal-loss exponent as the T range grows", **settings)
    x, y, e = sliding_series(easy, "xi_fit")
    a1.errorbar(x, y, yerr=e, fmt="o-", color="C0", capsize=2, label="easy ξ (η* at 0.2T)")
    a1.axhline(easy["theory"]["xi"], color="C0", ls=":", label="easy ξ predicted")
    d_th = easy["theory"]["delta"]
    a1.plot(
        [s["T"] for s in easy["stats"]],
        [s["delta"]["exponent"] / d_th for s in easy["stats"]],
        "d-",
        color="C2",
        label=f"easy δ(T) / δ_theory ({d_th:.2f})",
    )
    x, y, e = sliding_series(hard, "xi_fit")
    a1.errorbar(x, y, yerr=e, fmt="o-", color="C3", capsize=2, label="hard ξ (η* at 0.2T)")
    x, y, e = sliding_series(hard, "anneal_fit")
    label = "hard annealing length exponent α"
    a1.errorbar(x, y, yerr=e, fmt="s-", color="C4", capsize=2, label=label)
    a1.axhline(0, color="k", lw=0.5)
    a1.axhline(1, color="k", lw=0.5, ls=":")
    settings = {"xlabel": "T (window centre)", "ylabel": "exponent"}
    style(a1, 7, xscale="log", title="schedule exponents as the T range grows", **settings)
    return finish(
        fig,
        out,
        "exponent_drift.png",
        "Local exponents over sliding windows of 3 horizons against T: optimal-loss "
        "exponents (easy, hard, and with K halved), easy ξ and δ(T)/δ_theory, hard ξ "
        "and the annealing-length exponent α, with the predictions.",
        "Finite-T drift of the measured exponents (N effectively infinite, binned "
        "tail); error bars: standard errors of the 3-point fits",
    )


def plot(
    cfg: dict[str, Any], summary: dict[str, Any], results_dir: Path, out: Path
) -> list[Figure]:
    """Write this experiment's figures into ``out``; return what was written."""
    figs = [
        _plot_easy(cfg, summary, results_dir, out),
        _plot_hard(cfg, summary, results_dir, out),
        _plot_perstep(cfg, summary, results_dir, out),
        _plot_drift(cfg, summary, out),
    ]
    return [f for f in figs if f is not None]


main = experiment_main("optimal_schedules", __doc__)

if __name__ == "__main__":
    main()
