"""Compatibility name of :mod:`rfmodel.dynamics.segments` (piecewise-constant schedules by exact
segment propagation, docs/theory.md §5): ``from rfmodel.segments import segment_losses`` keeps
working."""

from .dynamics.segments import *  # noqa: F403
from .dynamics.segments import __all__  # noqa: F401
