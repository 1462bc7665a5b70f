"""Schedules out to optax and back to arrays: :func:`to_optax` (arrays, solved results, recipes),
:func:`to_optax_sgd` (η_t and β_t driving ``optax.sgd``), :func:`as_array`."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..dynamics import check_schedule
from ..dynamics.momentum import check_betas
from .families import Schedule, as_array, from_array

__all__ = ["to_optax", "to_optax_sgd", "as_array"]


def to_optax(schedule, *, T: int | None = None, peak: float | None = None) -> optax.Schedule:
    """An ``optax.Schedule`` (count 0 = first update) from an array, a solved result, a recipe
    or a schedule function.

    Args:
        schedule: per-step rates (array), a :class:`~rfmodel.control.ScheduleResult`, a
            :class:`~rfmodel.transfer.Recipe`, or a callable ``step -> rate`` (returned as is).
        T: horizon of the run the schedule is for (results and recipes only). For a result
            solved at another horizon the schedule is transferred
            (:meth:`ScheduleResult.transfer <rfmodel.control.ScheduleResult.transfer>`,
            docs/theory.md §9); default: the solved horizon.
        peak: rescale the rates so that the largest is ``peak`` (e.g. your network's rate).

    A schedule made from rates (arrays, results) holds its last rate past its horizon, and
    warns (a ``UserWarning``, once per schedule, also under ``jit``) the first time it is
    evaluated there: a solved schedule is annealed for its horizon, and holding its last rate
    stalls training (pass ``T=`` for the run's real length).
    """
    if callable(schedule) and not hasattr(schedule, "as_array"):
        if T is not None or peak is not None:
            raise ValueError("T and peak apply to arrays, results and recipes, not to callables")
        return schedule
    if hasattr(schedule, "as_array"):  # a Recipe: closed form at any horizon
        etas = np.asarray(schedule.as_array(T))
    elif hasattr(schedule, "etas") and hasattr(schedule, "transfer"):  # a ScheduleResult
        same = T is None or int(T) == len(schedule.etas)
        etas = np.asarray(schedule.etas) if same else schedule.transfer(T)
    else:
        if T is not None:
            raise ValueError(
                "T: an array of rates has no phase to transfer by; pass a ScheduleResult or "
                "a Recipe, or use rfmodel.transfer.transfer(etas, T, phase=..., xi=...)"
            )
        etas = schedule
    if peak is not None:
        etas = np.asarray(etas, np.float64)
        if not np.isfinite(peak) or peak <= 0 or not np.max(etas) > 0:
            raise ValueError(f"peak must be a finite number > 0; got peak={peak!r}")
        etas = etas * (float(peak) / float(np.max(etas)))
    return _past_horizon_warning(from_array(etas), int(np.shape(etas)[0]))


def _past_horizon_warning(sched: Schedule, horizon: int) -> Schedule:
    """``sched`` that warns once when evaluated at a step ≥ ``horizon`` (host callback under
    ``jit``, taken only past the horizon)."""
    warned = [False]

    def warn(step) -> None:
        last = int(np.max(np.asarray(step)))
        if not warned[0] and last >= horizon:
            warned[0] = True
            warnings.warn(
                f"learning-rate schedule evaluated at step {last}, past its horizon of "
                f"{horizon} steps: it holds its last rate there. Export it for the real run "
                f"length with to_optax(result, T=...) (docs/theory.md §9)",
                UserWarning,
                stacklevel=2,
            )

    def f(step):
        if isinstance(step, jax.core.Tracer):
            s = jnp.max(jnp.asarray(step))
            jax.lax.cond(s >= horizon, lambda x: jax.debug.callback(warn, x), lambda x: None, s)
        else:
            warn(step)
        return sched(step)

    return f


def to_optax_sgd(etas, betas=None) -> optax.GradientTransformation:
    """``optax.sgd`` driven per step by (η_t, β_t): a ready ``optax.inject_hyperparams`` transform.

    Update t (optax's count t, the first update is count 0) uses ``learning_rate = etas[t]`` and
    ``momentum = betas[t]``: heavy ball ``v ← β_t v + g``, ``w ← w − η_t v`` with v(0) = 0, the
    convention of ``loss_curve(problem, etas, betas=betas)`` (docs/theory.md §4). Steps past the
    end hold the last values. ``betas=None`` gives plain SGD (``momentum=None``: no trace state);
    ``betas`` of zeros is the same update with a trace. Either argument may be an array or an
    ``optax.Schedule``; the current values are in ``state.hyperparams``.

    >>> import jax.numpy as jnp
    >>> opt = to_optax_sgd(jnp.array([0.5, 0.25]), jnp.array([0.0, 0.5]))
    >>> w, state = jnp.zeros(1), opt.init(jnp.zeros(1))
    >>> for _ in range(2):  # gradient 1 at every step: v = 1, then 0.5·1 + 1
    ...     upd, state = opt.update(jnp.ones(1), state)
    ...     w = optax.apply_updates(w, upd)
    >>> float(w[0])  # −0.5·1 − 0.25·1.5
    -0.875
    """
    if not callable(etas):
        check_schedule(etas)
    if betas is None:
        return optax.inject_hyperparams(optax.sgd)(learning_rate=to_optax(etas))
    if not callable(betas):
        check_betas(betas, betas if callable(etas) else etas)
    return optax.inject_hyperparams(optax.sgd)(
        learning_rate=to_optax(etas), momentum=to_optax(betas)
    )
