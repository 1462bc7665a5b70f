"""What a result's configuration records about array arguments and grid options (the parts of
a cache key that are not plain numbers)."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

__all__ = ["describe", "optional_config"]


def optional_config(grid, method) -> dict[str, Any]:
    """The segment-grid options, in a configuration only when they are not at their default
    (so that the keys of results solved before they existed do not change)."""
    out: dict[str, Any] = {}
    if not (isinstance(grid, str) and grid == "uniform"):
        out["grid"] = grid if isinstance(grid, str) else describe(grid)
        # revision 2: preconditioned log coordinates, KKT residual in them, per-segment growth
        # bounds (:func:`grid_scale`, :func:`rate_bounds`); results of revision 1 are
        # recomputed rather than reused.
        out["grid_revision"] = 2
    if method != "auto":
        out["method"] = method
    return out


def describe(x) -> Any:
    """A JSON description of an init/batches argument for a result's configuration: None, the
    number, or a fingerprint of the array (its length and a SHA-1 of its float64 bytes)."""
    if x is None:
        return None
    if isinstance(x, dict):
        return {str(k): describe(v) for k, v in x.items()}
    a = np.asarray(x, np.float64)
    if a.ndim == 0:
        return float(a)
    return {
        "length": int(a.size),
        "sha1": hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest(),
    }
