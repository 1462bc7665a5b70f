"""CasADi + IPOPT direct-transcription baseline for the learning-rate optimal-control problem.

This is the reference method: the whole T-step expected-loss recursion (docs/theory.md §2) is
unrolled symbolically into one CasADi expression graph, the K piecewise-constant learning rates
are the decision variables, and IPOPT (MUMPS linear solver, limited-memory quasi-Newton Hessian)
minimizes the final loss subject to ``0 <= eta <= eta_max``.

**Batch mode** (the paper's joint learning-rate and batch-size problem, docs/theory.md §6): with
``samples=S`` the K piecewise-constant batch sizes m_j are decision variables too, with the
sample budget as an equality constraint ``sum_j n_j m_j = S`` (n_j = segment lengths, so
``sum_t m_t = S``; the paper uses S = T * mean batch), bounds ``batch_min <= m_j <= batch_max``
(the paper: [1, 10 * mean batch]) and ``0 <= eta_j <= eta_max``. Initial guess: constant
``eta = 0.5 * eta_max`` and ``m = S / T``.

Problem (docs/theory.md §1, §2, §6)
------------------------------------
Modes k = 1..N, lambda_k = k^(-b), C_k(0) = k^(b-a), label noise sigma, batch m::

    C_k(t+1) = [1 - 2 eta lambda_k + ((m+1)/m) eta^2 lambda_k^2] C_k(t)
               + (eta^2/m) lambda_k [L(t) + sigma^2],          L(t) = sum_k lambda_k C_k(t)

with eta = eta_t, t = 0..T-1; the objective is L(T).

Segment convention
------------------
Step t (0-based, t = 0..T-1) uses control ``j = floor(t * K / T)``, see :func:`segment_index`.
For K <= T every segment is non-empty and segment lengths differ by at most one (K = T gives one
control per step). Equivalently, segment j covers the steps
``ceil(j T / K) <= t < ceil((j+1) T / K)``.

Formulation choices
-------------------
* Graph: CasADi ``MX`` with vector-valued nodes (one length-N node per operation per step). On P1
  (N=500, T=1000) it builds in ~1 s and evaluates objective+gradient ~2x faster than a scalar
  ``SX`` graph (which takes ~15 s to build) and ~7x faster than an ``MX`` ``mapaccum`` over an
  ``SX`` step function. The per-step factor ``d_k(eta)`` is formed once per segment.
* Objective: ``log L(T)`` (monotone in L(T), scale-free, so IPOPT's tolerances are relative).
  L(T) > 0 always since ``d_k = (1 - eta lambda_k)^2 + eta^2 lambda_k^2 / m > 0``; unstable rates
  may overflow to ``inf``, which IPOPT treats as an evaluation error and backtracks from.
* Initial guess: constant ``eta = 0.5 * eta_max`` unless ``init`` is given.
* Tolerances: ``tol = 1e-10``, ``acceptable_tol = 1e-8`` (15 acceptable iterations), at most
  ``max_iter`` iterations.
* The reported ``loss`` is recomputed from the returned controls in numpy float64 with
  :func:`loss_numpy` (independent of the CasADi graph).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import casadi as ca
import numpy as np

__all__ = [
    "segment_index",
    "loss_numpy",
    "build_objective",
    "solve_ipopt",
    "eval_cost_ns_per_mode_step",
    "best_constant",
]

_CAP_STATUSES = ("Maximum_WallTime_Exceeded", "Maximum_CpuTime_Exceeded")


def segment_index(T: int, K: int) -> np.ndarray:
    """Control index used at each step: ``floor(t * K / T)`` for t = 0..T-1.

    >>> segment_index(10, 4).tolist()
    [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]
    >>> bool((segment_index(1000, 100) == np.repeat(np.arange(100), 10)).all())
    True
    """
    if not 1 <= K <= T:
        raise ValueError(f"need 1 <= K <= T, got K={K}, T={T}")
    return (np.arange(T, dtype=np.int64) * K) // T


def _modes(a: float, b: float, n_modes: int) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues lambda_k = k^(-b) and initial mode errors C_k(0) = k^(b-a)."""
    k = np.arange(1, n_modes + 1, dtype=np.float64)
    return k ** (-b), k ** (b - a)


