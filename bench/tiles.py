"""Vector tile benchmark: fondplan vs TiPg (same PostGIS tables) vs TileServer GL light (MBTiles).

Imports Liechtenstein into a throwaway database, exports it to MBTiles, starts the three servers
on loopback, then measures in one run:
  * cold latency p50/p95 per zoom (every tile of the area once, nothing cached);
  * cold throughput (tiles/s, 4 clients): a TiPg "tile" is one request per layer table;
  * hot throughput (tiles/s, 32 keep-alive clients) on tiles already cached / in the file.

    .venv/bin/python bench/tiles.py [--seconds 10] [--clients 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "import"))

from osmimport import schema  # noqa: E402
from osmimport.database import drop_database, ensure_database  # noqa: E402
from osmimport.embedded import EmbeddedCluster  # noqa: E402
from osmimport.importer import run_import  # noqa: E402
from tileserver.tiling import tiles_in_bbox  # noqa: E402

SAMPLE = ROOT / "data" / "sample" / "liechtenstein-2021-05-05.osm.pbf"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited ({proc.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url}: server did not answer")


# -- a minimal keep-alive HTTP/1.1 client (so the client is not what is measured) -----------
class Conn:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, int]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Accept-Encoding: gzip\r\nConnection: keep-alive\r\n\r\n".encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        size = 0
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                n = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if n:
                    size += len(await self.reader.readexactly(n))
                await self.reader.readexactly(2)
                if n == 0:
                    break
        elif "content-length" in headers:
            size = len(await self.reader.readexactly(int(headers["content-length"])))
        if headers.get("connection", "").lower() == "close":
            self.writer.close()
            self.writer = None
        return status, size

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def cold_latencies(
    port: int, units: Sequence[tuple[int, Sequence[str]]]
) -> dict[int, list[float]]:
    """Each unit (zoom, paths) fetched once, sequentially; a unit's paths are fetched together."""
    conns = [Conn("127.0.0.1", port) for _ in range(32)]
    out: dict[int, list[float]] = {}
    for zoom, paths in units:
        t = time.perf_counter()
        results = await asyncio.gather(*(conns[i % 32].get(p) for i, p in enumerate(paths)))
        for status, _ in results:
            assert status in (200, 204), (paths, status)
        out.setdefault(zoom, []).append((time.perf_counter() - t) * 1000)
    for c in conns:
        c.close()
    return out


