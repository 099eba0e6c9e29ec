"""What a route group factory receives: the settings, the tile service, hooks of the lifespan."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tileserver.fastpath import FastCost, FastHandler, FastRoute
from tileserver.limits import Limits
from tileserver.metrics import Metrics
from tileserver.service import TileService
from tileserver.settings import Settings


@dataclass
class AppContext:
    """Shared by every route group of one app.

    ``tiles`` is created with the app and started by the lifespan (before ``on_startup``);
    ``on_startup``/``on_shutdown`` callables run in a worker thread, in order.
    ``fast_routes`` are answered ahead of the middleware (see :mod:`tileserver.fastpath`);
    ``limits`` admits each kind of work (see :mod:`tileserver.limits`).
    """

    settings: Settings
    tiles: TileService
    metrics: Metrics
    limits: Limits
    on_startup: list[Callable[[], None]] = field(default_factory=list)
    on_shutdown: list[Callable[[], None]] = field(default_factory=list)
    fast_routes: list[FastRoute] = field(default_factory=list)
    #: What ``/health`` reports besides the database: name -> a callable giving its state
    #: (``"ready": False`` in it makes the status ``degraded``, or ``loading`` with
    #: ``"loading": True``).
    health: dict[str, Callable[[], dict[str, Any]]] = field(default_factory=dict)

    def add_fast_route(
        self, prefix: str, name: str, handler: FastHandler, cost: FastCost | None = None
    ) -> None:
        """Offer GET/HEAD requests under ``prefix`` to ``handler`` ahead of the middleware,
        those ``cost`` deems cheap (see :mod:`tileserver.fastpath`)."""
        self.fast_routes.append(FastRoute(prefix, name, handler, cost))
