"""Forwarded headers are believed from trusted proxies only; reflected answers vary by them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.tileserver.conftest import LOOPBACK, TestClient, tile_settings
from tileserver.app import create_app

FORGED = {"x-forwarded-host": "evil.example", "x-forwarded-proto": "https"}
#: Documents whose absolute URLs come from the request.
REFLECTING = [
    "/tiles/basemap.json",
    "/styles/colour.json",
    "/styles.json",
    "/styles/colour/tiles.json",
    "/styles/colour/wmts.xml",
    "/qgis-connections.xml",
]


@pytest.fixture(scope="module")
def app_settings(liechtenstein_url: str, tmp_path_factory: pytest.TempPathFactory) -> object:
    return tile_settings(liechtenstein_url, tmp_path_factory.mktemp("proxy"))


@pytest.fixture(scope="module")
def stranger(app_settings: object) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings), client=("203.0.113.7", 4000)) as client:  # type: ignore[arg-type]
        yield client


@pytest.mark.parametrize("path", REFLECTING)
def test_headers_from_an_untrusted_peer_are_ignored_and_answers_vary(
    stranger: TestClient, path: str
) -> None:
    response = stranger.get(path, headers=FORGED)
    assert response.status_code == 200, response.text
    assert "evil.example" not in response.text
    assert "http://testserver/" in response.text
    vary = {part.strip().lower() for part in response.headers["vary"].split(",")}
    assert {"host", "x-forwarded-host", "x-forwarded-proto"} <= vary


def test_headers_from_loopback_are_believed(app_settings: object) -> None:
    with TestClient(create_app(app_settings), client=LOOPBACK) as client:  # type: ignore[arg-type]
        doc = client.get("/tiles/basemap.json", headers=FORGED).json()
    assert doc["tiles"][0].startswith("https://evil.example/tiles/basemap/")


def test_trusted_networks_are_configurable(liechtenstein_url: str, tmp_path: Path) -> None:
    settings = tile_settings(liechtenstein_url, tmp_path, forwarded_allow_ips="10.0.0.0/8")
    with TestClient(create_app(settings), client=("10.2.3.4", 1)) as client:
        assert "evil.example" in client.get("/styles/colour.json", headers=FORGED).text
    with TestClient(create_app(settings), client=LOOPBACK) as client:
        assert "evil.example" not in client.get("/styles/colour.json", headers=FORGED).text


def test_public_url_needs_no_vary_on_host(liechtenstein_url: str, tmp_path: Path) -> None:
    settings = tile_settings(liechtenstein_url, tmp_path, public_url="https://tiles.example.org")
    with TestClient(create_app(settings), client=LOOPBACK) as client:
        response = client.get("/styles/colour/wmts.xml", headers=FORGED)
    assert "https://tiles.example.org/styles/colour/" in response.text
    assert "evil.example" not in response.text
    assert "x-forwarded-host" not in response.headers.get("vary", "").lower()


def test_nginx_keys_its_cache_on_the_host_it_forwards() -> None:
    text = (ROOT / "docker" / "nginx.conf").read_text()
    (key,) = re.findall(r"proxy_cache_key\s+\"([^\"]+)\";", text)
    host = re.search(r"proxy_set_header\s+Host\s+(\$\w+);", text)
    forwarded = re.search(r"proxy_set_header\s+X-Forwarded-Host\s+(\$\w+);", text)
    assert host and forwarded and host.group(1) == forwarded.group(1)
    assert host.group(1) in key
    # Every other host variable would let a client choose a different key than the upstream's.
    assert not (set(re.findall(r"\$\w*host\b", key)) - {host.group(1)})
