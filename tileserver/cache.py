"""Tile caches keyed by data version: a byte-bounded in-memory LRU and a folder on disk."""

from __future__ import annotations

import gzip
import shutil
from dataclasses import dataclass
from pathlib import Path

from osmimport.etag import fingerprint
from osmimport.lru import LRUCache
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
    digest = fingerprint(raw, lineage(version))
    gzipped = gzip.compress(raw, compresslevel=6, mtime=0) if raw else b""
    return CachedTile(gzipped, digest)


class MemoryCache(LRUCache[TileKey, CachedTile]):
    """Tiles in memory, bounded by their gzipped bytes (plus 64 of bookkeeping each)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(max_bytes, lambda tile: len(tile.gzipped) + 64)

    def carry_over(self, previous: str, version: str, expired: set[tuple[int, int, int]]) -> int:
        """Keep the tiles of ``previous`` an update left unchanged as tiles of ``version``.

        Tiles in ``expired`` (z, x, y) and those of any other version are dropped; returns the
        number kept.
        """

        def moved(key: TileKey) -> TileKey | None:
            old, z, x, y = key
            return (version, z, x, y) if old == previous and (z, x, y) not in expired else None

        return self.rekey(moved)


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