def loss_numpy(
    a: float,
    b: float,
    sigma: float,
    batch: float | Sequence[float] | np.ndarray,
    n_modes: int,
    etas_per_step: Sequence[float] | np.ndarray,
) -> float:
    """Final excess loss L(T) of the exact recursion in float64, T = len(etas_per_step).

    ``batch``: one batch size, or one per step.

    >>> round(loss_numpy(2.5, 1.2, 0.0, 1e12, 1, [0.5, 0.5]), 12)  # (1 - 0.5)^4
    0.0625
    """
    lam, c = _modes(a, b, n_modes)
    etas = np.asarray(etas_per_step, dtype=np.float64)
    batches = np.broadcast_to(np.asarray(batch, dtype=np.float64), etas.shape)
    s2 = float(sigma) ** 2
    lam2 = lam * lam
    for eta, m in zip(etas, batches, strict=True):
        loss = float(lam @ c)
        d = 1.0 - 2.0 * eta * lam + ((m + 1.0) / m) * eta * eta * lam2
        c = d * c + (eta * eta / m) * lam * (loss + s2)
    return float(lam @ c)


def build_objective(
    a: float,
    b: float,
    sigma: float,
    batch: float,
    n_modes: int,
    T: int,
    K: int,
    *,
    batch_mode: bool = False,
) -> tuple[ca.MX, ca.MX]:
    """Unroll the T-step recursion symbolically; return (controls symbol, log L(T) expression).

    The controls are the K rates, or with ``batch_mode`` the K rates followed by the K batch
    sizes (``batch`` is then unused)."""
    lam_np, c0_np = _modes(a, b, n_modes)
    seg = segment_index(T, K)
    s2 = float(sigma) ** 2
    lam = ca.DM(lam_np)
    lam2 = ca.DM(lam_np * lam_np)
    x = ca.MX.sym("x", 2 * K if batch_mode else K)
    c: ca.MX | ca.DM = ca.DM(c0_np)
    d = noise = None
    for t in range(T):
        if t == 0 or seg[t] != seg[t - 1]:
            j = int(seg[t])
            e = x[j]
            m = x[K + j] if batch_mode else float(batch)
            e2 = e * e
            d = 1.0 - 2.0 * e * lam + ((m + 1.0) / m) * e2 * lam2
            noise = (e2 / m) * lam
        c = d * c + noise * (ca.dot(lam, c) + s2)
    return x, ca.log(ca.dot(lam, c))


def _initial_guess(
    init: float | Sequence[float] | np.ndarray | None, K: int, eta_max: float
) -> np.ndarray:
    """Constant 0.5*eta_max by default; a scalar gives a constant; clipped to the bounds."""
    if init is None:
        return np.full(K, 0.5 * eta_max)
    x0 = np.asarray(init, dtype=np.float64)
    if x0.ndim == 0:
        return np.full(K, float(np.clip(x0, 0.0, eta_max)))
    if x0.shape != (K,):
        raise ValueError(f"init must have shape ({K},), got {x0.shape}")
    return np.clip(x0, 0.0, eta_max)


