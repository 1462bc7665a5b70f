"""Preconditioned SGD: the phase diagram and loss exponents under P = diag(λ_k^−γ), and how far
Adam is from the idealized preconditioner (docs/theory.md §12).

Preconditioned SGD on (a, b) is SGD on the effective problem (a, b_eff = b(1 − γ)), so the
phase boundary moves to a = b(1 − γ) and the exponents are those of b_eff. For γ ∈ {0, 0.25,
0.5, 0.75} and a few (a, b) points chosen to cross the moved boundary, the optimal schedule is
solved at every horizon exactly as in the phase-diagram experiment (its ``run_point``: warm
starts, K = 100 controls, N = 10^12 modes via the binned tail), where the effective trace
Σ_k k^(−b_eff) is finite (b_eff ≥ 1.1); measured: the optimal-loss exponent, ξ, the plateau
η(0.2T)/η_c and the phase read off the measured schedule, against the effective-spectrum
predictions. Where b_eff ≤ 1 the trace diverges and the largest stable rate vanishes with N:
η_c is reported against N instead. Adam (optax, β₁ = 0.9 and β₁ = 0) trains on the sampled
model (Monte-Carlo, a learning-rate grid); its applied scale 1/(√ν̂_k + ε) is fitted against λ_k
(γ_Adam), and its loss is held against the exact recursion of the idealized γ = 1/2
preconditioner at the rate Adam's normalization implies, at its best constant rate and with its
optimal schedule.

Usage: ``python -m rfmodel.experiments.preconditioning [--quick] [--results DIR] [--out DIR]``
(or ``python experiments/preconditioning.py`` in the source checkout).
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import Problem
from ..control import optimize_schedule
from ..dynamics import loss_curve
from ..results import config_key, load_valid, save_result
from ..runner import Task
from ..scaling import max_rule_loss_exponent, theory_xi
from ._cli import experiment_main
from ._common import make_problem, plt, segment_centers, solve_seconds
from ._format import Figure, finish, fmt_fit, md_table, within
from .phase_diagram import analyze_point, point_path
from .phase_diagram import config as phase_config

__all__ = ["config", "tasks", "run_adam", "summarize", "plot", "table_rows", "main"]

GROUP = "preconditioning"
GAMMAS = (0.0, 0.25, 0.5, 0.75)
#: Solved where the effective trace is comfortably finite (b(1 − γ) ≥ this).
B_EFF_MIN = 1.1


def config(quick: bool) -> dict[str, Any]:
    """Points, γ values, the phase-diagram solver settings, the Adam comparison."""
    pd = phase_config(quick)
    if quick:
        points = [[1.5, 2.5]]
        adam = {"n_modes": 50, "T": 200, "seeds": 32, "lrs": [0.03, 0.1, 0.3]}
    else:
        # the hard and easy reference settings, and three points whose phase flips with γ
        points = [[1.5, 2.5], [2.5, 1.2], [2.0, 3.0], [3.0, 4.5], [1.5, 4.5]]
        adam = {"n_modes": 200, "T": 2000, "seeds": 256}
        adam["lrs"] = [round(float(x), 6) for x in np.geomspace(3e-3, 1.0, 11)]
    return {
        "points": points,
        "gammas": list(GAMMAS),
        "Ts": pd["Ts"],
        "base": pd["base"],
        "rule": pd["rule"],
        "maxiter": pd["maxiter"],
        "top": pd["top"],
        "eta_frac": pd["eta_frac"],
        "tolerance": pd["tolerance"],
        "trace_N": [10**4, 10**6, 10**8, 10**12],
        "adam": {"a": 1.5, "b": 2.5, "sigma": 0.5, "batch": 4, "b1": [0.9, 0.0], **adam},
        "quick": quick,
    }


def _b_eff(b: float, gamma: float) -> float:
    return b * (1 - gamma)


def _chain(cfg: dict[str, Any], a: float, b: float, gamma: float) -> dict[str, Any]:
    """A phase-diagram chain of a preconditioned point (its own key: role and γ)."""
    return {
        "name": f"a{round(a * 1000)}_b{round(b * 1000)}_g{round(gamma * 1000)}",
        "role": GROUP,
        "setting": {"a": a, "b": b, **cfg["base"], "precondition": gamma},
        "Ts": cfg["Ts"],
        "rule": cfg["rule"],
        "maxiter": cfg["maxiter"],
        "eta_frac": cfg["eta_frac"],
    }


def _cases(cfg: dict[str, Any]) -> list[tuple[float, float, float]]:
    return [(a, b, g) for a, b in cfg["points"] for g in cfg["gammas"]]


def _solvable(b: float, gamma: float) -> bool:
    return _b_eff(b, gamma) >= B_EFF_MIN


def _home(results_dir: Path) -> Path:
    """The folder the phase-diagram points of this experiment are saved in."""
    return Path(results_dir) / GROUP


def _load_point(results_dir: Path, chain: dict[str, Any]) -> dict[str, Any] | None:
    got = load_valid(point_path(_home(results_dir), chain), config=chain)
    return None if got is None else got[1]


# --------------------------------------------------------------------------- Adam
def _adam_key(cfg: dict[str, Any]) -> dict[str, Any]:
    return {**cfg["adam"], "revision": 1}


def _adam_path(results_dir: Path, cfg: dict[str, Any]) -> Path:
    return Path(results_dir) / GROUP / f"adam_{config_key(_adam_key(cfg))}"


def _fit_slope(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def run_adam(results_dir: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """Adam on the sampled model over a learning-rate grid (Monte-Carlo), its applied scale
    against λ, and the exact γ = 1/2 recursion beside it; saved as one JSON result."""
    import jax
    import optax

    from ..simulate import train_optax

    t0 = time.perf_counter()
    c = cfg["adam"]
    p = Problem(
        a=c["a"], b=c["b"], sigma=c["sigma"], n_modes=c["n_modes"], n_exact=c["n_modes"],
        batch=c["batch"],
    )  # fmt: skip
    half = dataclasses.replace(p, precondition=0.5)
    T, m = int(c["T"]), float(c["batch"])
    out: dict[str, Any] = {"runs": {}}
    for b1 in c["b1"]:
        runs = []
        for i, lr in enumerate(c["lrs"]):
            mc = train_optax(
                p, optax.adam(lr, b1=b1), T, jax.random.key(i), n_seeds=int(c["seeds"]),
                chunk=64, final_state=True,
            )  # fmt: skip
            nu = np.asarray(mc.state[0].nu).mean(axis=0) / (1 - 0.999**T)  # bias-corrected
            runs.append({"lr": lr, "mean": mc.mean, "sem": mc.sem, "nu": nu})
        ok = [r for r in runs if np.isfinite(r["mean"][-1])]
        best = min(ok, key=lambda r: r["mean"][-1])
        scale = 1.0 / (np.sqrt(best["nu"]) + 1e-8)  # optax's eps
        lam = p.lam
        # The rate Adam's normalization implies for the idealized P = λ^(−1/2): ν_k ≈ λ_k (L +
        # σ²)/m where noise dominates, so η_t = lr (1 − β₁) √(m/(L(t) + σ²)) with β₁ as the
        # heavy ball's momentum (docs/theory.md §12).
        L_adam = np.maximum(best["mean"][:-1], 0.0)
        implied = best["lr"] * (1 - b1) * np.sqrt(m / (L_adam + p.sigma**2))
        betas = None if b1 == 0 else np.full(T, b1)
        ideal = np.asarray(loss_curve(half, implied, betas=betas))
        n_top = max(3, lam.size // 10)
        out["runs"][str(b1)] = {
            "lrs": [r["lr"] for r in runs],
            "final": [float(r["mean"][-1]) for r in runs],
            "final_sem": [float(r["sem"][-1]) for r in runs],
            "best_lr": best["lr"],
            "curve": _log_thin(best["mean"]),
            "curve_sem": _log_thin(best["sem"]),
            "ideal_implied": _log_thin(ideal),
            "gamma_adam": -_fit_slope(lam, scale),
            "gamma_adam_top": -_fit_slope(lam[:n_top], scale[:n_top]),
            "gamma_adam_tail": -_fit_slope(lam[-5 * n_top :], scale[-5 * n_top :]),
            "scale": scale.tolist(),
            "ratio_implied": float(best["mean"][-1] / ideal[-1]),
            "max_log_ratio_implied": float(np.max(np.abs(np.log(best["mean"][1:] / ideal[1:])))),
        }
    steps_at = _log_steps(T)
    const = optimize_schedule(half, T, controls=1)
    opt = optimize_schedule(half, T, controls=64)
    sgd = optimize_schedule(p, T, controls=64)
    out.update(
        steps=steps_at.tolist(),
        lam=p.lam.tolist(),
        constant_half={
            "loss": const.loss,
            "eta": float(const.controls[0]),
            "curve": const.curve[steps_at].tolist(),
        },  # fmt: skip
        optimal_half={
            "loss": opt.loss,
            "converged": opt.converged,
            "curve": opt.curve[steps_at].tolist(),
        },  # fmt: skip
        optimal_sgd={
            "loss": sgd.loss,
            "converged": sgd.converged,
            "curve": sgd.curve[steps_at].tolist(),
        },  # fmt: skip
        sigma=p.sigma,
        seconds=time.perf_counter() - t0,
    )
    save_result(_adam_path(Path(results_dir), cfg), None, out, config=_adam_key(cfg))
    return {"seconds": out["seconds"]}


def _log_steps(T: int, n: int = 200) -> np.ndarray:
    return np.unique(np.r_[0, np.geomspace(1, T, n).round().astype(int)])


def _log_thin(x) -> list[float]:
    x = np.asarray(x, np.float64)
    return x[_log_steps(x.size - 1)].tolist()


def _load_adam(results_dir: Path, cfg: dict[str, Any]) -> dict[str, Any] | None:
    got = load_valid(_adam_path(Path(results_dir), cfg), config=_adam_key(cfg))
    return None if got is None else got[1]


# --------------------------------------------------------------------------- tasks
def tasks(cfg: dict[str, Any], results_dir: Path) -> list[Task]:
    """One phase-diagram point per solvable (a, b, γ), and the Adam comparison."""
    out = []
    for a, b, g in _cases(cfg):
        if not _solvable(b, g):
            continue
        ch = _chain(cfg, a, b, g)
        out.append(
            Task(
                "phase_diagram",
                "run_point",
                {"results_dir": str(_home(results_dir)), "chain": ch},
                name=f"{GROUP} a={a:g} b={b:g} γ={g:g}",
                cost=solve_seconds(make_problem(ch["setting"]).n_eff, cfg["Ts"], 15),
                done=_load_point(results_dir, ch) is not None,
            )
        )
    c = cfg["adam"]
    mc = len(c["lrs"]) * len(c["b1"]) * (c["seeds"] * c["T"] * c["n_modes"] * c["batch"] * 2e-9 + 3)
    out.append(
        Task(
            GROUP,
            "run_adam",
            {"results_dir": str(results_dir), "cfg": cfg},
            name=f"{GROUP}/adam",
            cost=mc + solve_seconds(c["n_modes"], [c["T"]] * 3, 100),
            done=_load_adam(results_dir, cfg) is not None,
        )
    )
    return out


# --------------------------------------------------------------------------- summary
def _analyze(cfg: dict[str, Any], results_dir: Path, a: float, b: float, g: float):
    """analyze_point with the predictions of the effective exponent b(1 − γ)."""
    ch = _chain(cfg, a, b, g)
    q = analyze_point(_load_point(results_dir, ch), ch, cfg)
    be = _b_eff(b, g)
    q.update(
        gamma=g, b_eff=be, theory_loss=max_rule_loss_exponent(a, be), theory_xi=theory_xi(a, be)
    )
    if "loss_fit" in q:
        q["loss_diff"] = q["loss_fit"]["exponent"] - q["theory_loss"]
        q["xi_diff"] = q["xi_fit"]["exponent"] - q["theory_xi"]
        pt = _load_point(results_dir, ch)
        u = np.asarray(pt["controls"][-1])
        q["schedule"] = {
            "T": pt["Ts"][-1],
            "t": segment_centers(pt["Ts"][-1], u.size).tolist(),
            "eta_over_eta_c": (u / q["eta_critical"]).tolist(),
        }
    return q


def summarize(cfg: dict[str, Any], results_dir: Path) -> dict[str, Any]:
    """Fits per (a, b, γ) against b_eff; η_c(N) where the trace diverges; the Adam numbers."""
    pts, trace = [], []
    for a, b, g in _cases(cfg):
        if _solvable(b, g):
            pts.append(_analyze(cfg, Path(results_dir), a, b, g))
            continue
        base = {**cfg["base"], "a": a, "b": b, "precondition": g}
        etas = [make_problem({**base, "n_modes": n}).eta_critical() for n in cfg["trace_N"]]
        trace.append({"a": a, "b": b, "gamma": g, "b_eff": _b_eff(b, g), "N": cfg["trace_N"],
                      "eta_critical": etas,
                      "slope": _fit_slope(np.array(cfg["trace_N"], float), np.array(etas)),
                      "predicted_slope": -(1 - _b_eff(b, g))})  # fmt: skip
    done = [q for q in pts if "loss_fit" in q]
    adam = _load_adam(Path(results_dir), cfg)
    out = {
        "points": pts,
        "trace": trace,
        "n_points": len(pts),
        "n_done": len(done),
        "phase_agree": sum(q["measured_phase"] == q["theory_phase"] for q in done),
        "adam": None if adam is None else {k: v for k, v in adam.items() if k != "lam"},
        "compute_seconds": float(sum(q.get("seconds", 0.0) for q in done))
        + (adam["seconds"] if adam else 0.0),
    }
    out["readme"] = _readme(cfg, out)
    return out


def _readme(cfg: dict[str, Any], s: dict[str, Any]) -> str:
    intro = (
        "P = diag(λ_k^−γ) in the eigenbasis: SGD on the effective exponent b_eff = b(1 − γ) "
        f"(docs/theory.md §12). Optimal schedules over T = {cfg['Ts'][0]}–{cfg['Ts'][-1]} "
        f"(phase-diagram solver), exponents fitted over the top {cfg['top']} horizons; "
        "predicted: r = (a − 1)/max(a, b_eff), ξ = max(0, 1 − b_eff/a), phase easy iff "
        "a > b_eff."
    )
    lines = ["## Preconditioned SGD", "", intro, ""]
    head = ("a", "b", "γ", "b_eff", "phase (pred / measured)", "r measured", "r predicted",
            "ξ measured", "ξ predicted", "η(0.2T)/η_c")  # fmt: skip
    rows = [
        (
            q["a"],
            q["b"],
            q["gamma"],
            f"{q['b_eff']:.3g}",
            f"{q['theory_phase']} / {q.get('measured_phase', '—')}",
            fmt_fit(q.get("loss_fit")),
            f"{q['theory_loss']:.3f}",
            fmt_fit(q.get("xi_fit")),
            f"{q['theory_xi']:.3f}",
            f"{q.get('eta_ratio', math.nan):.3f}",
        )  # fmt: skip
        for q in s["points"]
    ]
    lines += md_table(head, rows)
    if s["trace"]:
        lines += ["", "Divergent effective trace (b_eff ≤ 1.1: not solved): the largest stable "
                  "constant rate η_c against N (predicted η_c ~ N^−(1−b_eff))."]  # fmt: skip
        head = ("a", "b", "γ", "b_eff", *(f"η_c at N = {n:.0e}" for n in cfg["trace_N"]),
                "slope (pred)")  # fmt: skip
        lines += md_table(head, (
            (t["a"], t["b"], t["gamma"], f"{t['b_eff']:.3g}",
             *(f"{e:.3g}" for e in t["eta_critical"]),
             f"{t['slope']:.3f} ({t['predicted_slope']:.3f})") for t in s["trace"]))  # fmt: skip
    a = s["adam"]
    if a:
        lines += ["", _adam_text(cfg, a)]
    return "\n".join(lines)


def _adam_text(cfg: dict[str, Any], a: dict[str, Any]) -> str:
    c = cfg["adam"]
    parts = [
        f"Adam on the sampled model (a = {c['a']}, b = {c['b']}, σ = {c['sigma']}, N = "
        f"{c['n_modes']}, m = {c['batch']}, T = {c['T']}, {c['seeds']} seeds, learning rate "
        f"best of {len(c['lrs'])}): "
    ]
    for b1, r in a["runs"].items():
        parts.append(
            f"β₁ = {b1}: L(T) = {r['final'][r['lrs'].index(r['best_lr'])]:.4g} at lr = "
            f"{r['best_lr']:g}; applied scale 1/√ν̂ ∝ λ^−γ with γ_Adam = {r['gamma_adam']:.3f} "
            f"over all modes ({r['gamma_adam_top']:.3f} on the top tenth, "
            f"{r['gamma_adam_tail']:.3f} on the tail); L_Adam/L_ideal(implied rate) = "
            f"{r['ratio_implied']:.3f} at T (max |log ratio| along the run "
            f"{r['max_log_ratio_implied']:.2f}). "
        )
    parts.append(
        f"Exact γ = 1/2: best constant rate {a['constant_half']['loss']:.4g}, optimal schedule "
        f"{a['optimal_half']['loss']:.4g}; plain SGD, optimal schedule "
        f"{a['optimal_sgd']['loss']:.4g}."
    )
    return "".join(parts)


def _exponent_row(q: dict[str, Any]) -> dict[str, Any]:
    return dict(
        quantity="preconditioned optimal-loss exponent",
        setting=f"a={q['a']:g}, b={q['b']:g}, γ={q['gamma']:g} (b_eff={q['b_eff']:.3g})",
        measured=fmt_fit(q["loss_fit"]) + f"; phase {q['measured_phase']}",
        T_range=f"top {len(q['Ts'][-4:])} of {q['Ts'][0]}–{q['Ts'][-1]}",
        drift=" → ".join(f"{x:.3f}" for x in q["loss_local"]),
        predicted=f"{q['theory_loss']:.3f} (a−1)/max(a, b_eff); {q['theory_phase']}",
        verdict=within(q["loss_fit"]["exponent"], q["theory_loss"], 0.05),
    )


def _adam_row(b1: str, r: dict[str, Any]) -> dict[str, Any]:
    measured = f"{r['gamma_adam']:.3f} (top {r['gamma_adam_top']:.3f}, tail "
    return dict(
        quantity="Adam's preconditioner exponent γ_Adam",
        setting=f"β₁ = {b1}, a = 1.5, b = 2.5",
        measured=measured + f"{r['gamma_adam_tail']:.3f})",
        T_range="—",
        drift="—",
        predicted="1/2 where gradient noise dominates",
        verdict=within(r["gamma_adam"], 0.5, 0.1),
    )


def table_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Optimal-loss exponent and phase per (a, b, γ) against the effective-spectrum rule;
    Adam's preconditioner exponent against 1/2."""
    rows = [_exponent_row(q) for q in summary["points"] if "loss_fit" in q]
    adam = summary.get("adam") or {"runs": {}}
    return rows + [_adam_row(b1, r) for b1, r in adam["runs"].items()]


