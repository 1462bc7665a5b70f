"""Optimal batch-size schedules: joint (η_t, m_t) control under a sample budget (docs/theory.md §6).

Settings (reference settings of docs/theory.md §6, N effectively infinite via the binned tail,
mean batch m̄ = 4, η ≤ 2 as in the paper's batch mode):

- easy: a = 2.5, b = 1.2, σ = 0.3, N = 10^6 modes;
- hard: a = 1.5, b = 2.5, σ = 0.5, N = 10^8 modes.

Two questions, both answered by :func:`rfmodel.control.optimize_schedule` with
``optimize=("eta", "batch")``:

1. Fixed steps T and samples S = m̄T (the paper's formulation), T = 200 … 3200, batches in
   [1, 16 m̄]: the optimal m(t), its gain over the constant batch S/T (with its own optimal η
   schedule), the shape of m(t) with a fitted exponent, and the loss cost of integer batches.
2. Fixed samples S = 6400, fewest steps: the constant-batch frontier (m = S/T constant, η(t)
   optimized, over m = 1 … 64), the joint optimum over the same T (batches unbounded), and the
   fewest steps at which the optimal ramp reaches the best constant-batch loss (and that loss
   + 1 %) (:func:`rfmodel.control.fewest_steps`).

The degeneracy, measured rather than assumed: the spread of the constant-batch frontier over
m = 1 … 64 at fixed S; the loss along the η/m-preserving family (the per-sample schedule of the
m̄ optimum replayed at every m, no re-optimization); and the Hessian of the Lagrangian in
(log η, log m) on the budget's tangent space at the fixed-(T, S) optimum: its soft eigenvalues
and the direction of the softest.

Usage: ``python -m rfmodel.experiments.batch_schedules [--quick] [--results DIR] [--out DIR]``
(or ``python experiments/batch_schedules.py`` in the source checkout).
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .. import Problem
from ..control import (
    ScheduleResult,
    fewest_steps,
    integer_batches,
    load_schedule,
    optimize_schedule,
    optimize_schedules,
    project_budget,
    segment_index,
)
from ..dynamics import log_final_loss_and_grad
from ..results import config_key, load_valid, save_result
from ..runner import Task
from ..scaling import power_law_fit
from ._cli import experiment_main
from ._common import (
    NS_PER_MODE_STEP,
    REFERENCE_SETTINGS,
    controls_for,
    find_chain,
    make_problem,
    run_chain,
    segment_centers,
    setting_label,
)
from ._format import Figure, finish, fmt_fit, md_table, plt, style

__all__ = [
    "config",
    "tasks",
    "run_horizons",
    "run_frontier",
    "budget_hessian",
    "summarize",
    "plot",
    "table_rows",
    "main",
]

GROUP = "batch_schedules"
PHASES = ("easy", "hard")
SETTINGS = REFERENCE_SETTINGS


def config(quick: bool) -> dict[str, Any]:
    """Settings, horizons, control rules, the sample budget of the frontier, fit windows."""
    if quick:
        # one mode count for both phases and few distinct T: compilations are most of it
        res = {"n_exact": 50, "bins_per_decade": 20, "n_modes": 10**4}
        settings = {ph: {**SETTINGS[ph], **res} for ph in PHASES}
        Ts, samples, m_grid, hessian_T, K = [40, 80], 160, [2, 4], 40, 8
        targets, rtol = [0.0], 0.5
    else:
        settings = SETTINGS
        Ts, samples, hessian_T, K = [200, 400, 800, 1600, 3200], 6400, 800, 128
        m_grid = [round(2 ** (k / 2), 6) for k in range(13)]  # 1 … 64
        targets, rtol = [0.0, 0.01], 0.02
    return {
        "settings": settings,
        "mean_batch": 4,
        "eta_max": 2.0,
        "batch_max": 16 if quick else 64,  # 16 m̄ (or 4 m̄ quick) at fixed (T, S); paper 10 m̄
        "Ts": Ts,
        # hard-phase controls span ≥ 4 steps (per-step hard optima alternate, docs §6)
        "rules": {
            "easy": {"per_step_max": 0, "K": K, "steps_per_control": 1},
            "hard": {"per_step_max": 0, "K": K, "steps_per_control": 4},
        },
        "hessian_T": hessian_T,
        "samples": samples,
        "m_grid": m_grid,
        "targets": targets,
        "rtol": rtol,
        # m(t) fits: easy, m ∝ (1 − t/T)^γ over the decay; hard, m/m_plateau − 1 ∝ (1 − t/T)^−γ
        "shape_window": {"easy": [0.5, 0.9], "hard": [0.5, 0.97]},
        "plateau_window": [0.1, 0.5],
        "quick": quick,
    }


def _chains(cfg: dict[str, Any], ph: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(joint (η, m) chain, constant-batch reference chain) over the horizons of one phase."""
    base = {
        "setting": cfg["settings"][ph],
        "Ts": cfg["Ts"],
        "rule": cfg["rules"][ph],
        "eta_max": cfg["eta_max"],
    }
    joint = {
        "name": f"{ph}_joint",
        **base,
        "optimize": ["eta", "batch"],
        "mean_batch": cfg["mean_batch"],
        "batch_max": cfg["batch_max"],
    }
    return joint, {"name": f"{ph}_constant", **base}


