"""ASGI middleware of the tile server."""

from __future__ import annotations

import ipaddress
import logging
import re
import uuid
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tileserver.metrics import Metrics

log = logging.getLogger("tileserver.errors")


def _route_label(scope: Scope) -> str:
    endpoint = scope.get("endpoint")
    if endpoint is None:
        return "unmatched"
    return str(getattr(endpoint, "__name__", None) or type(endpoint).__name__)


class MetricsMiddleware:
    """Counts every HTTP answer by route (the endpoint's name), method and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on and count the status it was answered with."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.request(_route_label(scope), str(scope.get("method", "")), status)


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


def request_id(scope: Scope) -> str:
    """The id of the request (from ``X-Request-ID`` when sane, else a new one)."""
    found = scope.get(REQUEST_ID)
    if found is None:
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        found = given if _REQUEST_ID.match(given) else uuid.uuid4().hex[:16]
        scope[REQUEST_ID] = found
    return str(found)


class RequestIds:
    """Gives each request an id, answered in ``X-Request-ID``; logs an unhandled error once.

    An error no handler took is logged here, with the id and the traceback, and answered 500
    JSON; it does not reach the server, which would log it a second time without the id.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on with its id; answer 500 for an error nobody handled."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope).encode("latin-1")
        started = False

        async def send_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"x-request-id", rid)],
                }
            await send(message)

        try:
            await self.app(scope, receive, send_id)
        except Exception:
            log.exception("request %s %s failed", rid.decode(), scope.get("path", ""))
            if not started:
                body = b'{"detail":"internal server error"}'
                await send_id(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
