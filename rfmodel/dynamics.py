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
    "diverged",
    "check_schedule",
    "problem_arrays",
]

Array = jax.Array


def problem_arrays(problem: Problem) -> tuple[Array, Array, Array, Array]:
    """(λ, C(0), w·λ, σ²) of a problem as float64 device arrays."""
    lam = jnp.asarray(problem.lam, jnp.float64)
    return (lam, jnp.asarray(problem.c0, jnp.float64),
            jnp.asarray(problem.weight * problem.lam, jnp.float64),
            jnp.asarray(problem.label_noise**2, jnp.float64))


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def check_schedule(etas, batches=None, *, name: str = "etas") -> None:
    """Raise ``ValueError`` for a schedule that is not 1-D, finite, η ≥ 0 (batches ≥ 1).

    Skipped for traced values (inside ``jit``/``grad``), where values are unknown.
    """
    if _is_concrete(etas):
        e = np.asarray(etas)
        if e.ndim != 1 or e.size == 0:
            raise ValueError(f"{name} must be a non-empty 1-D array of per-step learning "
                             f"rates; got shape {e.shape}")
        if not np.all(np.isfinite(e)):
            raise ValueError(f"{name} must be finite; got NaN/Inf at step "
                             f"{int(np.flatnonzero(~np.isfinite(e))[0])}")
        if np.any(e < 0):
            raise ValueError(f"{name} must be >= 0; got {name}[{int(np.argmin(e))}]={e.min()}")
    if batches is not None and _is_concrete(batches):
        m = np.asarray(batches)
        if m.shape != np.shape(etas):
            raise ValueError(f"batches must have the shape of {name} {np.shape(etas)}; "
                             f"got {m.shape}")
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
    (_, _), losses = jax.lax.scan(partial(_step, lam, wlam, s2), (c0, loss0), (etas, batches),
                                  unroll=unroll)
    return jnp.concatenate([loss0[None], losses])


@partial(jax.jit, static_argnames=("unroll",))
def _reference(lam, c0, wlam, s2, etas, batches, unroll=1):
    return _scan_curve(lam, c0, wlam, s2, etas, batches, unroll)


def loss_curve_reference(problem: Problem, etas, batches=None) -> Array:
    """L(0..T) by a plain ``lax.scan`` (autodiff keeps every state): the test oracle."""
    etas, batches = _prepare(problem, etas, batches)
    return _reference(*problem_arrays(problem), etas, batches)


# --------------------------------------------------------------------------- fast adjoint
_UNROLL = 8
_U_FWD = 1  # unroll of the forward (primal) scan
_U_RE = 4  # unroll of the block re-forward
_U_BACK = 1  # unroll of the block costate scan
_RMODE = "gemm"


def _block_size(t: int) -> int:
    """Checkpoint spacing B ≈ √T (memory (T/B + B)·N), at least one unrolled chunk."""
    return max(_UNROLL, int(np.ceil(np.sqrt(t) / _UNROLL)) * _UNROLL)


@partial(jax.custom_vjp, nondiff_argnums=(6,))
def _fast(lam, c0, wlam, s2, etas, batches, block):
    return _scan_curve(lam, c0, wlam, s2, etas, batches, _U_FWD)


def _blocked(x, nb, block, fill=0.0):
    t = x.shape[0]
    pad = nb * block - t
    if pad:
        x = jnp.concatenate([x, jnp.full((pad,), fill, x.dtype)])
    return x.reshape(nb, block)


def _fast_fwd(lam, c0, wlam, s2, etas, batches, block):
    t = etas.shape[0]
    nb = -(-t // block)
    # Padding steps have η = 0: they leave C and L unchanged, so the true outputs are a prefix.
    e = _blocked(etas, nb, block)
    m = _blocked(batches, nb, block, 1.0)
    loss0 = _guard(wlam @ c0)

    def block_fn(carry, inp):
        (c, loss), ls = jax.lax.scan(partial(_step, lam, wlam, s2), carry, inp, unroll=_U_FWD)
        return (c, loss), (carry[0], ls)

    _, (checkpoints, ls) = jax.lax.scan(block_fn, (c0, loss0), (e, m))
    curve = jnp.concatenate([loss0[None], ls.reshape(-1)])
    return curve[: t + 1], (lam, wlam, s2, etas, batches, checkpoints, curve)


def _fast_bwd(block, res, ubar):
    lam, wlam, s2, etas, batches, checkpoints, curve = res
    t = etas.shape[0]
    nb = checkpoints.shape[0]
    e = _blocked(etas, nb, block)
    m = _blocked(batches, nb, block, 1.0)
    u_next = _blocked(ubar[1:], nb, block)  # ū_{t+1} for step t (zero on padded outputs)
    loss_t = curve[:-1].reshape(nb, block)  # L(t) entering step t
    lam12 = jnp.stack([lam, lam * lam], axis=1)

    def block_back(p, inp):
        c_start, eb, mb, lb, ub = inp

        # Re-run the block forward from its checkpoint with the saved L(t): C(t+1) depends on
        # C(t) and the scalar L(t) only, so this is elementwise (no reductions).
        def fwd_exact(c, x):
            eta, mt, loss = x
            d, g = _coeffs(lam, eta, mt)
            return d * c + (g * (loss + s2)) * lam, c

        _, cs = jax.lax.scan(fwd_exact, c_start, (eb, mb, lb), unroll=_U_RE)

        def back_step(p, x):
            # p = ∂J/∂C(t+1) without ū_{t+1}; returns ∂J/∂C(t) without ū_t, and the full
            # ∂J/∂C(t+1) and q = Σ_k λ_k p_k for the batched gradient reductions below.
            eta, mt, un = x
            p = p + un * wlam
            q = lam @ p
            d, g = _coeffs(lam, eta, mt)
            return d * p + (g * q) * wlam, (p, q)

        p, (ps, qs) = jax.lax.scan(back_step, p, (eb, mb, ub), reverse=True, unroll=_U_BACK)
        # r1 = Σ λ C p, r2 = Σ λ² C p for every step of the block at once.
        if _RMODE == "gemm":
            r = (cs * ps) @ lam12
            r1, r2 = r[:, 0], r[:, 1]
        else:
            cp = cs * ps
            r1 = jnp.sum(cp * lam, axis=1)
            r2 = jnp.sum(cp * lam12[:, 1], axis=1)
        noise = lb + s2
        inv_m = 1.0 / mb
        g_eta = -2.0 * r1 + 2.0 * (1.0 + inv_m) * eb * r2 + 2.0 * eb * inv_m * noise * qs
        g_m = -(eb * eb * inv_m * inv_m) * (r2 + noise * qs)
        return p, (g_eta, g_m)

    p0, (g_eta, g_m) = jax.lax.scan(block_back, jnp.zeros_like(lam),
                                    (checkpoints, e, m, loss_t, u_next), reverse=True)
    p0 = p0 + ubar[0] * wlam  # ∂J/∂C(0)
    g_s2 = jnp.zeros_like(s2)
    return (jnp.zeros_like(lam), p0, jnp.zeros_like(wlam), g_s2,
            g_eta.reshape(-1)[:t], g_m.reshape(-1)[:t])


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


def final_loss(problem: Problem, etas, batches=None) -> Array:
    """L(T), the loss after the last update."""
    return loss_curve(problem, etas, batches)[-1]


def diverged(curve) -> bool:
    """True if the loss overflowed anywhere on the curve (the recursion grew without bound)."""
    return not bool(jnp.all(jnp.isfinite(curve)))
