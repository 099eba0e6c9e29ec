"""Requests answered on the event loop ahead of routing and admission, for sub-millisecond APIs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from tileserver.middleware import Answers

#: Gets the request path and query string; answers (status, JSON body), or None to let the
#: regular route answer (e.g. when the answer needs the database or a worker thread).
FastHandler = Callable[[str, str], tuple[int, bytes] | None]
#: A whole answer: status, headers (lower-case names, content type included) and body.
FastAnswer = tuple[int, list[tuple[bytes, bytes]], bytes]
#: Gets the request's ASGI scope (headers included); answers it whole, or None to let the
#: regular route answer.
ScopeHandler = Callable[[Scope], FastAnswer | None]
_JSON = (b"content-type", b"application/json")
#: Gets the request path and query string; estimates the work of the answer, in units of
#: about a millisecond on the event loop.
FastCost = Callable[[str, str], float]

#: Work (see FastCost) the event loop takes on for one request; more goes to the threads.
DEFAULT_BUDGET = 3.0
#: Where the answer waits in the ASGI scope for the innermost app of the fast path.
ANSWER = "fondplan.fast_answer"


@dataclass(frozen=True)
class FastRoute:
    """GET and HEAD requests under ``prefix`` are offered to ``handler`` (a JSON answer from
    the path and query) or ``answer`` (a whole answer from the scope) before the app's
    routing and admission limits, when ``cost`` says they are cheap; ``name`` labels them in
    the metrics, as the regular route's endpoint name does. ``immediate`` ones are offered
    even earlier, by the HTTP protocol as their request's headers arrive (see
    :meth:`FastPaths.immediate`)."""

    prefix: str
    name: str
    handler: FastHandler | None = None
    cost: FastCost | None = None
    answer: ScopeHandler | None = None
    immediate: bool = False

    def respond(self, scope: Scope) -> FastAnswer | None:
        """The whole answer to the request, or None for the regular route."""
        if self.answer is not None:
            return self.answer(scope)
        assert self.handler is not None
        found = self.handler(scope["path"], scope["query_string"].decode("latin-1"))
        if found is None:
            return None
        status, body = found
        return status, [_JSON], body


async def _send_answer(scope: Scope, receive: Receive, send: Send) -> None:
    """The innermost app of the fast path: sends the answer the route left in the scope; a
    body's length is added, except to 204 and 304 (which have none)."""
    status, headers, body = scope[ANSWER]
    if status not in (204, 304):
        headers = [*headers, (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body if scope["method"] == "GET" else b""})


def wrap(app: ASGIApp, middleware: Sequence[Middleware]) -> ASGIApp:
    """``app`` behind ``middleware``, the first outermost (as Starlette builds its stack)."""
    for cls, args, kwargs in reversed(middleware):
        app = cls(app, *args, **kwargs)
    return app


class FastPaths:
    """Answers fast routes through the same response middleware as the app (request ids,
    metrics, CORS, gzip), skipping only its routing and admission limits."""

    def __init__(
        self,
        routes: Sequence[FastRoute],
        middleware: Sequence[Middleware],
        budget: float = DEFAULT_BUDGET,
    ) -> None:
        self.routes = tuple(routes)
        self.budget = budget
        #: Requests answered here, and those handed to the threads for their cost.
        self.answered = 0
        self.deferred = 0
        #: Requests answered by the HTTP protocol itself (see :meth:`immediate`).
        self.immediately = 0
        self._respond = wrap(_send_answer, middleware)
        # The one middleware that completes answers, when it is all there is: immediate
        # answers are completed by it without the ASGI round.
        self._answers = self._respond if isinstance(self._respond, Answers) else None
        # What the metrics middleware reads a route's label from.
        self._endpoints = {route.prefix: SimpleNamespace(__name__=route.name) for route in routes}

    def _route(self, scope: Scope) -> FastRoute | None:
        if scope["method"] not in ("GET", "HEAD"):
            return None
        path: str = scope["path"]
        for route in self.routes:
            if path.startswith(route.prefix):
                return route
        return None

    def immediate(self, scope: Scope) -> FastAnswer | None:
        """The whole answer, headers completed as the middleware would, of a request an
        ``immediate`` route answers at once (a tile in memory); None leaves it to the app.

        Called by the HTTP protocol (:class:`tileserver.server.HeaderTimeoutProtocol`) as the
        request's headers arrive: the answer leaves in the same callback, never queued on the
        event loop behind the tasks of other requests.
        """
        route = self._route(scope)
        if route is None or not route.immediate or self._answers is None:
            return None
        try:
            answer = route.respond(scope)
        except Exception:
            return None
        if answer is None:
            return None
        status, headers, body = answer
        scope["endpoint"] = self._endpoints[route.prefix]
        if status not in (204, 304):
            headers = [*headers, (b"content-length", b"%d" % len(body))]
        completed = self._answers.complete(scope, status, headers, len(body))
        if completed is None:
            return None
        self.immediately += 1
        return status, completed, body if scope["method"] == "GET" else b""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer the request if a fast route takes it; False leaves it to the app."""
        route = self._route(scope)
        if route is None:
            return False
        path: str = scope["path"]
        try:
            if route.cost is not None:
                if route.cost(path, scope["query_string"].decode("latin-1")) > self.budget:
                    # Heavy: the regular route answers it in a worker thread.
                    self.deferred += 1
                    return False
            answer = route.respond(scope)
        except Exception:
            # The regular route runs the same code and reports the failure its own way.
            return False
        if answer is None:
            return False
        self.answered += 1
        scope[ANSWER] = answer
        scope["endpoint"] = self._endpoints[route.prefix]
        await self._respond(scope, receive, send)
        return True

    def gauges(self) -> dict[str, float]:
        """Fast path decisions, for /metrics."""
        return {
            'fondplan_fastpath_total{decision="answered"}': float(self.answered),
            'fondplan_fastpath_total{decision="deferred"}': float(self.deferred),
            'fondplan_fastpath_total{decision="immediate"}': float(self.immediately),
        }
