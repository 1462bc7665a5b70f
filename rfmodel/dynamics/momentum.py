"""Exact expected-loss dynamics of heavy-ball SGD (momentum), docs/theory.md §4.

Convention (optax's ``optax.sgd(learning_rate=η_t, momentum=β_t)``): with the minibatch gradient
g_t, v(0) = 0 and e = w − w*,

    v_{t+1} = β_t v_t + g_t,        e_{t+1} = e_t − η_t v_{t+1}        (β = 0: plain SGD).

For Gaussian data the per-mode second moments C = E[e²], R = E[e v], V = E[v²] close exactly
(κ_t = (m_t+1)/m_t, L = Σ_j w_j λ_j C_j)::

    V' = β² V + 2βλ R + κ λ² C + (λ/m)(L + σ²)
    a  = β R + λ C                                   (= E[e v'])
    R' = a − η V'
    C' = C − 2η a + η² V'

This module holds the momentum path of :func:`rfmodel.dynamics.loss_curve` (``betas=...``): a
reference ``lax.scan`` (the test oracle, differentiated by ``jax.grad``) and the fast forward pass
with a hand-written adjoint (a three-component costate per mode, recomputation from checkpoints,
as the SGD adjoint of :mod:`rfmodel.dynamics.steps`); the solver objective
:func:`log_final_loss_and_grads`; and the constant-(η, β) stability of the recursion.
"""

from __future__ import annotations

import functools
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize

from .._x64 import float64, host
from ..problem import Problem
from ._common import (
    Array,
    as_f64,
    compile_cpu,
    guard,
    is_concrete,
    pad_to,
    padded_arrays,
    prepare,
    problem_arrays,
    rsum,
)
from ._common import fused_pays as _fused_pays

__all__ = [
    "check_betas",
    "loss_curve",
    "loss_curve_reference",
    "log_final_loss_and_grads",
    "stability_sum",
    "eta_critical",
    "effective_rate_limit",
    "constant_momentum_gain",
    "stationary_loss",
]


def check_betas(betas, etas) -> None:
    """Raise ``ValueError`` unless ``betas`` has the shape of ``etas``, is finite and in [0, 1).

    Skipped for traced values (inside ``jit``/``grad``), where values are unknown.
    """
    if not is_concrete(betas):
        return
    b = np.asarray(betas)
    if b.shape != np.shape(etas):
        raise ValueError(
            f"betas must have the shape of etas {np.shape(etas)} (one momentum per step); "
            f"got shape {b.shape}"
        )
    bad = np.flatnonzero(~((b >= 0) & (b < 1)))  # NaN fails both comparisons
    if bad.size:
        raise ValueError(f"betas must be finite and in [0, 1); got betas[{bad[0]}]={b[bad[0]]}")


def _prepare_momentum(problem: Problem, etas, batches, betas):
    etas_in = etas
    etas, batches = prepare(problem, etas, batches)
    check_betas(betas, etas_in)
    return etas, batches, as_f64(betas)


# --------------------------------------------------------------------------- reference oracle
def _ref_step(lam, wlam, s2, carry, inp):
    (c, r, v), loss = carry
    eta, m, beta = inp
    v = beta**2 * v + 2 * beta * lam * r + (1 + 1 / m) * lam**2 * c + lam * (loss + s2) / m
    a = beta * r + lam * c
    r = a - eta * v
    c = c - 2 * eta * a + eta**2 * v
    loss = guard(wlam @ c)
    return ((c, r, v), loss), loss


@jax.jit
def _reference(lam, c0, wlam, s2, etas, batches, betas):
    loss0 = guard(wlam @ c0)
    zero = jnp.zeros_like(c0)
    _, losses = jax.lax.scan(
        partial(_ref_step, lam, wlam, s2), ((c0, zero, zero), loss0), (etas, batches, betas)
    )
    return jnp.concatenate([loss0[None], losses])


@float64
def loss_curve_reference(problem: Problem, etas, batches, betas) -> Array | np.ndarray:
    """L(0..T) with momentum by a plain ``lax.scan`` (autodiff keeps every state): the oracle."""
    etas, batches, betas = _prepare_momentum(problem, etas, batches, betas)
    return host(_reference(*problem_arrays(problem), etas, batches, betas))