def _key(cfg: dict[str, Any], ph: str, what: str) -> dict[str, Any]:
    keep = {
        "analysis": ("Ts", "hessian_T", "rules", "eta_max", "mean_batch", "batch_max"),
        "frontier": ("samples", "m_grid", "rules", "eta_max", "targets", "rtol", "mean_batch"),
    }[what]
    return {
        "what": what,
        "problem": make_problem(cfg["settings"][ph]).config(),
        **{k: cfg[k] for k in keep},
    }


def _path(results_dir: Path, cfg: dict[str, Any], ph: str, what: str) -> Path:
    return Path(results_dir) / GROUP / f"{what}_{ph}_{config_key(_key(cfg, ph, what))}"


def tasks(cfg: dict[str, Any], results_dir: Path) -> list[Task]:
    """Per phase: the horizons (two chains + analysis) and the fixed-S frontier."""
    out = []
    for ph in PHASES:
        n = make_problem(cfg["settings"][ph]).n_eff
        for what, func, steps in (
            ("analysis", "run_horizons", 3 * sum(cfg["Ts"])),
            ("frontier", "run_frontier", 12 * cfg["samples"]),
        ):
            out.append(
                Task(
                    GROUP,
                    func,
                    {"results_dir": str(results_dir), "cfg": cfg, "phase": ph},
                    name=f"{GROUP}/{ph}_{what}",
                    cost=n * steps * 400 * NS_PER_MODE_STEP,
                    done=load_valid(_path(results_dir, cfg, ph, what), config=_key(cfg, ph, what))
                    is not None,
                )
            )
    return out


# ----------------------------------------------------------------------------- computations
def _segment_values(res: ScheduleResult) -> tuple[np.ndarray, np.ndarray]:
    """(η, m) per control segment of a joint result."""
    T, K = res.etas.size, res.controls.size
    first = np.searchsorted(segment_index(T, K), np.arange(K))
    return res.controls, res.batches[first]


def budget_hessian(problem: Problem, res: ScheduleResult, h: float = 1e-4) -> dict[str, Any]:
    """The Hessian of the Lagrangian log L + ν(Σ_t m_t − S) in x = (log η_j, log m_j) at a joint
    optimum, on the tangent space of the budget (batches at a bound held fixed), by central
    differences of the adjoint gradient (4K evaluations).

    Returns its eigenvalues (ascending), the softest and stiffest eigenvectors, and for each the
    alignment with the η/m-preserving directions (δ log η_j = δ log m_j): ‖a + b‖/(√2‖v‖) for
    v = (a, b), 1 when v lies in them, 0 when orthogonal."""
    T = res.etas.size
    eta, m = _segment_values(res)
    K = eta.size
    seg = segment_index(T, K)
    n = np.bincount(seg, minlength=K).astype(np.float64)

    def grad(x: np.ndarray) -> np.ndarray:
        e, b = np.exp(x[:K]), np.exp(x[K:])
        _, (ge, gm) = log_final_loss_and_grad(problem, e[seg], b[seg], batch_grad=True)
        return np.concatenate([np.bincount(seg, ge, K) * e, np.bincount(seg, gm, K) * b])

    x0 = np.concatenate([np.log(eta), np.log(m)])
    H = np.empty((2 * K, 2 * K))
    for i in range(2 * K):
        d = np.zeros(2 * K)
        d[i] = h
        H[:, i] = (grad(x0 + d) - grad(x0 - d)) / (2 * h)
    H = 0.5 * (H + H.T)
    nu = float(res.multipliers["batch"])
    H[K:, K:] += np.diag(nu * n * m)  # curvature of the budget Σ n e^y in log coordinates
    lo, hi = res.config["batch_min"], res.config["batch_max"]
    free = np.concatenate(
        [eta < res.config["eta_max"] * (1 - 1e-9), (m > lo * (1 + 1e-9)) & (m < hi * (1 - 1e-9))]
    )
    normal = np.concatenate([np.zeros(K), n * m]) * free
    normal /= np.linalg.norm(normal)
    basis = np.eye(2 * K)[:, free]
    basis = basis - np.outer(normal, normal @ basis)
    u, s, _ = np.linalg.svd(basis, full_matrices=False)
    u = u[:, s > 1e-8]
    w, v = np.linalg.eigh(u.T @ H @ u)
    v = u @ v

    def align(vec: np.ndarray) -> float:
        return float(np.linalg.norm(vec[:K] + vec[K:]) / (math.sqrt(2) * np.linalg.norm(vec)))

    soft, stiff = v[:, 0], v[:, -1]
    # log L along each (batches put back on the budget exactly)
    steps = np.linspace(-0.5, 0.5, 21)
    base = float(np.log(res.loss))

    def profile(vec: np.ndarray) -> list[float]:
        out = []
        for s_ in steps:
            x = x0 + s_ * vec
            b = project_budget(np.exp(x[K:]), n, float(n @ m), lo, hi)
            e = np.minimum(np.exp(x[:K]), res.config["eta_max"])
            out.append(_log_loss(problem, e[seg], b[seg]) - base)
        return out

    return {
        "T": T,
        "K": K,
        "eigenvalues": w.tolist(),
        "soft_align": align(soft),
        "stiff_align": align(stiff),
        "soft_batch_part": float(np.linalg.norm(soft[K:])),
        "profile_steps": steps.tolist(),
        "profile_soft": profile(soft),
        "profile_stiff": profile(stiff),
    }


