"""The power-law linear-regression problem (docs/theory.md §1).

A :class:`Problem` holds everything the exact dynamics need, as a list of *modes*: eigenvalues
``lam`` (λ_k), initial mode errors ``c0`` (C_k(0) = w*_k²) and multiplicities ``weight``. Plain
problems have weight 1 for every mode. Very large problems keep an exact head of modes and group
the tail into geometric bins, each bin standing for ``weight`` identical modes with one
representative eigenvalue and the bin's summed target power; the recursion keeps its exact form
(the coupling term sums λ·C·weight).

>>> p = Problem(a=2.5, b=1.2, sigma=0.5, n_modes=1000, batch=4)
>>> p.phase
'easy'
>>> round(p.initial_loss, 6) == round(float((np.arange(1, 1001) ** -2.5).sum()), 6)
True
>>> Problem(a=1.0, b=2.0)
Traceback (most recent call last):
...
ValueError: a must be a finite number > 1 (target power k^-a must be summable); got a=1.0
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize, special

__all__ = [
    "Problem",
    "TheoryExponents",
    "approx_exponent",
    "check_finite",
    "available_memory",
    "random_features_memory",
    "SIGMA_MAX",
    "N_MAX",
]


#: Largest label-noise std: σ² enters the recursion (with room for the loss on top of it).
SIGMA_MAX = 1e100
#: Largest number of modes (binned): mode indices stay exact integers in float64.
N_MAX = 10**15
#: Smallest eigenvalue kept representable (λ² may underflow harmlessly; λ itself must not).
_LAM_MIN = 1e-300
#: Bytes of memory per exact mode (the problem's arrays and the dynamics' padded copies).
_BYTES_PER_MODE = 64


def check_finite(name: str, value: Any) -> float:
    """``float(value)``, or a ``ValueError`` naming ``name`` when it is not a finite number."""
    try:
        v = float(value)
    except OverflowError:
        raise ValueError(f"{name} must be a finite number; got {name}={value!r:.40}") from None
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number; got {name}={value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number; got {name}={value!r}")
    return v


def check_positive(name: str, value: Any, rule: str = "a finite number > 0") -> float:
    """``float(value)``, or a ``ValueError`` naming ``name`` (``"{name} must be {rule}; got
    {name}=..."``) when it is not a finite number > 0."""
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be {rule}; got {name}={value!r}")
    return v


def _check_features(n_features: Any) -> int:
    if (
        isinstance(n_features, bool)
        or not isinstance(n_features, int | np.integer)
        or n_features < 1
    ):
        raise ValueError(f"n_features must be an integer >= 1; got n_features={n_features!r}")
    return int(n_features)


def _check_key(key: Any) -> None:
    """A jax.random key: a typed key (``jax.random.key``) or a raw uint32 pair (``PRNGKey``)."""
    import jax

    ok = False
    if isinstance(key, jax.Array):
        if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
            ok = key.ndim == 0
        else:
            ok = key.dtype == np.uint32 and key.shape == (2,)
    if not ok:
        raise ValueError(
            "key must be None (the deterministic equivalent) or a single jax.random key "
            f"(jax.random.key(seed) or jax.random.PRNGKey(seed)); got key={key!r}"
        )


def _power_sum(s: float, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Σ_{k=lo}^{hi} k^(-s), exactly, via the Hurwitz zeta function (s > 1)."""
    return special.zeta(s, lo) - special.zeta(s, hi + 1.0)


@dataclass(frozen=True)
class TheoryExponents:
    """Predicted exponents of docs/theory.md §6–7 (predictions, to be measured).

    The approximation and compute-optimal exponents belong to a *finite-N model*: ``model`` is
    ``"top_n"`` (the student sees modes 1..N of an infinite target, L_approx = Σ_{k>N} k^-a),
    ``"random_features"`` (N Gaussian random features of the input, per draw or averaged), or
    ``"modes"`` (a plain problem that *is* N modes: no approximation error, so no trade of N
    against T; those fields are ``None``). Compute C = N·T·m at fixed batch m; with
    L ≈ N^(−α) + T^(−r), N* ~ C^(r/(α+r)), T* ~ C^(α/(α+r)), L* ~ C^(−αr/(α+r)) (§7).
    """

    phase: str
    xi: float  # peak rate η* ~ T^(-xi)
    delta: float | None  # easy-phase annealing shape (1 - t/T)^delta; None in the hard phase
    optimal_loss: float  # L*(T) ~ T^(-optimal_loss)
    constant_loss: float  # loss with the best constant rate ~ T^(-constant_loss)
    constant_eta: float  # best constant rate ~ T^(-constant_eta)
    approx_error: float | None  # α: L_approx(N) ~ N^(-approx_error); None for "modes"
    compute_model_size: float | None  # N* ~ C^(compute_model_size), optimal schedule
    compute_loss: float | None  # L ~ C^(-compute_loss), optimal schedule
    model: str = "modes"  # the finite-N model the last fields are for
    compute_steps: float | None = None  # T* ~ C^(compute_steps), optimal schedule
    constant_compute_model_size: float | None = None  # N* ~ C^(…), best constant rate
    constant_compute_steps: float | None = None  # T* ~ C^(…), best constant rate
    constant_compute_loss: float | None = None  # L ~ C^(-…), best constant rate


#: Problem kinds of each finite-N model (:meth:`Problem.theory`).
_MODELS = {
    "top_n": "top_n",
    "random_features": "random_features",
    "random_features_de": "random_features",
}


def approx_exponent(a: float, b: float, model: str) -> float | None:
    """α in L_approx(N) ~ N^(−α) (docs/theory.md §3): a − 1 for the top-N model,
    min(a − 1, b) for Gaussian random features, None for a plain N-mode problem."""
    if model == "top_n":
        return a - 1
    if model == "random_features":
        return min(a - 1, b)
    if model == "modes":
        return None
    raise ValueError(f"model must be 'top_n', 'random_features' or 'modes'; got {model!r}")


@dataclass(frozen=True, eq=False)
class Problem:
    """Power-law problem: λ_k = k^-b, target power λ_k w*_k² = k^-a, label noise σ, batch m.

    Args:
        a: target exponent, > 1.
        b: spectral exponent, > 1.
        sigma: label-noise standard deviation, ≥ 0.
        n_modes: number of modes N ≥ 1 (features of the model). Up to ~1e12 is cheap when
            binned.
        batch: default minibatch size m > 0 (per-step batches can override it in the dynamics;
            a model batch, so it may be below 1: a fit's effective batch m/κ, docs/theory.md
            §9.3; sampling needs an integer ≥ 1).
        normalize: scale w* so that the initial excess loss L(0) is 1.
        n_exact: modes 1..n_exact are kept exactly; the rest are binned (if N > n_exact).
        bins_per_decade: resolution of the geometric tail bins (accuracy knob, > 0; the error
            falls as its inverse square: 2.5e-5 relative at the default 100, N = 20 000).
        precondition: γ ∈ [0, 1) of preconditioned SGD, w ← w − η P ĝ with P = diag(λ_k^-γ) in
            the eigenbasis (docs/theory.md §12; 0: plain SGD). Preconditioned SGD on the data is
            plain SGD on the *effective* problem μ_k = λ_k^(1−γ), C̃_k = λ_k^γ C_k (the same loss
            Σ_k w_k λ_k C_k = Σ_k w_k μ_k C̃_k), so ``lam`` and ``c0`` hold the effective arrays
            and every recursion, stability bound and solver uses them unchanged; the data's
            arrays are kept as ``data_lam`` and ``data_c0`` (for sampling).

    Attributes (numpy, float64, shape ``(n_eff,)`` where ``n_eff`` is the number of kept modes):
        lam: eigenvalue of each kept mode (λ_k, or the bin's power-weighted mean eigenvalue).
        c0: initial mode error C_k(0) of each kept mode (per single mode of a bin).
        weight: multiplicity of each kept mode (1 in the head, the bin size in the tail).
        data_lam, data_c0: with ``precondition`` γ > 0, the data's λ_k and C_k(0) (``lam``,
        ``c0`` are then the effective μ_k, C̃_k); ``None`` at γ = 0. Given (as
        ``dataclasses.replace`` does), they define the problem and ``lam``, ``c0`` are
        recomputed from them.
    """

    a: float
    b: float
    sigma: float = 0.0
    n_modes: int = 1000
    batch: float = 1
    normalize: bool = False
    n_exact: int = 1000
    bins_per_decade: float = 100.0
    lam: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    c0: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    weight: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    approx_error: float = 0.0
    kind: str = "power_law"
    features: RandomFeatures | None = field(default=None, repr=False)
    precondition: float = 0.0
    data_lam: np.ndarray | None = field(default=None, repr=False)
    data_c0: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        a, b = check_finite("a", self.a), check_finite("b", self.b)
        if a <= 1:
            raise ValueError(
                f"a must be a finite number > 1 (target power k^-a must be summable); got a={a}"
            )
        if b <= 1:
            raise ValueError(f"b must be a finite number > 1 (spectrum k^-b); got b={b}")
        sigma = check_finite("sigma", self.sigma)
        if not 0 <= sigma <= SIGMA_MAX:
            raise ValueError(
                f"sigma must be in [0, {SIGMA_MAX:g}] (label-noise std; σ² enters the "
                f"recursion); got sigma={sigma}"
            )
        batch = check_finite("batch", self.batch)
        if not batch > 0:
            raise ValueError(f"batch must be > 0; got batch={self.batch}")
        n = check_finite("n_modes", self.n_modes)
        if not 1 <= n <= N_MAX or n != int(n):
            raise ValueError(
                f"n_modes must be an integer in [1, {N_MAX:.0e}] (exact in float64); "
                f"got n_modes={self.n_modes!r}"
            )
        n_exact = check_finite("n_exact", self.n_exact)
        if n_exact < 1 or n_exact != int(n_exact):
            raise ValueError(f"n_exact must be an integer >= 1; got n_exact={self.n_exact!r}")
        bpd = check_finite("bins_per_decade", self.bins_per_decade)
        if not bpd >= 1 / 300:
            raise ValueError(
                "bins_per_decade must be >= 1/300 (a tail bin spans at most 300 decades: the "
                f"bin ratio 10^(1/bins_per_decade) must be a float64 number); got "
                f"bins_per_decade={bpd:g}"
            )
        for name, v in (("a", a), ("b", b), ("sigma", sigma), ("batch", batch)):
            set_(self, name, v)
        set_(self, "n_modes", int(n))
        set_(self, "n_exact", int(n_exact))
        set_(self, "bins_per_decade", bpd)
        gamma = check_finite("precondition", self.precondition)
        if not 0 <= gamma < 1:
            raise ValueError(
                f"precondition must be in [0, 1) (γ of P = diag(λ_k^-γ); 0 is plain SGD); got "
                f"precondition={self.precondition!r}"
            )
        set_(self, "precondition", gamma)
        if self.data_lam is not None:  # a copy: the data's arrays define the problem
            set_(self, "lam", self.data_lam)
            set_(self, "c0", self.data_c0)
        if self.lam is None:
            head = min(int(n), int(n_exact))
            bins = bpd * math.log10(max(n / head, 1.0)) + 1
            _check_memory("n_exact" if head >= bins else "bins_per_decade", int(head + bins))
            with np.errstate(all="ignore"):  # overflow/underflow is diagnosed just below
                lam, c0, weight = _power_law_modes(a, b, int(n), int(n_exact), bpd)
            _check_representable(a, b, int(n), lam, c0, weight)
        else:
            lam, c0, weight = (
                np.asarray(x, dtype=np.float64) for x in (self.lam, self.c0, self.weight)
            )
            for name, x in (("lam", lam), ("c0", c0), ("weight", weight)):
                if x.ndim != 1 or x.shape != lam.shape or not np.all(np.isfinite(x)):
                    raise ValueError(
                        f"{name} must be a finite 1-D array of the same length as "
                        f"lam; got shape {x.shape}"
                    )
            if np.any(lam <= 0) or np.any(c0 < 0) or np.any(weight <= 0):
                raise ValueError("lam must be > 0, c0 >= 0 and weight > 0 for every mode")
        if self.normalize:
            c0 = c0 / float(np.sum(weight * lam * c0))
        for name, x in (("lam", lam), ("c0", c0), ("weight", weight)):
            x = np.array(x, dtype=np.float64)
            x.setflags(write=False)
            set_(self, name, x)
        set_(self, "approx_error", check_finite("approx_error", self.approx_error))
        if gamma:  # the effective problem of preconditioned SGD (docs/theory.md §12)
            for name, x in (("data_lam", self.lam), ("data_c0", self.c0)):
                set_(self, name, x)
            for name, x in (("lam", self.lam ** (1 - gamma)), ("c0", self.c0 * self.lam**gamma)):
                x.setflags(write=False)
                set_(self, name, x)
        else:
            set_(self, "data_lam", None)
            set_(self, "data_c0", None)

    # ----------------------------------------------------------------- constructors
    @classmethod
    def from_spectrum(
        cls,
        lam: np.ndarray,
        c0: np.ndarray,
        *,
        sigma: float = 0.0,
        batch: float = 1,
        weight: np.ndarray | None = None,
        a: float = 2.0,
        b: float = 2.0,
        approx_error: float = 0.0,
        kind: str = "spectrum",
        precondition: float = 0.0,
    ) -> Problem:
        """A problem on an arbitrary diagonal spectrum ``lam`` with initial errors ``c0``.

        ``a``, ``b`` are kept as labels (phase, theory exponents) only. ``precondition``: γ of
        preconditioned SGD on this spectrum (the class docstring).
        """
        lam = np.asarray(lam, dtype=np.float64)
        weight = np.ones_like(lam) if weight is None else np.asarray(weight, np.float64)
        return cls(
            a=a,
            b=b,
            sigma=sigma,
            n_modes=int(round(float(np.sum(weight)))),
            batch=batch,
            lam=lam,
            c0=np.asarray(c0, np.float64),
            weight=weight,
            approx_error=approx_error,
            kind=kind,
            precondition=precondition,
        )

    @classmethod
    def top_n(
        cls,
        a: float,
        b: float,
        sigma: float = 0.0,
        *,
        n_features: int,
        batch: float = 1,
        n_exact: int = 1000,
        bins_per_decade: float = 100.0,
    ) -> Problem:
        """The paper's finite-N model: a student that sees modes 1..N of the infinite target.

        With Gaussian inputs the modes k > N are independent of the student's features, so the
        part of y they carry, Σ_{k>N} w*_k x_k, is independent Gaussian noise of variance
        L_approx(N) = Σ_{k>N} k^-a = ζ(a, N+1) (exact, Hurwitz zeta). The dynamics are those of
        the N-mode problem with label noise σ_eff² = σ² + L_approx (stored as ``sigma``), and the
        excess test loss over σ² is L(t) + L_approx (docs/theory.md §3).
        L_approx ~ N^(−(a−1))/(a−1). ``n_exact``/``bins_per_decade``: the binned tail of
        :class:`Problem` for large N.

        >>> p = Problem.top_n(2.5, 1.2, 0.5, n_features=100)
        >>> p.kind, p.n_modes, round(p.approx_error, 8), p.theory().approx_error
        ('top_n', 100, 0.00066169, 1.5)
        """
        n = _check_features(n_features)
        base = cls(
            a=a, b=b, sigma=sigma, n_modes=n, n_exact=n_exact, bins_per_decade=bins_per_decade
        )
        l_approx = float(special.zeta(base.a, n + 1.0))
        return base._finite_n(
            "top_n", n, batch, l_approx, base.lam, base.c0, base.weight, n_exact=base.n_exact
        )

    def _finite_n(
        self, kind: str, n: int, batch, l_approx: float, lam, c0, weight, **extra: Any
    ) -> Problem:
        """A finite-N model built from ``self`` (a, b, σ): modes (lam, c0, weight) of N
        features, the approximation error as extra label noise σ_eff² = σ² + L_approx."""
        return type(self)(
            a=self.a,
            b=self.b,
            sigma=math.sqrt(self.sigma**2 + l_approx),
            n_modes=n,
            batch=batch,
            bins_per_decade=self.bins_per_decade,
            lam=lam,
            c0=c0,
            weight=weight,
            approx_error=l_approx,
            kind=kind,
            **extra,
        )

    @classmethod
    def from_random_features(
        cls,
        a: float,
        b: float,
        sigma: float = 0.0,
        *,
        n_features: int,
        n_inputs: int | float,
        key: Any = None,
        batch: float = 1,
        bins_per_decade: float = 100.0,
    ) -> Problem:
        """SGD on N Gaussian random features of an M-dimensional power-law input (§3).

        Inputs x ∈ R^M, covariance Λ = diag(k^-b); features ψ = F x, F_ij ~ N(0, 1/N) (so
        E[FᵀF] = I); target y = w*·x + ε with λ_k w*_k² = k^-a. For a drawn F, ψ and y are
        jointly Gaussian, so y = w_N·ψ + r with r independent of ψ. In the eigenbasis of
        Σ = F Λ Fᵀ = U diag(μ) Uᵀ this is the power-law recursion with spectrum μ, initial
        errors (Uᵀ w_N)², and label noise σ_eff² = σ² + L_approx (stored as ``sigma``); the
        excess test loss over σ² is L(t) + L_approx.

        Args:
            a, b, sigma, batch: as for :class:`Problem`.
            n_features: N ≥ 1, the number of random features.
            n_inputs: M ≥ N, the input dimension. The projection maps M inputs onto N ≤ M
                features; with N > M the features would be linearly dependent (Σ singular)
                and the model is just the M-dimensional linear model on x. ``math.inf`` (an
                infinite-dimensional input) is allowed for the deterministic equivalent.
            key: a ``jax.random`` key: one draw of F (keeps the draw as ``features`` so that
                :mod:`rfmodel.simulate` can run SGD on real ψ = F x; N×M memory, O(N²M) time).
                ``None``: the deterministic equivalent, the average over F for large N and M
                (:mod:`rfmodel.random_features`; needs M > N; kind ``"random_features_de"``;
                N = 10^5 with M = ∞ takes seconds).
            bins_per_decade: resolution of the deterministic equivalent's spectrum (one mode
                per eigenvalue at the top, geometric bins below).

        >>> p = Problem.from_random_features(2.5, 1.2, 0.3, n_features=200, n_inputs=4000)
        >>> p.kind, p.n_modes, round(p.approx_error, 6), p.theory().approx_error
        ('random_features_de', 200, 0.018892, 1.2)
        """
        n = _check_features(n_features)
        m = n_inputs
        if isinstance(m, bool) or not (
            isinstance(m, int | np.integer) or (isinstance(m, float) and math.isinf(m) and m > 0)
        ):
            raise ValueError(
                f"n_inputs must be an integer >= n_features or math.inf; got n_inputs={m!r}"
            )
        if m < n:
            raise ValueError(
                f"n_inputs must be >= n_features={n} (M inputs projected onto N <= M features; "
                f"with N > M the features are linearly dependent and the model is the "
                f"M-dimensional linear model on x); got n_inputs={m}"
            )
        if key is None:
            if m == n:
                raise ValueError(
                    f"n_inputs must be > n_features={n} for the deterministic equivalent (key=None)"
                    f"; at M = N the features span the inputs: use Problem(a, b, n_modes={n}); "
                    f"got n_inputs={m}"
                )
            return cls._random_features_mean(a, b, sigma, n, m, batch, bins_per_decade)
        if math.isinf(m):
            raise ValueError("n_inputs must be finite for a drawn projection (key given)")
        _check_key(key)
        return cls._random_features_draw(a, b, sigma, n, int(m), key, batch)

    @classmethod
    def _random_features_mean(
        cls, a, b, sigma, n: int, m: float, batch, bins_per_decade
    ) -> Problem:
        from .random_features import deterministic_equivalent

        base = cls(a=a, b=b, sigma=sigma, n_modes=n, batch=batch, bins_per_decade=bins_per_decade)
        mu, c0, weight, l_approx = deterministic_equivalent(
            base.a, base.b, n_features=n, n_inputs=m, bins_per_decade=base.bins_per_decade
        )
        return base._finite_n(
            "random_features_de",
            n,
            base.batch,
            l_approx,
            mu,
            c0,
            weight,
            n_exact=int(min(m, 2**62)),  # records M (2^62 for an infinite input)
        )

    @classmethod
    def _random_features_draw(cls, a, b, sigma, n: int, m: int, key, batch) -> Problem:
        import jax  # local: problem.py stays importable without initializing jax

        need, have = random_features_memory(n, m), available_memory()
        if need > have / 2:
            raise ValueError(
                f"n_features={n} × n_inputs={m}: drawing the features needs ~"
                f"{need / 2**30:.3g} GiB (8·(3·N·M + 4·N²) bytes), more than half of this "
                f"machine's {have / 2**30:.3g} GiB; use fewer features or inputs"
            )
        base = cls(a=a, b=b, sigma=sigma, n_modes=m, batch=batch, n_exact=m)
        lam_x = base.lam
        w_star = np.sqrt(base.c0)
        with jax.enable_x64(True):  # float64 draws, without touching the caller's JAX config
            f = np.asarray(
                jax.random.normal(key, (n, m), dtype=jax.numpy.float64),
                dtype=np.float64,
            ) / math.sqrt(n)
        from threadpoolctl import threadpool_limits

        # One BLAS thread: on shared cores OpenBLAS's threads make eigh ~10x slower (measured
        # 0.65 s vs 0.067 s for a 200×200 eigh plus the 200×4000 product, 2 busy cores).
        with threadpool_limits(limits=1, user_api="blas"):
            cov = (f * lam_x) @ f.T
            mu, u = np.linalg.eigh(cov)
            if not mu[0] > _LAM_MIN:
                raise ValueError(
                    f"n_features={n}: the feature covariance F Λ Fᵀ is numerically singular "
                    f"(smallest eigenvalue {mu[0]:.3g} with b={b}); use fewer features or more "
                    "inputs"
                )
            cross = f @ (lam_x * w_star)  # E[ψ y] = F Λ w*
            w_n = u @ ((u.T @ cross) / mu)  # best linear fit in feature space
            v = u.T @ w_n
        l_approx = float(np.sum(lam_x * w_star**2) - cross @ w_n)
        l_approx = max(l_approx, 0.0)
        return base._finite_n(
            "random_features",
            n,
            batch,
            l_approx,
            mu,
            v**2,
            np.ones_like(mu),
            n_exact=1000,
            features=RandomFeatures(f, lam_x, w_star, u, w_n, base.sigma),
        )

    @classmethod
    def from_data(cls, X, y, *, batch: float = 1, rtol: float = 1e-10) -> Problem:
        """The exact theory for SGD on your own linear-regression data (docs/theory.md §9).

        The model is f(x) = w·x (no intercept: center X and y first if you want one), trained
        from w = 0. With the empirical second moment Σ = XᵀX/n = U diag(λ) Uᵀ, the least-squares
        weights w* (minimum norm when X is rank-deficient) and the residual mean square
        σ² = ‖y − X w*‖²/n, this is the problem of docs/theory.md §1–2 in the eigenbasis:
        spectrum λ_k, initial errors C_k(0) = (Uᵀ w*)_k², noise σ. The excess loss it predicts is
        (w − w*)ᵀ Σ (w − w*), the loss on the data minus its floor σ².

        What the theory assumes: each SGD sample is x ~ N(0, Σ) with y = w*·x + ε, ε ~ N(0, σ²)
        independent of x. Resampling rows of a dataset matches it when the rows are close to
        Gaussian (the recursion's fourth moments are Gaussian ones) and n ≫ d; heavy-tailed
        features change the (m+1)/m and noise terms.

        Args:
            X: inputs, shape (n, d), finite; n < d is allowed (then at most n modes are kept).
            y: targets, shape (n,), finite.
            batch: SGD batch size m ≥ 1.
            rtol: eigenvalues below rtol × the largest are dropped (directions with no data:
                they never change the loss).

        ``a`` and ``b`` are labels fitted to the spectrum (λ_k ≈ k^-b, λ_k C_k(0) ≈ k^-a, log-log
        least squares, clipped to > 1); they only name the phase and the predicted exponents.
        """
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 1:
            raise ValueError(f"X must be a 2-D array (n >= 2 samples, d >= 1); got {X.shape}")
        if y.shape != (X.shape[0],):
            raise ValueError(f"y must have shape (n,) = ({X.shape[0]},); got {y.shape}")
        for name, v in (("X", X), ("y", y)):
            bad = np.argwhere(~np.isfinite(v))
            if bad.size:
                raise ValueError(f"{name} must be finite; got {v[tuple(bad[0])]} at {bad[0]}")
        if not 0 < rtol < 1:
            raise ValueError(f"rtol must be in (0, 1); got rtol={rtol}")
        n = X.shape[0]
        lam, u = np.linalg.eigh(X.T @ X / n)
        order = np.argsort(lam)[::-1]
        lam, u = lam[order], u[:, order]
        if not lam[0] > 0:
            raise ValueError("X must not be all zeros")
        keep = lam > rtol * lam[0]
        lam, u = lam[keep], u[:, keep]
        w_star = u @ ((u.T @ (X.T @ y) / n) / lam)  # minimum-norm least squares
        c0 = (u.T @ w_star) ** 2
        sigma = math.sqrt(max(float(np.mean((y - X @ w_star) ** 2)), 0.0))
        k = np.arange(1, lam.size + 1, dtype=np.float64)
        pos = lam * c0 > 0

        def slope(v, sel):
            if np.sum(sel) < 2:
                return 2.0
            return float(-np.polyfit(np.log(k[sel]), np.log(v[sel]), 1)[0])

        b = max(slope(lam, np.ones_like(pos)), 1.0 + 1e-6)
        a = max(slope(lam * c0, pos), 1.0 + 1e-6)
        return cls.from_spectrum(lam, c0, sigma=sigma, batch=batch, a=a, b=b, kind="data")

    # ----------------------------------------------------------------- derived quantities
    @property
    def label_noise(self) -> float:
        """σ of the recursion (σ_eff for a random-feature problem)."""
        return self.sigma

    @property
    def n_eff(self) -> int:
        """Number of kept (exact or binned) modes the dynamics iterate over."""
        return int(self.lam.shape[0])

    @property
    def binned(self) -> bool:
        return bool(np.any(self.weight != 1.0))

    @property
    def initial_loss(self) -> float:
        """L(0) = Σ_k λ_k C_k(0)."""
        return float(np.sum(self.weight * self.lam * self.c0))

    @property
    def b_eff(self) -> float:
        """The effective spectral exponent b(1 − γ) of preconditioned SGD (b when γ = 0)."""
        return self.b * (1 - self.precondition)

    @property
    def phase(self) -> str:
        """``"easy"`` for a > b, ``"hard"`` for a < b, ``"boundary"`` for a = b (with the
        effective b(1 − γ) under a preconditioner, docs/theory.md §12)."""
        if math.isclose(self.a, self.b_eff, rel_tol=0, abs_tol=1e-12):
            return "boundary"
        return "easy" if self.a > self.b_eff else "hard"

    @property
    def model(self) -> str:
        """The finite-N model: ``"top_n"``, ``"random_features"`` (per draw or the deterministic
        equivalent) or ``"modes"`` (a plain problem of N modes, no approximation error)."""
        return _MODELS.get(self.kind, "modes")

    def theory(self) -> TheoryExponents:
        """Predicted exponents (docs/theory.md §6–7), the finite-N ones for :attr:`model`; with a
        preconditioner those of the effective exponent b(1 − γ) (§12)."""
        from .scaling import compute_optimal_exponents

        a, b = self.a, self.b_eff
        easy = a >= b
        const = (a - 1) / (a - 1 + b)
        opt = (a - 1) / a if easy else (a - 1) / b
        alpha = approx_exponent(a, self.b, self.model)
        if alpha is None:
            p = c = (None, None, None)
        else:
            p, c = compute_optimal_exponents(alpha, opt), compute_optimal_exponents(alpha, const)
        return TheoryExponents(
            phase=self.phase,
            xi=1 - b / a if easy else 0.0,
            delta=2 * b - 1 if easy else None,
            optimal_loss=opt,
            constant_loss=const,
            constant_eta=const,
            approx_error=alpha,
            compute_model_size=p[0],
            compute_loss=p[2],
            model=self.model,
            compute_steps=p[1],
            constant_compute_model_size=c[0],
            constant_compute_steps=c[1],
            constant_compute_loss=c[2],
        )

    def stability_sum(self, eta: float, batch: float | None = None) -> float:
        """S(η) = Σ_k η λ_k / (2m − (m+1) η λ_k) (docs/theory.md §2); stable iff S < 1."""
        m = self.batch if batch is None else batch
        x = eta * self.lam
        den = 2 * m - (m + 1) * x
        if np.any(den <= 0):
            return math.inf
        return float(np.sum(self.weight * x / den))

    def eta_mode_bound(self, batch: float | None = None) -> float:
        """Largest η for which no single mode grows: η λ_max < 2m/(m+1)."""
        m = self.batch if batch is None else batch
        return 2 * m / ((m + 1) * float(np.max(self.lam)))

    def eta_critical(self, batch: float | None = None) -> float:
        """Largest stable constant learning rate η_c, the root of S(η_c) = 1."""
        top = self.eta_mode_bound(batch)
        lo, hi = 0.0, top * (1 - 1e-15)
        if self.stability_sum(hi, batch) < 1:  # a single dominant mode bounds it
            return hi
        return float(
            optimize.brentq(
                lambda e: self.stability_sum(e, batch) - 1.0,
                lo,
                hi,
                xtol=1e-15,
                rtol=4 * np.finfo(float).eps,
            )
        )

    def stationary_loss(self, eta: float, batch: float | None = None) -> float:
        """L(∞) = σ² S / (1 − S) for a stable constant rate (inf when unstable)."""
        s = self.stability_sum(eta, batch)
        return self.sigma**2 * s / (1 - s) if s < 1 else math.inf

    def config(self) -> dict[str, Any]:
        """JSON-serializable description (used as a cache key and in result metadata)."""
        out = {
            "kind": self.kind,
            "a": self.a,
            "b": self.b,
            "sigma": self.sigma,
            "n_modes": self.n_modes,
            "batch": self.batch,
            "normalize": self.normalize,
            "n_exact": self.n_exact,
            "bins_per_decade": self.bins_per_decade,
            "n_eff": self.n_eff,
            "approx_error": self.approx_error,
        }
        if self.precondition:  # only when set: the keys of plain SGD problems stay
            out["precondition"] = self.precondition
        if self.kind != "power_law":  # the arrays define the problem: fingerprint them
            import hashlib

            h = hashlib.sha1()
            for x in (self.lam, self.c0, self.weight):
                h.update(np.ascontiguousarray(x).tobytes())
            out["spectrum_sha1"] = h.hexdigest()
        return out


def available_memory() -> float:
    """Physical memory of this machine in bytes (inf where the OS does not say)."""
    try:
        return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover (not POSIX)
        return math.inf


def random_features_memory(n_features: int, n_inputs: int) -> int:
    """Bytes :meth:`Problem.from_random_features` needs at its peak to draw N features of M
    inputs: 8·(3·N·M + 4·N²) (the draw and its scaled copy, F Λ, then F Λ Fᵀ, its eigenvectors
    and LAPACK's workspace; measured 4.3-5.2 × 8·N² for N = M = 2000-4000, below the 7 × 8·N²
    of this bound)."""
    n, m = int(n_features), int(n_inputs)
    return 8 * (3 * n * m + 4 * n * n)


def _check_memory(name: str, n: int) -> None:
    """Refuse, before allocating, arrays of ``n`` modes that would not fit in half the memory."""
    need, have = n * _BYTES_PER_MODE, available_memory()
    if need > have / 2:
        raise ValueError(
            f"{name}: {n:.3g} exact modes need ~{need / 2**30:.3g} GiB "
            f"({_BYTES_PER_MODE} bytes each), more than half of this machine's "
            f"{have / 2**30:.3g} GiB; keep fewer exact modes (the tail beyond n_exact is binned)"
        )


def _check_representable(
    a: float, b: float, n: int, lam: np.ndarray, c0: np.ndarray, weight: np.ndarray
) -> None:
    """λ_k = k^-b down to k = N, C_k(0) and L(0) must be float64 numbers (docs/theory.md §1)."""
    ok = (
        np.all(np.isfinite(lam))
        and float(np.min(lam)) >= _LAM_MIN
        and np.all(np.isfinite(c0))
        and np.all(c0 >= 0)
        and math.isfinite(float(np.sum(weight * lam * c0)))
    )
    if not ok:
        digits = -math.log10(_LAM_MIN)
        bmax = digits / math.log10(n) if n > 1 else math.inf
        raise ValueError(
            f"b={b:g} with n_modes={n:.4g}: the spectrum λ_k = k^-b falls to "
            f"~1e-{b * math.log10(max(n, 1)):.0f} at k = N, not representable in float64; "
            f"need b·log10(n_modes) <= {digits:.0f} (here b <= {bmax:.4g}), or fewer modes"
        )


@dataclass(frozen=True, eq=False)
class RandomFeatures:
    """One draw of the random-feature model (arrays in float64).

    ``proj`` F (N, M); ``lam_x`` input spectrum (M,); ``w_star`` target (M,); ``basis`` U (N, N)
    eigenvectors of Σ = F Λ Fᵀ; ``w_n`` the best feature-space weights (N,); ``sigma`` the true
    label-noise std.
    """

    proj: np.ndarray
    lam_x: np.ndarray
    w_star: np.ndarray
    basis: np.ndarray
    w_n: np.ndarray
    sigma: float


def _power_law_modes(
    a: float, b: float, n: int, n_exact: int, bins_per_decade: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact head k ≤ n_exact, then geometric bins [lo, hi] of ratio 10^(1/bins_per_decade).

    A bin has weight hi − lo + 1, summed target power P = Σ k^-a, and the power-weighted mean
    eigenvalue λ̄ = Σ k^-(a+b) / P (it matches the bin's initial loss and its initial decay rate
    d/dt Σ λ_k C_k exactly); each of its modes starts at C = P / (weight · λ̄).
    """
    head = np.arange(1, min(n, n_exact) + 1, dtype=np.float64)
    lam_h = head**-b
    c0_h = head ** (b - a)
    if n <= n_exact:
        return lam_h, c0_h, np.ones_like(head)
    ratio = 10.0 ** (1.0 / bins_per_decade)
    edges = [n_exact + 1]
    while edges[-1] <= n:
        edges.append(max(edges[-1] + 1, int(math.floor(edges[-1] * ratio))))
    edges[-1] = n + 1
    lo = np.array(edges[:-1], dtype=np.float64)
    hi = np.array(edges[1:], dtype=np.float64) - 1
    power = _power_sum(a, lo, hi)
    lam_t = _power_sum(a + b, lo, hi) / power
    weight = hi - lo + 1
    c0_t = power / (weight * lam_t)
    return (
        np.concatenate([lam_h, lam_t]),
        np.concatenate([c0_h, c0_t]),
        np.concatenate([np.ones_like(head), weight]),
    )
