"""Every library the code imports by name is pinned in the requirements files, not left to whatever
version another library's dependency range happens to resolve to on the day of the install."""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PIN = r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)"  # name[extras]==version
OWN_PACKAGES = {"bench", "calls", "compat", "config", "emulator", "streaming", "tests"}
# What each requirements file is for: the code that runs, and on top of it the tests' own tools.
CODE = {
    "requirements.txt": ["bench", "calls", "compat", "config", "emulator", "streaming", "manage.py"],
    "requirements-dev.txt": ["tests"],
}


def imported_modules(paths: list[Path]) -> set[str]:
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.partition(".")[0])
    return names - OWN_PACKAGES - set(sys.stdlib_module_names)


def pinned(requirements: str) -> dict[str, str]:
    """The version pinned with == for each distribution (by its normalised name) in a requirements file
    and in the files it includes with -r."""
    text = (ROOT / requirements).read_text()
    pins = {_normal(name): version for name, version in re.findall(PIN, text, re.MULTILINE)}
    for included in re.findall(r"^-r\s+(\S+)", text, re.MULTILINE):
        pins |= pinned(included)
    return pins


def _normal(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def pinned_version(distribution: str) -> str | None:
    return pinned("requirements.txt").get(_normal(distribution))


@pytest.mark.parametrize("requirements", sorted(CODE))
def test_every_imported_library_is_pinned(requirements: str) -> None:
    files = [path for entry in CODE[requirements] for path in _python_files(ROOT / entry)]
    providers, pins = metadata.packages_distributions(), pinned(requirements)
    unpinned = {
        module: providers.get(module, [module])
        for module in imported_modules(files)
        if not any(_normal(distribution) in pins for distribution in providers.get(module, [module]))
    }
    assert unpinned == {}


def _python_files(entry: Path) -> list[Path]:
    return [entry] if entry.is_file() else sorted(entry.rglob("*.py"))
