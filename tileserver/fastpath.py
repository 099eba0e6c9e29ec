"""Requests answered on the event loop ahead of the middleware stack, for sub-millisecond APIs."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.types import Scope, Send

from tileserver.metrics import Metrics

#: Gets the request path and query string; answers (status, JSON body), or None to let the
#: regular route answer (e.g. when the answer needs the database or a worker thread).
FastHandler = Callable[[str, str], tuple[int, bytes] | None]
#: Gets the request path and query string; estimates the work of the answer, in units of
#: about a millisecond on the event loop.
FastCost = Callable[[str, str], float]

#: Work (see FastCost) the event loop takes on for one request; more goes to the threads.
DEFAULT_BUDGET = 3.0


@dataclass(frozen=True)
class FastRoute:
    """GET and HEAD requests under ``prefix`` are offered to ``handler`` before the app's
    middleware and routing, when ``cost`` says they are cheap; ``name`` labels them in the
    metrics."""

    prefix: str
    name: str
    handler: FastHandler
    cost: FastCost | None = None


class FastPaths:
    """Answers fast routes with the headers the middleware would add: CORS, gzip, metrics."""

    def __init__(
        self,
        routes: Sequence[FastRoute],
        metrics: Metrics,
        cors_origins: Sequence[str],
        gzip_minimum: int,
        budget: float = DEFAULT_BUDGET,
    ) -> None:
        self.routes = tuple(routes)
        self.budget = budget
        #: Requests answered here, and those handed to the threads for their cost.
        self.answered = 0
        self.deferred = 0
        self.metrics = metrics
        self.any_origin = "*" in cors_origins
        self.origins = frozenset(origin.encode("latin-1") for origin in cors_origins)
        self.gzip_minimum = gzip_minimum

    async def handle(self, scope: Scope, send: Send) -> bool:
        """Answer the request if a fast route takes it; False leaves it to the app."""
        path: str = scope["path"]
        method: str = scope["method"]
        if method not in ("GET", "HEAD"):
            return False
        for route in self.routes:
            if path.startswith(route.prefix):
                break
        else:
            return False
        query = scope["query_string"].decode("latin-1")
        try:
            if route.cost is not None and route.cost(path, query) > self.budget:
                # Heavy: the regular route answers it in a worker thread.
                self.deferred += 1
                return False
            answer = route.handler(path, query)
        except Exception:
            # The regular route runs the same code and reports the failure its own way.
            return False
        if answer is None:
            return False
        self.answered += 1
        status, body = answer
        request_headers = dict(scope["headers"])
        headers = [(b"content-type", b"application/json")]
        origin = request_headers.get(b"origin")
        if origin is not None:
            if self.any_origin:
                headers.append((b"access-control-allow-origin", b"*"))
            elif origin in self.origins:
                headers += [(b"access-control-allow-origin", origin), (b"vary", b"Origin")]
            headers.append((b"access-control-expose-headers", b"ETag, Content-Length"))
        if len(body) >= self.gzip_minimum:
            headers.append((b"vary", b"Accept-Encoding"))
            if b"gzip" in request_headers.get(b"accept-encoding", b""):
                body = gzip.compress(body, compresslevel=6, mtime=0)
                headers.append((b"content-encoding", b"gzip"))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body if method == "GET" else b""})
        self.metrics.request(route.name, method, status)
        return True

    def gauges(self) -> dict[str, float]:
        """Fast path decisions, for /metrics."""
        return {
            'fondplan_fastpath_total{decision="answered"}': float(self.answered),
            'fondplan_fastpath_total{decision="deferred"}': float(self.deferred),
        }
