"""Compute-optimal scaling: model size N and steps T at fixed compute C = N·T·m.

For each phase (easy a=2.5, b=1.2; hard a=1.5, b=2.5; the settings of
:mod:`optimal_schedules`) and each finite-N model (the paper's top-N model,
:meth:`rfmodel.Problem.top_n`; Gaussian random features averaged over the projection with
M = ∞, :meth:`rfmodel.Problem.from_random_features` with ``key=None``), a grid of N (8 values
×2 apart, 2.1 decades, placed around the frontier) × T (10 values ×2 apart, 50…25600,
2.7 decades). The loss is the excess test loss over σ², L(T) + L_approx(N) (docs/theory.md §3).
At every grid point:

- the optimal schedule (K = min(T, 100) piecewise-constant controls, warm-started over T with
  :func:`rfmodel.control.optimize_schedules`),
- the best constant rate (:func:`rfmodel.control.best_constant_rate`),
- cosine and WSD (linear decay) tuned on the same dynamics (:func:`rfmodel.schedules.tune`);
  the "practitioner" schedule is the better of the two at each point.

Per schedule: the frontier L*(C) = min over N·T·m = C (:func:`rfmodel.scaling.compute_frontier`),
the exponents N* ~ C^p, T* ~ C^q, L* ~ C^(−ℓ) fitted over its interior points (95% intervals)
against :meth:`rfmodel.Problem.theory` (docs/theory.md §7), and the compute multiplier of the
optimal schedule (how much more compute the others need for the same loss) as a function of C.
To separate finite-size drift from a wrong prediction, the §7 formula is also evaluated with the
*local* exponents measured on the grid (α_eff of L_approx over the frontier's N, r_eff of the
loss at the largest N over the frontier's T).

One task per (phase, model, N): all horizons, saved as each finishes (resumable); a point
file per N is kept (losses, controls, solver diagnostics). Choice of K and grid: K = 100
controls keeps the optimum within ~2e-4 of finer control (K sensitivity in
:mod:`optimal_schedules`); T ≤ 25600 and binned spectra (100 exact modes, 40 bins a decade)
keep one phase-and-model under 15 minutes on 2 cores.

Usage: ``python -m rfmodel.experiments.compute_optimal [--quick] [--results DIR] [--out DIR]``
(or ``python experiments/compute_optimal.py`` in the source checkout).
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import Problem
from ..control import best_constant_rate, optimize_schedules
from ..dynamics import log_final_loss_and_grad
from ..plotting import save_figure
from ..results import config_key, load_valid, save_result
from ..runner import Task
from ..scaling import (
    compute_frontier,
    compute_multiplier,
    compute_optimal_exponents,
    local_exponents,
    power_law_fit,
)
from ..schedules import FAMILIES, tune
from ._cli import experiment_main
from ._common import NS_PER_MODE_STEP, plt
from ._format import Figure, fmt_fit, md_table

__all__ = ["config", "tasks", "run_point", "summarize", "plot", "table_rows", "main"]

GROUP = "compute_optimal"
SETTINGS = {
    "easy": {"a": 2.5, "b": 1.2, "sigma": 0.3, "batch": 4},
    "hard": {"a": 1.5, "b": 2.5, "sigma": 0.5, "batch": 4},
}
MODELS = ("top_n", "random_features")
#: Smallest N of each grid (log2), chosen so that the frontier lies inside it.
_N0 = {("easy", "top_n"): 3, ("easy", "random_features"): 7, ("hard", "top_n"): 2}
_N0[("hard", "random_features")] = 5
SCHEDULES = ("optimal", "constant", "practitioner")
_LABEL = {"optimal": "optimal", "constant": "best constant", "practitioner": "tuned cosine/WSD"}


def config(quick: bool) -> dict[str, Any]:
    """Grids, resolution, solver and tuning settings (full or quick)."""
    if quick:  # N ≤ 16: every problem pads to 16 modes, so compiled loops are shared
        Ts, K = [16, 32, 64], 16
        families, tune_kw = ["wsd_linear"], {"maxiter": 10, "n_starts": 1}
    else:
        Ts, K = [50 * 2**k for k in range(10)], 100
        families, tune_kw = ["cosine", "wsd_linear"], {"maxiter": 100, "n_starts": 2}

    def grid(ph: str, mo: str) -> list[int]:
        return [4, 8, 16] if quick else [2 ** (_N0[(ph, mo)] + k) for k in range(8)]

    cases = [
        {"phase": ph, "model": mo, "setting": SETTINGS[ph], "Ns": grid(ph, mo)}
        for ph in SETTINGS
        for mo in MODELS
    ]
    return {
        "cases": cases,
        "Ts": Ts,
        "controls": K,
        "resolution": {"n_exact": 100, "bins_per_decade": 40},
        "maxiter": 2000,
        "families": families,
        "tune": tune_kw,
        "tolerance": 0.05,
        "quick": quick,
    }


def _chain(cfg: dict[str, Any], case: dict[str, Any], N: int) -> dict[str, Any]:
    return {
        "name": f"{case['phase']}_{case['model']}_N{N}",
        "model": case["model"],
        "setting": case["setting"],
        "N": int(N),
        "Ts": cfg["Ts"],
        "controls": cfg["controls"],
        "resolution": cfg["resolution"],
        "maxiter": cfg["maxiter"],
        "families": cfg["families"],
        "tune": cfg["tune"],
    }


def build_problem(model: str, setting: dict[str, Any], N: int, resolution: dict) -> Problem:
    """The problem of one grid column: top-N, or random features averaged over F (M = ∞)."""
    s = setting
    if model == "top_n":
        return Problem.top_n(
            s["a"], s["b"], s["sigma"], n_features=N, batch=s["batch"], **resolution
        )
    return Problem.from_random_features(
        s["a"],
        s["b"],
        s["sigma"],
        n_features=N,
        n_inputs=math.inf,
        batch=s["batch"],
        bins_per_decade=resolution["bins_per_decade"],
    )


def point_path(results_dir: Path, chain: dict[str, Any]) -> Path:
    return Path(results_dir) / GROUP / f"{chain['name']}_{config_key(chain)}" / "point"


def _final_loss(problem: Problem, etas: np.ndarray) -> float:
    return math.exp(log_final_loss_and_grad(problem, etas)[0])  # the solver's compiled objective


def _baselines(problem: Problem, T: int, chain: dict[str, Any], work: Path) -> dict[str, Any]:
    """Best constant rate and tuned families at one horizon (cached in ``work``)."""
    key = {"problem": problem.config(), "T": T, "families": chain["families"], **chain["tune"]}
    key["family_specs"] = _family_specs(chain)
    path = work / f"T{T}_baselines_{config_key(key)}"
    got = load_valid(path, config=key)
    if got is not None:
        return got[1]
    t0 = time.perf_counter()
    eta = best_constant_rate(problem, T)
    rec: dict[str, Any] = {"constant": {"loss": _final_loss(problem, np.full(T, eta)), "eta": eta}}
    for fam in chain["families"]:
        r = tune(fam, problem, T, **chain["tune"])
        rec[fam] = {"loss": r.loss, "params": r.params, "at_bound": list(r.at_bound)}
    rec["seconds"] = time.perf_counter() - t0
    save_result(path, None, rec, config=key)
    return rec


def _family_specs(chain: dict[str, Any]) -> dict[str, Any]:
    """What the tuned lines depend on besides the chain: each family's definition
    (:meth:`rfmodel.schedules.Family.spec`)."""
    return {f: FAMILIES[f].spec() for f in chain["families"]}


def _tuned(base: list[dict[str, Any]], chain: dict[str, Any]) -> dict[str, Any]:
    """The constant and tuned lines of a point from the per-horizon baselines."""
    return {
        "constant": {k: [b["constant"][k] for b in base] for k in ("loss", "eta")},
        **{f: {"loss": [b[f]["loss"] for b in base]} for f in chain["families"]},
        "tuned_at_bound": {f: [b[f]["at_bound"] for b in base] for f in chain["families"]},
        "family_specs": _family_specs(chain),
    }


def run_point(results_dir: str, chain: dict[str, Any]) -> dict[str, Any]:
    """Every horizon of one grid column (one N): optimal (warm starts), constant, tuned.

    Horizons are saved in ``work/`` as they finish (an interrupted column resumes); then
    ``point.json`` gets the losses, the optimal controls and the solver diagnostics and
    ``work/`` is deleted. A saved point whose tuned lines were computed under other family
    definitions (``family_specs``) keeps its optimal schedules and recomputes only those lines.
    """
    t0 = time.perf_counter()
    path = point_path(Path(results_dir), chain)
    work = path.parent / "work"
    problem = build_problem(chain["model"], chain["setting"], chain["N"], chain["resolution"])
    saved = _load_point(Path(results_dir), chain, current=False)
    if saved is not None and saved.get("family_specs") == _family_specs(chain):
        return {"name": chain["name"], "seconds": 0.0}
    if saved is not None:  # stale tuned lines only: the optimal schedules stay
        base = [_baselines(problem, int(T), chain, work) for T in saved["Ts"]]
        point = {k: v for k, v in saved.items() if k != "_rfmodel"}
        point.update(_tuned(base, chain))
        point["seconds"] = float(saved["seconds"] + sum(b["seconds"] for b in base))
        save_result(path, None, point, config=chain)
        shutil.rmtree(work, ignore_errors=True)
        return {"name": chain["name"], "seconds": time.perf_counter() - t0}
    K = int(chain["controls"])
    opt = optimize_schedules(
        problem,
        [int(T) for T in chain["Ts"]],
        out_dir=work,
        controls=lambda T: min(T, K),
        progress=False,
        maxiter=int(chain["maxiter"]),
    )
    Ts = sorted(opt)
    base = [_baselines(problem, T, chain, work) for T in Ts]
    point = {
        "chain": chain,
        "Ts": Ts,
        "approx_error": problem.approx_error,
        "n_eff": problem.n_eff,
        "eta_critical": problem.eta_critical(),
        "optimal": {
            "loss": [opt[T].loss for T in Ts],
            "controls": [np.asarray(opt[T].controls).tolist() for T in Ts],
            "converged": [opt[T].converged for T in Ts],
            "projected_gradient": [opt[T].projected_gradient for T in Ts],
            "evaluations": [opt[T].evaluations for T in Ts],
        },
        **_tuned(base, chain),
        "seconds": float(sum(opt[T].wall_time for T in Ts) + sum(b["seconds"] for b in base)),
    }
    save_result(path, None, point, config=chain)
    shutil.rmtree(work, ignore_errors=True)
    return {"name": chain["name"], "seconds": time.perf_counter() - t0}


def _load_point(
    results_dir: Path, chain: dict[str, Any], current: bool = True
) -> dict[str, Any] | None:
    """The saved point of a chain (None: missing or damaged); with ``current``, only when its
    tuned lines are of today's family definitions."""
    got = load_valid(point_path(results_dir, chain), config=chain)
    if got is None:
        return None
    if current and got[1].get("family_specs") != _family_specs(chain):
        return None
    return got[1]


