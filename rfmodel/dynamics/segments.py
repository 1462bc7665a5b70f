"""Horizon-free exact dynamics: piecewise-constant schedules by segment propagation
(docs/theory.md §5).

Over a segment of n steps with constant rate η and batch m the recursion of docs/theory.md §2 is
affine, C ← A C + q, with A = diag(d) + g λ (wλ)ᵀ (d_k = 1 − 2ηλ_k + ((m+1)/m)η²λ_k², g = η²/m)
and q = g σ² λ. In the scaled state x = √w ⊙ C the map is symmetric,

    x ← B x + g σ² u,      B = I − M,   M = diag(ε) − g u uᵀ,   ε = 1 − d,   u = √w λ,

and the loss is L = u·x. M is a diagonal matrix minus a rank-one matrix: its eigenvalues ν_j are
the roots of the secular equation g Σ_k u_k²/(ε_k − ν) = 1 (one below the smallest ε, one between
consecutive ε's) and its eigenvectors are v_j ∝ u/(ε − ν_j). So n steps cost O(N²), whatever n:

    x(n) = V [μⁿ ⊙ Vᵀx(0) + g σ² φ_n(ν) ⊙ Vᵀu],   μ = 1 − ν,  φ_n(ν) = (1 − μⁿ)/ν,

with μⁿ = exp(n log1p(−ν)) and φ_n = −expm1(n log1p(−ν))/ν (no cancellation, no fixed point
C* = (I − A)⁻¹q that would need the map to be stable; ν → 0 gives φ_n → n). Every d_k is
≥ 1/(m+1) > 0, so every μ_j > 0: a growing mode (ν < 0) overflows to ``inf``, never NaN.

Accuracy rests on the differences δ_kj = ε_k − ν_j, which the root finder computes relative to
the nearest pole (ν_j = o_j + τ_j with o_j a pole or 0, δ_kj = (ε_k − o_j) − τ_j), so that the
eigenvectors keep full relative accuracy in every component, also for the tail modes of a binned
problem whose ε span thirty decades. The roots do not depend on the state: they are found once
per evaluation. The gradient with respect to the segment values (and batches) is a hand-written
adjoint (a ``jax.custom_vjp``): a reverse sweep over the segments with p ← Aᵀ(μⁿ ⊙ A p) (the map
is symmetric) and, per segment, the variation of p·x(n) through the explicit eigenvectors and
the roots (implicit function theorem on the secular equation), two O(N²) reductions; memory is
O(K·N) (the states at the segment starts).

>>> from rfmodel import Problem
>>> from rfmodel.dynamics import loss_curve
>>> p = Problem(a=2.5, b=1.2, sigma=0.3, n_modes=200, batch=4)
>>> L = segment_losses(p, [0.5, 0.2], [300, 700])
>>> L.shape
(3,)
>>> bool(abs(L[-1] / loss_curve(p, [0.5] * 300 + [0.2] * 700)[-1] - 1) < 1e-11)
True
"""

from __future__ import annotations

import functools
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .._x64 import float64, host
from ..problem import Problem
from ._common import Array, device_cache, is_concrete

__all__ = [
    "segment_losses",
    "Piecewise",
    "log_final_loss_and_grad",
    "check_segments",
    "log_steps",
    "uniform_lengths",
    "log_lengths",
    "poles",
]

_EPS = float(np.finfo(np.float64).eps)
_MAX_ITER = 60  # root-finder cap; converged roots need 3-8 iterations (measured)
_INT64_MAX = int(np.iinfo(np.int64).max)
#: A segment whose rank-one coupling moves the state by less than this, relative, over all its
#: steps (n·g·Σu² below it) is propagated as the diagonal map it is to rounding (see
#: :func:`_diagonal`): a zero or tiny rate, where the secular roots sit on their poles.
_TINY_COUPLING = 1e-16


# --------------------------------------------------------------------------- validation
def check_segments(
    values, lengths, batches=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate a piecewise-constant schedule; return (values, lengths, batches) as float64.

    Raises ``ValueError`` naming the parameter: values finite and ≥ 0; lengths integers ≥ 1 of
    the same length as values (the total horizon must fit in int64); batches finite and ≥ 1.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"values must be a non-empty 1-D array of rates; got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        bad = int(np.flatnonzero(~np.isfinite(v))[0])
        raise ValueError(f"values must be finite; got NaN/Inf at segment {bad}")
    if np.any(v < 0):
        raise ValueError(f"values must be >= 0; got values[{int(np.argmin(v))}]={v.min()}")
    try:
        raw = np.asarray(lengths)
        n = raw.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"lengths must be integers >= 1; got {lengths!r}") from None
    if n.shape != v.shape:
        raise ValueError(
            f"lengths must have the shape of values {v.shape} (one length per segment); "
            f"got {n.shape}"
        )
    if not np.all(np.isfinite(n)) or np.any(n < 1) or np.any(n != np.floor(n)):
        bad = int(np.flatnonzero(~(np.isfinite(n) & (n >= 1) & (n == np.floor(n))))[0])
        raise ValueError(f"lengths must be integers >= 1; got lengths[{bad}]={raw[bad]!r}")
    total = sum(int(x) for x in raw.tolist()) if raw.dtype.kind in "iu" else int(np.sum(n))
    if total > _INT64_MAX or np.any(n > 2.0**53):
        raise ValueError(
            f"lengths: the total horizon {total} overflows int64 (max {_INT64_MAX}); "
            "use fewer or shorter segments"
        )
    b = None
    if batches is not None:
        b = np.asarray(batches, dtype=np.float64)
        if b.shape != v.shape:
            raise ValueError(f"batches must have the shape of values {v.shape}; got {b.shape}")
        if not np.all(np.isfinite(b)) or np.any(b < 1):
            raise ValueError(f"batches must be finite and >= 1; got min {np.nanmin(b)}")
    return v, n, b


