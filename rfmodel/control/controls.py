"""The optimized controls (docs/theory.md §6): each one object that knows its name, its bounds, the
coordinates the solver moves it in, its default start, its budget (if any), its penalty (if any)
and its first-order (KKT) residual. :func:`rfmodel.control.optimize_schedule` composes them with
an evaluator (:mod:`rfmodel.dynamics.evaluators`) that returns log L(T) and the gradient by
control; the solver (:mod:`rfmodel.control.solver`) only calls the methods below.

- :class:`Control`: a box lo ≤ u ≤ hi in log, log(1 − u) or linear coordinates, with an optional
  linear budget Σ_j n_j u_j = total (n_j: steps of segment j);
- :class:`Rate`: the learning rate η ∈ [0, η_max] (log or linear; a diagonal preconditioner and
  per-segment growth bounds on a non-uniform grid; monotone coordinates; the smoothness
  penalty; a default start searched as the best constant rate);
- :class:`Batch`: the batch size m ∈ [batch_min, batch_max] under the sample budget Σ_t m_t = S;
- :class:`Momentum`: the heavy-ball momentum β ∈ [0, β_max];
- :class:`Quality`: the clean fraction q ∈ [0, 1] of each update's batch under the clean-sample
  budget Σ_t q_t m_t = Q (docs/theory.md §10);
- :class:`Average`: the iterate-averaging weight τ ∈ [0, 1] of w̄ ← (1 − τ) w̄ + τ w
  (docs/theory.md §11).

A new control is one small class and its gradient from an evaluator: :class:`Quality` is a
:class:`Control` with a budget weighted by the batches and a projection that shifts (its
coordinates are linear), with ``"quality"`` in an evaluator's ``differentiates`` and
∂ log L/∂q_t in its per-step output. Averaging weights τ_t ∈ [0, 1] need no budget: any convex
combination of the iterates is reached by them.
"""

from __future__ import annotations

import copy
import math

import numpy as np
from scipy import optimize

from ..dynamics.momentum import check_betas
from ..dynamics.momentum import eta_critical as momentum_critical
from ..optim import projected_gradient
from ..problem import Problem, check_finite
from .grid import GROWTH, LOG_RANGE, Monotone, initial_controls

__all__ = [
    "CONTROLS",
    "ALL_CONTROLS",
    "BETA_MAX",
    "Control",
    "Rate",
    "Batch",
    "Momentum",
    "Quality",
    "Average",
    "rate_ceiling",
    "check_solver_args",
    "optimize_names",
    "validate_batch",
    "validate_momentum",
    "validate_quality",
    "validate_average",
    "validate_fixed_rates",
    "project_budget",
    "project_shift",
]


#: The controls of the rate, batch and momentum schedules (the command line's ``--optimize``).
CONTROLS = ("eta", "batch", "momentum")
#: Every control ``optimize_schedule(optimize=...)`` knows, in the order of their blocks: also the
#: data quality (docs/theory.md §10) and the averaging weights (§11).
ALL_CONTROLS = (*CONTROLS, "quality", "average")
#: Default bound on the optimized momentum β_t (the common practical value; any value < 1 may be
#: passed as ``beta_max``).
BETA_MAX = 0.9


def check_solver_args(problem: Problem, T: int, controls, eta_max, smoothness) -> tuple[int, float]:
    if not isinstance(T, int | np.integer) or T < 1:
        raise ValueError(f"T must be an integer >= 1; got T={T!r}")
    K = T if controls is None else controls
    if not isinstance(K, int | np.integer) or not 1 <= K <= T:
        raise ValueError(
            f"controls must be None (per step) or an integer in [1, T={T}]; "
            f"got controls={controls!r}"
        )
    if eta_max is None:
        eta_max = problem.eta_mode_bound()
    eta_max = float(eta_max)
    if not math.isfinite(eta_max) or eta_max <= 0:
        raise ValueError(f"eta_max must be a finite number > 0; got eta_max={eta_max}")
    if not math.isfinite(float(smoothness)) or smoothness < 0:
        raise ValueError(f"smoothness must be a finite number >= 0; got {smoothness}")
    return int(K), eta_max


