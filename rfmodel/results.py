"""Atomic, validated, resumable result storage: JSON metadata plus optional ``.npz`` arrays.

A result is ``<path>.json`` (always) and ``<path>.npz`` (when it has arrays). Each file is
written to a temporary file in the same folder and moved into place with ``os.replace`` (atomic
on POSIX), the JSON last: a result whose JSON exists is complete, so an interrupted run loses
nothing it finished.

The JSON carries an integrity record under ``"_rfmodel"``: the format version, the
configuration the result was computed for (every setting that changes the answer), a SHA-256
of the metadata, and for each array its shape, dtype and SHA-256. :func:`load_result` checks all
of it and raises :class:`ResultError` (naming the file) for a damaged, truncated, mismatched or
foreign result, e.g. an ``.npz`` copied over another horizon's or a JSON full of garbage.
:func:`load_valid` is what caches use: a damaged result is reported (a
:class:`DamagedResultWarning` naming the path), moved aside (``<file>.damaged-<time>``) and
treated as missing, so it is recomputed; never a traceback, never a silent reuse.

>>> import tempfile, numpy as np
>>> d = tempfile.mkdtemp()
>>> save_result(f"{d}/r", {"x": np.arange(3.0)}, {"loss": 0.5}, config={"T": 3})
>>> arrays, meta = load_result(f"{d}/r", config={"T": 3})
>>> arrays["x"].tolist(), meta["loss"]
([0.0, 1.0, 2.0], 0.5)
>>> load_result(f"{d}/r", config={"T": 4})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
rfmodel.results.ResultError: .../r.json: computed for another configuration (T: 3 != 4)
>>> config_key({"a": 1, "b": [2, 3]}) == config_key({"b": [2, 3], "a": 1})
True
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
import threading
import time
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ResultError",
    "DamagedResultWarning",
    "save_result",
    "load_result",
    "load_valid",
    "is_complete",
    "quarantine",
    "exists",
    "config_key",
    "read_json",
    "write_json",
    "write_text",
    "atomic_write",
    "abandon_writes",
    "writable_dir",
]

FORMAT = 1
_MISSING: Any = object()


class ResultError(ValueError):
    """A saved result that cannot be trusted; ``path`` names the file, ``reason`` says why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class DamagedResultWarning(UserWarning):
    """A damaged or mismatched result was moved aside and will be recomputed."""


def _default(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON-serializable: {type(x).__name__}")


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, default=_default)


def config_key(config: dict[str, Any]) -> str:
    """A short stable hash of a JSON-serializable configuration (the cache key)."""
    return hashlib.sha1(_canonical(config).encode()).hexdigest()[:12]


# Temporary files of the atomic writes in progress, for a process that must end now
# (abandon_writes); once abandoned, a new write waits forever (the process is ending).
_WRITES = threading.Lock()
_PENDING: set[str] = set()
_ABANDONED = threading.Event()


def atomic_write(path: Path, write) -> None:
    """Write ``path`` through ``write(file)`` into a temporary file of its folder, then rename it
    into place: a file under its final name is always complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _WRITES:
        if _ABANDONED.is_set():
            threading.Event().wait()  # the process is ending (abandon_writes): never returns
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        _PENDING.add(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes 0600 files; results are meant to be shared: the usual mode under umask
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        with _WRITES:
            _PENDING.discard(tmp)


def abandon_writes(timeout: float = 0.5) -> None:
    """For a process about to end with ``os._exit`` (an interrupt): remove the temporary files
    of the atomic writes in progress on other threads, and make later writes wait forever.
    A write that already renamed its file into place is complete; one that had not leaves
    nothing behind."""
    got = _WRITES.acquire(timeout=timeout)
    try:
        _ABANDONED.set()
        for tmp in list(_PENDING):
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    finally:
        if got:
            _WRITES.release()


def write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically."""
    atomic_write(Path(path), lambda f: f.write(text.encode()))


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (numpy values converted)."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True, default=_default) + "\n")


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; any failure is a :class:`ResultError` naming the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ResultError(path, f"unreadable JSON ({e})") from None


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _meta_digest(metadata: Mapping[str, Any]) -> str:
    return hashlib.sha256(_canonical(dict(metadata)).encode()).hexdigest()