# --------------------------------------------------------------------------- grids
def uniform_lengths(T: int, K: int) -> np.ndarray:
    """Lengths of K segments as equal as possible summing to T (the ⌊tK/T⌋ grid of
    :func:`rfmodel.control.segment_index`), int64."""
    if not 1 <= K <= T:
        raise ValueError(f"K must be an integer in [1, T={T}]; got K={K}")
    edges = -(-np.arange(K + 1, dtype=object) * T // K)  # ⌈jT/K⌉: first step of segment j
    return np.diff(np.array(edges, dtype=np.int64))


def log_lengths(T: int, K: int) -> np.ndarray:
    """K segment lengths summing to T, short at both ends and geometrically longer towards the
    middle (the optimum changes fastest near t = 0 and t = T, docs/theory.md §5), int64.

    For even K = 2h the first half's edges are t_i = (T/2)·expm1(i·log(T/2)/h)/(T/2 − 1),
    i = 0..h (the first segment about one step long, each later one a constant factor longer),
    mirrored for the second half; an odd K merges the two middle segments of K + 1. Rounding is
    repaired so that every length is ≥ 1.
    """
    if not isinstance(K, int | np.integer) or isinstance(K, bool) or not 1 <= K <= T:
        raise ValueError(f"K must be an integer in [1, T={T}]; got K={K!r}")
    k2 = K + (K % 2)
    h = k2 // 2
    if K < 3 or T < 2 * k2:
        return uniform_lengths(T, K)
    mid = T / 2.0
    left = mid * np.expm1(np.linspace(0.0, math.log(mid), h + 1)) / (mid - 1.0)
    edges = np.concatenate([left, T - left[::-1][1:]])  # k2 + 1 edges
    if K % 2:
        edges = np.delete(edges, h)
    e = np.round(edges).astype(np.int64)
    e[0], e[-1] = 0, T
    i = np.arange(e.size)
    e = np.maximum.accumulate(e - i) + i  # e[i] ≥ e[i−1] + 1
    e = np.minimum.accumulate((e - i)[::-1])[::-1] + i  # e[i] ≤ e[i+1] − 1
    e = np.minimum(e, T - (e.size - 1 - i))
    e[0], e[-1] = 0, T
    return np.diff(e)


class Piecewise:
    """A per-step schedule stored as K values and K lengths: ``values[s]`` for the steps of
    segment s. Behaves as the length-T array wherever NumPy needs one (``np.asarray``, indexing,
    ``len``, ``shape``) and builds it only then, so a T = 10^8 result stays small.

    >>> e = Piecewise([0.5, 0.1], [2, 3])
    >>> e.shape, np.asarray(e).tolist(), float(e[3])
    ((5,), [0.5, 0.5, 0.1, 0.1, 0.1], 0.1)
    """

    def __init__(self, values, lengths):
        self.values = np.asarray(values, np.float64)
        self.lengths = np.asarray(lengths, np.int64)
        if self.values.shape != self.lengths.shape or self.values.ndim != 1:
            raise ValueError(
                f"lengths must have the shape of values {self.values.shape}; "
                f"got {self.lengths.shape}"
            )

    @property
    def edges(self) -> np.ndarray:
        """First step of each segment, and T: shape (K+1,)."""
        return np.concatenate([[0], np.cumsum(self.lengths)])

    @property
    def shape(self) -> tuple[int]:
        return (int(self.lengths.sum()),)

    ndim = 1
    dtype = np.dtype(np.float64)

    @property
    def size(self) -> int:
        return self.shape[0]

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None):
        out = np.repeat(self.values, self.lengths)
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, idx):
        if isinstance(idx, int | np.integer):
            t = int(idx) + (len(self) if idx < 0 else 0)
            if not 0 <= t < len(self):
                raise IndexError(idx)
            return self.values[np.searchsorted(self.edges, t, side="right") - 1]
        return np.asarray(self)[idx]

    def __repr__(self) -> str:
        return f"Piecewise(K={self.values.size}, T={len(self)})"


