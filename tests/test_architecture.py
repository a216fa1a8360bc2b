"""The engine's rooms and the direction of their dependencies (DESIGN.md, "Layout"), checked on the source.

`importer/` has the top modules (configuration, database, errors, logs, clock, privacy, …), `load/` (one dataset
from parse to both databases), `http/` (the app, status, metrics, façades) and `daemon/` (the worker loops), and
the entry points (`cli`, `launch`, `__main__`) that wire them together. A module may import its own room and the
rooms below it, never one above; within a room there is no import circle. Imports a type checker alone reads
(`if TYPE_CHECKING:`) do not count: they never run.
"""

import ast
from pathlib import Path

from tests.conftest import REPO

ENGINE = REPO / "importer"
RANKS = {"top": 0, "load": 1, "http": 2, "daemon": 3, "entry": 4}
ENTRY = {"importer.cli", "importer.launch", "importer.__main__"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room(module: str) -> str:
    if module in ENTRY:
        return "entry"
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in RANKS else "top"


def imports_of(path: Path, known: set[str], name: str = "") -> set[str]:
    """The engine modules `path` imports when it runs (at module level or inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for statement in node.body for child in ast.walk(statement))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {target for target in found if target in known and target != name}


def graph() -> dict[str, set[str]]:
    files = sorted(ENGINE.rglob("*.py"))
    known = {module_name(path) for path in files}
    return {module_name(path): imports_of(path, known, module_name(path)) for path in files}


def test_every_module_imports_only_its_own_room_and_the_rooms_below() -> None:
    upward = [f"{module} ({room(module)}) imports {target} ({room(target)})"
              for module, targets in graph().items() for target in sorted(targets)
              if RANKS[room(target)] > RANKS[room(module)]]
    assert upward == []


def circles(edges: dict[str, set[str]]) -> list[str]:
    """Every import circle found by a depth-first walk (a package's `__init__` importing nothing of its own)."""
    found: list[str] = []
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> None:
        if module in path:
            found.append(" -> ".join([*path[path.index(module):], module]))
            return
        if module in done:
            return
        path.append(module)
        for target in sorted(edges.get(module, ())):
            visit(target)
        path.pop()
        done.add(module)

    for module in sorted(edges):
        visit(module)
    return found


def test_there_is_no_import_circle() -> None:
    assert circles(graph()) == []


def test_the_checks_see_a_circle_and_an_upward_import(tmp_path: Path) -> None:
    """The two checks above, on a tiny tree that breaks both rules: they must not pass vacuously."""
    source = tmp_path / "example.py"
    source.write_text("from importer.http.app import create_app\nif TYPE_CHECKING:\n    from importer.cli import app\n")
    known = {"importer.http.app", "importer.http.app.create_app", "importer.cli", "importer.cli.app"}
    assert imports_of(source, known) == {"importer.http.app", "importer.http.app.create_app"}
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a -> b -> c -> a"]
    assert room("importer.load.pipeline") == "load" and room("importer.config") == "top"
    assert RANKS[room("importer.http.app")] > RANKS[room("importer.load.pipeline")]
