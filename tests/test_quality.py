"""Per-step label noise and the data-quality control (docs/theory.md §10): the recursion against
its reference, autodiff, finite differences and Monte-Carlo SGD; its exact linearity; the
optimal curriculum against the threshold rule; the refusals."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rfmodel import Problem, loss_curve
from rfmodel.control import optimize_schedule
from rfmodel.dynamics import loss_curve_reference, steps
from rfmodel.simulate import sgd, theory_excess


def _setting(T=120, seed=0):
    p = Problem(a=2.5, b=1.2, sigma=0.3, n_modes=300, batch=3)
    rng = np.random.default_rng(seed)
    etas = 0.4 * p.eta_critical() * rng.uniform(0.2, 1.0, T)
    batches = rng.uniform(1.0, 5.0, T)
    noise = rng.uniform(0.0, 0.5, T)
    return p, etas, batches, noise


def test_constant_noise_is_the_old_recursion_bit_for_bit():
    p, etas, batches, _ = _setting()
    plain = np.asarray(loss_curve(p, etas, batches))
    same = np.asarray(loss_curve(p, etas, batches, noise=np.full(etas.size, p.sigma**2)))
    assert np.array_equal(plain, same)
    ref = loss_curve_reference(p, etas, batches, noise=np.full(etas.size, p.sigma**2))
    assert np.allclose(ref, plain, rtol=1e-13, atol=0)


@pytest.mark.parametrize("T", [pytest.param(1, marks=pytest.mark.slow), 37])
def test_fast_matches_reference_and_autodiff(T, x64):
    p, etas, batches, noise = _setting(T, seed=T)
    fast = np.asarray(loss_curve(p, etas, batches, noise=noise))
    ref = np.asarray(loss_curve_reference(p, etas, batches, noise=noise))
    assert np.max(np.abs(fast - ref) / ref) < 1e-13

    def f(curve_fn):
        return jax.grad(lambda e, m, s: jnp.log(curve_fn(p, e, m, noise=s)[-1]), (0, 1, 2))(
            etas, batches, noise
        )

    for g, r in zip(f(loss_curve), f(loss_curve_reference), strict=True):
        assert np.max(np.abs(g - r)) <= 1e-12 * np.max(np.abs(r))
    # The solver's objective: the same three gradients from one pass.
    v, grads = steps.log_final_loss_and_grads(p, etas, batches, noise)
    assert math.isclose(v, math.log(ref[-1]), rel_tol=1e-13)
    for k, r in zip(("eta", "batch", "noise"), f(loss_curve_reference), strict=True):
        assert np.max(np.abs(grads[k] - r)) <= 1e-12 * np.max(np.abs(r))


def test_noise_gradient_matches_finite_differences(x64):
    p, etas, batches, noise = _setting()
    g = jax.grad(lambda s: loss_curve(p, etas, batches, noise=s)[-1])(noise)
    for i in (0, 50, etas.size - 1):
        d = np.zeros(etas.size)
        d[i] = 1e-4
        hi = float(loss_curve(p, etas, batches, noise=noise + d)[-1])
        lo = float(loss_curve(p, etas, batches, noise=noise - d)[-1])
        assert math.isclose(float(g[i]), (hi - lo) / 2e-4, rel_tol=1e-7)


def test_loss_is_affine_in_the_noise(x64):
    """L(T) = L_0(T) + Σ_t G_t σ_t² exactly, G_t = ∂L(T)/∂σ_t² (the noise influence)."""
    p, etas, batches, noise = _setting()
    zero = np.zeros(etas.size)
    influence = jax.grad(lambda s: loss_curve(p, etas, batches, noise=s)[-1])(zero)
    l0 = float(loss_curve(p, etas, batches, noise=zero)[-1])
    l1 = float(loss_curve(p, etas, batches, noise=noise)[-1])
    assert np.all(np.asarray(influence) >= 0)
    assert math.isclose(l1, l0 + float(influence @ noise), rel_tol=1e-12)


def test_random_shuffling_is_the_uniform_mix():
    """Averaged over the T cyclic shifts of a curriculum, every step sees the mean noise: by
    linearity the mean loss is the uniform mix's, exactly."""
    p, etas, batches, _ = _setting(T=60)
    T = etas.size
    curriculum = np.where(np.arange(T) < 20, 0.0, 1.0)  # a third clean (σ_c = 0, σ_n = 1)
    shifted = np.stack([np.roll(curriculum, k) for k in range(T)])
    losses = [float(loss_curve(p, etas, batches, noise=s)[-1]) for s in shifted]
    uniform = float(loss_curve(p, etas, batches, noise=np.full(T, curriculum.mean()))[-1])
    assert math.isclose(np.mean(losses), uniform, rel_tol=1e-12)