# --------------------------------------------------------------------------- controls
def rate_ceiling(problem: Problem, batch: float | None = None) -> float:
    """2m/((m+1) λ_min): from this rate on one SGD step grows every mode.

    Such a step is never useful: every mode's factor d_k(η) = 1 − 2ηλ_k + ((m+1)/m)η²λ_k² is
    then ≥ 1 and the noise it injects is ≥ 0, so its state is ≥ (componentwise) the state after
    a step at η = 0, and the recursion is monotone in the state (d_k > 0, the forcing grows with
    L): replacing it by η = 0 never raises L(T). The solver caps η_max there (a bound of 1e300
    otherwise put every rate of its log box above stability: loss inf at η_max ≥ 1e30). Heavy
    ball, whose state (C, R, V) the argument does not cover, uses the same cap as a bound far
    above its stable raw rates (η_c(β) < η_c(0) in raw η), not as a proven one."""
    m = float(problem.batch if batch is None else batch)
    return 2 * m / ((m + 1) * float(np.min(problem.lam)))


class Control:
    """One optimized control: K piecewise-constant values u_j (step t uses u[⌊tK/T⌋]).

    A block of the solver's vector with its own bounds ``lo ≤ u ≤ hi``, its coordinates (``log``:
    the solver moves x = log u, with x ≥ log hi − 30 when lo = 0; ``log1m``: x = −log(1 − u),
    for a momentum u ∈ [0, 1); else x = u), an optional budget Σ_t u_t = ``total`` (an equality:
    Σ_j n_j u_j = total over segment lengths n_j; :meth:`spent`), and the coordinates of its
    first-order residual (``kkt_log``: in log u, i.e. relative; else in u). docs/theory.md §6.

    The methods the solver calls: :meth:`initial` (the start), :meth:`bind` (coordinates that
    depend on the start), :meth:`bounds_x`, :meth:`to_x`, :meth:`from_x`, :meth:`grad_x`
    (coordinates), :meth:`penalize` (a term added to log L), :meth:`spent`, :meth:`spent_grad`,
    :meth:`project` (the budget), :meth:`free`, :meth:`kkt_weight`, :meth:`residual` (first-order
    optimality) and :meth:`check` (warnings about the result).
    """

    #: The solver starts this control after the others (its start depends on theirs).
    start_last = False
    #: Stop L-BFGS-B once every residual is 100× below the tolerance (preconditioned controls,
    #: see :class:`Rate`); ``kkt_label`` names the coordinates in the stop message.
    kkt_stop = False
    kkt_label = ""

    def __init__(
        self,
        name: str,
        lo: float,
        hi: float,
        *,
        log: bool = True,
        total: float | None = None,
        kkt_log: bool = False,
        log1m: bool = False,
    ) -> None:
        self.name, self.lo, self.hi = str(name), float(lo), float(hi)
        self.log, self.total, self.kkt_log, self.log1m = bool(log), total, bool(kkt_log), log1m

    def __repr__(self) -> str:
        budget = "" if self.total is None else f", total={self.total:g}"
        return f"{type(self).__name__}({self.name!r}, [{self.lo:g}, {self.hi:g}]{budget})"

    # ------------------------------------------------------------------ start
    def default(self, K: int, n: np.ndarray) -> np.ndarray | None:
        """The default start (before the budget's projection): the budget spent evenly, else
        the lower bound; ``None``: searched as the best constant (:meth:`probes`)."""
        return np.full(K, self.total / n.sum() if self.total else self.lo)

    def initial(self, given, K: int, centers, n: np.ndarray, factor: np.ndarray):
        """(K start values or ``None`` to search a constant, a factor for the controls started
        after this one or ``None``) from ``given`` (any schedule, resampled on t/T; ``None``:
        :meth:`default`), inside the bounds and on the budget."""
        u = self.default(K, n) if given is None else initial_controls(given, K, centers)
        if u is None:
            return None, None
        if self.total and np.any(u <= 0):
            raise ValueError(f"init[{self.name!r}] must be > 0")
        if self.total:
            return self.project({self.name: u}, n), None
        return np.clip(u, self.lo, self.hi), None

    def probes(self, problem: Problem, fixed: dict[str, np.ndarray]):
        """Constant values to try, in order, for a control without a start (:meth:`default`
        ``None``): the first whose run lowers L(T) starts the search of the best constant."""
        return iter(())

    def constant(self) -> Control:
        """This control as searched for its best constant value (one segment)."""
        return self

    def no_start(self, problem: Problem, T: int, tried, loss0: float, name: str) -> str:
        """Why no constant value of this control starts the solver."""
        return (
            f"{name}: no constant {self.name} in [{self.lo:g}, {self.hi:g}] lowers the loss "
            f"within T={T} steps (L(0) = {loss0:.4g}; {len(tried)} values tried)"
        )

    def bind(self, u0: np.ndarray) -> Control:
        """This control with the coordinates of a solve from ``u0`` (default: itself)."""
        return self

    # ------------------------------------------------------------------ coordinates
    def x_bounds(self) -> tuple[float, float]:
        if self.log1m:
            return -math.log1p(-self.lo), -math.log1p(-self.hi)
        if not self.log:
            return self.lo, self.hi
        top = math.log(self.hi)
        return (math.log(self.lo) if self.lo > 0 else top - LOG_RANGE), top

    def bounds_x(self, K: int) -> list[tuple[float, float]]:
        """L-BFGS-B's bounds on this control's K coordinates."""
        return [self.x_bounds()] * K

    def to_x(self, u: np.ndarray) -> np.ndarray:
        if self.log1m:
            return -np.log1p(-np.clip(u, self.lo, self.hi))
        if not self.log:
            return np.clip(u, self.lo, self.hi)
        return np.log(np.clip(u, math.exp(self.x_bounds()[0]), self.hi))

    def from_x(self, x: np.ndarray) -> np.ndarray:
        if self.log1m:
            return -np.expm1(-x)
        return np.exp(x) if self.log else x

    def dudx(self, u: np.ndarray) -> np.ndarray:
        """du/dx: the chain rule from u to the solver's coordinates."""
        if self.log1m:
            return 1.0 - u
        return u if self.log else np.ones_like(u)

    def grad_x(self, u: np.ndarray, g: np.ndarray) -> np.ndarray:
        """∂f/∂x from ∂f/∂u (the vector-Jacobian product of u(x))."""
        return g * self.dudx(u)

    # ------------------------------------------------------------------ objective terms
    def penalize(self, v: float, g: np.ndarray, u: np.ndarray) -> float:
        """``v`` plus this control's penalty; adds the penalty's gradient to ``g`` in place."""
        return v

    def spent(self, values: dict[str, np.ndarray], n: np.ndarray) -> float:
        """What the budget counts: Σ_j n_j u_j (only with ``total``)."""
        return float(n @ values[self.name])

    def spent_grad(self, values: dict[str, np.ndarray], n: np.ndarray) -> dict[str, np.ndarray]:
        """∂ spent/∂u by control (a budget may involve several)."""
        return {self.name: n}

    def project(self, values: dict[str, np.ndarray], n: np.ndarray) -> np.ndarray:
        """This control's values moved exactly onto the budget (:func:`project_budget`)."""
        return project_budget(values[self.name], n, self.total, self.lo, self.hi)

    # ------------------------------------------------------------------ optimality
    def free(self, u: np.ndarray) -> np.ndarray:
        """The values strictly inside their bounds (they estimate a budget's multiplier)."""
        return (u > self.lo * (1 + 1e-9)) & (u < self.hi * (1 - 1e-9))

    def kkt_weight(self, u: np.ndarray) -> np.ndarray:
        """The factor from ∂/∂u to ∂/∂(residual coordinate): u for a residual in log u, else 1."""
        return u if self.kkt_log else np.ones_like(u)

    def residual(self, u: np.ndarray, g: np.ndarray, x: np.ndarray | None = None) -> float:
        """Projected gradient of ``g`` (∇_u of log L plus the budgets' ν ∇_u spent), in this
        control's residual coordinates: zero exactly at a KKT point. ``x``: the solver's
        coordinates of ``u`` when known."""
        if not self.kkt_log:
            return projected_gradient(u, g, self.lo, self.hi)
        return projected_gradient(np.log(u), u * g, math.log(self.lo), math.log(self.hi))

    def check(self, u: np.ndarray) -> list[str]:
        """Warnings about the solved values (e.g. a bound the optimum may lie beyond)."""
        return []


