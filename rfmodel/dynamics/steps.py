"""The step recursion of SGD: exact expected-loss dynamics, one step at a time (docs/theory.md §2).

For Gaussian data the per-mode second moments close exactly::

    C_k(t+1) = d_k(t) C_k(t) + (η_t²/m_t) λ_k [L(t) + σ²],
    d_k(t)   = 1 − 2 η_t λ_k + ((m_t+1)/m_t) η_t² λ_k²,        L(t) = Σ_k w_k λ_k C_k(t)

(w_k is the multiplicity of a binned mode, 1 otherwise). :func:`loss_curve` returns
L(0), …, L(T) for a schedule η_0..η_{T−1} (η_t is the rate used by update t, the optax convention).
With ``noise`` (σ_0², …, σ_{T−1}², the label-noise variance of each update's samples,
docs/theory.md §10) update t uses σ_t² in place of the problem's σ²; the adjoint then also
returns ∂/∂σ_t² = (η_t²/m_t) q_t.
Heavy-ball momentum is :mod:`rfmodel.dynamics.momentum`; :func:`rfmodel.dynamics.loss_curve`
chooses between them.

Two implementations share the step above:

- :func:`loss_curve_reference`: a plain ``lax.scan``; ``jax.grad`` through it keeps all T×N
  states. It is the test oracle.
- :func:`loss_curve` (default): the same forward pass, with a hand-written adjoint (costate)
  recursion as a ``jax.custom_vjp``. The backward pass re-runs the forward recursion in blocks
  from √T-spaced checkpoints, so memory is O((T/B + B)·N) rather than O(T·N), and costs about
  three forward passes.

Divergence is explicit: once L(t) overflows, it and every later entry is ``inf`` (never NaN).
Use :func:`diverged` to test a curve.

>>> import jax.numpy as jnp
>>> from rfmodel import Problem
>>> p = Problem(a=2.0, b=1.5, sigma=0.0, n_modes=3, batch=1e12)
>>> curve = loss_curve(p, jnp.full(5, 0.5))
>>> curve.shape
(6,)
>>> bool(jnp.all(jnp.diff(curve) < 0))
True
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .._x64 import float64, host
from ..problem import Problem
from ._common import (
    Array,
    as_f64,
    compile_cpu,
    fused_pays,
    guard,
    is_concrete,
    pad_to,
    padded_arrays,
    prepare,
    problem_arrays,
    rsum,
)

__all__ = [
    "loss_curve",
    "loss_curve_reference",
    "scan_curve",
    "final_loss",
    "final_losses",
    "log_final_loss_and_grad",
    "log_final_loss_and_grads",
    "check_noise",
    "prepare_noise",
    "noise_arrays",
    "block_size",
    "log_objective",
    "run_objective",
    "shared_horizons",
]


def _coeffs(lam: Array, eta: Array, m: Array) -> tuple[Array, Array]:
    """d_k = 1 − 2ηλ_k + ((m+1)/m)η²λ_k² and g = η²/m (docs/theory.md §2)."""
    d = 1.0 - 2.0 * eta * lam + (1.0 + 1.0 / m) * (eta * lam) ** 2
    return d, eta * eta / m


def _step(lam, wlam, s2, carry, inp):
    c, loss = carry
    eta, m = inp[:2]
    if len(inp) == 3:  # per-step label noise σ_t² (docs/theory.md §10)
        s2 = inp[2]
    d, g = _coeffs(lam, eta, m)
    c = d * c + (g * (loss + s2)) * lam
    loss = guard(wlam @ c)
    return (c, loss), loss


def scan_curve(lam, c0, wlam, s2, etas, batches, unroll=1, noise=None):
    """L(0..T) from raw arrays (λ, C(0), w·λ, σ², η, m) by a plain ``lax.scan``: differentiable
    by autodiff in every argument, the spectrum included (the fit of :mod:`rfmodel.practice`
    differentiates it in the exponents). ``noise``: per-step σ_t², shape (T,), in place of σ²."""
    loss0 = guard(wlam @ c0)
    xs = (etas, batches) if noise is None else (etas, batches, noise)
    (_, _), losses = jax.lax.scan(partial(_step, lam, wlam, s2), (c0, loss0), xs, unroll=unroll)
    return jnp.concatenate([loss0[None], losses])


@partial(jax.jit, static_argnames=("unroll",))
def _reference(lam, c0, wlam, s2, etas, batches, unroll=1, noise=None):
    return scan_curve(lam, c0, wlam, s2, etas, batches, unroll, noise)


def check_noise(noise, etas, *, name: str = "noise") -> None:
    """Raise ``ValueError`` unless ``noise`` (per-step label-noise variances σ_t²) has the shape
    of ``etas``, is finite and ≥ 0. Skipped for traced values."""
    v = np.asarray(noise) if is_concrete(noise) else None
    shaped = v is None or v.shape == np.shape(etas)
    if not shaped:
        raise ValueError(
            f"{name} must have the shape of etas {np.shape(etas)} (one label-noise variance "
            f"σ_t² per update); got shape {v.shape}"
        )
    bad = np.array([], int) if v is None else np.flatnonzero(~(np.isfinite(v) & (v >= 0)))
    if bad.size:
        raise ValueError(
            f"{name} must be finite and >= 0 (variances σ_t²); got {name}[{bad[0]}]={v[bad[0]]}"
        )


def prepare_noise(problem: Problem, etas, batches, noise):
    """(η, m, σ²): the schedule checked, σ² the problem's scalar or the per-step ``noise``."""
    etas_in = etas
    etas, batches = prepare(problem, etas, batches)
    if noise is None:
        return etas, batches, None
    check_noise(noise, etas_in)
    return etas, batches, as_f64(noise)


