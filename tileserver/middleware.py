"""ASGI middleware of the tile server."""

from __future__ import annotations

import gzip
import ipaddress
import logging
import os
import random
import re
import zlib
from collections.abc import Sequence
from functools import partial
from typing import Any

import anyio.to_thread
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tileserver.metrics import Metrics

log = logging.getLogger("tileserver.errors")


#: Request headers only a trusted proxy may set.
FORWARDED_HEADERS = frozenset(
    {
        b"forwarded",
        b"x-forwarded-for",
        b"x-forwarded-host",
        b"x-forwarded-proto",
        b"x-forwarded-prefix",
        b"x-forwarded-port",
    }
)
#: What an answer whose absolute URLs come from the request varies by.
REFLECTED_VARY = b"Host, X-Forwarded-Host, X-Forwarded-Proto, X-Forwarded-Prefix"
#: Set in the scope by code that wrote the request's own host into the answer.
REFLECTED = "fondplan.reflected_host"


class TrustedProxies:
    """Which peers may set ``X-Forwarded-*``: addresses or networks, ``*`` for any."""

    def __init__(self, allowed: Sequence[str]) -> None:
        self.any = "*" in allowed
        self.networks = tuple(
            ipaddress.ip_network(item.strip(), strict=False)
            for item in allowed
            if item.strip() and item.strip() != "*"
        )

    def trusts(self, host: str | None) -> bool:
        """Whether the peer ``host`` is a trusted proxy."""
        if self.any:
            return True
        if not host:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)


class ProxyHeaders:
    """Applies ``X-Forwarded-*`` from trusted peers and drops them from anyone else.

    From a trusted proxy, ``X-Forwarded-Proto`` sets the scheme and ``X-Forwarded-For`` the
    client (the last address the proxies did not add); the host and prefix headers stay for
    :func:`tileserver.routes.public_url`. Answers that reflected the request's host get a
    ``Vary`` on the headers they were built from, so shared caches keep them apart.
    """

    def __init__(self, app: ASGIApp, trusted: TrustedProxies) -> None:
        self.app = app
        self.trusted = trusted

    def rewrite(self, scope: Scope) -> None:
        """Apply or drop the forwarded headers of ``scope`` in place."""
        client = scope.get("client")
        peer = client[0] if client else None
        headers: list[tuple[bytes, bytes]] = list(scope.get("headers") or [])
        if not self.trusted.trusts(peer):
            scope["headers"] = [(k, v) for k, v in headers if k not in FORWARDED_HEADERS]
            return
        found = dict(headers)
        proto = found.get(b"x-forwarded-proto", b"").decode("latin-1").split(",")[-1].strip()
        if proto.lower() in ("http", "https"):
            secure = proto.lower() == "https"
            if scope["type"] == "websocket":
                scope["scheme"] = "wss" if secure else "ws"
            else:
                scope["scheme"] = "https" if secure else "http"
        chain = found.get(b"x-forwarded-for", b"").decode("latin-1")
        hops = [hop.strip() for hop in chain.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self.trusted.trusts(hop) or hop == hops[0]:
                scope["client"] = (hop, 0)
                break

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Rewrite the scope, then add ``Vary`` to answers that reflected the host."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        self.rewrite(scope)

        async def send_vary(message: Message) -> None:
            if message["type"] == "http.response.start" and scope.get(REFLECTED):
                headers = list(message.get("headers", []))
                headers.append((b"vary", REFLECTED_VARY))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_vary)


#: Where the request id is kept in the ASGI scope.
REQUEST_ID = "fondplan.request_id"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
#: Where new request ids come from: seeded per process, so workers do not repeat each other's.
_ids = random.Random(os.urandom(16))


def request_id(scope: Scope) -> str:
    """The id of the request (from ``X-Request-ID`` when sane, else a new one)."""
    found = scope.get(REQUEST_ID)
    if found is None:
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        # Not os.urandom: a system call lets go of the GIL, and taking it back on a busy server
        # waits for the switch interval of a computing thread, for every request.
        found = given if _REQUEST_ID.match(given) else f"{_ids.getrandbits(64):016x}"
        scope[REQUEST_ID] = found
    return str(found)


