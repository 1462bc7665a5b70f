"""Compatibility name of :mod:`rfmodel.dynamics.ode` (the continuous-time limit, diffrax)."""

from .dynamics.ode import *  # noqa: F403
from .dynamics.ode import __all__  # noqa: F401
