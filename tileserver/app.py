"""The Starlette application factory: route groups, middleware, and the lifespan."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio.to_thread
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute, Mount
from starlette.types import Receive, Scope, Send

from tileserver.context import AppContext
from tileserver.errors import exception_handlers
from tileserver.fastpath import FastAnswer, FastPaths
from tileserver.limits import LimitMiddleware, Limits
from tileserver.metrics import Metrics
from tileserver.middleware import Answers, ProxyHeaders, TrustedProxies
from tileserver.server import (
    LoopWatch,
    die_with_parent,
    freeze_startup_objects,
    gc_gauges,
    set_header_timeout,
    start_worker_threads,
)
from tileserver.service import TileService
from tileserver.settings import Settings
from tileserver.sources import PostGISSource, TileSource, archive_source

RouteFactory = Callable[[AppContext], Sequence[BaseRoute]]

log = logging.getLogger(__name__)

#: Smallest answer worth compressing, in bytes.
GZIP_MINIMUM_SIZE = 1024
#: Answers from this size on are compressed in a worker thread.
GZIP_THREAD_SIZE = 32 * 1024


@dataclass(frozen=True)
class RouteGroup:
    """Routes built by ``factory`` (a callable or ``"module:function"``) mounted at ``prefix``.

    The factory gets the :class:`AppContext` and returns routes relative to ``prefix``. Groups
    sharing a prefix share one Mount, in the order listed; ``prefix=""`` puts the routes at the
    root. ``FONDPLAN_DISABLE=name,...`` switches groups off by name.
    """

    name: str
    prefix: str
    factory: str | RouteFactory

    def build(self, context: AppContext) -> Sequence[BaseRoute]:
        """Import the factory if needed and call it."""
        factory = self.factory
        if isinstance(factory, str):
            module, _, attr = factory.partition(":")
            factory = getattr(importlib.import_module(module), attr)
        return factory(context)


#: The route groups of the server, in matching order. A package adds its HTTP API with one line,
#: e.g. ``RouteGroup("routing", "", "routing.api:routes")``.
ROUTE_GROUPS: tuple[RouteGroup, ...] = (
    RouteGroup("tiles", "/tiles", "tileserver.routes.tiles:routes"),
    RouteGroup("raster", "", "tileserver.raster_routes:routes"),
    RouteGroup("styles", "", "tileserver.routes.styles:routes"),
    RouteGroup("assets", "", "tileserver.routes.assets:routes"),
    RouteGroup("ops", "", "tileserver.routes.ops:routes"),
    RouteGroup("viewer", "", "tileserver.routes.viewer:routes"),
    RouteGroup("routing", "", "routing.http:group_routes"),
    RouteGroup("townplans", "", "tileserver.townplan_renderer:routes"),
)


class Server(Starlette):
    """The Starlette app, answering its fast routes before the middleware stack.

    Forwarded headers are checked first (:class:`ProxyHeaders`), for the fast routes too.
    """

    fast: FastPaths | None = None
    proxies: ProxyHeaders | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check forwarded headers, then offer HTTP requests to the fast routes first."""
        if self.proxies is None:
            self.proxies = ProxyHeaders(self._dispatch, TrustedProxies(()))
        await self.proxies(scope, receive, send)

    def immediate(self, scope: Scope) -> FastAnswer | None:
        """The whole answer of a request answered at once as its headers arrive (a cached
        tile), or None; see :meth:`FastPaths.immediate`. Forwarded headers are not read: no
        such answer depends on them."""
        fast = self.fast
        return fast.immediate(scope) if fast is not None else None

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.fast
        if fast is not None and scope["type"] == "http" and await fast.handle(scope, receive, send):
            return
        await super().__call__(scope, receive, send)


def build_routes(
    context: AppContext,
    groups: Sequence[RouteGroup] = ROUTE_GROUPS,
    extra_routes: Sequence[BaseRoute] = (),
) -> list[BaseRoute]:
    """The app's routes: ``extra_routes``, then the enabled groups (one Mount per prefix)."""
    disabled = context.settings.server.disable
    ordered: list[str | BaseRoute] = []
    mounts: dict[str, list[BaseRoute]] = {}
    for group in groups:
        if group.name in disabled:
            continue
        built = list(group.build(context))
        if not group.prefix:
            ordered.extend(built)
        elif group.prefix in mounts:
            mounts[group.prefix].extend(built)
        else:
            mounts[group.prefix] = built
            ordered.append(group.prefix)
    routes: list[BaseRoute] = [
        Mount(item, routes=mounts[item]) if isinstance(item, str) else item for item in ordered
    ]
    return [*extra_routes, *routes]


def build_source(settings: Settings) -> TileSource:
    """A PMTiles/MBTiles file when ``tiles_file`` is set, else PostGIS (opened later)."""
    if settings.server.tiles_file is not None:
        return archive_source(settings.server.tiles_file)
    # Connections for every tile query and health probe admitted at once, and the watcher's;
    # those of the tile queries opened with the server, before its first burst of requests.
    tiles = settings.limits.limit("tiles", settings.server.workers)
    return PostGISSource(
        settings.database,
        settings.tiles,
        pool_size=tiles + settings.limits.ops + 2,
        backend_nice=settings.server.database_nice,
        open_at_start=tiles,
    )