@float64
def loss_curve_reference(problem: Problem, etas, batches=None, noise=None) -> Array | np.ndarray:
    """L(0..T) by a plain ``lax.scan`` (autodiff keeps every state): the test oracle. ``noise``:
    per-step σ_t² (docs/theory.md §10)."""
    etas, batches, noise = prepare_noise(problem, etas, batches, noise)
    return host(_reference(*problem_arrays(problem), etas, batches, noise=noise))


# --------------------------------------------------------------------------- fast adjoint
# Performance notes (XLA:CPU, float64). Per step the recursion is one length-N elementwise update
# plus one length-N reduction, so the cost is set by how XLA compiles these two small kernels:
# - A plain ``jnp.sum``/``@`` over N becomes a tree of sequential 32-wide reduce-windows that run
#   latency-bound. Summing by pairwise halving (``rsum``) compiles to a few vectorised fused
#   kernels and is ~2x faster; modes are zero-padded (λ = C = w = 0: inert) to a size that halves
#   cleanly.
# - The per-step scalars (2η, (1+1/m)η², η²/m) are precomputed for the whole schedule.
# - The costate step reduces only q = Σλp; r1 = Σλ C p and r2 = Σλ² C p are reduced afterwards
#   for many steps at once (reading C(t) row by row inside the step loop compiles to slow
#   dynamic-slice fusions).
# - Keeping every state instead of checkpoints (one loop each way, ~30% less compile time) was
#   measured slower end to end even at N = 500, T = 1000: the (T, N) arrays fall out of cache
#   (3.5 vs 2 ms per loss-plus-gradient evaluation; 0.88 vs 0.72 s for a cold P2 solve).
# - Larger scan unrolls make XLA fuse chains of steps and recompute them: keep unroll small.
_UNROLL = 8  # granularity of the checkpoint spacing
_U_FWD = 1
_U_RE = 2  # measured: 2 beats 1 and 4 for the elementwise block re-run
_U_BACK = 1


def block_size(t: int) -> int:
    """Checkpoint spacing B ≈ √T (memory (T/B + B)·N), at least one unrolled chunk."""
    return max(_UNROLL, int(np.ceil(np.sqrt(t) / _UNROLL)) * _UNROLL)


