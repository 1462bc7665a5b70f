"""Phase diagram: measured peak-rate and optimal-loss exponents over a grid of (a, b).

At every grid point the optimal schedule is solved at every horizon (warm starts, K = 100
piecewise-constant controls, N = 10^12 modes via the binned tail: effectively infinite even for
a near 1, where the untouched tail Σ_{k>N} k^-a ~ N^(1−a)/(a−1) decays slowly). Each point is
one task (points run in parallel worker processes; every horizon is saved as it finishes, so a
rerun resumes). Measured at each point, over the top horizons:

- ξ from η*(t = 0.2T) ~ T^(−ξ) (theory: 1 − b/a for a > b, 0 for a < b);
- the optimal-loss exponent r in L*(T) ~ T^(−r) (max rule: (a−1)/max(a, b));
- the phase, read off the measured behaviour (:func:`rfmodel.scaling.classify_phase`): hard when
  the rate does not fall with T and sits at the stability edge η_c, easy when it falls below it.

Usage: ``python -m rfmodel.experiments.phase_diagram [--quick] [--results DIR] [--out DIR]``
(or ``python experiments/phase_diagram.py`` in the source checkout).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..control import optimize_schedules
from ..plotting import save_figure
from ..results import config_key, load_valid, save_result
from ..runner import Task
from ..scaling import (
    classify_phase,
    local_exponents,
    max_rule_loss_exponent,
    power_law_fit,
    theory_xi,
)
from ._cli import experiment_main
from ._common import controls_for, make_problem, plt, segment_centers, solve_seconds
from ._format import Figure, finish, md_table

__all__ = ["config", "tasks", "run_point", "summarize", "plot", "table_rows", "main"]

GROUP = "phase"


def config(quick: bool) -> dict[str, Any]:
    """Grid, horizons, problem resolution, controls and the agreement criteria."""
    if quick:
        grid = [1.4, 2.3, 3.2]
        Ts = [100, 200, 400]
        res = {"n_modes": 10**8, "n_exact": 50, "bins_per_decade": 20}
        rule = {"per_step_max": 0, "K": 50, "steps_per_control": 1}
        top = 3
    else:
        grid = [round(float(x), 4) for x in np.linspace(1.2, 3.5, 7)]
        Ts = [200 * 2**k for k in range(7)]
        res = {"n_modes": 10**12, "n_exact": 100, "bins_per_decade": 40}
        rule = {"per_step_max": 0, "K": 100, "steps_per_control": 1}
        top = 4
    base = {"sigma": 0.5, "batch": 4, **res}
    return {
        "a": grid,
        "b": grid,
        "Ts": Ts,
        "base": base,
        "rule": rule,
        "maxiter": 2000,
        "top": top,
        "eta_frac": 0.2,
        "tolerance": 0.05,
        "boundary_gap": 0.3,
        "quick": quick,
    }


def _chain(cfg: dict[str, Any], a: float, b: float) -> dict[str, Any]:
    return {
        "name": f"a{round(a * 1000)}_b{round(b * 1000)}",
        "role": "phase",
        "setting": {"a": a, "b": b, **cfg["base"]},
        "Ts": cfg["Ts"],
        "rule": cfg["rule"],
        "maxiter": cfg["maxiter"],
        "eta_frac": cfg["eta_frac"],
    }


def _points(cfg: dict[str, Any]) -> list[tuple[float, float]]:
    return [(a, b) for a in cfg["a"] for b in cfg["b"]]


def point_path(results_dir: Path, chain: dict[str, Any]) -> Path:
    """``point`` (a JSON result) of a grid point, in a folder keyed by its full configuration."""
    return Path(results_dir) / GROUP / f"{chain['name']}_{config_key(chain)}" / "point"


def run_point(results_dir: str, chain: dict[str, Any]) -> dict[str, Any]:
    """Solve one grid point at every horizon and save it as ``point.json``.

    The horizons are solved in ``work/`` next to it (warm starts, each horizon saved as it
    finishes, so an interrupted point resumes); once ``point.json`` (the losses, the controls
    of every horizon and the solver diagnostics) is written, ``work/`` is deleted: the full
    per-step schedules and loss curves are not needed by any figure and would make the
    committed results large.
    """
    path = point_path(Path(results_dir), chain)
    work = path.parent / "work"
    problem = make_problem(chain["setting"])
    rule = chain["rule"]
    res = optimize_schedules(
        problem,
        [int(T) for T in chain["Ts"]],
        out_dir=work,
        controls=lambda T: controls_for(T, rule),
        progress=False,
        maxiter=int(chain["maxiter"]),
    )
    Ts = sorted(res)
    point = {
        "chain": chain,
        "key": config_key(chain),
        "Ts": Ts,
        "loss": [res[T].loss for T in Ts],
        "controls": [np.asarray(res[T].controls).tolist() for T in Ts],
        "iterations": [res[T].iterations for T in Ts],
        "converged": [res[T].converged for T in Ts],
        "projected_gradient": [res[T].projected_gradient for T in Ts],
        "wall_time": [res[T].wall_time for T in Ts],
        "eta_critical": problem.eta_critical(),
        "n_eff": problem.n_eff,
    }
    save_result(path, None, point, config=chain)
    shutil.rmtree(work, ignore_errors=True)
    return {
        "a": chain["setting"]["a"],
        "b": chain["setting"]["b"],
        "seconds": float(sum(point["wall_time"])),
    }


def tasks(cfg: dict[str, Any], results_dir: Path) -> list[Task]:
    """One task per grid point (processes run them in parallel)."""
    out = []
    for a, b in _points(cfg):
        ch = _chain(cfg, a, b)
        out.append(
            Task(
                "phase_diagram",
                "run_point",
                {"results_dir": str(results_dir), "chain": ch},
                name=f"phase a={a:g} b={b:g}",
                cost=solve_seconds(make_problem(ch["setting"]).n_eff, cfg["Ts"], 15),
                done=_load_point(results_dir, ch) is not None,
            )
        )
    return out


def _load_point(results_dir: Path, chain: dict[str, Any]) -> dict[str, Any] | None:
    got = load_valid(point_path(results_dir, chain), config=chain)
    return None if got is None else got[1]


def analyze_point(
    point: dict[str, Any] | None, chain: dict[str, Any], cfg: dict[str, Any]
) -> dict[str, Any]:
    """Fits at one grid point: ξ, loss exponent (top horizons), local slopes, phase."""
    s = chain["setting"]
    a, b = s["a"], s["b"]
    p = make_problem(s)
    out: dict[str, Any] = {
        "a": a,
        "b": b,
        "theory_loss": max_rule_loss_exponent(a, b),
        "theory_xi": theory_xi(a, b),
        "theory_phase": p.phase,
        "eta_critical": p.eta_critical(),
        "Ts": [],
    }
    if point is None or len(point["Ts"]) < 2:
        return out
    Ts = point["Ts"]
    L = np.array(point["loss"])
    eta = np.array(
        [
            float(np.interp(cfg["eta_frac"], segment_centers(T, len(u)), u))
            for T, u in zip(Ts, point["controls"], strict=True)
        ]
    )
    T_arr = np.array(Ts, dtype=np.float64)
    k = cfg["top"]
    lf = power_law_fit(T_arr[-k:], L[-k:]).negated()
    xf = power_law_fit(T_arr[-k:], eta[-k:]).negated()
    ratio = float(eta[-1] / p.eta_critical())
    out.update(
        {
            "Ts": Ts,
            "loss": L.tolist(),
            "eta": eta.tolist(),
            "loss_fit": lf.as_dict(),
            "xi_fit": xf.as_dict(),
            "loss_local": (-local_exponents(T_arr, L)[1]).tolist(),
            "xi_local": (-local_exponents(T_arr, eta)[1]).tolist(),
            "eta_ratio": ratio,
            "measured_phase": classify_phase(xf, ratio),
            "converged": point["converged"],
            "iterations": point["iterations"],
            "seconds": float(sum(point["wall_time"])),
        }
    )
    out["loss_diff"] = lf.exponent - out["theory_loss"]
    out["xi_diff"] = xf.exponent - out["theory_xi"]
    return out


def summarize(cfg: dict[str, Any], results_dir: Path) -> dict[str, Any]:
    """Every point's fits, and the agreement with the max rule away from the boundary."""
    pts = []
    for a, b in _points(cfg):
        ch = _chain(cfg, a, b)
        pts.append(analyze_point(_load_point(results_dir, ch), ch, cfg))
    done = [q for q in pts if "loss_fit" in q]
    away = [q for q in done if abs(q["a"] - q["b"]) >= cfg["boundary_gap"]]
    bad = [q for q in away if abs(q["loss_diff"]) > cfg["tolerance"]]
    summary = {
        "points": pts,
        "n_points": len(pts),
        "n_done": len(done),
        "n_away": len(away),
        "failures": [
            {
                "a": q["a"],
                "b": q["b"],
                "measured": q["loss_fit"]["exponent"],
                "theory": q["theory_loss"],
                "reason": _reason(q, cfg),
            }
            for q in bad
        ],
        "compute_seconds": float(sum(q.get("seconds", 0.0) for q in done)),
        "config": cfg,
    }
    summary["readme"] = _readme_text(summary, cfg)
    return summary


