"""The server sends a response's head with its body in one write, through real uvicorn."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from tests.tileserver.conftest import free_port

#: How long the test app waits between a response's head and its body.
PAUSE = 0.3


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers ``/pause`` with a pause between head and body, ``/fail`` with a head only,
    ``/stream`` in three parts and ``/echo`` with the request body; anything else at once."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    body = b"hello"
    if path == "/echo":
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
    headers = [(b"content-type", b"text/plain")]
    if path != "/stream":
        headers.append((b"content-length", b"%d" % len(body)))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if path == "/fail":
        raise RuntimeError("the answer breaks off after its head")
    if path == "/pause":
        await asyncio.sleep(PAUSE)
    if path == "/stream":
        for part in (b"one ", b"two ", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    """A real uvicorn with the server's protocol (httptools, uvloop) serving ``app``."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="critical",
        http="tileserver.server:HeaderTimeoutProtocol",
        loop="uvloop",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_answer(sock: socket.socket) -> bytes:
    """Everything until the connection is closed."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_the_head_waits_for_the_body_and_leaves_with_it(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(b"GET /pause HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        started = time.monotonic()
        first = sock.recv(65536)
        waited = time.monotonic() - started
        rest = read_answer(sock)
    # uvicorn alone sends the head at once, and the body PAUSE seconds later.
    assert waited >= PAUSE * 0.8
    assert first.startswith(b"HTTP/1.1 200 OK\r\n")
    assert (first + rest).endswith(b"\r\n\r\nhello")


def test_keep_alive_answers_follow_each_other_whole(port: int) -> None:
    with connect(port) as sock:
        for _ in range(3):
            sock.sendall(b"GET /now HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while not answer.endswith(b"hello"):
                answer += sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
            assert answer.count(b"HTTP/1.1") == 1


def test_head_requests_get_their_head(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(b"HEAD /now HTTP/1.1\r\nHost: x\r\n\r\n")
        head = sock.recv(65536)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert head.endswith(b"\r\n\r\n")
        assert b"content-length: 5" in head.lower()
        # The connection goes on.
        sock.sendall(b"GET /now HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert read_answer(sock).endswith(b"hello")


def test_a_streamed_answer_arrives_whole(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = read_answer(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    assert body == b"4\r\none \r\n4\r\ntwo \r\n5\r\nthree\r\n0\r\n\r\n"


def test_an_answer_broken_off_after_its_head_still_sends_the_head(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(b"GET /fail HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b"\r\n\r\n")


def test_expect_continue_is_answered_before_the_body_is_sent(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"ping")
        answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b"\r\n\r\nping")
