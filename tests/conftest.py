"""Shared fixtures. JAX's global configuration is left at its default (x64 off): rfmodel must
compute in float64 on its own (tests/test_x64.py).

The session compiles into its own persistent compilation cache, a temporary folder removed at
the end (shared by pytest-xdist's workers and by the command lines the tests start, through
``RFMODEL_COMPILATION_CACHE``): many tests build the same programs, and a program compiled once
is then loaded instead of compiled again. The suite's time no longer depends on what an earlier
run left in the user's cache (~/.cache/rfmodel/jax), and the tests leave nothing there."""

import os
import shutil
import tempfile
from pathlib import Path

import jax
import pytest

from rfmodel.compile_cache import ENV, enable_compilation_cache

_OWN = "RFMODEL_TEST_SESSION_CACHE"  # the folder this session made (seen by xdist's workers)
_CACHE = None


def pytest_configure(config):
    global _CACHE
    if os.environ.get(_OWN) and os.environ.get(ENV) == os.environ[_OWN]:
        enable_compilation_cache()  # an xdist worker: the controller's folder
        return
    if jax.config.jax_compilation_cache_dir or os.environ.get(ENV) is not None:
        return  # the user chose a cache (or none) for this run: keep it
    # a folder inside a temporary one: removing that also removes rfmodel's files beside the cache
    _CACHE = Path(tempfile.mkdtemp(prefix="rfmodel-test-")) / "jax"
    os.environ[ENV] = os.environ[_OWN] = str(_CACHE)
    enable_compilation_cache()


def pytest_unconfigure(config):
    if _CACHE is not None:
        shutil.rmtree(_CACHE.parent, ignore_errors=True)
        for name in (ENV, _OWN):
            os.environ.pop(name, None)


@pytest.fixture
def x64():
    """For tests that take float64 gradients in their own code around rfmodel's calls (as a
    user who wants float64 autodiff would): 64-bit types on for the test only."""
    with jax.enable_x64(True):
        yield
