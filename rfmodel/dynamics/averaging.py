"""Exact expected loss of an averaged iterate (iterate averaging, EMA), docs/theory.md §11.

The average w̄ follows the SGD iterate w of :mod:`rfmodel.dynamics.steps`::

    w̄_0 = w_0,        w̄_{t+1} = (1 − τ_t) w̄_t + τ_t w_{t+1},        τ_t ∈ [0, 1]

(τ ≡ 1: no averaging; τ constant: an exponential moving average; τ_t = 1 before t₀ and
1/(t − t₀ + 1) from t₀ on: the uniform average of w_{t₀+1}, …, w_{t+1}, :func:`uniform_average`).
With the errors e = w − w*, ē = w̄ − w*, three moments per mode close exactly for Gaussian data:
C = E[e²] (the SGD recursion), the cross moment B = E[ē e] and A = E[ē²]. With
d = 1 − 2ηλ + ((m+1)/m)η²λ², h = 1 − ηλ and L = Σ_j w_j λ_j C_j::

    C' = d C + (η²/m) λ (L + σ_t²)
    B' = (1 − τ) h B + τ C'
    A' = (1 − τ)² A + 2τ(1 − τ) h B + τ² C'            A(0) = B(0) = C(0),

and the averaged iterate's loss is L̄ = Σ_j w_j λ_j A_j. The modes couple only through L (the
raw iterate's loss drives the noise). :func:`loss_curves` returns both L̄(0..T) and L(0..T)
with a hand-written adjoint (a three-component costate per mode, checkpoints every ≈ √T steps,
as :mod:`rfmodel.dynamics.steps`); :func:`loss_curves_reference` is the plain-``scan`` test
oracle; :func:`log_final_loss_and_grads` is the solver's objective log L̄(T) with its gradient
in (η_t, m_t, σ_t², τ_t). Per-step label noise (``noise``, §10) and a preconditioner (the
problem's effective spectrum, §12) enter as in the SGD recursion. At τ ≡ 1, A = B = C exactly
and L̄ is the SGD curve bit for bit.

>>> import numpy as np
>>> from rfmodel import Problem
>>> p = Problem(a=2.5, b=1.2, sigma=0.5, n_modes=200, batch=4)
>>> etas = np.full(400, 0.5 * p.eta_critical())
>>> plain, averaged = loss_curve(p, etas, average=1.0), loss_curve(p, etas, average=0.02)
>>> bool(averaged[-1] < plain[-1])   # an EMA of a constant-rate run lowers the noise floor
True
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .._x64 import float64, host
from ..problem import Problem
from ._common import Array, as_f64, guard, is_concrete, pad_to, rsum
from .steps import block_size, log_objective, noise_arrays, prepare_noise, run_objective

__all__ = [
    "check_average",
    "uniform_average",
    "loss_curve",
    "loss_curves",
    "loss_curves_reference",
    "log_final_loss_and_grads",
]


def check_average(average, etas) -> np.ndarray | Array:
    """The averaging weights τ_t as float64 of the shape of ``etas`` (a scalar is broadcast);
    ``ValueError`` unless finite and in [0, 1]. Traced values pass unchecked."""
    if not is_concrete(average):
        return jnp.broadcast_to(jnp.asarray(average, jnp.float64), jnp.shape(etas))
    tau = np.asarray(average)
    if tau.dtype.kind not in "biuf":
        raise ValueError(
            f"average must be a number or an array of weights τ_t in [0, 1]; got {average!r:.60}"
        )
    tau = np.broadcast_to(tau.astype(np.float64), np.shape(etas)) if tau.ndim == 0 else tau
    if tau.shape != np.shape(etas):
        raise ValueError(
            f"average must be a scalar or have the shape of etas {np.shape(etas)} (one weight "
            f"τ_t per update); got shape {tau.shape}"
        )
    bad = np.flatnonzero(~((tau >= 0) & (tau <= 1)))  # NaN fails both
    if bad.size:
        raise ValueError(
            f"average must be finite and in [0, 1] (w̄ ← (1 − τ) w̄ + τ w; 1 is no averaging); "
            f"got average[{bad[0]}]={tau[bad[0]]}"
        )
    return tau.astype(np.float64)


def uniform_average(T: int, start: int) -> np.ndarray:
    """τ_t of the uniform average of the iterates w_{start+1}, …, w_T: 1 for t < start, then
    1/(t − start + 1), shape (T,). ``start`` = T − 1 averages nothing (the last iterate).

    >>> uniform_average(5, 2).tolist()
    [1.0, 1.0, 1.0, 0.5, 0.3333333333333333]
    """
    if not isinstance(T, int | np.integer) or T < 1:
        raise ValueError(f"T must be an integer >= 1; got T={T!r}")
    if not isinstance(start, int | np.integer) or not 0 <= start < T:
        raise ValueError(f"start must be an integer in [0, T-1={T - 1}]; got start={start!r}")
    t = np.arange(T, dtype=np.float64)
    return 1.0 / np.maximum(t - start + 1.0, 1.0)


def _prepare(problem: Problem, etas, batches, noise, average):
    tau = check_average(average, etas)
    etas, batches, noise = prepare_noise(problem, etas, batches, noise)
    return etas, batches, noise, as_f64(tau)


# --------------------------------------------------------------------------- reference oracle
def _ref_step(lam, wlam, s2, carry, inp):
    (c, b, a), loss = carry
    eta, m, tau = inp[:3]
    if len(inp) == 4:
        s2 = inp[3]
    d = 1.0 - 2.0 * eta * lam + (1.0 + 1.0 / m) * (eta * lam) ** 2
    hb = (1.0 - eta * lam) * b
    c = d * c + (eta * eta / m) * (loss + s2) * lam
    b = (1.0 - tau) * hb + tau * c
    a = (1.0 - tau) ** 2 * a + 2.0 * tau * (1.0 - tau) * hb + tau * tau * c
    loss = guard(wlam @ c)
    return ((c, b, a), loss), jnp.stack([guard(wlam @ a), loss])


@jax.jit
def _reference(lam, c0, wlam, s2, etas, batches, taus, noise=None):
    loss0 = guard(wlam @ c0)
    xs = (etas, batches, taus) if noise is None else (etas, batches, taus, noise)
    _, out = jax.lax.scan(partial(_ref_step, lam, wlam, s2), ((c0, c0, c0), loss0), xs)
    return jnp.concatenate([jnp.stack([loss0, loss0])[None], out]).T


@float64
def loss_curves_reference(
    problem: Problem, etas, batches=None, noise=None, average=1.0
) -> Array | np.ndarray:
    """(L̄(0..T), L(0..T)), shape (2, T+1), by a plain ``lax.scan`` (autodiff keeps every
    state): the test oracle of :func:`loss_curves`."""
    etas, batches, noise, taus = _prepare(problem, etas, batches, noise, average)
    lam, _, c0, wlam, s2 = noise_arrays(problem, None)
    return host(_reference(lam, c0, wlam, s2, etas, batches, taus, noise))


# --------------------------------------------------------------------------- fast adjoint
# Per-step scalars, shape (T, 7): 2η, (1+1/m)η², η²/m, η, τ, and σ_t² (the problem's σ² when no
# per-step noise is given), and 1/m (for the batch gradient).
def _coefs(etas, batches, taus, s2):
    e2, inv_m = etas * etas, 1.0 / batches
    s2 = jnp.broadcast_to(s2, etas.shape)
    return jnp.stack([2.0 * etas, (1.0 + inv_m) * e2, e2 * inv_m, etas, taus, s2, inv_m], axis=1)


def _padding(n: int, width: int) -> Array:
    """``n`` inert steps (η = 0, τ = 1, m = 1) that fill the last block."""
    return jnp.zeros((n, width)).at[:, 4].set(1.0).at[:, 6].set(1.0)


def _fstep(lam, lam2, wlam, carry, k):
    (c, b, a), loss = carry
    hb = (1.0 - k[3] * lam) * b
    c = (1.0 - k[0] * lam + k[1] * lam2) * c + (k[2] * (loss + k[5])) * lam
    tau = k[4]
    b = (1.0 - tau) * hb + tau * c
    a = (1.0 - tau) ** 2 * a + 2.0 * tau * (1.0 - tau) * hb + tau * tau * c
    loss = guard(rsum(wlam * c))
    return ((c, b, a), loss), jnp.stack([guard(rsum(wlam * a)), loss])


def _forward(lam, lam2, c0, wlam, coef, block):
    """(L̄, L)(0..T), shape (2, T+1), and the states (C, B, A) every ``block`` steps (the
    schedule padded to whole blocks with η = 0, τ = 1 steps, which are inert)."""
    t = coef.shape[0]
    nb = -(-t // block)
    coef = jnp.concatenate([coef, _padding(nb * block - t, coef.shape[1])])
    loss0 = guard(rsum(wlam * c0))
    step = partial(_fstep, lam, lam2, wlam)

    def block_fn(carry, cf):
        out, curves = jax.lax.scan(step, carry, cf)
        return out, (jnp.stack(carry[0]), curves)

    _, (checkpoints, curves) = jax.lax.scan(
        block_fn, ((c0, c0, c0), loss0), coef.reshape(nb, block, -1)
    )
    curves = jnp.concatenate([jnp.stack([loss0, loss0])[None], curves.reshape(-1, 2)])
    return curves[: t + 1].T, checkpoints


def _backward(lam, lam2, wlam, coef, curves, checkpoints, ubar, block):
    """The costate recursion (docs/theory.md §11) for cotangents ū of (L̄, L)(0..T), shape
    (2, T+1): with u = p_C' + τ p_B' + τ² p_A' and z = (1 − τ) p_B' + 2τ(1 − τ) p_A' (costates
    at t + 1),

        p_C = d u + ((η²/m) q + ū_L(t)) wλ,   q = Σ_k λ_k u_k,
        p_B = h z,                            p_A = (1 − τ)² p_A' + ū_L̄(t) wλ,

    from p(T) = (ū_L(T) wλ, 0, ū_L̄(T) wλ) (a padded step η = 0, τ = 1 maps a zero costate to
    exactly that). Returns the per-step gradients (η, m, σ², τ), shape (T, 4)."""
    t = coef.shape[0]
    nb = checkpoints.shape[0]
    tp = nb * block
    coef = jnp.concatenate([coef, _padding(tp - t, coef.shape[1])])
    loss = pad_to(curves[1, :-1], tp)  # L(t), the forcing of step t
    ub = jnp.concatenate([ubar, jnp.zeros((2, tp - t))], axis=1)  # zero on padded outputs
    zero = jnp.zeros_like(lam)
    p_end = (ub[1, tp] * wlam, zero, ub[0, tp] * wlam)

    def block_back(p, inp):
        start, cf, lb, ul, ua = inp

        def refwd(state, x):  # the block again from its checkpoint: states at t and C(t+1)
            k, lt = x
            c, b, a = state
            hb = (1.0 - k[3] * lam) * b
            c1 = (1.0 - k[0] * lam + k[1] * lam2) * c + (k[2] * (lt + k[5])) * lam
            tau = k[4]
            b1 = (1.0 - tau) * hb + tau * c1
            a1 = (1.0 - tau) ** 2 * a + 2.0 * tau * (1.0 - tau) * hb + tau * tau * c1
            return (c1, b1, a1), (c, b, a, c1)

        _, (cs, bs, as_, c1s) = jax.lax.scan(refwd, (start[0], start[1], start[2]), (cf, lb))

        def back_step(p, x):
            k, u_l, u_a = x
            pc, pb, pa = p
            tau = k[4]
            u = pc + tau * pb + tau * tau * pa
            z = (1.0 - tau) * pb + 2.0 * tau * (1.0 - tau) * pa
            q = rsum(lam * u)
            new = (
                (1.0 - k[0] * lam + k[1] * lam2) * u + (k[2] * q + u_l) * wlam,
                (1.0 - k[3] * lam) * z,
                (1.0 - tau) ** 2 * pa + u_a * wlam,
            )
            return new, (u, z, pb, pa, q)

        p, (us, zs, pbs, pas, qs) = jax.lax.scan(back_step, p, (cf, ul, ua), reverse=True)
        # ∂/∂(η, m, σ², τ) of step t: the states at t, the costates at t + 1.
        noise = lb + cf[:, 5]
        eta, tau, inv_m = cf[:, 3], cf[:, 4][:, None], cf[:, 6]
        cu = lam * cs * us
        r1, r2 = rsum(cu), rsum(cu * lam)
        lb_ = lam * bs
        rb = rsum(lb_ * zs)
        hbs = bs - eta[:, None] * lb_
        g_eta = -2.0 * r1 + 2.0 * (1.0 + inv_m) * eta * r2 + 2.0 * eta * inv_m * noise * qs - rb
        g_m = -(eta * eta * inv_m * inv_m) * (r2 + noise * qs)
        g_s = cf[:, 2] * qs
        g_tau = rsum(pbs * (c1s - hbs)) + rsum(
            pas * (2.0 * tau * c1s + 2.0 * (1.0 - 2.0 * tau) * hbs - 2.0 * (1.0 - tau) * as_)
        )
        return p, jnp.stack([g_eta, g_m, g_s, g_tau], axis=1)

    _, g = jax.lax.scan(
        block_back,
        p_end,
        (
            checkpoints,
            coef.reshape(nb, block, -1),
            loss.reshape(nb, block),
            ub[1, :tp].reshape(nb, block),
            ub[0, :tp].reshape(nb, block),
        ),
        reverse=True,
    )
    return g.reshape(tp, 4)[:t]


@partial(jax.custom_vjp, nondiff_argnums=(8,))
def _fast(lam, lam2, c0, wlam, s2, etas, batches, taus, block):
    """(L̄, L)(0..T), shape (2, T+1); ``s2`` the problem's σ² (a scalar: a constant) or the
    per-step σ_t² (T,)."""
    return _forward(lam, lam2, c0, wlam, _coefs(etas, batches, taus, s2), block)[0]


def _fast_fwd(lam, lam2, c0, wlam, s2, etas, batches, taus, block):
    curves, checkpoints = _forward(lam, lam2, c0, wlam, _coefs(etas, batches, taus, s2), block)
    return curves, (lam, lam2, wlam, s2, etas, batches, taus, curves, checkpoints)


@float64
def _fast_bwd(block, res, ubar):
    lam, lam2, wlam, s2, etas, batches, taus, curves, checkpoints = res
    coef = _coefs(etas, batches, taus, s2)
    g = _backward(lam, lam2, wlam, coef, curves, checkpoints, ubar, block)
    zero = jnp.zeros_like(lam)  # the problem's arrays are constants: no gradient
    g_s2 = jnp.zeros_like(s2) if jnp.ndim(s2) == 0 else g[:, 2]
    return (zero, zero, zero, zero, g_s2, g[:, 0], g[:, 1], g[:, 3])


_fast.defvjp(_fast_fwd, _fast_bwd)


@partial(jax.jit, static_argnames=("block",))
def _fast_jit(lam, lam2, c0, wlam, s2, etas, batches, taus, block):
    return _fast(lam, lam2, c0, wlam, s2, etas, batches, taus, block)


@float64
def loss_curves(
    problem: Problem, etas, batches=None, noise=None, average=1.0
) -> Array | np.ndarray:
    """(L̄(0..T), L(0..T)), shape (2, T+1): the averaged iterate's loss and the SGD iterate's,
    with the checkpointed adjoint (differentiable in ``etas``, ``batches``, ``noise`` and
    ``average``).

    Args:
        problem: the :class:`~rfmodel.Problem` (its effective spectrum under a preconditioner).
        etas: per-step rates, shape (T,).
        batches: per-step batch sizes, shape (T,); default the problem's.
        noise: per-step label-noise variances σ_t², shape (T,); default the problem's σ².
        average: the weights τ_t ∈ [0, 1] of w̄_{t+1} = (1 − τ_t) w̄_t + τ_t w_{t+1}, a scalar
            or shape (T,) (1: no averaging).
    """
    etas, batches, noise, taus = _prepare(problem, etas, batches, noise, average)
    arrays = noise_arrays(problem, noise)
    return host(_fast_jit(*arrays, etas, batches, taus, block_size(etas.shape[0])))


@float64
def loss_curve(problem: Problem, etas, batches=None, noise=None, average=1.0):
    """L̄(0..T), the averaged iterate's loss (:func:`loss_curves`, first row)."""
    return loss_curves(problem, etas, batches, noise, average)[0]