def log_steps(T: int, n: int) -> np.ndarray:
    """About ``n`` distinct log-spaced steps in [0, T] (0 and T included), int64."""
    if T < 1 or n < 2:
        raise ValueError(f"log_steps needs T >= 1 and n >= 2; got T={T}, n={n}")
    t = np.unique(np.round(np.geomspace(1, T, n - 1)).astype(np.int64))
    return np.concatenate([[0], t])


# --------------------------------------------------------------------------- secular roots
def poles(lam, eta, m):
    """ε = 1 − d = ηλ(2 − (1 + 1/m)ηλ) and g = η²/m (docs/theory.md §2)."""
    x = eta * lam
    return x * (2.0 - (1.0 + 1.0 / m) * x), eta * eta / m


def _roots(eps: Array, z: Array) -> tuple[Array, Array]:
    """Roots of ψ(ν) = Σ_k z_k/(ε_k − ν) − 1 for ascending poles ε and weights z > 0.

    Root j lies in (ε_{j−1}, ε_j) (root 0 below ε_0). Returns (origin index, τ) with
    ν_j = o_j + τ_j, o_j the nearer end of the root's interval (pole j−1 or j; index −1 means
    o = 0, for root 0 when 0 is nearer than ε_0), so that δ_kj = (ε_k − o_j) − τ_j is accurate
    relative to its size. Safeguarded fixed-weight rational iteration (docs/theory.md §5): the
    nearer pole's term is kept exactly, the rest of ψ is modelled by a constant plus one pole at
    the interval's other end (value and slope matched); the model's root in the bracket is the
    next iterate, bisection when it leaves the bracket. Arrays are laid out (root j, pole k).
    """
    n = eps.shape[0]
    j = jnp.arange(n)
    zsum = jnp.sum(z)
    left = jnp.concatenate([jnp.zeros(1), eps[:-1]])
    half = 0.5 * (eps - left)
    pos0 = eps[0] > 0
    psi_mid = (1.0 / ((eps[None, :] - left[:, None]) - half[:, None])) @ z - 1.0
    use_left = (psi_mid > 0) & ((j > 0) | pos0)
    origin = jnp.where(use_left, left, eps)
    lo = jnp.where(use_left, 0.0, -half)
    hi = jnp.where(use_left, half, 0.0)
    # root 0: ν_0 ∈ [ε_0 − Σz, ε_0).
    lo0 = jnp.where(use_left[0], eps[0] - zsum, jnp.where(pos0, -half[0], -zsum))
    lo = lo.at[0].set(lo0 - 4 * _EPS * jnp.abs(lo0) - 1e-300)
    delta_o = eps[None, :] - origin[:, None]  # Δ_jk = ε_k − o_j
    il = jnp.maximum(j - 1, 0)
    zl, zr_ = z[il], z  # weights of the left and right poles of each interval
    dl0, dr0 = delta_o[j, il], delta_o[j, j]
    first = j == 0
    near_mask = j[None, :] == jnp.where(use_left, il, j)[:, None]  # the nearer pole's column

    def body(state):
        it, tau, lo, hi, done = state
        # ψ without the nearer pole's term (masked: near a pole that term is 1/ulps and its
        # slope would swamp the rest's in ψ′), then that term added back exactly. Reductions
        # as matrix-vector products: vectorized, unlike XLA's row sums.
        r = jnp.where(near_mask, 0.0, 1.0 / (delta_o - tau[:, None]))
        d1, d2 = dl0 - tau, dr0 - tau  # δ of the interval's left and right poles
        dn = jnp.where(use_left, d1, d2)
        zn = jnp.where(use_left, zl, zr_)
        rest = r @ z - 1.0
        drest = (r * r) @ z
        psi = rest + zn / dn
        dpsi = drest + zn / (dn * dn)
        lo = jnp.where(psi < 0, tau, lo)
        hi = jnp.where(psi > 0, tau, hi)
        # ψ at its rounding level (the adjacent poles carry the large terms of the sum)
        scale = 2.0 + psi + jnp.where(first, 0.0, jnp.abs(zl / d1)) + jnp.abs(zr_ / d2)
        small = jnp.abs(psi) <= 32 * _EPS * scale
        # the nearer pole's term exact; the rest ≈ c + w/(d_other − h) (value and slope).
        do = jnp.where(use_left, d2, d1)
        w = do * do * drest
        c = rest - do * drest
        # c + zn/y + w/(y + G) = 0 for the new distance y = δ_{j,o_j} = −τ_new to the origin
        # (nearer) pole, G = Δ of the other pole, y between 0 and −G: c y² + B y + C = 0.
        # Solving for y rather than for the step h = τ_new − τ keeps a root at ulps of its
        # pole exact (τ + h would cancel to 0 and fall back to bisection: measured 40+
        # iterations for the binned tail of the hard phase, 3-4 with y).
        gap = jnp.where(use_left, dr0, dl0)
        b_ = c * gap + zn + w
        c_ = zn * gap
        disc = jnp.sqrt(jnp.maximum(b_ * b_ - 4 * c * c_, 0.0))
        big = jnp.where(b_ < 0, -b_ + disc, -b_ - disc)
        y1 = jnp.where(big != 0, 2 * c_ / big, 0.0)
        y2 = jnp.where(c != 0, big / (2 * c), jnp.inf)
        y = jnp.where((y1 * gap < 0) & (jnp.abs(y1) < jnp.abs(gap)), y1, y2)
        new = -y
        # root 0: ψ ≈ c0 + s0/(d2 − h) with s0, c0 matching the whole of ψ (τ_new = Δ + s0/c0).
        s0 = d2 * d2 * dpsi
        c0 = psi - d2 * dpsi
        new = jnp.where(first, jnp.where(c0 != 0, dr0 + s0 / c0, -jnp.inf), new)
        h = new - tau
        ok = jnp.isfinite(new) & (new >= lo) & (new <= hi) & (new != 0)
        # converged: ψ at rounding level, or a step so small that the (quadratically
        # convergent) step just taken leaves an error below 1e-18 relative, or no bracket left.
        conv = (
            small
            | (ok & (jnp.abs(h) <= 1e-9 * jnp.abs(tau)))
            | (hi - lo <= 4 * _EPS * jnp.abs(tau))
        )
        new = jnp.where(ok, new, jnp.where(conv, tau, 0.5 * (lo + hi)))
        tau = jnp.where(done, tau, new)
        return it + 1, tau, lo, hi, done | conv

    def cond(state):
        it, _, _, _, done = state
        return (it < _MAX_ITER) & ~jnp.all(done)

    state = (0, 0.5 * (lo + hi), lo, hi, jnp.zeros(n, bool))
    _, tau, _, _, _ = jax.lax.while_loop(cond, body, state)
    return jnp.where(use_left, j - 1, j), tau


