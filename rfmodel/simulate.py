"""Monte-Carlo SGD on sampled Gaussian data: the empirical check of :mod:`rfmodel.dynamics`.

Each step draws a fresh minibatch of m_t samples, forms the minibatch gradient
``g = (1/m_t) Σ_i x_i (x_i·w − y_i)`` and takes the heavy-ball step of ``optax.sgd`` (docs/theory.md
§4): ``v ← β_t v + g``, ``w ← w − η_t v`` with v(0) = 0, which is plain SGD ``w ← w − η_t g`` at
β_t = 0. It records the *exact population* excess loss of the iterate (an expectation over fresh
data, so the only randomness left is the SGD trajectory). Seeds run in parallel with ``vmap``;
time runs in ``lax.scan``.

Per-step batch sizes keep static shapes: the sizes are grouped into a few buckets (powers of two,
capped at the largest m_t); a step draws its bucket's number of samples, selected by
``lax.switch`` on the step's bucket (the same for every seed, so it stays a real branch under
``vmap``), and masks the samples beyond m_t. The gradient is exact; at most half the draws are
wasted. A constant batch is one bucket with no waste.

:func:`train_optax` runs any optax optimizer on the same sampled data (e.g. the exported
``schedules.to_optax_sgd``), so that training as users do it can be held against the theory.

- Plain power-law problem: x ~ N(0, diag λ) in the eigenbasis, y = w*·x + σε; excess loss
  Σ_k λ_k (w_k − w*_k)², which :func:`rfmodel.dynamics.loss_curve` predicts exactly.
- Random-feature problem (:meth:`Problem.from_random_features`): x ∈ R^M, features ψ = F x, model
  w·ψ with w ∈ R^N; excess loss E[(w·ψ − w*·x)²] = (Fᵀw − w*)ᵀ Λ (Fᵀw − w*), computed in input
  space without the eigenbasis. Theory: ``loss_curve + problem.approx_error``.

:func:`sgd` also samples per-step label noise (``noise``: update t's labels carry ε ~ N(0, σ_t²),
docs/theory.md §10), records the loss of an averaged iterate (``average``: w̄ ← (1 − τ_t) w̄ +
τ_t w, §11) and runs preconditioned SGD on the data's own spectrum for a
``Problem(..., precondition=γ)`` (the gradient multiplied by P = diag(λ_k^−γ), §12).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._x64 import float64
from .dynamics import check_schedule
from .dynamics.momentum import check_betas
from .problem import Problem

__all__ = ["MonteCarlo", "sgd", "train_optax", "theory_excess"]


def _normal(key, shape):
    # Draws in float32 (then float64): generation dominates the cost and float32 halves it; a
    # 1e-7 rounding of each sample is far below the Monte-Carlo error. Iterates stay float64.
    return jax.random.normal(key, shape, dtype=jnp.float32).astype(jnp.float64)


@dataclass(frozen=True)
class MonteCarlo:
    """Result of :func:`sgd` and :func:`train_optax`: per-step mean and standard error over seeds
    (float64, (T+1,))."""

    mean: np.ndarray
    sem: np.ndarray
    n_seeds: int
    losses: np.ndarray | None = None  # (n_seeds, T+1) when ``keep_all``
    state: Any = None  # the optimizers' final states, stacked over seeds (``final_state``)


def theory_excess(problem: Problem, curve) -> np.ndarray:
    """The quantity :func:`sgd` measures, from a :func:`~rfmodel.dynamics.loss_curve`."""
    return np.asarray(curve) + problem.approx_error


def _buckets(batches: np.ndarray) -> tuple[tuple[tuple[int, bool], ...], np.ndarray]:
    """Sample counts drawn per step (powers of two capped at max m; one size if m is constant),
    each with whether some step in it uses fewer samples (then masked), and each step's bucket."""
    top = int(batches.max())
    sizes = np.minimum(2 ** np.ceil(np.log2(batches)).astype(np.int64), top)
    counts = np.unique(sizes)
    index = np.searchsorted(counts, sizes).astype(np.int32)
    buckets = tuple((int(c), bool(np.any(batches[sizes == c] < c))) for c in counts)
    return buckets, index