def tasks(cfg: dict[str, Any], results_dir: Path) -> list[Task]:
    """One task per (phase, model, N)."""
    out = []
    for case in cfg["cases"]:
        for N in case["Ns"]:
            ch = _chain(cfg, case, N)
            n_eff = 100 + 40 * max(0.0, math.log10(N / 100)) if N > 100 else N
            out.append(
                Task(
                    "compute_optimal",
                    "run_point",
                    {"results_dir": str(results_dir), "chain": ch},
                    name=f"compute {ch['name']}",
                    cost=n_eff * sum(cfg["Ts"]) * 150 * NS_PER_MODE_STEP,
                    done=_load_point(results_dir, ch) is not None,
                )
            )
    return out


# ----------------------------------------------------------------------------- analysis
def _grids(points: list[dict[str, Any]], families: list[str]) -> dict[str, np.ndarray]:
    """Excess losses L(T) + L_approx(N) on the grid, shape (len(Ns), len(Ts)), per schedule."""
    la = np.array([p["approx_error"] for p in points])[:, None]
    g = {s: np.array([p[s]["loss"] for p in points]) + la for s in ("optimal", "constant")}
    tuned = np.array([[p[f]["loss"] for f in families] for p in points])  # (N, fam, T)
    g["practitioner"] = tuned.min(axis=1) + la
    g["practitioner_family"] = tuned.argmin(axis=1)
    g["approx_error"] = la[:, 0]
    return g