class Rate(Control):
    """The learning rate η_j ∈ [0, η_max].

    Args:
        eta_max: the upper bound (the solver's cap of the user's η_max, :func:`rate_ceiling`).
        parameterization: ``"log"`` (x = log η ∈ [``floor``, log η_max]) or ``"linear"``
            (x = η ∈ [0, η_max]).
        monotone: non-increasing after the warmup, the controls before the peak of the start
            (:class:`~rfmodel.control.grid.Monotone`; log only).
        smoothness: κ of the penalty κ Σ_j (η_{j+1} − η_j)².
        scale: a diagonal preconditioner s (log only, not monotone): the solver moves
            y_j = s_j log η_j (:func:`~rfmodel.control.grid.grid_scale`); the residual is then
            measured in log η and the solver stops at a residual 100× below the tolerance (past
            it L-BFGS-B only walks the flat directions of rates annealed to 1e-12; hard phase,
            T = 10^7, K = 60: 1e-5 after 494 iterations; 10× below stopped the easy T = 10^6
            solve 2e-7 (relative) above the loss 500 iterations reach).
        upper: per-control bounds η_j ≤ upper_j ≤ η_max with ``scale``
            (:func:`~rfmodel.control.grid.rate_bounds`); ``growth``: those of them below the
            per-mode bound (a rate ending there gets a warning).
        floor: the lower end of the log box (default log η_max − 30: η ≥ 1e-13 η_max, i.e. 0 in
            practice).
    """

    start_last = True
    kkt_label = "LOG RATES"

    def __init__(
        self,
        eta_max: float,
        *,
        parameterization: str = "log",
        monotone: bool = False,
        smoothness: float = 0.0,
        scale: np.ndarray | None = None,
        upper: np.ndarray | None = None,
        growth: np.ndarray | None = None,
        floor: float | None = None,
    ) -> None:
        super().__init__("eta", 0.0, eta_max, log=parameterization == "log")
        self.monotone, self.smoothness = bool(monotone), float(smoothness)
        self.scale = None if scale is None or monotone else np.asarray(scale, np.float64)
        self.upper, self.growth = upper, growth
        self.floor = math.log(self.hi) - LOG_RANGE if floor is None else float(floor)
        self.kkt_stop = self.scale is not None
        self.mono: Monotone | None = None

    def constant(self) -> Rate:
        """The rate of a search for the best constant: the plain log box."""
        return Rate(self.hi, floor=self.floor)

    def default(self, K: int, n: np.ndarray) -> None:
        return None  # the best constant rate, searched by the solver from :meth:`probes`

    def initial(self, given, K, centers, n, factor):
        if given is None:
            return None, None
        return np.clip(initial_controls(given, K, centers) * factor, 0.0, self.hi), None

    def probes(self, problem: Problem, fixed: dict[str, np.ndarray]):
        """Constant rates to try, until one lowers L(T): min(η_c/2, η_max) (η_c at the mean
        batch and momentum of ``fixed``), then 4× smaller down to the bottom of the log box. At
        high noise η_c/2 raises L(T) (σ = 2, N = T = 1000: L(T) = 2.05 > L(0) = 1.34, while
        η_c/8 reaches 0.30 and 0.011 η_c 0.032): the noise a step injects grows as η², its
        progress as η."""
        m = fixed.get("batch")
        m = None if m is None else float(np.mean(m))
        beta = fixed.get("momentum")
        if beta is None or not np.any(beta):
            eta_c = problem.eta_critical(m)
        else:
            eta_c = momentum_critical(problem, float(np.mean(beta)), m)
        eta = min(0.5 * eta_c, self.hi)
        bottom = math.exp(self.floor)
        while eta >= bottom:
            yield eta
            eta *= 0.25

    # ------------------------------------------------------------------ coordinates
    def bind(self, u0: np.ndarray) -> Rate:
        if not self.monotone:
            return self
        out = copy.copy(self)  # the warmup ends at the start's peak; after it, non-increasing
        out.mono = Monotone(int(np.argmax(u0)), self.floor, math.log(self.hi))
        return out

    def _log_hi(self, K: int) -> np.ndarray:
        return np.full(K, math.log(self.hi)) if self.upper is None else np.log(self.upper)

    def bounds_x(self, K: int) -> list[tuple[float, float]]:
        if not self.log:
            return [(0.0, self.hi)] * K
        if self.mono is not None:
            return self.mono.bounds(K)
        if self.scale is None:
            return [(self.floor, math.log(self.hi))] * K
        s = self.scale
        return list(zip(self.floor * s, self._log_hi(K) * s, strict=True))

    def to_x(self, u: np.ndarray) -> np.ndarray:
        if not self.log:
            return np.clip(u, 0.0, self.hi)
        if self.mono is not None:
            p = self.mono.p
            u = np.concatenate([u[:p], np.minimum.accumulate(u[p:])])
            return self.mono.y_of(np.clip(u, math.exp(self.floor), self.hi))
        x = np.log(np.clip(u, math.exp(self.floor), self.hi))
        if self.scale is None:
            return x
        return np.minimum(x, self._log_hi(len(u))) * self.scale

    def from_x(self, x: np.ndarray) -> np.ndarray:
        if not self.log:
            return x
        if self.mono is not None:
            return self.mono.u_of(x)
        return np.exp(x if self.scale is None else x / self.scale)

    def grad_x(self, u: np.ndarray, g: np.ndarray) -> np.ndarray:
        if not self.log:
            return g
        if self.mono is not None:
            return self.mono.grad_y(u, g)
        return g * u if self.scale is None else (g * u) / self.scale

    # ------------------------------------------------------------------ objective, optimality
    def penalize(self, v: float, g: np.ndarray, u: np.ndarray) -> float:
        """v + κ Σ_j (u_{j+1} − u_j)² (on η, in every parameterization)."""
        if self.smoothness:
            du = np.diff(u)
            v += self.smoothness * float(du @ du)
            g[:-1] -= 2 * self.smoothness * du
            g[1:] += 2 * self.smoothness * du
        return v

    def residual(self, u, g, x=None) -> float:
        """In η; in log η with a preconditioner (relative rates: a rate annealed to 1e-8 whose
        ∂ log L/∂η is 0.4 changes log L by 4e-9 when doubled, yet it read 0.4 in η); in the
        monotone coordinates with ``monotone``."""
        if self.mono is not None:
            return self.mono.projected_gradient(u, g)
        if self.scale is None:
            return projected_gradient(u, g, 0.0, self.hi)
        z = np.log(u) if x is None else x / self.scale
        return projected_gradient(z, g * u, self.floor, self._log_hi(len(u)))

    def check(self, u: np.ndarray) -> list[str]:
        if self.growth is None or self.upper is None:
            return []
        held = self.growth & (u >= self.upper * (1 - 1e-9))
        if not np.any(held):
            return []
        return [
            f"optimize_schedule: {int(held.sum())} rate(s) end on the growth bound of "
            f"their segment (e^{GROWTH:g} within the segment, see rate_bounds); "
            "the optimum may lie beyond it"
        ]

    def no_start(self, problem: Problem, T: int, tried: list[float], loss0: float, name: str):
        """Why no rate ≤ η_max can start the solver (``name``: what the user gave)."""
        top = problem.eta_mode_bound()
        flag = name.split("=")[0].split(" ")[0]
        hint = (
            f"the useful range of {flag} is up to the per-step stability bound {top:.4g}"
            if self.hi < 0.5 * problem.eta_critical()
            else f"the label noise (sigma={problem.sigma:g}) injects more loss than any such "
            "rate removes, or the initial loss is already 0"
        )
        return (
            f"{name}: no constant rate η <= {self.hi:.4g} lowers the loss within T={T} steps "
            f"(L(T) >= L(0) = {loss0:.4g} at each of the {len(tried)} rates tried, from "
            f"{max(tried, default=self.hi):.4g} down to {min(tried, default=self.hi):.3g}, 4x "
            f"apart); {hint}"
        )