def test_monte_carlo_with_per_step_noise():
    p = Problem(a=1.5, b=2.5, sigma=0.5, n_modes=100, batch=2, n_exact=100)
    T = 300
    times = [1, 5, 20, 60, 150, 299]
    etas = 0.7 * p.eta_critical() * (1 - np.arange(T) / T)
    noise = np.where(np.arange(T) < T // 2, 1.0, 0.01)  # noisy first, then clean
    theory = theory_excess(p, loss_curve(p, etas, noise=noise))
    mc = sgd(p, etas, jax.random.key(7), n_seeds=512, noise=noise)
    z = (mc.mean[times] - theory[times]) / mc.sem[times]
    assert np.all(np.abs(z) < 4), z
    wrong = np.asarray(loss_curve(p, etas))  # the problem's σ² instead: detected
    assert np.max(np.abs((mc.mean[times] - wrong[times]) / mc.sem[times])) > 4


def _influence_per_sample(p, etas, K):
    """The threshold rule of docs/theory.md §10: per-segment noise influence per sample."""
    with jax.enable_x64(True):
        g = jax.grad(lambda s: loss_curve(p, etas, noise=s)[-1])(np.zeros(etas.size))
    seg = np.repeat(np.arange(K), etas.size // K)
    return np.bincount(seg, weights=np.asarray(g)) / np.bincount(
        seg, weights=np.full(etas.size, p.batch)
    )


def test_quality_at_a_constant_rate_is_the_ascending_threshold_rule():
    p = Problem(a=2.5, b=1.2, sigma=0.3, n_modes=2000, n_exact=200, batch=4)
    T, K = 400, 20
    etas = np.full(T, 0.5 * p.eta_critical())
    Q = 0.3 * 4 * T
    r = optimize_schedule(
        p, T, controls=K, optimize=("quality",), etas=etas, clean_samples=Q, noise_noisy=1.0
    )
    assert r.converged and r.kkt["quality"] <= 1e-4
    assert math.isclose(float(r.quality @ np.full(T, 4.0)), Q, rel_tol=1e-12)
    # bang-bang, clean data on the steps of largest influence per sample: the last 30%.
    expected = np.zeros(K)
    expected[np.argsort(-_influence_per_sample(p, etas, K))[:6]] = 1.0
    assert np.allclose(r.controls, expected, atol=1e-9)
    assert np.array_equal(expected, np.r_[np.zeros(14), np.ones(6)])  # ascending
    uniform = float(loss_curve(p, etas, noise=np.full(T, 0.7))[-1])
    assert r.loss < uniform and r.config["clean_samples"] == Q


def test_joint_rate_and_quality():
    p = Problem(a=1.5, b=2.5, sigma=0.5, n_modes=10**4, n_exact=200, batch=4)
    T, K, Q = 300, 15, 0.5 * 4 * 300
    rate_only = optimize_schedule(p, T, controls=K, noise=np.full(T, 0.5 * 0.25))
    r = optimize_schedule(
        p, T, controls=K, optimize=("eta", "quality"), clean_samples=Q, noise_clean=0.0
    )
    assert r.converged, r.message
    assert set(r.kkt) == {"eta", "quality"} and "quality" in r.multipliers
    assert r.loss < rate_only.loss  # the uniform mix (random shuffling) is feasible
    assert np.allclose(r.noise, (1 - r.quality) * 0.25)
    assert r.quality.shape == r.noise.shape == (T,)


@pytest.mark.parametrize(
    "kw,msg",
    [
        ({"noise": np.full(5, -1.0)}, "noise must be finite and >= 0"),
        ({"noise": np.full(4, 0.1)}, "noise must have the shape of etas"),
        ({"noise": np.full(5, np.nan)}, "noise must be finite"),
    ],
)
def test_invalid_noise(kw, msg):
    p = Problem(a=2.0, b=1.5, n_modes=10)
    with pytest.raises(ValueError, match=msg):
        loss_curve(p, np.full(5, 0.1), **kw)


def test_noise_with_momentum_is_refused():
    p = Problem(a=2.0, b=1.5, n_modes=10)
    with pytest.raises(ValueError, match="noise cannot be combined with betas"):
        loss_curve(p, np.full(5, 0.1), betas=np.full(5, 0.5), noise=np.full(5, 0.1))


@pytest.mark.parametrize(
    "kw,msg",
    [
        ({"optimize": ("eta", "quality")}, "clean_samples=Q .* is required"),
        ({"optimize": ("eta", "quality"), "clean_samples": 0.0}, "clean_samples must be in"),
        ({"optimize": ("eta", "quality"), "clean_samples": 40.0}, "clean_samples must be in"),
        (
            {"optimize": ("eta", "quality"), "clean_samples": 5.0, "noise_clean": 0.6},
            "noise_clean < noise_noisy",
        ),
        ({"clean_samples": 5.0}, "clean_samples is a setting of the quality control"),
        ({"noise_noisy": 1.0}, "noise_noisy is a setting of the quality control"),
        (
            {"optimize": ("eta", "quality"), "clean_samples": 5.0, "noise": np.ones(10)},
            "noise .* cannot be given with optimize",
        ),
        (
            {"optimize": ("eta", "batch", "quality"), "clean_samples": 5.0},
            "'batch', 'quality'\\) is not available",
        ),
        (
            {"optimize": ("eta", "momentum", "quality"), "clean_samples": 5.0},
            "no evaluator of the steps path takes them together",
        ),
        ({"optimize": ("quality",), "clean_samples": 5.0}, "etas .* is required"),
        (
            {"optimize": ("quality",), "clean_samples": 5.0, "etas": np.ones(10), "eta_max": 1},
            "eta_max is a setting of the rate control",
        ),
        ({"etas": np.full(10, 0.1)}, "etas .* cannot be given with 'eta' in optimize"),
        ({"noise": np.full(10, 0.1), "method": "segments"}, "noise .* is not available on the"),
        ({"optimize": ("batch",)}, "optimize must name controls from"),
    ],
)
def test_solver_refusals_name_the_parameter(kw, msg):
    p = Problem(a=2.0, b=1.5, sigma=0.5, n_modes=10, batch=3)
    with pytest.raises(ValueError, match=msg):
        optimize_schedule(p, 10, **kw)
