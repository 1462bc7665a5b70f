"""Shared fixtures. JAX's global configuration is left at its default (x64 off): rfmodel must
compute in float64 on its own (tests/test_x64.py)."""

import jax
import pytest


@pytest.fixture
def x64():
    """For tests that take float64 gradients in their own code around rfmodel's calls (as a
    user who wants float64 autodiff would): 64-bit types on for the test only."""
    with jax.enable_x64(True):
        yield