class Batch(Control):
    """The batch size m_j ∈ [batch_min, batch_max] under the sample budget Σ_j n_j m_j = S, in
    log m (the residual too: relative). Given a start (``init={"batch": ...}``), the rates
    started after it are rescaled with it, keeping η/m per segment: a warm start from another
    budget stays as stable per sample; by default m ≡ S/T."""

    def __init__(self, samples: float, batch_min: float, batch_max: float) -> None:
        super().__init__("batch", batch_min, batch_max, log=True, total=samples, kkt_log=True)

    def initial(self, given, K, centers, n, factor):
        u, _ = super().initial(given, K, centers, n, factor)
        if given is None:
            return u, None
        return u, u / initial_controls(given, K, centers)


class Momentum(Control):
    """The heavy-ball momentum β_j ∈ [0, β_max], moved in x = −log(1 − β) = log τ, the log of
    the velocity's memory τ = 1/(1 − β) (β = 0, plain SGD, is a reachable bound; β → 1 is far
    away, and a unit step in x is a relative change of 1 − β whatever β_max). The KKT residual
    is measured in the same coordinates: ∂ log L/∂x = (1 − β) ∂ log L/∂β, the change of log L
    per relative change of the memory (in β itself a residual ≤ 1e-4 at β = 0.9999 would ask
    1e-8 of the solver's coordinates; in x it is one scale for every β_max). By default β ≡ 0:
    the start is plain SGD (``init={"momentum": ...}`` starts elsewhere, e.g. at β_max).

    Its path, :class:`rfmodel.dynamics.evaluators.HeavyBallSteps`, has the solver restart
    L-BFGS-B with fresh memory also after a failed line search, lifting log-coordinate values
    stranded at the bottom of their box that the gradient would raise
    (:func:`rfmodel.control.solver.minimize`; measured at β_max = 0.999, a = 1.3, b = 2.75,
    T = 1024, K = 64: the SGD start had stopped on a failed line search with one rate at 6e-11,
    KKT residual 1.6 in η, and now reaches a KKT point 0.25% lower). ``kkt_stop``: the
    solver stops once every residual is 100× below the tolerance (without it L-BFGS-B walked
    5000 iterations at residuals 1e-6 … 1e-5 at T = 256, β_max = 0.9999)."""

    kkt_stop = True
    kkt_label = "LOG MEMORY"

    def __init__(self, beta_max: float) -> None:
        super().__init__("momentum", 0.0, beta_max, log=False, log1m=True)

    def residual(self, u: np.ndarray, g: np.ndarray, x: np.ndarray | None = None) -> float:
        """Projected gradient in x = −log(1 − β) over [0, −log(1 − β_max)]."""
        x = self.to_x(u) if x is None else x
        return projected_gradient(x, g * (1.0 - u), *self.x_bounds())


