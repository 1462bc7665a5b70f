"""rfmodel: optimal learning-rate schedules for power-law random-feature models.

The exact dynamics run in float64: importing rfmodel enables ``jax_enable_x64``.
"""

import jax

jax.config.update("jax_enable_x64", True)

from . import dynamics  # noqa: E402
from .dynamics import loss_curve  # noqa: E402
from .problem import Problem, TheoryExponents  # noqa: E402

__all__ = ["Problem", "TheoryExponents", "dynamics", "loss_curve"]
__version__ = "0.1.0"