def _local(x: np.ndarray, y: np.ndarray, sign: float = 1.0) -> list[float]:
    """Slopes between neighbouring budgets (× ``sign``)."""
    return (sign * local_exponents(x, y)[1]).tolist() if x.size >= 2 else []


def analyze_case(cfg: dict[str, Any], case: dict[str, Any], points: list[dict]) -> dict:
    """Frontiers, fits, theory and effective theory, multipliers for one phase × model."""
    s = case["setting"]
    Ns = np.array(case["Ns"], float)
    Ts = np.array(cfg["Ts"], float)
    th = build_problem(case["model"], s, 16, cfg["resolution"]).theory()
    out: dict[str, Any] = {
        "phase": case["phase"],
        "model": case["model"],
        "setting": s,
        "Ns": case["Ns"],
        "Ts": cfg["Ts"],
        "theory": vars(th),
    }
    g = _grids(points, cfg["families"])
    out["grids"] = {k: np.asarray(v).tolist() for k, v in g.items()}
    la = g["approx_error"]
    pred = {
        "optimal": (th.compute_model_size, th.compute_steps, th.compute_loss),
        "constant": (
            th.constant_compute_model_size,
            th.constant_compute_steps,
            th.constant_compute_loss,
        ),
    }
    pred["practitioner"] = pred["optimal"]  # tuned cosine/WSD reach the optimal T-exponent
    r_th = {"optimal": th.optimal_loss, "constant": th.constant_loss}
    r_th["practitioner"] = th.optimal_loss
    fronts, sched = {}, {}
    for name in SCHEDULES:
        f = compute_frontier(Ns, Ts, g[name], batch=s["batch"])
        fronts[name] = f
        rec: dict[str, Any] = {"frontier": f.as_dict(), "predicted": pred[name]}
        if int(f.interior.sum()) >= 3:
            fits = f.fits()
            rec["fits"] = {k: v.as_dict() for k, v in fits.items()}
            m = f.interior
            rec["local"] = {
                "C": local_exponents(f.C[m], f.L[m])[0].tolist(),
                "N": _local(f.C[m], f.N[m]),
                "T": _local(f.C[m], f.T[m]),
                "L": _local(f.C[m], f.L[m], -1.0),
            }
            # Effective theory: the §7 formula with exponents measured where the frontier is.
            nlo, nhi = f.N[m].min(), f.N[m].max()
            tlo, thi = f.T[m].min(), f.T[m].max()
            sel_n = (Ns >= nlo / 1.5) & (Ns <= nhi * 1.5)
            sel_t = (Ts >= tlo / 1.5) & (Ts <= thi * 1.5)
            if sel_n.sum() >= 2 and sel_t.sum() >= 2:
                a_eff = -power_law_fit(Ns[sel_n], la[sel_n]).exponent
                dyn = g[name][-1] - la[-1]  # largest N: the least truncated dynamics
                r_eff = -power_law_fit(Ts[sel_t], dyn[sel_t]).exponent
                rec["effective"] = {
                    "alpha": a_eff,
                    "r": r_eff,
                    "pqell": compute_optimal_exponents(a_eff, r_eff),
                    "r_theory": r_th[name],
                }
        sched[name] = rec
    out["schedules"] = sched
    mult = {}
    for name in ("constant", "practitioner"):
        c, x = compute_multiplier(fronts["optimal"], fronts[name])
        mult[name] = {"C": c.tolist(), "multiplier": x.tolist()}
        if c.size >= 3:
            mult[name]["fit"] = power_law_fit(c, x).as_dict()
            xc, sl = local_exponents(c, x)
            mult[name]["local"] = {"C": xc.tolist(), "slope": sl.tolist()}
    out["multiplier"] = mult
    return out


