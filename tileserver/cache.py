"""Tile caches keyed by data version: a byte-bounded in-memory LRU and a folder on disk."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from osmimport.update import lineage
from tileserver.catalog import TILE_FORMAT
from tileserver.diskcache import read_sealed, write_sealed

#: (data_version, z, x, y)
TileKey = tuple[str, int, int, int]


@dataclass(frozen=True)
class CachedTile:
    """A tile ready to serve: gzipped bytes (empty for an empty tile) and its strong ETag."""

    gzipped: bytes
    etag: str

    @property
    def empty(self) -> bool:
        """Whether the tile has no feature (answered with 204)."""
        return not self.gzipped

    def raw(self) -> bytes:
        """The uncompressed MVT bytes."""
        return gzip.decompress(self.gzipped) if self.gzipped else b""


def make_tile(version: str, raw: bytes) -> CachedTile:
    """Gzip ``raw`` (deterministically) and give it an ETag from its bytes and the version.

    The version's import part only: a tile that updates of an import leave unchanged keeps
    its ETag; a new import gives every tile a new one.
    """
    key = lineage(version).encode()[:64]
    digest = hashlib.blake2b(raw, digest_size=12, key=key).hexdigest()
    gzipped = gzip.compress(raw, compresslevel=6, mtime=0) if raw else b""
    return CachedTile(gzipped, digest)


class MemoryCache:
    """A thread-safe LRU of tiles bounded by the bytes it holds."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[TileKey, CachedTile] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def size_bytes(self) -> int:
        """Bytes currently held."""
        return self._bytes

    def get(self, key: TileKey) -> CachedTile | None:
        """The cached tile, marked as recently used, or None."""
        with self._lock:
            tile = self._items.get(key)
            if tile is not None:
                self._items.move_to_end(key)
            return tile

    def put(self, key: TileKey, tile: CachedTile) -> None:
        """Store ``tile``, evicting the least recently used ones beyond the byte bound."""
        cost = len(tile.gzipped) + 64
        if cost > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= len(old.gzipped) + 64
            self._items[key] = tile
            self._bytes += cost
            while self._bytes > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= len(evicted.gzipped) + 64

    def clear(self) -> None:
        """Drop every tile."""
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def carry_over(self, previous: str, version: str, expired: set[tuple[int, int, int]]) -> int:
        """Keep the tiles of ``previous`` an update left unchanged as tiles of ``version``.

        Tiles in ``expired`` (z, x, y) and those of any other version are dropped; returns the
        number kept.
        """
        with self._lock:
            kept: OrderedDict[TileKey, CachedTile] = OrderedDict()
            size = 0
            for (old, z, x, y), tile in self._items.items():
                if old == previous and (z, x, y) not in expired:
                    kept[(version, z, x, y)] = tile
                    size += len(tile.gzipped) + 64
            self._items = kept
            self._bytes = size
            return len(kept)


def _safe(version: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in version) or "none"


class DiskCache:
    """Gzipped tiles under ``<root>/<data_version>/f<TILE_FORMAT>/<z>/<x>/<y>.mvt.gz``, sealed.

    Each file holds the ETag (so a restarted server answers the same one), the gzipped bytes
    (none for an empty tile), their lengths and a checksum; a file that fails the check is
    deleted and the tile cut again.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: TileKey) -> Path:
        version, z, x, y = key
        folder = self.root / _safe(version) / f"f{TILE_FORMAT}"
        return folder / str(z) / str(x) / f"{y}.mvt.gz"

    def get(self, key: TileKey) -> CachedTile | None:
        """The stored tile, or None."""
        found = read_sealed(self._path(key))
        if found is None:
            return None
        etag, body = found
        return CachedTile(body, etag.decode("ascii", "replace"))

    def put(self, key: TileKey, tile: CachedTile) -> None:
        """Store ``tile`` atomically (write to a temporary file, then rename)."""
        # A full or read-only disk only costs the cache, never the response.
        write_sealed(self._path(key), tile.gzipped, tile.etag.encode("ascii"))

    def carry_over(self, previous: str, version: str, expired: set[tuple[int, int, int]]) -> bool:
        """Make the stored tiles of ``previous``, but those in ``expired``, tiles of ``version``.

        The folder is renamed, so it only works before tiles of ``version`` are stored; says
        whether it did (otherwise the old tiles go with the next ``prune``).
        """
        old = self.root / _safe(previous)
        new = self.root / _safe(version)
        if not old.is_dir() or new.exists():
            return False
        for z, x, y in expired:
            (old / f"f{TILE_FORMAT}" / str(z) / str(x) / f"{y}.mvt.gz").unlink(missing_ok=True)
        try:
            old.rename(new)
        except OSError:
            return False
        return True

    def prune(self, keep_version: str) -> None:
        """Delete the folders of every other data version."""
        if not self.root.is_dir():
            return
        keep = _safe(keep_version)
        for child in self.root.iterdir():
            if child.is_dir() and child.name != keep:
                shutil.rmtree(child, ignore_errors=True)