# --------------------------------------------------------------------------- fast adjoint
# Performance notes (XLA:CPU, float64; see also rfmodel/dynamics/steps.py). Two layouts of the
# per-mode state X = (C, R, V), chosen by the padded mode count (:data:`SPLIT_MODES`):
#
# - *stacked* (N < 1024): one (3, N) array, a forward step one fused elementwise kernel,
#   X' = A_t(λ) X + F_t (L + σ²) λ, with A written column by column in the fewest operations
#   (column C quadratic in λ, R linear, V constant). It computes every row in full (~3x the
#   flops of the sequential update below) but in few kernels: at small N the per-kernel cost
#   dominates (N = 300: 9.4 ns per mode-step for L + ∇L against 13 ns split). The costate step
#   writes its three rows explicitly and hands (p_C, u, p_a) to a per-block reduction of the
#   schedule gradients; checkpoints every 8 steps (a block's states and costates stay in a
#   core's cache: 1.3-1.5x faster than √T blocks at N = 1000); block re-runs use scan unroll 1
#   (unroll 2 fused consecutive steps and recomputed them, 2.5x).
# - *split* (N ≥ 1024): three (N,) arrays updated in sequence, a = βR + λC, V' (from V, R, C),
#   R' = a − ηV', C' = C − η(a + R'): ~11 flops per mode, where the stacked step spends ~36,
#   and the step is compute-bound at this size. The gradient sums are reduced inside the costate
#   step from the re-run states (a, V' and βV + λR recomputed there), not from stored costates
#   per block: measured at N = T = 10^4 (one L + ∇(η, β, m) against SGD's L + ∇η, CPU time):
#   stacked 4.5-5.6x, split with per-block sums 3.1-3.5x, split with sums in the costate step
#   2.4-2.8x (2.2-2.6x without the m-gradient). Unrolling either loop by 2 was slower (3.5x),
#   and so was the whole objective on XLA:CPU's default (fusion) emitters (4.7x); its forward
#   pass alone is faster on them, so the solver objective compiles the two halves apart
#   (:func:`_objective_executable`). Also slower: the three gradient sums of a costate step as
#   one reduction of a stacked (3, N) array (1.03-1.06 s against 0.92-0.93 s, N = T = 10^4), and
#   the re-run storing each new state instead of the old one (0.37 against 0.33 s).
# The block length is at least 8 (stacked) / 32 (split) steps, longer where the checkpoints
# (T/B states of 3N floats) would pass 64 MiB.
_E_C = np.array([[1.0], [0.0], [0.0]])  # the C row: C(0), ū and the loss coupling enter there
#: Padded mode count from which the state is kept as three arrays (see the notes above).
SPLIT_MODES = 1024


def _arrays(problem: Problem) -> tuple[Array, Array, Array, Array]:
    """(λ, C(0), wλ, σ²), zero-padded like the SGD adjoint's (made once per problem)."""
    lam, _, c0, wlam, s2 = padded_arrays(problem)
    return lam, c0, wlam, s2


def _split(n: int) -> bool:
    return n >= SPLIT_MODES


def _coeffs(etas: Array, batches: Array, betas: Array) -> Array:
    """Per-step columns of X' = A(λ) X + F (L + σ²) λ (docs/theory.md §4), shape (T, 6, 3):
    A[:, C] = e_C + λ P1 + λ² P2, A[:, R] = Q0 + λ Q1, A[:, V] = S0 with the rows
    (P1, P2, Q0, Q1, S0, F), each a vector over the outputs (C', R', V')."""
    e, b, k, im = etas, betas, 1.0 + 1.0 / batches, 1.0 / batches
    z = jnp.zeros_like(e)
    eb = e * b
    rows = [
        [-2.0 * e, 1.0 + z, z],  # P1
        [e * e * k, -e * k, k],  # P2
        [-2.0 * eb, b, z],  # Q0
        [2.0 * e * eb, -2.0 * eb, 2.0 * b],  # Q1
        [eb * eb, -eb * b, b * b],  # S0
        [e * e * im, -e * im, im],  # F
    ]
    return jnp.stack([jnp.stack(r, axis=-1) for r in rows], axis=-2)


def _scalars(etas: Array, batches: Array, betas: Array) -> Array:
    """Per-step scalars (η, β, κ = 1 + 1/m, 1/m), shape (T, 4)."""
    return jnp.stack([etas, betas, 1.0 + 1.0 / batches, 1.0 / batches], axis=-1)


