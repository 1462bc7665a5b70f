"""Horizon transfer: a schedule for T' steps from one solved for T (docs/theory.md §9).

An optimal schedule is solved for one horizon T. Past T an optax schedule would otherwise hold its
last (annealed) rate, which costs a lot (the loss stops falling); re-solving at every horizon costs
a solve. The theory says how the optimum changes with T (docs/theory.md §6):

- **easy phase** (a > b): η*(t; T) ≈ c T^(−ξ) f(t/T), ξ = 1 − b/a: the shape is a function of
  the fraction t/T and the level falls as T^(−ξ). Transfer: η'(t) = (T'/T)^(−ξ) η(t T/T').
- **hard phase** (a < b): warmup-stable-decay with a plateau η_p that does not move with T
  (ξ = 0) and an annealing tail whose length grows as T^α (α ≈ 0.75 measured,
  ``figures/README.md``). Transfer: keep the warmup in steps and the plateau, stretch the tail in
  steps-to-go by (T'/T)^α, and map the middle linearly.

:func:`transfer` does either on a per-step array; :func:`fit_recipe` fits the closed forms
(easy: η₀ × warmup ramp × (1 − t/T)^δ, the end shifted by a small fraction; hard: WSD with
plateau, warmup, decay length D and decay shape (1 − x)^p) and returns a :class:`Recipe`
that gives the schedule at any T.

>>> import numpy as np
>>> etas = 0.8 * (1 - np.arange(100) / 100) ** 1.4
>>> out = transfer(etas, 400, phase="easy", xi=0.5)
>>> out.shape, round(float(out[0] / etas[0]), 3)
((400,), 0.5)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .families import as_array

__all__ = [
    "ANNEAL_ALPHA",
    "Recipe",
    "fit_recipe",
    "horizon_rule",
    "stretch",
    "transfer",
    "warp_hard",
]

#: Measured exponent of the hard-phase annealing length A(T) ~ T^α (figures/README.md:
#: 0.746 [0.739, 0.753] at a = 1.5, b = 2.5; sliding windows 0.74–0.75 over T = 100…51 200).
ANNEAL_ALPHA = 0.75


def horizon_rule(a: float, b: float) -> tuple[str, float]:
    """(phase, ξ) of a power-law problem: ("easy", 1 − b/a) for a > b, else ("hard", 0)."""
    return ("easy", 1.0 - b / a) if a > b else ("hard", 0.0)


def _check_etas(etas) -> np.ndarray:
    e = np.asarray(etas, dtype=np.float64)
    if e.ndim != 1 or e.size < 2:
        raise ValueError(f"etas must be a 1-D array of at least 2 rates; got shape {e.shape}")
    if not np.all(np.isfinite(e)) or np.any(e < 0):
        raise ValueError("etas must be finite and >= 0 (learning rates)")
    return e


def _check_T(T_new) -> int:
    if isinstance(T_new, bool) or not isinstance(T_new, int | np.integer) or T_new < 2:
        raise ValueError(f"T_new must be an integer >= 2; got T_new={T_new!r}")
    return int(T_new)


def _sample(etas: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """η at continuous times τ ∈ [0, T] (step t covers [t, t+1), its value sits at t + ½)."""
    return np.interp(tau - 0.5, np.arange(etas.size, dtype=np.float64), etas)


def stretch(etas, T_new: int, *, xi: float = 0.0) -> np.ndarray:
    """η'(t) = (T'/T)^(−ξ) η(t T/T'): the schedule as a function of t/T, level ∝ T^(−ξ)."""
    e, T2 = _check_etas(etas), _check_T(T_new)
    T = e.size
    tau = (np.arange(T2) + 0.5) * (T / T2)
    return (T2 / T) ** (-float(xi)) * _sample(e, tau)


def _plateau(e: np.ndarray) -> float:
    """Median rate over t/T ∈ [0.1, 0.5] (where the hard-phase optimum is on its plateau)."""
    T = e.size
    return float(np.median(e[int(0.1 * T) : max(int(0.5 * T), int(0.1 * T) + 1)]))


def _wsd_knots(e: np.ndarray) -> tuple[float, float]:
    """(W, S): warmup end (first step at ≥ 90% of the plateau, moved on while the rate still
    rises by > 1% per step) and tail length (steps after the last step at ≥ 90% of the
    plateau)."""
    T = e.size
    hi = np.flatnonzero(e >= 0.9 * _plateau(e))
    if hi.size == 0:
        return 0.0, float(T)
    w = int(hi[0])
    while w + 1 < T and e[w + 1] > 1.01 * e[w]:  # the end of a steep warmup ramp
        w += 1
    return float(w), float(T - 1 - hi[-1])


def warp_hard(etas, T_new: int, *, alpha: float = ANNEAL_ALPHA) -> np.ndarray:
    """Hard-phase transfer: warmup kept in steps, plateau kept, the annealing tail stretched in
    steps-to-go by (T'/T)^α, the middle mapped linearly (a monotone time warp)."""
    e, T2 = _check_etas(etas), _check_T(T_new)
    T = e.size
    W, S = _wsd_knots(e)
    S2 = S * (T2 / T) ** alpha
    W2 = W
    if W2 + S2 >= T2:  # the knots do not fit the new horizon: shrink both proportionally
        f = 0.9 * T2 / (W2 + S2)
        W2, S2 = W2 * f, S2 * f
    t2 = np.arange(T2) + 0.5
    tau = np.interp(t2, [0.0, W2, T2 - S2, T2], [0.0, W, T - S, T])
    return _sample(e, tau)


def transfer(
    etas,
    T_new: int,
    *,
    phase: str,
    xi: float | None = None,
    alpha: float = ANNEAL_ALPHA,
) -> np.ndarray:
    """The schedule ``etas`` (solved for T = len(etas) steps) transferred to ``T_new`` steps.

    Args:
        etas: per-step rates, shape ``(T,)``.
        T_new: the new horizon T' ≥ 2 (longer or shorter).
        phase: ``"easy"`` (:func:`stretch` with ξ) or ``"hard"`` (:func:`warp_hard` with α).
        xi: easy-phase level exponent (η ∝ T^(−ξ)); required for ``"easy"``.
        alpha: hard-phase annealing-length exponent (default :data:`ANNEAL_ALPHA`).

    Returns:
        float64 array, shape ``(T_new,)``.
    """
    if phase == "easy":
        if xi is None or not math.isfinite(float(xi)):
            raise ValueError(f"xi must be a finite number for phase='easy'; got xi={xi!r}")
        return stretch(etas, T_new, xi=float(xi))
    if phase in ("hard", "boundary"):
        if not math.isfinite(float(alpha)) or not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1]; got alpha={alpha!r}")
        return warp_hard(etas, T_new, alpha=float(alpha))
    raise ValueError(f"phase must be 'easy', 'hard' or 'boundary'; got phase={phase!r}")


