"""Monte-Carlo SGD on sampled Gaussian data: the empirical check of :mod:`rfmodel.dynamics`.

Each step draws a fresh minibatch, takes the SGD step
``w ← w − (η_t/m) Σ_i x_i (x_i·w − y_i)`` and records the *exact population* excess loss of the
iterate (an expectation over fresh data, so the only randomness left is the SGD trajectory).
Seeds run in parallel with ``vmap``; time runs in ``lax.scan``.

- Plain power-law problem: x ~ N(0, diag λ) in the eigenbasis, y = w*·x + σε; excess loss
  Σ_k λ_k (w_k − w*_k)², which :func:`rfmodel.dynamics.loss_curve` predicts exactly.
- Random-feature problem (:meth:`Problem.from_random_features`): x ∈ R^M, features ψ = F x, model
  w·ψ with w ∈ R^N; excess loss E[(w·ψ − w*·x)²] = (Fᵀw − w*)ᵀ Λ (Fᵀw − w*), computed in input
  space without the eigenbasis. Theory: ``loss_curve + problem.approx_error``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ._x64 import float64
from .dynamics import check_schedule
from .problem import Problem

__all__ = ["MonteCarlo", "sgd", "theory_excess"]


def _normal(key, shape):
    # Draws in float32 (then float64): generation dominates the cost and float32 halves it; a
    # 1e-7 rounding of each sample is far below the Monte-Carlo error. Iterates stay float64.
    return jax.random.normal(key, shape, dtype=jnp.float32).astype(jnp.float64)


@dataclass(frozen=True)
class MonteCarlo:
    """Result of :func:`sgd`: per-step mean and standard error over seeds (float64, (T+1,))."""

    mean: np.ndarray
    sem: np.ndarray
    n_seeds: int
    losses: np.ndarray | None = None  # (n_seeds, T+1) when ``keep_all``


def theory_excess(problem: Problem, curve) -> np.ndarray:
    """The quantity :func:`sgd` measures, from a :func:`~rfmodel.dynamics.loss_curve`."""
    return np.asarray(curve) + problem.approx_error


@partial(jax.jit, static_argnames=("batch",))
def _run_power_law(keys, lam, w_star, sigma, etas, batch):
    sqrt_lam = jnp.sqrt(lam)

    def one_seed(key):
        def step(delta, inp):
            eta, k = inp
            kx, ke = jax.random.split(k)
            x = _normal(kx, (batch, lam.shape[0])) * sqrt_lam
            eps = sigma * _normal(ke, (batch,))
            resid = x @ delta - eps  # prediction minus label, with Δ = w − w*
            delta = delta - (eta / batch) * (resid @ x)
            return delta, jnp.sum(lam * delta**2)

        delta0 = -w_star
        step_keys = jax.random.split(key, etas.shape[0])
        _, losses = jax.lax.scan(step, delta0, (etas, step_keys))
        return jnp.concatenate([jnp.sum(lam * delta0**2)[None], losses])

    return jax.vmap(one_seed)(keys)


@partial(jax.jit, static_argnames=("batch",))
def _run_features(keys, proj, lam_x, w_star, sigma, etas, batch):
    sqrt_lam = jnp.sqrt(lam_x)

    def excess(w):
        r = proj.T @ w - w_star
        return jnp.sum(lam_x * r**2)

    def one_seed(key):
        def step(w, inp):
            eta, k = inp
            kx, ke = jax.random.split(k)
            x = _normal(kx, (batch, lam_x.shape[0])) * sqrt_lam
            y = x @ w_star + sigma * _normal(ke, (batch,))
            psi = x @ proj.T
            w = w - (eta / batch) * ((psi @ w - y) @ psi)
            return w, excess(w)

        w0 = jnp.zeros(proj.shape[0])
        step_keys = jax.random.split(key, etas.shape[0])
        _, losses = jax.lax.scan(step, w0, (etas, step_keys))
        return jnp.concatenate([excess(w0)[None], losses])

    return jax.vmap(one_seed)(keys)


def _check_sample_memory(problem: Problem, chunk: int) -> None:
    """Refuse before allocating: one step draws chunk × batch samples of the input dimension."""
    from .problem import _available_memory

    dim = problem.features.lam_x.shape[0] if problem.features is not None else problem.n_eff
    need = 8 * 3 * chunk * int(problem.batch) * dim
    if need > _available_memory() / 2:
        raise ValueError(
            f"chunk={chunk} seeds × batch {int(problem.batch)} × {dim} dimensions need "
            f"~{need / 2**30:.3g} GiB per step, more than half of this machine's memory: pass a "
            "smaller chunk (or sample fewer modes)"
        )


@float64
def sgd(
    problem: Problem,
    etas,
    key: jax.Array,
    *,
    n_seeds: int = 64,
    chunk: int | None = None,
    keep_all: bool = False,
    progress: bool = False,
) -> MonteCarlo:
    """Run minibatch SGD under the schedule ``etas`` for ``n_seeds`` independent seeds.

    Args:
        problem: an unbinned :class:`Problem` (every weight 1) or a random-feature problem.
            Its ``batch`` must be an integer.
        etas: per-step learning rates, shape ``(T,)``.
        key: a ``jax.random`` key; the result is a pure function of it.
        n_seeds: number of independent SGD runs (≥ 2, for a standard error).
        chunk: seeds run together in one ``vmap`` (memory knob); default all.
        keep_all: also return every seed's curve.
        progress: show a progress bar over seed chunks.

    Returns:
        :class:`MonteCarlo` with the mean excess loss over seeds and its standard error.
    """
    check_schedule(etas)
    if problem.binned:
        raise ValueError(
            "problem must be unbinned for Monte-Carlo SGD (a binned tail is a "
            f"theory device); got n_modes={problem.n_modes} > n_exact="
            f"{problem.n_exact}. Use n_exact >= n_modes."
        )
    if problem.batch != int(problem.batch):
        raise ValueError(f"problem.batch must be an integer for sampling; got {problem.batch}")
    if not isinstance(n_seeds, int | np.integer) or n_seeds < 2:
        raise ValueError(f"n_seeds must be an integer >= 2; got n_seeds={n_seeds!r}")
    chunk = n_seeds if chunk is None else int(chunk)
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1; got chunk={chunk}")
    _check_sample_memory(problem, min(chunk, n_seeds))
    etas = jnp.asarray(etas, jnp.float64)
    batch = int(problem.batch)
    keys = jax.random.split(key, n_seeds)
    if problem.kind == "random_features":
        rf = problem.features
        args = (jnp.asarray(rf.proj), jnp.asarray(rf.lam_x), jnp.asarray(rf.w_star), rf.sigma, etas)
        run = _run_features
    else:
        args = (jnp.asarray(problem.lam), jnp.sqrt(jnp.asarray(problem.c0)), problem.sigma, etas)
        run = _run_power_law
    starts = range(0, n_seeds, chunk)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="Monte-Carlo SGD", unit="chunk")
    losses = np.concatenate(
        [np.asarray(run(keys[s : s + chunk], *args, batch=batch)) for s in starts]
    )
    mean = losses.mean(axis=0)
    sem = losses.std(axis=0, ddof=1) / np.sqrt(n_seeds)
    return MonteCarlo(mean=mean, sem=sem, n_seeds=n_seeds, losses=losses if keep_all else None)
