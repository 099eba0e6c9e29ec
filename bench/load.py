"""Load benchmark: a mixed workload against ``fondplan serve`` on loopback, bounded in time.

The mix: 80 % cached vector tiles, 10 % uncached tiles z10-14, 5 % raster tiles, 4 % routes
(a third with steps, full overview and annotations), 1 % town plans; at 1, 8, 32 and 128
keep-alive clients, with ``--workers 1`` and ``2``. Each step prints throughput, p50/p95/p99,
the p99 of cached tiles, cold tiles/s, 5xx and connection errors and the server's RSS (all its
processes). Then cold tiles alone at 1 and 32 clients, whose ratio should be >= 1
(``--no-cold-only`` skips them). Every step has a server of its own, started with empty
caches, so each one also pays for drawing its town plans and rendering its raster tiles; its
cached tiles are then asked of each of its workers, whose memory caches are their own.

Cold tiles are never asked twice in a step: z14 tiles in rings around the data's centre, each
with its z10-13 parents when first met (the data's tiles first, then the empty land around).
Each step says how many cold tiles were asked, how many were empty, repeated, and answered
from the server's cache by its /metrics (both 0). ``--by-competition`` also prints the cached
tiles' p99 by the other kind of work (cold, raster, route, heavy route, plan) that was in
flight during them. ``--without plan`` (or other kinds, comma-separated) leaves kinds out of
the mix, to see what they cost the others.

``--soak SECONDS`` runs the mix instead for that long at the first client count and worker
count, sampling the server's RSS (workers, routing server, render and plan processes) every
``--rss-every`` seconds (10); it prints the curve, its first, last and highest values and its
slope, over the whole run and over its second half. Each step also prints the CPU the load
generator and the server used, the share of the run their event loops waited for a CPU
(another process had it), the server's logged reasons for its 5xx answers, and the
cached tiles' p99 against that of the same server idle just before (one client), as a ratio
that the machine's other load weighs on less.

Each client opens its keep-alive connection with its first request, inside the clock: at 128
clients those first answers (about a tenth of a step's cached tiles when slow requests soon
hold every client) wait behind 128 connections accepted at once, the server's and the load
generator's. So each step prints, beside the cached p99 of every answer (the figure as it
always was), the p99 of those asked on connections already open, and the first ones' p50 and
longest; ``--by-competition`` also prints the cached p99 by second of the run they were asked
in (the first second holds that burst and the start of every kind of work: render and plan
processes, database connections, worker threads). With several workers, which accept from one
listening socket, it also prints how many connections each held one second in and the cached
p99 of each.

    .venv/bin/python bench/load.py [--seconds 10] [--clients 1,8,32,128] [--workers 1,2]
    .venv/bin/python bench/load.py --soak 600 --clients 32 --workers 2

``--database-url`` uses a database already imported with its routing data (kept afterwards)
instead of importing the sample into a throwaway one, so runs to compare start sooner.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "import"))

from common import load_bench  # noqa: E402

from osmimport.database import drop_database, ensure_database  # noqa: E402
from osmimport.embedded import EmbeddedCluster  # noqa: E402
from osmimport.importer import run_import  # noqa: E402
from osmimport.mercator import tile_xy  # noqa: E402
from tileserver.catalog import read_catalog  # noqa: E402
from tileserver.tiling import tiles_in_bbox  # noqa: E402

SAMPLE = ROOT / "data" / "sample" / "liechtenstein-2021-05-05.osm.pbf"
#: Share of each kind of request in the mix.
MIX = {"cached": 80, "cold": 10, "raster": 5, "route": 4, "plan": 1}
HEAVY_ROUTE = "?steps=true&overview=full&annotations=true"
#: Zooms of the uncached tiles.
COLD_ZOOMS = (10, 14)
#: Kinds of work whose overlap with a cached tile is reported by ``--by-competition``.
COMPETING = ("cold", "raster", "route", "heavy route", "plan")


#: Where a step's server writes its log, in its cache folder.
SERVER_LOG = "server.log"
#: How the server logs a 5xx answer (tileserver.errors).
ANSWERED_5XX = re.compile(r"request \S+ (?P<path>\S+) answered (?P<status>5\d\d): (?P<reason>.*)$")
#: Seconds a client waits for an answer: beyond the server's longest time limit (a town plan's
#: 120 s), so the server's own refusals show as 5xx and a timeout here as a hang.
CLIENT_TIMEOUT = 150.0
#: Event-loop stalls of the load generator are counted by the least they lasted (ms), as the
#: server counts its own (tileserver.server.STALL_THRESHOLDS).
STALL_MS = (5, 20, 50, 100, 500)
#: Cached tiles asked of the idle server before each step, for the p99 the loaded one is
#: compared with (the machine's load at the time weighs on both).
IDLE_REQUESTS = 400

#: bench/tiles.py, for its keep-alive client.
TILES = load_bench("tiles")


@dataclass
class Workload:
    """The request paths of each kind; cold tiles are handed out once each, never again."""

    cached: list[str]
    cold: Iterator[str]
    raster: list[str]
    routes: list[str]
    plans: list[str]
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    #: Cold tiles handed out so far.
    asked: set[str] = field(default_factory=set)

    def next(self) -> tuple[str, str]:
        kind = self.rng.choices(list(MIX), weights=list(MIX.values()))[0]
        if kind == "cold":
            return kind, next(self.cold)
        pool = {"cached": self.cached, "raster": self.raster, "route": self.routes}.get(
            kind, self.plans
        )
        return kind, self.rng.choice(pool)


def workload(bbox: Sequence[float]) -> tuple[Workload, list[str]]:
    """The workload over the data's bbox, and the tiles to warm the cache with."""
    west, south, east, north = bbox
    cx, cy = (west + east) / 2, (south + north) / 2
    warm = [
        f"/tiles/basemap/{z}/{x}/{y}.mvt"
        for z, x, y in tiles_in_bbox((west, south, east, north), 12, 14)
    ][::3]
    cold = (f"/tiles/basemap/{z}/{x}/{y}.mvt" for z, x, y in cold_tiles(cx, cy))
    warmed = set(warm)
    rng = random.Random(11)
    raster = [
        f"/styles/colour/{z}/{x}/{y}.png"
        for z, x, y in tiles_in_bbox((cx - 0.03, cy - 0.03, cx + 0.03, cy + 0.03), 13, 14)
    ]
    routes = []
    for i in range(60):
        a = (rng.uniform(cx - 0.04, cx + 0.04), rng.uniform(south + 0.02, north - 0.02))
        b = (rng.uniform(cx - 0.04, cx + 0.04), rng.uniform(south + 0.02, north - 0.02))
        profile = ("driving", "foot", "bike")[i % 3]
        options = HEAVY_ROUTE if i % 3 == 0 else "?overview=false"
        routes.append(f"/route/v1/{profile}/{a[0]:.5f},{a[1]:.5f};{b[0]:.5f},{b[1]:.5f}{options}")
    plans = ["/townplans/Vaduz.png?paper=A4&dpi=72", "/townplans/Schaan.png?paper=A4&dpi=72"]
    return Workload(warm, (p for p in cold if p not in warmed), raster, routes, plans), warm


