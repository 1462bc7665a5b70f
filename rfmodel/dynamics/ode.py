"""The continuous-time limit of the exact recursion (docs/theory.md §5), solved with diffrax.

Reading the step count as a continuous time t and the one-step change C(t+1) − C(t) as dC/dt,
the recursion of docs/theory.md §2 becomes the linear ODE

    dC_k/dt = −2η λ_k C_k + ((m+1)/m) η² λ_k² C_k + (η²/m) λ_k (L + σ²),   L = Σ_j w_j λ_j C_j,

with η = η(t), m = m(t) piecewise constant. It is the small-η limit: over a time in which η·t is
fixed the recursion and the ODE differ by O(η) relative (the ODE's decay factor per unit time is
exp(−ε) where the recursion's is 1 − ε, ε = 2ηλ − ((m+1)/m)η²λ²). Where η = O(1) (the hard
phase's plateau, η close to the stability edge) the difference is a genuine discrete-time effect,
which :func:`ode_loss_curve` against :func:`rfmodel.dynamics.segments.segment_losses` measures.

The ODE is integrated by an explicit adaptive Runge–Kutta method (diffrax's ``Tsit5``, step-size
control on every mode, the segment edges as jump times): its stiffness is bounded (the fastest
rate is 2ηλ_max ≲ 4 for stable rates), so explicit steps of O(1) cost O(N) each.

>>> from rfmodel import Problem
>>> p = Problem(a=2.5, b=1.2, sigma=0.3, n_modes=50, batch=4)
>>> L = ode_loss_curve(p, [0.01], [1000], steps=[0, 1000])
>>> L.shape
(2,)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .._x64 import float64
from ..problem import Problem
from .segments import check_segments

__all__ = ["ode_loss_curve", "ode_rhs"]


def ode_rhs(t, c, args):
    """dC/dt of the continuous-time limit (docs/theory.md §5); ``args`` = (λ, wλ, σ², edges,
    η per segment, m per segment)."""
    lam, wlam, s2, edges, etas, ms = args
    s = jnp.clip(jnp.searchsorted(edges, t, side="right") - 1, 0, etas.shape[0] - 1)
    eta, m = etas[s], ms[s]
    loss = wlam @ c
    eps = eta * lam * (2.0 - (1.0 + 1.0 / m) * eta * lam)
    return -eps * c + (eta * eta / m) * (loss + s2) * lam


def _scaled_rhs(t, y, args):
    """The same for y = C / C(0) (so that one tolerance fits modes of every size)."""
    scale, rest = args[0], args[1:]
    return ode_rhs(t, y * scale, rest) / scale


@float64
def ode_loss_curve(
    problem: Problem,
    values,
    lengths,
    batches=None,
    *,
    steps,
    rtol: float = 1e-10,
    atol: float = 1e-14,
    max_steps: int | None = None,
) -> np.ndarray:
    """L(t) of the continuous-time limit at the given steps, for a piecewise-constant schedule.

    Args:
        problem: the :class:`~rfmodel.Problem`.
        values, lengths, batches: the schedule as in :func:`.segments.segment_losses`
            (segment s holds η = values[s] for ``lengths[s]`` units of time).
        steps: times t ∈ [0, T] at which L is returned (integers, ascending).
        rtol, atol: diffrax's step-size tolerances (relative, and absolute on C_k/C_k(0)).
        max_steps: cap on solver steps (default 20·T + 10 000, rounded up to a power of two).

    Returns:
        float64 numpy array, L at ``steps``.
    """
    import diffrax

    v, n, b = check_segments(values, lengths, batches)
    b = np.full(v.shape, problem.batch) if b is None else b
    edges = np.concatenate([[0.0], np.cumsum(n)])
    T = float(edges[-1])
    ts = np.asarray(steps, np.float64)
    if ts.ndim != 1 or ts.size == 0 or np.any(np.diff(ts) < 0) or ts[0] < 0 or ts[-1] > T:
        raise ValueError(f"steps must be ascending times in [0, T={T:g}]; got {steps!r}")
    if max_steps is None:  # a power of two: one compilation serves a range of horizons
        max_steps = 1 << int(np.ceil(np.log2(20 * T + 10_000)))
    lam = jnp.asarray(problem.lam)
    wlam = jnp.asarray(problem.weight * problem.lam)
    c0 = jnp.asarray(problem.c0)
    args = (lam, wlam, problem.label_noise**2, jnp.asarray(edges), jnp.asarray(v), jnp.asarray(b))
    scale = jnp.asarray(np.maximum(problem.c0, 1e-300))
    controller = diffrax.PIDController(
        rtol=rtol, atol=atol, jump_ts=jnp.asarray(edges[1:-1]) if edges.size > 2 else None
    )
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_scaled_rhs),
        diffrax.Tsit5(),
        t0=0.0,
        t1=T,
        dt0=None,
        y0=c0 / scale,
        args=(scale, *args),
        saveat=diffrax.SaveAt(ts=jnp.asarray(ts)),
        stepsize_controller=controller,
        max_steps=max_steps,
        throw=True,
    )
    wlam = wlam * scale
    return np.asarray(jax.vmap(lambda c: wlam @ c)(sol.ys))
