"""A server worker's side of the routing server: queries over its Unix socket, kept open."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from routing.frames import ANSWER, encode_request
from routing.settings import RoutingSettings

log = logging.getLogger(__name__)

#: The answer while the routing server cannot be reached (it is restarted by `fondplan serve`).
UNAVAILABLE = (
    b'{"code":"ServiceUnavailable","message":"the routing server is not available; try again"}'
)
#: Connections kept open between requests.
IDLE_CONNECTIONS = 8
#: Seconds a worker waits for the routing server to get a new data version ready.
PREPARE_TIMEOUT = 600.0
#: Seconds ``/health`` waits for the routing server.
HEALTH_TIMEOUT = 2.0

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class RoutingClient:
    """Talks to the routing server at ``path``: queries from the event loop, without blocking
    it; the switch hook and ``/health`` from threads."""

    def __init__(self, path: Path, settings: RoutingSettings) -> None:
        self.path = path
        self.settings = settings
        self._idle: list[Connection] = []
        self._started = False
        self.requests = 0
        self.failures = 0

    async def answer(
        self,
        version: str,
        method: str,
        profile: str,
        coordinates: str,
        query: Sequence[tuple[str, str]],
    ) -> tuple[int, bytes]:
        """The status and JSON body of an OSRM request, from the routing server (503 when it
        cannot be reached or does not answer in time)."""
        frame = encode_request(
            {
                "op": "query",
                "version": version,
                "method": method,
                "profile": profile,
                "coordinates": coordinates,
                "query": list(query),
            }
        )
        self.requests += 1
        try:
            return await asyncio.wait_for(
                self._exchange(frame), self.settings.routing_server_timeout
            )
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
            self.failures += 1
            log.warning("routing server at %s: %s", self.path, exc or type(exc).__name__)
            return 503, UNAVAILABLE

    async def _exchange(self, frame: bytes) -> tuple[int, bytes]:
        # A kept connection may be from a server since restarted: then once more on a new one.
        while self._idle:
            connection = self._idle.pop()
            try:
                return await self._send(connection, frame)
            except (OSError, asyncio.IncompleteReadError):
                continue
        return await self._send(await asyncio.open_unix_connection(str(self.path)), frame)

    async def _send(self, connection: Connection, frame: bytes) -> tuple[int, bytes]:
        reader, writer = connection
        try:
            writer.write(frame)
            await writer.drain()
            status, size = ANSWER.unpack(await reader.readexactly(ANSWER.size))
            body = await reader.readexactly(size)
        except BaseException:
            writer.close()
            raise
        if len(self._idle) < IDLE_CONNECTIONS:
            self._idle.append(connection)
        else:
            writer.close()
        return status, body

    def _call(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        """A control request, blocking (from a thread)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(self.path))
            sock.sendall(encode_request(request))
            _, size = ANSWER.unpack(_receive(sock, ANSWER.size))
            answer: dict[str, Any] = orjson.loads(_receive(sock, size))
            return answer

    def prepare(self, version: str) -> None:
        """The tile service's switch hook: the routing server loads ``version`` before the
        worker switches to it; at start it loads without the tiles waiting."""
        wait, self._started = self._started, True
        try:
            self._call(
                {"op": "prepare", "version": version, "wait": wait},
                PREPARE_TIMEOUT if wait else HEALTH_TIMEOUT,
            )
        except OSError as exc:
            # Routes then load the version on their first request, or the new server at start.
            log.warning("routing server at %s cannot prepare %s: %s", self.path, version, exc)

    def health(self, version: str) -> dict[str, Any]:
        """The routing server's state for ``version`` (``/health``)."""
        try:
            return self._call({"op": "health", "version": version}, HEALTH_TIMEOUT)
        except OSError as exc:
            return {
                "ready": False,
                "loading": False,
                "error": f"the routing server does not answer: {exc}",
            }

    def gauges(self) -> dict[str, float]:
        """The requests sent and those failed, for /metrics."""
        return {
            "fondplan_routing_server_requests_total": float(self.requests),
            "fondplan_routing_server_failures_total": float(self.failures),
        }


def _receive(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise ConnectionError("the routing server closed the connection")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)
