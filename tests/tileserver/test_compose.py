"""docker-compose.yml is checked by a real Compose parser (no Docker engine needed)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.conftest import ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"


def compose_command() -> list[str]:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.skip("no Compose implementation installed (apt-get install docker-compose)")


def resolved_config(env: dict[str, str] | None = None) -> dict[str, object]:
    result = subprocess.run(
        [*compose_command(), "-f", str(COMPOSE_FILE), "--profile", "cache", "config"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", **(env or {})},
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, object] = yaml.safe_load(result.stdout)
    return config


def test_compose_file_is_valid_and_wires_import_then_serve() -> None:
    config = resolved_config({"POSTGRES_PASSWORD": "s3cret"})
    services = config["services"]
    assert isinstance(services, dict)
    assert {"db", "import", "fondplan", "nginx"} <= set(services)
    assert services["db"]["image"].startswith("postgis/postgis")
    serve = services["fondplan"]
    assert serve["command"][:2] == ["fondplan", "serve"]
    assert serve["depends_on"]["import"]["condition"] == "service_completed_successfully"
    assert serve["depends_on"]["db"]["condition"] == "service_healthy"
    assert "fondplan import" in " ".join(services["import"]["command"])
    url = serve["environment"]["FONDPLAN_DATABASE_URL"]
    assert url == "postgresql://fondplan:s3cret@db:5432/fondplan"
    assert services["nginx"]["profiles"] == ["cache"]
    published = [str(p.get("published", p) if isinstance(p, dict) else p) for p in serve["ports"]]
    assert any("8080" in p for p in published)


def test_compose_parser_rejects_a_broken_file(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace("    image: postgis", "    imagе: postgis"))
    result = subprocess.run(
        [*compose_command(), "-f", str(broken), "config"], capture_output=True, text=True
    )
    assert result.returncode != 0


def test_compose_has_no_default_database_password() -> None:
    result = subprocess.run(
        [*compose_command(), "-f", str(COMPOSE_FILE), "config"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin"},
    )
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr
