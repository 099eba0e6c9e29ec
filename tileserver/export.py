"""Seeding the tile cache and exporting tiles to PMTiles v3 or MBTiles, with progress."""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer as PMTilesWriter

from osmimport.mercator import BBox
from tileserver.cache import CachedTile
from tileserver.errors import ArchiveError
from tileserver.service import TileService
from tileserver.sources import ATTRIBUTION
from tileserver.tiling import count_tiles, tiles_in_bbox

TileXYZ = tuple[int, int, int]
#: Called with each tile fetched, in order.
OnTile = Callable[[TileXYZ, CachedTile], None]


class Progress:
    """Prints ``done/total, tiles/s, ETA`` at most once a second, then a summary line."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self.total = total
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.started = time.monotonic()
        self._last = 0.0

    def rate(self) -> float:
        """Tiles per second so far."""
        return self.done / max(time.monotonic() - self.started, 1e-9)

    def step(self, n: int = 1) -> None:
        """Count ``n`` more tiles; print when a second has passed."""
        self.done += n
        now = time.monotonic()
        if now - self._last >= 1.0 or self.done == self.total:
            self._last = now
            rate = self.rate()
            left = (self.total - self.done) / rate if rate > 0 else 0.0
            print(
                f"{self.label}: {self.done}/{self.total} tiles, {rate:.0f} tiles/s, "
                f"ETA {int(left) // 60:d}:{int(left) % 60:02d}",
                file=self.stream,
                flush=True,
            )


@dataclass
class RunSummary:
    """What a seed or export did."""

    tiles: int
    non_empty: int
    bytes: int
    largest: int
    largest_tile: TileXYZ | None
    seconds: float

    def line(self, label: str) -> str:
        """A one-line summary."""
        big = ""
        if self.largest_tile is not None:
            z, x, y = self.largest_tile
            big = f", largest {self.largest / 1024:.0f} KiB ({z}/{x}/{y})"
        return (
            f"{label}: {self.tiles} tiles ({self.non_empty} with data, "
            f"{self.bytes / 1e6:.1f} MB gzipped{big}) in {self.seconds:.1f} s, "
            f"{self.tiles / max(self.seconds, 1e-9):.0f} tiles/s"
        )


def _chunks(items: Iterable[TileXYZ], size: int) -> Iterator[list[TileXYZ]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def produce(
    service: TileService,
    tiles: Iterable[TileXYZ],
    *,
    jobs: int,
    on_tile: OnTile,
    progress: Progress | None = None,
) -> RunSummary:
    """Fetch ``tiles`` through ``service`` with ``jobs`` threads; ``on_tile`` sees them in order."""
    started = time.monotonic()
    summary = RunSummary(0, 0, 0, 0, None, 0.0)

    def fetch(xyz: TileXYZ) -> CachedTile:
        return service.fetch(*xyz)[0]

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for chunk in _chunks(tiles, 64 * max(1, jobs)):
            for xyz, tile in zip(chunk, pool.map(fetch, chunk), strict=True):
                on_tile(xyz, tile)
                summary.tiles += 1
                if not tile.empty:
                    summary.non_empty += 1
                    summary.bytes += len(tile.gzipped)
                    raw_size = len(tile.raw())
                    if raw_size > summary.largest:
                        summary.largest, summary.largest_tile = raw_size, xyz
            if progress is not None:
                progress.step(len(chunk))
    summary.seconds = time.monotonic() - started
    return summary


#: Fetches the tiles of an export, handing each to the archive writer, and says what it did.
Fill = Callable[[OnTile], RunSummary]


def seed(
    service: TileService, bbox: BBox, minzoom: int, maxzoom: int, *, jobs: int = 2
) -> RunSummary:
    """Fill the caches (the disk cache survives restarts) with every tile of ``bbox``."""
    progress = Progress(count_tiles(bbox, minzoom, maxzoom), "seed")
    return produce(
        service,
        tiles_in_bbox(bbox, minzoom, maxzoom),
        jobs=jobs,
        on_tile=lambda xyz, tile: None,
        progress=progress,
    )


def _sorted_by_tileid(bbox: BBox, minzoom: int, maxzoom: int) -> list[TileXYZ]:
    return sorted(tiles_in_bbox(bbox, minzoom, maxzoom), key=lambda t: zxy_to_tileid(*t))


def export(
    service: TileService,
    out: Path,
    bbox: BBox,
    minzoom: int,
    maxzoom: int,
    *,
    jobs: int = 2,
    quiet: bool = False,
) -> RunSummary:
    """Write every non-empty tile of ``bbox`` to ``out`` (.pmtiles v3 or .mbtiles), gzipped."""
    suffix = out.suffix.lower()
    if suffix not in (".pmtiles", ".mbtiles"):
        raise ArchiveError(f"{out}: the output must end in .pmtiles or .mbtiles")
    if not out.parent.is_dir():
        raise ArchiveError(f"{out.parent}: no such folder")
    description = service.source.describe()
    metadata: dict[str, Any] = {
        "name": "fondplan basemap",
        "format": "pbf",
        "attribution": ATTRIBUTION,
        "vector_layers": description["vector_layers"],
        "fondplan:data_version": service.version,
    }
    tiles = _sorted_by_tileid(bbox, minzoom, maxzoom)
    progress = None if quiet else Progress(len(tiles), f"export {out.name}")
    tmp = out.with_name(out.name + ".partial")
    tmp.unlink(missing_ok=True)

    def fill(on_tile: OnTile) -> RunSummary:
        summary = produce(service, tiles, jobs=jobs, on_tile=on_tile, progress=progress)
        if summary.non_empty == 0:
            raise ArchiveError("every tile of the area is empty: nothing to export")
        return summary

    write = _write_pmtiles if suffix == ".pmtiles" else _write_mbtiles
    try:
        summary = write(tmp, fill, bbox, [t[0] for t in tiles], metadata)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return summary


def _write_pmtiles(
    path: Path, fill: Fill, bbox: BBox, zooms: list[int], metadata: dict[str, Any]
) -> RunSummary:
    with path.open("wb") as fh:
        writer = PMTilesWriter(fh)  # type: ignore[no-untyped-call]

        def write(xyz: TileXYZ, tile: CachedTile) -> None:
            if not tile.empty:
                writer.write_tile(zxy_to_tileid(*xyz), tile.gzipped)  # type: ignore[no-untyped-call]

        summary = fill(write)
        west, south, east, north = bbox
        center_zoom = min(max(zooms), 10)
        header = {
            "tile_type": TileType.MVT,
            "tile_compression": Compression.GZIP,
            "min_lon_e7": int(west * 1e7),
            "min_lat_e7": int(south * 1e7),
            "max_lon_e7": int(east * 1e7),
            "max_lat_e7": int(north * 1e7),
            "center_zoom": center_zoom,
            "center_lon_e7": int((west + east) / 2 * 1e7),
            "center_lat_e7": int((south + north) / 2 * 1e7),
        }
        writer.finalize(header, metadata)  # type: ignore[no-untyped-call]
    return summary


def _write_mbtiles(
    path: Path, fill: Fill, bbox: BBox, zooms: list[int], metadata: dict[str, Any]
) -> RunSummary:
    conn = sqlite3.connect(path)
    try:
        conn.executescript(
            "CREATE TABLE metadata (name text, value text);"
            "CREATE TABLE tiles (zoom_level integer, tile_column integer, tile_row integer,"
            " tile_data blob);"
            "CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row);"
        )

        def write(xyz: TileXYZ, tile: CachedTile) -> None:
            if not tile.empty:
                z, x, y = xyz
                conn.execute(
                    "INSERT INTO tiles VALUES (?, ?, ?, ?)", (z, x, (1 << z) - 1 - y, tile.gzipped)
                )

        summary = fill(write)
        west, south, east, north = bbox
        rows = {
            "name": metadata["name"],
            "format": "pbf",
            "type": "baselayer",
            "version": "1.0.0",
            "attribution": metadata["attribution"],
            "bounds": f"{west},{south},{east},{north}",
            "center": f"{(west + east) / 2},{(south + north) / 2},{min(max(zooms), 10)}",
            "minzoom": str(min(zooms)),
            "maxzoom": str(max(zooms)),
            "json": json.dumps({"vector_layers": metadata["vector_layers"]}),
            "fondplan:data_version": metadata["fondplan:data_version"],
        }
        conn.executemany("INSERT INTO metadata VALUES (?, ?)", list(rows.items()))
        conn.commit()
    finally:
        conn.close()
    return summary