def cold_tiles(lon: float, lat: float) -> Iterator[tuple[int, int, int]]:
    """Every tile of COLD_ZOOMS once, nearest ``(lon, lat)`` first: square rings of z14 tiles
    around it, each with its parents the first time they are met. Endless for a benchmark's
    length, so no uncached request is ever repeated (the data's own tiles come first, then
    the empty land around it)."""
    low, high = COLD_ZOOMS
    cx, cy = tile_xy(lon, lat, high)
    size = 1 << high
    seen: set[tuple[int, int, int]] = set()
    for ring in range(size):
        side = range(-ring, ring + 1)
        edge = {(dx, -ring) for dx in side} | {(dx, ring) for dx in side}
        edge |= {(-ring, dy) for dy in side} | {(ring, dy) for dy in side}
        for dx, dy in sorted(edge):
            x, y = cx + dx, cy + dy
            if not (0 <= x < size and 0 <= y < size):
                continue
            yield high, x, y
            for zoom in range(high - 1, low - 1, -1):
                parent = (zoom, x >> (high - zoom), y >> (high - zoom))
                if parent not in seen:
                    seen.add(parent)
                    yield parent


@dataclass
class Step:
    """What one run measured."""

    seconds: float
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    server_errors: int = 0
    #: 5xx answers by kind of request and status.
    error_kinds: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    conn_errors: int = 0
    #: Connection errors by kind of request and error (a timeout is the client giving up).
    conn_kinds: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    #: CPU seconds used during the run by the load generator and by the server (all processes).
    client_cpu: float = 0.0
    server_cpu: float = 0.0
    #: (seconds since the start, server RSS in MB).
    rss_mb: list[tuple[float, float]] = field(default_factory=list)
    #: Cold tiles answered empty (204): outside the data.
    cold_empty: int = 0
    #: Cold tiles asked more than once in the run (should be 0), and those the server says it
    #: took from its cache rather than the database (should be 0).
    cold_repeats: int = 0
    cold_from_cache: int | None = None
    #: The server's event-loop stalls during the run, by the least they lasted ("20ms": n).
    stalls: dict[str, int] = field(default_factory=dict)
    #: The load generator's own event-loop stalls (same thresholds): its lateness is in every
    #: latency it measures.
    client_stalls: dict[str, int] = field(default_factory=dict)
    #: The server's logged reasons for its 5xx answers (see reasons_5xx).
    reasons: str = ""
    #: Latencies of cached tiles by the kind of other work in flight at some time during them.
    cached_with: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    #: Latencies of the cached tiles whose request opened its client's connection (the first
    #: of each client, and after a connection error): also in ``latencies``.
    cached_connecting: list[float] = field(default_factory=list)
    #: (seconds into the run it was asked, latency ms) of each cached tile.
    cached_at: list[tuple[float, float]] = field(default_factory=list)
    #: (client port of its connection, latency ms) of each cached tile, and the serving
    #: process (uvicorn worker) of each client port, as sampled during the run.
    cached_by_port: list[tuple[int, float]] = field(default_factory=list)
    port_worker: dict[int, int] = field(default_factory=dict)
    #: Connections each serving process held one second into the run (after the clients'
    #: burst of connections), by process id.
    worker_connections: dict[int, int] = field(default_factory=dict)
    #: Latencies of cached tiles asked one at a time of the idle server just before the run.
    idle_cached: list[float] = field(default_factory=list)
    #: Share of the run the server's event loops (averaged) and the load generator's spent
    #: runnable but waiting for a CPU (None where the kernel does not say).
    loop_wait: float | None = None
    client_wait: float | None = None