def build_service(settings: Settings, metrics: Metrics | None = None) -> TileService:
    """The tile service (not started) for ``settings``."""
    source = build_source(settings)
    use_disk = settings.cache.disk and isinstance(source, PostGISSource)
    disk = settings.cache_dir() if use_disk else None
    return TileService(
        source,
        memory_bytes=settings.cache.memory_bytes,
        disk_root=disk,
        version_ttl=settings.cache.version_ttl,
        metrics=metrics,
    )


def create_app(
    settings: Settings | None = None,
    *,
    extra_routes: Sequence[BaseRoute] = (),
    groups: Sequence[RouteGroup] = ROUTE_GROUPS,
) -> Starlette:
    """The fondplan HTTP server.

    ``extra_routes`` are matched first (e.g. ``create_app(s, extra_routes=routing_routes)``);
    ``groups`` replaces the default route groups. ``app.state`` holds ``settings``,
    ``metrics``, ``context`` and ``tiles`` (the :class:`TileService`); once started also
    ``pool`` (the psycopg2 ThreadedConnectionPool, None when serving a file) and
    ``database_url``.
    """
    # uvicorn's worker processes call the factory without arguments: they read the tree here.
    settings = settings or Settings()
    set_header_timeout(settings.server.header_timeout)
    metrics = Metrics()
    service = build_service(settings, metrics)
    limits = Limits(settings.limits, settings.server.workers)
    context = AppContext(settings=settings, tiles=service, metrics=metrics, limits=limits)
    metrics.add_gauges(limits.gauges)
    watch = LoopWatch(trace=settings.server.stall_trace)
    metrics.add_gauges(watch.gauges)
    metrics.add_gauges(gc_gauges)
    if isinstance(service.source, PostGISSource):
        metrics.add_gauges(service.source.gauges)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Blocking work runs in Starlette's thread pool; each kind is admitted up to its own
        # limit (tileserver.limits), so the pool holds them all at once.
        anyio.to_thread.current_default_thread_limiter().total_tokens = limits.threads()
        sys.setswitchinterval(settings.server.switch_interval)
        supervisor = settings.server.supervisor_pid
        if supervisor is not None and supervisor != os.getpid():
            die_with_parent(supervisor)
        if settings.server.metrics_dir is not None:
            metrics.share(settings.server.metrics_dir)
        await run_in_threadpool(service.start)
        source = service.source
        app.state.pool = source.pool if isinstance(source, PostGISSource) else None
        app.state.database_url = source.url if isinstance(source, PostGISSource) else None
        watching = asyncio.get_running_loop().create_task(watch.run())
        try:
            for hook in context.on_startup:
                await run_in_threadpool(hook)
            await start_worker_threads(limits.threads())
            freeze_startup_objects()
            yield
        finally:
            watching.cancel()
            # Every hook runs, each on a thread of its own (the pool may be full of requests
            # still running), so one failing cannot leave render processes behind.
            for hook in [*context.on_shutdown, service.stop]:
                try:
                    await anyio.to_thread.run_sync(hook, limiter=anyio.CapacityLimiter(1))
                except Exception:
                    log.exception("shutdown step %s failed", getattr(hook, "__qualname__", hook))

    app = Server(
        routes=build_routes(context, groups, extra_routes),
        middleware=[
            *response_middleware(settings, metrics),
            Middleware(LimitMiddleware, limits=limits),
        ],
        exception_handlers=exception_handlers(),
        lifespan=lifespan,
    )
    app.proxies = ProxyHeaders(app._dispatch, TrustedProxies(settings.server.forwarded_allow_ips))
    if context.fast_routes:
        app.fast = FastPaths(
            context.fast_routes, response_middleware(settings, metrics), settings.server.fast_budget
        )
        metrics.add_gauges(app.fast.gauges)
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.context = context
    app.state.tiles = service
    app.state.limits = limits
    return app


def response_middleware(settings: Settings, metrics: Metrics) -> list[Middleware]:
    """What every answer passes through, the fast path's too: request id, CORS, gzip, metrics."""
    cors = CORSMiddleware(
        None,  # type: ignore[arg-type]  # its preflight answers and settings only
        allow_origins=list(settings.server.cors_origins),
        allow_methods=["GET", "HEAD", "OPTIONS"],
        allow_headers=["*"],
        expose_headers=["ETag", "Content-Length"],
        max_age=86400,
    )
    return [
        Middleware(
            Answers,
            metrics=metrics,
            cors=cors,
            gzip_minimum=GZIP_MINIMUM_SIZE,
            gzip_level=6,
            # Bigger answers (long routes with steps) are compressed off the event loop.
            thread_size=GZIP_THREAD_SIZE,
            # Tiles set Content-Encoding themselves and are passed through as they are.
            exclude_types=("image/png", "application/pdf"),
        )
    ]
