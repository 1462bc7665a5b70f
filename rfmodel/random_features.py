"""Gaussian random features without drawing them: the deterministic equivalent (docs/theory.md §3).

The model: inputs x ∈ R^M with covariance Λ = diag(λ_k), λ_k = k^-b, target power
p_k = λ_k w*_k² = k^-a; features ψ = F x with F ∈ R^(N×M), F_ij ~ N(0, 1/N) (so E[FᵀF] = I).
For one draw of F the SGD dynamics are the exact recursion on the spectrum μ_j of
Σ = F Λ Fᵀ (:meth:`rfmodel.Problem.from_random_features` with a key). Averaged over F, for large
N and M, everything the dynamics need is carried by two measures on μ: the eigenvalue counting
measure of Σ and the initial excess loss held by its eigenmodes. Both follow from one scalar
equation for the *renormalized ridge* κ(z):

    −z = κ (1 − (1/N) Σ_k λ_k/(λ_k + κ)),      (1/N) tr (Σ − z)⁻¹ ≈ 1/κ(z),
    bᵀ(Σ − z)⁻¹ b ≈ h(z) = Σ_k p_k λ_k/(λ_k + κ(z)),      b = F Λ w*.

Instead of solving for κ at z = μ + iε (which smears mass over the spectrum's edges unless ε is
tiny), :func:`spectral_density` parameterizes the real axis by x = Re κ: with κ = x − iy, Im z = 0
requires (1/N) Σ_k λ_k²/((λ_k + x)² + y²) = 1, one monotone equation for y² ≥ 0 at each x, and
then μ = Re z(κ) is explicit. The eigenvalue density is N·Im(1/κ)/π = N y/(π|κ|²) and the loss
density Im h/(π μ). The support (in x) is found exactly: between two consecutive input
eigenvalues the left side of that equation is convex in x, so each gap is one bisection.

:func:`deterministic_equivalent` integrates the two densities and cuts them into bins at
quantiles of the counting function (one eigenvalue per bin at the top of the spectrum, where
the largest μ set stability; geometric bins below), giving an ordinary mode list
(μ̄, C(0), multiplicity) for the exact recursion. The approximation error is exact in the
limit: L_approx = κ₀ Σ_k p_k/(λ_k + κ₀) with Σ_k λ_k/(λ_k + κ₀) = N (:func:`approx_error`).

M = ∞ is allowed (``n_inputs=math.inf``): the input sums run over an exact head, bins whose width
adapts to the resolution the equation needs, and a Hurwitz-zeta tail.

>>> round(approx_error(2.5, 1.2, n_features=200, n_inputs=4000), 6)
0.018892
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import special

__all__ = [
    "InputModes",
    "input_modes",
    "ridge",
    "approx_error",
    "SpectralDensity",
    "spectral_density",
    "deterministic_equivalent",
]


def _zeta_range(s: float, lo: np.ndarray, hi: np.ndarray | float) -> np.ndarray:
    """Σ_{k=lo}^{hi} k^-s (hi may be inf), via the Hurwitz zeta function."""
    hi = np.asarray(hi, np.float64)
    top = np.where(np.isinf(hi), 0.0, special.zeta(s, np.where(np.isinf(hi), 1.0, hi) + 1.0))
    return special.zeta(s, np.asarray(lo, np.float64)) - top


@dataclass(frozen=True)
class InputModes:
    """The input spectrum k = 1..M as a list of entries, plus the moments of what is left out.

    Entries (shape ``(n,)``): ``lam`` (λ, the bin's mean eigenvalue), ``p`` (mean target power
    per mode), ``weight`` (modes in the entry; the exact head has weight 1). Beyond the last
    entry (k > K, only for M = ∞) the sums use ``tail`` = {s: Σ_{k>K} k^-s} for the exponents
    s ∈ {b, 2b, a, a + b}: every λ there is far below every |κ| the equations meet, so
    λ/(λ + κ) = λ/κ − λ²/κ² + … to the accuracy kept.
    """

    a: float
    b: float
    n_inputs: float
    lam: np.ndarray = field(repr=False)
    p: np.ndarray = field(repr=False)
    weight: np.ndarray = field(repr=False)
    last: float = 0.0  # K, the last mode kept as an entry
    tail: dict[str, float] = field(default_factory=dict, repr=False)
    total_lam: float = 0.0  # tr Λ = Σ_{k ≤ M} λ_k
    total_p: float = 0.0  # Σ_{k ≤ M} p_k, the excess loss at w = 0


def input_modes(
    a: float, b: float, n_features: int, n_inputs: float, *, eps: float = 0.1, head: int = 0
) -> InputModes:
    """Entries for the input sums at resolution ``eps`` (docs/theory.md §3).

    Modes k ≤ k₀ are exact; beyond, a bin of Δk modes spans a relative eigenvalue range
    b·Δk/k ≤ eps·min(1, πk/(Nb)) — well below the relative width y/λ ≈ πk/(Nb) over which the
    equation for y smooths the spectrum near λ_k (and below eps past k ≈ N). For M = ∞ the
    entries stop at K with λ_K ≤ 1e-7·N^-b (below the smallest |κ| ~ N^-b), the rest is a tail.
    """
    N = int(n_features)
    if math.isinf(n_inputs):
        last = float(math.ceil(N * 10.0 ** (7.0 / b)))
    else:
        last = float(n_inputs)
    k0 = int(min(last, max(head, math.ceil(b * math.sqrt(N / (eps * math.pi))))))
    edges = list(range(1, k0 + 2))
    k = k0 + 1
    while k <= last:
        width = eps * (k / b) * min(1.0, math.pi * k / (N * b))
        k = min(last + 1, k + max(1, int(width)))
        edges.append(k)
    e = np.array(edges, dtype=np.float64)
    lo, hi = e[:-1], e[1:] - 1
    w = hi - lo + 1
    single = w == 1  # exact modes: k^-s directly (no difference of two zeta values)
    lam = np.where(single, lo**-b, _zeta_range(b, lo, hi) / w)
    p = np.where(single, lo**-a, _zeta_range(a, lo, hi) / w)
    tail = {}
    if math.isinf(n_inputs):
        for name, s in (("b", b), ("2b", 2 * b), ("a", a), ("a+b", a + b)):
            tail[name] = float(special.zeta(s, last + 1.0))
    top = math.inf if math.isinf(n_inputs) else float(n_inputs)
    return InputModes(
        a=a,
        b=b,
        n_inputs=top,
        lam=lam,
        p=p,
        weight=w,
        last=last,
        tail=tail,
        total_lam=float(_zeta_range(b, 1.0, top)),
        total_p=float(_zeta_range(a, 1.0, top)),
    )


def _s1(modes: InputModes, kappa: float) -> float:
    """Σ_k λ_k/(λ_k + κ) (κ > 0), tail included."""
    v = float(np.sum(modes.weight * modes.lam / (modes.lam + kappa)))
    if modes.tail:
        v += modes.tail["b"] / kappa - modes.tail["2b"] / kappa**2
    return v


def ridge(modes: InputModes, n_features: int) -> float:
    """κ₀ > 0 solving Σ_k λ_k/(λ_k + κ₀) = N (0 when M = N), by bisection in log κ.

    The left side falls monotonically from M (κ → 0) to 0 (κ → ∞), so the positive root is
    unique when M > N; bisection cannot land on another branch (Newton from an arbitrary start
    can).
    """
    N = float(n_features)
    if not math.isinf(modes.n_inputs) and modes.n_inputs <= N:
        return 0.0
    lo, hi = 1e-300, float(modes.lam[0]) * (modes.total_lam / modes.lam[0] / N + 1.0) * 2
    lo = hi
    while _s1(modes, lo) < N:  # walk down to a bracket
        lo *= 1e-2
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if _s1(modes, mid) > N:
            lo = mid
        else:
            hi = mid
        if hi / lo - 1 < 1e-15:
            break
    return math.sqrt(lo * hi)


def approx_error(
    a: float, b: float, *, n_features: int, n_inputs: float = math.inf, modes=None
) -> float:
    """Mean approximation error of N Gaussian random features, L_approx = κ₀ Σ_k p_k/(λ_k + κ₀).

    The large-N limit of min_w E[(w·ψ − w*·x)²] averaged over F (docs/theory.md §3); it falls
    as N^(−min(a−1, b)). The sums run over input modes at a resolution 100× finer than the
    spectral density's (cheap: they are one-dimensional), so binning does not show in it.
    """
    modes = modes or input_modes(a, b, n_features, n_inputs, eps=1e-3)
    k0 = ridge(modes, n_features)
    if k0 == 0.0:
        return 0.0
    v = float(np.sum(modes.weight * modes.p / (modes.lam + k0)))
    if modes.tail:
        v += modes.tail["a"] / k0 - modes.tail["a+b"] / k0**2
    return k0 * v


# ----------------------------------------------------------------------------- the densities
_CHUNK = 512


def _sums(modes: InputModes, x: np.ndarray, u: np.ndarray, full: bool) -> np.ndarray:
    """Sums over the input modes at κ = x − i√u, D_k = (λ_k + x)² + u, tail included.

    Rows: Σ wλ²/D, Σ wλ²/D² and, with ``full``, Σ wλ²(λ+x)/D, Σ wλ²(λ+x)/D², Σ wλ²(λ+x)²/D²,
    Σ w p λ/D. Shape (2 or 6, x.size). Beyond the last entry λ ≪ |κ|, so λ + x ≈ x there.
    """
    lam = modes.lam
    c2, cp = modes.weight * lam**2, modes.weight * modes.p * lam
    out = np.empty((6 if full else 2, x.size))
    for s in range(0, x.size, _CHUNK):
        sl = slice(s, s + _CHUNK)
        shift = lam + x[sl, None]
        inv = shift * shift
        inv += u[sl, None]
        np.reciprocal(inv, out=inv)
        out[0, sl] = inv @ c2
        if full:
            out[5, sl] = inv @ cp
            sinv = shift * inv
            out[2, sl] = sinv @ c2
            out[3, sl] = (sinv * inv) @ c2
            out[4, sl] = (sinv * sinv) @ c2
        inv *= inv
        out[1, sl] = inv @ c2
    if modes.tail:
        t2, tp = modes.tail["2b"], modes.tail["a+b"]
        inv = 1.0 / (x * x + u)
        out[0] += t2 * inv
        out[1] += t2 * inv * inv
        if full:
            out[2] += t2 * x * inv
            out[3] += t2 * x * inv * inv
            out[4] += t2 * (x * inv) ** 2
            out[5] += tp * inv
    return out


def _g0(modes: InputModes, x: np.ndarray, N: float) -> np.ndarray:
    """G(x, 0) = (1/N) Σ_k λ_k²/(λ_k + x)² (∞ on a pole)."""
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        g = _sums(modes, x, np.zeros_like(x), full=False)[0] / N
    return np.where(np.isfinite(g), g, np.inf)


def _solve_u(modes: InputModes, x: np.ndarray, N: float) -> np.ndarray:
    """u = y² ≥ 0 with G(x, u) = 1 where G(x, 0) > 1 (0 elsewhere), by Newton on 1/G − 1.

    1/G is a harmonic mean of functions affine in u, hence concave and increasing: Newton from
    below the root rises monotonically to it without overshooting.
    """
    g0 = _g0(modes, x, N)
    u = np.zeros_like(x)
    bad = ~np.isfinite(g0)  # on a pole (x = −λ_j, or x = 0 with the tail): start just above 0
    u[bad] = (1e-9 * np.maximum(np.abs(x[bad]), float(modes.lam[-1]))) ** 2
    active = g0 > 1.0
    for _ in range(100):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        s = _sums(modes, x[idx], u[idx], full=False) / N
        step = (s[0] * s[0] - s[0]) / s[1]
        new = u[idx] + np.maximum(step, 0.0)
        u[idx] = new
        active[idx[~(step > 1e-12 * new)]] = False  # converged (a step ≤ 0 is rounding)
    return u


def _gmin(modes: InputModes, N: float, left: np.ndarray, right: np.ndarray):
    """Minimum of the convex G(x, 0) on each interval (left, right) between consecutive poles,
    by bisection on the sign of ∂G/∂x. Returns (x_min, G_min)."""
    lo, hi = left.copy(), right.copy()
    c2 = modes.weight * modes.lam**2
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            slope = (
                np.concatenate(
                    [
                        -(1.0 / (modes.lam + mid[s : s + _CHUNK, None]) ** 3) @ c2
                        for s in range(0, mid.size, _CHUNK)
                    ]
                )
                if mid.size
                else mid
            )
            lo = np.where(slope < 0, mid, lo)
            hi = np.where(slope < 0, hi, mid)
    xm = 0.5 * (lo + hi)
    return xm, _g0(modes, xm, N)


def _edge(modes: InputModes, N: float, inside: np.ndarray, outside: np.ndarray) -> np.ndarray:
    """The x between ``inside`` (G(x, 0) > 1) and ``outside`` (G < 1) with G(x, 0) = 1."""
    a, b = np.array(inside, float), np.array(outside, float)
    for _ in range(80):
        mid = 0.5 * (a + b)
        g = _g0(modes, mid, N)
        a, b = np.where(g > 1, mid, a), np.where(g > 1, b, mid)
    return 0.5 * (a + b)


def _steps(top: float, bottom: float, N: int, b: float, resolution: float, per_decade: int):
    """Points s from ``top`` down to ``bottom`` > 0 with Δ ln s = min(ln 10/per_decade,
    resolution·π k/(N b)), k = s^(−1/b) (see :func:`spectral_density`)."""
    out, s, cap = [top], top, math.log(10.0) / per_decade
    while s > bottom:
        s *= math.exp(-min(cap, resolution * math.pi * s ** (-1.0 / b) / (N * b)))
        out.append(max(s, bottom))
    return np.array(out)


@dataclass(frozen=True)
class SpectralDensity:
    """The deterministic-equivalent spectrum of Σ = F Λ Fᵀ at quadrature nodes (descending μ).

    Arrays of shape ``(n,)``: ``x`` = Re κ (ascending), ``y`` = −Im κ (0 on an edge), ``mu``
    (descending), ``count`` (eigenvalues per unit μ) and ``loss`` (initial excess loss per unit
    μ), and the quadrature masses of each node: ``dn`` (eigenvalues) and ``dl`` (loss).
    ``n_isolated``: outlier eigenvalues separated from the rest (their nodes come first).
    Totals: ``count_total`` = Σ dn (→ N) and ``loss_total`` = Σ dl (→ ``loss_exact`` =
    h(0) = Σ_k p_k λ_k/(λ_k + κ₀), the loss a fit in feature space can remove).
    """

    x: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    mu: np.ndarray = field(repr=False)
    count: np.ndarray = field(repr=False)
    loss: np.ndarray = field(repr=False)
    dn: np.ndarray = field(repr=False)
    dl: np.ndarray = field(repr=False)
    n_features: int = 0
    kappa0: float = 0.0
    n_isolated: int = 0
    count_total: float = 0.0
    loss_total: float = 0.0
    loss_exact: float = 0.0
    approx_error: float = 0.0


def _cheb_nodes(lo: float, hi: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes x = lo + (hi − lo)(1 − cos θ)/2 at n equally spaced θ ∈ [0, π] and the weights of
    the trapezoid rule in θ (∫ f dx = ∫ f (dx/dθ) dθ). At a square-root edge f·dx/dθ is smooth
    and even in θ, so the rule converges spectrally."""
    th = np.linspace(0.0, math.pi, n)
    return lo + (hi - lo) * 0.5 * (1 - np.cos(th)), (math.pi / (n - 1)) * 0.5 * (hi - lo) * np.sin(
        th
    )