class Answers:
    """What every answer gets on its way out, in one pass (the fast path's too): its request
    id (``X-Request-ID``), CORS headers, gzip when the client accepts it and the body is worth
    it, and its count in the metrics by route, method and status.

    CORS follows Starlette's ``CORSMiddleware`` configured by ``cors`` (which answers the
    preflight requests); compression is done in a worker thread from ``thread_size`` bytes on.
    An error no handler took is logged here once, with the id and the traceback, and answered
    500 JSON; it does not reach the server, which would log it again without the id.
    """

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        cors: CORSMiddleware,
        gzip_minimum: int,
        gzip_level: int,
        thread_size: int,
        exclude_types: Sequence[str],
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.cors = cors
        simple = cors.simple_headers.items()
        self.simple_cors = [(k.lower().encode(), v.encode()) for k, v in simple]
        self.gzip_minimum = gzip_minimum
        self.gzip_level = gzip_level
        self.thread_size = thread_size
        self.exclude_types = frozenset(t.encode() for t in exclude_types)

    def cors_headers(self, origin: bytes | None) -> list[tuple[bytes, bytes]]:
        """The CORS headers of a (non-preflight) answer to a request from ``origin``."""
        if origin is None:
            return []
        if self.cors.allow_all_origins:
            return self.simple_cors
        if self.cors.is_allowed_origin(origin.decode("latin-1")):
            return [*self.simple_cors, (b"access-control-allow-origin", origin)]
        return []

    def _compressible(self, start: Message) -> bool:
        """Whether the answer may be compressed, by its status and headers."""
        if start["status"] in (204, 206, 304):
            return False
        for name, value in start["headers"]:
            if name == b"content-encoding":
                return False
            if name == b"content-type" and value.partition(b";")[0].strip() in self.exclude_types:
                return False
        return True

    async def _gzip(self, body: bytes) -> bytes:
        compress = partial(gzip.compress, body, self.gzip_level, mtime=0)
        if len(body) >= self.thread_size:
            return await anyio.to_thread.run_sync(compress)
        return compress()

    def complete(
        self, scope: Scope, status: int, headers: list[tuple[bytes, bytes]], size: int
    ) -> list[tuple[bytes, bytes]] | None:
        """The headers of a whole answer of ``size`` body bytes as :meth:`__call__` would send
        them, and the answer counted; None when it would compress the body (not done here)."""
        origin, accepts_gzip, _ = _request_facts(scope)
        start: Message = {"type": "http.response.start", "status": status, "headers": headers}
        varies = self._compressible(start) and size >= self.gzip_minimum
        if varies and accepts_gzip:
            return None
        rid = request_id(scope).encode("latin-1")
        start["headers"] = [*headers, (b"x-request-id", rid), *self.cors_headers(origin)]
        names = (b"Accept-Encoding", b"Origin") if varies else (b"Origin",)
        self.metrics.request(_route_label(scope), str(scope["method"]), status)
        done: list[tuple[bytes, bytes]] = _vary(start, *names)["headers"]
        return done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, completing its answer's headers and body on the way out."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin, accepts_gzip, preflight = _request_facts(scope)
        rid = request_id(scope).encode("latin-1")
        if preflight and origin is not None and scope["method"] == "OPTIONS":
            response = self.cors.preflight_response(request_headers=Headers(scope=scope))
            response.headers["x-request-id"] = rid.decode("latin-1")
            await response(scope, receive, send)
            self.metrics.request(_route_label(scope), "OPTIONS", response.status_code)
            return
        extra = [(b"x-request-id", rid), *self.cors_headers(origin)]
        status = 500
        started = False
        held: Message | None = None
        compressor: Any = None

        async def send_answer(message: Message) -> None:
            nonlocal status, started, held, compressor
            kind = message["type"]
            if kind == "http.response.start":
                started = True
                status = int(message["status"])
                message = {**message, "headers": [*message.get("headers", []), *extra]}
                if self._compressible(message):
                    # Whether to compress depends on the body's size: the headers wait for it.
                    held = message
                    return
                await send(_vary(message, b"Origin"))
                return
            if kind != "http.response.body" and held is not None:
                # No body to decide on (a file sent by path): the answer goes as it is.
                start, held = held, None
                await send(_vary(start, b"Origin"))
            if kind != "http.response.body" or (held is None and compressor is None):
                await send(message)
                return
            body: bytes = message.get("body", b"")
            more = bool(message.get("more_body", False))
            if held is not None:
                start, held = held, None
                if not more and len(body) < self.gzip_minimum:
                    await send(_vary(start, b"Origin"))
                    await send(message)
                    return
                start = _vary(start, b"Accept-Encoding", b"Origin")
                if not accepts_gzip:
                    await send(start)
                    await send(message)
                    return
                headers = [(k, v) for k, v in start["headers"] if k != b"content-length"]
                headers.append((b"content-encoding", b"gzip"))
                if more:
                    compressor = zlib.compressobj(self.gzip_level, zlib.DEFLATED, 31)
                else:
                    body = await self._gzip(body)
                    headers.append((b"content-length", b"%d" % len(body)))
                await send({**start, "headers": headers})
            if compressor is not None:
                body = compressor.compress(body)
                body += compressor.flush(zlib.Z_SYNC_FLUSH if more else zlib.Z_FINISH)
            await send({**message, "body": body})

        try:
            await self.app(scope, receive, send_answer)
        except Exception:
            log.exception("request %s %s failed", rid.decode(), scope.get("path", ""))
            if not started:
                body = b'{"detail":"internal server error"}'
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"%d" % len(body)),
                ]
                start = {"type": "http.response.start", "status": 500, "headers": headers}
                await send_answer(start)
                await send_answer({"type": "http.response.body", "body": body})
        finally:
            self.metrics.request(_route_label(scope), str(scope.get("method", "")), status)


def _request_facts(scope: Scope) -> tuple[bytes | None, bool, bool]:
    """The request's ``Origin``, whether it accepts gzip, whether it is a CORS preflight."""
    origin: bytes | None = None
    accepts_gzip = False
    preflight = False
    for name, value in scope["headers"]:
        if name == b"origin":
            origin = value
        elif name == b"accept-encoding":
            accepts_gzip = b"gzip" in value
        elif name == b"access-control-request-method":
            preflight = True
    return origin, accepts_gzip, preflight


def _vary(start: Message, *names: bytes) -> Message:
    """The start message with ``names`` added to its one ``Vary`` header."""
    values: list[bytes] = []
    headers = []
    for key, value in start["headers"]:
        if key == b"vary":
            values += [part.strip() for part in value.split(b",") if part.strip()]
        else:
            headers.append((key, value))
    known = {value.lower() for value in values}
    values += [name for name in names if name.lower() not in known]
    headers.append((b"vary", b", ".join(values)))
    return {**start, "headers": headers}


def _route_label(scope: Scope) -> str:
    endpoint = scope.get("endpoint")
    if endpoint is None:
        return "unmatched"
    return str(getattr(endpoint, "__name__", None) or type(endpoint).__name__)
