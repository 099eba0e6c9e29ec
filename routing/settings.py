"""Routing settings (``FONDPLAN_ROUTING_*``): request limits and snapping radius."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

#: Strongly connected parts of a profile's turn graph (one node per road direction, with turn
#: restrictions) with fewer nodes than this are "small" (OSRM's ``--small-component-size``).
SMALL_COMPONENT_SIZE = 1000


class RoutingSettings(BaseSettings):
    """Limits of the OSRM-compatible API; every field can be set as ``FONDPLAN_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="FONDPLAN_", env_file=".env", extra="ignore")

    #: Most coordinates accepted by /route and /nearest (OSRM's max-viaroute-size).
    routing_max_coordinates: int = 100
    #: Most coordinates accepted by /table (OSRM's max-table-size).
    routing_max_table_size: int = 100
    #: Most alternatives computed for one route.
    routing_max_alternatives: int = 3
    #: Most results of /nearest (OSRM's max-nearest-size).
    routing_max_nearest: int = 100
    #: Snapping radius in metres when a request gives none: a coordinate farther than this from
    #: every road of the profile gets ``NoSegment`` (e.g. outside the imported area). Generous,
    #: because a point in the mountains may lie kilometres from the nearest road a car may use.
    routing_snap_radius: float = 5000.0
    #: Strongly connected parts of a profile's turn graph with fewer road directions than this
    #: are "small" (OSRM's ``--small-component-size``): a coordinate is snapped onto them only
    #: when every coordinate lies on the same one, or no other road is within the radius.
    routing_small_component: int = SMALL_COMPONENT_SIZE
    #: Seconds between two checks of the data version by a running server.
    routing_reload_interval: float = 10.0
    #: Child processes per server process answering the routing requests too heavy for its
    #: event loop (0: its worker threads answer them, competing with the loop for the GIL).
    #: Each costs about 130 MB of its own on Liechtenstein, beyond the shared routing files.
    routing_processes: int = 1
