"""Routing benchmark: fondplan's OSRM API vs pgRouting's pgr_dijkstra and OSRM, per network size.

For each size (``--scales 1,8``: the Liechtenstein extract, then the extract repeated N times
side by side with renumbered ids, built with bench/import.py's builder) the same run:

1. imports the input into a throwaway database and builds the routing graphs with
   ``fondplan routing build`` in a child process (wall time and peak RSS reported);
2. starts the real server (``fondplan serve``: uvicorn, httptools when installed, every
   route group and middleware) in a child process and measures the HTTP latency of
   ``GET /route/v1/driving/{a};{b}`` (default options: simplified polyline overview, no steps)
   with one keep-alive http.client connection, for short (0.3-3 km) and long (> 8 km
   crow-fly) pairs;
   the pairs of size N are those of size 1 moved into a random copy, so the routes are alike;
3. runs what a pgRouting user runs for the same pairs, one SQL statement per route over a
   keep-alive psycopg2 connection: the nearest vertex of each end by a GiST KNN search, then
   ``pgr_dijkstra('SELECT id, source, target, cost FROM ways', s, t, directed => true)`` over
   the whole network table (pgRouting reads the edge SQL and builds its graph on every query, as
   documented), joined back to the edges to return the summed cost and the route geometry;
   ``ways`` holds one row per directed edge of fondplan's car graph (same travel times, no turn
   restrictions);
4. runs OSRM (PyPI ``osrm-bindings``: osrm-extract/osrm-contract with its own car.lua, then
   ``osrm-routed --algorithm ch`` over HTTP with the same client and pairs) when a Python >= 3.12
   exists to install it into var/bench-osrm (created once); otherwise says why it is skipped.
   Car durations of fondplan and OSRM are compared on the same pairs (distribution printed).

    .venv/bin/python bench/routes.py [--scales 1,8] [--pairs 200] [--pgr-pairs 40]
"""

from __future__ import annotations

import argparse
import glob
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import osmium
from common import load_bench
from psycopg2.extras import execute_values

from osmimport.database import connect, drop_database, ensure_database
from osmimport.importer import run_import
from routing.build import load_graph
from routing.network import haversine

ROOT = Path(__file__).resolve().parent.parent
EXTRACT = ROOT / "data" / "sample" / "liechtenstein-2021-05-05.osm.pbf"
OSRM_VENV = ROOT / "var" / "bench-osrm"

Pair = tuple[float, float, float, float]


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p95."""
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[max(0, int(len(ordered) * 0.95) - 1)]


def free_port() -> int:
    """A free TCP port on localhost."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_pairs(nodes: list[tuple[float, float]], count: int, short: bool) -> list[Pair]:
    """Random node pairs, short (0.3-3 km) or long (> 8 km) as the crow flies."""
    rng = random.Random(7 if short else 11)
    found: list[Pair] = []
    while len(found) < count:
        a, b = rng.choice(nodes), rng.choice(nodes)
        crow = haversine(a[0], a[1], b[0], b[1])
        if (short and 300 < crow < 3000) or (not short and crow > 8000):
            found.append((a[0], a[1], b[0], b[1]))
    return found


def shifted(pairs: list[Pair], copies: int, width: float) -> list[Pair]:
    """The pairs moved into random copies of a scaled input (copy i is shifted i*width east)."""
    rng = random.Random(5)
    out = []
    for lon1, lat1, lon2, lat2 in pairs:
        shift = rng.randrange(copies) * width
        out.append((lon1 + shift, lat1, lon2 + shift, lat2))
    return out


def wait_http(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    """Wait until ``url`` answers (any status) or ``process`` dies."""
    deadline = time.monotonic() + 600
    while True:
        try:
            httpx.get(url, timeout=5)
            return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.2)