def _rounding(problem: Problem, res: ScheduleResult) -> dict[str, float]:
    """Loss cost of integer batches (cumulative rounding, same total): rates unchanged, and
    rates rescaled per step to keep η_t/m_t (the per-sample rate)."""
    m_int = integer_batches(res.batches).astype(np.float64)
    scaled = np.minimum(res.etas * m_int / res.batches, res.config["eta_max"])
    base = math.log(res.loss)
    same = _log_loss(problem, res.etas, m_int) - base
    kept = _log_loss(problem, scaled, m_int) - base
    return {"same_rates": math.expm1(same), "rescaled_rates": math.expm1(kept)}


def _log_loss(problem: Problem, etas: np.ndarray, batches: np.ndarray | None = None) -> float:
    """log L(T) on the solvers' compiled objective (no extra compilation per horizon)."""
    return log_final_loss_and_grad(problem, etas, batches, batch_grad=batches is not None)[0]


def run_horizons(results_dir: str, cfg: dict[str, Any], phase: str) -> dict[str, Any]:
    """The fixed-(T, S) joint optima and the constant-batch references (chains with warm starts,
    saved per horizon), then the Hessian at ``hessian_T`` and the integer-rounding costs."""
    t0 = time.perf_counter()
    joint, const = _chains(cfg, phase)
    for chain in (joint, const):
        run_chain(results_dir, GROUP, chain)
    problem = make_problem(cfg["settings"][phase])
    res = find_chain(Path(results_dir), GROUP, joint)
    meta = {
        "rounding": {str(T): _rounding(problem, r) for T, r in res.items()},
        "hessian": budget_hessian(problem, res[cfg["hessian_T"]]),
        "seconds": time.perf_counter() - t0,
    }
    save_result(
        _path(results_dir, cfg, phase, "analysis"), None, meta, config=_key(cfg, phase, "analysis")
    )
    return {"seconds": meta["seconds"]}


def _constant_curve(results_dir: Path, cfg: dict[str, Any], ph: str) -> dict[int, ScheduleResult]:
    """Optimal η(t) at each constant batch m = S/T of the grid (each saved; warm starts)."""
    S, rule = cfg["samples"], cfg["rules"][ph]
    out: dict[int, ScheduleResult] = {}
    prev = None
    for m in cfg["m_grid"]:
        T = int(round(S / m))
        p = make_problem({**cfg["settings"][ph], "batch": S / T})
        K = controls_for(T, rule)
        key = {"problem": p.config(), "T": T, "controls": K, "eta_max": cfg["eta_max"]}
        path = Path(results_dir) / GROUP / f"constant_{ph}" / f"T{T}_{config_key(key)}"
        r = load_schedule(path, key)
        if r is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                r = optimize_schedule(p, T, controls=K, eta_max=cfg["eta_max"], init=prev)
            r.save(path, key=key)
        out[T] = r
        prev = r.etas
    return out


def _replayed(cfg: dict[str, Any], ph: str, ref: ScheduleResult, mean: float) -> dict[str, float]:
    """L(T) along the η/m-preserving family: the per-sample rate η/m of ``ref`` (run at batch
    ``mean``) replayed at every batch m of the grid, T = S/m, no re-optimization."""
    S = cfg["samples"]
    s_ref = mean * (np.arange(ref.etas.size) + 0.5)
    out = {}
    for m in cfg["m_grid"]:
        T = int(round(S / m))
        mb = S / T
        p = make_problem({**cfg["settings"][ph], "batch": mb})
        etas = mb * np.interp(mb * (np.arange(T) + 0.5), s_ref, ref.etas / mean)
        out[str(T)] = math.exp(min(_log_loss(p, np.minimum(etas, cfg["eta_max"])), 700.0))
    return out


