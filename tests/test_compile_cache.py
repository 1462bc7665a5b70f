"""The command line's persistent compilation cache (rfmodel.compile_cache, issue 24 item 2):
where it lives, how it is turned off, that a later process loads what an earlier one compiled,
and that a damaged or oversized folder is repaired before JAX reads it."""

import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from rfmodel.compile_cache import ENV, cache_dir, tidy

ROOT = Path(__file__).resolve().parent.parent
CMD = ["optimize", "--T", "50", "--n-modes", "30", "--families", "constant", "--quiet"]


def _run(tmp_path: Path, out: str, cache: str) -> subprocess.CompletedProcess:
    path = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "PYTHONPATH": path, ENV: cache}
    return subprocess.run(
        [sys.executable, "-m", "rfmodel.cli", *CMD, "--out", str(tmp_path / out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("value", ["", "0", "off", "No", "false", " none "])
def test_the_variable_turns_the_cache_off(monkeypatch, value):
    monkeypatch.setenv(ENV, value)
    assert cache_dir() is None


def test_the_folder_is_the_variable_or_under_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV, str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv(ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "rfmodel" / "jax"


def test_tidy_removes_cut_entries_and_the_least_recently_used_beyond_the_bound(tmp_path):
    full = zlib.compress(os.urandom(4000))  # incompressible: 4 kB on disk
    for k, name in enumerate(["old", "mid", "new"]):
        f = tmp_path / f"{name}-cache"
        f.write_bytes(full)
        os.utime(f, (time.time() - 100 + k, time.time() - 100 + k))
    for cut in (1, len(full) // 2, len(full) - 1):
        (tmp_path / f"cut{cut}-cache").write_bytes(full[:cut])
    (tmp_path / "junk-cache").write_bytes(b"\x78\x9c not zlib at all")
    (tmp_path / "other.txt").write_bytes(b"not an entry")
    removed = {f.name for f in tidy(tmp_path, max_bytes=2 * len(full))}
    assert removed == {"old-cache", "cut1-cache", f"cut{len(full) // 2}-cache",
                       f"cut{len(full) - 1}-cache", "junk-cache"}  # fmt: skip
    assert sorted(f.name for f in tmp_path.iterdir()) == ["mid-cache", "new-cache", "other.txt"]


@pytest.mark.slow  # default tier under 4 min on 2 cores (measured cold)
def test_the_command_line_fills_the_cache_and_a_damaged_entry_is_repaired(tmp_path):
    cache = tmp_path / "cache"
    first = _run(tmp_path, "one", str(cache))
    assert first.returncode == 0, first.stderr
    entries = sorted(cache.glob("*-cache"))
    assert entries, "the first command wrote no compiled program"
    # damage every entry as a process stopped during the write would
    for f in entries:
        f.write_bytes(f.read_bytes()[:100])
    second = _run(tmp_path, "two", str(cache))
    assert second.returncode == 0, second.stderr
    assert "persistent compilation cache" not in second.stderr, second.stderr
    assert all(zlib.decompress(f.read_bytes()) for f in cache.glob("*-cache"))
    assert len(list(cache.glob("*-cache"))) == len(entries)  # rewritten whole
    assert (tmp_path / "one" / "table.csv").read_text() == (
        tmp_path / "two" / "table.csv"
    ).read_text()


@pytest.mark.slow
def test_turned_off_the_command_line_writes_no_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    r = _run(tmp_path, "one", "off")
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "xdg" / "rfmodel").exists()
