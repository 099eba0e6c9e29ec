"""Step building benchmark: in-process cost of an OSRM route object with and without steps.

Imports the Liechtenstein extract into a throwaway database, builds the car graph, then for
long random pairs (> 8 km crow-fly) times ``osrm.route_object`` (overview=false, polyline)
with ``steps=true`` against ``steps=false`` on the same paths, and prints p50/p95 and the
ratio. ``--graph PATH`` keeps the built graph in a pickle to skip the import next time.

    .venv/bin/python bench/routing_steps.py [--pairs 200] [--graph var/bench-steps-car.pickle]
"""

from __future__ import annotations

import argparse
import pickle
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

import networkx as nx
from common import load_bench

from osmimport.database import drop_database, ensure_database
from osmimport.importer import run_import
from routing import osrm
from routing.build import build_graphs, load_graph
from routing.engine import (
    Engine,
    Route,
)
from routing.network import haversine
from routing.settings import RoutingCommandSettings

ROOT = Path(__file__).resolve().parent.parent
EXTRACT = ROOT / "data" / "sample" / "liechtenstein-2021-05-05.osm.pbf"


def admin_url() -> str:
    """The admin URL of the embedded cluster (bench/import.py's helper)."""
    url: str = load_bench("import").admin_url()
    return url


def car_graph(cache: Path | None) -> nx.MultiDiGraph:
    """The car graph of the extract, from ``cache`` when it exists."""
    if cache is not None and cache.exists():
        graph: nx.MultiDiGraph = pickle.loads(cache.read_bytes())
        return graph
    admin = admin_url()
    name = f"fondplan_bench_steps_{uuid.uuid4().hex[:8]}"
    ensure_database(admin, name)
    url = admin.rsplit("/", 1)[0] + "/" + name
    try:
        run_import(url, [EXTRACT])
        build_graphs(url, profiles=["car"], quiet=True)
        graph = load_graph(url, "car")
    finally:
        drop_database(admin, name)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(pickle.dumps(graph, protocol=pickle.HIGHEST_PROTOCOL))
    return graph


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p95 in milliseconds."""
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(0.95 * (len(ordered) - 1))] * 1000


def main() -> int:
    """Time route objects with and without steps on the same long paths."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--graph", type=Path, default=None, help="graph pickle cache")
    args = parser.parse_args()
    engine = Engine(car_graph(args.graph))
    nodes = [(data["x"], data["y"]) for _, data in engine.graph.nodes(data=True)]
    rng = random.Random(7)
    paths: list[Route] = []
    while len(paths) < args.pairs:
        a, b = rng.sample(nodes, 2)
        if haversine(*a, *b) < 8000:
            continue
        start = engine.snap(*a, radius=None)
        end = engine.snap(*b, radius=None)
        path = engine.route(start[0], end[0]) if start and end else None
        if path is not None:
            paths.append(path)
    settings = RoutingCommandSettings().routing
    timings: dict[str, list[float]] = {}
    steps_count = []
    for label, params in (
        ("steps=false", {"overview": "false"}),
        ("steps=true", {"overview": "false", "steps": "true"}),
    ):
        options = osrm.parse_options("route", params, 2, settings)
        samples = []
        for path in paths:
            began = time.perf_counter()
            route = osrm.route_object(engine, [path], options)
            samples.append(time.perf_counter() - began)
            if options.steps:
                steps_count.append(len(route["legs"][0]["steps"]))
        timings[label] = samples
    parts = statistics.median(len(path.parts) for path in paths)
    print(
        f"{len(paths)} long car routes, median {parts:.0f} edges, "
        f"median {statistics.median(steps_count):.0f} steps"
    )
    for label, samples in timings.items():
        p50, p95 = percentiles(samples)
        print(f"route_object {label:12s} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms")
    extra = percentiles(timings["steps=true"])[0] - percentiles(timings["steps=false"])[0]
    ratio = percentiles(timings["steps=true"])[0] / percentiles(timings["steps=false"])[0]
    print(f"steps cost p50 {extra:.2f} ms ({ratio:.1f}x the route without steps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
