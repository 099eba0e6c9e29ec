"""The /townplans routes of the server app (its "townplans" route group, MapLibre Native maps)."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import httpx
import pypdf

from osmimport.settings import DatabaseSettings
from tileserver.app import ROUTE_GROUPS, create_app
from tileserver.settings import CacheSettings, Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def get_all(url: str, paths: list[str], cache_dir: Path) -> list[httpx.Response]:
    settings = Settings(
        database=DatabaseSettings(database_url=url), cache=CacheSettings(dir=cache_dir)
    )
    groups = [group for group in ROUTE_GROUPS if group.name == "townplans"]
    with TestClient(create_app(settings, groups=groups)) as client:
        return [client.get(path) for path in paths]


def test_townplan_pdf_over_http(liechtenstein_url: str, tmp_path: Path) -> None:
    query = "?paper=A4&orientation=portrait&layout=index-below"
    first, again, communes, script = get_all(
        liechtenstein_url,
        [
            f"/townplans/Planken.pdf{query}",
            f"/townplans/planken.pdf{query}",
            "/townplans/communes.json",
            "/townplans/panel.js",
        ],
        tmp_path,
    )
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/pdf"
    reader = pypdf.PdfReader(io.BytesIO(first.content))
    assert "Planken" in (reader.pages[0].extract_text() or "")
    assert again.content == first.content  # the same data version: served from the cache
    assert "Vaduz" in {c["name"] for c in communes.json()}
    assert script.status_code == 200 and "Plan de ville" in script.text


def test_townplan_http_errors(liechtenstein_url: str, tmp_path: Path) -> None:
    unknown, bad_paper, bad_format, bad_dpi = get_all(
        liechtenstein_url,
        [
            "/townplans/Vadus.pdf",
            "/townplans/Vaduz.pdf?paper=B5",
            "/townplans/Vaduz.svg",
            "/townplans/Vaduz.pdf?dpi=abc",
        ],
        tmp_path,
    )
    assert unknown.status_code == 404
    assert "Vaduz" in unknown.json()["suggestions"] and "detail" in unknown.json()
    assert bad_paper.status_code == 400 and "paper" in bad_paper.json()["detail"]
    assert bad_format.status_code == 404
    assert bad_dpi.status_code == 400