def optimize_names(optimize, *, extended: bool = False) -> tuple[str, ...]:
    """The optimized controls in block order; ``extended``: also ``"quality"`` and
    ``"average"``, and the rate may be left out (then held fixed, ``etas=``)."""
    names = (optimize,) if isinstance(optimize, str) else optimize
    try:
        names = tuple(str(x) for x in names)
    except TypeError:
        names = ()
    known = ALL_CONTROLS if extended else CONTROLS
    unknown = [x for x in names if x not in known]
    if extended and names and not unknown and ("eta" in names or set(names) & set(known[3:])):
        return tuple(x for x in known if x in names)
    if not names or unknown or "eta" not in names:
        need = "" if extended else " and include 'eta'"
        also = " (without 'eta': 'quality' or 'average' under fixed etas=)" if extended else ""
        raise ValueError(
            f"optimize must name controls from {list(known)}{need}{also}; got optimize={optimize!r}"
        )
    return tuple(x for x in known if x in names)


def validate_batch(
    problem: Problem, T: int, names, samples, batch_min, batch_max, batches
) -> tuple[float, float, float] | None:
    """(S, batch_min, batch_max) when the batch is optimized, else None (checked first)."""
    if "batch" not in names:
        for name, v in (("samples", samples), ("batch_min", batch_min), ("batch_max", batch_max)):
            if v is not None:
                raise ValueError(
                    f"{name} is a setting of the batch control: pass optimize=('eta', 'batch') "
                    f"with it; got {name}={v!r} and optimize={names!r}"
                )
        return None
    if batches is not None:
        raise ValueError(
            "batches (fixed per-step batch sizes) cannot be given with optimize=('eta', 'batch'),"
            " which optimizes them; pass samples=S (and batch_min/batch_max) instead"
        )
    S = T * float(problem.batch) if samples is None else check_finite("samples", samples)
    lo = 1.0 if batch_min is None else check_finite("batch_min", batch_min)
    if lo < 1:
        raise ValueError(f"batch_min must be >= 1; got batch_min={batch_min!r}")
    hi = None if batch_max is None else check_finite("batch_max", batch_max)
    if hi is not None and hi < lo:
        raise ValueError(f"batch_max must be >= batch_min={lo:g}; got batch_max={hi:g}")
    if hi is None:
        hi = max(lo, S - (T - 1) * lo)  # the most one step can take
    if not T * lo <= S <= T * hi:
        raise ValueError(
            f"samples must be in [T*batch_min, T*batch_max] = [{T * lo:g}, {T * hi:g}] (each "
            f"of the T steps takes between batch_min and batch_max samples); got "
            f"samples={S:g} with T={T}"
        )
    return S, lo, hi


