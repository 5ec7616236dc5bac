"""Every third-party module the ``idp`` package imports is installed by its declared
dependencies (directly, or as a dependency of one), so ``pip install stepup-idp`` works.

Fast and offline: reads pyproject.toml and the development virtualenv's installed metadata.
``tests/packaging/test_wheel.py`` proves the same end to end with a real install.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]


def imported_top_level_modules() -> dict[str, set[str]]:
    """Top-level module -> files importing it (absolute imports in idp/, stdlib excluded)."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / "idp").rglob("*.py")):
        tree = ast.parse(path.read_text("utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != "idp" and top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(path.relative_to(REPO).as_posix())
    return found


def declared_requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]
    return [Requirement(spec) for spec in project["dependencies"]]


def closure(requirements: list[Requirement]) -> set[str]:
    """Canonical names of the declared distributions and everything they pull in (as
    installed here, honouring markers and requested extras)."""
    seen: set[str] = set()
    pending = [(req, frozenset(req.extras)) for req in requirements]
    while pending:
        req, extras = pending.pop()
        name = canonicalize_name(req.name)
        key = f"{name}[{','.join(sorted(extras))}]"
        if key in seen:
            continue
        seen.add(key)
        seen.add(name)
        try:
            requires = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            continue
        for spec in requires:
            sub = Requirement(spec)
            if sub.marker is not None and not any(
                    sub.marker.evaluate({"extra": extra}) for extra in (*extras, "")):
                continue
            pending.append((sub, frozenset(sub.extras)))
    return {entry for entry in seen if "[" not in entry}


def test_declared_dependencies_are_installed() -> None:
    missing = []
    for req in declared_requirements():
        try:
            metadata.version(req.name)
        except metadata.PackageNotFoundError:
            missing.append(str(req))
    assert missing == []


def test_every_imported_module_comes_from_a_declared_dependency() -> None:
    imports = imported_top_level_modules()
    assert {"flask", "sqlalchemy", "authlib"} <= set(imports)  # the scan finds imports
    providers = metadata.packages_distributions()
    available = closure(declared_requirements())
    undeclared = {}
    for module, files in sorted(imports.items()):
        distributions = {canonicalize_name(d) for d in providers.get(module, [])}
        if not distributions & available:
            undeclared[module] = (sorted(distributions) or ["<not installed>"], sorted(files))
    assert undeclared == {}, "\n".join(
        f"{module} (distribution {', '.join(dists)}) imported by {', '.join(files)} "
        "is not in [project].dependencies nor required by one of them"
        for module, (dists, files) in undeclared.items())