def summarize(cfg: dict[str, Any], results_dir: Path) -> dict[str, Any]:
    """Every phase × model with all its grid columns done."""
    cases, seconds, missing = [], 0.0, 0
    for case in cfg["cases"]:
        pts = [_load_point(results_dir, _chain(cfg, case, N)) for N in case["Ns"]]
        seconds += sum(p["seconds"] for p in pts if p)
        if any(p is None for p in pts):
            missing += sum(p is None for p in pts)
            continue
        res = analyze_case(cfg, case, pts)
        res["converged"] = int(sum(sum(p["optimal"]["converged"]) for p in pts))
        res["solves"] = int(sum(len(p["Ts"]) for p in pts))
        res["max_projected_gradient"] = float(
            max(max(p["optimal"]["projected_gradient"]) for p in pts)
        )
        res["not_kkt"] = [
            {"N": N, "T": T, "projected_gradient": g}
            for N, p in zip(case["Ns"], pts, strict=True)
            for T, g in zip(p["Ts"], p["optimal"]["projected_gradient"], strict=True)
            if g > 1e-4
        ]
        res["n_eff"] = [p["n_eff"] for p in pts]
        fam = np.array(res["grids"]["practitioner_family"])
        res["family_wins"] = {f: int((fam == i).sum()) for i, f in enumerate(cfg["families"])}
        cases.append(res)
    summary = {"cases": cases, "missing": missing, "compute_seconds": seconds, "config": cfg}
    summary["readme"] = _readme_text(summary)
    return summary