def validate_momentum(names, beta_max, betas, T: int) -> float | None:
    """β_max when the momentum is optimized, else None; fixed ``betas`` checked (shape (T,),
    each in [0, 1)) and refused together with an optimized momentum."""
    if "momentum" not in names:
        if beta_max is not None:
            raise ValueError(
                "beta_max is a setting of the momentum control: pass "
                f"optimize=('eta', 'momentum') with it; got beta_max={beta_max!r}"
            )
    elif betas is not None:
        raise ValueError(
            "betas (fixed per-step momenta) cannot be given with optimize=(..., 'momentum'), "
            "which optimizes them; pass beta_max instead"
        )
    if betas is not None:
        check_betas(betas, np.zeros(T))
    if "momentum" not in names:
        return None
    bm = BETA_MAX if beta_max is None else check_finite("beta_max", beta_max)
    if not 0 < bm < 1:
        raise ValueError(f"beta_max must be in (0, 1); got beta_max={beta_max!r}")
    return bm


def validate_fixed_rates(names, etas, T: int, eta_max, monotone, smoothness) -> np.ndarray | None:
    """The fixed per-step rates (``etas``, shape (T,)) when the rate is not optimized, else
    None; the rate's own settings are refused without it."""
    if "eta" in names:
        if etas is not None:
            raise ValueError(
                "etas (fixed per-step rates) cannot be given with 'eta' in optimize, which "
                "optimizes them; pass init= for a start"
            )
        return None
    if etas is None:
        raise ValueError(
            f"etas (fixed per-step rates, shape (T,)) is required when the rate is not "
            f"optimized; got optimize={names!r}"
        )
    for name, v, default in (("eta_max", eta_max, None), ("monotone", monotone, False)):
        if v != default:
            raise ValueError(
                f"{name} is a setting of the rate control; with fixed etas (optimize={names!r}) "
                f"it has no effect; got {name}={v!r}"
            )
    if smoothness:
        raise ValueError(
            f"smoothness penalizes the rates; with fixed etas (optimize={names!r}) it has no "
            f"effect; got smoothness={smoothness!r}"
        )
    from ..dynamics import check_schedule

    check_schedule(etas)
    e = np.asarray(etas, np.float64)
    if e.shape != (T,):
        raise ValueError(f"etas must have shape (T,) = ({T},); got shape {e.shape}")
    return e