def server_processes(pid: int) -> list[psutil.Process]:
    """The server and every process under it (workers, routing server, render and plan
    processes)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def server_rss_mb(pid: int) -> float:
    total = 0
    for process in server_processes(pid):
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 1e6


def server_cpu_seconds(pid: int) -> float:
    """CPU seconds (user and system) the server's processes alive now have used."""
    total = 0.0
    for process in server_processes(pid):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def serving_loops(pid: int) -> list[int]:
    """The processes running the server's event loops: uvicorn's workers, or the server."""
    try:
        children = psutil.Process(pid).children()
        workers = [c.pid for c in children if "spawn_main" in " ".join(c.cmdline())]
    except psutil.Error:
        return [pid]
    return workers or [pid]


def connections_by_worker(workers: Sequence[int], port: int) -> dict[int, int]:
    """The serving process of each connection to ``port``, by its client's port."""
    found = {}
    for pid in workers:
        try:
            conns = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.Error:
            continue
        for conn in conns:
            if conn.laddr and conn.laddr.port == port and conn.raddr:
                found[conn.raddr.port] = pid
    return found


def cpu_wait_seconds(pids: Sequence[int]) -> float | None:
    """Seconds the main threads of ``pids`` have spent runnable, waiting for a CPU (Linux's
    schedstat); None where unknown."""
    total = 0.0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            return None
    return total


def own_cpu() -> float:
    """CPU seconds this load generator has used."""
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


