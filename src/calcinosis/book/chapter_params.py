"""A chapter's parameters as its parameters cell declares them: the one source of which
names `calcinosis chapter NAME -p` accepts and of the type each value is read as.

`-p NAME=VALUE` arrives as text; it is read with the type of the declared default (a float
for `alpha = 0.05`, a list of floats for `effect_sizes = [-2.0]`, any Python literal where
the default is None), so the page gets the value it would get from its own cell. The analysis
parameters (`calcinosis.params`) reach the whole book; the others only this chapter's page.
"""

from __future__ import annotations

import ast
import math

from calcinosis.book.plan import Chapter
from calcinosis.errors import UsageError
from calcinosis.params import NAMES

# Set by the command, not by -p: the dataset (--data) and the build's results folder.
FOLDERS = ("data_dir", "results_dir")


def declared(chapter: Chapter) -> dict[str, object]:
    """Each parameter of `chapter` with its default (its source text when not a literal)."""
    import jupytext

    nb = jupytext.reads(chapter.source.decode("utf-8"), fmt=chapter.path.suffix.lstrip("."))
    cell = next(
        (c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])), None
    )
    defaults: dict[str, object] = {}
    for node in ast.parse(cell.source if cell else "").body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        value = getattr(node, "value", None)
        if isinstance(target, ast.Name) and value is not None:
            try:
                defaults[target.id] = ast.literal_eval(value)
            except ValueError:
                defaults[target.id] = ast.unparse(value)
    return defaults


def offered(chapter: Chapter) -> dict[str, object]:
    """The parameters `-p` may set for `chapter`, with their defaults."""
    return {k: v for k, v in declared(chapter).items() if k not in FOLDERS}


def split(chapter: Chapter, given: dict[str, str]) -> tuple[dict[str, str], dict[str, object]]:
    """`given` (NAME -> text) as (analysis parameters, this chapter's own, typed); a
    UsageError in one line for a name the chapter does not declare or a value of the wrong
    type."""
    defaults = offered(chapter)
    analysis: dict[str, str] = {}
    own: dict[str, object] = {}
    for name, text in given.items():
        if name in FOLDERS:
            raise UsageError(f"{name} is set by the command (--data), not by -p")
        if name not in defaults:
            raise UsageError(
                f"chapter '{chapter.name}' has no parameter {name} "
                f"(its parameters: {', '.join(defaults) or 'none'})"
            )
        if name in NAMES:
            analysis[name] = text
        else:
            own[name] = typed(name, text, defaults[name])
    return analysis, own


def typed(name: str, text: str, default: object) -> object:
    """`text` read as a value of the default's type."""
    try:
        value = _read(text, default)
    except ValueError as err:
        raise UsageError(
            f"parameter {name}: {text!r} is not {_kind(default)} ({err}; default {default!r})"
        ) from None
    return value


def _literal(text: str) -> object:
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise ValueError("not a Python literal") from None


def _read(text: str, default: object) -> object:
    if isinstance(default, bool):
        lowered = text.strip().lower()
        if lowered in ("true", "yes", "1"):
            return True
        if lowered in ("false", "no", "0"):
            return False
        raise ValueError("say true or false")
    if isinstance(default, int | float):
        value = _literal(text)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("not a number")
        if isinstance(default, int) and not isinstance(value, int):
            raise ValueError("not a whole number")
        if not math.isfinite(value):
            raise ValueError("not finite")
        return float(value) if isinstance(default, float) else value
    if isinstance(default, list | tuple):
        value = _literal(text)
        if not isinstance(value, list | tuple):
            raise ValueError("not a list")
        if default:
            value = [_read(repr(v), default[0]) for v in value]
        return type(default)(value)
    if isinstance(default, dict):
        value = _literal(text)
        if not isinstance(value, dict):
            raise ValueError("not a dict")
        return value
    if default is None:  # any literal; other text as text, unless it was meant as a literal
        try:
            return _literal(text)
        except ValueError:
            if text.strip()[:1] in ("[", "(", "{", '"', "'"):
                raise
            return text
    return text  # text, or a default that is not a literal


def _kind(default: object) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "a whole number"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, list | tuple):
        inner = f" of {_kind(default[0]).removeprefix('a ')}s" if default else ""
        return f"a list{inner}"
    return "a Python literal"
