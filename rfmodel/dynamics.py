"""Exact expected-loss dynamics of SGD on a power-law problem (THEORY.md section 2).

For Gaussian data the per-mode second moments close exactly::

    C_k(t+1) = d_k(t) C_k(t) + (η_t²/m_t) λ_k [L(t) + σ²],
    d_k(t)   = 1 − 2 η_t λ_k + ((m_t+1)/m_t) η_t² λ_k²,        L(t) = Σ_k w_k λ_k C_k(t)

(w_k is the multiplicity of a binned mode, 1 otherwise). :func:`loss_curve` returns
L(0), …, L(T) for a schedule η_0..η_{T−1} (η_t is the rate used by update t, the optax convention).

Two implementations share the step above:

- :func:`loss_curve_reference`: a plain ``lax.scan``; ``jax.grad`` through it keeps all T×N
  states. It is the test oracle.
- :func:`loss_curve` (default): the same forward pass, with a hand-written adjoint (costate)
  recursion as a ``jax.custom_vjp``. The backward pass re-runs the forward recursion in blocks
  from checkpoints, so memory is O((T/B + B)·N) rather than O(T·N), and costs ≈ 3 forward passes.

Divergence is explicit: once L(t) overflows, it and every later entry is ``inf`` (never NaN).
Use :func:`diverged` to test a curve.

>>> from rfmodel import Problem
>>> p = Problem(a=2.0, b=1.5, sigma=0.0, n_modes=3, batch=1e12)
>>> curve = loss_curve(p, jnp.full(5, 0.5))
>>> curve.shape
(6,)
>>> bool(jnp.all(jnp.diff(curve) < 0))
True
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .problem import Problem

jax.config.update("jax_enable_x64", True)

__all__ = [
    "loss_curve",
    "loss_curve_reference",
    "final_loss",
    "final_losses",
    "log_final_loss_and_grad",
    "diverged",
    "check_schedule",
    "problem_arrays",
]

Array = jax.Array


def problem_arrays(problem: Problem) -> tuple[Array, Array, Array, Array]:
    """(λ, C(0), w·λ, σ²) of a problem as float64 device arrays (made once per problem)."""
    cached = problem.__dict__.get("_device_arrays")
    if cached is None:
        with jax.ensure_compile_time_eval():  # concrete even when first called under jit
            cached = (
                jnp.asarray(problem.lam, jnp.float64),
                jnp.asarray(problem.c0, jnp.float64),
                jnp.asarray(problem.weight * problem.lam, jnp.float64),
                jnp.asarray(problem.label_noise**2, jnp.float64),
            )
        object.__setattr__(problem, "_device_arrays", cached)  # Problem is frozen, arrays too
    return cached


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def check_schedule(etas, batches=None, *, name: str = "etas") -> None:
    """Raise ``ValueError`` for a schedule that is not 1-D, finite, η ≥ 0 (batches ≥ 1).

    Skipped for traced values (inside ``jit``/``grad``), where values are unknown.
    """
    if _is_concrete(etas):
        e = np.asarray(etas)
        if e.ndim != 1 or e.size == 0:
            raise ValueError(
                f"{name} must be a non-empty 1-D array of per-step learning "
                f"rates; got shape {e.shape}"
            )
        if not np.all(np.isfinite(e)):
            raise ValueError(
                f"{name} must be finite; got NaN/Inf at step "
                f"{int(np.flatnonzero(~np.isfinite(e))[0])}"
            )
        if np.any(e < 0):
            raise ValueError(f"{name} must be >= 0; got {name}[{int(np.argmin(e))}]={e.min()}")
    if batches is not None and _is_concrete(batches):
        m = np.asarray(batches)
        if m.shape != np.shape(etas):
            raise ValueError(
                f"batches must have the shape of {name} {np.shape(etas)}; got {m.shape}"
            )
        if not np.all(np.isfinite(m)) or np.any(m < 1):
            raise ValueError(f"batches must be finite and >= 1; got min {np.nanmin(m)}")


def _prepare(problem: Problem, etas, batches):
    check_schedule(etas, batches)
    etas = jnp.asarray(etas, jnp.float64)
    if batches is None:
        batches = jnp.full(etas.shape, problem.batch, jnp.float64)
    return etas, jnp.asarray(batches, jnp.float64)


def _coeffs(lam: Array, eta: Array, m: Array) -> tuple[Array, Array]:
    """d_k = 1 − 2ηλ_k + ((m+1)/m)η²λ_k² and g = η²/m (THEORY.md eq. of section 2)."""
    d = 1.0 - 2.0 * eta * lam + (1.0 + 1.0 / m) * (eta * lam) ** 2
    return d, eta * eta / m


def _guard(loss: Array) -> Array:
    # Overflow → inf (never NaN) and stays inf: 0·inf at η = 0 would otherwise give NaN.
    return jnp.where(jnp.isfinite(loss), loss, jnp.inf)


def _step(lam, wlam, s2, carry, inp):
    c, loss = carry
    eta, m = inp
    d, g = _coeffs(lam, eta, m)
    c = d * c + (g * (loss + s2)) * lam
    loss = _guard(wlam @ c)
    return (c, loss), loss


def _scan_curve(lam, c0, wlam, s2, etas, batches, unroll):
    loss0 = _guard(wlam @ c0)
    (_, _), losses = jax.lax.scan(
        partial(_step, lam, wlam, s2), (c0, loss0), (etas, batches), unroll=unroll
    )
    return jnp.concatenate([loss0[None], losses])


@partial(jax.jit, static_argnames=("unroll",))
def _reference(lam, c0, wlam, s2, etas, batches, unroll=1):
    return _scan_curve(lam, c0, wlam, s2, etas, batches, unroll)


def loss_curve_reference(problem: Problem, etas, batches=None) -> Array:
    """L(0..T) by a plain ``lax.scan`` (autodiff keeps every state): the test oracle."""
    etas, batches = _prepare(problem, etas, batches)
    return _reference(*problem_arrays(problem), etas, batches)


# --------------------------------------------------------------------------- fast adjoint
# Performance notes (XLA:CPU, float64). Per step the recursion is one length-N elementwise update
# plus one length-N reduction, so the cost is set by how XLA compiles these two small kernels:
# - A plain ``jnp.sum``/``@`` over N becomes a tree of sequential 32-wide reduce-windows that run
#   latency-bound. Summing by pairwise halving (``_rsum``) compiles to a few vectorised fused
#   kernels and is ~2x faster; modes are zero-padded (λ = C = w = 0: inert) to a size that halves
#   cleanly.
# - The per-step scalars (2η, (1+1/m)η², η²/m) are precomputed for the whole schedule.
# - The backward block re-run needs no reductions (L(t) is saved). The costate step does only
#   q = Σλp; r1 = Σλ C p and r2 = Σλ² C p are reduced for the whole block at once afterwards
#   (reading C(t) row by row inside the step loop compiles to slow dynamic-slice fusions).
# - Larger scan unrolls make XLA fuse chains of steps and recompute them: keep unroll small.
_RED_WIDTH = 16
_UNROLL = 8  # granularity of the checkpoint spacing
_U_FWD = 1
_U_RE = 2  # measured: 2 beats 1 and 4 for the elementwise block re-run
_U_BACK = 1


def _block_size(t: int) -> int:
    """Checkpoint spacing B ≈ √T (memory (T/B + B)·N), at least one unrolled chunk."""
    return max(_UNROLL, int(np.ceil(np.sqrt(t) / _UNROLL)) * _UNROLL)


def _padded_modes(n: int) -> int:
    """Mode count ≥ n that halves down to _RED_WIDTH·(small odd number); ≤ 1/8 padding."""
    k = max(0, int(np.floor(np.log2(max(n, 1) / _RED_WIDTH))) - 3)
    unit = _RED_WIDTH << k
    return -(-n // unit) * unit


def _rsum(x: Array) -> Array:
    """Σ over the last axis by pairwise halving (vectorised fused kernels on XLA:CPU)."""
    n = x.shape[-1]
    while n > _RED_WIDTH and n % 2 == 0:
        n //= 2
        x = x[..., :n] + x[..., n:]
    return jnp.sum(x, axis=-1)


def _pad_to(x: Array, n: int, fill=0.0) -> Array:
    pad = n - x.shape[0]
    return jnp.concatenate([x, jnp.full((pad,), fill, x.dtype)]) if pad else x


def _step_coeffs(etas: Array, batches: Array) -> Array:
    """Per-step scalars (2η, (1+1/m)η², η²/m), shape (T, 3): d = 1 − 2ηλ + (1+1/m)η²λ²."""
    e2 = etas * etas
    inv_m = 1.0 / batches
    return jnp.stack([2.0 * etas, (1.0 + inv_m) * e2, e2 * inv_m], axis=1)


def _padded_arrays(lam, c0, wlam):
    n = _padded_modes(lam.shape[0])
    lam, c0, wlam = (_pad_to(x, n) for x in (lam, c0, wlam))
    return lam, lam * lam, c0, wlam


def _fstep(lam, lam2, wlam, s2, carry, coef):
    c, loss = carry
    c = (1.0 - coef[0] * lam + coef[1] * lam2) * c + (coef[2] * (loss + s2)) * lam
    loss = _guard(_rsum(wlam * c))
    return (c, loss), loss


@partial(jax.custom_vjp, nondiff_argnums=(6,))
def _fast(lam, c0, wlam, s2, etas, batches, block):
    lam, lam2, c0, wlam = _padded_arrays(lam, c0, wlam)
    loss0 = _guard(_rsum(wlam * c0))
    _, losses = jax.lax.scan(
        partial(_fstep, lam, lam2, wlam, s2),
        (c0, loss0),
        _step_coeffs(etas, batches),
        unroll=_U_FWD,
    )
    return jnp.concatenate([loss0[None], losses])


def _fast_fwd(lam, c0, wlam, s2, etas, batches, block):
    t = etas.shape[0]
    nb = -(-t // block)
    lamp, lam2, c0p, wlamp = _padded_arrays(lam, c0, wlam)
    # Padding steps have all coefficients 0 (η = 0): they leave C and L unchanged, so the true
    # outputs are a prefix.
    coef = jnp.concatenate([_step_coeffs(etas, batches), jnp.zeros((nb * block - t, 3))])
    loss0 = _guard(_rsum(wlamp * c0p))

    def block_fn(carry, cf):
        carry_out, ls = jax.lax.scan(
            partial(_fstep, lamp, lam2, wlamp, s2), carry, cf, unroll=_U_FWD
        )
        return carry_out, (carry[0], ls)

    _, (checkpoints, ls) = jax.lax.scan(block_fn, (c0p, loss0), coef.reshape(nb, block, 3))
    curve = jnp.concatenate([loss0[None], ls.reshape(-1)])
    return curve[: t + 1], (lam, wlam, s2, etas, batches, checkpoints, curve)


def _fast_bwd(block, res, ubar):
    lam, wlam, s2, etas, batches, checkpoints, curve = res
    n, t = lam.shape[0], etas.shape[0]
    nb = checkpoints.shape[0]
    tp = nb * block
    lamp, lam2, _, wlamp = _padded_arrays(lam, jnp.zeros_like(lam), wlam)
    coef = jnp.concatenate([_step_coeffs(etas, batches), jnp.zeros((tp - t, 3))])
    gam = coef[:, 2] * (curve[:-1] + s2)  # η²/m·(L(t) + σ²): the forced term of step t
    u = _pad_to(ubar, tp + 1)  # cotangents of L(0..T), zero on padded outputs

    def block_back(p, inp):
        # p = ∂J/∂C(t+1) at the block's end, including ū_{t+1}.
        c_start, cf, gb, ub = inp

        # Re-run the block forward from its checkpoint with the saved L(t): elementwise only.
        def refwd(c, x):
            a, b, g = x
            return (1.0 - a * lamp + b * lam2) * c + g * lamp, c

        _, cs = jax.lax.scan(refwd, c_start, (cf[:, 0], cf[:, 1], gb), unroll=_U_RE)

        def back_step(p, x):
            # p = ∂J/∂C(t+1) → ∂J/∂C(t), with q = Σλp; p is kept for the batched r1, r2.
            a, b, g, un = x
            q = _rsum(lamp * p)
            return (1.0 - a * lamp + b * lam2) * p + (g * q + un) * wlamp, (q, p)

        p, (q, ps) = jax.lax.scan(
            back_step, p, (cf[:, 0], cf[:, 1], cf[:, 2], ub), reverse=True, unroll=_U_BACK
        )
        x = cs * ps * lamp
        return p, jnp.stack([q, _rsum(x), _rsum(x * lamp)], axis=1)

    p0, s = jax.lax.scan(
        block_back,
        u[tp] * wlamp,
        (
            checkpoints,
            coef.reshape(nb, block, 3),
            gam.reshape(nb, block),
            u[:tp].reshape(nb, block),
        ),
        reverse=True,
    )
    q, r1, r2 = (s.reshape(tp, 3)[:t, i] for i in range(3))
    noise = curve[:t] + s2
    inv_m = 1.0 / batches
    g_eta = -2.0 * r1 + 2.0 * (1.0 + inv_m) * etas * r2 + 2.0 * etas * inv_m * noise * q
    g_m = -(etas * etas * inv_m * inv_m) * (r2 + noise * q)
    return (jnp.zeros_like(lam), p0[:n], jnp.zeros_like(wlam), jnp.zeros_like(s2), g_eta, g_m)


_fast.defvjp(_fast_fwd, _fast_bwd)


@partial(jax.jit, static_argnames=("block",))
def _fast_jit(lam, c0, wlam, s2, etas, batches, block):
    return _fast(lam, c0, wlam, s2, etas, batches, block)


def loss_curve(problem: Problem, etas, batches=None) -> Array:
    """Exact expected excess loss L(t) = Σ_k λ_k C_k(t), t = 0..T (THEORY.md section 2).

    Args:
        problem: the :class:`~rfmodel.Problem`.
        etas: per-step learning rates, shape ``(T,)``; ``etas[t]`` is used by update t.
        batches: optional per-step batch sizes, shape ``(T,)`` (real-valued, ≥ 1); default
            ``problem.batch`` at every step.

    Returns:
        float64 array of shape ``(T+1,)``; ``inf`` from the first step whose loss overflowed.

    Differentiable (``jax.grad``, ``jax.vjp``) with respect to ``etas`` and ``batches`` through a
    hand-written adjoint (see the module docstring). Gradients with respect to the problem's
    spectrum are not provided (they are constants of a :class:`Problem`).
    """
    etas, batches = _prepare(problem, etas, batches)
    return _fast_jit(*problem_arrays(problem), etas, batches, _block_size(etas.shape[0]))


@partial(jax.jit, static_argnames=("block",))
def _log_final_vg(lam, c0, wlam, s2, etas, batches, block):
    def f(e):
        curve = _fast(lam, c0, wlam, s2, e, batches, block)
        return jnp.log(curve[-1]), curve

    return jax.value_and_grad(f, has_aux=True)(etas)


def log_final_loss_and_grad(problem: Problem, etas, batches=None, *, with_curve: bool = False):
    """(log L(T), ∇_η log L(T)) as numpy (float, (T,)): the optimizers' objective.

    One compiled function per horizon T, shared by :mod:`rfmodel.control` and
    :func:`rfmodel.schedules.tune`. Returns (inf, NaN gradient) once the run diverges. With
    ``with_curve`` also returns the loss curve L(0..T) of the same evaluation.
    """
    etas, batches = _prepare(problem, etas, batches)
    (v, curve), g = _log_final_vg(
        *problem_arrays(problem), etas, batches, _block_size(etas.shape[0])
    )
    out = (float(v), np.asarray(g, dtype=np.float64))
    return (*out, np.asarray(curve)) if with_curve else out


_CHUNK = 64


@partial(jax.jit, static_argnames=("block",))
def _batched_final(lam, c0, wlam, s2, etas, batches, block):
    return jax.vmap(lambda e: _fast(lam, c0, wlam, s2, e, batches, block)[-1])(etas)


def final_losses(problem: Problem, etas) -> np.ndarray:
    """L(T) for every row of ``etas`` (G, T) as numpy (G,): many schedules in one ``vmap``.

    Rows go in fixed-size chunks (padded), so there is one compilation per horizon T.
    """
    etas = np.asarray(etas, np.float64)
    if etas.ndim != 2:
        raise ValueError(f"etas must be a 2-D array (schedules, T); got shape {etas.shape}")
    arrays = problem_arrays(problem)
    m = jnp.full(etas.shape[1], problem.batch, jnp.float64)
    block = _block_size(etas.shape[1])
    out = []
    for s in range(0, etas.shape[0], _CHUNK):
        rows = etas[s : s + _CHUNK]
        pad = _CHUNK - rows.shape[0]
        rows = np.concatenate([rows, np.repeat(rows[-1:], pad, axis=0)])
        out.append(np.asarray(_batched_final(*arrays, jnp.asarray(rows), m, block))[: _CHUNK - pad])
    return np.concatenate(out)


def final_loss(problem: Problem, etas, batches=None) -> Array:
    """L(T), the loss after the last update."""
    return loss_curve(problem, etas, batches)[-1]


def diverged(curve) -> bool:
    """True if the loss overflowed anywhere on the curve (the recursion grew without bound)."""
    return not bool(jnp.all(jnp.isfinite(curve)))