async def run_step(
    port: int,
    pid: int,
    load: Workload,
    clients: int,
    seconds: float,
    kinds: set[str] | None,
    rss_every: float = 0.5,
) -> Step:
    """``clients`` keep-alive clients for ``seconds``; ``kinds`` limits the mix; the server's
    RSS sampled every ``rss_every`` seconds."""
    step = Step(seconds)
    begin = time.perf_counter()
    stop = begin + seconds
    # Per competing kind: requests in flight, and requests started so far.
    in_flight: dict[str, int] = defaultdict(int)
    started_count: dict[str, int] = defaultdict(int)
    metrics_before = server_metrics(port)

    async def client() -> None:
        conn = TILES.Conn("127.0.0.1", port)
        while time.perf_counter() < stop:
            kind, path = load.next()
            if kinds is not None and kind not in kinds:
                continue
            if kind == "cold":
                step.cold_repeats += path in load.asked
                load.asked.add(path)
            competing = "heavy route" if kind == "route" and HEAVY_ROUTE in path else kind
            tracked = [competing, kind] if competing != kind else [kind]
            before = {k: (in_flight[k], started_count[k]) for k in COMPETING}
            for k in tracked:
                in_flight[k] += 1
                started_count[k] += 1
            connecting = conn.writer is None
            started = time.perf_counter()
            try:
                status, _ = await asyncio.wait_for(conn.get(path), CLIENT_TIMEOUT)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
                step.conn_errors += 1
                step.conn_kinds[f"{kind} {type(exc).__name__}"] += 1
                conn.close()
                conn = TILES.Conn("127.0.0.1", port)
                continue
            finally:
                for k in tracked:
                    in_flight[k] -= 1
            if status >= 500:
                step.server_errors += 1
                step.error_kinds[f"{kind} {status}"] += 1
                continue
            millis = (time.perf_counter() - started) * 1000
            step.latencies[kind].append(millis)
            step.cold_empty += kind == "cold" and status == 204
            if kind == "cached":
                if connecting:
                    step.cached_connecting.append(millis)
                step.cached_at.append((started - begin, millis))
                if conn.writer is not None:
                    step.cached_by_port.append((conn.writer.get_extra_info("sockname")[1], millis))
                overlapped = [
                    k for k, (n, count) in before.items() if n > 0 or started_count[k] > count
                ]
                for k in overlapped or ["nothing"]:
                    step.cached_with[k].append(millis)
        conn.close()

    async def sample_rss() -> None:
        while True:
            now = time.perf_counter()
            step.rss_mb.append((now - begin, server_rss_mb(pid)))
            if now + rss_every > stop:
                return
            await asyncio.sleep(rss_every)

    async def sample_workers() -> None:
        # Which worker holds each client's connection: once the clients have all connected,
        # and late in the run (connections opened again after an error).
        for at in (1.0, seconds - 0.5):
            await asyncio.sleep(max(0.0, begin + at - time.perf_counter()))
            held = await asyncio.to_thread(connections_by_worker, loops, port)
            step.port_worker.update(held)
            if not step.worker_connections:
                step.worker_connections = dict.fromkeys(loops, 0)
                for pid in held.values():
                    step.worker_connections[pid] += 1

    async def watch_loop() -> None:
        loop = asyncio.get_running_loop()
        counts = dict.fromkeys(STALL_MS, 0)
        while time.perf_counter() < stop:
            before = loop.time()
            await asyncio.sleep(0.02)
            late = (loop.time() - before - 0.02) * 1000
            for threshold in STALL_MS:
                counts[threshold] += late >= threshold
        step.client_stalls = {f"{threshold}ms": n for threshold, n in counts.items()}

    client_cpu, server_cpu = own_cpu(), server_cpu_seconds(pid)
    loops = serving_loops(pid)
    loop_wait, client_wait = cpu_wait_seconds(loops), cpu_wait_seconds([os.getpid()])
    waited_from = time.perf_counter()
    await asyncio.gather(
        sample_rss(), watch_loop(), sample_workers(), *(client() for _ in range(clients))
    )
    step.client_cpu = own_cpu() - client_cpu
    step.server_cpu = server_cpu_seconds(pid) - server_cpu
    loop_waited, client_waited = cpu_wait_seconds(loops), cpu_wait_seconds([os.getpid()])
    # The clients' last answers may come in well after ``seconds``.
    lasted = time.perf_counter() - waited_from
    if loop_wait is not None and loop_waited is not None:
        step.loop_wait = (loop_waited - loop_wait) / len(loops) / lasted
    if client_wait is not None and client_waited is not None:
        step.client_wait = (client_waited - client_wait) / lasted
    metrics_after = server_metrics(port)
    from_database, now_from_database = database_tiles(metrics_before), database_tiles(metrics_after)
    if from_database is not None and now_from_database is not None:
        cold = len(step.latencies.get("cold", []))
        step.cold_from_cache = max(0, cold - (now_from_database - from_database))
    step.stalls = stalls(metrics_before, metrics_after)
    return step


