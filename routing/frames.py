"""The routing server's wire format over Unix sockets: length-prefixed JSON requests, answers."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)

#: SO_PEERCRED's answer: process, user and group id.
PEER = struct.Struct("3i")
#: A frame's header: the length of the JSON request that follows.
REQUEST = struct.Struct(">I")
#: An answer's header: the HTTP status and the length of the body that follows.
ANSWER = struct.Struct(">HI")

#: What answers one request: its status and body, from the request and the sender's pid.
Handler = Callable[[dict[str, Any], int], Awaitable[tuple[int, bytes]]]


def encode_request(request: dict[str, Any]) -> bytes:
    """A request as one frame."""
    body = orjson.dumps(request)
    return REQUEST.pack(len(body)) + body


def encode_answer(status: int, body: bytes) -> bytes:
    """An answer as one frame."""
    return ANSWER.pack(status, len(body)) + body


def listen(path: Path) -> socket.socket:
    """A Unix socket listening at ``path``: connections wait in its backlog until served."""
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(socket.SOMAXCONN)
    return sock


def connection_handler(
    handle: Handler,
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """The callback of ``asyncio.start_unix_server`` answering each frame with ``handle``."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = peer_pid(writer)
        try:
            while True:
                (size,) = REQUEST.unpack(await reader.readexactly(REQUEST.size))
                request = orjson.loads(await reader.readexactly(size))
                status, body = await handle(request, peer)
                writer.write(encode_answer(status, body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            # The other end gone, or this process stopping.
            pass
        except Exception:
            log.exception("routing: a connection failed")
        finally:
            writer.close()

    return serve


def peer_pid(writer: asyncio.StreamWriter) -> int:
    """The process id at the other end of a Unix socket connection (0 if unknown)."""
    sock = writer.get_extra_info("socket")
    try:
        credentials = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, PEER.size)
    except (OSError, AttributeError):
        return 0
    pid: int = PEER.unpack(credentials)[0]
    return pid
