"""Admission limits per kind of work, so one kind cannot starve the others of threads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
from starlette.types import ASGIApp, Receive, Scope, Send

from tileserver.errors import Unavailable, error_response
from tileserver.settings import LimitSettings

#: The kinds of work, each with its own limit. Tiles and raster are admitted by their
#: endpoints at a cache miss, so cached answers never queue behind uncached ones; plans by
#: theirs for the database lookup only, so requests waiting for a plan being drawn hold no
#: place (cities.routes bounds the drawings).
KINDS = ("tiles", "raster", "routes", "plans", "static", "ops")


class Overloaded(Unavailable):
    """Too much work of one kind is running and queued; the client should retry."""

    def __init__(self, kind: str, retry_after: int = 1) -> None:
        super().__init__(f"too many {kind} requests at once; retry shortly")
        self.kind = kind
        self.retry_after = retry_after


@dataclass
class Gate:
    """At most ``limit`` requests at once, ``queue`` more waiting up to ``wait`` seconds."""

    kind: str
    limit: int
    queue: int
    wait: float
    #: Requests refused (queue full or waited too long).
    refused: int = 0

    def __post_init__(self) -> None:
        self._limiter = anyio.CapacityLimiter(max(1, self.limit))

    @property
    def running(self) -> int:
        """Requests admitted and not finished."""
        return int(self._limiter.borrowed_tokens)

    @property
    def waiting(self) -> int:
        """Requests in the queue."""
        return int(self._limiter.statistics().tasks_waiting)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for a slot; Overloaded when the queue is full or the wait too long."""
        token = object()
        if self._limiter.available_tokens < 1 and self.waiting >= self.queue:
            self.refused += 1
            raise Overloaded(self.kind)
        try:
            with anyio.fail_after(self.wait):
                await self._limiter.acquire_on_behalf_of(token)
        except TimeoutError:
            self.refused += 1
            raise Overloaded(self.kind) from None
        try:
            yield
        finally:
            self._limiter.release_on_behalf_of(token)


class Limits:
    """One gate per kind of work, from the settings, in each of ``workers`` server
    processes."""

    def __init__(self, settings: LimitSettings, workers: int = 1) -> None:
        self.settings = settings
        self.gates = {
            kind: Gate(
                kind,
                settings.limit(kind, workers),
                settings.queue,
                settings.wait,
            )
            for kind in KINDS
        }

    def __getitem__(self, kind: str) -> Gate:
        return self.gates[kind]

    def threads(self) -> int:
        """Worker threads enough for every kind at its limit at once, and a few spare."""
        return sum(gate.limit for gate in self.gates.values()) + 4

    def describe(self) -> dict[str, dict[str, int]]:
        """Per kind: limit, running, waiting, refused (for /health and /metrics)."""
        return {
            kind: {
                "limit": gate.limit,
                "running": gate.running,
                "waiting": gate.waiting,
                "refused": gate.refused,
            }
            for kind, gate in self.gates.items()
        }

    def gauges(self) -> dict[str, float]:
        """Per kind: requests running, waiting and refused, for /metrics."""
        out: dict[str, float] = {}
        for kind, facts in self.describe().items():
            label = f'{{kind="{kind}"}}'
            out[f"fondplan_requests_running{label}"] = facts["running"]
            out[f"fondplan_requests_waiting{label}"] = facts["waiting"]
            out[f"fondplan_requests_limit{label}"] = facts["limit"]
            out[f"fondplan_requests_refused_total{label}"] = facts["refused"]
        return out


def kind_of(path: str) -> str | None:
    """The gate a request passes in the middleware; None for tiles, raster and plans (see
    KINDS)."""
    if path.startswith("/tiles/") and not path.endswith(".json"):
        return None
    if path.startswith("/styles/") and path.endswith(".png"):
        return None
    if path.startswith(("/route/", "/nearest/", "/table/")):
        return "routes"
    if path.startswith("/townplans/") and not path.endswith((".js", ".json")):
        return None
    if path in ("/health", "/metrics"):
        return "ops"
    return "static"


class LimitMiddleware:
    """Admits each request through the gate of its kind; refused ones get 503 + Retry-After."""

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Wait for a slot of the request's kind, then pass it on."""
        kind = kind_of(scope["path"]) if scope["type"] == "http" else None
        if kind is None:
            await self.app(scope, receive, send)
            return
        try:
            async with self.limits[kind].slot():
                await self.app(scope, receive, send)
        except Overloaded as exc:
            await error_response(exc)(scope, receive, send)
