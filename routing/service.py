"""The routing service: engines per profile for the current data version, and the queries."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from osmimport.errors import FondplanError
from routing import osrm
from routing.build import load_graph
from routing.engine import Engine, Path, Snap
from routing.errors import OsrmError
from routing.network import data_version
from routing.profiles import PROFILE_ALIASES, PROFILES
from routing.settings import RoutingSettings

#: Set while queries must not wait (see :meth:`RoutingService.without_waiting`).
_NO_WAIT: ContextVar[bool] = ContextVar("routing_no_wait", default=False)


class Busy(Exception):
    """The engine needs the database or a reload first: not something to wait for here."""


#: Profiles that, like OSRM's car profile, go straight on at via points unless told otherwise.
STRAIGHT_AT_WAYPOINTS = frozenset({"car"})


class RoutingService:
    """Loads each profile's graph for the data version in the database, reloading on change."""

    def __init__(
        self, url: str | Callable[[], str], settings: RoutingSettings | None = None
    ) -> None:
        self._url = url
        self.settings = settings or RoutingSettings()
        self._engines: dict[str, Engine] = {}
        self._version: str | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The database URL (resolved on first use when given as a callable)."""
        if callable(self._url):
            self._url = self._url()
        return self._url

    def load(self) -> None:
        """Load every profile now (at server start); missing graphs are loaded when built."""
        for name in PROFILES:
            try:
                self.engine(name)
            except FondplanError:
                # Served once built: requests answer 503 meanwhile.
                pass

    @contextmanager
    def without_waiting(self) -> Iterator[None]:
        """Queries in this block raise :class:`Busy` rather than wait for the lock, the
        database or a graph to load (for callers on an event loop)."""
        token = _NO_WAIT.set(True)
        try:
            yield
        finally:
            _NO_WAIT.reset(token)

    def engine(self, profile: str) -> Engine:
        """The engine of ``profile`` (an OSRM alias) for the current data version."""
        name = PROFILE_ALIASES.get(profile)
        if name is None:
            raise OsrmError(
                "InvalidUrl",
                f"unknown profile {profile!r}: use one of {', '.join(sorted(PROFILE_ALIASES))}",
            )
        engines = self._engines
        if (
            name in engines
            and time.monotonic() - self._checked <= self.settings.routing_reload_interval
        ):
            return engines[name]
        if _NO_WAIT.get():
            raise Busy(profile)
        with self._lock:
            self._refresh()
            engine = self._engines.get(name)
            if engine is None or engine.data_version != self._version:
                assert self._version is not None
                engine = Engine(
                    load_graph(self.url, name, self._version), self.settings.routing_small_component
                )
                self._engines[name] = engine
            return engine

    def refresh(self) -> None:
        """Check the data version when the reload interval has passed."""
        with self._lock:
            self._refresh()

    def _refresh(self) -> None:
        now = time.monotonic()
        if self._version is None or now - self._checked > self.settings.routing_reload_interval:
            version = data_version(self.url)
            self._checked = now
            if version != self._version:
                self._version = version
                self._engines = {
                    key: engine
                    for key, engine in self._engines.items()
                    if engine.data_version == version
                }

    # -- services ---------------------------------------------------------------------------

    def _snap(
        self, engine: Engine, coordinates: list[tuple[float, float]], options: osrm.Options
    ) -> list[Snap]:
        """The nearest road of each coordinate, as OSRM picks them: roads of small parts of
        the turn graph (a lone driveway, a one-way dead end, a road whose every exit is
        turn-restricted) only when every coordinate lies on the same one, or when no other
        road is within the radius."""

        def nearest(i: int, large_only: bool = False) -> list[Snap]:
            lon, lat = coordinates[i]
            bearing = options.bearings[i] if options.bearings else None
            radius = options.radiuses[i]
            return engine.snap(
                lon,
                lat,
                radius=radius,
                bearing=bearing,
                large_only=large_only,
                any_edge=options.snapping == "any",
            )

        snaps = []
        for i in range(len(coordinates)):
            found = nearest(i)
            if not found:
                raise OsrmError(
                    "NoSegment", f"Could not find a matching segment for coordinate {i}"
                )
            snaps.append(found[0])
        small = [engine.small(snap) for snap in snaps]
        if any(small) and not engine.connected(snaps):
            for i, snap in enumerate(snaps):
                if small[i]:
                    large = nearest(i, large_only=True)
                    snaps[i] = large[0] if large else snap
        return snaps

    def _check_count(self, coordinates: list[tuple[float, float]], limit: int) -> None:
        if len(coordinates) > limit:
            raise OsrmError(
                "TooBig",
                f"Number of entries {len(coordinates)} is higher than current maximum ({limit})",
            )

    def route(
        self, profile: str, coordinates: list[tuple[float, float]], params: dict[str, str]
    ) -> dict[str, Any]:
        """OSRM ``/route``: the fastest route through the coordinates, with alternatives."""
        self._check_count(coordinates, self.settings.routing_max_coordinates)
        if len(coordinates) < 2:
            raise OsrmError("InvalidOptions", "Number of coordinates needs to be at least two")
        options = osrm.parse_options("route", params, len(coordinates), self.settings)
        engine = self.engine(profile)
        snaps = self._snap(engine, coordinates, options)
        straight = options.continue_straight == "true" or (
            options.continue_straight == "default" and engine.profile in STRAIGHT_AT_WAYPOINTS
        )
        paths: list[Path] = []
        for start, end in zip(snaps, snaps[1:], strict=False):
            path = None
            if straight and paths:
                # Leave a via point the way the route reached it (no U-turn), where possible.
                last = paths[-1].parts[-1]
                onward = Snap(last.edge, last.end, start.lon, start.lat, start.distance, both=False)
                path = engine.route(onward, end)
            if path is None:
                path = engine.route(start, end)
            if path is None:
                raise OsrmError("NoRoute", "Impossible route between points")
            paths.append(path)
        routes = [osrm.route_object(engine, paths, options)]
        if options.alternatives and len(snaps) == 2:
            for other in engine.alternatives(snaps[0], snaps[1], paths[0], options.alternatives):
                routes.append(osrm.route_object(engine, [other], options))
        result: dict[str, Any] = {"code": "Ok", "routes": routes}
        if not options.skip_waypoints:
            result["waypoints"] = [osrm.waypoint(engine, snap, options) for snap in snaps]
        return result

    def nearest(
        self, profile: str, coordinates: list[tuple[float, float]], params: dict[str, str]
    ) -> dict[str, Any]:
        """OSRM ``/nearest``: the closest road positions to one coordinate."""
        if len(coordinates) != 1:
            raise OsrmError("InvalidOptions", "Only one input coordinate is supported")
        options = osrm.parse_options("nearest", params, 1, self.settings)
        engine = self.engine(profile)
        lon, lat = coordinates[0]
        found = engine.snap(
            lon,
            lat,
            radius=options.radiuses[0],
            number=options.number,
            bearing=options.bearings[0],
            any_edge=options.snapping == "any",
        )
        if not found:
            raise OsrmError("NoSegment", "Could not find a matching segment for coordinate 0")
        return {
            "code": "Ok",
            "waypoints": [osrm.waypoint(engine, snap, options, nodes=True) for snap in found],
        }

    def table(
        self, profile: str, coordinates: list[tuple[float, float]], params: dict[str, str]
    ) -> dict[str, Any]:
        """OSRM ``/table``: durations and/or distances between sources and destinations."""
        self._check_count(coordinates, self.settings.routing_max_table_size)
        options = osrm.parse_options("table", params, len(coordinates), self.settings)
        engine = self.engine(profile)
        snaps = self._snap(engine, coordinates, options)
        durations: list[list[float | None]] = []
        distances: list[list[float | None]] = []
        if "distance" not in options.annotations:
            # Durations only (OSRM's default): one search per source, no path unpacked.
            seconds = engine.durations(
                [snaps[i] for i in options.sources], [snaps[j] for j in options.destinations]
            )
            durations = [[None if d is None else round(d, 1) for d in row] for row in seconds]
        else:
            for i in options.sources:
                row_time: list[float | None] = []
                row_length: list[float | None] = []
                for j in options.destinations:
                    path = engine.route(snaps[i], snaps[j])
                    row_time.append(None if path is None else round(engine.duration(path), 1))
                    row_length.append(None if path is None else round(engine.length(path), 1))
                durations.append(row_time)
                distances.append(row_length)
        result: dict[str, Any] = {"code": "Ok"}
        if options.fallback_speed is not None:
            cells = osrm.fallback(coordinates, snaps, options, durations, distances)
            result["fallback_speed_cells"] = cells
        if options.scale_factor != 1.0:
            durations = [
                [None if d is None else round(d * options.scale_factor, 1) for d in row]
                for row in durations
            ]
        if "duration" in options.annotations:
            result["durations"] = durations
        if "distance" in options.annotations:
            result["distances"] = distances
        if not options.skip_waypoints:
            result["sources"] = [osrm.waypoint(engine, snaps[i], options) for i in options.sources]
            result["destinations"] = [
                osrm.waypoint(engine, snaps[j], options) for j in options.destinations
            ]
        return result
