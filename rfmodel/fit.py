"""Compatibility name of :mod:`rfmodel.practice` (logged curves, the fitted model, the advice):
``from rfmodel.fit import fit_curves, advise, Run`` keeps working."""

from .practice import *  # noqa: F403
from .practice import __all__  # noqa: F401