# ----------------------------------------------------------------------------- text
def _case_label(c: dict[str, Any]) -> str:
    s = c["setting"]
    model = "top-N" if c["model"] == "top_n" else "random features (mean over F, M = ∞)"
    return f"{c['phase']} a={s['a']:g}, b={s['b']:g}, {model}"


def _verdict(c: dict[str, Any], name: str, k: int, tol: float) -> str:
    """Agreement with §7, and where it fails, the drift and the effective prediction."""
    rec = c["schedules"][name]
    fit = rec["fits"]["NTL"[k]]
    meas, pr = fit["exponent"], rec["predicted"][k]
    loc = rec["local"]["NTL"[k]]
    d = meas - pr
    txt = f"within {tol} (Δ = {d:+.3f})" if abs(d) <= tol else f"Δ = {d:+.3f}"
    if not fit["lo"] <= pr <= fit["hi"] and loc:
        toward = abs(loc[-1] - pr) < abs(loc[0] - pr)
        txt += (
            f"; outside the interval: local value {loc[0]:.3f} → {loc[-1]:.3f} as C grows ("
            + ("moving toward" if toward else "not moving toward")
            + " theory)"
        )
    eff = rec.get("effective")
    if eff and abs(d) > tol / 2:
        e = eff["pqell"][k]
        txt += (
            f"; with the local exponents where the frontier lies (α_eff = {eff['alpha']:.2f} vs "
            f"{c['theory']['approx_error']:.2f}, r_eff = {eff['r']:.3f} vs {eff['r_theory']:.3f})"
            f" §7 gives {e:.3f} (Δ = {meas - e:+.3f})"
        )
    return txt


def _drift(C: list[float], vals: list[float]) -> str:
    """``"0.440 (C≈1e+05) → … → 0.392 (C≈6e+08)"``: local exponents between budgets."""
    if not vals:
        return "—"
    keep = np.unique(np.linspace(0, len(vals) - 1, min(5, len(vals))).round().astype(int))
    return " → ".join(f"{vals[i]:.3f} (C≈{C[i]:.1g})" for i in keep)


def _crange(f: dict[str, Any]) -> str:
    C = np.array(f["C"])[np.array(f["interior"], bool)]
    return f"C = {C.min():.2g}–{C.max():.2g} ({C.size} budgets)"