def _reason(q: dict[str, Any], cfg: dict[str, Any]) -> str:
    """A measured description of why a point misses the max rule (finite-T drift etc.)."""
    loc = q["loss_local"]
    th = q["theory_loss"]
    gap = abs(q["a"] - q["b"])
    trend = "moving toward" if abs(loc[-1] - th) < abs(loc[0] - th) else "not moving toward"
    parts = [f"last consecutive-T slope {loc[-1]:.3f} ({trend} theory {th:.3f} as T grows)"]
    if gap < 0.8:
        parts.append(
            f"|a − b| = {gap:.2f}: near the boundary, where the crossover between the "
            "two regimes is slow"
        )
    if q["measured_phase"] != q["theory_phase"]:
        parts.append(
            f"the schedules still behave as {q['measured_phase']} "
            f"(ξ = {q['xi_fit']['exponent']:.3f}, η(0.2T)/η_c = {q['eta_ratio']:.2f})"
        )
    return "; ".join(parts)


def _readme_text(summary: dict[str, Any], cfg: dict[str, Any]) -> str:
    done = [q for q in summary["points"] if "loss_fit" in q]
    if not done:
        return ""
    Ts = done[0]["Ts"]
    k = cfg["top"]
    away = summary["n_away"]
    ok = away - len(summary["failures"])
    base = cfg["base"]
    lines = [
        "## Phase diagram",
        "",
        f"{len(cfg['a'])} × {len(cfg['b'])} grid, a, b ∈ {{{', '.join(map(str, cfg['a']))}}}"
        f"; σ = {base['sigma']}, m = {base['batch']}, N = 10^"
        f"{round(math.log10(base['n_modes']))} modes (binned tail); horizons T = "
        f"{Ts[0]}…{Ts[-1]}, K = {cfg['rule']['K']} controls; exponents fitted over the top "
        f"{k} horizons (T = {Ts[-k]}…{Ts[-1]}).",
        "",
        f"Measured optimal-loss exponent vs the max rule (a−1)/max(a, b): **{ok} of {away}** "
        f"points with |a − b| ≥ {cfg['boundary_gap']} agree within {cfg['tolerance']}.",
    ]
    phases_ok = sum(
        q["measured_phase"] == q["theory_phase"]
        for q in done
        if abs(q["a"] - q["b"]) >= cfg["boundary_gap"]
    )
    lines.append(
        f"Phase read off the measured schedules matches theory at {phases_ok} of "
        f"{away} off-boundary points (the others are classed 'mixed': see the figure)."
    )
    worst = sorted(done, key=lambda q: -abs(q["loss_diff"]))[:5]
    head = ("a", "b", "phase (theory / measured)", "r measured", "r max rule", "Δ")
    rows = [
        (
            f"{q['a']:g}",
            f"{q['b']:g}",
            f"{q['theory_phase']} / {q['measured_phase']}",
            f"{q['loss_fit']['exponent']:.3f}",
            f"{q['theory_loss']:.3f}",
            f"{q['loss_diff']:+.3f}",
            f"{q['xi_fit']['exponent']:.3f}",
            f"{q['theory_xi']:.3f}",
        )
        for q in sorted(done, key=lambda q: (q["a"], q["b"]))
    ]
    lines += ["", *md_table((*head, "ξ measured", "ξ theory"), rows)]
    if summary["failures"]:
        lines += [
            "",
            f"Points off the boundary that miss the max rule by more than {cfg['tolerance']}:",
        ]
        for f in summary["failures"]:
            lines.append(
                f"- a = {f['a']:g}, b = {f['b']:g}: measured {f['measured']:.3f}, "
                f"theory {f['theory']:.3f}; {f['reason']}."
            )
    xi_bad = [q for q in done if abs(q["xi_diff"]) > cfg["tolerance"]]
    if xi_bad:
        lines += [
            "",
            f"ξ misses theory by more than {cfg['tolerance']} at {len(xi_bad)} points, "
            "listed with the local ξ between consecutive horizons (first → last) and "
            "η*(0.2T)/η_c at the largest T:",
        ]
        for q in xi_bad:
            loc = q["xi_local"]
            lines.append(
                f"- a = {q['a']:g}, b = {q['b']:g} ({q['theory_phase']}, "
                f"|a − b| = {abs(q['a'] - q['b']):.2f}): ξ = "
                f"{q['xi_fit']['exponent']:.3f} vs {q['theory_xi']:.3f}; local ξ "
                f"{loc[0]:.3f} → {loc[-1]:.3f} ("
                + ("still rising" if loc[-1] > loc[0] else "not rising")
                + f"); η*(0.2T)/η_c = {q['eta_ratio']:.2f}."
            )
    lines.append("")
    lines.append(
        "Largest |Δ| anywhere (boundary included): "
        + ", ".join(f"(a={q['a']:g}, b={q['b']:g}) {q['loss_diff']:+.3f}" for q in worst)
        + "."
    )
    return "\n".join(lines) + "\n"


