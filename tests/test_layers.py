"""The package's layers: a module imports only its own layer and those below it, so the
folders can be read as the data flow (base → data → stats → simulate → report → book → cli).

Every import counts, at the top of a module, inside a function or under `TYPE_CHECKING`: a
lazy import is still a dependency, and a type-only one still ties the layers together.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from pathlib import Path

from calcinosis import paths

# Bottom to top; the base modules sit at the package's root, the command on top of it all.
LAYERS = ("base", "data", "stats", "simulate", "report", "book", "cli")


def layer(module: str) -> str:
    """The layer of a dotted module name (`calcinosis.stats.models` → `stats`)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "base"


def module_name(path: Path, src: Path) -> str:
    parts = path.relative_to(src).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, src: Path) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import of the package in `path`, wherever it is."""
    name = module_name(path, src)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                yield node.lineno, _imported(src, base, alias.name)


def _imported(src: Path, base: str, name: str) -> str:
    """The module `from base import name` imports: `base.name` when that is a module (always
    so from the package's root: its names are modules, or its version), else `base`."""
    candidate = src / base.replace(".", "/") / name
    is_module = candidate.with_suffix(".py").is_file() or candidate.is_dir()
    return f"{base}.{name}" if base == "calcinosis" or is_module else base


def upward_imports(src: Path) -> list[str]:
    """Every import of a higher layer by a lower one under `src`, as `file:line: why`."""
    found = []
    for path in sorted((src / "calcinosis").rglob("*.py")):
        importer = module_name(path, src)
        rank = LAYERS.index(layer(importer))
        for line, target in imports(path, src):
            if target.split(".")[0] == "calcinosis" and LAYERS.index(layer(target)) > rank:
                found.append(
                    f"{path.relative_to(src)}:{line}: {importer} ({layer(importer)}) imports "
                    f"{target} ({layer(target)}), a higher layer"
                )
    return found


def cycles(src: Path, package: str) -> list[list[str]]:
    """Import cycles among the modules of `package` (every import counts)."""
    graph: dict[str, set[str]] = {}
    for path in sorted((src / package.replace(".", "/")).rglob("*.py")):
        graph[module_name(path, src)] = {target for _, target in imports(path, src)}
    found, done = [], set()

    def visit(node: str, trail: list[str]) -> None:
        if node in trail:
            found.append(trail[trail.index(node) :] + [node])
            return
        if node in done or node not in graph:
            return
        for target in sorted(graph[node]):
            visit(target, trail + [node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])
    return found


def test_no_module_imports_a_higher_layer() -> None:
    found = upward_imports(paths.PACKAGE_DIR.parent)
    assert not found, "upward imports:\n" + "\n".join(found)


def test_every_layer_is_a_folder_and_the_base_is_the_root() -> None:
    for name in LAYERS[1:-1]:
        assert (paths.PACKAGE_DIR / name / "__init__.py").is_file(), name
    assert (paths.PACKAGE_DIR / "cli.py").is_file()


def test_the_build_has_no_import_cycle() -> None:
    """The build's parts (execute, process, staging, ...) import one another one way only."""
    assert cycles(paths.PACKAGE_DIR.parent, "calcinosis.book") == []


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")


def test_an_upward_import_anywhere_in_a_module_is_found(tmp_path: Path) -> None:
    write(
        tmp_path,
        "calcinosis/data/memo.py",
        """\
        from typing import TYPE_CHECKING

        from calcinosis import paths
        from calcinosis.data import schema

        if TYPE_CHECKING:
            from calcinosis.book.page import show


        def analysis():
            from calcinosis.stats import models

            return models
        """,
    )
    write(tmp_path, "calcinosis/stats/models.py", "from ..report import tables\n")
    write(tmp_path, "calcinosis/cli.py", "from calcinosis.book import build\n")
    assert upward_imports(tmp_path) == [
        "calcinosis/data/memo.py:7: calcinosis.data.memo (data) imports "
        "calcinosis.book.page (book), a higher layer",
        "calcinosis/data/memo.py:11: calcinosis.data.memo (data) imports "
        "calcinosis.stats.models (stats), a higher layer",
        "calcinosis/stats/models.py:1: calcinosis.stats.models (stats) imports "
        "calcinosis.report (report), a higher layer",
    ]


def test_a_base_module_importing_a_layer_is_found(tmp_path: Path) -> None:
    write(tmp_path, "calcinosis/formatting.py", "import calcinosis.simulate.power as p\n")
    write(tmp_path, "calcinosis/paths.py", "from calcinosis import report\n")
    found = upward_imports(tmp_path)
    assert len(found) == 2
    assert found[0].startswith("calcinosis/formatting.py:1: calcinosis.formatting (base)")
    assert found[1].endswith("imports calcinosis.report (report), a higher layer")


def test_a_cycle_through_a_lazy_import_is_found(tmp_path: Path) -> None:
    write(tmp_path, "calcinosis/book/execute.py", "from calcinosis.book.process import x\n")
    write(
        tmp_path,
        "calcinosis/book/process.py",
        "def f():\n    from calcinosis.book import execute\n",
    )
    assert cycles(tmp_path, "calcinosis.book") == [
        ["calcinosis.book.execute", "calcinosis.book.process", "calcinosis.book.execute"]
    ]