# --------------------------------------------------------------------------- figures
def plot(
    cfg: dict[str, Any], summary: dict[str, Any], results_dir: Path, out: Path
) -> list[Figure]:
    """The moved phase boundary with measured phases; exponents measured vs predicted; the
    optimal schedules per γ; Adam against the idealized preconditioner."""
    pyplot = plt()
    gammas = cfg["gammas"]
    fig, axes = pyplot.subplots(1, len(gammas), figsize=(4.2 * len(gammas), 4.2), sharey=True)
    pts = summary["points"]
    a_all = [p[0] for p in cfg["points"]]
    b_all = [p[1] for p in cfg["points"]]
    xs = np.linspace(1.0, max(a_all) + 0.5, 50)
    for ax, g in zip(axes, gammas, strict=True):
        ax.plot(xs, xs / (1 - g), "k--", lw=1, label="a = b(1 − γ)")
        ax.axhspan(0, 1 / (1 - g), color="0.85", label="b(1 − γ) ≤ 1: trace diverges")
        for q in (q for q in pts if q["gamma"] == g):
            meas = q.get("measured_phase", "—")
            ax.scatter(q["a"], q["b"], s=70, marker="o" if meas == "easy" else "s",
                       c="C1" if meas == "easy" else "C0" if meas == "hard" else "0.5",
                       edgecolors="k")  # fmt: skip
            if "loss_fit" in q:
                ax.annotate(f"r={q['loss_fit']['exponent']:.2f}\n({q['theory_loss']:.2f})",
                            (q["a"], q["b"]), textcoords="offset points", xytext=(6, 4),
                            fontsize=7)  # fmt: skip
        for t in (t for t in summary["trace"] if t["gamma"] == g):
            ax.scatter(t["a"], t["b"], s=50, marker="x", c="k")
        ax.set(xlim=(1.0, max(a_all) + 0.5), ylim=(1.0, max(b_all) + 0.5), xlabel="a",
               title=f"γ = {g:g}")  # fmt: skip
    axes[0].set_ylabel("b (data spectrum)")
    axes[0].legend(fontsize=7, loc="upper left")
    phase = finish(
        fig,
        out,
        "preconditioning_phase.png",
        "Phase diagram of preconditioned SGD in the data's (a, b) for each γ: the boundary "
        "a = b(1 − γ) (dashed), the region where the effective trace diverges (grey), and the "
        "phase read off each measured optimal schedule (orange circle easy, blue square hard; "
        "x: not solved, trace divergent), with the measured (predicted) loss exponent.",
    )
    fig, (ax_r, ax_s, ax_a) = pyplot.subplots(1, 3, figsize=(17, 5))
    for i, g in enumerate(gammas):
        qs = [q for q in pts if q["gamma"] == g and "loss_fit" in q]
        if qs:
            ax_r.errorbar([q["theory_loss"] for q in qs], [q["loss_fit"]["exponent"] for q in qs],
                          yerr=[q["loss_fit"].get("stderr", 0.0) for q in qs], fmt="o",
                          color=f"C{i}", label=f"γ = {g:g}")  # fmt: skip
    lim = [0.0, max([q["theory_loss"] for q in pts] + [0.1]) * 1.15]
    ax_r.plot(lim, lim, "k:", lw=1)
    ax_r.set(xlabel="predicted r = (a−1)/max(a, b(1−γ))", ylabel="measured r",
             title="optimal-loss exponent")  # fmt: skip
    ax_r.legend(fontsize=8)
    ref = cfg["points"][0]
    for i, g in enumerate(gammas):
        q = next((q for q in pts if [q["a"], q["b"]] == ref and q["gamma"] == g), None)
        if q and "schedule" in q:
            sch = q["schedule"]
            ax_s.plot(sch["t"], sch["eta_over_eta_c"], color=f"C{i}",
                      label=f"γ = {g:g} ({q['measured_phase']})")  # fmt: skip
    ax_s.set(xlabel="t/T", ylabel="η(t)/η_c", yscale="log",
             title=f"optimal schedule at T_max, a = {ref[0]}, b = {ref[1]}")  # fmt: skip
    ax_s.legend(fontsize=8)
    a = summary.get("adam")
    if a:
        steps = np.asarray(a["steps"])
        for i, (b1, r) in enumerate(a["runs"].items()):
            ax_a.plot(
                steps, r["curve"], color=f"C{i}", label=f"Adam β₁={b1} (MC, lr {r['best_lr']:g})"
            )
            ax_a.plot(steps, r["ideal_implied"], color=f"C{i}", ls=":",
                      label=f"γ = 1/2 exact, Adam's implied rate (β₁={b1})")  # fmt: skip
        for i, (k, lab) in enumerate((("constant_half", "γ = 1/2 exact, best constant rate"),
                                      ("optimal_half", "γ = 1/2 exact, optimal schedule"),
                                      ("optimal_sgd", "SGD exact, optimal schedule"))):  # fmt: skip
            ax_a.plot(steps, a[k]["curve"], color=f"C{i + 2}", ls="--", label=lab)
        ax_a.set(xscale="log", yscale="log", xlabel="t", ylabel="excess loss",
                 title="Adam vs the idealized preconditioner")  # fmt: skip
        ax_a.legend(fontsize=7)
    return [phase, finish(fig, out, "preconditioning_exponents.png", _EXPONENTS)]


_EXPONENTS = (
    "Measured optimal-loss exponents against the effective-spectrum prediction per γ; the "
    "optimal schedule (η/η_c) at the largest T for each γ on the first point; Adam "
    "(Monte-Carlo, best learning rate) against the exact γ = 1/2 recursion at Adam's implied "
    "rate, at its best constant rate and with its optimal schedule, and optimal plain SGD."
)


main = experiment_main(GROUP, __doc__)

if __name__ == "__main__":
    main()
