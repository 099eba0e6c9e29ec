"""Where fondplan finds its data folder, and commands that only read never make a cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from osmimport.paths import default_data_dir

ROOT = Path(__file__).resolve().parents[2]
FONDPLAN = [sys.executable, "-m", "tileserver.cli"]


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("FONDPLAN_DATABASE_URL", "FONDPLAN_DATA_DIR", "FONDPLAN_TEST_DATABASE_URL")
    }
    return {**env, **extra}


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FONDPLAN, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def test_default_is_the_checkout_var_else_the_user_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert default_data_dir() == ROOT / "var"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_data_dir(tmp_path / "site-packages") == tmp_path / "xdg" / "fondplan"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / ".local" / "share" / "fondplan"
    assert default_data_dir(tmp_path / "site-packages") == expected


def test_commands_run_elsewhere_use_the_checkout_cluster(tmp_path: Path, admin_url: str) -> None:
    if "FONDPLAN_DATA_DIR" in os.environ or "FONDPLAN_DATABASE_URL" in os.environ:
        pytest.skip("the test session's cluster is not the checkout's")
    info = json.loads((ROOT / "var" / "cluster.json").read_text())
    result = _run(["db", "url"], tmp_path, _env())
    assert result.returncode == 0, result.stderr
    assert f"127.0.0.1:{info['port']}/fondplan" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_read_only_commands_never_create_a_cluster(tmp_path: Path) -> None:
    empty = tmp_path / "data"
    env = _env(FONDPLAN_DATA_DIR=str(empty))
    for args in (["db", "url"], ["db", "status"], ["info"], ["communes"]):
        result = _run(args, tmp_path, env)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.stderr)
        assert str(empty) in lines[0] and "FONDPLAN_DATA_DIR" in lines[0], lines[0]
        assert not empty.exists() and list(tmp_path.iterdir()) == [], args
    result = _run(["route", "7.33,47.75", "7.34,47.75"], tmp_path, env)
    assert result.returncode == 1 and "no embedded PostGIS" in result.stderr
    assert list(tmp_path.iterdir()) == []
