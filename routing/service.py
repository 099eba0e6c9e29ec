"""The routing service: engines per profile for the current data version, and the queries."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path as FilePath
from typing import Any

import psycopg2

from osmimport.errors import FondplanError
from routing import osrm, store
from routing.engine import Engine, Route, Snap
from routing.errors import GraphNotBuiltError, OsrmError
from routing.network import data_version
from routing.prefetch import Prefetch
from routing.profiles import PROFILES, profile_name
from routing.settings import RoutingSettings

log = logging.getLogger(__name__)

#: Set while queries must not wait (see :meth:`RoutingService.without_waiting`).
_NO_WAIT: ContextVar[bool] = ContextVar("routing_no_wait", default=False)


class Busy(Exception):
    """The engine needs the database or a reload first: not something to wait for here."""


#: Profiles that, like OSRM's car profile, go straight on at via points unless told otherwise.
STRAIGHT_AT_WAYPOINTS = frozenset({"car"})


class RoutingService:
    """The engine of each profile for the data version served.

    Alone (the ``fondplan route`` command, tests) it polls the database for the data version.
    In the server it ``follow``s the version the tiles are served for: :meth:`prepare` loads the
    engines of a new version before the server switches to it, so tiles and routes switch
    together. With ``data_dir`` the routing data is memory-mapped from a file cache there, one
    copy for every worker process.
    """

    def __init__(
        self,
        url: str | Callable[[], str],
        settings: RoutingSettings | None = None,
        *,
        follow: Callable[[], str] | None = None,
        data_dir: FilePath | None = None,
    ) -> None:
        self._url = url
        self.settings = settings or RoutingSettings()
        self._follow = follow
        self._data_dir = data_dir
        #: Engines by (data version, profile).
        self._engines: dict[tuple[str, str], Engine] = {}
        #: Why a profile could not be loaded, by (data version, profile).
        self._errors: dict[tuple[str, str], str] = {}
        self._loading: set[str] = set()
        #: A lock per (data version, profile) being loaded: a query waits for its profile
        #: only, and the profiles of a version load side by side.
        self._building: dict[tuple[str, str], threading.Lock] = {}
        #: The child fetching a version's profiles into the file cache, by data version.
        self._prefetches: dict[str, Prefetch] = {}
        self._started = False
        self._version: str | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The database URL (resolved on first use when given as a callable)."""
        if callable(self._url):
            self._url = self._url()
        return self._url

    def _cache(self) -> FilePath | None:
        return None if self._data_dir is None else store.cache_root(self._data_dir, self.url)

    def load(self) -> None:
        """Load every profile of the current data version now; missing ones are loaded when
        built (requests answer 503 meanwhile)."""
        version = self.current_version()
        for name in PROFILES:
            self._get(name, version, quiet=True)

    def prepare(self, version: str) -> None:
        """Get the engines of ``version`` ready before the server switches to it (its switch
        hook). At start, when nothing is served yet, they load in a thread instead: the tiles
        need not wait, and a route waits for its profile only."""
        if self._follow is not None and not self._started:
            self._started = True
            self._loading.add(version)
            threading.Thread(
                target=self._prepare, args=(version,), name="fondplan-routing", daemon=True
            ).start()
            return
        self._prepare(version)

    def _prepare(self, version: str) -> None:
        self.load_version(version)
        keep = {version}
        if self._follow is not None:
            keep.add(self._follow())
        self.retain(keep)

    def prefetch(self, version: str, prefetch: Prefetch | None = None) -> None:
        """Have the profiles of ``version`` not in the file cache fetched into it by a child
        process (``prefetch``, when one is already under way), while the loading builds the
        first ones."""
        cache = self._cache()
        if cache is None or version in self._prefetches:
            return
        if prefetch is None:
            missing = [
                n for n in PROFILES if not (cache / version / n / store.LAYOUT_FILE).exists()
            ]
            if not missing:
                return
            prefetch = Prefetch(self.url, version, missing, cache)
        self._prefetches = {
            **{v: p for v, p in self._prefetches.items() if not p.done()},
            version: prefetch,
        }

    def load_version(self, version: str) -> None:
        """Load every profile of ``version`` that can be (the others keep their error)."""
        self._loading.add(version)
        self.prefetch(version)
        try:
            for name in PROFILES:
                self._get(name, version, quiet=True)
        finally:
            self._loading.discard(version)

    def is_loading(self, version: str) -> bool:
        """Whether the engines of ``version`` are being loaded now."""
        return version in self._loading

    def retain(self, keep: set[str], *, prune: bool = True, profile: str | None = None) -> None:
        """Drop the engines of every data version not in ``keep`` (of ``profile`` only, when
        given), and their cached files unless not to ``prune`` (another process still maps
        them)."""

        def kept(key: tuple[str, str]) -> bool:
            return key[0] in keep or (profile is not None and key[1] != profile)

        with self._lock:
            self._engines = {k: e for k, e in self._engines.items() if kept(k)}
            self._errors = {k: e for k, e in self._errors.items() if kept(k)}
        cache = self._cache()
        if cache is not None and prune:
            store.prune(cache, keep)

    def load_profile(self, name: str, version: str) -> Engine:
        """The engine of profile ``name`` for ``version``, loaded now if needed (a
        :class:`FondplanError` when it cannot be)."""
        engine = self._get(name, version)
        assert engine is not None
        return engine

    def shares_topology(self, name: str, version: str) -> bool:
        """Whether ``version``'s turn graph of ``name`` is that of a loaded engine, so its CCH
        would be shared (the arrays are fetched into the file cache when missing)."""
        others = [e for (v, n), e in self._engines.items() if n == name and v != version]
        if not others:
            return False
        try:
            arrays = store.load(self.url, name, version, cache=self._cache())
        except psycopg2.Error as exc:
            raise GraphNotBuiltError(f"the routing data cannot be read: {exc}") from exc
        return any(engine.same_topology(arrays) for engine in others)

    def loaded_versions(self) -> set[str]:
        """The data versions with at least one engine in memory."""
        return {version for version, _ in self._engines}

    def _get(self, name: str, version: str, *, quiet: bool = False) -> Engine | None:
        """The engine of ``name`` for ``version``, loaded now if needed (None when quiet and
        it cannot be)."""
        key = (version, name)
        engine = self._engines.get(key)
        if engine is not None:
            return engine
        with self._lock:
            building = self._building.setdefault(key, threading.Lock())
        with building:
            engine = self._engines.get(key)
            if engine is not None:
                return engine
            try:
                engine = self._build(name, version)
            except FondplanError as exc:
                with self._lock:
                    self._errors[key] = str(exc)
                    self._building.pop(key, None)
                if quiet:
                    log.warning("routing %s: %s", name, exc)
                    return None
                raise
            with self._lock:
                self._errors.pop(key, None)
                self._engines = {**self._engines, key: engine}
                self._building.pop(key, None)
            return engine

    def _build(self, name: str, version: str) -> Engine:
        """The engine of ``name`` for ``version``: its arrays memory-mapped (fetched first when
        not cached), the CCH of a loaded version's engine shared when the turn graph is the
        same, else built."""
        began = time.perf_counter()
        prefetch = self._prefetches.get(version)
        if prefetch is not None:
            prefetch.wait(name)
        try:
            arrays = store.load(self.url, name, version, cache=self._cache())
        except psycopg2.Error as exc:
            raise GraphNotBuiltError(f"the routing data cannot be read: {exc}") from exc
        fetched = time.perf_counter()
        others = [e for (v, n), e in self._engines.items() if n == name and v != version]
        engine = Engine(arrays, self.settings.routing_small_component, topology=_newest(others))
        engine.release_pages()
        log.info(
            "routing %s of %s ready in %.1f s (data %.1f s, engine %.1f s, CCH %s)",
            name,
            version,
            time.perf_counter() - began,
            fetched - began,
            time.perf_counter() - fetched,
            engine.cch_state,
        )
        return engine

    def health(self) -> dict[str, Any]:
        """Per profile the data version served, whether its engine is loaded and its edges;
        ``ready`` when every profile is."""
        version = self.current_version() if self._follow is not None else self._version
        result: dict[str, Any] = {}
        for name in PROFILES:
            engine = self._engines.get((version or "", name))
            state: dict[str, Any] = {
                "data_version": version,
                "loaded": engine is not None,
                "edges": len(engine.edges) if engine is not None else None,
            }
            if engine is not None:
                state["cch"] = engine.cch_state
            if engine is None:
                error = self._errors.get((version or "", name))
                state["state"] = (
                    "loading" if version in self._loading or error is None else "unavailable"
                )
                if error is not None:
                    state["error"] = error
            result[name] = state
        return {
            "ready": all(p["loaded"] for p in result.values()),
            "loading": bool(self._loading),
            "profiles": result,
        }

    @contextmanager
    def without_waiting(self) -> Iterator[None]:
        """Queries in this block raise :class:`Busy` rather than wait for the lock, the
        database or a graph to load (for callers on an event loop)."""
        token = _NO_WAIT.set(True)
        try:
            yield
        finally:
            _NO_WAIT.reset(token)

    def current_version(self) -> str:
        """The data version routes are answered for."""
        if self._follow is not None:
            return self._follow()
        if (
            self._version is None
            or time.monotonic() - self._checked > self.settings.routing_reload_interval
        ):
            if _NO_WAIT.get():
                raise Busy("data version")
            self.refresh()
        assert self._version is not None
        return self._version

    def engine(self, profile: str) -> Engine:
        """The engine of ``profile`` (an OSRM alias) for the current data version."""
        name = profile_name(profile)
        version = self.current_version()
        engine = self._engines.get((version, name))
        if engine is not None:
            return engine
        if _NO_WAIT.get():
            raise Busy(profile)
        engine = self._get(name, version)
        assert engine is not None
        return engine

    def forget_other_versions(self, version: str) -> None:
        """Drop the engines of every data version but ``version`` (a follower whose leader
        switched)."""
        with self._lock:
            self._engines = {k: e for k, e in self._engines.items() if k[0] == version}

    def refresh(self) -> None:
        """Check the data version in the database (alone; in the server the tiles' version
        is followed and this does nothing)."""
        if self._follow is not None:
            return
        with self._lock:
            now = time.monotonic()
            if self._version is None or now - self._checked > self.settings.routing_reload_interval:
                version = data_version(self.url)
                self._checked = now
                if version != self._version:
                    self._version = version
                    self._engines = {k: e for k, e in self._engines.items() if k[0] == version}

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
        paths: list[Route] = []
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


def _newest(engines: list[Engine]) -> Engine | None:
    """The engine of the latest data version among ``engines`` (None for none)."""
    return max(engines, key=lambda engine: engine.data_version, default=None)
