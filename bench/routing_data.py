"""Routing data lifecycle benchmark: build, stored size, server start and memory per worker.

    python bench/routing_data.py [--scale N] [--file F.osm.pbf] [--port 8791]

1. the input: the extract repeated N times side by side (bench/import.py's ``build_scaled``),
2. ``fondplan import`` into a throwaway database: the routing data is built inside the staged
   import, before the swap; its time per profile is read from the import's progress lines,
3. the routing data's size in the database (``osm.routing_data``),
4. ``fondplan serve`` (one worker, empty file cache): seconds until ``/health`` answers, until
   every routing profile is loaded (``status`` ok) and until a first ``/route`` answers; the
   server's RSS and PSS (psutil ``memory_full_info``),
5. ``fondplan serve --workers 2`` (warm file cache): the same, with the PSS of each worker,
   so what a second worker adds is seen.
Every figure is printed with the goal of the region-scale issue.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psutil
from common import load_bench

from osmimport.database import connect, drop_database, ensure_database

ROOT = Path(__file__).resolve().parent.parent
bench_import = load_bench("import")
DEFAULT_FILE = ROOT / "data" / "sample" / "liechtenstein-2021-05-05.osm.pbf"
#: Vaduz to Schaan, in the first copy of the extract.
ROUTE = "/route/v1/driving/9.5209,47.1410;9.5095,47.1650?overview=false"
BUILT = re.compile(r"routing: (\w+) graph .* built in ([0-9.]+) s")


def _get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _tree_memory(process: psutil.Process) -> list[tuple[int, float, float]]:
    """(pid, RSS MB, PSS MB) of the server and each of its child processes."""
    found = []
    for proc in [process, *process.children(recursive=True)]:
        try:
            info = proc.memory_full_info()
        except psutil.Error:
            continue
        found.append((proc.pid, info.rss / 1e6, info.pss / 1e6))
    return found


def serve(env: dict[str, str], port: int, workers: int) -> dict[str, object]:
    """Start ``fondplan serve``, time it until ready, measure its memory, stop it."""
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "tileserver.cli", "serve", "--port", str(port),
         "--workers", str(workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    result: dict[str, object] = {}
    try:
        deadline = started + 1800
        while "health" not in result:
            try:
                status, _ = _get(base + "/health")
                if status == 200:
                    result["health"] = time.monotonic() - started
            except (urllib.error.URLError, ConnectionError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server never answered /health")
            time.sleep(0.05)
        while "route" not in result:
            status, body = _get(base + ROUTE)
            if status == 200 and body.get("code") == "Ok":
                result["route"] = time.monotonic() - started
            elif time.monotonic() > deadline:
                raise RuntimeError(f"no route: {body}")
            else:
                time.sleep(0.05)
        streak = 0
        # Each worker loads on its own: ready when every answer says so for a while.
        while streak < 10 * workers:
            _, body = _get(base + "/health")
            streak = streak + 1 if body.get("status") == "ok" else 0
            result.setdefault("ready", time.monotonic() - started) if streak == 1 else None
            time.sleep(0.05)
        time.sleep(1.0)
        result["memory"] = _tree_memory(psutil.Process(process.pid))
    finally:
        process.terminate()
        process.wait(timeout=60)
    return result


def main() -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--scale", type=int, default=1, help="repeat the extract N times")
    parser.add_argument("--port", type=int, default=8791)
    args = parser.parse_args()
    admin = bench_import.admin_url()
    name = f"fondplan_bench_{uuid.uuid4().hex[:8]}"
    ensure_database(admin, name)
    url = admin.rsplit("/", 1)[0] + "/" + name
    with tempfile.TemporaryDirectory(prefix="fondplan-routing-bench-") as tmp:
        try:
            source = args.file
            if args.scale > 1:
                source = Path(tmp) / f"scaled-{args.scale}.osm.pbf"
                bench_import.build_scaled(args.file, args.scale, source)
            env = {
                **os.environ,
                "FONDPLAN_DATABASE_URL": url,
                "FONDPLAN_DATA_DIR": str(Path(tmp) / "data"),
            }
            began = time.monotonic()
            done = subprocess.run(
                [sys.executable, "-m", "tileserver.cli", "import", str(source)],
                env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            import_seconds = time.monotonic() - began
            size = source.stat().st_size
            builds = {m.group(1): float(m.group(2)) for m in BUILT.finditer(done.stderr)}
            conn = connect(url)
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT to_regclass('osm.routing_data') IS NOT NULL")
                    row = cur.fetchone()
                    # Before the array format: pickled graphs in routing.graphs (for a
                    # measurement of an older checkout).
                    table, column, profiles = (
                        ("osm.routing_data", "data", "osm.routing_profiles")
                        if row and row[0]
                        else ("routing.graphs", "graph", "routing.graphs")
                    )
                    cur.execute(
                        f"SELECT coalesce(sum(octet_length({column})), 0), "
                        f"pg_total_relation_size('{table}') FROM {table}"
                    )
                    row = cur.fetchone()
                    assert row is not None
                    stored, on_disk = int(row[0]), int(row[1])
                    cur.execute(f"SELECT profile, edges FROM {profiles}")
                    edges = dict(cur.fetchall())
            finally:
                conn.close()
            one = serve(env, args.port, 1)
            two = serve(env, args.port, 2)
        finally:
            drop_database(admin, name)
    print(f"input: {args.file.name} x{args.scale} ({size / 1e6:.1f} MB)")
    print(f"scale {args.scale}: import (with routing) {import_seconds:.1f} s")
    for profile, seconds in builds.items():
        print(f"  routing build {profile}: {seconds:.1f} s, {edges.get(profile, 0)} edges")
    print(f"  routing build total: {sum(builds.values()):.1f} s")
    print(f"routing data in the database: {stored / 1e6:.1f} MB ({on_disk / 1e6:.1f} MB on disk)")
    for label, run in (("1 worker, cold file cache", one), ("2 workers, warm file cache", two)):
        print(
            f"serve, {label}: /health {run['health']:.1f} s (goal <= 10 s), first route "
            f"{run['route']:.1f} s, every profile loaded {run['ready']:.1f} s"
        )
        memory = run["memory"]
        assert isinstance(memory, list)
        for pid, rss, pss in memory:
            print(f"  process {pid}: RSS {rss:.0f} MB, PSS {pss:.0f} MB")
    workers = two["memory"]
    assert isinstance(workers, list)
    single = one["memory"]
    assert isinstance(single, list)
    print(f"one worker RSS: {single[0][1] / 1e3:.2f} GB (goal <= 1 GB)")
    # What the second worker adds: both workers' PSS against the lone server's.
    added = sum(pss for _, _, pss in workers[1:]) - single[0][2]
    print(f"a second worker adds (PSS): {added / 1e3:.2f} GB (goal <= 0.3 GB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