def spectral_density(
    a: float,
    b: float,
    *,
    n_features: int,
    n_inputs: float = math.inf,
    per_interval: int = 24,
    per_decade: int = 200,
    resolution: float = 0.25,
) -> SpectralDensity:
    """The eigenvalue and initial-loss densities of the deterministic equivalent (module doc).

    Support in x = Re κ: every gap between two consecutive input eigenvalues is found by
    bisection (G(x, 0) is convex there); the isolated intervals around the top eigenvalues hold
    one eigenvalue each. Quadrature: ``per_interval`` Chebyshev nodes with the trapezoid rule in
    θ on each isolated interval; on the continuum the trapezoid rule in x on nodes clustered at
    its edges, a grid on x < 0 with steps ≤ ``resolution``·y (y ≈ πλk/(Nb) is the width over
    which the equation smooths the pole −λ_k; capped at 1/``per_decade`` decades) and a log grid
    on x > 0, both down to y(0)/100 around x = 0. Integrals ∫ f dμ use the exact Jacobian
    dμ/dx = −1 − ∂R/∂x + 2(∂R/∂u)²/(∂G/∂u) (R = Re Σ_k λ_k²/(λ_k+κ)/N, u = y²).
    Needs M > N.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):  # many small products: no BLAS threads
        return _spectral_density(
            a, b, int(n_features), n_inputs, per_interval, per_decade, resolution
        )


def _spectral_density(a, b, N, n_inputs, per_interval, per_decade, resolution):
    modes = input_modes(a, b, N, n_inputs)
    kappa0 = ridge(modes, N)
    lam = modes.lam
    # Gaps between consecutive poles x = −λ_j of the exact head: G(x, 0) ≥ (λ_{j+1}/(λ_j −
    # λ_{j+1}))²/N (the nearer pole's term alone) must be < 1 there. The bins are narrower than
    # the smoothing width y, so the binned part has no gaps.
    j = np.flatnonzero(modes.weight[:-1] == 1)
    j = j[(lam[j + 1] / (lam[j] - lam[j + 1])) ** 2 < N]
    xm, gm = _gmin(modes, N, -lam[j], -lam[j + 1])
    gap = gm < 1
    g_lo = _edge(modes, N, -lam[j][gap], xm[gap])
    g_hi = _edge(modes, N, -lam[j + 1][gap], xm[gap])
    # The outer edges: above the top eigenvalue, and x_low ∈ (0, κ₀) below the spectrum.
    far = -lam[0] * (2.0 + modes.total_lam / N)
    x_top = float(_edge(modes, N, [-lam[0]], [far])[0])
    x_low = float(_edge(modes, N, [1e-12 * kappa0], [kappa0])[0])
    starts, ends = np.concatenate([[x_top], g_hi]), np.concatenate([g_lo, [x_low]])
    xs, ws = [], []
    for lo, hi in zip(starts[:-1], ends[:-1], strict=True):
        x_, w_ = _cheb_nodes(lo, hi, per_interval)
        xs.append(x_)
        ws.append(w_)
    s0 = float(starts[-1])
    y0 = math.sqrt(float(_solve_u(modes, np.zeros(1), N)[0]))
    parts = [_cheb_nodes(s0, x_low, 8 * per_interval)[0]]
    parts.append(-_steps(-s0, 1e-2 * y0, N, b, resolution, per_decade))
    if x_low > 1e-2 * y0:
        n = max(2, int(per_decade * math.log10(x_low / (1e-2 * y0))))
        parts.append(np.geomspace(1e-2 * y0, x_low, n))
    xc = np.unique(np.concatenate(parts))
    xc = xc[(xc >= s0) & (xc <= x_low)]
    xs.append(xc)
    wc = np.gradient(xc)  # trapezoid weights: (x_{i+1} − x_{i−1})/2, halved at the ends
    wc[[0, -1]] *= 0.5
    ws.append(wc)
    x, w = np.concatenate(xs), np.concatenate(ws)
    u = _solve_u(modes, x, N)
    y = np.sqrt(u)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        A1, A2, B1, B2, C2, H = _sums(modes, x, u, full=True)
        mu = -x + (modes.total_lam - B1) / N
        dmu_dx = -1.0 - (A1 - 2 * C2) / N - 2 * B2 * B2 / (N * A2)
        count = np.where(y > 0, N * y / (math.pi * (x * x + u)), 0.0)
        loss = np.where(y > 0, H * y / (math.pi * mu), 0.0)
    jac = np.abs(np.nan_to_num(dmu_dx))
    dn, dl = count * jac * w, loss * jac * w
    h0 = modes.total_p - approx_error(a, b, n_features=N, n_inputs=n_inputs, modes=modes)
    l_approx = approx_error(a, b, n_features=N, n_inputs=n_inputs)
    return SpectralDensity(
        x=x,
        y=y,
        mu=mu,
        count=count,
        loss=loss,
        dn=dn,
        dl=dl,
        n_features=N,
        kappa0=kappa0,
        n_isolated=int(gap.sum()) + 1 if gap.any() else 0,
        count_total=float(dn.sum()),
        loss_total=float(dl.sum()),
        loss_exact=h0,
        approx_error=l_approx,
    )


def deterministic_equivalent(
    a: float,
    b: float,
    *,
    n_features: int,
    n_inputs: float = math.inf,
    bins_per_decade: float = 100.0,
    density: SpectralDensity | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Modes (μ̄, C(0), multiplicity W) and L_approx of N Gaussian random features, averaged
    over F (docs/theory.md §3).

    The counting function n(μ) = #{eigenvalues ≥ μ} of :func:`spectral_density` is cut at
    n = 1, 2, …, n₁ (one eigenvalue per bin at the top, n₁ = ⌊1/(10^(1/bins_per_decade) − 1)⌋)
    and then at geometric steps of ratio 10^(1/bins_per_decade). A bin's multiplicity W is its
    eigenvalue count, μ̄ the mean of its eigenvalues (Σ W μ̄ = tr Λ = E tr Σ to ~1e-4) and
    C(0) = ℓ/(W μ̄) with ℓ the initial loss its modes hold. The quadrature totals are rescaled
    to their exact values N and h(0) (they agree to ~1e-4 before).
    """
    N = int(n_features)
    d = density or spectral_density(a, b, n_features=N, n_inputs=n_inputs)
    dn = d.dn * (N / d.count_total)
    dl = d.dl * (d.loss_exact / d.loss_total)
    # Cumulative count at the boundaries between nodes; a node's mass sits between them.
    n_cum = np.concatenate([[0.0], np.cumsum(dn)])
    m_cum = np.concatenate([[0.0], np.cumsum(dn * d.mu)])
    l_cum = np.concatenate([[0.0], np.cumsum(dl)])
    ratio = 10.0 ** (1.0 / bins_per_decade)
    n1 = min(N, max(1, int(1.0 / (ratio - 1.0))))
    edges = list(np.arange(n1 + 1, dtype=float))
    while edges[-1] < N:
        edges.append(min(float(N), edges[-1] * ratio))
    e = np.array(edges)
    keep = np.concatenate([[True], np.diff(n_cum) > 0])  # strictly increasing for interp
    W = np.diff(e)
    mu_bar = np.diff(np.interp(e, n_cum[keep], m_cum[keep])) / W
    loss = np.diff(np.interp(e, n_cum[keep], l_cum[keep]))
    return mu_bar, loss / (W * mu_bar), W, d.approx_error