def _inputs(etas: Array, batches: Array, betas: Array, split: bool) -> Array:
    """What the forward step reads per step: the scalars (split) or A's columns (stacked)."""
    return _scalars(etas, batches, betas) if split else _coeffs(etas, batches, betas)


def _apply(lam: Array, cf: Array, x: Array, force: Array) -> Array:
    """A(λ) X + F·force for every mode: cf (6, 3), x (3, N), force (N,)."""
    cf = cf[:, :, None]
    return (
        (_E_C + lam * (cf[0] + lam * cf[1])) * x[0]
        + (cf[2] + lam * cf[3]) * x[1]
        + cf[4] * x[2]
        + cf[5] * force
    )


def _update(lam: Array, x, sc: Array, f) -> tuple[Array, Array, Array]:
    """One step of the split state (C, R, V) with the noise forcing f = (L + σ²)/m:
    a = βR + λC, V' = β(βV + 2λR) + λ(κλC + f), R' = a − ηV', C' = C − η(a + R')."""
    c, r, v = x
    eta, beta, kap = sc[0], sc[1], sc[2]
    lc = lam * c
    a = beta * r + lc
    vn = beta * (beta * v + 2.0 * lam * r) + lam * (kap * lc + f)
    rn = a - eta * vn
    return c - eta * (a + rn), rn, vn


def _advance(lam: Array, inp: Array, x, noise):
    """X(t+1) from X(t) and L(t) + σ² in either layout (``inp``: :func:`_inputs` of step t)."""
    if isinstance(x, tuple):
        return _update(lam, x, inp, inp[3] * noise)
    return _apply(lam, inp, x, noise * lam)


def _fstep(lam, wlam, s2, carry, inp):
    x, loss = carry
    x = _advance(lam, inp, x, loss + s2)
    loss = guard(rsum(wlam * x[0]))
    return (x, loss), loss


