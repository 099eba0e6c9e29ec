"""Routing commands: build the graphs, and ask for a route from the command line.

fondplan routing build [--profile car|bike|foot]
fondplan routing status
fondplan route LON,LAT LON,LAT [...] [--profile car|bike|foot] [--geojson]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from osmimport.command import Command, dispatch
from osmimport.database import database_url, existing_database_url
from osmimport.errors import UsageError
from routing import store
from routing.errors import OsrmError
from routing.profiles import PROFILE_ALIASES, PROFILES
from routing.settings import RoutingCommandSettings


class _BeforeSwap:
    """The import's before-swap hook (:data:`routing.build.build_before_swap`).

    The build's libraries are imported when an import runs it (or an update prepares it): the
    server imports this module for its command line, and its workers need none of them
    (numba's compiler alone is some 40 MB of each one's memory).
    """

    def __call__(self, url: str, staging: str, version: str, keep: Path | None = None) -> None:
        """Build the routing data of the staged import."""
        from routing.build import build_before_swap as build

        build(url, staging, version, keep)

    def prepare(self, url: str, keep: Path | None) -> None:
        """Get an update's build ready (:func:`routing.build.prepare_update`)."""
        from routing.build import prepare_update

        prepare_update(url, keep)


build_before_swap = _BeforeSwap()


class RoutingCommand:
    """Build the car, bike and foot routing data of the imported data (the import builds it
    before its swap; this builds it again for the data served).

    build   read the road network, build each profile's routing data, store it with the data
    status  list the stored routing data
    """

    name: ClassVar[str] = "routing"
    help: ClassVar[str] = "build or inspect the routing graphs"

    def add_args(self, parser: argparse.ArgumentParser) -> None:
        """Declare the action and the profiles."""
        parser.add_argument("action", choices=["build", "status"])
        parser.add_argument(
            "--profile", action="append", choices=sorted(PROFILES), help="only this profile"
        )

    def run(self, args: argparse.Namespace) -> int:
        """Carry out the action."""
        url = database_url(args.settings.database)
        if args.action == "build":
            from routing.build import build_graphs

            build_graphs(url, profiles=args.profile)
            return 0
        rows = store.versions(url)
        if not rows:
            print("no routing graph: run `fondplan routing build`")
            return 3
        for row in rows:
            print(
                f"{row['profile']}: data version {row['data_version']}, {row['nodes']} nodes, "
                f"{row['edges']} edges, {row['bytes'] / 1e6:.1f} MB, "
                f"built {row['built_at']:%Y-%m-%d %H:%M} in {row['build_seconds']:.1f} s"
            )
        return 0


def _coordinate(text: str) -> tuple[float, float]:
    from routing import osrm

    try:
        points = osrm.parse_coordinates(text)
    except OsrmError as exc:
        raise UsageError(f"bad coordinate {text!r}: expected LON,LAT ({exc.message})") from None
    if len(points) != 1:
        raise UsageError(f"bad coordinate {text!r}: expected LON,LAT")
    return points[0]


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


class RouteCommand:
    """Print the fastest route between coordinates (LON,LAT, as in OSRM URLs)."""

    name: ClassVar[str] = "route"
    help: ClassVar[str] = "the fastest route between two or more LON,LAT points"

    def add_args(self, parser: argparse.ArgumentParser) -> None:
        """Declare the points, the profile and the output format."""
        parser.add_argument("points", nargs="+", metavar="LON,LAT")
        parser.add_argument("--profile", default="car", choices=sorted(PROFILE_ALIASES))
        parser.add_argument("--geojson", action="store_true", help="print a GeoJSON Feature")

    def run(self, args: argparse.Namespace) -> int:
        """Route and print the summary and steps, or GeoJSON."""
        # The engine (numba, scipy) is imported by this command only: every other fondplan
        # command starts without it.
        from routing.polyline import decode
        from routing.service import RoutingService

        points = [_coordinate(text) for text in args.points]
        if len(points) < 2:
            raise UsageError("give at least two points: LON,LAT LON,LAT")
        settings = args.settings
        service = RoutingService(existing_database_url(settings.database), settings.routing)
        params = {"steps": "true", "overview": "full", "geometries": "polyline6"}
        try:
            answer = service.route(args.profile, points, params)
        except OsrmError as exc:
            raise UsageError(f"{exc.code}: {exc.message}") from None
        route = answer["routes"][0]
        if args.geojson:
            coordinates = [[lon, lat] for lon, lat in decode(route["geometry"], 6)]
            feature = {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": coordinates},
                "properties": {
                    "profile": PROFILE_ALIASES[args.profile],
                    "distance": route["distance"],
                    "duration": route["duration"],
                    "steps": [
                        {
                            "type": step["maneuver"]["type"],
                            "modifier": step["maneuver"].get("modifier"),
                            "name": step["name"],
                            "distance": step["distance"],
                        }
                        for leg in route["legs"]
                        for step in leg["steps"]
                    ],
                },
            }
            print(json.dumps(feature))
            return 0
        print(
            f"{PROFILE_ALIASES[args.profile]}: {route['distance'] / 1000:.2f} km, "
            f"{_duration(route['duration'])}"
        )
        for leg in route["legs"]:
            for step in leg["steps"]:
                maneuver = step["maneuver"]
                action = " ".join(filter(None, [maneuver["type"], maneuver.get("modifier")]))
                name = step["name"] or step.get("ref", "") or "(unnamed)"
                print(f"  {action:<22} {name:<40} {step['distance']:>8.0f} m")
        return 0


COMMANDS: list[Command] = [RoutingCommand(), RouteCommand()]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the routing commands on their own (``python -m routing.cli``)."""
    return dispatch("fondplan", __doc__ or "", COMMANDS, argv, RoutingCommandSettings)


if __name__ == "__main__":
    raise SystemExit(main())