def table_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Per phase × model: N*, T*, L* exponents of the optimal frontier, L* of the constant
    rate, and the compute multipliers."""
    rows = []
    tol = summary["config"]["tolerance"]
    for c in summary["cases"]:
        lab = _case_label(c)
        for name in ("optimal", "constant"):
            rec = c["schedules"][name]
            if "fits" not in rec:
                continue
            ks = (0, 1, 2) if name == "optimal" else (2,)
            for k in ks:
                what = ("N* ~ C^p", "T* ~ C^q", "L* ~ C^−ℓ")[k]
                loc = rec["local"]["NTL"[k]]
                rows.append(
                    {
                        "quantity": f"compute-optimal {what} ({_LABEL[name]})",
                        "setting": lab,
                        "measured": fmt_fit(rec["fits"]["NTL"[k]]),
                        "T_range": _crange(rec["frontier"]),
                        "drift": _drift(rec["local"]["C"], loc),
                        "predicted": f"{rec['predicted'][k]:.3f}",
                        "verdict": _verdict(c, name, k, tol),
                    }
                )
        for name in ("constant", "practitioner"):
            mm = c["multiplier"][name]
            if len(mm["multiplier"]) < 3:
                continue
            fit = mm["fit"]
            rows.append(
                {
                    "quantity": f"compute multiplier of the optimum vs {_LABEL[name]}",
                    "setting": lab,
                    "measured": f"{mm['multiplier'][0]:.2f}× → {mm['multiplier'][-1]:.2f}×, "
                    f"∝ C^{fmt_fit(fit)}",
                    "T_range": f"C = {mm['C'][0]:.2g}–{mm['C'][-1]:.2g} ({len(mm['C'])} budgets)",
                    "drift": _drift(mm["local"]["C"], mm["local"]["slope"]),
                    "predicted": _mult_prediction(c, name),
                    "verdict": (
                        "≥ 1 at every C"
                        if min(mm["multiplier"]) >= 1 - 1e-3
                        else f"below 1 at some C (min {min(mm['multiplier']):.3f})"
                    )
                    + _mult_verdict(c, name, fit["exponent"]),
                }
            )
    return rows


def _mult_prediction(c: dict[str, Any], name: str) -> str:
    """Multiplier ∝ C^(ℓ_opt/ℓ_other − 1) when both frontiers are power laws."""
    if name == "practitioner":
        return "C^0 (same exponents: a constant factor)"
    lo, lc = c["theory"]["compute_loss"], c["theory"]["constant_compute_loss"]
    return f"C^{lo / lc - 1:.3f} (ℓ_opt/ℓ_const − 1)"


def _mult_verdict(c: dict[str, Any], name: str, slope: float) -> str:
    fo, fx = (c["schedules"][k].get("fits") for k in ("optimal", name))
    if not fo or not fx:
        return ""
    meas = fo["L"]["exponent"] / fx["L"]["exponent"] - 1
    return f"; from the measured ℓ's: C^{meas:.3f} (vs slope {slope:.3f})"


def _readme_text(summary: dict[str, Any]) -> str:
    cfg = summary["config"]
    if not summary["cases"]:
        return ""
    Ts = cfg["Ts"]
    lines = [
        "## Compute-optimal scaling",
        "",
        f"Grid per phase × model: N ×2 apart ({len(cfg['cases'][0]['Ns'])} values), T = "
        f"{Ts[0]}…{Ts[-1]} ×2 apart; loss = L(T) + L_approx(N) (excess over σ²); C = N·T·m. "
        f"Optimal: K = min(T, {cfg['controls']}) controls, warm starts over T; practitioner: "
        f"best of {', '.join(cfg['families'])} tuned at each point. Exponents fitted over the "
        "frontier's interior budgets (95% t intervals); predicted: docs/theory.md §7; "
        "effective: the same formula with the local exponents α_eff (of L_approx over the "
        "frontier's N) and r_eff (of the loss at the largest N over the frontier's T).",
        "",
    ]
    head = ("phase, model", "schedule", "p (N*)", "q (T*)", "ℓ (L*)", "predicted p, q, ℓ")
    lines += md_table((*head, "effective p, q, ℓ"), _fit_cells(summary["cases"]))
    lines.append("")
    for c in summary["cases"]:
        parts = []
        for name in ("constant", "practitioner"):
            m = c["multiplier"][name]
            if m["multiplier"]:
                parts.append(
                    f"vs {_LABEL[name]} {m['multiplier'][0]:.2f}× (C = {m['C'][0]:.2g}) → "
                    f"{m['multiplier'][-1]:.2f}× (C = {m['C'][-1]:.2g})"
                    + (f", ∝ C^{m['fit']['exponent']:.3f}" if "fit" in m else "")
                )
        lines.append(
            f"- {_case_label(c)}: compute multiplier of the optimal schedule "
            + ("; ".join(parts) or "— (frontiers do not overlap in loss)")
            + "; practitioner = "
            + ", ".join(f"{f} at {k}" for f, k in c["family_wins"].items())
            + " grid points"
            + f"; {c['converged']}/{c['solves']} optimal solves met L-BFGS-B's tolerances, "
            f"largest projected gradient of log L {c['max_projected_gradient']:.1e} (KKT "
            "tolerance 1e-4"
            + "".join(
                f"; above it: N = {q['N']}, T = {q['T']} ({q['projected_gradient']:.1e})"
                for q in c["not_kkt"]
            )
            + ")."
        )
    return "\n".join(lines) + "\n"


def _fit_cells(cases: list[dict[str, Any]]):
    """Rows of the exponent table: fitted, predicted and effective (p, q, ℓ) per schedule."""
    for c in cases:
        for name in SCHEDULES:
            rec = c["schedules"][name]
            if "fits" not in rec:
                continue
            f, eff = rec["fits"], rec.get("effective")
            yield (
                _case_label(c),
                _LABEL[name],
                *(fmt_fit(f[k]) for k in ("N", "T", "L")),
                ", ".join(f"{v:.3f}" for v in rec["predicted"]),
                ", ".join(f"{v:.3f}" for v in eff["pqell"]) if eff else "—",
            )


# ----------------------------------------------------------------------------- figures
def _frontier_panel(fig, ax, c: dict[str, Any], styles: dict) -> None:
    """Iso-loss contours of the optimal L*(N, T), iso-compute lines, each schedule's frontier."""
    Ns, Ts = np.array(c["Ns"], float), np.array(c["Ts"], float)
    L = np.log10(np.array(c["grids"]["optimal"]))
    cs = ax.contourf(Ts, Ns, L, levels=14, cmap="viridis")
    ax.contour(Ts, Ns, L, levels=cs.levels, colors="w", linewidths=0.4)
    fig.colorbar(cs, ax=ax, label="log10 L (optimal schedule)")
    for k in range(-40, 40, 2):  # iso-compute lines, ×4 apart
        ax.plot(Ts, 2.0**k * Ns[0] * Ts[0] / Ts, color="0.85", lw=0.5)
    for name in SCHEDULES:
        f = c["schedules"][name]["frontier"]
        ins = np.array(f["interior"], bool)
        col, ls = styles[name]
        ax.plot(np.array(f["T"])[ins], np.array(f["N"])[ins], ls, color=col, lw=2.2, label=name)
    ax.set(
        xscale="log",
        yscale="log",
        xlim=(Ts[0], Ts[-1]),
        ylim=(Ns[0], Ns[-1]),
        xlabel="T (steps)",
        ylabel="N (features)",
        title=f"{_case_label(c)}\nm = {c['setting']['batch']}, σ = {c['setting']['sigma']}",
    )
    ax.legend(fontsize=7, loc="lower right", title="frontier N*(C), T*(C)", title_fontsize=7)


