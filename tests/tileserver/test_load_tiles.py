"""Cached vector tiles are answered on the fast path, with the same answer as the regular route."""

from __future__ import annotations

from pathlib import Path

from tests.tileserver.conftest import LOOPBACK, VADUZ, TestClient, tile_of, tile_settings
from tileserver.app import Server, create_app


def comparable(headers: dict[str, str]) -> dict[str, str]:
    """The headers of an answer but its request id (new each time)."""
    return {k: v for k, v in headers.items() if k != "x-request-id"}


def test_a_cached_tile_is_answered_on_the_fast_path_as_the_route_would(
    liechtenstein_url: str, tmp_path: Path
) -> None:
    app = create_app(tile_settings(liechtenstein_url, tmp_path))
    assert isinstance(app, Server)
    x, y = tile_of(*VADUZ, 14)
    path = f"/tiles/basemap/14/{x}/{y}.mvt"
    origin = {"Origin": "https://maps.example"}
    with TestClient(app, client=LOOPBACK) as client:
        assert app.fast is not None
        first = client.get(path, headers=origin)
        answered = app.fast.answered
        second = client.get(path, headers=origin)
        assert app.fast.answered == answered + 1
        assert (
            (second.status_code, second.content)
            == (first.status_code, first.content)
            == (
                200,
                first.content,
            )
        )
        assert comparable(dict(second.headers)) == comparable(dict(first.headers))
        assert second.headers["content-encoding"] == "gzip"
        assert second.headers["access-control-allow-origin"] == "*"
        assert len(second.headers["x-request-id"]) == 16
        # Unchanged: 304 without a body; without gzip: the identity bytes, another ETag.
        etag = second.headers["etag"]
        unchanged = client.get(path, headers={"If-None-Match": etag})
        assert unchanged.status_code == 304 and unchanged.content == b""
        assert "content-length" not in unchanged.headers
        plain = client.get(path, headers={"Accept-Encoding": "identity"})
        assert plain.status_code == 200 and plain.headers.get("content-encoding") is None
        assert plain.headers["etag"] == etag[:-1] + '-identity"'
        assert plain.content == second.content  # the client decoded the gzipped one
        assert int(plain.headers["content-length"]) == len(plain.content)
        assert app.fast.answered == answered + 3
        # A malformed path is left to the route, which says what is wrong.
        bad = client.get("/tiles/basemap/14/x/1.mvt")
        assert bad.status_code == 400 and "malformed" in bad.json()["detail"]
        metrics = client.get("/metrics").text
    assert 'fondplan_http_requests_total{route="tile",method="GET",status="200"} 3' in metrics
    assert 'fondplan_http_requests_total{route="tile",method="GET",status="304"} 1' in metrics
    # The fast path's miss is not counted again by the route.
    assert 'fondplan_tile_cache_total{level="memory",outcome="miss"} 1' in metrics
    assert 'fondplan_tile_cache_total{level="memory",outcome="hit"} 3' in metrics
