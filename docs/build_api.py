"""Build the API reference: one HTML page per module, from the docstrings, offline.

Usage (from the repository root, after ``pip install -e ".[docs]"``)::

    python docs/build_api.py            # writes docs/api/index.html and a page per module
    python docs/build_api.py --out DIR

It runs `pdoc <https://pdoc.dev>`_ (Google-style docstrings) on every public module of the
package; nothing is fetched from the network.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

#: Compatibility names of moved modules (documented under their new place).
SHIMS = {"rfmodel.segments", "rfmodel.ode", "rfmodel.fit", "rfmodel.transfer"}


def modules() -> list[str]:
    """Every public module of the package (no ``_private`` part, no compatibility name)."""
    import pkgutil

    import rfmodel

    names = ["rfmodel"]
    for m in pkgutil.walk_packages(rfmodel.__path__, "rfmodel."):
        if m.name not in SHIMS and not any(p.startswith("_") for p in m.name.split(".")):
            names.append(m.name)
    return names


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build rfmodel's API reference with pdoc.")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "api", help="folder")
    args = ap.parse_args(argv)
    try:
        import pdoc
        import pdoc.render
    except ImportError:
        print('docs/build_api.py needs pdoc: pip install -e ".[docs]"', file=sys.stderr)
        return 2
    pdoc.render.configure(docformat="google", show_source=True)
    # a package listed with its submodules adds them twice: one page each is what we want
    warnings.filterwarnings("ignore", message="The module specification")
    pdoc.pdoc(*modules(), output_directory=args.out)
    print(f"wrote {args.out / 'index.html'} ({len(list(args.out.rglob('*.html')))} pages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