def _step_coeffs(etas: Array, batches: Array) -> Array:
    """Per-step scalars (2η, (1+1/m)η², η²/m), shape (T, 3): d = 1 − 2ηλ + (1+1/m)η²λ²."""
    e2 = etas * etas
    inv_m = 1.0 / batches
    return jnp.stack([2.0 * etas, (1.0 + inv_m) * e2, e2 * inv_m], axis=1)


def _with_noise(coef: Array, s2: Array) -> Array:
    """The per-step scalars with σ_t² as a fourth column when ``s2`` is per step (T,); unchanged
    for the problem's scalar σ² (then the compiled step is exactly the plain one)."""
    return coef if jnp.ndim(s2) == 0 else jnp.concatenate([coef, s2[:, None]], axis=1)


def _fstep(lam, lam2, wlam, s2, carry, coef):
    c, loss = carry
    if coef.shape[0] == 4:  # per-step σ_t² (docs/theory.md §10)
        s2 = coef[3]
    c = (1.0 - coef[0] * lam + coef[1] * lam2) * c + (coef[2] * (loss + s2)) * lam
    loss = guard(rsum(wlam * c))
    return (c, loss), loss


def _primal(lam, lam2, c0, wlam, s2, coef):
    """L(0..T), keeping nothing for the adjoint."""
    loss0 = guard(rsum(wlam * c0))
    _, losses = jax.lax.scan(partial(_fstep, lam, lam2, wlam, s2), (c0, loss0), coef, unroll=_U_FWD)
    return jnp.concatenate([loss0[None], losses])