def rss_mib(pid: int) -> float:
    """Resident memory of a process now."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def http_latency(base: str, path: str, pairs: list[Pair], query: str = "") -> tuple[
    list[float], list[float | None]
]:  # fmt: skip
    """Milliseconds per request and the route durations (None when no route).

    One keep-alive ``http.client`` connection, the leanest Python client, so that the figures
    are the servers' rather than the client's (httpx alone costs about 0.8 ms per request
    on a 2-core machine, more than a route).
    """
    samples: list[float] = []
    durations: list[float | None] = []
    address = urlsplit(base)
    conn = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=60)
    try:
        for lon1, lat1, lon2, lat2 in pairs:
            began = time.perf_counter()
            conn.request("GET", f"{path}/{lon1:.6f},{lat1:.6f};{lon2:.6f},{lat2:.6f}{query}")
            answer = conn.getresponse()
            payload = answer.read()
            samples.append((time.perf_counter() - began) * 1000)
            body = json.loads(payload)
            ok = answer.status == 200 and body.get("code") == "Ok"
            durations.append(float(body["routes"][0]["duration"]) if ok else None)
    finally:
        conn.close()
    return samples, durations


def serve_fondplan(url: str, cache: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``fondplan serve`` over ``url`` in a child process (graphs loaded when it answers)."""
    port = free_port()
    env = {**os.environ, "FONDPLAN_DATABASE_URL": url, "FONDPLAN_CACHE_DIR": str(cache)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tileserver.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/health", process, "fondplan serve")
    return process, base


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a child started here."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# -- pgRouting ----------------------------------------------------------------------------------

PGR_ROUTE = """
SELECT sum(w.cost), ST_AsText(ST_Collect(w.geom ORDER BY d.seq))
FROM pgr_dijkstra(
    'SELECT id, source, target, cost FROM bench_ways',
    (SELECT id FROM bench_vertices
      ORDER BY geom <-> ST_SetSRID(ST_MakePoint(%s, %s), 4326) LIMIT 1),
    (SELECT id FROM bench_vertices
      ORDER BY geom <-> ST_SetSRID(ST_MakePoint(%s, %s), 4326) LIMIT 1),
    directed => true
) AS d
JOIN bench_ways AS w ON w.id = d.edge
"""


def prepare_pgrouting(url: str) -> int:
    """The ``ways``/``vertices`` tables of a pgRouting user, from fondplan's car graph."""
    graph = load_graph(url, "car")
    conn = connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS pgrouting")
            cur.execute(
                "CREATE TABLE bench_ways (id bigint PRIMARY KEY, source bigint, target bigint,"
                " cost float8, geom geometry(LineString, 4326))"
            )
            rows = [
                (
                    key,
                    u,
                    v,
                    data["travel_time"],
                    "LINESTRING(" + ",".join(f"{x} {y}" for x, y in data["geometry"]) + ")",
                )
                for u, v, key, data in graph.edges(keys=True, data=True)
            ]
            execute_values(
                cur,
                "INSERT INTO bench_ways VALUES %s",
                rows,
                template="(%s, %s, %s, %s, ST_GeomFromText(%s, 4326))",
                page_size=2000,
            )
            cur.execute(
                "CREATE TABLE bench_vertices (id bigint PRIMARY KEY, geom geometry(Point, 4326))"
            )
            execute_values(
                cur,
                "INSERT INTO bench_vertices VALUES %s",
                [(n, d["x"], d["y"]) for n, d in graph.nodes(data=True)],
                template="(%s, ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
                page_size=5000,
            )
            cur.execute("CREATE INDEX ON bench_vertices USING gist (geom)")
            cur.execute("ANALYZE bench_ways")
            cur.execute("ANALYZE bench_vertices")
    finally:
        conn.close()
    return len(rows)


def pgrouting_latency(url: str, pairs: list[Pair]) -> list[float]:
    """Milliseconds per route statement (nearest vertices + pgr_dijkstra + geometry)."""
    conn = connect(url)
    conn.autocommit = True
    samples = []
    try:
        with conn.cursor() as cur:
            for lon1, lat1, lon2, lat2 in pairs:
                began = time.perf_counter()
                cur.execute(PGR_ROUTE, (lon1, lat1, lon2, lat2))
                cur.fetchall()
                samples.append((time.perf_counter() - began) * 1000)
    finally:
        conn.close()
    return samples


# -- OSRM ---------------------------------------------------------------------------------------


def python312() -> str | None:
    """A Python >= 3.12 interpreter: on PATH, or under pyenv's versions."""
    for name in ("python3.13", "python3.12"):
        found = shutil.which(name)
        if found:
            return found
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    for pattern in ("3.13*/bin/python3.13", "3.12*/bin/python3.12"):
        matches = sorted(glob.glob(str(root / "versions" / pattern)))
        if matches:
            return matches[-1]
    return None


def osrm_tools() -> tuple[Path | None, str]:
    """OSRM's package folder (bin/, share/profiles/) in var/bench-osrm, or why there is none."""
    python = OSRM_VENV / "bin" / "python"
    if not python.exists():
        interpreter = python312()
        if interpreter is None:
            return None, "no Python >= 3.12 interpreter found (osrm-bindings needs one)"
        created = subprocess.run(
            [interpreter, "-m", "venv", str(OSRM_VENV)], capture_output=True, text=True
        )
        if created.returncode != 0:
            return None, f"creating the venv failed: {created.stderr.strip()[-300:]}"
    probe = [str(python), "-c", "import osrm, pathlib; print(pathlib.Path(osrm.__file__).parent)"]
    installed = subprocess.run(probe, capture_output=True, text=True)
    if installed.returncode != 0:
        pip = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "osrm-bindings"],
            capture_output=True,
            text=True,
        )
        if pip.returncode != 0:
            return None, f"pip install osrm-bindings failed: {pip.stderr.strip()[-300:]}"
        installed = subprocess.run(probe, capture_output=True, text=True)
    if installed.returncode != 0:
        return None, f"osrm-bindings does not import: {installed.stderr.strip()[-300:]}"
    package = Path(installed.stdout.strip())
    for needed in ("bin/osrm-extract", "bin/osrm-contract", "bin/osrm-routed"):
        if not (package / needed).exists():
            return None, f"osrm-bindings ships no {needed}"
    if not (package / "share" / "profiles" / "car.lua").exists():
        return None, "osrm-bindings ships no car.lua profile"
    return package, ""