def validate_quality(
    problem: Problem, T: int, names, clean_samples, noise_clean, noise_noisy, batches, noise
) -> tuple[float, float, float] | None:
    """(Q, σ_c², σ_n²) when the data quality is optimized, else None (checked first): the clean
    samples 0 < Q < Σ_t m_t and the label-noise stds 0 ≤ σ_c < σ_n of the clean and the noisy
    source (defaults: σ_c = 0, σ_n = the problem's σ), docs/theory.md §10."""
    settings = (("clean_samples", clean_samples), ("noise_clean", noise_clean))
    settings += (("noise_noisy", noise_noisy),)
    if "quality" not in names:
        for name, v in settings:
            if v is not None:
                raise ValueError(
                    f"{name} is a setting of the quality control: pass optimize=('eta', "
                    f"'quality') with it; got {name}={v!r} and optimize={names!r}"
                )
        return None
    if "batch" in names:
        raise ValueError(
            "optimize=(..., 'batch', 'quality') is not available: the clean-sample budget "
            "Σ q_t m_t = Q would couple to the sample budget; fix the batches (batches=) instead"
        )
    if noise is not None:
        raise ValueError(
            "noise (fixed per-step σ_t²) cannot be given with optimize=(..., 'quality'), which "
            "sets σ_t² = q_t σ_c² + (1 − q_t) σ_n²; pass noise_clean and noise_noisy instead"
        )
    if clean_samples is None:
        raise ValueError(
            "clean_samples=Q (the number of clean samples, Σ_t q_t m_t = Q) is required with "
            "optimize=(..., 'quality')"
        )
    m = np.full(T, float(problem.batch)) if batches is None else np.asarray(batches, np.float64)
    total = float(np.sum(m))
    Q = check_finite("clean_samples", clean_samples)
    if not 0 < Q < total:
        raise ValueError(
            f"clean_samples must be in (0, Σ_t m_t = {total:g}) (some clean and some noisy "
            f"samples); got clean_samples={clean_samples!r}"
        )
    sc = 0.0 if noise_clean is None else check_finite("noise_clean", noise_clean)
    sn = problem.sigma if noise_noisy is None else check_finite("noise_noisy", noise_noisy)
    if not 0 <= sc < sn:
        raise ValueError(
            f"noise_clean and noise_noisy (label-noise stds of the clean and the noisy data) "
            f"must satisfy 0 <= noise_clean < noise_noisy; got noise_clean={sc:g}, "
            f"noise_noisy={sn:g}"
        )
    return Q, sc * sc, sn * sn


def validate_average(names, average, T: int) -> np.ndarray | None:
    """Fixed averaging weights τ_t (shape (T,)) from ``average`` (a scalar or (T,), each in
    [0, 1]), or None; refused with the weights optimized."""
    if average is None:
        return None
    if "average" in names:
        raise ValueError(
            "average (fixed weights τ_t) cannot be given with optimize=(..., 'average'), which "
            "optimizes them; pass init={'average': ...} for a start"
        )
    from ..dynamics.averaging import check_average

    return np.asarray(check_average(average, np.zeros(T)), np.float64)