def _forward(lam, lam2, c0, wlam, s2, coef, block):
    """L(0..T) and the checkpoints C(0), C(B), C(2B), … for the adjoint (the schedule is padded
    to whole blocks with η = 0 steps, which are inert)."""
    t, width = coef.shape
    nb = -(-t // block)
    coef = jnp.concatenate([coef, jnp.zeros((nb * block - t, width))])
    step = partial(_fstep, lam, lam2, wlam, s2)
    loss0 = guard(rsum(wlam * c0))

    def block_fn(carry, cf):
        carry_out, losses = jax.lax.scan(step, carry, cf, unroll=_U_FWD)
        return carry_out, (carry[0], losses)

    _, (checkpoints, losses) = jax.lax.scan(block_fn, (c0, loss0), coef.reshape(nb, block, width))
    return jnp.concatenate([loss0[None], losses.reshape(-1)])[: t + 1], checkpoints


def _block_back(lam, lam2, wlam, p, inp):
    """One block of the costate recursion: ``p`` = ∂J/∂C(t+1) at the block's end (ū_{t+1}
    included); ``inp`` = (its checkpoint C, per-step scalars (B, 3), η²/m·(L(t) + σ²) (B,),
    ū (B,)). Returns p at the block's start and the per-step sums (q, r1, r2), shape (B, 3)."""
    c_start, cf, gb, ub = inp

    # Re-run the block forward from its checkpoint with the saved L(t): elementwise only.
    def refwd(c, x):
        a, b, g = x
        return (1.0 - a * lam + b * lam2) * c + g * lam, c

    _, cs = jax.lax.scan(refwd, c_start, (cf[:, 0], cf[:, 1], gb), unroll=_U_RE)

    def back_step(p, x):
        a, b, g, un = x
        q = rsum(lam * p)
        return (1.0 - a * lam + b * lam2) * p + (g * q + un) * wlam, (q, p)

    p, (q, ps) = jax.lax.scan(
        back_step, p, (cf[:, 0], cf[:, 1], cf[:, 2], ub), reverse=True, unroll=_U_BACK
    )
    x = cs * ps * lam
    return p, jnp.stack([q, rsum(x), rsum(x * lam)], axis=1)


def _backward(lam, lam2, wlam, s2, coef, curve, checkpoints, ubar, block):
    """The costate recursion for cotangents ū of L(0..T) (docs/theory.md §2): with
    p(T) = ū_T wλ and p(t) = d_t p(t+1) + (g_t q_t + ū_t) wλ, q_t = Σ_k λ_k p_k(t+1), returns
    p(0) and the per-step sums (q_t, r1_t, r2_t), shape (T, 3), r_i = Σ_k λ_k^i C_k(t) p_k(t+1).
    ``s2``: σ² or the per-step σ_t², shape (T,)."""
    t = coef.shape[0]
    nb = checkpoints.shape[0]
    tp = nb * block
    coef = jnp.concatenate([coef, jnp.zeros((tp - t, 3))])
    gam = pad_to(coef[:t, 2] * (curve[:-1] + s2), tp)  # η²/m·(L(t) + σ²): forcing of step t
    u = pad_to(ubar, tp + 1)  # cotangents of L(0..T), zero on padded outputs
    p_end = u[tp] * wlam

    p0, s = jax.lax.scan(
        partial(_block_back, lam, lam2, wlam),
        p_end,
        (
            checkpoints,
            coef.reshape(nb, block, 3),
            gam.reshape(nb, block),
            u[:tp].reshape(nb, block),
        ),
        reverse=True,
    )
    return p0, s.reshape(tp, 3)[:t]


def _schedule_grads(etas, batches, curve, s2, s):
    """∂J/∂η_t and ∂J/∂m_t from the costate sums: d_t and g_t = η_t²/m_t are the only places
    η_t and m_t enter step t (∂d/∂η = −2λ + 2(1+1/m)ηλ², ∂g/∂η = 2η/m, …). ``s2``: σ² or the
    per-step σ_t² (T,)."""
    q, r1, r2 = s[:, 0], s[:, 1], s[:, 2]
    noise = curve[:-1] + s2
    inv_m = 1.0 / batches
    g_eta = -2.0 * r1 + 2.0 * (1.0 + inv_m) * etas * r2 + 2.0 * etas * inv_m * noise * q
    g_m = -(etas * etas * inv_m * inv_m) * (r2 + noise * q)
    return g_eta, g_m


@partial(jax.custom_vjp, nondiff_argnums=(7,))
def _fast(lam, lam2, c0, wlam, s2, etas, batches, block):
    """L(0..T); ``s2`` the problem's σ² (a scalar: a constant) or per-step σ_t² (T,)."""
    return _primal(lam, lam2, c0, wlam, s2, _with_noise(_step_coeffs(etas, batches), s2))


def _fast_fwd(lam, lam2, c0, wlam, s2, etas, batches, block):
    coef = _with_noise(_step_coeffs(etas, batches), s2)
    curve, checkpoints = _forward(lam, lam2, c0, wlam, s2, coef, block)
    return curve, (lam, lam2, wlam, s2, etas, batches, curve, checkpoints)


@float64
def _fast_bwd(block, res, ubar):
    lam, lam2, wlam, s2, etas, batches, curve, checkpoints = res
    coef = _step_coeffs(etas, batches)
    _, s = _backward(lam, lam2, wlam, s2, coef, curve, checkpoints, ubar, block)
    zero = jnp.zeros_like(lam)  # the problem's arrays are constants: no gradient
    # The problem's σ² is a constant; per-step σ_t² enter step t as (η_t²/m_t) σ_t² λ:
    # ∂J/∂σ_t² = (η_t²/m_t) q_t (docs/theory.md §10).
    g_s2 = jnp.zeros_like(s2) if jnp.ndim(s2) == 0 else coef[:, 2] * s[:, 0]
    return (zero, zero, zero, zero, g_s2, *_schedule_grads(etas, batches, curve, s2, s))


_fast.defvjp(_fast_fwd, _fast_bwd)


@partial(jax.jit, static_argnames=("block",))
def _fast_jit(lam, lam2, c0, wlam, s2, etas, batches, block):
    return _fast(lam, lam2, c0, wlam, s2, etas, batches, block)


def noise_arrays(problem: Problem, noise) -> tuple[Array, ...]:
    """The padded arrays of the problem (:func:`padded_arrays`), σ² replaced by the per-step
    ``noise`` when given."""
    arrays = padded_arrays(problem)
    return arrays if noise is None else (*arrays[:4], noise)


@float64
def loss_curve(problem: Problem, etas, batches=None, noise=None) -> Array | np.ndarray:
    """L(0..T) of SGD with the checkpointed adjoint (see :func:`rfmodel.dynamics.loss_curve`,
    which also takes momenta); ``noise``: per-step σ_t², shape (T,) (docs/theory.md §10)."""
    etas, batches, noise = prepare_noise(problem, etas, batches, noise)
    arrays = noise_arrays(problem, noise)
    return host(_fast_jit(*arrays, etas, batches, block_size(etas.shape[0])))


# --------------------------------------------------------------------------- solver objective


@partial(jax.jit, static_argnames=("block", "batch_grad"))
def _log_final_vg(lam, lam2, c0, wlam, s2, etas, batches, block, batch_grad=False):
    """log L(T), its gradient (with respect to η, or (η, m) with ``batch_grad``) and L(0..T).

    Both gradients come from the one adjoint pass (:func:`_schedule_grads`): the m-gradient
    costs one more elementwise pass over T."""

    def f(e, m):
        curve = _fast(lam, lam2, c0, wlam, s2, e, m, block)
        return jnp.log(curve[-1]), curve

    (v, curve), g = jax.value_and_grad(f, argnums=(0, 1) if batch_grad else 0, has_aux=True)(
        etas, batches
    )
    return v, g, curve


@functools.lru_cache(maxsize=16)
def _objective_executable(t: int, n: int, block: int, batch_grad: bool = False):
    """:func:`_log_final_vg` compiled for horizon t and n padded modes."""
    f64 = partial(jax.ShapeDtypeStruct, dtype=jnp.float64)
    vec, sched = f64((n,)), f64((t,))
    return compile_cpu(
        _log_final_vg.lower(
            vec, vec, vec, vec, f64(()), sched, sched, block=block, batch_grad=batch_grad
        ),
        fused=fused_pays(n, t),
    )


@float64
def log_final_loss_and_grad(
    problem: Problem,
    etas,
    batches=None,
    *,
    with_curve: bool = False,
    batch_grad: bool = False,
):
    """(log L(T), ∇_η log L(T)) as numpy (float, (T,)): the optimizers' objective.

    Compiled once per horizon T, shared by :mod:`rfmodel.control` and
    :func:`rfmodel.schedules.tune`. Returns (inf, NaN gradient) once the run diverges. With
    ``with_curve`` also returns the loss curve L(0..T). With ``batch_grad`` the gradient is the
    pair (∇_η log L(T), ∇_m log L(T)), both shape (T,), from the same adjoint pass
    (docs/theory.md §2): ``v, (g_eta, g_m) = log_final_loss_and_grad(p, etas, batches,
    batch_grad=True)``.
    """
    etas, batches = prepare(problem, etas, batches)
    arrays = padded_arrays(problem)
    t, n = etas.shape[0], arrays[0].shape[0]
    run = _shared_objective(t, n, bool(batch_grad))
    if run is None:
        run = _objective_executable(t, n, block_size(t), bool(batch_grad))
    v, g, curve = run(*arrays, etas, batches)
    v = float(v)
    if batch_grad:
        g = tuple(np.asarray(x, np.float64) if math.isfinite(v) else np.full(t, np.nan) for x in g)
    else:
        g = np.asarray(g, dtype=np.float64) if math.isfinite(v) else np.full(t, np.nan)
    return (v, g, np.asarray(curve)) if with_curve else (v, g)


# --------------------------------------------------------------------------- shared horizons
# A chain of horizons (rfmodel.control.optimize_schedules, T doubling) compiled one objective per
# T: at N = 1536, K = 64, T = 256 … 4096 (hard problem) 1.6 s of the chain's 3.6 s was
# compiling. Inside :func:`shared_horizons` the η objective is compiled once for a capacity T_max
# and runs any T ≤ T_max: the schedule is padded with η = 0 steps (inert: C stays put) to whole
# blocks of the capacity's spacing, and both passes loop over ceil(T/B) blocks, a count given at
# run time, so a short horizon costs its own steps, not the capacity's. At T = t_max the program
# gives bit-identical values and gradients; below, the values are identical and the gradients
# agree to 1.4e-15 relative (other checkpoint spacing).
# A horizon runs in the program of the capacity t_max/16^k just above it (at most 16x its own
# length: T = 1024 in a capacity of 4096 ran 3.99 against 3.47 ms per evaluation, N = 1536), so
# a chain of T = 100 … 51 200 compiles three programs, not ten.
_TIER = 16
_SHARED: contextvars.ContextVar[int | None] = contextvars.ContextVar("rfmodel_shared", default=None)


@contextlib.contextmanager
def shared_horizons(t_max: int):
    """Inside the block, :func:`log_final_loss_and_grad` runs every horizon T ≤ ``t_max`` with
    one compiled program (values equal the per-horizon program's to rounding; the loss itself
    is the same forward pass, gradients agree to ~1e-15 relative).

    >>> from rfmodel import Problem
    >>> p = Problem(a=2.0, b=1.5, sigma=0.1, n_modes=50, batch=4)
    >>> with shared_horizons(64):
    ...     v = log_final_loss_and_grad(p, np.full(40, 0.5))[0]
    >>> abs(v - log_final_loss_and_grad(p, np.full(40, 0.5))[0]) < 1e-14
    True
    """
    if isinstance(t_max, bool) or not isinstance(t_max, int | np.integer) or t_max < 1:
        raise ValueError(f"t_max must be an integer >= 1; got t_max={t_max!r}")
    token = _SHARED.set(int(t_max))
    try:
        yield
    finally:
        _SHARED.reset(token)


def _forward_shared(lam, lam2, c0, wlam, s2, coef, nb, block):
    """:func:`_forward` over the first ``nb`` (run time) of the capacity's blocks: L(0..cap) (zero
    past block nb), the checkpoints (cap/B, N) and L at the end of block nb."""
    nb_cap = coef.shape[0] // block
    cb = coef.reshape(nb_cap, block, coef.shape[1])
    step = partial(_fstep, lam, lam2, wlam, s2)
    loss0 = guard(rsum(wlam * c0))

    def body(i, state):
        c, loss, ck, ls = state
        (c_out, loss_out), losses = jax.lax.scan(step, (c, loss), cb[i], unroll=_U_FWD)
        return c_out, loss_out, ck.at[i].set(c), ls.at[i].set(losses)

    init = (c0, loss0, jnp.zeros((nb_cap,) + c0.shape), jnp.zeros((nb_cap, block)))
    _, loss, ck, ls = jax.lax.fori_loop(0, nb, body, init)
    return jnp.concatenate([loss0[None], ls.reshape(-1)]), ck, loss


@partial(jax.jit, static_argnames=("block", "batch_grad"))
def _log_final_vg_shared(lam, lam2, c0, wlam, s2, etas, batches, nb, block, batch_grad=False):
    """:func:`_log_final_vg` for a schedule padded with η = 0 to the capacity, run over its first
    ``nb`` blocks: the cotangent 1/L(T) enters at the end of block nb, where L = L(T) (the
    padded steps are inert), and the costates pass the padded steps unchanged."""
    coef = _step_coeffs(etas, batches)
    curve, checkpoints, loss = _forward_shared(lam, lam2, c0, wlam, s2, coef, nb, block)
    nb_cap = checkpoints.shape[0]
    gam = (coef[:, 2] * (curve[:-1] + s2)).reshape(nb_cap, block)
    cf, zero = coef.reshape(nb_cap, block, 3), jnp.zeros(block)

    def body(i, state):
        p, out = state
        j = nb - 1 - i
        p, sums = _block_back(lam, lam2, wlam, p, (checkpoints[j], cf[j], gam[j], zero))
        return p, out.at[j].set(sums)

    p_end = (1.0 / loss) * wlam
    _, s = jax.lax.fori_loop(0, nb, body, (p_end, jnp.zeros((nb_cap, block, 3))))
    g_eta, g_m = _schedule_grads(etas, batches, curve, s2, s.reshape(-1, 3))
    return jnp.log(loss), ((g_eta, g_m) if batch_grad else g_eta), curve


@functools.lru_cache(maxsize=8)
def _shared_executable(cap: int, n: int, block: int, batch_grad: bool):
    """:func:`_log_final_vg_shared` compiled for capacity ``cap`` (a multiple of ``block``)."""
    f64 = partial(jax.ShapeDtypeStruct, dtype=jnp.float64)
    vec, sched = f64((n,)), f64((cap,))
    nb = jax.ShapeDtypeStruct((), jnp.int32)
    lowered = _log_final_vg_shared.lower(
        vec, vec, vec, vec, f64(()), sched, sched, nb, block=block, batch_grad=batch_grad
    )
    return compile_cpu(lowered, fused=fused_pays(n, cap))


def _shared_objective(t: int, n: int, batch_grad: bool):
    """The shared program for horizon ``t`` inside :func:`shared_horizons` (None outside it, or
    when t exceeds the capacity): ``run(*arrays, etas, batches) -> (v, g, curve)`` as
    :func:`_objective_executable`'s."""
    t_max = _SHARED.get()
    if t_max is None or t > t_max:
        return None
    tier = t_max
    while tier > _TIER * t:  # a horizon far below t_max gets a smaller tier's program
        tier = -(-tier // _TIER)
    block = block_size(tier)
    cap = -(-tier // block) * block
    exe = _shared_executable(cap, n, block, batch_grad)
    nb = np.int32(-(-t // block))

    def run(lam, lam2, c0, wlam, s2, etas, batches):
        pad = cap - t
        e = np.concatenate([np.asarray(etas, np.float64), np.zeros(pad)])
        m = np.concatenate([np.asarray(batches, np.float64), np.ones(pad)])
        v, g, curve = exe(lam, lam2, c0, wlam, s2, e, m, nb)
        g = tuple(x[:t] for x in g) if batch_grad else g[:t]
        return v, g, curve[: t + 1]

    return run


def log_objective(curves, final=lambda curve: curve[-1]):
    """The jitted objective ``(λ, λ², C(0), wλ, *schedules, block) -> (log final(curves),
    its gradient with respect to every schedule, curves)`` of a differentiable
    ``curves(λ, λ², C(0), wλ, *schedules, block)``."""

    @partial(jax.jit, static_argnames=("block",))
    def objective(lam, lam2, c0, wlam, *schedules, block):
        def f(*u):
            out = curves(lam, lam2, c0, wlam, *u, block)
            return jnp.log(final(out)), out

        args = tuple(range(len(schedules)))
        (v, out), g = jax.value_and_grad(f, argnums=args, has_aux=True)(*schedules)
        return v, g, out

    return objective


#: log L(T) and its gradients with respect to (η, m, σ²) per step, and L(0..T).
_log_final_vgs = log_objective(
    lambda lam, lam2, c0, wlam, e, m, s, block: _fast(lam, lam2, c0, wlam, s, e, m, block)
)


@functools.lru_cache(maxsize=32)
def _compiled(fn, t: int, n: int, block: int, n_sched: int):
    """``fn(λ, λ², C(0), wλ, *schedules, block=block)`` compiled for horizon t, n padded modes
    and ``n_sched`` per-step inputs."""
    f64 = partial(jax.ShapeDtypeStruct, dtype=jnp.float64)
    vec, sched = f64((n,)), f64((t,))
    return compile_cpu(
        fn.lower(vec, vec, vec, vec, *[sched] * n_sched, block=block), fused=fused_pays(n, t)
    )


def run_objective(fn, arrays, schedules, names, *, with_curve: bool = False):
    """Run a jitted objective ``fn(λ, λ², C(0), wλ, *schedules, block) -> (log L, gradients,
    curve)`` compiled once per horizon; returns ``(value, {name: gradient}, curve?)`` as numpy,
    NaN gradients once the run diverged (the objectives of :func:`log_final_loss_and_grads` and
    :func:`rfmodel.dynamics.averaging.log_final_loss_and_grads`)."""
    t, n = schedules[0].shape[0], arrays[0].shape[0]
    v, g, curve = _compiled(fn, t, n, block_size(t), len(schedules))(*arrays, *schedules)
    v = float(v)
    grads = {
        k: np.asarray(x, np.float64) if math.isfinite(v) else np.full(t, np.nan)
        for k, x in zip(names, g, strict=True)
    }
    return (v, grads, np.asarray(curve)) if with_curve else (v, grads)


@float64
def log_final_loss_and_grads(
    problem: Problem, etas, batches=None, noise=None, *, with_curve: bool = False
):
    """(log L(T), {"eta", "batch", "noise": ∂ log L(T)/∂(η_t, m_t, σ_t²)}) as numpy (float, (T,)
    each), with per-step label noise ``noise`` σ_t² (default: the problem's σ² at every step):
    the objective of the data-quality control (docs/theory.md §10). One adjoint pass gives all
    three. NaN gradients once the run diverges; with ``with_curve`` also L(0..T)."""
    etas, batches, noise = prepare_noise(problem, etas, batches, noise)
    arrays = padded_arrays(problem)
    if noise is None:
        noise = np.full(etas.shape[0], float(problem.label_noise) ** 2)
    names = ("eta", "batch", "noise")
    return run_objective(
        _log_final_vgs, arrays[:4], (etas, batches, noise), names, with_curve=with_curve
    )


_CHUNK = 64
#: At most this many rates of a batch of schedules on the device at once (32 MB).
_RATES_BUDGET = 1 << 22


def _chunk_rows(t: int) -> int:
    """Schedules per compiled batch: 64, fewer at long horizons (a power of two, so only a few
    shapes are ever compiled), keeping rows × T within :data:`_RATES_BUDGET`."""
    rows = max(1, min(_CHUNK, _RATES_BUDGET // max(t, 1)))
    return 1 << (rows.bit_length() - 1)


@jax.jit
def _batched_final(lam, lam2, c0, wlam, s2, etas, batches):
    return jax.vmap(lambda e: _primal(lam, lam2, c0, wlam, s2, _step_coeffs(e, batches))[-1])(etas)


@float64
def final_losses(problem: Problem, etas) -> np.ndarray:
    """L(T) for every row of ``etas`` (G, T) as numpy (G,): many schedules in one ``vmap``.

    Rows go in fixed-size chunks (padded; fewer rows per chunk at long horizons, so the device
    holds at most ~4M rates and G·N_eff states are never all live), so there are few
    compilations per horizon T. Every row is validated like a schedule (:func:`check_schedule`).
    """
    try:
        etas = np.asarray(etas, np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"etas must be a 2-D array of learning rates (schedules, T); got {type(etas).__name__}"
        ) from None
    if etas.ndim != 2 or etas.shape[0] == 0 or etas.shape[1] == 0:
        raise ValueError(
            f"etas must be a non-empty 2-D array (schedules, T); got shape {etas.shape}"
        )
    if not np.all(np.isfinite(etas)):
        r, t = np.argwhere(~np.isfinite(etas))[0]
        raise ValueError(f"etas must be finite; got {etas[r, t]} at row {r}, step {t}")
    if np.any(etas < 0):
        r, t = np.unravel_index(int(np.argmin(etas)), etas.shape)
        raise ValueError(f"etas must be >= 0; got {etas[r, t]} at row {r}, step {t}")
    arrays = padded_arrays(problem)
    m = np.full(etas.shape[1], problem.batch, np.float64)
    chunk = _chunk_rows(etas.shape[1])
    out = []
    for s in range(0, etas.shape[0], chunk):
        rows = etas[s : s + chunk]
        pad = chunk - rows.shape[0]
        rows = np.concatenate([rows, np.repeat(rows[-1:], pad, axis=0)])
        out.append(np.asarray(_batched_final(*arrays, rows, m))[: chunk - pad])
    return np.concatenate(out)


@float64
def final_loss(problem: Problem, etas, batches=None, noise=None) -> Array:
    """L(T), the loss after the last update."""
    return loss_curve(problem, etas, batches, noise)[-1]