def osrm_prepare(package: Path, source: Path, workdir: Path) -> tuple[Path, float, float]:
    """osrm-extract (car.lua) + osrm-contract: the .osrm base, seconds and peak RSS (MiB)."""
    data = workdir / "network.osm.pbf"
    shutil.copyfile(source, data)
    seconds = peak = 0.0
    for cmd in (
        [str(package / "bin" / "osrm-extract"), "-p", str(package / "share/profiles/car.lua")],
        [str(package / "bin" / "osrm-contract")],
    ):
        target = data if "extract" in cmd[0] else workdir / "network.osrm"
        began = time.perf_counter()
        process = subprocess.Popen(
            [*cmd, str(target)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _, status, usage = os.wait4(process.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{Path(cmd[0]).name} failed")
        seconds += time.perf_counter() - began
        peak = max(peak, usage.ru_maxrss / 1024)
    return workdir / "network.osrm", seconds, peak


def serve_osrm(package: Path, base: Path) -> tuple[subprocess.Popen[bytes], str]:
    """osrm-routed (CH) on a free port."""
    port = free_port()
    process = subprocess.Popen(
        [str(package / "bin" / "osrm-routed"), "--algorithm", "ch", "-i", "127.0.0.1"]
        + ["-p", str(port), str(base)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/nearest/v1/driving/0,0", process, "osrm-routed")
    return process, url


# -- the run ------------------------------------------------------------------------------------


def fmt(pair: tuple[float, float]) -> str:
    """p50/p95 as text."""
    return f"{pair[0]:8.2f} /{pair[1]:8.2f}"


def run_size(
    copies: int,
    source: Path,
    width: float,
    admin: str,
    args: argparse.Namespace,
    osrm: Path | None,
    base_pairs: dict[str, list[Pair]] | None,
    tmp: Path,
) -> dict[str, list[Pair]]:
    """Benchmark one network size; returns the size-1 pairs (made on the first call)."""
    bench_import = load_bench("import")
    name = f"fondplan_bench_{uuid.uuid4().hex[:8]}"
    ensure_database(admin, name)
    url = admin.rsplit("/", 1)[0] + "/" + name
    print(f"\n== network x{copies}: {source.name} ({source.stat().st_size / 1e6:.1f} MB)")
    try:
        began = time.perf_counter()
        run_import(url, [source])
        print(f"import: {time.perf_counter() - began:.1f} s")
        env = {**os.environ, "FONDPLAN_DATABASE_URL": url}
        seconds, peak, code = bench_import.run_child(
            [sys.executable, "-m", "tileserver.cli", "routing", "build"], env
        )
        if code != 0:
            raise RuntimeError("fondplan routing build failed")
        print(f"graph build (car, bike, foot): {seconds:.1f} s, peak RSS {peak:.0f} MiB")
        if base_pairs is None:
            graph = load_graph(url, "car")
            nodes = [(d["x"], d["y"]) for _, d in graph.nodes(data=True)]
            base_pairs = {
                "short": make_pairs(nodes, args.pairs, True),
                "long": make_pairs(nodes, args.pairs, False),
            }
            del graph
        pairs = {k: shifted(v, copies, width) for k, v in base_pairs.items()}
        server, base = serve_fondplan(url, tmp / f"cache-{copies}")
        ours: dict[str, tuple[float, float]] = {}
        our_durations: dict[str, list[float | None]] = {}
        try:
            print(f"server RSS after loading the graphs: {rss_mib(server.pid):.0f} MiB")
            for label, chosen in pairs.items():
                http_latency(base, "/route/v1/driving", chosen[:20])  # warm up
                samples, our_durations[label] = http_latency(base, "/route/v1/driving", chosen)
                ours[label] = percentiles(samples)
            steps, _ = http_latency(
                base,
                "/route/v1/driving",
                pairs["long"],
                "?steps=true&overview=full&geometries=geojson",
            )
            rich = percentiles(steps)
        finally:
            stop(server)
        edges = prepare_pgrouting(url)
        theirs = {
            label: percentiles(pgrouting_latency(url, chosen[: args.pgr_pairs]))
            for label, chosen in pairs.items()
        }
        print(f"pgRouting: bench_ways has {edges} directed edges")
        print(f"{'':7}{'fondplan HTTP p50/p95 ms':>26}{'pgr_dijkstra p50/p95 ms':>26}{'p50':>8}")
        for label in pairs:
            ratio = theirs[label][0] / ours[label][0]
            print(f"{label:7}{fmt(ours[label]):>26}{fmt(theirs[label]):>26}{ratio:>7.0f}x")
        print(f"(fondplan long with steps=true&overview=full&geometries=geojson: {fmt(rich)} ms)")
        if osrm is not None:
            bench_osrm(osrm, source, pairs, ours, our_durations, tmp / f"osrm-{copies}")
    finally:
        drop_database(admin, name)
    return base_pairs


def bench_osrm(
    package: Path,
    source: Path,
    pairs: dict[str, list[Pair]],
    ours: dict[str, tuple[float, float]],
    our_durations: dict[str, list[float | None]],
    workdir: Path,
) -> None:
    """OSRM latency and car durations on the same pairs."""
    workdir.mkdir()
    base, seconds, peak = osrm_prepare(package, source, workdir)
    print(f"OSRM extract + contract (car.lua): {seconds:.1f} s, peak RSS {peak:.0f} MiB")
    server, url = serve_osrm(package, base)
    try:
        print(f"osrm-routed RSS: {rss_mib(server.pid):.0f} MiB")
        print(f"{'':7}{'fondplan HTTP p50/p95 ms':>26}{'osrm-routed p50/p95 ms':>26}{'p50':>8}")
        ratios: list[float] = []
        for label, chosen in pairs.items():
            http_latency(url, "/route/v1/driving", chosen[:20])
            samples, durations = http_latency(url, "/route/v1/driving", chosen)
            theirs = percentiles(samples)
            print(
                f"{label:7}{fmt(ours[label]):>26}{fmt(theirs):>26}"
                f"{ours[label][0] / theirs[0]:>7.2f}x"
            )
            for a, b in zip(our_durations[label], durations, strict=True):
                if a is not None and b is not None and b > 0:
                    ratios.append(a / b)
    finally:
        stop(server)
    if ratios:
        ordered = sorted(ratios)
        quantiles = [ordered[int(q * (len(ordered) - 1))] for q in (0.05, 0.25, 0.5, 0.75, 0.95)]
        within = sum(1 for r in ordered if 0.8 <= r <= 1.2) / len(ordered)
        print(
            f"car duration fondplan/OSRM over {len(ordered)} pairs: "
            f"p5 {quantiles[0]:.2f}, p25 {quantiles[1]:.2f}, median {quantiles[2]:.2f}, "
            f"p75 {quantiles[3]:.2f}, p95 {quantiles[4]:.2f}; within 20 %: {within:.0%}"
        )


def main() -> int:
    """Run every size, print the numbers and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1,8", help="network sizes (copies of the extract)")
    parser.add_argument("--pairs", type=int, default=200, help="pairs per length class")
    parser.add_argument("--pgr-pairs", type=int, default=40, help="of those, run by pgRouting")
    parser.add_argument("--no-osrm", action="store_true", help="skip the OSRM comparison")
    args = parser.parse_args()
    scales = sorted({int(s) for s in args.scales.split(",")})
    bench_import = load_bench("import")
    admin = bench_import.admin_url()
    osrm: Path | None = None
    if args.no_osrm:
        print("OSRM: skipped (--no-osrm)")
    else:
        osrm, why = osrm_tools()
        if osrm is None:
            print(f"OSRM: skipped ({why})")
    box = osmium.io.Reader(str(EXTRACT), osmium.osm.NOTHING).header().box()
    # The same shift between copies as bench/import.py's builder.
    width = (box.top_right.lon - box.bottom_left.lon) * 1.05 if box.valid() else 1.05
    base_pairs = None
    with tempfile.TemporaryDirectory(prefix="fondplan-bench-routing-") as name:
        tmp = Path(name)
        for copies in [1, *[s for s in scales if s > 1]]:
            source = EXTRACT
            if copies > 1:
                source = tmp / f"scaled-{copies}.osm.pbf"
                bench_import.build_scaled(EXTRACT, copies, source)
            base_pairs = run_size(copies, source, width, admin, args, osrm, base_pairs, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
