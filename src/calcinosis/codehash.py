"""The hash a shipped run records of the code its numbers depend on.

It is a hash of what the code says, not of where it lives: each Python module is hashed as
its syntax tree with the package's own import statements taken out, so moving a module into
another folder (which changes only how others import it, and how it imports them) leaves a
shipped run current, while any change to a statement, a constant or a docstring makes it
stale. Comments and layout do not count; other files are hashed byte for byte.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

PACKAGE = "calcinosis"


def content_hash(modules: Iterable[ModuleType], files: Iterable[Path] = ()) -> str:
    """SHA-256 over `modules` (in the order given) and then `files`."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update(_module_content(Path(str(module.__file__))) + b"\0")
    for path in files:
        digest.update(Path(path).read_bytes() + b"\0")
    return digest.hexdigest()


def _module_content(path: Path) -> bytes:
    tree = _WithoutOwnImports().visit(ast.parse(path.read_text(encoding="utf-8")))
    return ast.dump(tree).encode()


def _is_own_import(node: ast.AST) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or (node.module or "").split(".")[0] == PACKAGE
    if isinstance(node, ast.Import):
        return all(alias.name.split(".")[0] == PACKAGE for alias in node.names)
    return False


class _WithoutOwnImports(ast.NodeTransformer):
    """Drops `import calcinosis…` and `from calcinosis… import …` wherever they stand; a body
    left empty by that gets a `pass`, so the tree stays valid."""

    def generic_visit(self, node: ast.AST) -> ast.AST:
        for field, value in ast.iter_fields(node):
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                kept = [self.visit(child) for child in value if not _is_own_import(child)]
                setattr(node, field, kept or [ast.Pass()])
            elif isinstance(value, list):
                setattr(
                    node, field, [self.visit(v) if isinstance(v, ast.AST) else v for v in value]
                )
            elif isinstance(value, ast.AST):
                setattr(node, field, self.visit(value))
        return node
