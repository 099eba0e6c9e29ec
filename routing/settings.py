"""Routing's section of the settings tree (``FONDPLAN_ROUTING_*``): limits, snapping, reloads."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from osmimport.settings import ImportSettings, Section

#: Strongly connected parts of a profile's turn graph (one node per road direction, with turn
#: restrictions) with fewer nodes than this are "small" (OSRM's ``--small-component-size``).
SMALL_COMPONENT_SIZE = 1000


class RoutingSettings(Section):
    """Limits of the OSRM-compatible API; the fields carry their ``routing_`` prefix."""

    routing_max_coordinates: int = 100
    """Most coordinates accepted by /route and /nearest (OSRM's max-viaroute-size)."""
    routing_max_table_size: int = 100
    """Most coordinates accepted by /table (OSRM's max-table-size)."""
    routing_max_alternatives: int = 3
    """Most alternatives computed for one route."""
    routing_max_nearest: int = 100
    """Most results of /nearest (OSRM's max-nearest-size)."""
    routing_snap_radius: float = 5000.0
    """Snapping radius in metres when a request gives none; farther from every road of the
    profile is `NoSegment`."""
    routing_small_component: int = SMALL_COMPONENT_SIZE
    """Parts of a profile's network with fewer road directions are snapped onto only when every
    coordinate lies on the same one or no other road is within the radius."""
    routing_reload_interval: float = 10.0
    """Seconds between two checks of the data version by a running server."""
    routing_processes: int = 1
    """Child processes per server process answering the routing requests too heavy for its
    event loop (0: its worker threads answer them, competing with the loop for the GIL); each
    costs about 130 MB of its own on Liechtenstein, beyond the shared routing files. Only for a
    server process building its own engines: a shared routing server answers on its threads."""

    routing_shared_server: bool = True
    """`fondplan serve` starts one routing server process that answers the routes of all its
    workers, so the search structures are built once (false: each worker builds its own)."""
    routing_server: Path | None = None
    """Unix socket of the routing server that answers this server's routes (set by `fondplan
    serve` for its workers); unset: the server process loads the engines itself."""
    routing_server_queue: int = 64
    """Requests the routing server takes at once; beyond, 503 with Retry-After."""
    routing_server_threads: int = 2
    """Threads per profile of the engine process answering the requests it has taken."""
    routing_server_preload: bool = True
    """The routing server loads every profile at start and at each data version switch;
    false: a profile is loaded on its first request (and at a switch only those in use)."""
    routing_server_idle: float = 0.0
    """Seconds without a request after which a profile is dropped from the engine process, its
    memory given back (the process exits when no profile is left; loaded again on the next
    request); 0: kept."""
    routing_server_grace: float = 60.0
    """Seconds a data version no worker names any more stays loaded once a newer one is
    (workers switch within their tile version check, seconds apart)."""
    routing_server_timeout: float = 60.0
    """Seconds a worker waits for the routing server's answer to a request (then 503)."""


class RoutingCommandSettings(ImportSettings):
    """What the routing commands need on their own (``python -m routing.cli``)."""

    routing: RoutingSettings = Field(default_factory=RoutingSettings)