def run_frontier(results_dir: str, cfg: dict[str, Any], phase: str) -> dict[str, Any]:
    """At fixed S: the constant-batch frontier, the joint optimum at the same T, the η/m
    replay, and the fewest steps of the optimal ramp for each target."""
    t0 = time.perf_counter()
    S, rule = cfg["samples"], cfg["rules"][phase]
    const = _constant_curve(Path(results_dir), cfg, phase)
    problem = make_problem(cfg["settings"][phase])
    joint_dir = Path(results_dir) / GROUP / f"frontier_joint_{phase}"
    joint = optimize_schedules(
        problem,
        sorted(const),
        controls=lambda T: controls_for(T, rule),
        optimize=("eta", "batch"),
        samples=float(S),
        eta_max=cfg["eta_max"],
        out_dir=joint_dir,
        progress=False,
    )
    Tc = np.array(sorted(const))
    Lc = np.array([const[T].loss for T in Tc])
    T_ref = int(Tc[np.argmin(Lc)])
    L_ref = float(Lc.min())
    ref_T = int(round(S / cfg["mean_batch"]))
    replay = _replayed(cfg, phase, const[ref_T], S / ref_T)
    targets, arrays = [], {}
    for eps in cfg["targets"]:
        target = L_ref * (1 + eps)
        reach = [T for T in sorted(joint) if joint[T].loss <= target * (1 + 1e-9)]
        start = reach[0] if reach else max(joint)
        below = [T for T in sorted(joint) if T < start]
        fs = fewest_steps(
            problem,
            S,
            target,
            T_start=start,
            T_min=below[-1] if below else None,
            controls=lambda T: controls_for(T, rule),
            eta_max=cfg["eta_max"],
            rtol=cfg["rtol"],
        )
        targets.append(
            {
                "eps": eps,
                "target": target,
                "steps_ramp": fs.steps,
                "steps_constant": _constant_steps(Tc, Lc, target),
                "solved": {str(T): v for T, v in fs.losses.items()},
                "kkt": fs.result.projected_gradient,
            }
        )
        arrays[f"ramp{len(targets) - 1}_etas"] = fs.result.etas
        arrays[f"ramp{len(targets) - 1}_batches"] = fs.result.batches
    meta = {
        "samples": S,
        "T_ref": T_ref,
        "L_ref": L_ref,
        "constant": {str(T): const[T].loss for T in Tc},
        "constant_kkt": max(const[T].projected_gradient for T in Tc),
        "joint": {str(T): joint[T].loss for T in sorted(joint)},
        "joint_kkt": max(joint[T].projected_gradient for T in joint),
        "replayed": replay,
        "replay_T": ref_T,
        "targets": targets,
        "seconds": time.perf_counter() - t0,
    }
    save_result(
        _path(results_dir, cfg, phase, "frontier"),
        arrays,
        meta,
        config=_key(cfg, phase, "frontier"),
    )
    return {"seconds": meta["seconds"]}


def _constant_steps(Tc: np.ndarray, Lc: np.ndarray, target: float) -> float:
    """Fewest steps of a constant batch reaching ``target``: the smallest grid T that does,
    interpolated in log-log with its smaller neighbour (which does not)."""
    ok = np.flatnonzero(Lc <= target * (1 + 1e-9))
    j = int(ok[0])
    if j == 0:
        return float(Tc[0])
    x0, x1 = math.log(Tc[j - 1]), math.log(Tc[j])
    y0, y1 = math.log(Lc[j - 1]), math.log(Lc[j])
    if y0 <= y1:
        return float(Tc[j])
    return float(math.exp(x0 + (math.log(target) - y0) * (x1 - x0) / (y1 - y0)))


# ----------------------------------------------------------------------------- analysis
def batch_shape(res: ScheduleResult, form: str, window, plateau_window) -> dict[str, Any]:
    """m(t) read off one joint optimum (segment values at their centres t/T).

    ``form`` "decay": m ∝ (1 − t/T)^γ fitted over ``window`` (γ = the fit's exponent);
    "excess": m/m_p − 1 ∝ (1 − t/T)^(−γ) over the points of ``window`` with m/m_p − 1 > 2 %,
    m_p the median over ``plateau_window``. Also the peak, its position and m(0)/m_peak."""
    T = res.etas.size
    _, m = _segment_values(res)
    x = segment_centers(T, m.size)
    lo, hi = window
    sel = (x >= lo) & (x <= hi)
    plo, phi = plateau_window
    plateau = float(np.median(m[(x >= plo) & (x <= phi)]))
    fit = None
    if form == "decay" and sel.sum() >= 3:
        fit = power_law_fit(1 - x[sel], m[sel]).as_dict()
    elif form == "excess":
        excess = m / plateau - 1
        sel &= excess > 0.02
        if sel.sum() >= 3:
            fit = power_law_fit(1 - x[sel], excess[sel]).negated().as_dict()
    return {
        "T": T,
        "fit": fit,
        "plateau": plateau,
        "peak": float(m.max()),
        "peak_frac": float(x[np.argmax(m)]),
        "start_ratio": float(m[0] / m.max()),
        "end": float(m[-1]),
        "min": float(m.min()),
    }


