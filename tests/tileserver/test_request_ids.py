"""Every answer carries a request id; a server error is logged once, with it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.tileserver.conftest import LOOPBACK, TestClient, tile_settings
from tileserver.app import create_app


def broken(request: Request) -> Response:
    """A route with a bug."""
    raise KeyError("a bug")


def test_ids_are_answered_and_kept_when_sane(tile_client: TestClient) -> None:
    first = tile_client.get("/styles/colour.json").headers["x-request-id"]
    second = tile_client.get("/styles/colour.json").headers["x-request-id"]
    assert first != second and len(first) == 16
    given = tile_client.get("/health", headers={"x-request-id": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    odd = tile_client.get("/health", headers={"x-request-id": "<script>"})
    assert odd.headers["x-request-id"] != "<script>"


def test_an_unhandled_error_is_logged_once_with_its_id(
    liechtenstein_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(
        tile_settings(liechtenstein_url, tmp_path), extra_routes=[Route("/broken", broken)]
    )
    with TestClient(app, client=LOOPBACK, raise_server_exceptions=False) as client:
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            response = client.get("/broken", headers={"x-request-id": "req-500"})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error"}
    assert "a bug" not in response.text
    records = [r for r in caplog.records if "req-500" in r.getMessage()]
    assert len(records) == 1 and records[0].exc_info is not None


def test_a_503_is_logged_once_without_leaking(
    make_database: Callable[[], str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from osmimport.database import drop_database

    url = make_database()
    with TestClient(create_app(tile_settings(url, tmp_path)), client=LOOPBACK) as client:
        caplog.clear()
        # Captured from the drop on: the version watcher may meet the failure (and log its
        # cause) before the request does.
        with caplog.at_level(logging.WARNING):
            drop_database(url.rsplit("/", 1)[0] + "/postgres", url.rsplit("/", 1)[1])
            response = client.get(
                "/tiles/basemap/14/8625/5753.mvt", headers={"x-request-id": "r503"}
            )
    assert response.status_code == 503
    # The driver's message: the database is gone, or (a kept connection) it was closed.
    causes = ("does not exist", "closed the connection")
    assert not any(cause in response.text for cause in causes)
    records = [r for r in caplog.records if "r503" in r.getMessage()]
    assert len(records) == 1
    # The cause is logged: with the request, or by the guard when the version watcher met the
    # failure first (then the request is refused at once, as the database is known to be down).
    assert any(cause in r.getMessage() for r in caplog.records for cause in causes)
