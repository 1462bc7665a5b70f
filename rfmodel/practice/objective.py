"""The objective every model of :mod:`rfmodel.practice` is fitted by: a weighted Huber loss on
log-loss residuals (docs/theory.md §9).

For residuals r_i = log ℓ̂_i − log ℓ_i with weights w_i (each run weighing the same in total) and
scale δ,

    cost = ½ Σ_i w_i h_δ(r_i),     h_δ(r) = r²  if |r| ≤ δ,   2δ|r| − δ²  otherwise,

quadratic for small residuals and linear (robust to spikes) beyond δ. By default (``"auto"``)
δ = 1.345 σ̂, Huber's choice for 95% efficiency under Gaussian noise, with σ̂ the noise of the
logged log-losses measured from their second differences within each run (robust: the median
absolute second difference / (0.6745 √6), a smooth trend cancelling), at least 10⁻⁴. So a smooth
curve (an LLM's, σ̂ ~ 10⁻³) is fitted with δ near the MPL paper's 10⁻³, a noisy one in least
squares up to its noise level and robustly beyond (loss spikes barely move the fit). The same δ
serves every model fitted to the same runs.

>>> import numpy as np
>>> float(huber_cost(np.array([0.0005, -0.01]), np.ones(2), 1e-3))
9.625e-06
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "HUBER_DELTA",
    "huber_cost",
    "huber_rho",
    "run_weights",
    "check_delta",
    "noise_scale",
    "resolve_delta",
]

#: Default Huber scale on log-loss residuals: set from the curves' noise (module docstring).
HUBER_DELTA = "auto"
#: Smallest automatic Huber scale.
MIN_DELTA = 1e-4


def check_delta(huber_delta: object) -> float | str:
    """``huber_delta`` checked: ``"auto"`` or a finite number > 0 (``ValueError`` naming it)."""
    if huber_delta == "auto":
        return "auto"
    if isinstance(huber_delta, bool) or not (
        isinstance(huber_delta, int | float) and math.isfinite(huber_delta) and huber_delta > 0
    ):
        raise ValueError(
            f"huber_delta must be 'auto' or a finite number > 0; got huber_delta={huber_delta!r}"
        )
    return float(huber_delta)


def noise_scale(log_losses: Sequence[np.ndarray]) -> float:
    """σ̂: the noise of logged log-losses from their second differences within each run,
    median |Δ²| / (0.6745 √6) over all runs (0 when no run has 3 points).

    >>> rng = np.random.default_rng(0)
    >>> y = np.log(1 + 1 / np.arange(1, 2001)) + 0.01 * rng.standard_normal(2000)
    >>> round(noise_scale([y]), 3)
    0.01
    """
    d2 = [np.diff(np.asarray(y, np.float64), 2) for y in log_losses if np.size(y) >= 3]
    if not d2:
        return 0.0
    return float(np.median(np.abs(np.concatenate(d2))) / (0.6744897501960817 * math.sqrt(6)))


def resolve_delta(huber_delta: object, log_losses: Sequence[np.ndarray]) -> float:
    """The Huber scale to use: ``huber_delta`` itself, or for ``"auto"`` 1.345 σ̂
    (:func:`noise_scale`), at least :data:`MIN_DELTA`."""
    d = check_delta(huber_delta)
    if d == "auto":
        return max(1.345 * noise_scale(log_losses), MIN_DELTA)
    return float(d)


def run_weights(sizes: Sequence[int]) -> np.ndarray:
    """Per-point weights (Σ sizes,) giving every run the same total weight, normalized to mean 1:
    w = 1/n_r for the n_r points of run r, scaled so that Σ w = Σ n_r."""
    sizes = np.asarray(sizes, np.int64)
    w = np.repeat(1.0 / np.maximum(sizes, 1), sizes)
    return w * (w.size / w.sum()) if w.size else w


def huber_cost(r: np.ndarray, w: np.ndarray, delta: float) -> float:
    """½ Σ w h_δ(r) (module docstring)."""
    a = np.abs(np.asarray(r, np.float64))
    h = np.where(a <= delta, a * a, 2 * delta * a - delta * delta)
    return float(0.5 * np.sum(np.asarray(w, np.float64) * h))


def huber_rho(w: np.ndarray, delta: float) -> Callable[[np.ndarray], np.ndarray]:
    """The weighted Huber loss in the form of :func:`scipy.optimize.least_squares`' ``loss``
    (a function of z = r², returning ρ, ρ′, ρ″; use with ``f_scale=1``)."""
    w = np.asarray(w, np.float64)
    d2 = delta * delta

    def rho(z: np.ndarray) -> np.ndarray:
        out = np.empty((3, z.size))
        small = z <= d2
        sz = np.sqrt(np.where(small, 1.0, z))
        out[0] = np.where(small, z, 2 * delta * sz - d2)
        out[1] = np.where(small, 1.0, delta / sz)
        out[2] = np.where(small, 0.0, -delta / (2 * z * sz))
        return out * w

    return rho
