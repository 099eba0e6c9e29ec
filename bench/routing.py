"""Routing benchmark: fondplan's OSRM API vs pgRouting's pgr_dijkstra on the same network.

Imports Liechtenstein into a throwaway database, builds the graphs (time, peak memory), serves
the routing routes with uvicorn and measures p50/p95 HTTP latency for short and long random
car routes; pgr_dijkstra runs on an edge table made from the same car graph in the same
database. OSRM (PyPI osrm-bindings, Python >= 3.12) is used when a venv with it exists at
var/bench-osrm; otherwise that comparison is skipped with a message.

    .venv/bin/python bench/routing.py [--pairs 200]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would hide the
# routing package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from psycopg2.extras import execute_values  # noqa: E402
from starlette.applications import Starlette  # noqa: E402

from osmimport.database import connect, database_url, drop_database, ensure_database  # noqa: E402
from osmimport.importer import run_import  # noqa: E402
from osmimport.settings import DatabaseSettings  # noqa: E402
from routing.build import build_graphs  # noqa: E402
from routing.engine import Engine  # noqa: E402
from routing.http import routes  # noqa: E402
from routing.network import haversine  # noqa: E402
from routing.service import RoutingService  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXTRACT = ROOT / "data" / "sample" / "liechtenstein-2021-05-05.osm.pbf"


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.95) - 1]


def pairs(engine: Engine, count: int, short: bool) -> list[tuple[float, float, float, float]]:
    rng = random.Random(7 if short else 11)
    nodes = list(engine.graph.nodes(data=True))
    found = []
    while len(found) < count:
        (_, a), (_, b) = rng.choice(nodes), rng.choice(nodes)
        crow = haversine(a["x"], a["y"], b["x"], b["y"])
        if (short and 300 < crow < 3000) or (not short and crow > 8000):
            found.append((a["x"], a["y"], b["x"], b["y"]))
    return found


def serve(service: RoutingService) -> tuple[uvicorn.Server, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(Starlette(routes=routes(service)), port=port, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=200)
    args = parser.parse_args()
    admin = database_url(DatabaseSettings()).rsplit("/", 1)[0] + "/postgres"
    name = f"fondplan_bench_{uuid.uuid4().hex[:8]}"
    ensure_database(admin, name)
    url = admin.rsplit("/", 1)[0] + "/" + name
    try:
        run_import(url, [EXTRACT])
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        build_graphs(url, quiet=True)
        build_seconds = time.perf_counter() - started
        started = time.perf_counter()
        service = RoutingService(url)
        service.load()
        load_seconds = time.perf_counter() - started
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        engine = service.engine("car")
        print(f"graph build (3 profiles): {build_seconds:.1f} s; load + CCH: {load_seconds:.1f} s")
        print(f"peak RSS: {rss:.0f} MiB (before build {rss_before:.0f} MiB)")
        server, base = serve(service)
        ours: dict[str, tuple[float, float]] = {}
        with httpx.Client(base_url=base) as client:
            for label, short in (("short", True), ("long", False)):
                samples = []
                for lon1, lat1, lon2, lat2 in pairs(engine, args.pairs, short):
                    began = time.perf_counter()
                    answer = client.get(f"/route/v1/car/{lon1},{lat1};{lon2},{lat2}")
                    samples.append((time.perf_counter() - began) * 1000)
                    assert answer.status_code in {200, 400}
                ours[label] = percentiles(samples)
        server.should_exit = True
        theirs = bench_pgrouting(url, engine, args.pairs)
        print(
            f"{'':8}{'fondplan HTTP p50/p95 ms':>28}"
            f"{'pgr_dijkstra p50/p95 ms':>28}{'ratio p50':>12}"
        )
        for label in ("short", "long"):
            a, b = ours[label], theirs[label]
            print(
                f"{label:8}{a[0]:>14.2f}/{a[1]:<13.2f}{b[0]:>14.2f}/{b[1]:<13.2f}"
                f"{b[0] / a[0]:>11.0f}x"
            )
        osrm_python = ROOT / "var" / "bench-osrm" / "bin" / "python"
        if not osrm_python.exists():
            print(
                "OSRM: skipped (no venv with osrm-bindings at var/bench-osrm; it needs "
                "Python >= 3.12)"
            )
    finally:
        drop_database(admin, name)
    return 0


def bench_pgrouting(url: str, engine: Engine, count: int) -> dict[str, tuple[float, float]]:
    """pgr_dijkstra on the car graph's edges (node-based, same travel times)."""
    conn = connect(url)
    conn.autocommit = True
    results = {}
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS pgrouting")
            cur.execute(
                "CREATE TABLE bench_edges (id bigint, source bigint, target bigint, cost float8)"
            )
            rows = [
                (key, u, v, data["travel_time"])
                for u, v, key, data in engine.graph.edges(keys=True, data=True)
            ]
            execute_values(cur, "INSERT INTO bench_edges VALUES %s", rows)
            cur.execute("ANALYZE bench_edges")
            nodes = list(engine.graph.nodes)
            for label, short in (("short", True), ("long", False)):
                rng = random.Random(3)
                samples = []
                for lon1, lat1, lon2, lat2 in pairs(engine, count, short):
                    del lon1, lat1, lon2, lat2
                    a, b = rng.choice(nodes), rng.choice(nodes)
                    began = time.perf_counter()
                    cur.execute(
                        "SELECT sum(cost) FROM pgr_dijkstra("
                        "'SELECT id, source, target, cost FROM bench_edges', %s, %s, true)",
                        (a, b),
                    )
                    cur.fetchone()
                    samples.append((time.perf_counter() - began) * 1000)
                results[label] = percentiles(samples)
    finally:
        conn.close()
    return results


if __name__ == "__main__":
    sys.exit(main())