def _phase_summary(cfg: dict[str, Any], results_dir: Path, ph: str) -> dict[str, Any]:
    joint_c, const_c = _chains(cfg, ph)
    joint = find_chain(results_dir, GROUP, joint_c)
    const = find_chain(results_dir, GROUP, const_c)
    out: dict[str, Any] = {"label": setting_label(cfg["settings"][ph])}
    Ts = sorted(set(joint) & set(const))
    out["horizons"] = [
        {
            "T": T,
            "loss": joint[T].loss,
            "loss_constant": const[T].loss,
            "gain": joint[T].loss / const[T].loss - 1,
            "kkt": joint[T].projected_gradient,
            "budget_residual": abs(joint[T].budget_residual) / joint[T].config["samples"],
            "iterations": joint[T].iterations,
            "seconds": joint[T].wall_time,
            "shape": batch_shape(
                joint[T], _FORMS[ph], cfg["shape_window"][ph], cfg["plateau_window"]
            ),
        }
        for T in Ts
    ]
    got = load_valid(_path(results_dir, cfg, ph, "analysis"), config=_key(cfg, ph, "analysis"))
    if got is not None:
        meta = got[1]
        out["rounding"] = meta["rounding"]
        h = meta["hessian"]
        w = np.asarray(h["eigenvalues"])
        out["hessian"] = {
            **{k: h[k] for k in ("T", "K", "soft_align", "stiff_align", "soft_batch_part")},
            "n": int(w.size),
            "soft": float(w[0]),
            "stiff": float(w[-1]),
            "ratio": float(w[0] / w[-1]),
            "n_soft": int(np.sum(w < 1e-3 * w[-1])),
            "profile_soft": float(np.max(np.abs(h["profile_soft"]))),
            "profile_stiff": float(np.max(np.abs(h["profile_stiff"]))),
        }
    got = load_valid(_path(results_dir, cfg, ph, "frontier"), config=_key(cfg, ph, "frontier"))
    if got is not None:
        arrays, meta = got
        c = {int(T): v for T, v in meta["constant"].items()}
        L = np.array(list(c.values()))
        out["frontier"] = {
            **{k: meta[k] for k in ("samples", "T_ref", "L_ref", "replay_T", "targets")},
            "spread": float(L.max() / L.min() - 1),
            "constant": c,
            "joint": {int(T): v for T, v in meta["joint"].items()},
            "replayed": {int(T): v for T, v in meta["replayed"].items()},
            "kkt": max(meta["constant_kkt"], meta["joint_kkt"]),
        }
        last = len(meta["targets"]) - 1
        m = arrays[f"ramp{last}_batches"]
        t = (np.arange(m.size) + 0.5) / m.size
        sel = (t >= 0.05) & (t <= 0.9)
        out["frontier"]["ramp"] = {
            "T": int(m.size),
            "fit": power_law_fit(t[sel], m[sel]).as_dict() if sel.sum() >= 3 else None,
            "first": float(m[0]),
            "last": float(m[-1]),
        }
    return out


_FORMS = {"easy": "decay", "hard": "excess"}


def summarize(cfg: dict[str, Any], results_dir: Path) -> dict[str, Any]:
    """Per phase: horizons (gain, KKT, budget, m(t) fits), Hessian, rounding, frontier."""
    results_dir = Path(results_dir)
    phases = {ph: _phase_summary(cfg, results_dir, ph) for ph in PHASES}
    return {"phases": phases, "readme": _readme(cfg, phases)}


def _exponents(ph: dict[str, Any]) -> list[tuple[int, float]]:
    return [(h["T"], h["shape"]["fit"]["exponent"]) for h in ph["horizons"] if h["shape"]["fit"]]


def _steps_text(fr: dict[str, Any]) -> str:
    """The fewest steps to each target: constant batch against the optimal ramp."""
    parts = []
    for t in fr["targets"]:
        label = "its loss" if t["eps"] == 0 else f"that loss + {t['eps']:.0%}"
        fewer = fr["T_ref"] / t["steps_constant"]
        parts.append(
            f"to reach {label} a constant batch needs {t['steps_constant']:.0f} steps"
            + (f" ({fewer:.3g}× fewer than T_ref)" if fewer > 1.001 else "")
            + ", the optimal ramp "
            f"{t['steps_ramp']} ({t['steps_constant'] / t['steps_ramp']:.2f}× fewer than the "
            "constant batch)"
        )
    return "; ".join(parts)


def _ratio_text(x: float) -> str:
    return f"{x - 1:+.1e}" if x < 10 else "unstable (L ≥ 10× the optimum)"