def _loss_panels(ax_l, ax_s, c: dict[str, Any], styles: dict) -> None:
    """L*(C) per schedule (grid-limited budgets faint) and its local exponent against theory."""
    for name in SCHEDULES:
        rec = c["schedules"][name]
        f = rec["frontier"]
        ins = np.array(f["interior"], bool)
        C, Lf = np.array(f["C"]), np.array(f["L"])
        col, ls = styles[name]
        ax_l.loglog(C, Lf, ls, color=col, lw=0.8, alpha=0.35)
        lab = _LABEL[name]
        if "fits" in rec:
            lab += f": ℓ = {rec['fits']['L']['exponent']:.3f} (theory {rec['predicted'][2]:.3f})"
        ax_l.loglog(C[ins], Lf[ins], ls + "o", color=col, ms=3, label=lab)
        if ins.sum() >= 2:
            x, loc = local_exponents(C[ins], Lf[ins])
            ax_s.semilogx(x, -loc, ls + "o", color=col, ms=3)
        ax_s.axhline(rec["predicted"][2], color=col, ls=ls, lw=0.8, alpha=0.6)
    from matplotlib.ticker import NullFormatter

    for a in (ax_l, ax_s):
        a.xaxis.set_minor_formatter(NullFormatter())
    ax_l.set(xlabel="compute C = N·T·m", ylabel="L*(C), excess over σ²", title=_case_label(c))
    ax_l.legend(fontsize=6.5)
    ax_s.set(
        xlabel="compute C",
        ylabel="local ℓ = −d log L*/d log C",
        title="local compute exponent (lines: theory)",
    )