def table_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One summary row: agreement with the max rule away from the boundary."""
    done = [q for q in summary["points"] if "loss_fit" in q]
    if not done:
        return []
    cfg = summary["config"]
    away = [q for q in done if abs(q["a"] - q["b"]) >= cfg["boundary_gap"]]
    diffs = np.array([q["loss_diff"] for q in away]) if away else np.array([math.nan])
    Ts = done[0]["Ts"]
    return [
        {
            "quantity": "phase diagram: optimal-loss exponent − max rule",
            "setting": f"{len(cfg['a'])}×{len(cfg['b'])} grid, |a−b| ≥ {cfg['boundary_gap']}",
            "measured": f"median {np.median(diffs):+.3f}, max |Δ| {np.max(np.abs(diffs)):.3f}",
            "T_range": f"{Ts[-cfg['top']]}–{Ts[-1]} ({cfg['top']} T)",
            "drift": "see phase_diagram_agreement.png",
            "predicted": "0 (within 0.05)",
            "verdict": f"{len(away) - len(summary['failures'])}/{len(away)} within "
            f"{cfg['tolerance']}",
        }
    ]


# ----------------------------------------------------------------------------- figures
def _grid(summary: dict[str, Any], key: str) -> np.ndarray:
    cfg = summary["config"]
    A, B = cfg["a"], cfg["b"]
    z = np.full((len(B), len(A)), np.nan)
    for q in summary["points"]:
        v = q.get(key)
        if isinstance(v, dict):
            v = v["exponent"]
        if v is not None:
            z[B.index(q["b"]), A.index(q["a"])] = v
    return z


def _edges(v: list[float]) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    mid = (v[1:] + v[:-1]) / 2
    return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])


def plot(
    cfg: dict[str, Any], summary: dict[str, Any], results_dir: Path, out: Path
) -> list[Figure]:
    """Heat maps of measured and predicted ξ and loss exponent; agreement scatter."""
    if not summary["n_done"]:
        return []
    pyplot = plt()
    A, B = cfg["a"], cfg["b"]
    ea, eb = _edges(A), _edges(B)
    fig, axs = pyplot.subplots(2, 3, figsize=(17, 10))
    maps = [
        ("xi_fit", "theory_xi", "ξ (η* at 0.2T ~ T^−ξ)", "viridis"),
        ("loss_fit", "theory_loss", "optimal-loss exponent r (L* ~ T^−r)", "magma"),
    ]
    marks = {"easy": "E", "hard": "H", "mixed": "M", "boundary": "B"}
    for row, (mkey, tkey, title, cmap) in enumerate(maps):
        zm, zt = _grid(summary, mkey), _grid(summary, tkey)
        vmin, vmax = np.nanmin([zm, zt]), np.nanmax([zm, zt])
        diff = zm - zt
        dm = max(0.1, float(np.nanmax(np.abs(diff))))
        for col, (z, name, cm, lim) in enumerate(
            (
                (zm, "measured", cmap, (vmin, vmax)),
                (zt, "theory", cmap, (vmin, vmax)),
                (diff, "measured − theory", "RdBu_r", (-dm, dm)),
            )
        ):
            ax = axs[row, col]
            im = ax.pcolormesh(ea, eb, z, cmap=cm, vmin=lim[0], vmax=lim[1])
            fig.colorbar(im, ax=ax, shrink=0.85)
            ax.plot(
                [min(A + B) - 1, max(A + B) + 1],
                [min(A + B) - 1, max(A + B) + 1],
                "--",
                color="0.5",
                lw=1.5,
            )
            ax.set(
                xlim=(ea[0], ea[-1]),
                ylim=(eb[0], eb[-1]),
                xlabel="a (target)",
                ylabel="b (spectrum)",
                title=f"{title}: {name}",
            )
            for q in summary["points"]:
                if mkey not in q:
                    continue
                i, j = A.index(q["a"]), B.index(q["b"])
                v = z[j, i]
                txt = f"{v:.2f}" if col < 2 else f"{v:+.2f}"
                if col == 0:
                    txt += f"\n{marks.get(q['measured_phase'], '?')}"
                bad = (
                    row == 1
                    and col == 2
                    and abs(q["a"] - q["b"]) >= cfg["boundary_gap"]
                    and abs(v) > cfg["tolerance"]
                )
                rgb = im.cmap(im.norm(v))[:3] if np.isfinite(v) else (1, 1, 1)
                lum = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
                ax.text(
                    A[i],
                    B[j],
                    txt,
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="k" if lum > 0.5 else "w",
                    fontweight="bold" if bad else None,
                    bbox={"fc": "none", "ec": "r", "lw": 1.5} if bad else None,
                )
    done = [q for q in summary["points"] if "loss_fit" in q]
    Ts = done[0]["Ts"]
    k = cfg["top"]
    base = cfg["base"]
    fig.suptitle(
        f"Phase diagram (σ={base['sigma']}, m={base['batch']}, N=10^"
        f"{round(math.log10(base['n_modes']))} modes, binned tail: effectively infinite "
        f"N); fits over T = {Ts[-k]}…{Ts[-1]}; letters: phase read off the measured "
        f"schedules (E easy, H hard, M mixed); red boxes: |Δr| > {cfg['tolerance']} "
        f"with |a−b| ≥ {cfg['boundary_gap']}; dashed: a = b",
        fontsize=9.5,
    )
    fig.tight_layout()
    save_figure(fig, Path(out) / "phase_diagram.png")
    figs = [
        Figure(
            "phase_diagram.png",
            f"Heat maps over (a, b) of the measured ξ and optimal-loss exponent beside the "
            f"theory (max rule) and their difference, with the a = b line; the phase read "
            f"off the measured schedules (fits over T = {Ts[-k]}…{Ts[-1]}).",
        )
    ]
    fig, (a0, a1) = pyplot.subplots(1, 2, figsize=(13, 5))
    cols = {"easy": "C0", "hard": "C3", "boundary": "C2"}
    for q in done:
        gap = abs(q["a"] - q["b"])
        c = cols[q["theory_phase"]]
        mk = "o" if gap >= cfg["boundary_gap"] else "x"
        a0.plot(q["theory_loss"], q["loss_fit"]["exponent"], mk, color=c, ms=6)
        a0.errorbar(
            q["theory_loss"],
            q["loss_fit"]["exponent"],
            yerr=q["loss_fit"]["stderr"],
            color=c,
            lw=1,
            capsize=2,
        )
        Tc = np.sqrt(np.array(q["Ts"][1:], float) * np.array(q["Ts"][:-1], float))
        a1.semilogx(
            Tc,
            np.array(q["loss_local"]) - q["theory_loss"],
            "-",
            color=c,
            alpha=0.8 if gap >= cfg["boundary_gap"] else 0.3,
            lw=1,
        )
    lim = [0, max(q["theory_loss"] for q in done) * 1.1]
    a0.plot(lim, lim, "k-", lw=1)
    a0.fill_between(
        lim,
        [v - cfg["tolerance"] for v in lim],
        [v + cfg["tolerance"] for v in lim],
        color="0.85",
        label=f"±{cfg['tolerance']}",
    )
    for ph, c in cols.items():
        a0.plot([], [], "o", color=c, label=f"theory {ph}")
    a0.plot([], [], "x", color="k", label=f"|a−b| < {cfg['boundary_gap']}")
    a0.set(
        xlabel="max rule (a−1)/max(a, b)",
        ylabel="measured r (top horizons)",
        title="measured vs predicted optimal-loss exponent",
    )
    a0.legend(fontsize=8)
    a1.axhline(0, color="k", lw=1)
    for s in (-1, 1):
        a1.axhline(s * cfg["tolerance"], color="0.6", ls=":")
    a1.set(
        xlabel="T (between consecutive horizons)",
        ylabel="local slope − max rule",
        title="drift of every point's local loss exponent with T",
    )
    figs.append(
        finish(
            fig,
            out,
            "phase_diagram_agreement.png",
            "Measured optimal-loss exponent at every grid point against the max rule "
            "(±tolerance band), and every point's local exponent minus the max rule "
            "against T (finite-T drift).",
            "Phase diagram agreement (faint: |a−b| below the boundary gap)",
        )
    )
    return figs


main = experiment_main(
    "phase_diagram",
    __doc__,
    "Run this experiment alone (points in parallel, resumable), draw its figures.",
)

if __name__ == "__main__":
    main()
