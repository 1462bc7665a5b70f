"""JAX's persistent compilation cache for rfmodel's command line (on there by default).

A cold ``rfmodel`` process spends much of a small solve compiling XLA programs (the objective of
each horizon, the search for the start); with the cache, a later process with the same shapes
loads them from disk instead. The library never turns it on by itself (that would change the
user's JAX configuration): :func:`rfmodel.cli.main` does, and a script may call
:func:`enable_compilation_cache`.

Folder: ``$RFMODEL_COMPILATION_CACHE`` if set (``0``, ``off``, ``no``, ``false``, ``none`` or the
empty string turn the cache off), else ``$XDG_CACHE_HOME/rfmodel/jax`` (``~/.cache/rfmodel/jax``
when ``XDG_CACHE_HOME`` is unset). A folder the user already gave JAX
(``JAX_COMPILATION_CACHE_DIR`` or ``jax.config.jax_compilation_cache_dir``) is used as it is.
JAX keys each entry on the program, the compiler options, the jaxlib version and the machine, so
a stale entry is never loaded; the folder may be deleted at any time.

JAX writes an entry in place (not through a temporary file), so a process stopped during the
write (Ctrl-C) can leave a truncated entry that JAX would warn about, and never replace, on
every later start. :func:`enable_compilation_cache` therefore removes entries that do not
decompress to their end, and keeps the folder under :data:`MAX_BYTES` by removing the entries
used least recently (JAX's own bound needs the ``filelock`` package).
"""

from __future__ import annotations

import math
import os
import zlib
from pathlib import Path

__all__ = ["ENV", "MAX_BYTES", "cache_dir", "enable_compilation_cache", "tidy"]

#: The environment variable that moves or turns off the cache.
ENV = "RFMODEL_COMPILATION_CACHE"
#: The folder's size bound (bytes). rfmodel's entries are 10-400 kB each.
MAX_BYTES = 512 * 2**20
_OFF = {"", "0", "off", "no", "false", "none"}
_SUFFIX = "-cache"  # JAX's name for an entry (jax._src.lru_cache)


def cache_dir() -> Path | None:
    """The folder rfmodel's command line uses, or None when :data:`ENV` turns the cache off."""
    value = os.environ.get(ENV)
    if value is not None:
        return None if value.strip().lower() in _OFF else Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rfmodel" / "jax"


def _complete(data: bytes) -> bool:
    """Whether a zlib stream decompresses to its end (a truncated write does not)."""
    d = zlib.decompressobj()
    try:
        while data:
            d.decompress(data, 1 << 24)
            data = d.unconsumed_tail
    except zlib.error:
        return False
    return d.eof


def _stamp(path: Path) -> Path:
    """The file beside the folder whose time says when :func:`tidy` last checked it."""
    return path.with_name(path.name + ".checked")


def tidy(path: Path, max_bytes: int = MAX_BYTES) -> list[Path]:
    """Remove damaged entries (truncated zlib streams) and, while the entries exceed
    ``max_bytes``, the least recently used ones (by access or change time). Returns the removed
    files. Only entries written since the previous check (the time of ``<folder>.checked``,
    less a minute) are read, so a start reads what the processes since the last one wrote, not
    the whole folder (0.29 s for 1576 entries, 23 MB). Entries in another compression than zlib
    (JAX on Python ≥ 3.14 with zstd) are only bounded, not checked.

    >>> import tempfile, zlib
    >>> folder = Path(tempfile.mkdtemp())
    >>> entry = zlib.compress(bytes(1000))
    >>> _ = (folder / "a-cache").write_bytes(entry)
    >>> _ = (folder / "b-cache").write_bytes(entry[:-4])  # a write cut short
    >>> [f.name for f in tidy(folder)], sorted(f.name for f in folder.iterdir())
    (['b-cache'], ['a-cache'])
    """
    stamp = _stamp(path)
    try:
        since = stamp.stat().st_mtime - 60.0
    except OSError:
        since = -math.inf
    try:
        stamp.touch()  # before the scan: an entry written during it is checked next time
    except OSError:  # a folder given to JAX inside one we may not write: check all each time
        pass
    removed: list[Path] = []
    entries = []
    for f in path.glob(f"*{_SUFFIX}"):
        try:
            st = f.stat()
            if st.st_mtime >= since:
                head = f.read_bytes()
                if head[:1] == b"\x78" and not _complete(head):  # a zlib stream cut short
                    f.unlink(missing_ok=True)
                    removed.append(f)
                    continue
        except OSError:
            continue
        entries.append((max(st.st_atime, st.st_mtime), st.st_size, f))
    total = sum(size for _, size, _ in entries)
    for _, size, f in sorted(entries):
        if total <= max_bytes:
            break
        f.unlink(missing_ok=True)
        removed.append(f)
        total -= size
    return removed


def enable_compilation_cache() -> Path | None:
    """Turn on JAX's persistent compilation cache in :func:`cache_dir` for every program (JAX's
    default keeps only programs that took ≥ 1 s to compile; rfmodel's take 0.05-0.5 s each).
    Returns the folder in use, or None when turned off or when the folder cannot be created
    (then nothing changes). Call it before the first compilation."""
    import jax

    given = jax.config.jax_compilation_cache_dir
    path = Path(given) if given else cache_dir()
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
        tidy(path)
    except OSError:
        return None
    if not given:
        jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