def save_result(
    path: str | Path,
    arrays: Mapping[str, Any] | None,
    metadata: Mapping[str, Any],
    *,
    config: Any = None,
) -> None:
    """Save ``arrays`` to ``path.npz`` (if any) and ``metadata`` to ``path.json``, atomically.

    Args:
        path: the result's path without suffix.
        arrays: named arrays (``None`` or empty: a JSON-only result).
        metadata: JSON-serializable numbers and settings (must not use the key ``"_rfmodel"``).
        config: the configuration the result answers (checked by ``load_result(config=...)``).
    """
    path = Path(path)
    if "_rfmodel" in metadata:
        raise ValueError("metadata must not contain the reserved key '_rfmodel'")
    arrays = {k: np.asarray(v) for k, v in (arrays or {}).items()}
    meta = json.loads(_canonical(dict(metadata)))  # what the JSON will hold, exactly
    record = {
        "format": FORMAT,
        "config": json.loads(_canonical(config)),
        "metadata_sha256": _meta_digest(meta),
        "arrays": {
            k: {"shape": list(v.shape), "dtype": str(v.dtype), "sha256": _digest(v)}
            for k, v in arrays.items()
        },
    }
    if arrays:
        atomic_write(path.with_suffix(".npz"), lambda f: np.savez(f, **arrays))
    else:
        path.with_suffix(".npz").unlink(missing_ok=True)
    write_json(path.with_suffix(".json"), {**meta, "_rfmodel": record})


def exists(path: str | Path) -> bool:
    """True when a result's JSON (written last) is at ``path``; says nothing of its validity."""
    return Path(path).with_suffix(".json").exists()


def _first_difference(a: Any, b: Any, where: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{where}{k}: {'missing' if k not in a else a[k]!r} != " + (
                    "missing" if k not in b else repr(b[k])
                )
            if a[k] != b[k]:
                return _first_difference(a[k], b[k], f"{where}{k}.")
    return f"{where.rstrip('.') or 'config'}: {a!r} != {b!r}"