# --------------------------------------------------------------------------- solver objective
#: log L̄(T) and its gradients with respect to (η, m, σ², τ) per step, and (L̄, L)(0..T).
_log_final_vg = log_objective(
    lambda lam, lam2, c0, wlam, e, m, s, tau, block: _fast(
        lam, lam2, c0, wlam, s, e, m, tau, block
    ),
    lambda curves: curves[0, -1],
)


@float64
def log_final_loss_and_grads(
    problem: Problem, etas, batches=None, noise=None, average=1.0, *, with_curve: bool = False
):
    """(log L̄(T), {"eta", "batch", "noise", "average": ∂ log L̄(T)/∂(η_t, m_t, σ_t², τ_t)}) as
    numpy (float, (T,) each): the solver's objective with iterate averaging (docs/theory.md
    §11), all four gradients from one adjoint pass. NaN gradients once the run diverges; with
    ``with_curve`` also (L̄, L)(0..T), shape (2, T+1)."""
    etas, batches, noise, taus = _prepare(problem, etas, batches, noise, average)
    arrays = noise_arrays(problem, None)
    if noise is None:
        noise = np.full(etas.shape[0], float(arrays[4]))
    names = ("eta", "batch", "noise", "average")
    scheds = (etas, batches, noise, taus)
    return run_objective(_log_final_vg, arrays[:4], scheds, names, with_curve=with_curve)