def solve_ipopt(
    a: float,
    b: float,
    sigma: float,
    batch: float,
    n_modes: int,
    T: int,
    K: int,
    eta_max: float = 2.0,
    time_cap: float | None = None,
    init: float | Sequence[float] | np.ndarray | None = None,
    *,
    tol: float = 1e-10,
    max_iter: int = 5000,
    verbose: bool = False,
    samples: float | None = None,
    batch_min: float = 1.0,
    batch_max: float | None = None,
) -> dict[str, Any]:
    """Minimize L(T) over K piecewise-constant rates in [0, eta_max] with IPOPT.

    With ``samples=S`` (batch mode, the paper's formulation) also over K piecewise-constant
    batch sizes in [batch_min, batch_max] (default 10 S/T) with ``sum_t m_t = S`` held as an
    equality constraint; ``batch`` is then unused. The result then also has ``batches`` (K,)
    and ``budget_residual`` (``sum_t m_t - S`` of the returned, bound-clipped batches).

    ``time_cap`` (seconds) bounds the total wall time including graph construction: IPOPT gets
    ``max_wall_time = time_cap - (time spent unrolling the graph)`` (at least 1 ms); the short
    ``nlpsol`` construction that follows is not subtracted. ``hit_cap`` is True when IPOPT
    stopped on its wall- or CPU-time limit.

    Returns a dict with ``controls`` (K,), ``loss`` (L(T) recomputed by :func:`loss_numpy`),
    ``wall_time``, ``build_time``, ``solve_time``, ``iterations``, ``status`` (IPOPT return
    status), ``hit_cap``, ``success`` and ``ipopt_objective`` (log L(T) as seen by IPOPT).
    """
    t_start = time.perf_counter()
    batch_mode = samples is not None
    x, f = build_objective(a, b, sigma, batch, n_modes, T, K, batch_mode=batch_mode)
    seg = segment_index(T, K)
    nlp: dict[str, Any] = {"x": x, "f": f}
    if batch_mode:
        lengths = np.bincount(seg, minlength=K).astype(np.float64)
        nlp["g"] = ca.dot(ca.DM(lengths), x[K:])
        if batch_max is None:
            batch_max = 10.0 * float(samples) / T
    opts: dict[str, Any] = {
        "ipopt.linear_solver": "mumps",
        "ipopt.hessian_approximation": "limited-memory",
        "ipopt.tol": tol,
        "ipopt.acceptable_tol": max(tol, 1e-8),
        "ipopt.acceptable_iter": 15,
        "ipopt.max_iter": max_iter,
        "ipopt.print_level": 5 if verbose else 0,
        "ipopt.sb": "yes",
        "print_time": False,
    }
    if time_cap is not None:
        elapsed = time.perf_counter() - t_start
        opts["ipopt.max_wall_time"] = max(float(time_cap) - elapsed, 1e-3)
    solver = ca.nlpsol("ipopt_lr", "ipopt", nlp, opts)
    build_time = time.perf_counter() - t_start
    x0 = _initial_guess(init, K, eta_max)
    t_solve = time.perf_counter()
    if batch_mode:
        lo = np.concatenate([np.zeros(K), np.full(K, float(batch_min))])
        hi = np.concatenate([np.full(K, float(eta_max)), np.full(K, float(batch_max))])
        x0 = np.concatenate([x0, np.full(K, float(samples) / T)])
        sol = solver(x0=x0, lbx=lo, ubx=hi, lbg=float(samples), ubg=float(samples))
    else:
        sol = solver(x0=x0, lbx=0.0, ubx=float(eta_max))
    solve_time = time.perf_counter() - t_solve
    stats = solver.stats()
    xs = np.asarray(sol["x"], dtype=np.float64).ravel()
    controls = np.clip(xs[:K], 0.0, eta_max)
    extra: dict[str, Any] = {}
    per_step_batch: Any = batch
    if batch_mode:
        batches = np.clip(xs[K:], batch_min, batch_max)
        per_step_batch = batches[seg]
        extra = {
            "batches": batches,
            "budget_residual": float(np.sum(per_step_batch) - float(samples)),
        }
    loss = loss_numpy(a, b, sigma, per_step_batch, n_modes, controls[seg])
    status = str(stats.get("return_status", "unknown"))
    return {
        **extra,
        "controls": controls,
        "loss": loss,
        "wall_time": time.perf_counter() - t_start,
        "build_time": build_time,
        "solve_time": solve_time,
        "iterations": int(stats.get("iter_count", -1)),
        "status": status,
        "hit_cap": status in _CAP_STATUSES,
        "success": bool(stats.get("success", False)),
        "ipopt_objective": float(sol["f"]),
    }


