"""Each top-level package is this project's, not a same-named distribution from PyPI."""

import ast
import importlib
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("module", "folder"),
    [
        ("osmimport", "import/osmimport"),
        ("tileserver", "tileserver"),
        ("routing", "routing"),
        ("cities", "cities"),
    ],
)
def test_package_comes_from_this_project(module: str, folder: str) -> None:
    mod = importlib.import_module(module)
    assert mod.__file__ is not None
    assert Path(mod.__file__).resolve().parent == (ROOT / folder).resolve()
    assert (ROOT / folder / "py.typed").exists()


def test_console_script_dispatches_to_every_package() -> None:
    from tileserver.cli import all_commands

    names = {command.name for command in all_commands()}
    assert {"db"} <= names


#: Runtime dependencies no module imports: uvicorn picks them up by itself.
USED_WITHOUT_IMPORT = {
    "httptools": "uvicorn's HTTP parser (tileserver.server subclasses its protocol)",
    "uvloop": "uvicorn's event loop (loop='auto')",
}
PACKAGES = ["import/osmimport", "tileserver", "routing", "cities"]
FIRST_PARTY = {"osmimport", "tileserver", "routing", "cities"}


def _normalise(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def runtime_dependencies() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {
        _normalise(re.split(r"[<>=!~\[; ]", dep, maxsplit=1)[0]) for dep in project["dependencies"]
    }


def imported_modules() -> dict[str, set[str]]:
    """Top-level third-party modules the packages import, with the files importing them."""
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in FIRST_PARTY:
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def dependency_problems(declared: set[str], imported: dict[str, set[str]]) -> list[str]:
    """Imports no runtime dependency provides, and runtime dependencies nothing imports."""
    distributions = importlib.metadata.packages_distributions()
    problems: list[str] = []
    used: set[str] = set()
    for module, files in sorted(imported.items()):
        providers = {_normalise(d) for d in distributions.get(module, [])} & declared
        if not providers:
            problems.append(f"{module} (imported by {sorted(files)}) is not a dependency")
        used |= providers
    for unused in sorted(declared - used - set(USED_WITHOUT_IMPORT)):
        problems.append(f"{unused} is a runtime dependency nothing imports")
    return problems


def test_runtime_dependencies_match_the_imports() -> None:
    declared = runtime_dependencies()
    assert dependency_problems(declared, imported_modules()) == []
    assert set(USED_WITHOUT_IMPORT) <= declared


def test_the_check_sees_a_missing_and_an_unused_dependency() -> None:
    declared = (runtime_dependencies() - {"numpy"}) | {"psutil"}
    problems = dependency_problems(declared, imported_modules())
    assert len(problems) == 2, problems
    assert problems[0].startswith("numpy (imported by [")
    assert problems[1] == "psutil is a runtime dependency nothing imports"
