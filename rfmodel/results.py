"""Atomic, resumable result storage: arrays in ``.npz`` plus JSON metadata.

A result is a pair of files ``<path>.npz`` and ``<path>.json``, each written to a temporary file
in the same folder and moved into place with ``os.replace`` (atomic on POSIX), the JSON last: a
result whose JSON exists is complete, so an interrupted run loses nothing it finished.

>>> import tempfile, numpy as np
>>> d = tempfile.mkdtemp()
>>> save_result(f"{d}/r", {"x": np.arange(3.0)}, {"loss": 0.5})
>>> arrays, meta = load_result(f"{d}/r")
>>> arrays["x"].tolist(), meta["loss"]
([0.0, 1.0, 2.0], 0.5)
>>> config_key({"a": 1, "b": [2, 3]}) == config_key({"b": [2, 3], "a": 1})
True
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["save_result", "load_result", "exists", "config_key", "write_json", "write_text"]


def _default(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON-serializable: {type(x).__name__}")


def config_key(config: dict[str, Any]) -> str:
    """A short stable hash of a JSON-serializable configuration (the cache key)."""
    text = json.dumps(config, sort_keys=True, default=_default)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically."""
    _atomic_write(Path(path), lambda f: f.write(text.encode()))


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (numpy values converted)."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True, default=_default) + "\n")


def save_result(path: str | Path, arrays: dict[str, Any], metadata: dict[str, Any]) -> None:
    """Save ``arrays`` to ``path.npz`` and ``metadata`` to ``path.json``, atomically."""
    path = Path(path)
    _atomic_write(
        path.with_suffix(".npz"),
        lambda f: np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()}),
    )
    write_json(path.with_suffix(".json"), metadata)


def exists(path: str | Path) -> bool:
    """True when a complete result (its JSON, written last) is at ``path``."""
    return Path(path).with_suffix(".json").exists()


def load_result(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load ``(arrays, metadata)`` saved by :func:`save_result`."""
    path = Path(path)
    with np.load(path.with_suffix(".npz")) as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, json.loads(path.with_suffix(".json").read_text())
