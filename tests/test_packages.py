"""Each top-level package is this project's, not a same-named distribution from PyPI."""

import importlib
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
