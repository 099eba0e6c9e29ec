"""The /townplans routes through a real ASGI app (httpx over the ASGI transport)."""

from __future__ import annotations

import asyncio
import io

import httpx
import pypdf
from starlette.applications import Starlette

from cities.render import CairoMapRenderer
from cities.routes import TownplanSettings, townplan_routes


def get_all(url: str, paths: list[str]) -> list[httpx.Response]:
    settings = TownplanSettings(workers=1, queue=2, timeout=120)
    app = Starlette(routes=townplan_routes(url, CairoMapRenderer(url), settings))

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [await client.get(path) for path in paths]

    return asyncio.run(run())


def test_townplan_pdf_over_http(liechtenstein_url: str) -> None:
    query = "?paper=A4&orientation=portrait&layout=index-below"
    first, again, communes, script = get_all(
        liechtenstein_url,
        [
            f"/townplans/Planken.pdf{query}",
            f"/townplans/planken.pdf{query}",
            "/townplans/communes.json",
            "/townplans/panel.js",
        ],
    )
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/pdf"
    reader = pypdf.PdfReader(io.BytesIO(first.content))
    assert "Planken" in (reader.pages[0].extract_text() or "")
    assert again.content == first.content  # the same data version: served from the cache
    assert "Vaduz" in {c["name"] for c in communes.json()}
    assert script.status_code == 200 and "Plan de ville" in script.text


def test_townplan_http_errors(liechtenstein_url: str) -> None:
    unknown, bad_paper, bad_format, bad_dpi = get_all(
        liechtenstein_url,
        [
            "/townplans/Vadus.pdf",
            "/townplans/Vaduz.pdf?paper=B5",
            "/townplans/Vaduz.svg",
            "/townplans/Vaduz.pdf?dpi=abc",
        ],
    )
    assert unknown.status_code == 404
    assert "Vaduz" in unknown.json()["suggestions"] and "detail" in unknown.json()
    assert bad_paper.status_code == 400 and "paper" in bad_paper.json()["detail"]
    assert bad_format.status_code == 404
    assert bad_dpi.status_code == 400
