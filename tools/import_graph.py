"""Print, for each sparkfs module, the sparkfs modules it imports (read with ``ast``,
nothing is imported), then the modules that import the facade (``sparkfs.store``).

    python tools/import_graph.py            # the whole graph, then the facade's importers
    python tools/import_graph.py --store    # only the modules importing sparkfs.store

An import counts wherever it is written: at the top, inside a function, or under
``if TYPE_CHECKING:``. ``from sparkfs import FeatureStore`` counts as importing
``sparkfs.store`` (that is where the name comes from).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "sparkfs"
FACADE = "sparkfs.store"
FACADE_NAMES = {"FeatureStore"}  # names sparkfs/__init__ re-exports from sparkfs.store


def module_name(path: Path, root: Path = ROOT) -> str:
    """``sparkfs/serving/online.py`` -> ``sparkfs.serving.online`` (packages: their
    ``__init__`` drops)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of ``package`` under ``root``, by dotted name."""
    return {module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}


def _resolve(current: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = current.split(".")
    if not is_package:
        base = base[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(path: Path, name: str, known: set[str]) -> Iterator[tuple[str, int]]:
    """(imported sparkfs module, line) for every import in the file at ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(name, is_package, node)
            if target != PACKAGE and not target.startswith(PACKAGE + "."):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:  # ``from . import store``: a module
                    yield sub, node.lineno
                elif target == PACKAGE and alias.name in FACADE_NAMES:
                    yield FACADE, node.lineno
                else:
                    yield target, node.lineno


def graph(root: Path = ROOT) -> dict[str, dict[str, list[int]]]:
    """module -> {imported sparkfs module -> lines}."""
    mods = modules(root)
    known = set(mods)
    out: dict[str, dict[str, list[int]]] = {}
    for name, path in mods.items():
        edges: dict[str, list[int]] = {}
        for target, line in imports(path, name, known):
            if target != name:
                edges.setdefault(target, []).append(line)
        out[name] = edges
    return out


def importers_of(target: str, g: dict[str, dict[str, list[int]]]) -> dict[str, list[int]]:
    """The modules importing ``target`` directly, with the lines."""
    return {m: edges[target] for m, edges in sorted(g.items()) if target in edges}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", action="store_true", help="only the importers of sparkfs.store")
    args = parser.parse_args(argv)
    g = graph()
    if not args.store:
        for name, edges in sorted(g.items()):
            print(f"{name}: {', '.join(sorted(edges)) or '-'}")
        print()
    print(f"modules importing {FACADE}:")
    for m, lines in importers_of(FACADE, g).items():
        print(f"  {m} (line {', '.join(map(str, lines))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
