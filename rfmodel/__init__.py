"""rfmodel: optimal learning-rate schedules for power-law random-feature models.

rfmodel computes in float64 inside its own calls and leaves JAX's global configuration alone:
importing it does not enable ``jax_enable_x64`` (see :mod:`rfmodel._x64`).
"""

from . import dynamics
from .dynamics import loss_curve
from .problem import Problem, TheoryExponents

__all__ = ["Problem", "TheoryExponents", "dynamics", "loss_curve"]
__version__ = "0.1.0"