# --------------------------------------------------------------------------- one segment
def _separate(e: Array) -> Array:
    """Ascending poles with exact ties (a user spectrum with repeated eigenvalues, or two modes
    on either side of the top of ε(λ)) moved apart by a few ulps: a perturbation of the matrix at
    the level of its rounding errors, which keeps the secular equation's intervals non-empty."""
    for _ in range(3):  # runs of up to 4 equal poles
        prev = jnp.concatenate([e[:1] - 1.0, e[:-1]])
        e = jnp.maximum(e, prev + 4 * _EPS * jnp.abs(prev) + 1e-300)
    return e


def _sorted_poles(lam, u, eta, m, order):
    eps, g = poles(lam, eta, m)
    us = u[order]
    return _separate(eps[order]), g * us * us, us, g


def _decompose(lam, u, eta, m):
    """Sort order of the poles and the roots (origin index, τ) of one segment; no gradients."""
    eps, _ = poles(lam, eta, m)
    order = jnp.argsort(eps)
    e, z, _, _ = _sorted_poles(lam, u, eta, m, order)
    oidx, tau = _roots(e, z)
    return order, oidx, tau


def _sg(x):
    return jax.lax.stop_gradient(x)


def _phi(nu, n):
    """(μⁿ, φ_n, dφ_n/dν) with μ = 1 − ν, φ_n = (1 − μⁿ)/ν = Σ_{i<n} μⁱ, computed without
    overflow or cancellation (series in ν where n|ν| < 1e-3)."""
    lnmu = jnp.log1p(-nu)
    pw = jnp.exp(n * lnmu)
    small = jnp.abs(n * nu) < 1e-3
    safe = jnp.where(small, 1.0, nu)
    phi = jnp.where(
        small,
        n * (1 - (n - 1) * nu / 2 + (n - 1) * (n - 2) * nu * nu / 6),
        -jnp.expm1(n * lnmu) / safe,
    )
    # φ' = (n μ^(n−1) − φ)/ν = −Σ_i i μ^(i−1); near ν = 0 the series −C(n,2) + 2C(n,3)ν − …
    c2, c3, c4 = n * (n - 1) / 2, n * (n - 1) * (n - 2) / 6, n * (n - 1) * (n - 2) * (n - 3) / 24
    dphi = jnp.where(
        small, -c2 + 2 * c3 * nu - 3 * c4 * nu * nu, (n * pw / (1.0 - nu) - phi) / safe
    )
    return pw, phi, dphi


def _eigvecs(e, us, oidx, tau):
    """R = 1/δ (δ_jk = ε_k − ν_j, rows = roots), R² with the origin pole k = o_j masked out,
    R_{j,o_j}, the row norms ‖u⊙R_j‖ and ν. The orthonormal eigenvectors are the rows
    A_jk = u_k R_jk/‖u⊙R_j‖; they are never formed: every product with them is a product with R
    (O(N²) memory passes are what a segment costs, so each matrix is made once)."""
    n = e.shape[0]
    o = jnp.maximum(oidx, 0)
    origin = jnp.where(oidx < 0, 0.0, e[o])
    r = 1.0 / ((e[None, :] - origin[:, None]) - tau[:, None])
    off = jnp.arange(n)[None, :] != oidx[:, None]  # k ≠ o_j (all k for origin 0)
    r2m = jnp.where(off, r * r, 0.0)
    r_o = jnp.where(oidx >= 0, r[jnp.arange(n), o], 0.0)
    us2 = us * us
    nrm = jnp.sqrt(r2m @ us2 + (us2[o] * r_o) * r_o)
    return r, r2m, r_o, nrm, origin + tau


