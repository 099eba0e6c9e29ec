"""Cached vector tiles are answered on the fast path (by uvicorn's protocol itself), with the same
answer as the regular route."""

from __future__ import annotations

import gzip
import socket
import time
import urllib.request
from pathlib import Path

from tests.tileserver.conftest import (
    LOOPBACK,
    VADUZ,
    TestClient,
    serve_process,
    tile_of,
    tile_settings,
)
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


def exchange(sock: socket.socket, request: bytes, answers: int = 1) -> list[bytes]:
    """Send ``request`` (one or more pipelined) and read ``answers`` whole answers."""
    sock.sendall(request)
    stream = sock.makefile("rb")
    found = []
    for _ in range(answers):
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += stream.readline()
        size = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                size = int(line.split(b":")[1])
        is_head = request.startswith(b"HEAD") and len(found) == 0
        found.append(head + (b"" if is_head else stream.read(size)))
    return found


def parsed(answer: bytes) -> tuple[str, dict[bytes, bytes], bytes]:
    """Status line, headers (but the request id and date) and body of a raw answer."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers = dict(line.split(b": ", 1) for line in lines)
    for name in (b"x-request-id", b"date"):
        headers.pop(name, None)
    return status.decode(), headers, body


def get(path: str, *headers: str, method: str = "GET") -> bytes:
    extra = "".join(f"{header}\r\n" for header in headers)
    return f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode()


def fastpath_count(url: str, decision: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as answer:
        text = answer.read().decode()
    line = f'fondplan_fastpath_total{{decision="{decision}"}} '
    return float(text.split(line, 1)[1].split("\n", 1)[0])


def test_uvicorn_answers_a_cached_tile_itself_as_the_app_would(
    liechtenstein_url: str, tmp_path: Path
) -> None:
    x, y = tile_of(*VADUZ, 14)
    path = f"/tiles/basemap/14/{x}/{y}.mvt"
    gzip_origin = ("Accept-Encoding: gzip", "Origin: https://maps.example")
    with serve_process(liechtenstein_url, tmp_path, env={"FONDPLAN_DISABLE": "routing"}) as (
        _,
        url,
    ):
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            # A miss: the app answers; then the same tile from memory, by the protocol.
            (first,) = exchange(sock, get(path, *gzip_origin))
            before = fastpath_count(url, "immediate")
            (second,) = exchange(sock, get(path, *gzip_origin, "X-Request-ID: mine-1"))
            assert fastpath_count(url, "immediate") == before + 1
            assert parsed(second) == parsed(first)
            status, headers, body = parsed(second)
            assert status == "HTTP/1.1 200 OK" and headers[b"content-encoding"] == b"gzip"
            assert headers[b"access-control-allow-origin"] == b"*"
            assert headers[b"vary"] == b"Accept-Encoding, Origin"
            assert int(headers[b"content-length"]) == len(body) > 0
            assert b"\r\nx-request-id: mine-1\r\n" in second
            # HEAD: the length without the body; 304 for its ETag; identity bytes without gzip.
            (head,) = exchange(sock, get(path, *gzip_origin, method="HEAD"))
            assert parsed(head)[:2] == parsed(first)[:2] and parsed(head)[2] == b""
            etag = headers[b"etag"].decode()
            (unchanged,) = exchange(sock, get(path, gzip_origin[0], f"If-None-Match: {etag}"))
            assert parsed(unchanged)[0] == "HTTP/1.1 304 Not Modified"
            assert b"content-length" not in parsed(unchanged)[1]
            (plain,) = exchange(sock, get(path))
            assert b"content-encoding" not in parsed(plain)[1]
            assert gzip.decompress(body) == parsed(plain)[2]
            assert fastpath_count(url, "immediate") == before + 4
            # Pipelined behind a request the app answers, a cached tile waits its turn.
            (health, tile) = exchange(sock, get("/health") + get(path, *gzip_origin), 2)
            assert parsed(health)[1][b"content-type"] == b"application/json"
            assert parsed(tile) == parsed(first)
        # HTTP/1.0 (no keep-alive): the regular way, the same answer.
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            request = f"GET {path} HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n".encode()
            (old,) = exchange(sock, request)
            assert parsed(old)[2] == body
        with urllib.request.urlopen(f"{url}/metrics", timeout=30) as answer:
            metrics = answer.read().decode()
        assert 'fondplan_http_requests_total{route="tile",method="GET",status="200"}' in metrics
        assert 'fondplan_http_requests_total{route="tile",method="HEAD",status="200"} 1' in metrics


def test_over_uvicorns_connection_limit_a_cached_tile_gets_its_503(
    liechtenstein_url: str, tmp_path: Path
) -> None:
    x, y = tile_of(*VADUZ, 14)
    tile = get(f"/tiles/basemap/14/{x}/{y}.mvt", "Accept-Encoding: gzip")
    env = {"FONDPLAN_DISABLE": "routing", "FONDPLAN_LIMIT_CONCURRENCY": "2"}
    with serve_process(liechtenstein_url, tmp_path, env=env) as (_, url):
        address = ("127.0.0.1", int(url.rsplit(":", 1)[1]))
        with socket.create_connection(address, timeout=60) as first:
            assert all(parsed(exchange(first, tile)[0])[0].endswith("200 OK") for _ in range(2))
            with socket.create_connection(address, timeout=60) as second:
                # Open, its request unfinished: it counts once the server has taken it.
                second.sendall(b"GET /health HTTP/1.1\r\n")
                deadline = time.monotonic() + 30
                while True:
                    (answer,) = exchange(first, tile)
                    if parsed(answer)[0] == "HTTP/1.1 503 Service Unavailable":
                        break
                    assert time.monotonic() < deadline, "the tile was never refused"
                    time.sleep(0.05)
