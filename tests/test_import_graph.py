"""The project's apps import each other in one direction only: `calls` is the domain and knows nothing of
`streaming` (the websocket transport), and no two apps need each other. Read from the source with `ast`,
so an import inside a function counts as much as one at the top of a module."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("calls", "streaming", "config", "compat", "emulator")


def imported_apps(path: Path) -> set[str]:
    """The project apps a module imports, other than its own."""
    own = path.relative_to(ROOT).parts[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return {name.split(".")[0] for name in names} & set(APPS) - {own}


def app_modules(app: str) -> list[Path]:
    return sorted((ROOT / app).rglob("*.py"))


def app_graph() -> dict[str, set[str]]:
    return {app: set().union(*(imported_apps(path) for path in app_modules(app))) for app in APPS}


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle between apps as [a, b, ..., a], or [] when there is none."""
    visiting: list[str] = []
    done: set[str] = set()

    def visit(app: str) -> list[str]:
        if app in visiting:
            return [*visiting[visiting.index(app) :], app]
        if app in done:
            return []
        visiting.append(app)
        for imported in sorted(graph[app]):
            if found := visit(imported):
                return found
        visiting.pop()
        done.add(app)
        return []

    for app in APPS:
        if found := visit(app):
            return found
    return []


def test_every_app_has_modules() -> None:
    assert all(app_modules(app) for app in APPS)  # a renamed app would otherwise pass unread


def test_calls_never_imports_streaming() -> None:
    offenders = [str(path.relative_to(ROOT)) for path in app_modules("calls") if "streaming" in imported_apps(path)]
    assert offenders == []


def test_no_import_cycle_between_apps() -> None:
    assert cycle(app_graph()) == []


def test_a_cycle_is_found() -> None:
    assert cycle({"calls": {"streaming"}, "streaming": {"calls"}}) == ["calls", "streaming", "calls"]