def _block_size(t: int, n: int) -> int:
    """Checkpoint spacing B: 8 steps (stacked) or 32 (split) while the checkpoints (T/B states
    of 3N floats) take at most 64 MiB, longer beyond (see the performance notes)."""
    return max(32 if _split(n) else 8, -(-t * 3 * n * 8 // _CHECKPOINT_BYTES))


_CHECKPOINT_BYTES = 64 * 2**20


def _initial(c0: Array, split: bool):
    """X(0): C(0), R(0) = V(0) = 0 (v(0) = 0)."""
    z = jnp.zeros_like(c0)
    return (c0, z, z) if split else jnp.stack([c0, z, z])


def _primal(lam, c0, wlam, s2, inp):
    """L(0..T), keeping nothing for the adjoint."""
    loss0 = guard(rsum(wlam * c0))
    split = inp.ndim == 2
    _, losses = jax.lax.scan(partial(_fstep, lam, wlam, s2), (_initial(c0, split), loss0), inp)
    return jnp.concatenate([loss0[None], losses])


def _blocks(x: Array, nb: int, block: int) -> Array:
    """Per-step rows padded with zeros to nb·block steps (all-zero coefficients leave C
    unchanged and are never read back), as (nb, block, …)."""
    x = jnp.concatenate([x, jnp.zeros((nb * block - x.shape[0],) + x.shape[1:], x.dtype)])
    return x.reshape((nb, block) + x.shape[1:])


def _forward(lam, c0, wlam, s2, inp, block):
    """L(0..T) and the checkpoints X(0), X(B), X(2B), … for the adjoint."""
    t = inp.shape[0]
    nb = -(-t // block)
    step = partial(_fstep, lam, wlam, s2)
    loss0 = guard(rsum(wlam * c0))

    def block_fn(carry, cf):
        carry_out, losses = jax.lax.scan(step, carry, cf)
        return carry_out, (carry[0], losses)

    init = (_initial(c0, inp.ndim == 2), loss0)
    _, (checkpoints, losses) = jax.lax.scan(block_fn, init, _blocks(inp, nb, block))
    return jnp.concatenate([loss0[None], losses.reshape(-1)])[: t + 1], checkpoints


def _costates(p, eta) -> tuple[Array, Array]:
    """u = ∂J/∂V' = η² p_C − η p_R + p_V and p_a = ∂J/∂a = p_R − 2η p_C (a = βR + λC = E[e v'])."""
    pc, pr, pv = p[0], p[1], p[2]
    return pv + eta * (eta * pc - pr), pr - 2.0 * eta * pc


def _grad_sums(lam, xs, ps, sc, noise, with_m):
    """∂J/∂(η_t, β_t[, m_t]) for a block of steps (docs/theory.md §4) from the states X(t) and
    (p_C, u, p_a) at t+1, each (B, 3, N), the scalars (η, β, κ, 1/m) (B, 4) and L(t) + σ² (B,):

        ∂J/∂η = Σ_k [−2 a p_C − V' p_a],   ∂J/∂β = Σ_k [u (2βV + 2λR) + p_a R],
        ∂J/∂m = −(1/m²) Σ_k λ u (λC + L + σ²),   a = βR + λC,  V' = β²V + 2βλR + κλ²C + λ(L+σ²)/m.
    """
    beta, kap, im = (sc[:, i : i + 1] for i in (1, 2, 3))
    noise = noise[:, None]
    c, r, v = xs[:, 0], xs[:, 1], xs[:, 2]
    pc, u, pa = ps[:, 0], ps[:, 1], ps[:, 2]
    lc = lam * c
    v_new = beta * (beta * v + 2.0 * lam * r) + lam * (kap * lc + im * noise)
    g_eta = rsum(-2.0 * (beta * r + lc) * pc - v_new * pa)
    g_beta = rsum(u * (2.0 * (beta * v + lam * r)) + pa * r)
    if not with_m:
        return jnp.stack([g_eta, g_beta], axis=1)
    g_m = -rsum(lam * u * (lc + noise)) * (im[:, 0] * im[:, 0])
    return jnp.stack([g_eta, g_beta, g_m], axis=1)


def _block_back_stacked(lam, wlam, with_m, p, inp):
    """One block of the costate recursion, stacked layout: re-run the block's states from its
    checkpoint, step the costates back keeping (p_C, u, p_a), reduce the sums per block."""
    start, cf, sb, nz, ub = inp

    def refwd(x, inp):
        cf, f = inp
        return _apply(lam, cf, x, f * lam), x

    _, xs = jax.lax.scan(refwd, start, (cf, nz))

    def back_step(p, inp):
        sc, un = inp
        eta, beta, kap, im = sc[0], sc[1], sc[2], sc[3]
        u, pa = _costates(p, eta)
        q = rsum(lam * u) * im
        p_c = p[0] + (q + un) * wlam + lam * (pa + kap * lam * u)
        p_new = jnp.stack([p_c, beta * (pa + 2.0 * lam * u), (beta * beta) * u])
        return p_new, jnp.stack([p[0], u, pa])

    p, ps = jax.lax.scan(back_step, p, (sb, ub), reverse=True)
    return p, _grad_sums(lam, xs, ps, sb, nz, with_m)


def _block_back_split(lam, wlam, with_m, p, inp):
    """One block of the costate recursion, split layout: re-run the block's states from its
    checkpoint, then step the costates back reducing the gradient sums in the same step."""
    start, sb, nz, ub = inp

    def refwd(x, inp):
        sc, noise = inp
        return _update(lam, x, sc, sc[3] * noise), x

    _, xs = jax.lax.scan(refwd, start, (sb, nz))

    def back_step(p, inp):
        sc, un, noise, x = inp
        eta, beta, kap, im = sc[0], sc[1], sc[2], sc[3]
        c, r, v = x
        pc, pr, pv = p
        u, pa = _costates(p, eta)
        lu = lam * u
        ql = rsum(lu)
        lc = lam * c
        bv = beta * v + lam * r
        v_new = beta * (bv + lam * r) + lam * (kap * lc + im * noise)
        g = [-rsum(2.0 * (beta * r + lc) * pc + v_new * pa), rsum(2.0 * u * bv + pa * r)]
        if with_m:
            g.append(-(rsum(lu * lc) + noise * ql) * (im * im))
        p_new = (
            pc + (ql * im + un) * wlam + lam * (pa + kap * lu),
            beta * (pa + 2.0 * lu),
            (beta * beta) * u,
        )
        return p_new, jnp.stack(g)

    return jax.lax.scan(back_step, p, (sb, ub, nz, xs), reverse=True)


def _backward(lam, wlam, s2, etas, batches, betas, curve, checkpoints, ubar, block, with_m=True):
    """The costate recursion (docs/theory.md §4) for cotangents ū of L(0..T): P(T) = ū_T (wλ, 0, 0),

        P(t) = A_tᵀ P(t+1) + (Q_t + ū_t) (wλ, 0, 0),   Q_t = Σ_k λ_k u_k(t+1) / m_t

    (Q is the loss coupling through the noise term). Returns ∂J/∂(η_t, β_t[, m_t]), shape
    (T, 3) (or (T, 2) without ``with_m``)."""
    t = etas.shape[0]
    split = isinstance(checkpoints, tuple)
    nb = jax.tree.leaves(checkpoints)[0].shape[0]
    tp = nb * block
    noise = pad_to(curve[:-1] + s2, tp).reshape(nb, block)  # L(t) + σ²
    u_bar = pad_to(ubar, tp + 1)
    end = u_bar[tp] * wlam
    scal = _blocks(_scalars(etas, batches, betas), nb, block)
    ub = u_bar[:tp].reshape(nb, block)
    if split:
        z = jnp.zeros_like(wlam)
        p_end, xs = (end, z, z), (checkpoints, scal, noise, ub)
        back = _block_back_split
    else:
        coef = _blocks(_coeffs(etas, batches, betas), nb, block)
        p_end, xs = _E_C * end, (checkpoints, coef, scal, noise, ub)
        back = _block_back_stacked
    _, grads = jax.lax.scan(partial(back, lam, wlam, with_m), p_end, xs, reverse=True)
    return grads.reshape(tp, -1)[:t]


@partial(jax.custom_vjp, nondiff_argnums=(7,))
def _fast(lam, c0, wlam, s2, etas, batches, betas, block):
    return _primal(lam, c0, wlam, s2, _inputs(etas, batches, betas, _split(lam.shape[0])))


def _fast_fwd(lam, c0, wlam, s2, etas, batches, betas, block):
    inp = _inputs(etas, batches, betas, _split(lam.shape[0]))
    curve, checkpoints = _forward(lam, c0, wlam, s2, inp, block)
    return curve, (lam, wlam, s2, etas, batches, betas, curve, checkpoints)


@float64
def _fast_bwd(block, res, ubar):
    lam, wlam, s2, etas, batches, betas, curve, checkpoints = res
    g = _backward(lam, wlam, s2, etas, batches, betas, curve, checkpoints, ubar, block)
    zero = jnp.zeros_like(lam)  # the problem's arrays are constants: no gradient
    return zero, zero, zero, jnp.zeros_like(s2), g[:, 0], g[:, 2], g[:, 1]


_fast.defvjp(_fast_fwd, _fast_bwd)


@partial(jax.jit, static_argnames=("block",))
def _fast_jit(lam, c0, wlam, s2, etas, batches, betas, block):
    return _fast(lam, c0, wlam, s2, etas, batches, betas, block)


@float64
def loss_curve(problem: Problem, etas, batches, betas) -> Array | np.ndarray:
    """L(0..T) with momentum: the ``betas=`` path of :func:`rfmodel.dynamics.loss_curve`."""
    etas, batches, betas = _prepare_momentum(problem, etas, batches, betas)
    arrays = _arrays(problem)
    block = _block_size(etas.shape[0], arrays[0].shape[0])
    return host(_fast_jit(*arrays, etas, batches, betas, block))


# --------------------------------------------------------------------------- solver objective
@partial(jax.jit, static_argnames=("block",))
def _objective_forward(lam, c0, wlam, s2, etas, batches, betas, block):
    """L(0..T) and the adjoint's checkpoints (the solver objective's first half)."""
    inp = _inputs(etas, batches, betas, _split(lam.shape[0]))
    return _forward(lam, c0, wlam, s2, inp, block)


@partial(jax.jit, static_argnames=("block", "batch_grad"))
def _objective_backward(lam, wlam, s2, etas, batches, betas, curve, checkpoints, block, batch_grad):
    """log L(T) and its gradients (η, β[, m]): the adjoint with ū = e_T / L(T), written out (the
    m-sums only with ``batch_grad``)."""
    ubar = jnp.zeros_like(curve).at[-1].set(1.0 / curve[-1])
    g = _backward(lam, wlam, s2, etas, batches, betas, curve, checkpoints, ubar, block, batch_grad)
    return jnp.log(curve[-1]), g


@functools.lru_cache(maxsize=16)
def _objective_executable(t: int, n: int, block: int, batch_grad: bool = True):
    """The solver objective for horizon t and n padded modes, ``(λ, C(0), wλ, σ², η, m, β) ->
    (log L(T), gradients (T, 2|3), L(0..T))``, as two programs compiled apart: the forward pass
    on XLA's default emitters from :data:`~._common.FUSED_WORK` mode-steps at any mode count, the
    adjoint on the classic ones at every size. Measured in one alternating run at N = T = 10^4:
    forward 0.16 s (default) against 0.22 s (classic), the adjoint 0.74 s (classic) against
    1.22 s (default); the halves apart take 0.92 s where one program took 0.99 s (classic) or
    1.24 s (default), with bit-identical gradients (N = 1000, T = 10^4: 93-95 against 110 ms)."""
    f64 = partial(jax.ShapeDtypeStruct, dtype=jnp.float64)
    vec, sched, scalar = f64((n,)), f64((t,)), f64(())
    args = (vec, vec, vec, scalar, sched, sched, sched)
    curve, checkpoints = jax.eval_shape(partial(_objective_forward, block=block), *args)
    forward = compile_cpu(_objective_forward.lower(*args, block=block), fused=_fused_pays(n, t, 0))
    adjoint_args = (vec, vec, scalar, sched, sched, sched, curve, checkpoints)
    backward = compile_cpu(
        _objective_backward.lower(*adjoint_args, block=block, batch_grad=batch_grad)
    )

    def run(lam, c0, wlam, s2, etas, batches, betas):
        curve, checkpoints = forward(lam, c0, wlam, s2, etas, batches, betas)
        v, g = backward(lam, wlam, s2, etas, batches, betas, curve, checkpoints)
        return v, g, curve

    return run


@float64
def log_final_loss_and_grads(
    problem: Problem,
    etas,
    betas,
    batches=None,
    *,
    with_curve: bool = False,
    batch_grad: bool = True,
):
    """log L(T) with momentum and its gradients, as numpy: the solver's objective.

    Args:
        problem: the :class:`~rfmodel.Problem`.
        etas, betas: per-step learning rates and momenta, shape ``(T,)``.
        batches: per-step batch sizes ``(T,)``; default ``problem.batch``.
        with_curve: also return L(0..T).
        batch_grad: also ∂/∂m_t (one more reduction per step; leave it out when the batch is
            not optimized).

    Returns:
        ``(value, grads)`` (and the curve): ``grads`` maps ``"eta"``, ``"momentum"`` (and
        ``"batch"``) to ∂ log L(T)/∂η_t, ∂/∂β_t and ∂/∂m_t, each ``(T,)``. Compiled once per
        horizon T. Once the run diverges: ``(inf, NaN gradients)``.
    """
    etas, batches, betas = _prepare_momentum(problem, etas, batches, betas)
    arrays = _arrays(problem)
    t, n = etas.shape[0], arrays[0].shape[0]
    run = _objective_executable(t, n, _block_size(t, n), bool(batch_grad))
    v, g, curve = run(*arrays, etas, batches, betas)
    v = float(v)
    g = np.asarray(g, np.float64)
    names = ("eta", "momentum", "batch")[: g.shape[1]]
    if math.isfinite(v):
        grads = {k: g[:, i] for i, k in enumerate(names)}
    else:
        grads = {k: np.full(t, np.nan) for k in names}
    return (v, grads, np.asarray(curve)) if with_curve else (v, grads)


# --------------------------------------------------------------------------- stability
def _check_constant(beta: float, batch: float, eta: float = 0.0) -> None:
    if not (math.isfinite(eta) and eta >= 0):
        raise ValueError(f"eta must be finite and >= 0; got eta={eta}")
    if not (math.isfinite(beta) and 0 <= beta < 1):
        raise ValueError(f"beta must be in [0, 1); got beta={beta}")
    if not (math.isfinite(batch) and batch >= 1):
        raise ValueError(f"batch must be >= 1; got batch={batch}")


def _den(problem: Problem, eta: float, beta: float, m: float) -> np.ndarray:
    """m D_k = 2m(1 − β) − ηλ_k [(m+1) − 2mβ/(1+β)] (> 0 for every mode: each mode stable)."""
    return 2 * m * (1 - beta) - eta * problem.lam * ((m + 1) - 2 * m * beta / (1 + beta))


def stability_sum(problem: Problem, eta: float, beta: float, batch: float | None = None) -> float:
    """S(η, β) = Σ_k w_k η λ_k / (m D_k) (docs/theory.md §4); constant (η, β) is stable iff every
    D_k > 0 and S < 1. At β = 0 this is :meth:`Problem.stability_sum`."""
    m = problem.batch if batch is None else float(batch)
    _check_constant(beta, m, eta)
    den = _den(problem, eta, beta, m)
    if np.any(den <= 0):
        return math.inf
    return float(np.sum(problem.weight * eta * problem.lam / den))


def eta_critical(problem: Problem, beta: float, batch: float | None = None) -> float:
    """Largest stable constant η at momentum β, the root of S(η, β) = 1 (docs/theory.md §4). The
    stable effective rate η_c(β)/(1 − β) exceeds η_c(0) (1.25-1.5x at β ≥ 0.5 in the problems
    measured there): momentum enlarges the stable region."""
    m = problem.batch if batch is None else float(batch)
    _check_constant(beta, m)
    top = 2 * m * (1 - beta) / (float(np.max(problem.lam)) * ((m + 1) - 2 * m * beta / (1 + beta)))
    hi = top * (1 - 1e-15)
    if stability_sum(problem, hi, beta, m) < 1:  # a single dominant mode bounds it
        return hi
    return float(
        optimize.brentq(
            lambda e: stability_sum(problem, e, beta, m) - 1.0,
            0.0,
            hi,
            xtol=1e-15,
            rtol=4 * np.finfo(float).eps,
        )
    )


def effective_rate_limit(problem: Problem, batch: float | None = None) -> float:
    """The largest stable effective rate as β → 1: lim η_c(β)/(1 − β) (docs/theory.md §4.2).

    With η = x(1 − β), m D_k = (1 − β)[2m − xλ_k] + O((1 − β)²), so the limit x solves

        Σ_k w_k x λ_k / (2m − x λ_k) = 1     (SGD, β = 0: Σ_k w_k η λ_k / (2m − (m+1) η λ_k) = 1),

    a finite number: constant momentum raises the stable effective rate by a bounded factor.
    One mode of λ = 1 (m = 4): SGD's η_c = 2m/(m + 2) = 4/3, the limit m = 4.

    >>> from rfmodel import Problem
    >>> p = Problem(a=2.5, b=1.2, n_modes=1, batch=4)
    >>> round(eta_critical(p, 0.0), 12), round(effective_rate_limit(p), 12)
    (1.333333333333, 4.0)
    """
    m = problem.batch if batch is None else float(batch)
    _check_constant(0.0, m)
    hi = 2 * m / float(np.max(problem.lam)) * (1 - 1e-15)

    def s(x: float) -> float:
        return float(np.sum(problem.weight * x * problem.lam / (2 * m - x * problem.lam))) - 1.0

    if s(hi) < 0:  # a single dominant mode bounds it
        return hi
    return float(optimize.brentq(s, 0.0, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps))


def constant_momentum_gain(problem: Problem, beta: float | None = None) -> float:
    """The predicted long-horizon gain L_SGD(T)/L(T) of a constant momentum β (None: β → 1) in the
    hard phase, (η_c(β) / ((1 − β) η_c(0)))^((a − 1)/b) (docs/theory.md §4.2): the bias of the
    unlearned modes falls as (effective rate × T)^(−(a − 1)/b) and the stable effective rate is
    bounded, so constant momentum keeps SGD's exponent and gains this factor."""
    rate = (
        effective_rate_limit(problem) if beta is None else eta_critical(problem, beta) / (1 - beta)
    )
    return (rate / eta_critical(problem, 0.0)) ** ((problem.a - 1) / problem.b)


def stationary_loss(problem: Problem, eta: float, beta: float, batch: float | None = None) -> float:
    """L(∞) = σ² S/(1 − S) at constant (η, β) (inf when unstable)."""
    s = stability_sum(problem, eta, beta, batch)
    return problem.label_noise**2 * s / (1 - s) if s < 1 else math.inf