def server_metrics(port: int) -> dict[str, float] | None:
    """The server's /metrics (all its workers summed), by series; None when it does not say."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


def database_tiles(metrics: dict[str, float] | None) -> int | None:
    """Tiles the server has read from the database so far, if it says."""
    if metrics is None:
        return None
    return int(metrics.get('fondplan_tile_seconds_count{source="database"}', 0))


def stalls(before: dict[str, float] | None, after: dict[str, float] | None) -> dict[str, int]:
    """The server's event-loop stalls between two readings of its metrics, by threshold."""
    if before is None or after is None:
        return {}
    prefix = "fondplan_event_loop_stalls_total{over="
    found = {
        name[len(prefix) + 1 : -2]: int(value - before.get(name, 0))
        for name, value in after.items()
        if name.startswith(prefix)
    }
    return dict(sorted(found.items(), key=lambda item: float(item[0].removesuffix("ms"))))


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


HEADER = (
    f"{'workers':>7} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
    f"{'cached p99':>10} {'cold/s':>7} {'5xx':>5} {'conn err':>8} {'RSS MB':>7}"
)


def row(workers: int, clients: int, step: Step) -> str:
    every = [v for values in step.latencies.values() for v in values]
    rate = len(every) / step.seconds
    cold = len(step.latencies.get("cold", [])) / step.seconds
    rss = max(mb for _, mb in step.rss_mb) if step.rss_mb else 0.0
    return (
        (
            f"{workers:>7} {clients:>7} {rate:>8.1f} {pct(every, 0.5):>8.1f} "
            f"{pct(every, 0.95):>8.1f} {pct(every, 0.99):>8.1f} "
            f"{pct(step.latencies.get('cached', []), 0.99):>10.1f} {cold:>7.1f} "
            f"{step.server_errors:>5} {step.conn_errors:>8} {rss:>7.0f}"
        )
        + "".join(
            f"\n{'':>16}{what}: {k} x{n}"
            for what, found in (("5xx", step.error_kinds), ("conn err", step.conn_kinds))
            for k, n in sorted(found.items())
        )
        + step.reasons
    )


def kinds_line(step: Step) -> str:
    """Answers, p50, p99 and the longest wait of each kind of request."""
    parts = [
        f"{kind} n={len(values)} {pct(values, 0.5):.0f}/{pct(values, 0.99):.0f}/{max(values):.0f}"
        for kind in MIX
        if (values := step.latencies.get(kind))
    ]
    return f"{'':>16}by kind (p50/p99/max ms): " + ", ".join(parts)


def cpu_line(step: Step) -> str:
    """The CPU the load generator and the server used, in cores (of 1 each, averaged)."""
    return (
        f"{'':>16}cpu: load generator {step.client_cpu / step.seconds:.2f} cores, "
        f"server {step.server_cpu / step.seconds:.2f} cores (all its processes), "
        f"machine {os.cpu_count()} cores; server event-loop stalls "
        + (", ".join(f">={k} x{n}" for k, n in step.stalls.items()) or "unknown")
        + "; load generator's: "
        + ", ".join(f">={k} x{n}" for k, n in step.client_stalls.items())
        + (
            f"\n{'':>16}waiting for a CPU (runnable, not running): the server's event loops "
            f"{step.loop_wait:.0%} of the run, the load generator {step.client_wait:.0%}"
            if step.loop_wait is not None and step.client_wait is not None
            else ""
        )
    )


def kept_alive(step: Step) -> list[float]:
    """Latencies of the cached tiles asked on connections already open."""
    left = list(step.latencies.get("cached", []))
    for millis in step.cached_connecting:
        left.remove(millis)
    return left


def idle_line(step: Step) -> str:
    """The cached tiles' p99 under load against the idle server's, measured just before; and
    that of those asked on connections already open (see the module's docstring)."""
    loaded, idle = pct(step.latencies.get("cached", []), 0.99), pct(step.idle_cached, 0.99)
    opened = kept_alive(step)
    return (
        f"{'':>16}cached p99 {loaded:.1f} ms under load, {idle:.1f} ms idle "
        f"(n={len(step.idle_cached)}, one client): ratio {loaded / idle:.1f}\n"
        f"{'':>16}cached p99 on open connections {pct(opened, 0.99):.1f} ms (n={len(opened)}); "
        f"the {len(step.cached_connecting)} that opened theirs: "
        f"p50 {pct(step.cached_connecting, 0.5):.1f} ms, max "
        f"{max(step.cached_connecting, default=float('nan')):.1f} ms" + workers_line(step)
    )


async def idle_cached(port: int, paths: Sequence[str], count: int = IDLE_REQUESTS) -> list[float]:
    """Latencies (ms) of ``count`` cached tiles asked one after the other of the idle server."""
    conn = TILES.Conn("127.0.0.1", port)
    latencies = []
    try:
        for i in range(count):
            started = time.perf_counter()
            await conn.get(paths[i % len(paths)])
            latencies.append((time.perf_counter() - started) * 1000)
    finally:
        conn.close()
    return latencies


