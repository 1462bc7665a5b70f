"""Compatibility name of :mod:`rfmodel.schedules.transfer` (schedules for other horizons)."""

from .schedules.transfer import *  # noqa: F403
from .schedules.transfer import __all__  # noqa: F401
