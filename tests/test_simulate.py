"""Monte-Carlo SGD agrees with the exact recursion within sampling error."""

import jax
import numpy as np
import pytest

from rfmodel import Problem, loss_curve
from rfmodel.simulate import sgd, theory_excess

TIMES = [1, 5, 20, 60, 150, 299]  # spread over the run


def _check(problem, etas, seed, n_seeds=1024):
    theory = theory_excess(problem, loss_curve(problem, etas))
    mc = sgd(problem, etas, jax.random.key(seed), n_seeds=n_seeds, chunk=256)
    z = (mc.mean[TIMES] - theory[TIMES]) / mc.sem[TIMES]
    assert np.all(np.abs(z) < 4), f"deviations in standard errors: {z}"
    # and the curves really move: the check is not vacuous
    assert theory[TIMES[-1]] < 0.7 * theory[0]
    return z


@pytest.mark.parametrize(
    "a,b,batch",
    [
        pytest.param(2.5, 1.2, 1, marks=pytest.mark.slow),
        (2.5, 1.2, 4),
        (1.5, 2.5, 1),
        pytest.param(1.5, 2.5, 8, marks=pytest.mark.slow),
    ],
)
def test_monte_carlo_matches_recursion(a, b, batch):
    p = Problem(a=a, b=b, sigma=0.5, n_modes=100, batch=batch, n_exact=100)
    T = 300
    etas = 0.7 * p.eta_critical() * (1 - np.arange(T) / T)  # annealed, with label noise
    _check(p, etas, seed=batch)


@pytest.mark.slow
def test_monte_carlo_random_features():
    """SGD on real features ψ = F x (x ∈ R^M, N < M) matches the eigenbasis recursion."""
    p = Problem.from_random_features(
        2.0, 1.5, 0.3, n_features=40, n_inputs=160, key=jax.random.key(3), batch=2
    )
    T = 300
    etas = np.full(T, 0.6 * p.eta_critical())
    _check(p, etas, seed=11)


def test_monte_carlo_detects_a_wrong_theory():
    """The comparison has power: a 10% error in the noise term is seen."""
    p = Problem(a=1.5, b=2.5, sigma=0.5, n_modes=100, batch=1, n_exact=100)
    wrong = Problem(a=1.5, b=2.5, sigma=0.5 * 1.3, n_modes=100, batch=1, n_exact=100)
    T = 300
    etas = np.full(T, 0.7 * p.eta_critical())
    mc = sgd(p, etas, jax.random.key(0), n_seeds=256)
    z = (mc.mean[TIMES] - np.asarray(loss_curve(wrong, etas))[TIMES]) / mc.sem[TIMES]
    assert np.max(np.abs(z)) > 4


def test_sgd_invalid_input():
    p = Problem(a=2.0, b=1.5, n_modes=10_000, n_exact=100)
    with pytest.raises(ValueError, match="problem must be unbinned"):
        sgd(p, np.full(3, 0.1), jax.random.key(0))
    p = Problem(a=2.0, b=1.5, n_modes=10)
    with pytest.raises(ValueError, match="n_seeds must be"):
        sgd(p, np.full(3, 0.1), jax.random.key(0), n_seeds=1)
    with pytest.raises(ValueError, match="etas must be finite"):
        sgd(p, np.array([0.1, np.inf]), jax.random.key(0))


def _momentum_schedule(p, T):
    t = np.arange(T)
    betas = 0.8 * np.sin(np.pi * (t + 0.5) / T) ** 2
    etas = 0.6 * p.eta_critical(batch=1) * (1 - betas) * (1 - 0.9 * t / T)
    return etas, betas


@pytest.mark.slow
def test_monte_carlo_per_step_batches_and_momentum():
    """Heavy-ball SGD with per-step batch sizes (1..6: four sample buckets) and momenta
    matches loss_curve(problem, etas, batches, betas)."""
    p = Problem(a=1.5, b=2.5, sigma=0.5, n_modes=100, batch=1, n_exact=100)
    T = 200
    times = [1, 5, 20, 60, 120, 199]
    etas, betas = _momentum_schedule(p, T)
    batches = 1 + (np.arange(T) * 5) % 6
    theory = theory_excess(p, loss_curve(p, etas, batches, betas))
    mc = sgd(p, etas, jax.random.key(21), batches=batches, betas=betas, n_seeds=1024, chunk=512)
    z = (mc.mean[times] - theory[times]) / mc.sem[times]
    assert np.all(np.abs(z) < 4), f"deviations in standard errors: {z}"
    assert theory[times[-1]] < 0.7 * theory[0]
    # power: the same run against the recursion with momenta 10% smaller, or with each step's
    # batch size one step late (a convention error), is rejected
    for wrong in (
        loss_curve(p, etas, batches, 0.9 * betas),
        loss_curve(p, etas, np.concatenate([[1], batches[:-1]]), betas),
    ):
        z = (mc.mean[times] - theory_excess(p, wrong)[times]) / mc.sem[times]
        assert np.max(np.abs(z)) > 4, z


def test_monte_carlo_momentum_random_features():
    """Momentum on real features ψ = F x matches the eigenbasis recursion."""
    p = Problem.from_random_features(
        2.0, 1.5, 0.3, n_features=40, n_inputs=160, key=jax.random.key(3), batch=2
    )
    T = 300
    etas, betas = _momentum_schedule(p, T)
    theory = theory_excess(p, loss_curve(p, etas, betas=betas))
    mc = sgd(p, etas, jax.random.key(12), betas=betas, n_seeds=512)
    z = (mc.mean[TIMES] - theory[TIMES]) / mc.sem[TIMES]
    assert np.all(np.abs(z) < 4), f"deviations in standard errors: {z}"


def test_sgd_invalid_schedules():
    p = Problem(a=2.0, b=1.5, n_modes=10)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="batches must be integers"):
        sgd(p, np.full(3, 0.1), key, batches=np.array([1, 2.5, 3]))
    with pytest.raises(ValueError, match="batches must have the shape"):
        sgd(p, np.full(3, 0.1), key, batches=np.array([1, 2]))
    with pytest.raises(ValueError, match=r"betas must be finite and in \[0, 1\)"):
        sgd(p, np.full(3, 0.1), key, betas=np.array([0.0, 1.0, 0.5]))