def _diagonal(u, eta, m, n) -> Array:
    """Whether a segment's rank-one coupling g u uᵀ is negligible: n·g·Σu² ≤ 1e-30 bounds its
    relative effect on the state over the n steps. Then M = diag(ε) to rounding and
    x(n) = μⁿ ⊙ x + gσ² φ_n(ε) ⊙ u exactly (η = 0: the identity). The secular equation cannot
    be used there: its weights z = g u² vanish (η = 0) or its roots sit so close to their poles
    that 1/δ² overflows (η ≲ 1e-100), which made a zero-rate segment's loss inf and its
    gradient NaN. The switch is continuous to rounding: on the other side the roots are
    accurate (tests/test_faults.py compares both with the step recursion)."""
    _, g = poles(1.0, eta, m)
    return (g == 0) | (n * g * jnp.sum(u * u) <= _TINY_COUPLING)


def _segment(lam, u, s2, x, eta, m, n, order, oidx, tau):
    """One segment of n steps at (η, m) from the scaled state x (original mode order):
    x(n) = Aᵀ[μⁿ ⊙ A x + g σ² φ_n ⊙ A u] with A the eigenvector rows (docs/theory.md §5).

    Returns the new state and the spectral data (ν, a = (Ax)⊙(Au), b = gσ²(Au)²) from which L
    at any step t inside the segment is Σ_j a_j μ_jᵗ + b_j φ_t(ν_j), O(N) per step.
    """
    e, _, us, g = _sorted_poles(lam, u, eta, m, order)
    xs = x[order]
    r, _, _, nrm, nu = _eigvecs(e, us, oidx, tau)
    proj = (r @ jnp.stack([us * xs, us * us], 1)) / nrm[:, None]
    xh, uh = proj[:, 0], proj[:, 1]  # A x, A u
    pw, phi, _ = _phi(nu, n)
    yh = pw * xh + (g * s2) * phi * uh
    x_new = jnp.zeros_like(x).at[order].set(((yh / nrm) @ r) * us)
    # the diagonal map (a zero or tiny rate, _diagonal): eigenvectors the unit vectors
    eps, _ = poles(lam, eta, m)
    pw_d, phi_d, _ = _phi(eps, n)
    diag = _diagonal(u, eta, m, n)
    x_new = jnp.where(diag, pw_d * x + (g * s2) * phi_d * u, x_new)
    spec = (
        jnp.where(diag, eps[order], nu),
        jnp.where(diag, xs * us, uh * xh),
        jnp.where(diag, (g * s2) * us * us, (g * s2) * uh * uh),
    )
    return x_new, spec


