"""The repository is self-contained: its own theory page, licence and citation, and no path
that points outside it."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Parent-relative paths and absolute paths of machines the project was developed on.
OUTSIDE = re.compile(r"\.\./shared|THEORY\.md|/work/|/home/\w|/Users/\w")


def _files() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
        return [ROOT / f for f in out]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: walk it
        skip = {".git", ".venv", "venv", "build", "__pycache__", ".pytest_cache", ".ruff_cache"}
        return [p for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.parts)]


def test_no_path_points_outside_the_repository():
    hits = []
    for f in _files():
        if f.suffix in {".png", ".npz"} or not f.is_file() or f.name == "test_repo.py":
            continue
        try:
            text = f.read_text()
        except UnicodeDecodeError:
            continue
        hits += [f"{f.relative_to(ROOT)}: {m.group(0)}" for m in OUTSIDE.finditer(text)]
    assert not hits, hits[:20]


@pytest.mark.parametrize("name", ["LICENSE", "CITATION.cff", "docs/theory.md", "README.md"])
def test_self_contained_documents_exist(name):
    assert (ROOT / name).stat().st_size > 500


def test_docstrings_cite_existing_theory_sections():
    """Every ``docs/theory.md §N`` cited in the code is a section of the theory page."""
    theory = (ROOT / "docs" / "theory.md").read_text()
    sections = {int(m) for m in re.findall(r"^## (\d+)\. ", theory, flags=re.M)}
    cited = set()
    for f in [*ROOT.joinpath("rfmodel").rglob("*.py"), *ROOT.joinpath("tests").glob("*.py")]:
        cited |= {int(m) for m in re.findall(r"docs/theory\.md §(\d+)", f.read_text())}
    assert cited and cited <= sections, sorted(cited - sections)
    assert "2602.04774" in (ROOT / "README.md").read_text() + theory
