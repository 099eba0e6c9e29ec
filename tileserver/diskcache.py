"""Small helpers shared by the disk caches (glyphs, sprites, tiles): sealed atomic writes."""

from __future__ import annotations

import hashlib
import os
import struct
import threading
from pathlib import Path

#: First bytes of a sealed cache entry; bumped when the layout changes.
MAGIC = b"FPC1"
_HEADER = struct.Struct(">4sII16s")


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``path`` through a private temporary file renamed over it.

    Concurrent processes (the server and its render processes) may build the same entry at
    once: each writes its own file and the rename is atomic, so a reader sees a whole file or
    none. A cache that cannot be written (full or read-only disk) is skipped, not an error.
    """
    partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(data)
        partial.replace(path)
    except OSError:
        partial.unlink(missing_ok=True)


def _digest(meta: bytes, data: bytes) -> bytes:
    return hashlib.blake2b(meta + b"\0" + data, digest_size=16).digest()


def seal(data: bytes, meta: bytes = b"") -> bytes:
    """``data`` (and a little ``meta``, e.g. an ETag) with their lengths and a checksum."""
    return _HEADER.pack(MAGIC, len(meta), len(data), _digest(meta, data)) + meta + data


def unseal(blob: bytes) -> tuple[bytes, bytes] | None:
    """(meta, data) of a sealed entry; None when it is truncated, padded or corrupt."""
    if len(blob) < _HEADER.size:
        return None
    magic, meta_len, data_len, digest = _HEADER.unpack_from(blob)
    if magic != MAGIC or len(blob) != _HEADER.size + meta_len + data_len:
        return None
    meta = blob[_HEADER.size : _HEADER.size + meta_len]
    data = blob[_HEADER.size + meta_len :]
    if _digest(meta, data) != digest:
        return None
    return meta, data


def write_sealed(path: Path, data: bytes, meta: bytes = b"") -> None:
    """Write a sealed entry atomically (see :func:`write_atomically`)."""
    write_atomically(path, seal(data, meta))


def read_sealed(path: Path) -> tuple[bytes, bytes] | None:
    """(meta, data) of the entry at ``path``; None when missing, and a bad entry is deleted.

    A truncated or garbled file (a full disk, a crash, a stray edit) is never served: the
    caller rebuilds the entry and writes it again.
    """
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    found = unseal(blob)
    if found is None:
        path.unlink(missing_ok=True)
    return found
