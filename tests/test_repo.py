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


# ----------------------------------------------------------------------------- layers
#: The layers of the package, lowest first: a module imports only modules of its own layer or
#: lower ones (README, Architecture). Compatibility names (rfmodel.segments, …) and the
#: package's own __init__ (lazy top-level names) are outside the layering.
LAYERS = [
    ("rfmodel._x64", "rfmodel.compile_cache", "rfmodel.problem", "rfmodel.random_features",
     "rfmodel.scaling", "rfmodel.results", "rfmodel.optim", "rfmodel.plotting"),
    ("rfmodel.dynamics", "rfmodel.simulate"),
    ("rfmodel.schedules",),
    ("rfmodel.control",),
    ("rfmodel.practice",),
    ("rfmodel.runner", "rfmodel.experiments", "rfmodel.figures"),
    ("rfmodel.cli",),
]  # fmt: skip
SHIMS = {"rfmodel", "rfmodel.segments", "rfmodel.ode", "rfmodel.fit", "rfmodel.transfer"}


def _import_graph() -> dict[str, set[str]]:
    """Module → the rfmodel modules it imports (module-level and function-level imports)."""
    import ast

    mods = {}
    for f in ROOT.joinpath("rfmodel").rglob("*.py"):
        parts = list(f.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = f
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        pkg = m.split(".") if f.name == "__init__.py" else m.split(".")[:-1]
        for n in ast.walk(ast.parse(f.read_text())):
            if isinstance(n, ast.ImportFrom):
                base = n.module or ""
                if n.level:
                    base = ".".join(
                        pkg[: len(pkg) - n.level + 1] + ([n.module] if n.module else [])
                    )
                targets = [base] + [f"{base}.{a.name}" for a in n.names]
            elif isinstance(n, ast.Import):
                targets = [a.name for a in n.names]
            else:
                continue
            edges[m] |= {t for t in targets if t in mods and t != m and not m.startswith(t + ".")}
    return edges


def _layer(module: str) -> int:
    for i, group in enumerate(LAYERS):
        if any(module == g or module.startswith(g + ".") for g in group):
            return i
    raise AssertionError(f"{module} belongs to no layer of tests/test_repo.py::LAYERS")


def test_layers_import_only_downwards_and_have_no_cycles():
    edges = _import_graph()
    up = [
        f"{m} (layer {_layer(m)}) imports {t} (layer {_layer(t)})"
        for m, ts in edges.items()
        if m not in SHIMS
        for t in ts
        if t not in SHIMS and _layer(t) > _layer(m)
    ]
    assert not up, up

    def reaches(a: str, b: str, seen: set[str]) -> bool:
        seen.add(a)
        return a == b or any(reaches(c, b, seen) for c in edges[a] if c not in seen)

    cycles = sorted(
        {tuple(sorted((a, b))) for a in edges for b in edges[a] if reaches(b, a, set())}
    )
    assert not cycles, cycles


def test_no_module_imports_another_modules_private_names():
    import ast

    bad = []
    for f in ROOT.joinpath("rfmodel").rglob("*.py"):
        for n in ast.walk(ast.parse(f.read_text())):
            # (``from . import _module``: a package's private module, used inside its package)
            if isinstance(n, ast.ImportFrom) and n.module not in ("__future__", None):
                bad += [f"{f.name}: {n.module}.{a.name}" for a in n.names if a.name[0] == "_"
                        and not a.name.endswith("__")]  # fmt: skip
    assert not bad, bad


@pytest.mark.slow
def test_api_reference_builds_offline(tmp_path):
    """README's docs command: one page per public module, from the docstrings."""
    import sys

    out = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "build_api.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    pages = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.html")}
    for m in ("rfmodel.html", "rfmodel/control/solver.html", "rfmodel/practice/fit.html",
              "rfmodel/dynamics/steps.html", "rfmodel/schedules/families.html"):  # fmt: skip
        assert m in pages, sorted(pages)
    assert "optimize_schedule" in (tmp_path / "rfmodel" / "control" / "solver.html").read_text()