def _model(kind: str, model, shifted: bool = False):
    """(draw(key, size) -> (features ψ, labels y), excess loss of the iterate, initial iterate).

    ``model``: (λ, w*, σ) for ``kind="power_law"`` (ψ = x ~ N(0, diag λ)), or (F, λ_x, w*, σ) for
    ``kind="random_features"`` (x ∈ R^M, ψ = F x, excess (Fᵀw − w*)ᵀ Λ (Fᵀw − w*)). ``shifted``
    (power law only): iterate Δ = w − w* from −w*, labels σε (saves a product per sample).
    """
    if kind == "power_law":
        lam, w_star, sigma = model
        scale, proj, lam_x = jnp.sqrt(lam), None, lam
    else:
        proj, lam_x, w_star, sigma = model
        scale = jnp.sqrt(lam_x)
    shifted = shifted and proj is None

    def draw(key, size, sigma_t=None):
        kx, ke = jax.random.split(key)
        x = _normal(kx, (size, scale.shape[0])) * scale
        noise = (sigma if sigma_t is None else sigma_t) * _normal(ke, (size,))
        if shifted:
            return x, noise
        return (x if proj is None else x @ proj.T), x @ w_star + noise

    def excess(w):
        r = w if shifted else (w if proj is None else proj.T @ w) - w_star
        return jnp.sum(lam_x * r**2)

    w0 = jnp.zeros(w_star.shape[0] if proj is None else proj.shape[0])
    return draw, excess, (w0 - w_star if shifted else w0)


@partial(jax.jit, static_argnames=("kind", "buckets", "momentum"))
def _run(keys, model, etas, betas, batches, bucket, kind, buckets, momentum, extra=None):
    """Heavy-ball SGD for each key, per-step (η, β, m, bucket): (seeds, T+1) excess losses.

    ``buckets``: (sample count, whether some step of the bucket uses fewer samples) pairs.
    ``extra``: ``None`` or a dict of the per-step label-noise stds ``"sigma"`` (T,), the
    preconditioner ``"precond"`` (N,) and the averaging weights ``"tau"`` (T,; the losses are
    then the averaged iterate's), each optional.
    """
    draw, excess, w0 = _model(kind, model, shifted=True)
    extra = extra or {}
    sigmas = extra.get("sigma", jnp.zeros_like(etas))
    taus = extra.get("tau", jnp.ones_like(etas))
    precond = extra.get("precond")

    def grad(size, masked, w, key, m, sig):
        psi, y = draw(key, size, sig if "sigma" in extra else None)
        resid = psi @ w - y
        if masked:
            resid = jnp.where(jnp.arange(size) < m, resid, 0.0)  # the step's m_t samples only
        g = (resid @ psi) / m
        return g if precond is None else precond * g  # preconditioned SGD (§12)

    branches = [partial(grad, size, masked) for size, masked in buckets]

    def one_seed(key):
        def step(carry, inp):
            w, v, wbar = carry
            eta, beta, m, b, k, sig, tau = inp
            g = (
                branches[0](w, k, m, sig)
                if len(branches) == 1
                else jax.lax.switch(b, branches, w, k, m, sig)
            )
            v = beta * v + g if momentum else g
            w = w - eta * v
            if "tau" not in extra:
                return (w, v, wbar), excess(w)
            wbar = (1.0 - tau) * wbar + tau * w  # the averaged iterate (§11)
            return (w, v, wbar), excess(wbar)

        step_keys = jax.random.split(key, etas.shape[0])
        inputs = (etas, betas, batches, bucket, step_keys, sigmas, taus)
        _, losses = jax.lax.scan(step, (w0, jnp.zeros_like(w0), w0), inputs)
        return jnp.concatenate([excess(w0)[None], losses])

    return jax.vmap(one_seed)(keys)


def _check_sample_memory(problem: Problem, chunk: int, batch: int) -> None:
    """Refuse before allocating: one step draws chunk × batch samples of the input dimension."""
    from .problem import available_memory

    dim = problem.features.lam_x.shape[0] if problem.features is not None else problem.n_eff
    need = 8 * 3 * chunk * int(batch) * dim
    if need > available_memory() / 2:
        raise ValueError(
            f"chunk={chunk} seeds × batch {int(batch)} × {dim} dimensions need "
            f"~{need / 2**30:.3g} GiB per step, more than half of this machine's memory: pass a "
            "smaller chunk (or sample fewer modes)"
        )


