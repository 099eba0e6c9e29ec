"""Raster tiles: cold and hot p50/p95 per zoom (256 and 512 px), vector hot as the peer, RSS.

.venv/bin/python bench/raster.py [--database-url URL] [--renders 5000] [--every 500]
    [--max-renders N] [--skip-latency]

Without --database-url the Liechtenstein sample is imported into a throwaway database of the
embedded PostGIS (dropped at the end).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import uuid
import warnings
from pathlib import Path

import psutil

from osmimport.database import drop_database, ensure_database
from osmimport.embedded import EmbeddedCluster
from osmimport.settings import DatabaseSettings, ImportSettings
from tileserver.app import create_app
from tileserver.raster import RasterPool, RasterSettings, TileRequest
from tileserver.settings import CacheSettings, Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample" / "liechtenstein-2021-05-05.osm.pbf"
VADUZ = (9.5209, 47.1410)
STYLE = "colour"


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def tiles_around(z: int, count: int) -> list[tuple[int, int, int]]:
    cx, cy = tile_of(*VADUZ, z)
    side = math.ceil(math.sqrt(count))
    out = []
    for i in range(count):
        out.append((z, cx - side // 2 + i % side, cy - side // 2 + i // side))
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def timed(client: TestClient, path: str) -> float:
    start = time.perf_counter()
    response = client.get(path)
    elapsed = time.perf_counter() - start
    if response.status_code not in (200, 204):
        raise SystemExit(f"{path}: {response.status_code} {response.text[:200]}")
    return elapsed


def latency(url: str, per_zoom: int) -> None:
    settings = Settings(
        database=DatabaseSettings(database_url=url), cache=CacheSettings(disk=False)
    )
    with TestClient(create_app(settings)) as client:
        timed(client, f"/styles/{STYLE}/0/0/0.png")  # start the render process, load the style
        print(
            f"{'tiles':<14}{'zoom':>5}{'cold p50':>10}{'cold p95':>10}{'hot p50':>9}"
            f"{'hot p95':>9}{'vec hot p50':>13}{'hot/vec':>9}"
        )
        for size in (256, 512):
            prefix = f"/styles/{STYLE}" + ("" if size == 256 else "/512")
            for z in (10, 12, 14, 16):
                tiles = tiles_around(z, per_zoom)
                cold = [timed(client, f"{prefix}/{t[0]}/{t[1]}/{t[2]}.png") for t in tiles]
                hot = [timed(client, f"{prefix}/{t[0]}/{t[1]}/{t[2]}.png") for t in tiles]
                vz = min(z, 14)
                vec_paths = [
                    f"/tiles/basemap/{vz}/{t[1] >> (z - vz)}/{t[2] >> (z - vz)}.mvt" for t in tiles
                ]
                for path in vec_paths:
                    timed(client, path)
                vec = [timed(client, path) for path in vec_paths]
                ratio = statistics.median(hot) / statistics.median(vec)
                print(
                    f"{f'raster {size}px':<14}{z:>5}{pct(cold, 0.5):>10.1f}{pct(cold, 0.95):>10.1f}"
                    f"{pct(hot, 0.5):>9.2f}{pct(hot, 0.95):>9.2f}{pct(vec, 0.5):>13.2f}"
                    f"{ratio:>9.2f}"
                )


def rss_mib(pool: RasterPool) -> float:
    """The resident memory of the pool's current render process."""
    assert pool.pid is not None
    return float(psutil.Process(pool.pid).memory_info().rss / 2**20)


def memory(url: str, renders: int, max_renders: int, every: int) -> None:
    """RSS of the render process every ``every`` renders, with recycling after ``max_renders``."""
    pool = RasterPool(database_url=url, settings=RasterSettings(max_renders=max_renders))
    requests = [
        TileRequest(STYLE, *t, tile_size=size)
        for z in (12, 13, 14, 15, 16)
        for t in tiles_around(z, 100)
        for size in (256, 512)
    ]
    samples: list[tuple[int, float]] = []
    start = time.perf_counter()
    try:
        for i in range(renders):
            pool.render(requests[i % len(requests)])
            if (i + 1) % every == 0:
                samples.append((i + 1, rss_mib(pool)))
    finally:
        pool.close()
    elapsed = time.perf_counter() - start
    label = f"recycled every {max_renders}" if max_renders else "never recycled"
    print(f"render process RSS (MiB), {label}, {len(requests)} distinct tiles:")
    print("  " + "  ".join(f"{n}:{rss:.0f}" for n, rss in samples))
    warm = [rss for n, rss in samples if n >= renders // 10]
    print(
        f"  after warm-up: min {min(warm):.0f}, max {max(warm):.0f}, last {samples[-1][1]:.0f} "
        f"MiB; {renders / elapsed:.0f} renders/s; {pool.recycles} recycles"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url")
    parser.add_argument("--renders", type=int, default=5000)
    parser.add_argument("--every", type=int, default=500, help="print RSS every N renders")
    parser.add_argument(
        "--max-renders",
        type=int,
        default=RasterSettings().max_renders,
        help="recycle the render process after N renders (0: never); both are run",
    )
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--per-zoom", type=int, default=25)
    args = parser.parse_args()
    admin = name = None
    url = args.database_url
    if url is None:
        from osmimport.importer import run_import

        cluster = EmbeddedCluster(ImportSettings().database.data_dir)
        cluster.start()
        admin = cluster.url("postgres")
        name = f"fondplan_bench_{uuid.uuid4().hex[:8]}"
        ensure_database(admin, name)
        url = cluster.url(name)
        run_import(url, [SAMPLE])
    try:
        if not args.skip_latency:
            latency(url, args.per_zoom)
        memory(url, args.renders, 0, args.every)
        if args.max_renders:
            memory(url, args.renders, args.max_renders, args.every)
    finally:
        if admin is not None and name is not None:
            drop_database(admin, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
