"""The /townplans routes of the server app (its "townplans" route group, MapLibre Native maps)."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from pathlib import Path

import httpx
import pypdf
from PIL import Image

from cities.paper import PAPERS
from osmimport.settings import DatabaseSettings
from tileserver.app import ROUTE_GROUPS, create_app
from tileserver.settings import CacheSettings, Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def get_all(url: str, paths: list[str], cache_dir: Path) -> list[httpx.Response]:
    """The answers to ``paths`` in order; a path starting with "HEAD " is asked with HEAD."""
    settings = Settings(
        database=DatabaseSettings(database_url=url), cache=CacheSettings(dir=cache_dir)
    )
    groups = [group for group in ROUTE_GROUPS if group.name == "townplans"]
    with TestClient(create_app(settings, groups=groups)) as client:
        return [
            client.head(path[5:]) if path.startswith("HEAD ") else client.get(path)
            for path in paths
        ]


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
    assert first.headers["x-page-count"] == str(len(reader.pages))
    assert "Planken" in (reader.pages[0].extract_text() or "")
    assert again.content == first.content  # the same data version: served from the cache
    assert "Vaduz" in {c["name"] for c in communes.json()}
    assert script.status_code == 200 and "Plan de ville" in script.text


def test_townplan_http_errors(liechtenstein_url: str, tmp_path: Path) -> None:
    """The cities errors raised by the routes, answered by the server's one error map."""
    unknown, bad_paper, bad_format, bad_dpi, big_dpi, bad_layout, bad_orientation = get_all(
        liechtenstein_url,
        [
            "/townplans/Vadus.pdf",
            "/townplans/Vaduz.pdf?paper=B5",
            "/townplans/Vaduz.svg",
            "/townplans/Vaduz.pdf?dpi=abc",
            "/townplans/Vaduz.pdf?dpi=1200",
            "/townplans/Vaduz.pdf?layout=side",
            "/townplans/Vaduz.pdf?orientation=up",
        ],
        tmp_path,
    )
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == "no commune named 'Vadus' in the loaded data; closest: Vaduz"
    assert bad_paper.status_code == 400 and "paper" in bad_paper.json()["detail"]
    assert bad_format.status_code == 404
    assert bad_format.json() == {"detail": "ask for /townplans/{commune}.pdf or .png"}
    assert bad_dpi.status_code == 400
    assert bad_dpi.json() == {"detail": "dpi must be a whole number, got 'abc'"}
    assert big_dpi.status_code == 400 and big_dpi.json() == {"detail": "dpi may be at most 300"}
    assert bad_layout.status_code == 400 and bad_layout.json() == {
        "detail": "unknown layout 'side'; use one of index-side, index-below, index-pages"
    }
    assert bad_orientation.status_code == 400 and bad_orientation.json() == {
        "detail": "unknown orientation 'up'; use one of portrait, landscape, best"
    }


def test_townplan_papers_are_served_and_each_is_accepted(
    liechtenstein_url: str, tmp_path: Path
) -> None:
    """``papers.json`` lists the sizes of cities/paper.py; the plan route takes every one."""
    answers = get_all(
        liechtenstein_url,
        ["/townplans/papers.json"] + [f"HEAD /townplans/Planken.pdf?paper={p}" for p in PAPERS],
        tmp_path,
    )
    papers = answers[0]
    assert papers.status_code == 200 and papers.headers["content-type"] == "application/json"
    assert papers.json() == {
        "default": "A3",
        "papers": [
            {"name": "A4", "width_mm": 210.0, "height_mm": 297.0},
            {"name": "A3", "width_mm": 297.0, "height_mm": 420.0},
            {"name": "A2", "width_mm": 420.0, "height_mm": 594.0},
            {"name": "A1", "width_mm": 594.0, "height_mm": 841.0},
            {"name": "A0", "width_mm": 841.0, "height_mm": 1189.0},
        ],
    }
    assert [head.status_code for head in answers[1:]] == [200] * len(PAPERS)


def test_townplan_http_unavailable_and_incomplete(
    make_database: Callable[[], str], mulhouse_url: str, tmp_path: Path
) -> None:
    """Nothing loaded: 503 with Retry-After; a boundary the extract cuts: 422."""
    (empty,) = get_all(make_database(), ["/townplans/Vaduz.pdf"], tmp_path / "empty")
    assert empty.status_code == 503
    assert empty.json() == {"detail": "no data loaded: run `fondplan import FILE` first"}
    assert empty.headers["retry-after"] == "5"
    (cut,) = get_all(mulhouse_url, ["/townplans/Mulhouse.pdf"], tmp_path / "mulhouse")
    assert cut.status_code == 422
    assert "the boundary of 'Mulhouse' is incomplete" in cut.json()["detail"]


def test_townplan_png_pages_and_head(liechtenstein_url: str, tmp_path: Path) -> None:
    query = "paper=A4&orientation=portrait&layout=index-pages&dpi=72"
    base = f"/townplans/Planken.png?{query}"
    head_before, first, head_after, zero, text = get_all(
        liechtenstein_url,
        [f"HEAD {base}", base, f"HEAD {base}", f"{base}&page=0", f"{base}&page=two"],
        tmp_path,
    )
    # HEAD before the plan exists answers without drawing it: no page count, no body.
    assert head_before.status_code == 200 and head_before.content == b""
    assert head_before.headers["content-type"] == "image/png"
    assert "x-page-count" not in head_before.headers
    assert first.status_code == 200
    pages = int(first.headers["x-page-count"])
    assert pages >= 2  # the index has pages of its own
    assert Image.open(io.BytesIO(first.content)).size == (round(210 / 25.4 * 72), 842)
    # HEAD after: from the cache, with the first page's length and the page count.
    assert head_after.headers["x-page-count"] == str(pages)
    assert head_after.headers["content-length"] == str(len(first.content))
    assert head_after.headers["etag"] == first.headers["etag"]
    assert zero.status_code == 400 and "page" in zero.json()["detail"]
    assert text.status_code == 400
    last, beyond, pdf_page = get_all(
        liechtenstein_url,
        [f"{base}&page={pages}", f"{base}&page={pages + 1}", "/townplans/Planken.pdf?page=2"],
        tmp_path,
    )
    assert last.status_code == 200 and last.content != first.content
    assert last.headers["x-page-count"] == str(pages)
    Image.open(io.BytesIO(last.content)).verify()
    assert beyond.status_code == 404 and f"{pages} page(s)" in beyond.json()["detail"]
    assert pdf_page.status_code == 400
