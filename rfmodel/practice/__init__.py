"""The theory brought to real training runs: logged curves (:mod:`~rfmodel.practice.curves`),
the model fitted to them (:mod:`~rfmodel.practice.fit`), the empirical loss laws
(:mod:`~rfmodel.practice.laws`), the objective they share (:mod:`~rfmodel.practice.objective`),
held-out prediction and its metrics (:mod:`~rfmodel.practice.predict`), the pilot plan
(:mod:`~rfmodel.practice.pilot`) and the schedule advice drawn from the fit
(:mod:`~rfmodel.practice.advise`). Every public name of those modules is exported here."""

from . import advise as _advise
from . import curves as _curves
from . import fit as _fit
from . import laws as _laws
from . import objective as _objective
from . import pilot as _pilot
from . import predict as _predict
from .advise import *  # noqa: F403
from .curves import *  # noqa: F403
from .fit import *  # noqa: F403
from .laws import *  # noqa: F403
from .objective import *  # noqa: F403
from .pilot import *  # noqa: F403
from .predict import *  # noqa: F403

__all__ = list(
    dict.fromkeys(
        name
        for mod in (_curves, _fit, _laws, _objective, _predict, _advise, _pilot)
        for name in mod.__all__
    )
)