@partial(jax.jit, static_argnames=("kind", "optimizer", "steps", "batch", "final_state"))
def _run_optax(keys, model, kind, optimizer, steps, batch, final_state=False):
    """``optimizer`` on the squared loss ½ mean (ψ·w − y)² for each key; (seeds, T+1) losses
    (and the final optimizer states with ``final_state``)."""
    draw, excess, w0 = _model(kind, model)

    def one_seed(key):
        def step(carry, k):
            w, state = carry
            psi, y = draw(k, batch)
            updates, state = optimizer.update(((psi @ w - y) @ psi) / batch, state, w)
            w = optax.apply_updates(w, updates)
            return (w, state), excess(w)

        (_, state), losses = jax.lax.scan(
            step, (w0, optimizer.init(w0)), jax.random.split(key, steps)
        )
        curve = jnp.concatenate([excess(w0)[None], losses])
        return (curve, state) if final_state else curve

    return jax.vmap(one_seed)(keys)


def _sampled(problem: Problem, n_seeds, chunk) -> tuple[str, tuple, int]:
    """Checks shared by the samplers; the problem's kind and arrays, and the chunk size."""
    if problem.binned:
        raise ValueError(
            "problem must be unbinned for Monte-Carlo SGD (a binned tail is a "
            f"theory device); got n_modes={problem.n_modes} > n_exact="
            f"{problem.n_exact}. Use n_exact >= n_modes."
        )
    if not isinstance(n_seeds, int | np.integer) or n_seeds < 2:
        raise ValueError(f"n_seeds must be an integer >= 2; got n_seeds={n_seeds!r}")
    chunk = n_seeds if chunk is None else int(chunk)
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1; got chunk={chunk}")
    if problem.kind == "random_features":
        if problem.precondition:
            raise ValueError(
                "precondition is not sampled for a drawn random-feature problem (its "
                "preconditioner lives in the features' eigenbasis); got precondition="
                f"{problem.precondition:g}"
            )
        rf = problem.features
        model = (jnp.asarray(rf.proj), jnp.asarray(rf.lam_x), jnp.asarray(rf.w_star), rf.sigma)
        return "random_features", model, chunk
    lam, c0 = _data_arrays(problem)
    return "power_law", (jnp.asarray(lam), jnp.sqrt(c0), problem.sigma), chunk


def _data_arrays(problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    """The data's spectrum and initial errors (the effective ones are the recursion's, §12)."""
    if problem.data_lam is None:
        return problem.lam, problem.c0
    return problem.data_lam, problem.data_c0


def _collect(
    run, key, n_seeds: int, chunk: int, keep_all: bool, progress: bool, with_state: bool = False
) -> MonteCarlo:
    """Mean and standard error over ``n_seeds`` runs of ``run(keys)``, ``chunk`` seeds at a time
    (``with_state``: ``run`` returns (losses, states); the states are stacked)."""
    keys = jax.random.split(key, n_seeds)
    starts = range(0, n_seeds, chunk)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="Monte-Carlo SGD", unit="chunk")
    outs = [run(keys[s : s + chunk]) for s in starts]
    state = None
    if with_state:
        state = jax.tree.map(lambda *x: np.concatenate(x), *[o[1] for o in outs])
        outs = [o[0] for o in outs]
    losses = np.concatenate([np.asarray(o) for o in outs])
    mean = losses.mean(axis=0)
    sem = losses.std(axis=0, ddof=1) / np.sqrt(n_seeds)
    return MonteCarlo(
        mean=mean, sem=sem, n_seeds=n_seeds, losses=losses if keep_all else None, state=state
    )


