"""ASGI middleware of the tile server."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tileserver.metrics import Metrics


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
