"""The Dockerfile, checked without a container engine: packages, pycairo's build, user, health."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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


#: Distributions PyPI has no wheel of for this platform, and the Debian packages that build them.
BUILT_FROM_SOURCE = {"pycairo": {"libcairo2-dev", "pkg-config", "gcc", "python3-dev"}}


def _runtime_distributions() -> set[str]:
    """The runtime dependencies and everything they need, as installed here."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pending = [Requirement(dep).name for dep in project["dependencies"]]
    seen: set[str] = set()
    while pending:
        name = canonicalize_name(pending.pop())
        if name in seen:
            continue
        seen.add(name)
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return seen


def _built_here(name: str) -> bool:
    """Whether the installed distribution was built on this machine (no PyPI wheel fitted)."""
    wheel = importlib.metadata.distribution(name).read_text("WHEEL") or ""
    tags = re.findall(r"^Tag: (\S+)", wheel, re.MULTILINE)
    return any(tag.endswith("linux_x86_64") and "manylinux" not in tag for tag in tags)


def test_only_packages_the_image_can_build_come_without_a_wheel() -> None:
    distributions = _runtime_distributions()
    assert {"starlette", "osmium", "pycairo", "anyio"} <= distributions
    built = {name for name in distributions if _built_here(name)}
    assert built <= set(BUILT_FROM_SOURCE), f"built from source, not in the image: {built}"
    for name in built:
        assert BUILT_FROM_SOURCE[name] <= dockerfile_packages(), name


def _engine() -> str | None:
    for engine in ("docker", "podman"):
        if shutil.which(engine) is None:
            continue
        info = subprocess.run([engine, "info"], capture_output=True, timeout=30)
        if info.returncode == 0:
            return engine
    return None


@pytest.mark.slow
def test_the_image_builds_where_a_container_engine_runs() -> None:
    engine = _engine()
    if engine is None:
        pytest.skip("no running container engine here (the checks above stand in for it)")
    built = subprocess.run(
        [engine, "build", "--quiet", "--tag", "fondplan-test", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert built.returncode == 0, built.stderr[-4000:]
    user = subprocess.run(
        [engine, "run", "--rm", "--entrypoint", "id", "fondplan-test", "-u"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert user.stdout.strip() not in ("", "0"), user.stderr