def cold_line(step: Step) -> str:
    """How uncached the cold tiles were: repeats and cache answers should both be 0."""
    cold = len(step.latencies.get("cold", []))
    cached = "?" if step.cold_from_cache is None else str(step.cold_from_cache)
    return (
        f"{'':>16}cold: {cold} tiles, {step.cold_empty} empty (no data there), "
        f"{step.cold_repeats} repeats, {cached} from the server's cache"
    )


def workers_line(step: Step) -> str:
    """How the clients' connections were shared by the server's processes (uvicorn's workers
    accept from one listening socket), and the cached p99 of each process."""
    if len(step.worker_connections) < 2:
        return ""
    by_worker: dict[int, list[float]] = defaultdict(list)
    for port, millis in step.cached_by_port:
        if port in step.port_worker:
            by_worker[step.port_worker[port]].append(millis)
    parts = [
        f"{held} connections, cached p99 {pct(by_worker[pid], 0.99):.1f} ms "
        f"(n={len(by_worker[pid])})"
        for pid, held in sorted(step.worker_connections.items(), key=lambda item: -item[1])
    ]
    return f"\n{'':>16}by worker at 1 s: " + "; ".join(parts)


def competition_lines(step: Step) -> str:
    """The p99 of cached tiles by the other work in flight during them."""
    parts = [
        f"{kind} {pct(step.cached_with[kind], 0.99):.1f} ms (n={len(step.cached_with[kind])})"
        for kind in (*COMPETING, "nothing")
        if step.cached_with.get(kind)
    ]
    by_second: dict[int, list[float]] = defaultdict(list)
    for at, millis in step.cached_at:
        by_second[int(at)].append(millis)
    seconds = ", ".join(
        f"{second}s {pct(values, 0.99):.0f} (n={len(values)})"
        for second, values in sorted(by_second.items())
    )
    return (
        f"{'':>16}cached p99 while in flight: "
        + ", ".join(parts)
        + f"\n{'':>16}cached p99 ms by second of the run it was asked in: {seconds}"
    )


def slope(points: Sequence[tuple[float, float]]) -> float:
    """The least-squares slope of (x, y) points (0 for fewer than two)."""
    if len(points) < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0


def soak_report(step: Step, workers: int, clients: int) -> str:
    """The RSS curve of a long run and its slope, whole and over the second half (after the
    caches have filled)."""
    lines = [f"soak: {step.seconds:.0f} s, {clients} clients, --workers {workers}"]
    lines.append(f"{'t s':>6} {'RSS MB':>8}")
    lines += [f"{t:>6.0f} {mb:>8.1f}" for t, mb in step.rss_mb]
    later = [(t, mb) for t, mb in step.rss_mb if t >= step.seconds / 2]
    lines.append(
        f"RSS slope: {slope(step.rss_mb) * 60:+.2f} MB/min over the run, "
        f"{slope(later) * 60:+.2f} MB/min over its second half; "
        f"first {step.rss_mb[0][1]:.0f} MB, last {step.rss_mb[-1][1]:.0f} MB, "
        f"max {max(mb for _, mb in step.rss_mb):.0f} MB"
    )
    lines += [HEADER, row(workers, clients, step), kinds_line(step), cpu_line(step)]
    return "\n".join(lines)


