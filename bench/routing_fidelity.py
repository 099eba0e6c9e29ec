"""Step fidelity: fondplan's turn-by-turn steps against osrm-routed's on the same random pairs.

For ``--pairs`` random pairs per profile (half short, half long, bench/routes.py's pairs) the
same run asks fondplan (in-process ``RoutingService``) and osrm-routed (PyPI ``osrm-bindings``,
prepared with bench/routes.py's helpers, car.lua and foot.lua) for ``steps=true``, aligns the
step sequences by maneuver location (an OSRM step is matched by the nearest unused fondplan step
within ``--radius`` metres, in route order) and prints, over the steps between depart and
arrive: the share of OSRM steps matched at the same place, of matched steps with the same
``type``, ``modifier``, roundabout ``exit`` and ``name``, the fondplan steps OSRM does not have,
and a confusion table of types. A diagnostic that prints numbers, not a test.

    .venv/bin/python bench/routing_fidelity.py [--pairs 200] [--profiles car,foot] [--url URL]
        [--examples 10]

``--url`` reuses a database where the extract is imported and the graphs are built; without
it the extract is imported into a throwaway database first.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
from common import load_bench

from osmimport.database import drop_database, ensure_database
from osmimport.importer import run_import
from routing.build import build_graphs, load_graph
from routing.errors import OsrmError
from routing.network import haversine
from routing.service import RoutingService

ROOT = Path(__file__).resolve().parent.parent
#: OSRM's profile file and URL profile per fondplan profile.
OSRM_PROFILES = {"car": ("car.lua", "driving"), "foot": ("foot.lua", "walking")}
QUERY = {"steps": "true", "overview": "false"}


@contextmanager
def database(url: str | None, bench: ModuleType) -> Iterator[str]:
    """``url``, or a throwaway database with the extract imported and the graphs built."""
    if url is not None:
        yield url
        return
    admin = load_bench("import").admin_url()
    name = f"fondplan_bench_{uuid.uuid4().hex[:8]}"
    ensure_database(admin, name)
    made = admin.rsplit("/", 1)[0] + "/" + name
    try:
        run_import(made, [bench.EXTRACT])
        build_graphs(made, quiet=True)
        yield made
    finally:
        drop_database(admin, name)


def osrm_package_for(package: Path, profile_file: str, where: Path) -> Path:
    """A view of OSRM's package whose ``car.lua`` is ``profile_file`` (bench/routes.py's
    osrm_prepare always extracts with car.lua)."""
    if profile_file == "car.lua":
        return package
    profiles = where / "share" / "profiles"
    profiles.mkdir(parents=True)
    (where / "bin").symlink_to(package / "bin")
    for item in (package / "share" / "profiles").iterdir():
        if item.name != "car.lua":
            (profiles / item.name).symlink_to(item)
    (profiles / "car.lua").symlink_to(package / "share" / "profiles" / profile_file)
    return where


@dataclass
class Tally:
    """Counts over the aligned steps of one profile."""

    routes: int = 0
    other_paths: int = 0
    osrm_steps: int = 0
    ours_steps: int = 0
    matched: int = 0
    same_type: int = 0
    same_modifier: int = 0
    with_exit: int = 0
    same_exit: int = 0
    same_name: int = 0
    types: Counter[tuple[str, str]] = field(default_factory=Counter)
    modifiers: Counter[tuple[str, str]] = field(default_factory=Counter)
    extra: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)


def kind(step: dict[str, Any]) -> str:
    """A step's maneuver type."""
    return str(step["maneuver"]["type"])