def _readme(cfg: dict[str, Any], phases: dict[str, dict[str, Any]]) -> str:
    lines = [
        "## Batch-size schedules",
        "",
        f"Joint (η_t, m_t) optima under a sample budget (mean batch m̄ = {cfg['mean_batch']}, "
        f"η ≤ {cfg['eta_max']:g}, K piecewise-constant controls; `optimize_schedule(optimize="
        '("eta", "batch"))`). The paper: in the easy phase the loss at fixed S is degenerate in '
        "the batch (only η/m per sample matters), so batch ramps save steps; in the hard phase "
        "η is pinned by stability and small batches win per sample.",
        "",
    ]
    head = ("phase", "T", "L*(T) joint", "constant m̄", "gain", "m(t) exponent", "KKT")
    lines += md_table((*head, "rounding cost"), _horizon_cells(phases))
    lines.append("")
    for ph, s in phases.items():
        txt = [f"**{ph.capitalize()}** ({s['label']}):"]
        exps = _exponents(s)
        if exps:
            form = (
                "m ∝ (1 − t/T)^γ over the decay"
                if _FORMS[ph] == "decay"
                else "m/m_plateau − 1 ∝ (1 − t/T)^−γ over the final ramp"
            )
            w = cfg["shape_window"][ph]
            txt.append(
                f"optimal m(t): {form} (t/T ∈ [{w[0]}, {w[1]}]), γ = "
                + " → ".join(f"{g:.2f} (T={T})" for T, g in exps)
                + "."
            )
        hs = s["horizons"]
        if hs:
            txt.append(
                f"Gain of the optimal m(t) over the constant batch at the same T and S: "
                f"{min(h['gain'] for h in hs):+.2e} … {max(h['gain'] for h in hs):+.2e}; budget "
                f"residual ≤ {max(h['budget_residual'] for h in hs):.0e}·S, KKT residual ≤ "
                f"{max(h['kkt'] for h in hs):.0e}."
            )
        if "rounding" in s:
            r = s["rounding"].values()
            txt.append(
                "Integer batches (cumulative rounding, same total): "
                f"{max(x['rescaled_rates'] for x in r):+.1e} in L(T) at most with the rates "
                f"rescaled to keep η/m, {max(x['same_rates'] for x in r):+.1e} with the rates "
                "unchanged."
            )
        if "hessian" in s:
            h = s["hessian"]
            txt.append(
                f"Hessian of the Lagrangian in (log η, log m) on the budget (T = {h['T']}, "
                f"K = {h['K']}): {h['n_soft']} of {h['n']} eigenvalues below 10⁻³ of the "
                f"largest; softest/stiffest = {h['ratio']:.1e}; the softest direction lies "
                f"{h['soft_align']:.0%} in the η/m-preserving directions; log L moves by "
                f"{h['profile_soft']:.1e} along it over ±0.5 (stiffest: {h['profile_stiff']:.1e})."
            )
        if "frontier" in s:
            f = s["frontier"]
            c = f["constant"]
            Ts = sorted(c)
            rep = f["replayed"]
            S = f["samples"]
            txt.append(
                f"At fixed S = {S}: constant batches m = S/T from {S / Ts[-1]:g} "
                f"to {S / Ts[0]:g} (η(t) optimized per m) span {f['spread']:.2%} in L "
                f"(m = 1: {c[Ts[-1]]:.6g}, m = {f['samples'] / Ts[0]:g}: {c[Ts[0]]:.6g}); the "
                f"per-sample schedule of m = {f['samples'] / f['replay_T']:g} replayed at every "
                f"m without re-optimizing: "
                + ", ".join(
                    f"m = {S / T:g}: {_ratio_text(rep[T] / c[f['replay_T']])}"
                    for T in Ts[::-1]
                    if math.log2(S / T) % 1 < 1e-6
                )
                + f". Best constant batch m = {S / f['T_ref']:g} (T_ref = {f['T_ref']} steps): "
                + _steps_text(f)
                + "."
            )
            r = f["ramp"]
            if r["fit"]:
                txt.append(
                    f"That ramp (T = {r['T']}, mean batch {S / r['T']:.3g}): m from "
                    f"{r['first']:.3g} to {r['last']:.3g}, m ∝ (t/T)^p over t/T ∈ [0.05, 0.9] "
                    f"with p = {fmt_fit(r['fit'])}."
                )
        if ph == "easy" and hs:
            txt.append(
                "In the easy phase m(t) is pinned only by the weak (η/m-breaking) curvature: "
                "its flat directions leave segment-to-segment ripples of a few percent within "
                "the solver's tolerance, and γ still drifts with T."
            )
        lines += [" ".join(txt), ""]
    return "\n".join(lines).rstrip()


def _horizon_cells(phases: dict[str, dict[str, Any]]):
    """Rows of the per-horizon table: joint optimum vs constant batch at each (phase, T)."""
    for ph, s in phases.items():
        for h in s["horizons"]:
            rnd = s.get("rounding", {}).get(str(h["T"]), {}).get("rescaled_rates", math.nan)
            yield (
                ph,
                h["T"],
                f"{h['loss']:.6g}",
                f"{h['loss_constant']:.6g}",
                f"{h['gain']:+.2e}",
                fmt_fit(h["shape"]["fit"]),
                f"{h['kkt']:.0e}",
                f"{rnd:+.1e}",
            )