def _segment_vjp(lam, u, s2, x, eta, m, n, order, oidx, tau, p_new):
    """The adjoint of one segment: given p' = ∂J/∂x(n), returns (∂J/∂x(0), ∂J/∂η, ∂J/∂m).

    ∂J/∂x(0) = Aᵀ(μⁿ ⊙ A p') (the map is symmetric). For the parameters, every quantity is an
    explicit function of δ_jk = Δ_jk − τ_j (Δ_jk = ε_k − o_j), g and ν = o + τ, and τ of (Δ, g)
    by the implicit function theorem on the secular equation. Working in these shifted
    variables matters: dΔ_jk vanishes exactly at the origin pole k = o_j, whose huge terms
    (δ_{j,o_j} can be ulps) would otherwise cancel between separate sums. The variation of
    J = p'·x(n) collapses to a few reductions over the N×N matrix R (docs/theory.md §5):
    with G_jk = R_jk² u_k W_jk and W_jk = Σ_i α_ij β_ik − c_j A_jk (below) a sum of rank-one
    terms, every row and column sum of G is a product of R² or R³ (origin masked) with a few
    vectors, and the masked entries k = o_j are added back one per row, O(N).
    """
    e, z, us, g = _sorted_poles(lam, u, eta, m, order)
    xs, ps = x[order], p_new[order]
    r, r2m, r_o, nrm, nu = _eigvecs(e, us, oidx, tau)
    inv = 1.0 / nrm
    us2 = us * us
    proj = r @ jnp.stack([us * xs, us2, us * ps, z], 1)
    xh, uh, yb = proj[:, 0] * inv, proj[:, 1] * inv, proj[:, 2] * inv  # Ax, Au, ŷ̄ = A p'
    psi1 = proj[:, 3]  # Σ_k z_k R_jk = 1 at the root
    pw, phi, dphi = _phi(nu, n)
    gs2 = g * s2
    yh = pw * xh + gs2 * phi * uh
    x_bar = jnp.zeros_like(x).at[order].set((((pw * yb) * inv) @ r) * us)
    # J varies with A through Σ_jk dA_jk W_jk, W = ŷ⊗p' + (ŷ̄ μⁿ)⊗x + (ŷ̄ gσ²φ)⊗u − c A, i.e.
    # by −Σ_jk G_jk dδ_jk with G = R² ⊙ ∂J/∂R.
    ca, cb = yb * pw, yb * gs2 * phi
    c = (yh * yb + ca * xh + cb * uh) * inv  # Σ_k A_jk W_jk / ‖·‖_j
    alpha = jnp.stack([yh * inv, ca * inv, cb * inv], 1)  # (N, 3)
    cinv = c * inv
    # W elementwise (its pieces cancel where a segment barely moves the state, e.g. η → 0:
    # summing them separately lost digits), G with the origin entries masked; its row and
    # column sums as products with ones.
    w = alpha[:, :1] * ps[None, :] + alpha[:, 1:2] * xs[None, :] + alpha[:, 2:] * us[None, :]
    gm = r2m * (us[None, :] * (w - cinv[:, None] * (us[None, :] * r)))
    ones = jnp.ones_like(us)
    gm_row = gm @ ones  # Σ_{k≠o_j} G_jk
    zr2m_row = r2m @ z  # Σ_{k≠o_j} z_k R_jk²
    o = jnp.maximum(oidx, 0)
    has_o = oidx >= 0
    w_o = alpha[:, 0] * ps[o] + alpha[:, 1] * xs[o] + alpha[:, 2] * us[o] - cinv * us[o] * r_o
    g_o = jnp.where(has_o, r_o * r_o * us[o] * w_o, 0.0)  # G_{j,o_j}
    dpsi = zr2m_row + jnp.where(has_o, z[o] * r_o * r_o, 0.0)  # ∂ψ_j/∂τ_j
    # the roots: dτ_j = −[(dg/g)·psi1_j − Σ_{k≠o_j} z_k R_jk² (dε_k − dε_{o_j})]/ψ′_j.
    direct = yb * (-pw * n * xh / (1.0 - nu) + gs2 * dphi * uh)  # via ν in μⁿ and φ_n
    qd = (gm_row + g_o + direct) / dpsi  # coefficient of dτ_j, over ψ′_j
    per_root = direct + gm_row - qd * zr2m_row  # coefficient of dε_{o_j}
    gm_col = ones @ gm  # Σ_{j: o_j≠k} G_jk
    de_coef = -gm_col + (qd @ r2m) * z  # ∂J/∂ε_k from the k ≠ o_j terms
    de_coef = de_coef.at[o].add(jnp.where(has_o, per_root, 0.0))
    dg_coef = -jnp.sum(qd * psi1) / g + s2 * jnp.sum(yb * phi * uh)  # ∂J/∂g

    # The diagonal map (_diagonal), in the original order: x(n) = μⁿ ⊙ x + gσ² φ_n(ε) ⊙ u, and
    # to first order in g the coupling adds Σ_{i<n} diag(μ)^(n−1−i) u uᵀ diag(μ)^i x, whose
    # pairing with p' is n (p'·(h⊙u))(u·(h⊙x)) with h = μ^((n−1)/2) to relative O((nε)²),
    # itself ≤ 1e-5 there; the term is ~η|u|²/λ of the rest, kept for continuity.
    eps_d, _ = poles(lam, eta, m)
    pw_d, phi_d, dphi_d = _phi(eps_d, n)
    h = jnp.exp(0.5 * (n - 1.0) * jnp.log1p(-eps_d))
    de_d = p_new * (-n * pw_d / (1.0 - eps_d) * x + gs2 * dphi_d * u)  # ∂J/∂ε_k
    dg_d = s2 * jnp.sum(p_new * phi_d * u) + n * jnp.sum(p_new * h * u) * jnp.sum(u * h * x)
    diag = _diagonal(u, eta, m, n)

    def total(de, dg):
        regular = jnp.sum(de_coef * de[order]) + dg_coef * dg
        return jnp.where(diag, jnp.sum(de_d * de) + dg_d * dg, regular)

    x_ = eta * lam
    c_ = 1.0 + 1.0 / m
    g_eta = total(2 * lam * (1 - c_ * x_), 2 * eta / m)
    g_m = total(x_ * x_ / (m * m), -eta * eta / (m * m))
    x_bar = jnp.where(diag, pw_d * p_new, x_bar)
    return x_bar, g_eta, g_m


def _all_roots(lam, u, etas, ms):
    """Roots of every segment (they do not depend on the state), one segment at a time."""
    return jax.lax.map(lambda em: _decompose(lam, u, em[0], em[1]), (etas, ms))