def inner(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The steps between depart and arrive."""
    return steps[1:-1]


def align(
    theirs: list[dict[str, Any]], ours: list[dict[str, Any]], radius: float
) -> list[int | None]:
    """Per OSRM step, the index of the fondplan step at the same place (in order), or None."""
    found: list[int | None] = []
    low = 0
    for step in theirs:
        lon, lat = step["maneuver"]["location"]
        best: tuple[float, int] | None = None
        for j in range(low, len(ours)):
            olon, olat = ours[j]["maneuver"]["location"]
            gap = haversine(lon, lat, olon, olat)
            if gap <= radius and (best is None or gap < best[0]):
                best = (gap, j)
        found.append(None if best is None else best[1])
        if best is not None:
            low = best[1] + 1
    return found


def describe(step: dict[str, Any] | None) -> str:
    """``type modifier exit name`` of a step, for the examples."""
    if step is None:
        return "-"
    m = step["maneuver"]
    exit_ = f" exit {m['exit']}" if "exit" in m else ""
    return f"{m['type']} {m.get('modifier', '')}{exit_} {step['name']!r}".replace("  ", " ")


def compare(
    tally: Tally, theirs: list[dict[str, Any]], ours: list[dict[str, Any]], r: float
) -> None:
    """Add one route's aligned steps to ``tally``."""
    theirs, ours = inner(theirs), inner(ours)
    tally.routes += 1
    tally.osrm_steps += len(theirs)
    tally.ours_steps += len(ours)
    matches = align(theirs, ours, r)
    used = {j for j in matches if j is not None}
    lines = []
    for step, j in zip(theirs, matches, strict=True):
        if j is None:
            tally.types[(kind(step), "(none)")] += 1
            lines.append(f"  OSRM {describe(step):48} | ours -")
            continue
        mine = ours[j]
        tally.matched += 1
        tally.types[(kind(step), kind(mine))] += 1
        a, b = step["maneuver"], mine["maneuver"]
        same = a["type"] == b["type"]
        tally.same_type += same
        tally.same_modifier += a.get("modifier") == b.get("modifier")
        if same and a.get("modifier") != b.get("modifier"):
            tally.modifiers[(f"{a['type']}: {a.get('modifier')}", str(b.get("modifier")))] += 1
        if "exit" in a:
            tally.with_exit += 1
            tally.same_exit += a["exit"] == b.get("exit")
        tally.same_name += step["name"] == mine["name"]
        lines.append(f"  OSRM {describe(step):48} | ours {describe(mine)}")
    for j, mine in enumerate(ours):
        if j not in used:
            tally.extra[kind(mine)] += 1
            lines.append(f"  {'':53} | ours {describe(mine)} (extra)")
    if len(tally.examples) < 200 and any("(extra)" in line or "ours -" in line for line in lines):
        tally.examples.append("\n".join(lines))


def share(part: int, whole: int) -> str:
    """``part/whole`` as a percentage."""
    return f"{part / whole:6.1%}" if whole else "     -"


def report(profile: str, tally: Tally, examples: int) -> None:
    """Print one profile's numbers."""
    print(
        f"\n== {profile}: {tally.routes} routes of the same length (within 3 %; "
        f"{tally.other_paths} others left out), steps between depart and arrive"
    )
    print(f"OSRM steps {tally.osrm_steps}, fondplan steps {tally.ours_steps}")
    print(f"OSRM steps matched at the same place: {share(tally.matched, tally.osrm_steps)}")
    print(f"of those, same type:     {share(tally.same_type, tally.matched)}")
    print(f"          same modifier: {share(tally.same_modifier, tally.matched)}")
    print(
        f"          same exit:     {share(tally.same_exit, tally.with_exit)} of {tally.with_exit}"
    )
    print(f"          same name:     {share(tally.same_name, tally.matched)}")
    extra = sum(tally.extra.values())
    print(f"fondplan steps with no OSRM step: {extra} ({share(extra, tally.ours_steps).strip()})")
    kinds = sorted({a for a, _ in tally.types})
    columns = sorted(
        {b for _, b in tally.types} | set(tally.extra), key=lambda k: (k == "(none)", k)
    )
    width = max(12, *(len(c) for c in columns))
    print("\ntypes: rows OSRM, columns fondplan (last row: fondplan steps OSRM lacks)")
    print(f"{'':18}" + "".join(f"{c[:width]:>{width + 1}}" for c in columns))
    for a in kinds:
        cells = "".join(f"{tally.types[(a, c)] or '.':>{width + 1}}" for c in columns)
        print(f"{a[:18]:18}{cells}")
    print(f"{'(extra)':18}" + "".join(f"{tally.extra[c] or '.':>{width + 1}}" for c in columns))
    if tally.modifiers:
        print("\nsame type, other modifier (OSRM -> fondplan), most common:")
        for (a, b), n in tally.modifiers.most_common(10):
            print(f"  {a:30} -> {b:14} {n}")
    for example in tally.examples[:examples]:
        print("\nexample:\n" + example)


def run_profile(
    profile: str,
    service: RoutingService,
    osrm_url: str,
    osrm_profile: str,
    pairs: list[tuple[float, float, float, float]],
    radius: float,
) -> Tally:
    """Ask both servers for every pair and tally the aligned steps."""
    tally = Tally()
    with httpx.Client(base_url=osrm_url, timeout=60) as client:
        for lon1, lat1, lon2, lat2 in pairs:
            coords = f"{lon1:.6f},{lat1:.6f};{lon2:.6f},{lat2:.6f}"
            answer = client.get(f"/route/v1/{osrm_profile}/{coords}", params=QUERY)
            if answer.status_code != 200 or answer.json().get("code") != "Ok":
                continue
            try:
                ours = service.route(profile, [(lon1, lat1), (lon2, lat2)], QUERY)
            except OsrmError:
                continue
            their_route, our_route = answer.json()["routes"][0], ours["routes"][0]
            if abs(our_route["distance"] - their_route["distance"]) > 0.03 * max(
                1.0, their_route["distance"]
            ):
                # Another path: its steps say nothing about how steps are built.
                tally.other_paths += 1
                continue
            theirs = their_route["legs"][0]["steps"]
            compare(tally, theirs, our_route["legs"][0]["steps"], radius)
    return tally


def main() -> int:
    """Compare the steps for every profile OSRM can run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200, help="pairs per profile")
    parser.add_argument("--profiles", default="car,foot")
    parser.add_argument("--radius", type=float, default=30.0, help="alignment radius (m)")
    parser.add_argument("--url", default=None, help="a database with the graphs built")
    parser.add_argument("--examples", type=int, default=0, help="routes with differences shown")
    args = parser.parse_args()
    bench = load_bench("routes")
    package, why = bench.osrm_tools()
    if package is None:
        print(f"OSRM: not available ({why}); nothing to compare")
        return 0
    with database(args.url, bench) as url, tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        service = RoutingService(url)
        for profile in args.profiles.split(","):
            profile_file, osrm_profile = OSRM_PROFILES[profile]
            if not (package / "share" / "profiles" / profile_file).exists():
                print(f"\n== {profile}: skipped, osrm-bindings ships no {profile_file}")
                continue
            work = tmp / profile
            work.mkdir()
            view = osrm_package_for(package, profile_file, tmp / f"package-{profile}")
            base, seconds, _ = bench.osrm_prepare(view, bench.EXTRACT, work)
            print(f"OSRM extract + contract ({profile_file}): {seconds:.1f} s")
            graph = load_graph(url, profile)
            nodes = [(d["x"], d["y"]) for _, d in graph.nodes(data=True)]
            del graph
            half = args.pairs // 2
            pairs = bench.make_pairs(nodes, half, True) + bench.make_pairs(
                nodes, args.pairs - half, False
            )
            server, osrm_url = bench.serve_osrm(view, base)
            try:
                tally = run_profile(profile, service, osrm_url, osrm_profile, pairs, args.radius)
            finally:
                bench.stop(server)
            report(profile, tally, args.examples)
    return 0


if __name__ == "__main__":
    sys.exit(main())