def serve(url: str, workers: int, cache_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A server over ``url``; its log goes to ``cache_dir``/server.log (see reasons_5xx)."""
    port = TILES.free_port()
    env = {
        **os.environ,
        "FONDPLAN_DATABASE_URL": url,
        "FONDPLAN_CACHE_DIR": str(cache_dir),
    }
    command = [sys.executable, "-m", "tileserver.cli", "serve", "--port", str(port)]
    with (cache_dir / SERVER_LOG).open("wb") as log:
        proc = subprocess.Popen(
            [*command, "--workers", str(workers)], env=env, cwd=ROOT, stderr=log
        )
    TILES.wait_http(f"http://127.0.0.1:{port}/health", proc, timeout=300)
    return proc, port


#: How the server logs a traced event-loop stall (tileserver.server.StallTrace).
STALL_TRACED = re.compile(r"event loop stalled (?P<ms>\d+) ms: \d+/\d+ in (?P<where>[^;]*)")


def traced_stalls(cache_dir: Path) -> str:
    """The server's traced event-loop stalls (``--trace-stalls``): their count and time by
    where the loop spent most of each, most time first."""
    count: dict[str, int] = defaultdict(int)
    spent: dict[str, int] = defaultdict(int)
    for line in (cache_dir / SERVER_LOG).read_text(errors="replace").splitlines():
        found = STALL_TRACED.search(line)
        if found:
            count[found["where"]] += 1
            spent[found["where"]] += int(found["ms"])
    return "".join(
        f"\n{'':>16}stalls x{count[where]}, {ms} ms in all, mostly in: {where}"
        for where, ms in sorted(spent.items(), key=lambda item: -item[1])
    )


def reasons_5xx(cache_dir: Path) -> str:
    """The server's reasons for its 5xx answers (logged once each), counted."""
    reasons: dict[str, int] = defaultdict(int)
    for line in (cache_dir / SERVER_LOG).read_text(errors="replace").splitlines():
        found = ANSWERED_5XX.search(line)
        if found:
            reasons[f"{found['path'].split('/')[1]} {found['status']}: {found['reason']}"] += 1
    return "".join(f"\n{'':>16}server: {k} x{n}" for k, n in sorted(reasons.items()))


#: Connections warm_up opens at most to reach every worker.
WARM_CONNECTIONS = 64


async def warm_up(port: int, paths: Sequence[str], pid: int) -> None:
    """Ask every tile of each of the server's processes, whose memory caches are their own.

    They accept connections from one listening socket, unevenly: connections are opened until
    each process holds one, and every tile is asked on each of those (a tile asked only on
    the connections one process happened to accept would be cut or read from disk by the
    others during the run, not answered from their memory).
    """
    workers = serving_loops(pid)
    held: dict[int, Any] = {}
    conns = []
    while len(held) < len(workers) and len(conns) < WARM_CONNECTIONS:
        conn = TILES.Conn("127.0.0.1", port)
        await conn.get(paths[0])
        conns.append(conn)
        assert conn.writer is not None
        owner = connections_by_worker(workers, port).get(conn.writer.get_extra_info("sockname")[1])
        if owner is not None:
            held.setdefault(owner, conn)
    if len(held) < len(workers):
        print(f"warning: warmed {len(held)} of the {len(workers)} workers' caches", flush=True)

    async def ask_all(conn: Any) -> None:
        for path in paths:
            await conn.get(path)

    await asyncio.gather(*(ask_all(conn) for conn in held.values()))
    for conn in conns:
        conn.close()


def fresh_step(
    url: str,
    bbox: Sequence[float],
    workers: int,
    clients: int,
    seconds: float,
    kinds: set[str] | None,
) -> Step:
    """One step against a server started for it, with empty caches (memory, disk, plans,
    renders), warmed with the cached tiles only: its cold tiles start over from the data's."""
    load, warm = workload(bbox)
    with tempfile.TemporaryDirectory(prefix="fondplan-load-") as tmp:
        proc, port = serve(url, workers, Path(tmp))
        try:
            asyncio.run(warm_up(port, warm, proc.pid))
            idle = asyncio.run(idle_cached(port, warm))
            step = asyncio.run(run_step(port, proc.pid, load, clients, seconds, kinds))
            step.idle_cached = idle
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        step.reasons = reasons_5xx(Path(tmp)) + traced_stalls(Path(tmp))
        return step


def _db() -> tuple[str, str]:
    """(admin URL, URL) of a throwaway database in the embedded cluster."""
    cluster = EmbeddedCluster(Path(os.environ.get("FONDPLAN_DATA_DIR", ROOT / "var")))
    cluster.start()
    dbname = f"fondplan_bench_load_{os.getpid()}"
    ensure_database(cluster.url("postgres"), dbname)
    return cluster.url("postgres"), cluster.url(dbname)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each step")
    parser.add_argument("--clients", default="1,8,32,128", help="client counts, comma-separated")
    parser.add_argument("--workers", default="1,2", help="server processes, comma-separated")
    parser.add_argument(
        "--database-url", help="an imported database with routing data, instead of importing"
    )
    parser.add_argument(
        "--soak",
        type=float,
        metavar="SECONDS",
        help="instead of the curve: one long run sampling the server's RSS (all its processes)",
    )
    parser.add_argument(
        "--rss-every",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how often --soak samples the RSS",
    )
    parser.add_argument(
        "--by-competition",
        action="store_true",
        help="also print the cached tiles' p99 by the kind of other work in flight during them",
    )
    parser.add_argument(
        "--without",
        default="",
        help="kinds left out of the mix, comma-separated (e.g. plan), to see what they cost",
    )
    parser.add_argument(
        "--trace-stalls",
        type=float,
        metavar="MS",
        help="have the server log its event-loop stalls from MS on with where they were spent "
        "(FONDPLAN_STALL_TRACE), and print them by place",
    )
    parser.add_argument(
        "--no-cold-only",
        action="store_true",
        help="skip the cold-tiles-only runs after the curve",
    )
    args = parser.parse_args()
    client_counts = [int(v) for v in args.clients.split(",")]
    left_out = {kind.strip() for kind in args.without.split(",") if kind.strip()}
    if left_out - set(MIX):
        parser.error(f"--without takes kinds among {', '.join(MIX)}")
    mix = set(MIX) - left_out if left_out else None
    worker_counts = [int(v) for v in args.workers.split(",")]
    if args.trace_stalls:
        os.environ["FONDPLAN_STALL_TRACE"] = str(args.trace_stalls / 1000)

    admin, url = _db() if args.database_url is None else ("", args.database_url)
    dbname = url.rsplit("/", 1)[1]
    try:
        bbox = _imported(url) if args.database_url is None else _bbox(url)
        load, warm = workload(bbox)
        if args.soak:
            workers, clients = worker_counts[0], client_counts[0]
            with tempfile.TemporaryDirectory(prefix="fondplan-load-") as tmp:
                proc, port = serve(url, workers, Path(tmp))
                try:
                    asyncio.run(warm_up(port, warm, proc.pid))
                    step = asyncio.run(
                        run_step(port, proc.pid, load, clients, args.soak, None, args.rss_every)
                    )
                finally:
                    proc.terminate()
                    proc.wait(timeout=60)
                step.reasons = reasons_5xx(Path(tmp))
                print(soak_report(step, workers, clients), flush=True)
            return 0
        cold_rates: dict[tuple[int, int], float] = {}
        lines = []
        for workers in worker_counts:
            for clients in client_counts:
                step = fresh_step(url, bbox, workers, clients, args.seconds, mix)
                lines.append(row(workers, clients, step))
                print(lines[-1] if len(lines) > 1 else f"{HEADER}\n{lines[-1]}", flush=True)
                print(cold_line(step), flush=True)
                print(kinds_line(step), flush=True)
                print(cpu_line(step), flush=True)
                print(idle_line(step), flush=True)
                if args.by_competition:
                    print(competition_lines(step), flush=True)
            for clients in () if args.no_cold_only else (1, 32):
                step = fresh_step(url, bbox, workers, clients, args.seconds / 2, {"cold"})
                cold_rates[(workers, clients)] = len(step.latencies["cold"]) / step.seconds
                errors = step.server_errors + step.conn_errors
                print(
                    f"  cold tiles only, {clients:>3} clients: "
                    f"{cold_rates[(workers, clients)]:.1f} tiles/s, "
                    f"p99 {pct(step.latencies['cold'], 0.99):.0f} ms, {errors} errors",
                    flush=True,
                )
                print(cold_line(step), flush=True)
        print()
        print(HEADER)
        print("\n".join(lines))
        for workers in worker_counts if cold_rates else ():
            ratio = cold_rates[(workers, 32)] / max(cold_rates[(workers, 1)], 1e-9)
            print(f"cold tiles/s at 32 clients / at 1 client, --workers {workers}: {ratio:.2f}")
    finally:
        if args.database_url is None:
            drop_database(admin, dbname)
    return 0


def _imported(url: str) -> Sequence[float]:
    """Import the sample with its routing data into ``url``; the data's bbox."""
    print(f"importing {SAMPLE.name} and building the routing graphs ...", flush=True)
    summary = run_import(url, [SAMPLE])
    from routing.build import build_graphs

    build_graphs(url, quiet=True)
    assert summary.bbox is not None
    return summary.bbox


def _bbox(url: str) -> Sequence[float]:
    """The bbox of the data imported in ``url``."""
    conn = psycopg2.connect(url)
    try:
        bbox = read_catalog(conn).bbox()
    finally:
        conn.close()
    assert bbox is not None, f"nothing imported in {url}"
    return bbox


if __name__ == "__main__":
    raise SystemExit(main())