def _sweep(lam, u, x0, s2, etas, ms, ns, roots, with_spectra: bool):
    """Forward over the segments: L at the K+1 boundaries, the state at the start of every
    segment, and (if asked) each segment's spectral data."""
    order, oidx, tau = roots
    seg = partial(_segment, lam, u, s2)

    def step(carry, inp):
        x, bad = carry
        eta, m, n, o, oi, t = inp
        x_new, spec = seg(x, eta, m, n, o, oi, t)
        loss = u @ x_new
        bad = bad | ~jnp.isfinite(loss)
        loss = jnp.where(bad, jnp.inf, loss)
        return (x_new, bad), (loss, x, spec if with_spectra else None)

    loss0 = u @ x0
    _, (losses, xs, spec) = jax.lax.scan(
        step, (x0, ~jnp.isfinite(loss0)), (etas, ms, ns, order, oidx, tau)
    )
    return jnp.concatenate([loss0[None], losses]), xs, spec


@jax.custom_vjp
def _curve(lam, u, x0, s2, etas, ms, ns):
    """L at the K+1 boundaries, differentiable in (etas, ms) by the hand-written adjoint."""
    roots = _all_roots(lam, u, etas, ms)
    return _sweep(lam, u, x0, s2, etas, ms, ns, roots, False)[0]


def _curve_fwd(lam, u, x0, s2, etas, ms, ns):
    roots = _all_roots(lam, u, etas, ms)
    curve, xs, _ = _sweep(lam, u, x0, s2, etas, ms, ns, roots, False)
    return curve, (lam, u, s2, etas, ms, ns, roots, xs)


@float64
def _curve_bwd(res, ubar):
    """Reverse sweep: p_K = ū_K u, then per segment (last first) the segment adjoint, adding
    ū_s u for the boundary loss L_s = u·x_s. Memory O(K·N): the states at the segment starts."""
    lam, u, s2, etas, ms, ns, (order, oidx, tau), xs = res
    vjp = partial(_segment_vjp, lam, u, s2)

    def step(p, inp):
        x, eta, m, n, o, oi, t, ub = inp
        x_bar, g_eta, g_m = vjp(x, eta, m, n, o, oi, t, p)
        return x_bar + ub * u, (g_eta, g_m)

    p_end = ubar[-1] * u
    _, (g_eta, g_m) = jax.lax.scan(
        step, p_end, (xs, etas, ms, ns, order, oidx, tau, ubar[:-1]), reverse=True
    )
    zero = jnp.zeros_like(lam)  # the problem's arrays are constants: no gradient
    return zero, zero, zero, jnp.zeros_like(s2), g_eta, g_m, jnp.zeros_like(ns)


_curve.defvjp(_curve_fwd, _curve_bwd)


# --------------------------------------------------------------------------- public API
def _problem_arrays(problem: Problem):
    """(λ, u = √w λ, x(0) = √w C(0), σ²) as float64 device arrays, made once per problem."""

    def make():
        sw = np.sqrt(problem.weight)
        return problem.lam, sw * problem.lam, sw * problem.c0, problem.label_noise**2

    return device_cache(problem, "_segment_arrays", make)


def _prepare(problem: Problem, values, lengths, batches):
    if all(is_concrete(v) for v in (values, lengths) + (() if batches is None else (batches,))):
        v, n, b = check_segments(values, lengths, batches)
        b = np.full(v.shape, problem.batch, np.float64) if b is None else b
        return v, n, b
    values = jnp.asarray(values, jnp.float64)
    lengths = jnp.asarray(lengths, jnp.float64)
    if batches is None:
        batches = jnp.full(values.shape, problem.batch, jnp.float64)
    return values, lengths, jnp.asarray(batches, jnp.float64)


def _boundaries(lam, u, x0, s2, etas, ms, ns):
    return _curve(lam, u, x0, s2, etas, ms, _sg(ns))


_boundaries_jit = jax.jit(_boundaries)


def _at_steps(lam, u, x0, s2, etas, ms, ns, seg, off):
    """L at the steps (segment seg, offset off in it) and at the boundaries."""
    curve = _curve(lam, u, x0, s2, etas, ms, _sg(ns))
    roots = _all_roots(lam, u, _sg(etas), _sg(ms))
    _, _, (nu, a, b) = _sweep(lam, u, x0, s2, _sg(etas), _sg(ms), _sg(ns), roots, True)
    nu, a, b = nu[seg], a[seg], b[seg]
    t = _sg(off)[:, None]
    lnmu = jnp.log1p(-nu)
    safe = jnp.where(nu == 0, 1.0, nu)
    phi = jnp.where(nu == 0, t, -jnp.expm1(t * lnmu) / safe)
    vals = jnp.sum(a * jnp.exp(t * lnmu) + b * phi, axis=1)
    bad = ~jnp.isfinite(curve[seg])  # diverged before the segment started
    vals = jnp.where(bad | ~jnp.isfinite(vals), jnp.inf, vals)
    return curve, vals


_at_steps_jit = jax.jit(_at_steps)