def load_result(
    path: str | Path,
    *,
    config: Any = _MISSING,
    shapes: Mapping[str, tuple[int, ...]] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load and validate ``(arrays, metadata)`` saved by :func:`save_result`.

    Args:
        path: the result's path without suffix.
        config: if given, the configuration the result must have been computed for.
        shapes: if given, required shapes of named arrays.

    Raises:
        ResultError: missing, unreadable, truncated, inconsistent or mismatched (the message
            names the file and the first problem found).
    """
    path = Path(path)
    js = path.with_suffix(".json")
    if not js.exists():
        raise ResultError(js, "missing")
    data = read_json(js)
    if not isinstance(data, dict) or not isinstance(data.get("_rfmodel"), dict):
        raise ResultError(js, "no integrity record: not a result written by this rfmodel")
    record = data.pop("_rfmodel")
    if record.get("format") != FORMAT:
        raise ResultError(js, f"result format {record.get('format')!r}, expected {FORMAT}")
    if record.get("metadata_sha256") != _meta_digest(data):
        raise ResultError(js, "metadata checksum mismatch (edited or damaged)")
    if config is not _MISSING:
        want = json.loads(_canonical(config))
        if record.get("config") != want:
            raise ResultError(
                js,
                "computed for another configuration ("
                + _first_difference(record.get("config"), want)
                + ")",
            )
    specs = record.get("arrays") or {}
    arrays: dict[str, np.ndarray] = {}
    if specs:
        npz = path.with_suffix(".npz")
        try:
            with np.load(npz, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise ResultError(npz, "missing (its JSON lists arrays)") from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
            raise ResultError(npz, f"unreadable arrays ({type(e).__name__}: {e})") from None
        if set(arrays) != set(specs):
            raise ResultError(npz, f"holds arrays {sorted(arrays)}, expected {sorted(specs)}")
        for k, spec in specs.items():
            a = arrays[k]
            if list(a.shape) != spec["shape"] or str(a.dtype) != spec["dtype"]:
                raise ResultError(
                    npz,
                    f"array {k!r} has shape {list(a.shape)} {a.dtype}, expected "
                    f"{spec['shape']} {spec['dtype']} (a file from another result?)",
                )
            if _digest(a) != spec["sha256"]:
                raise ResultError(npz, f"array {k!r} checksum mismatch (damaged or replaced)")
    for k, shape in (shapes or {}).items():
        if k not in arrays or arrays[k].shape != tuple(shape):
            got = arrays[k].shape if k in arrays else "missing"
            raise ResultError(path.with_suffix(".npz"), f"array {k!r} is {got}, expected {shape}")
    return arrays, data


def quarantine(path: str | Path, reason: str) -> list[Path]:
    """Move a result's files aside (``<file>.damaged-<time>``) and warn, naming them.

    Returns the new paths. Moved files no longer match a result's name, so the result counts
    as missing and is recomputed.
    """
    path = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    moved = []
    for f in (path.with_suffix(".json"), path.with_suffix(".npz")):
        if f.exists():
            dest = f.with_name(f"{f.name}.damaged-{stamp}")
            os.replace(f, dest)
            moved.append(dest)
    warnings.warn(
        f"{path}: {reason}; moved aside to {', '.join(p.name for p in moved) or '(nothing)'} "
        "and recomputed",
        DamagedResultWarning,
        stacklevel=2,
    )
    return moved


def load_valid(
    path: str | Path,
    *,
    config: Any = _MISSING,
    shapes: Mapping[str, tuple[int, ...]] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """:func:`load_result`, or ``None`` when there is no result or it is not valid.

    An invalid result (damaged, foreign, for another configuration) is moved aside with a
    :class:`DamagedResultWarning` naming it (:func:`quarantine`), so the caller recomputes it.
    """
    path = Path(path)
    if not path.with_suffix(".json").exists() and not path.with_suffix(".npz").exists():
        return None
    try:
        return load_result(path, config=config, shapes=shapes)
    except ResultError as e:
        quarantine(path, e.reason)
        return None


def is_complete(path: str | Path, *, config: Any = _MISSING) -> bool:
    """True when a valid result for ``config`` is saved at ``path`` (else it is moved aside)."""
    return load_valid(path, config=config) is not None


def writable_dir(path: Path, flag: str = "--out") -> Path:
    """Create ``path`` if needed and prove it writable, before any work (ValueError if not).

    An empty name is refused (``Path("")`` is the current folder, which a user who typed
    ``--out ''`` did not mean); so is a name the file system cannot hold (too long, …), with
    the system's reason instead of an OSError traceback."""
    if str(path) == "":
        raise ValueError(f"{flag}: an empty folder name; give a folder (e.g. {flag} runs/x)")
    path = Path(path)
    shown = str(path) if len(str(path)) <= 120 else f"{str(path)[:60]}…{str(path)[-40:]}"
    try:
        if path.exists() and not path.is_dir():
            raise ValueError(f"{flag}: {path} is a file, not a folder")
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".rfmodel-write-check-"):
            pass
    except OSError as e:
        why = e.strerror or str(e)
        if e.errno == errno.ENAMETOOLONG:
            longest = max((len(part.encode()) for part in path.parts), default=0)
            why += f": a name of {longest} bytes (the limit is usually 255) or a path too long"
        raise ValueError(f"{flag}: cannot write to {shown} ({why})") from None
    return path