def eval_cost_ns_per_mode_step(
    a: float,
    b: float,
    sigma: float,
    batch: float,
    n_modes: int,
    T: int,
    K: int,
    eta: float = 1.0,
    repeats: int = 7,
    *,
    batch_mode: bool = False,
) -> float:
    """Median time of one objective+gradient evaluation of the CasADi graph, in ns / (N*T).

    The Function maps the K controls to (log L(T), d log L(T) / d eta) by reverse-mode AD, the
    same quantities IPOPT requests each iteration. One warm-up call is excluded. With
    ``batch_mode`` the graph of the batch mode (K rates and K batches, all at ``batch``).
    """
    sym, f = build_objective(a, b, sigma, batch, n_modes, T, K, batch_mode=batch_mode)
    fg = ca.Function("f_grad", [sym], [f, ca.gradient(f, sym)])
    x = np.full(K, float(eta))
    if batch_mode:
        x = np.concatenate([x, np.full(K, float(batch))])
    fg(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fg(x)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) / (n_modes * T) * 1e9


def best_constant(
    a: float,
    b: float,
    sigma: float,
    batch: float,
    n_modes: int,
    T: int,
    eta_max: float = 2.0,
    n_grid: int = 41,
) -> tuple[float, float]:
    """Best constant rate on a coarse geometric grid in [eta_max/1000, eta_max]: (eta, L(T))."""
    grid = eta_max * np.geomspace(1e-3, 1.0, n_grid)
    with np.errstate(over="ignore", invalid="ignore"):
        losses = [loss_numpy(a, b, sigma, batch, n_modes, np.full(T, e)) for e in grid]
    losses_arr = np.where(np.isfinite(losses), losses, np.inf)
    i = int(np.argmin(losses_arr))
    return float(grid[i]), float(losses_arr[i])


def _run_case(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Solve one benchmark case and collect the checks and timings as a JSON-able dict."""
    res = solve_ipopt(**params)
    keys = ("a", "b", "sigma", "batch", "n_modes", "T")
    eta_c, loss_c = best_constant(**{k: params[k] for k in keys}, eta_max=params["eta_max"])
    ns = eval_cost_ns_per_mode_step(**{k: params[k] for k in (*keys, "K")})
    return {
        "case": name,
        "params": params,
        "loss": res["loss"],
        "loss_L0": loss_numpy(*(params[k] for k in keys[:5]), []),
        "ipopt_loss_exp_objective": float(np.exp(res["ipopt_objective"])),
        "best_constant_eta": eta_c,
        "best_constant_loss": loss_c,
        "beats_constant": bool(np.isfinite(res["loss"]) and res["loss"] < loss_c),
        "wall_time": res["wall_time"],
        "build_time": res["build_time"],
        "solve_time": res["solve_time"],
        "iterations": res["iterations"],
        "status": res["status"],
        "hit_cap": res["hit_cap"],
        "eval_ns_per_mode_step": ns,
        "controls": res["controls"].tolist(),
    }


P1: dict[str, Any] = {
    "a": 2.5,
    "b": 1.2,
    "sigma": 0.5,
    "batch": 5,
    "n_modes": 500,
    "T": 1000,
    "K": 100,
    "eta_max": 2.0,
}
P2: dict[str, Any] = {**P1, "a": 1.5, "b": 2.5}


if __name__ == "__main__":
    import sys

    cases = {"P1": P1, "P2": P2}
    names = sys.argv[1:] or ["P1"]
    print(json.dumps([_run_case(n, cases[n]) for n in names], indent=1))