def _locate(lengths: np.ndarray, steps) -> tuple[np.ndarray, np.ndarray]:
    edges = np.concatenate([[0], np.cumsum(lengths.astype(np.int64))])
    t = np.asarray(steps)
    if (
        t.ndim != 1
        or t.size == 0
        or not np.issubdtype(t.dtype, np.integer)
        and not np.all(np.isfinite(t.astype(float)) & (t == np.round(t)))
    ):
        raise ValueError(f"steps must be a non-empty 1-D array of integers; got {steps!r}")
    t = t.astype(np.int64)
    if t.min() < 0 or t.max() > edges[-1]:
        raise ValueError(f"steps must lie in [0, T={int(edges[-1])}]; got {t.min()}..{t.max()}")
    seg = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, lengths.size - 1)
    return seg, (t - edges[seg]).astype(np.float64)


@float64
def segment_losses(problem: Problem, values, lengths, batches=None, *, steps=None):
    """Exact L at the boundaries of a piecewise-constant schedule, whatever its horizon
    (docs/theory.md §5).

    Args:
        problem: the :class:`~rfmodel.Problem`.
        values: the rate η of each of the K segments, shape ``(K,)``.
        lengths: the number of steps of each segment, integers ≥ 1, shape ``(K,)``; the horizon
            is T = Σ lengths (any size that fits in int64: the cost is O(K·N²), not O(T·N)).
        batches: optional batch size of each segment, shape ``(K,)`` (real, ≥ 1); default
            ``problem.batch``.
        steps: optional integer steps t ∈ [0, T] (e.g. :func:`log_steps`) at which L(t) is also
            returned, at O(N) each.

    Returns:
        float64 array of shape ``(K+1,)``: L(0) and L after each segment (``inf`` from the first
        segment whose loss overflowed, never NaN). With ``steps``, the pair (that array, L at
        ``steps``). NumPy arrays for concrete inputs, JAX arrays inside ``jit``/``grad``.

    Differentiable with ``jax.grad``/``jax.vjp`` with respect to ``values`` and ``batches``
    through the boundary losses (the values at ``steps`` are for reporting and carry no
    gradient; ``lengths`` are integers). Agrees with :func:`rfmodel.dynamics.loss_curve` at the
    same steps to ~1e-14 relative (tests/test_segments.py).
    """
    values, lengths, batches = _prepare(problem, values, lengths, batches)
    arrays = _problem_arrays(problem)
    if steps is None:
        return host(_boundaries_jit(*arrays, values, batches, lengths))
    if not is_concrete(lengths):
        raise ValueError("steps needs concrete lengths (not traced)")
    seg, off = _locate(np.asarray(lengths), steps)
    n = seg.size  # padded to a power of two: one compilation serves every T of a chain
    pad = (1 << max(4, (n - 1).bit_length())) - n
    seg, off = np.pad(seg, (0, pad)), np.pad(off, (0, pad))
    curve, vals = _at_steps_jit(*arrays, values, batches, lengths, seg, off)
    return host(curve), host(vals)[:n]


# --------------------------------------------------------------------------- solver objective
@jax.jit
def _log_final_vg(lam, u, x0, s2, etas, ms, ns):
    def f(e):
        curve = _boundaries(lam, u, x0, s2, e, ms, ns)
        return jnp.log(curve[-1]), curve

    (v, curve), g = jax.value_and_grad(f, has_aux=True)(etas)
    return v, g, curve


@functools.lru_cache(maxsize=16)
def _objective_executable(k: int, n: int):
    """:func:`_log_final_vg` compiled for K segments and N modes (any lengths).

    XLA's default CPU emitters, not the classic ones of :func:`._common.compile_cpu`: in
    one alternating A/B run (T = 10^7, K = 400, N_eff = 575, machine under load) 3.2-3.3 s
    against 3.3-3.6 s, so the classic emitters buy nothing for this program."""
    f64 = partial(jax.ShapeDtypeStruct, dtype=jnp.float64)
    vec, seg = f64((n,)), f64((k,))
    return _log_final_vg.lower(vec, vec, vec, f64(()), seg, seg, seg).compile()


@float64
def log_final_loss_and_grad(
    problem: Problem, values, lengths, batches=None, *, with_curve: bool = False
):
    """(log L(T), ∇_values log L(T)) for a piecewise-constant schedule, as numpy (float, (K,)).

    The segment counterpart of :func:`rfmodel.dynamics.log_final_loss_and_grad` (the solver's
    objective), compiled once per (K, N). Returns (inf, NaN gradient) once the run diverges;
    with ``with_curve`` also L at the K+1 boundaries.
    """
    values, lengths, batches = check_segments(values, lengths, batches)
    if batches is None:
        batches = np.full(values.shape, problem.batch, np.float64)
    arrays = _problem_arrays(problem)
    run = _objective_executable(values.shape[0], arrays[0].shape[0])
    v, g, curve = run(*arrays, values, batches, lengths)
    v = float(v)
    g = np.asarray(g, np.float64) if math.isfinite(v) else np.full(values.shape, np.nan)
    return (v, g, np.asarray(curve)) if with_curve else (v, g)