@float64
def sgd(
    problem: Problem,
    etas,
    key: jax.Array,
    *,
    batches=None,
    betas=None,
    n_seeds: int = 64,
    chunk: int | None = None,
    keep_all: bool = False,
    progress: bool = False,
    noise=None,
    average=None,
) -> MonteCarlo:
    """Run minibatch SGD (heavy ball with ``betas``) under the schedule for ``n_seeds`` seeds.

    Args:
        problem: an unbinned :class:`Problem` (every weight 1) or a random-feature problem.
        etas: per-step learning rates, shape ``(T,)``.
        key: a ``jax.random`` key; the result is a pure function of it.
        batches: per-step integer batch sizes ≥ 1, shape ``(T,)``; default ``problem.batch``
            (then an integer) at every step.
        betas: per-step momenta in [0, 1), shape ``(T,)``, optax's heavy-ball convention
            (docs/theory.md §4); default plain SGD.
        n_seeds: number of independent SGD runs (≥ 2, for a standard error).
        chunk: seeds run together in one ``vmap`` (memory knob); default all.
        keep_all: also return every seed's curve.
        progress: show a progress bar over seed chunks.
        noise: per-step label-noise variances σ_t², shape ``(T,)``: update t's samples get
            ε ~ N(0, σ_t²) (docs/theory.md §10); default the problem's σ².
        average: averaging weights τ_t ∈ [0, 1] (scalar or ``(T,)``): record the averaged
            iterate w̄_{t+1} = (1 − τ_t) w̄_t + τ_t w_{t+1} instead (docs/theory.md §11).

    A ``Problem(..., precondition=γ)`` samples the data's spectrum and multiplies each
    minibatch gradient by P = diag(λ_k^−γ) (docs/theory.md §12).

    Returns:
        :class:`MonteCarlo` with the mean excess loss over seeds and its standard error, to compare
        with ``theory_excess(problem, loss_curve(problem, etas, batches, betas, noise=...,
        average=...))``.
    """
    check_schedule(etas, batches)
    if betas is not None:
        check_betas(betas, etas)
    extra = {}
    if noise is not None:
        from .dynamics.steps import check_noise

        check_noise(noise, etas)
        extra["sigma"] = jnp.sqrt(jnp.asarray(noise, jnp.float64))
    if average is not None:
        from .dynamics.averaging import check_average

        extra["tau"] = jnp.asarray(check_average(average, etas), jnp.float64)
    kind, model, chunk = _sampled(problem, n_seeds, chunk)
    if batches is None:
        if problem.batch != int(problem.batch):
            raise ValueError(f"problem.batch must be an integer for sampling; got {problem.batch}")
        batches = np.full(np.shape(etas), problem.batch)
    batches = np.asarray(batches, np.float64)
    if np.any(batches != np.round(batches)):
        raise ValueError("batches must be integers for sampling; got non-integer batch sizes")
    momentum = betas is not None
    _check_sample_memory(problem, min(chunk, n_seeds), int(batches.max()))
    etas = jnp.asarray(etas, jnp.float64)
    betas = jnp.asarray(betas if momentum else np.zeros(etas.shape), jnp.float64)
    buckets, bucket = _buckets(batches)
    if problem.precondition and kind == "power_law":
        extra["precond"] = jnp.asarray(problem.data_lam**-problem.precondition)
    args = (model, etas, betas, jnp.asarray(batches), jnp.asarray(bucket))
    return _collect(
        lambda keys: _run(
            keys, *args, kind=kind, buckets=buckets, momentum=momentum, extra=extra or None
        ),
        key,
        n_seeds,
        chunk,
        keep_all,
        progress,
    )


@float64
def train_optax(
    problem: Problem,
    optimizer: optax.GradientTransformation,
    T: int,
    key: jax.Array,
    *,
    batch: int | None = None,
    n_seeds: int = 64,
    chunk: int | None = None,
    keep_all: bool = False,
    progress: bool = False,
    final_state: bool = False,
) -> MonteCarlo:
    """Train with an optax optimizer on sampled data of ``problem`` for T steps, many seeds.

    The loss is ½ mean_i (ψ_i·w − y_i)² over a fresh batch each step, from w = 0 (so the gradient
    is the one :func:`sgd` uses); the result records the population excess loss, as :func:`sgd`.
    E.g. ``train_optax(p, schedules.to_optax_sgd(etas, betas), T, key)`` is heavy-ball SGD through
    optax, to compare with ``loss_curve(p, etas, betas=betas)``.

    Args:
        problem: as for :func:`sgd`.
        optimizer: any ``optax.GradientTransformation`` (hashable: it is a static argument).
        T: number of steps ≥ 1.
        key, n_seeds, chunk, keep_all, progress: as for :func:`sgd`.
        batch: samples per step; default ``problem.batch`` (an integer).
        final_state: also return the optimizer's final state of every seed (``state``, the
            leaves stacked over seeds), e.g. Adam's second-moment estimates (the preconditioner
            it applies, docs/theory.md §12).

    The data are the problem's own (for a ``precondition``-ed problem, the data's spectrum:
    the optimizer does the preconditioning).
    """
    batch = problem.batch if batch is None else batch
    if batch != int(batch) or batch < 1:
        raise ValueError(f"batch must be an integer >= 1 for sampling; got batch={batch}")
    if not isinstance(T, int | np.integer) or T < 1:
        raise ValueError(f"T must be an integer >= 1; got T={T!r}")
    kind, model, chunk = _sampled(problem, n_seeds, chunk)
    return _collect(
        lambda keys: _run_optax(
            keys,
            model,
            kind=kind,
            optimizer=optimizer,
            steps=int(T),
            batch=int(batch),
            final_state=bool(final_state),
        ),
        key,
        n_seeds,
        chunk,
        keep_all,
        progress,
        bool(final_state),
    )
