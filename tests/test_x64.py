"""float64 without side effects: rfmodel leaves JAX's global configuration alone."""

import subprocess
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rfmodel
from rfmodel import Problem, loss_curve
from rfmodel.control import optimize_schedule
from rfmodel.schedules import as_array, cosine, tune


@pytest.mark.slow
def test_import_leaves_the_global_config_alone():
    code = (
        "import jax, jax.numpy as jnp, equinox as eqx, rfmodel\n"
        "assert jax.config.jax_enable_x64 is False\n"
        "assert jnp.ones(1).dtype == jnp.float32\n"
        "mlp = eqx.nn.MLP(3, 1, 8, 2, key=jax.random.key(0))\n"
        "leaves = jax.tree.leaves(eqx.filter(mlp, eqx.is_array))\n"
        "assert all(x.dtype == jnp.float32 for x in leaves)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_calls_leave_the_global_config_alone():
    p = Problem(a=2.5, b=1.2, sigma=0.5, n_modes=50, batch=2)
    loss_curve(p, np.full(20, 0.2))
    optimize_schedule(p, 40, controls=4)
    tune("constant", p, 40)
    assert jax.config.jax_enable_x64 is False
    assert jnp.ones(1).dtype == jnp.float32
    mlp = eqx.nn.MLP(3, 1, 8, 2, key=jax.random.key(0))
    assert mlp.layers[0].weight.dtype == jnp.float32


@pytest.mark.parametrize("global_x64", [False, True])
def test_loss_curve_is_float64_either_way(global_x64):
    p = Problem(a=1.5, b=2.5, sigma=0.5, n_modes=100, batch=4)
    etas = np.linspace(1.0, 0.01, 300)
    with jax.enable_x64(global_x64):
        curve = loss_curve(p, etas)
        sched = as_array(cosine(1.0, T=300), 300)
    assert curve.dtype == np.float64 and sched.dtype == np.float64
    assert abs(curve[0] / np.sum(p.weight * p.lam * p.c0) - 1) < 1e-15  # float32: ~1e-7


def test_same_numbers_with_x64_on_and_off():
    p = Problem(a=2.5, b=1.2, sigma=0.5, n_modes=300, batch=4)
    etas = np.linspace(0.5, 0.01, 500)
    off = loss_curve(p, etas)
    with jax.enable_x64(True):
        on = loss_curve(p, etas)
    np.testing.assert_array_equal(off, on)


def test_jit_and_grad_work_with_x64_off():
    p = Problem(a=2.0, b=1.5, sigma=0.5, n_modes=40, batch=2)
    etas = jnp.full(30, 0.3)  # float32: the user's default
    g = jax.grad(lambda e: loss_curve(p, e)[-1])(etas)
    gj = jax.jit(jax.grad(lambda e: loss_curve(p, e)[-1]))(etas)
    assert g.dtype == jnp.float32 and np.all(np.isfinite(g))
    np.testing.assert_allclose(g, gj, rtol=1e-6)
    with jax.enable_x64(True):
        g64 = jax.grad(lambda e: loss_curve(p, e)[-1])(jnp.full(30, 0.3))
    assert g64.dtype == jnp.float64
    np.testing.assert_allclose(g, g64, rtol=1e-5)  # float32 inputs, float64 inside
    assert rfmodel.loss_curve is loss_curve