def table_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Measured vs predicted: degeneracy, Hessian, joint gain, steps saved, m(t) exponent."""
    rows = []
    for ph, s in summary["phases"].items():
        f = s.get("frontier")
        if f:
            rows.append(
                {
                    "quantity": f"loss spread over constant m = {_m_range(f)} at fixed S "
                    "(η optimized)",
                    "setting": f"{ph}, S = {f['samples']}",
                    "measured": f"{f['spread']:.2%}",
                    "T_range": f"T = {min(f['constant'])}…{max(f['constant'])}",
                    "drift": "—",
                    "predicted": "≈ 0 (degenerate)" if ph == "easy" else "small m win per sample",
                    "verdict": _verdict_spread(ph, f["spread"]),
                }
            )
            t = f["targets"][0]
            saved = f["T_ref"] / t["steps_ramp"]
            rows.append(
                {
                    "quantity": "steps saved by the optimal batch ramp (best constant-batch loss)",
                    "setting": f"{ph}, S = {f['samples']}",
                    "measured": f"{saved:.2f}× ({f['T_ref']} → {t['steps_ramp']} steps)",
                    "T_range": "—",
                    "drift": "; ".join(
                        f"+{x['eps']:.0%}: constant {x['steps_constant']:.0f}, ramp "
                        f"{x['steps_ramp']} steps"
                        for x in f["targets"][1:]
                    )
                    or "—",
                    "predicted": "> 1 (ramps save steps)" if ph == "easy" else "≈ 1",
                    "verdict": ("holds" if saved > 1.2 else "no saving")
                    if ph == "easy"
                    else ("holds" if saved < 1.2 else "saves steps"),
                }
            )
        h = s.get("hessian")
        if h:
            rows.append(
                {
                    "quantity": "(η, m) Hessian on the budget: softest / stiffest eigenvalue",
                    "setting": f"{ph}, T = {h['T']}, K = {h['K']}",
                    "measured": f"{h['ratio']:.1e} ({h['n_soft']}/{h['n']} below 1e-3; "
                    f"softest {h['soft_align']:.0%} along η/m)",
                    "T_range": "one T",
                    "drift": "—",
                    "predicted": "flat directions" if ph == "easy" else "no flat direction",
                    # easy: about one soft direction per batch control (K − 1 on the budget)
                    "verdict": "holds"
                    if (h["n_soft"] >= h["K"] // 2) == (ph == "easy")
                    else "does not hold",
                }
            )
        exps = _exponents(s)
        if exps:
            rows.append(
                {
                    "quantity": "optimal m(t) exponent γ (fixed T, S = m̄T)",
                    "setting": f"{ph}, "
                    + ("m ∝ (1−t/T)^γ" if _FORMS[ph] == "decay" else "m/m_p − 1 ∝ (1−t/T)^−γ"),
                    "measured": fmt_fit(s["horizons"][-1]["shape"]["fit"]),
                    "T_range": f"T = {exps[-1][0]}",
                    "drift": " → ".join(f"{g:.2f}" for _, g in exps),
                    "predicted": "— (measured)",
                    "verdict": "measured",
                }
            )
    return rows


def _m_range(f: dict[str, Any]) -> str:
    return f"{f['samples'] / max(f['constant']):g}…{f['samples'] / min(f['constant']):g}"


def _verdict_spread(ph: str, spread: float) -> str:
    if ph == "easy":
        return "holds (near-degenerate)" if spread < 0.05 else "does not hold"
    return "holds (not degenerate)" if spread > 0.1 else "does not hold"


# ----------------------------------------------------------------------------- figures
def plot(
    cfg: dict[str, Any], summary: dict[str, Any], results_dir: Path, out: Path
) -> list[Figure]:
    """m(t) and η(t) across horizons; the degeneracy; the fixed-S frontier and the ramp."""
    results_dir, out = Path(results_dir), Path(out)
    pyplot = plt()
    figs = []
    fig, axes = pyplot.subplots(2, 2, figsize=(12, 8))
    for col, ph in enumerate(PHASES):
        res = find_chain(results_dir, GROUP, _chains(cfg, ph)[0])
        for i, (T, r) in enumerate(sorted(res.items())):
            eta, m = _segment_values(r)
            x = segment_centers(T, m.size)
            axes[0, col].plot(x, m, color=f"C{i}", label=f"T = {T}: L = {r.loss:.4g}")
            axes[1, col].plot(x, eta, color=f"C{i}")
        axes[0, col].axhline(cfg["mean_batch"], color="gray", ls=":", lw=1)
        axes[1, col].set(xlabel="t/T", ylabel="rate η(t)", yscale="log")
        style(axes[0, col], ylabel="batch m(t)", title=f"{ph}: {summary['phases'][ph]['label']}")
        axes[0, col].title.set_fontsize(8)
    figs.append(
        finish(
            fig,
            out,
            "batch_schedules_shape.png",
            "Optimal batch m(t) and rate η(t) at fixed T and S = m̄T across horizons, both phases.",
            f"Optimal (η, m) at fixed T and S = {cfg['mean_batch']}T (dotted: the constant batch)",
            fontsize=None,
        )
    )
    fig, (a1, a2, a3) = pyplot.subplots(1, 3, figsize=(16, 4.5))
    for i, ph in enumerate(PHASES):
        s = summary["phases"][ph]
        f = s.get("frontier")
        if f:
            Ts = np.array(sorted(f["constant"]))
            S = f["samples"]
            c = np.array([f["constant"][T] for T in Ts])
            rep = np.array([f["replayed"][T] for T in Ts])
            a1.plot(S / Ts, c / c.min(), "o-", color=f"C{i}", label=f"{ph}: η optimized per m")
            ok = np.isfinite(rep) & (rep < 10 * c.max())
            a1.plot(
                (S / Ts)[ok],
                rep[ok] / c.min(),
                "x--",
                color=f"C{i}",
                label=f"{ph}: η/m of m = {S / f['replay_T']:g} replayed",
            )
        h = load_valid(_path(results_dir, cfg, ph, "analysis"), config=_key(cfg, ph, "analysis"))
        if h is not None:
            hess = h[1]["hessian"]
            w = np.sort(np.asarray(hess["eigenvalues"]))[::-1]
            a2.semilogy(np.arange(1, w.size + 1), np.abs(w) / w[0], color=f"C{i}", label=ph)
            steps = hess["profile_steps"]
            a3.plot(steps, hess["profile_soft"], color=f"C{i}", label=f"{ph}: softest")
            a3.plot(steps, hess["profile_stiff"], color=f"C{i}", ls=":", label=f"{ph}: stiffest")
    settings = {"xlabel": "constant batch m (T = S/m)", "ylabel": "L(T) / best"}
    title = f"degeneracy at fixed S = {cfg['samples']}"
    style(a1, xscale="log", yscale="log", title=title, **settings)
    title = f"(η, m) Hessian on the budget, T = {cfg['hessian_T']}"
    style(a2, xlabel="eigenvalue rank", ylabel="|eigenvalue| / largest", title=title)
    a3.set(
        xlabel="step s along the eigenvector (log units)",
        ylabel="Δ log L(T)",
        title="loss profile along the softest / stiffest direction",
    )
    a3.set_yscale("symlog", linthresh=1e-6)
    a3.yaxis.set_tick_params(labelsize=7)
    a3.legend(fontsize=7)
    figs.append(
        finish(
            fig,
            out,
            "batch_schedules_degeneracy.png",
            "Degeneracy: loss vs constant batch at fixed S (η re-optimized, and the η/m of one "
            "optimum replayed), the Hessian spectrum on the budget, loss along its softest axis.",
        )
    )
    fig, axes = pyplot.subplots(1, 3, figsize=(16, 4.5))
    for i, ph in enumerate(PHASES):
        f = summary["phases"][ph].get("frontier")
        if not f:
            continue
        ax = axes[i]
        Tc = sorted(f["constant"])
        Tj = sorted(f["joint"])
        ax.plot(Tc, [f["constant"][T] for T in Tc], "o-", color="C0", label="constant batch S/T")
        ax.plot(Tj, [f["joint"][T] for T in Tj], "s-", color="C3", label="optimal ramp m(t)")
        for t in f["targets"]:
            ax.axhline(t["target"], color="gray", ls=":", lw=1)
            ax.axvline(t["steps_ramp"], color="C3", ls=":", lw=1)
        title = f"{ph}: fixed S = {f['samples']} (dotted: targets, fewest ramp steps)"
        style(ax, 8, xscale="log", yscale="log", xlabel="steps T", ylabel="L(T)", title=title)
        ax.title.set_fontsize(9)
        got = load_valid(_path(results_dir, cfg, ph, "frontier"), config=_key(cfg, ph, "frontier"))
        if got is not None:
            k = len(f["targets"]) - 1
            m = got[0][f"ramp{k}_batches"]
            axes[2].plot(
                (np.arange(m.size) + 0.5) / m.size,
                m,
                color=f"C{i}",
                label=f"{ph}: T = {m.size} (target + {f['targets'][k]['eps']:.0%})",
            )
    title = "the fewest-steps ramp m(t)"
    style(axes[2], 8, xlabel="t/T", ylabel="batch m(t)", yscale="log", title=title)
    figs.append(
        finish(
            fig,
            out,
            "batch_schedules_steps.png",
            "Fixed sample budget: loss vs steps for constant batches and the optimal ramp, the "
            "fewest steps reaching the best constant-batch loss (+1 %), and that ramp m(t).",
        )
    )
    return figs


main = experiment_main(GROUP, __doc__)

if __name__ == "__main__":
    main()
