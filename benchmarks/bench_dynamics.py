"""Speed of the exact recursion and of Monte-Carlo SGD, against plain NumPy loops.

Prints, measured in one run (medians over repeats, after compilation):
- ``loss_curve`` forward and forward+gradient, seconds per step and ns per mode-step, at
  N = 1000 and N = 10 000 with T = 10^4; the autodiff oracle (``loss_curve_reference``) and a
  NumPy loop doing the same recursion, as ratios;
- momentum (docs/theory.md §4): ``loss_curve(..., betas=)`` forward and value+gradient in (η, β)
  against the SGD η-only ones, and the solvers' objectives
  (``dynamics.momentum.log_final_loss_and_grads``, gradients in η and β, against
  ``log_final_loss_and_grad``, neither with the batch gradient), as ratios (target: ≤ 2.5 at
  N = 10^4);
- Monte-Carlo SGD throughput (sample-steps per second) for 64 seeds at N = 1000, batch 8, and the
  same work in a NumPy loop, as a ratio.

Usage: ``python benchmarks/bench_dynamics.py [--T 10000] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from rfmodel import Problem
from rfmodel.dynamics import log_final_loss_and_grad, loss_curve, loss_curve_reference
from rfmodel.dynamics.momentum import log_final_loss_and_grads
from rfmodel.simulate import sgd


def median_time(fn, repeats: int) -> float:
    fn()  # compile / warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def median_ratio(fn, ref, repeats: int) -> float:
    """Median over ``repeats`` rounds of time(fn) / time(ref), the two run alternately in each
    round (so a change of load between them affects both)."""
    fn(), ref()  # compile / warm up
    ratios = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ref()
        t1 = time.perf_counter()
        fn()
        ratios.append((time.perf_counter() - t1) / (t1 - t0))
    return float(np.median(ratios))


def numpy_recursion(p: Problem, etas: np.ndarray) -> float:
    """The same recursion, one NumPy vector operation per step (the 'notebook' baseline)."""
    lam, c, wlam, s2, m = p.lam, p.c0.copy(), p.weight * p.lam, p.sigma**2, p.batch
    loss = wlam @ c
    for eta in etas:
        c = (1 - 2 * eta * lam + (1 + 1 / m) * (eta * lam) ** 2) * c + (eta**2 / m) * lam * (
            loss + s2
        )
        loss = wlam @ c
    return float(loss)


def numpy_sgd(p: Problem, etas: np.ndarray, n_seeds: int, rng: np.random.Generator) -> None:
    """Monte-Carlo SGD for all seeds at once, one NumPy step per time step."""
    m, n = int(p.batch), p.n_eff
    sqrt_lam = np.sqrt(p.lam)
    delta = np.tile(-np.sqrt(p.c0), (n_seeds, 1))
    for eta in etas:
        x = rng.standard_normal((n_seeds, m, n)) * sqrt_lam
        resid = np.einsum("smn,sn->sm", x, delta) - p.sigma * rng.standard_normal((n_seeds, m))
        delta -= (eta / m) * np.einsum("sm,smn->sn", resid, x)


def bench_recursion(n: int, T: int, r: int) -> list[tuple[str, float]]:
    """Median seconds of each way to run the recursion at N = n modes, T steps."""
    p = Problem(a=2.5, b=1.2, sigma=0.5, n_modes=n, batch=4, n_exact=n)
    etas = jnp.asarray(0.5 * (1 - np.arange(T) / T) + 0.01)
    fwd = jax.jit(lambda e: loss_curve(p, e)[-1])
    vg = jax.jit(jax.value_and_grad(lambda e: loss_curve(p, e)[-1]))
    vg_ref = jax.jit(jax.value_and_grad(lambda e: loss_curve_reference(p, e)[-1]))
    return [
        ("forward (loss_curve)", median_time(lambda: fwd(etas).block_until_ready(), r)),
        ("forward+grad (adjoint)", median_time(lambda: vg(etas)[1].block_until_ready(), r)),
        (
            "forward+grad (autodiff)",
            median_time(lambda: vg_ref(etas)[1].block_until_ready(), max(1, r // 2)),
        ),
        (
            "forward (NumPy loop)",
            median_time(lambda: numpy_recursion(p, np.asarray(etas)), max(1, r // 2)),
        ),
    ]


def bench_momentum(n: int, T: int, r: int) -> list[tuple[str, float]]:
    """Momentum over SGD cost ratios at N = n modes, T steps (one run, medians of r rounds, the
    two run alternately)."""
    p = Problem(a=2.5, b=1.2, sigma=0.5, n_modes=n, batch=4, n_exact=n)
    etas = jnp.asarray(0.5 * (1 - np.arange(T) / T) + 0.01)
    betas = jnp.full(T, 0.5)
    fwd = jax.jit(lambda e: loss_curve(p, e)[-1])
    fwd_m = jax.jit(lambda e, b: loss_curve(p, e, None, b)[-1])
    vg = jax.jit(jax.value_and_grad(lambda e: loss_curve(p, e)[-1]))
    vg_m = jax.jit(jax.value_and_grad(lambda e, b: loss_curve(p, e, None, b)[-1], argnums=(0, 1)))
    e_np, b_np = np.asarray(etas), np.asarray(betas)
    pairs = [
        ("forward", lambda: fwd(etas).block_until_ready(), lambda: fwd_m(etas, betas)),
        ("value+grad (jax.grad)", lambda: vg(etas)[1], lambda: vg_m(etas, betas)[1][1]),
        (  # like with like: ∂/∂(η, β) against ∂/∂η, no batch gradient on either side (the
            # solver asks for ∂/∂m only when it optimizes the batch)
            "solver objective",
            lambda: log_final_loss_and_grad(p, e_np),
            lambda: log_final_loss_and_grads(p, e_np, b_np, batch_grad=False),
        ),
    ]
    return [
        (
            name,
            median_ratio(
                lambda mom=mom: jax.block_until_ready(mom()),
                lambda base=base: jax.block_until_ready(base()),
                r,
            ),
        )
        for name, base, mom in pairs
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    T, r = args.T, args.repeats
    # 64-bit types on for the benchmark's own jax code too: jax.grad through the reference scan
    # is then float64 end to end, like rfmodel's adjoint (with x64 off its transpose was traced
    # in float32, and JAX warned that float64 was truncated)
    with jax.enable_x64(True):
        _run(T, r)


def _run(T: int, r: int) -> None:
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}, float64; T = {T}; medians of {r}\n"
    )
    print(f"{'N':>6s} {'what':28s} {'s/step':>10s} {'ns/mode-step':>13s} {'vs adjoint':>10s}")
    for n in (1000, 10_000):
        rows = bench_recursion(n, T, r)
        fwd, grad = rows[0][1], rows[1][1]
        for name, sec in rows:
            ref = grad if "grad" in name else fwd
            print(
                f"{n:6d} {name:28s} {sec / T:10.3e} {sec / (T * n) * 1e9:13.2f} {sec / ref:9.2f}x"
            )
    print("\nmomentum (η, β) over SGD (η), same N and T, alternating (target ≤ 2.5x at N = 10^4):")
    for n in (1000, 10_000):
        for name, ratio in bench_momentum(n, T, r):
            print(f"{n:6d} {name:28s} {ratio:9.2f}x")
    # Monte-Carlo throughput
    n, m, seeds, t_mc = 1000, 8, 64, 500
    p = Problem(a=2.5, b=1.2, sigma=0.5, n_modes=n, batch=m, n_exact=n)
    etas = np.full(t_mc, 0.3)
    key = jax.random.key(0)
    sec = median_time(lambda: sgd(p, etas, key, n_seeds=seeds), max(1, r // 2))
    sec_np = (
        median_time(lambda: numpy_sgd(p, etas[: t_mc // 5], seeds, np.random.default_rng(0)), 1) * 5
    )
    work = seeds * m * t_mc
    print(f"\nMonte-Carlo SGD, {seeds} seeds, N = {n}, batch {m}, T = {t_mc}:")
    print(f"  jax (vmap + scan): {work / sec:12.4g} sample-steps/s")
    print(
        f"  NumPy loop:        {work / sec_np:12.4g} sample-steps/s   "
        f"(jax is {sec_np / sec:.2f}x faster)"
    )


if __name__ == "__main__":
    main()