def plot(
    cfg: dict[str, Any], summary: dict[str, Any], results_dir: Path, out: Path
) -> list[Figure]:
    """Iso-loss contours with frontiers; L*(C) and its local exponent; compute multipliers."""
    cases = summary["cases"]
    if not cases:
        return []
    pyplot = plt()
    styles = {"optimal": ("C0", "-"), "constant": ("C3", "--"), "practitioner": ("C2", ":")}
    n = len(cases)
    rows = 2 if n > 2 else 1
    cols = -(-n // rows)
    fig1, ax1 = pyplot.subplots(rows, cols, figsize=(6.5 * cols, 5.2 * rows), squeeze=False)
    fig2, ax2 = pyplot.subplots(2, n, figsize=(4.6 * n, 8), squeeze=False)
    phases = sorted({c["phase"] for c in cases})
    fig3, ax3 = pyplot.subplots(1, len(phases), figsize=(6.5 * len(phases), 4.5), squeeze=False)
    for i, c in enumerate(cases):
        _frontier_panel(fig1, ax1.flat[i], c, styles)
        _loss_panels(ax2[0, i], ax2[1, i], c, styles)
        a = ax3[0, phases.index(c["phase"])]
        for name in ("constant", "practitioner"):
            mm = c["multiplier"][name]
            if mm["C"]:
                a.semilogx(
                    mm["C"],
                    mm["multiplier"],
                    styles[name][1] + "o",
                    ms=3,
                    color="C0" if c["model"] == "top_n" else "C1",
                    label=f"{c['model']}: vs {_LABEL[name]}",
                )
    for ax in ax1.flat[n:]:
        ax.axis("off")
    for j, ph in enumerate(phases):
        a = ax3[0, j]
        a.axhline(1, color="k", lw=0.8)
        a.set(
            xlabel="compute C of the optimal schedule",
            ylabel="compute multiplier C_other(L*) / C",
            title=f"{ph} phase: compute the others need for the optimum's loss",
        )
        a.legend(fontsize=7)
    for fig, name in ((fig1, "frontier"), (fig2, "loss"), (fig3, "multiplier")):
        fig.tight_layout()
        save_figure(fig, Path(out) / f"compute_optimal_{name}.png")
    return [
        Figure(
            "compute_optimal_frontier.png",
            "Iso-loss contours of the optimal schedule's L(N, T) in the (T, N) plane per "
            "phase × model (grey: iso-compute lines N·T·m = C, ×4 apart), with the "
            "compute-optimal frontier N*(C), T*(C) of the optimal, best constant and tuned "
            "cosine/WSD schedules (interior budgets).",
        ),
        Figure(
            "compute_optimal_loss.png",
            "Top: L*(C) along each schedule's frontier per phase × model (faint: budgets whose "
            "optimum the grid's edge limits) with fitted and predicted exponents; bottom: the "
            "local compute exponent between neighbouring budgets against the prediction "
            "(docs/theory.md §7).",
        ),
        Figure(
            "compute_optimal_multiplier.png",
            "Compute multiplier of the optimal schedule against C: the compute the best "
            "constant rate and the tuned cosine/WSD schedule need to reach the optimum's loss, "
            "per phase and finite-N model.",
        ),
    ]


main = experiment_main(
    "compute_optimal",
    __doc__,
    "Run this experiment alone (grid columns in parallel, resumable), draw its figures.",
)

if __name__ == "__main__":
    main()
