"""The Dockerfile, checked without a container engine: packages, pycairo's build, user, health."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
SETUP = (ROOT / "scripts" / "setup.sh").read_text()
#: What setup.sh installs for development only (database, tests, tools), not for serving.
DEVELOPMENT_ONLY = {
    "postgresql-15",
    "postgresql-15-postgis-3",
    "postgresql-15-pgrouting",
    "postgresql-contrib",
    "osm2pgsql",
    "chromium",
    "gdal-bin",
    "poppler-utils",
    "docker-compose",
    "qgis",
    "python3-qgis",
}


def dockerfile_packages() -> set[str]:
    args = dict(re.findall(r'^ARG (\w+)="([^"]*)"', DOCKERFILE, re.MULTILINE))
    (install,) = re.findall(r"apt-get install -y --no-install-recommends(.*?)&&", DOCKERFILE, re.S)
    words = install.replace("\\", " ").split()
    packages: set[str] = set()
    for word in words:
        if word.startswith("$"):
            packages.update(args[word[1:]].split())
        else:
            packages.add(word)
    return packages


def setup_packages() -> set[str]:
    (body,) = re.findall(r"APT_PACKAGES=\((.*?)\)", SETUP, re.S)
    return set(body.split())


def test_the_image_installs_what_setup_installs_for_serving() -> None:
    missing = setup_packages() - DEVELOPMENT_ONLY - dockerfile_packages()
    assert not missing, f"in scripts/setup.sh but not in the Dockerfile: {sorted(missing)}"


def test_pycairo_can_be_built_in_the_image() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    if '"pycairo' not in pyproject:
        pytest.skip("pycairo is no longer a dependency")
    needs = {"libcairo2-dev", "pkg-config", "gcc", "python3-dev"}
    assert needs <= dockerfile_packages()
    assert "libcairo2" in dockerfile_packages(), "the runtime library must stay after the purge"


def test_every_package_exists_in_debian_12() -> None:
    if shutil.which("apt-cache") is None:
        pytest.skip("no apt-cache here")
    result = subprocess.run(
        ["apt-cache", "show", "--no-all-versions", *sorted(dockerfile_packages())],
        capture_output=True,
        text=True,
    )
    found = set(re.findall(r"^Package: (\S+)", result.stdout, re.MULTILINE))
    assert dockerfile_packages() <= found, sorted(dockerfile_packages() - found)


def test_the_server_runs_unprivileged_with_a_healthcheck() -> None:
    users = re.findall(r"^USER (\S+)", DOCKERFILE, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert DOCKERFILE.index("USER") < DOCKERFILE.index("CMD [")
    (check,) = re.findall(r"^HEALTHCHECK .*?CMD (.*)$", DOCKERFILE, re.MULTILINE | re.S)
    assert "/health" in check and "timeout" in check