# ----------------------------------------------------------------------------- closed forms
@dataclass(frozen=True)
class Recipe:
    """A fitted closed-form schedule that gives the rates at any horizon (docs/theory.md §9).

    ``kind == "polynomial"`` (easy phase): η(t) = η₀ (T/T₀)^(−ξ) r(t) (1 − t/((1+e)T))^δ with
    the warmup ramp r(t) = min(1, s + (1 − s) t/(wT)), ``params = {eta0, warmup (fraction w),
    delta, start (s), tail (e)}`` (e > 0: the finite-T optimum ends above zero).

    ``kind == "wsd"`` (hard phase): η(t) = η_p min(1, (t+1)/W) (1 − x)^p,
    x = clip((t − (T − D))/D, 0, 1), D = D₀ (T/T₀)^α, with ``params = {plateau, warmup (steps
    W), decay (steps D₀), power p}``.

    ``T0`` is the horizon it was fitted at; ``rel_error`` the rms relative error of the fit there.
    """

    kind: str
    T0: int
    params: dict[str, float]
    xi: float = 0.0
    alpha: float = ANNEAL_ALPHA
    rel_error: float = math.nan
    meta: dict[str, Any] = field(default_factory=dict)

    def schedule(self, T: int | None = None):
        """An optax schedule (``step -> rate``, jit-able) for horizon T (default T₀)."""
        import jax.numpy as jnp

        T = self.T0 if T is None else _check_T(T)
        p = self.params
        if self.kind == "polynomial":
            eta0 = p["eta0"] * (T / self.T0) ** (-self.xi)
            W, delta, start = p["warmup"] * T, p["delta"], p["start"]
            end = T * (1.0 + p["tail"])

            def f(step):
                t = jnp.asarray(step, dtype=float)
                x = jnp.clip(t / end, 0.0, 1.0)
                return eta0 * _ramp(t, W, start, jnp) * (1.0 - x) ** delta

            return f
        D = min(p["decay"] * (T / self.T0) ** self.alpha, float(T))
        W, eta_p, power = max(p["warmup"], 1e-12), p["plateau"], p["power"]

        def g(step):
            t = jnp.asarray(step, dtype=float)
            x = jnp.clip((t - (T - D)) / D, 0.0, 1.0)
            return eta_p * jnp.minimum(1.0, (t + 1.0) / W) * (1.0 - x) ** power

        return g

    def as_array(self, T: int | None = None) -> np.ndarray:
        """The per-step rates at horizon T (default T₀), float64, shape ``(T,)``."""
        T = self.T0 if T is None else _check_T(T)
        return np.asarray(as_array(self.schedule(T), T))

    def to_python(self, T: int | None = None, scale: float = 1.0) -> str:
        """Source of a standalone optax schedule (jax.numpy only) for horizon T, rates × scale."""
        T = self.T0 if T is None else _check_T(T)
        p = self.params
        if self.kind == "polynomial":
            eta0 = scale * p["eta0"] * (T / self.T0) ** (-self.xi)
            body = (
                f"    t = jnp.asarray(count, dtype=float)\n"
                f"    warm = jnp.minimum(1.0, {p['start']!r} + {1 - p['start']!r} * t / "
                f"{max(p['warmup'] * T, 1e-12)!r})\n"
                f"    x = jnp.clip(t / {T * (1 + p['tail'])!r}, 0.0, 1.0)\n"
                f"    return {eta0!r} * warm * (1.0 - x) ** {p['delta']!r}\n"
            )
        else:
            D = min(p["decay"] * (T / self.T0) ** self.alpha, float(T))
            body = (
                f"    t = jnp.asarray(count, dtype=float)\n"
                f"    warm = jnp.minimum(1.0, (t + 1.0) / {max(p['warmup'], 1e-12)!r})\n"
                f"    x = jnp.clip((t - {T - D!r}) / {D!r}, 0.0, 1.0)\n"
                f"    return {scale * p['plateau']!r} * warm * (1.0 - x) ** {p['power']!r}\n"
            )
        return (
            "import jax.numpy as jnp\n\n\n"
            f"def schedule(count):\n"
            f'    """{self.kind} recipe fitted by rfmodel for T = {T} steps (count 0 = first '
            f'update)."""\n' + body
        )


def _ramp(t, W, start, xp):
    """Linear warmup from ``start`` × the peak at t = 0 to the peak at t = W (then 1)."""
    return xp.minimum(1.0, start + (1.0 - start) * t / xp.maximum(W, 1e-12))


def _fit(resid, x0, lo, hi) -> tuple[np.ndarray, float]:
    from scipy.optimize import least_squares

    r = least_squares(resid, x0, bounds=(lo, hi), x_scale="jac")
    return r.x, float(np.sqrt(np.mean(r.fun**2)))


def fit_recipe(
    etas, *, phase: str, xi: float = 0.0, alpha: float = ANNEAL_ALPHA, floor: float = 1e-3
) -> Recipe:
    """Fit the phase's closed form to a solved schedule, by least squares on log η.

    Steps with η below ``floor`` × max η (the last few of an annealing) are left out of the fit:
    on a log scale they would dominate it. ``phase`` "easy" fits the polynomial recipe (with its
    level exponent ``xi`` for transfer), "hard" the WSD recipe (with ``alpha``).
    """
    e = _check_etas(etas)
    T = e.size
    t = np.arange(T, dtype=np.float64)
    keep = e > floor * e.max()
    le = np.log(e[keep])
    if phase == "easy":

        def model(x):
            eta0, lw, delta, start, tail = x
            return (
                eta0 * _ramp(t, np.exp(lw) * T, start, np) * (1.0 - t / (T * (1 + tail))) ** delta
            )

        x0 = [float(e.max()), math.log(max(np.argmax(e) + 1, 1) / T), 1.0, 0.5, 0.01]
        x, err = _fit(
            lambda x: (model(x) - e) / e.max(),
            x0,
            [1e-12, math.log(1.0 / T) - 1e-9, 0.0, 0.0, 0.0],
            [10 * e.max(), 0.0, 10.0, 1.0, 1.0],
        )
        params = {
            "eta0": float(x[0]),
            "warmup": float(math.exp(x[1])),
            "delta": float(x[2]),
            "start": float(x[3]),
            "tail": float(x[4]),
        }
        return Recipe("polynomial", T, params, xi=float(xi), alpha=alpha, rel_error=err)
    if phase not in ("hard", "boundary"):
        raise ValueError(f"phase must be 'easy', 'hard' or 'boundary'; got phase={phase!r}")
    W0, S0 = _wsd_knots(e)

    def model_h(x):
        eta_p, w, d, power = x
        xx = np.clip((t - (T - d)) / d, 0.0, 1.0)
        return eta_p * np.minimum(1.0, (t + 1.0) / w) * (1.0 - xx) ** power

    x0 = [_plateau(e), max(W0, 1.0), float(min(max(2 * S0, 2.0), T)), 1.0]
    x, err = _fit(
        lambda x: np.log(np.maximum(model_h(x)[keep], 1e-300)) - le,
        x0,
        [1e-12, 1.0, 1.0, 0.05],
        [10 * e.max(), float(T), float(T), 10.0],
    )
    params = {
        "plateau": float(x[0]),
        "warmup": float(x[1]),
        "decay": float(x[2]),
        "power": float(x[3]),
    }
    return Recipe("wsd", T, params, xi=0.0, alpha=alpha, rel_error=err)


def result_rule(config: dict[str, Any]) -> tuple[str, float]:
    """(phase, ξ) of a :class:`~rfmodel.control.ScheduleResult`'s problem, from its config."""
    p = config.get("problem", {})
    try:
        return horizon_rule(float(p["a"]), float(p["b"]))
    except (KeyError, TypeError, ValueError):
        raise ValueError("the result's config has no problem a, b: pass phase= and xi=") from None