class Quality(Control):
    """The clean fraction q_j ∈ [0, 1] of each update's batch (docs/theory.md §10): update t's
    label noise is σ_t² = q_t σ_c² + (1 − q_t) σ_n², under the clean-sample budget
    Σ_t q_t m_t = Q (Σ_j W_j q_j = Q with W_j = Σ_{t in segment j} m_t). Linear coordinates and
    residual (log L(T) is the log of an affine function of q: the optimum at fixed rates is
    bang-bang, q ∈ {0, 1} but for at most one segment per threshold). Default start: q ≡ Q/Σ m,
    the mix that random shuffling gives in expectation.

    Args:
        clean_samples: Q.
        weights: W_j, the samples of each segment (K,).
    """

    #: At a bang-bang point no value is free to estimate the multiplier from: take the middle
    #: of the interval the values at their bounds allow (:func:`rfmodel.control.solver`).
    interval_multiplier = True

    def __init__(self, clean_samples: float, weights) -> None:
        super().__init__("quality", 0.0, 1.0, log=False, total=float(clean_samples))
        self.weights = np.asarray(weights, np.float64)

    def default(self, K: int, n: np.ndarray) -> np.ndarray:
        return np.full(K, self.total / float(self.weights.sum()))

    def initial(self, given, K, centers, n, factor):
        u = self.default(K, n) if given is None else initial_controls(given, K, centers)
        return self.project({self.name: np.clip(u, 0.0, 1.0)}, n), None

    def spent(self, values, n) -> float:
        return float(self.weights @ values[self.name])

    def spent_grad(self, values, n):
        return {self.name: self.weights}

    def project(self, values, n) -> np.ndarray:
        return project_shift(values[self.name], self.weights, self.total, self.lo, self.hi)

    def free(self, u: np.ndarray) -> np.ndarray:
        return (u > 1e-9) & (u < 1 - 1e-9)


class Average(Control):
    """The averaging weight τ_j ∈ [0, 1] of w̄_{t+1} = (1 − τ_t) w̄_t + τ_t w_{t+1}
    (docs/theory.md §11), moved in log τ (x ≥ −30: τ → 0 freezes the average); the residual in
    τ. Default start τ ≡ 1: no averaging (the rate's start is then SGD's)."""

    def __init__(self) -> None:
        super().__init__("average", 0.0, 1.0, log=True)

    def default(self, K: int, n: np.ndarray) -> np.ndarray:
        return np.ones(K)


def project_shift(u: np.ndarray, w: np.ndarray, total: float, lo: float, hi: float) -> np.ndarray:
    """A point of {lo ≤ u ≤ hi, Σ_j w_j u_j = total}: u + τ clipped to the bounds (the same
    change for every value not at a bound: the projection of linear coordinates), the scalar τ
    solved to machine precision.

    >>> np.round(project_shift(np.array([0.0, 0.5, 1.0]), np.ones(3), 1.0, 0.0, 1.0), 12).tolist()
    [0.0, 0.25, 0.75]
    """
    u = np.asarray(u, np.float64)

    def excess(tau: float) -> float:
        return float(w @ np.clip(u + tau, lo, hi)) - total

    a, b = lo - float(np.max(u)), hi - float(np.min(u))
    tau = optimize.brentq(excess, a, b, xtol=1e-15, rtol=4 * np.finfo(float).eps)
    return np.clip(u + tau, lo, hi)


def project_budget(u: np.ndarray, n: np.ndarray, total: float, lo: float, hi: float) -> np.ndarray:
    """A point of {lo ≤ u ≤ hi, Σ_j n_j u_j = total}: u·e^τ clipped to the bounds (the same
    relative change for every value not at a bound), the scalar τ solved to machine precision
    (the sum is monotone in τ).

    >>> project_budget(np.array([1.0, 2.0, 4.0]), np.ones(3), 14.0, 1.0, 8.0).tolist()
    [2.0, 4.0, 8.0]
    >>> np.round(project_budget(np.array([1.0, 2.0, 3.0]), np.ones(3), 12.0, 1.0, 5.0), 9).tolist()
    [2.333333333, 4.666666667, 5.0]
    """
    u = np.asarray(u, np.float64)

    def excess(tau: float) -> float:
        return float(n @ np.clip(u * math.exp(tau), lo, hi)) - total

    a, b = math.log(lo / float(np.max(u))), math.log(hi / float(np.min(u)))
    tau = optimize.brentq(excess, a, b, xtol=1e-15, rtol=4 * np.finfo(float).eps)
    return np.clip(u * math.exp(tau), lo, hi)