async def throughput(
    port: int, units: Sequence[Sequence[str]], clients: int, seconds: float | None
) -> float:
    """Units (tiles) per second with ``clients`` concurrent workers; once through or for N s."""
    queue = list(units)
    width = max(len(u) for u in queue)  # one connection per request of a unit
    done = 0
    stop = time.perf_counter() + seconds if seconds else None

    async def worker(k: int) -> None:
        nonlocal done
        conns = [Conn("127.0.0.1", port) for _ in range(width)]
        i = k
        while True:
            if stop is None:
                if i >= len(queue):
                    break
            elif time.perf_counter() >= stop:
                break
            paths = queue[i % len(queue)]
            i += clients
            results = await asyncio.gather(*(conns[j].get(p) for j, p in enumerate(paths)))
            assert all(s in (200, 204) for s, _ in results), (paths, results)
            done += 1
        for c in conns:
            c.close()

    t = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(clients)))
    return done / (time.perf_counter() - t)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="hot run length")
    parser.add_argument("--clients", type=int, default=32, help="hot concurrent clients")
    args = parser.parse_args()

    cluster = EmbeddedCluster(Path(os.environ.get("FONDPLAN_DATA_DIR", ROOT / "var")))
    cluster.start()
    admin = cluster.url("postgres")
    dbname = f"fondplan_bench_{os.getpid()}"
    ensure_database(admin, dbname)
    url = cluster.url(dbname)
    tmp = Path(tempfile.mkdtemp(prefix="fondplan-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        print(f"importing {SAMPLE.name} ...", flush=True)
        summary = run_import(url, [SAMPLE])
        bbox = tuple(summary.bbox or ())
        assert len(bbox) == 4
        env = {**os.environ, "FONDPLAN_DATABASE_URL": url, "FONDPLAN_CACHE_DISK": "false"}
        mbtiles = tmp / "basemap.mbtiles"
        subprocess.run(
            [sys.executable, "-m", "tileserver.cli", "export", str(mbtiles)],
            env={**env, "FONDPLAN_CACHE_DIR": str(tmp / "c")},
            check=True,
            cwd=ROOT,
            stderr=subprocess.DEVNULL,
        )
        tiles = list(tiles_in_bbox(bbox, 10, 14))  # type: ignore[arg-type]

        ours_port, tipg_port, gl_port = free_port(), free_port(), free_port()
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "tileserver.cli", "serve", "--port", str(ours_port)],
                env=env,
                cwd=ROOT,
                stderr=subprocess.DEVNULL,
            )
        )
        tipg_env = {
            **os.environ,
            "DATABASE_URL": url,
            "TIPG_DB_SCHEMAS": json.dumps([schema.SCHEMA]),
            "TIPG_MAX_FEATURES_PER_TILE": "100000",
        }
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "tipg.main:app",
                    "--port",
                    str(tipg_port),
                    "--log-level",
                    "warning",
                ],
                env=tipg_env,
                stderr=subprocess.DEVNULL,
            )
        )
        gl_bin = ROOT / "node_modules" / ".bin" / "tileserver-gl"
        have_gl = gl_bin.exists() and shutil.which("node") is not None
        if have_gl:
            # npm hoists tileserver-gl-styles, where the server does not look by itself.
            config = {
                "options": {
                    "paths": {
                        "root": str(ROOT / "node_modules" / "tileserver-gl-styles"),
                        "mbtiles": str(tmp),
                    }
                },
                "data": {"basemap": {"mbtiles": mbtiles.name}},
            }
            (tmp / "config.json").write_text(json.dumps(config))
            procs.append(
                subprocess.Popen(
                    [str(gl_bin), "--config", "config.json", "--port", str(gl_port), "--silent"],
                    cwd=tmp,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        wait_http(f"http://127.0.0.1:{ours_port}/health", procs[0])
        wait_http(f"http://127.0.0.1:{tipg_port}/collections", procs[1])
        if have_gl:
            wait_http(f"http://127.0.0.1:{gl_port}/health", procs[2])

        def ours(z: int, x: int, y: int) -> list[str]:
            return [f"/tiles/basemap/{z}/{x}/{y}.mvt"]

        def tipg(z: int, x: int, y: int) -> list[str]:
            tables = sorted(
                {lay.table_for_zoom(z) for lay in schema.LAYERS if lay.minzoom <= z <= lay.maxzoom}
            )
            return [
                f"/collections/{schema.SCHEMA}.{t}/tiles/WebMercatorQuad/{z}/{x}/{y}"
                for t in tables
            ]

        def gl(z: int, x: int, y: int) -> list[str]:
            return [f"/data/basemap/{z}/{x}/{y}.pbf"]

        print(f"{len(tiles)} tiles z10-14 over the sample's bbox; {args.clients} hot clients\n")
        ours_cold = asyncio.run(cold_latencies(ours_port, [(t[0], ours(*t)) for t in tiles]))
        tipg_cold = asyncio.run(cold_latencies(tipg_port, [(t[0], tipg(*t)) for t in tiles]))
        print("cold latency per tile (ms)   fondplan p50 / p95     TiPg (all layers) p50 / p95")
        for z in range(10, 15):
            o, t = ours_cold[z], tipg_cold[z]
            print(
                f"  z{z:<2} ({len(o):3d} tiles)            {pct(o, 0.5):6.1f} / {pct(o, 0.95):6.1f}"
                f"        {pct(t, 0.5):7.1f} / {pct(t, 0.95):7.1f}"
            )
        # Cold throughput: a fresh fondplan (empty cache) vs TiPg, 4 clients, every tile once.
        procs[0].terminate()
        procs[0].wait()
        ours_port = free_port()
        procs[0] = subprocess.Popen(
            [sys.executable, "-m", "tileserver.cli", "serve", "--port", str(ours_port)],
            env=env,
            cwd=ROOT,
            stderr=subprocess.DEVNULL,
        )
        wait_http(f"http://127.0.0.1:{ours_port}/health", procs[0])
        ours_cold_tps = asyncio.run(throughput(ours_port, [ours(*t) for t in tiles], 4, None))
        tipg_cold_tps = asyncio.run(throughput(tipg_port, [tipg(*t) for t in tiles], 4, None))
        print(
            f"\ncold throughput (4 clients): fondplan {ours_cold_tps:.0f} tiles/s, "
            f"TiPg {tipg_cold_tps:.1f} tiles/s, ratio {ours_cold_tps / tipg_cold_tps:.1f}x "
            "(goal >= 3x)"
        )
        hot_paths = [ours(*t) for t in tiles]
        ours_hot = asyncio.run(throughput(ours_port, hot_paths, args.clients, args.seconds))
        line = f"hot throughput ({args.clients} clients): fondplan {ours_hot:.0f} tiles/s"
        if have_gl:
            gl_hot = asyncio.run(
                throughput(gl_port, [gl(*t) for t in tiles], args.clients, args.seconds)
            )
            line += f", tileserver-gl-light {gl_hot:.0f} tiles/s, ratio {ours_hot / gl_hot:.2f}x"
            line += " (goal >= 1x)"
        print(line)
        z10_14 = [v for z in range(10, 15) for v in ours_cold[z]]
        print(
            f"cold p95 z10-14: fondplan {pct(z10_14, 0.95):.1f} ms (goal <= 50 ms); "
            f"median of all {statistics.median(z10_14):.1f} ms"
        )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
        drop_database(admin, dbname)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
