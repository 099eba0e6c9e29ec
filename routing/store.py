"""Routing data as named numpy arrays: chunks in the data schema, a memory-mapped file cache."""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import shutil
import struct
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg2
from numpy.typing import NDArray
from psycopg2 import sql

from osmimport import schema
from osmimport.database import connect, load_sql, table_exists
from osmimport.update import STAGED_ROUTING_SUFFIX
from routing.errors import GraphNotBuiltError

#: The named arrays of one profile's routing data.
Arrays = dict[str, NDArray[Any]]

#: Bytes per stored row: big arrays span several rows, so no single value nears bytea's limit
#: and the escaped copy the driver sends of one stays small next to the arrays. Small rows
#: let an update that moves a few roads rewrite only the few rows around each.
CHUNK_BYTES = 64 * 1024
#: The file of a cached profile naming its arrays' dtypes and shapes (written last).
LAYOUT_FILE = "layout.json"
#: The key of an array's layout listing the digest of each of its chunks: arrays (and chunks)
#: of two versions with equal digests hold the same bytes.
CHUNKS = "chunks"


def staged_profile(profile: str) -> str:
    """The name an update's chunk rows of ``profile`` have in the served table until it is
    applied (no reader asks for it)."""
    return profile + STAGED_ROUTING_SUFFIX


def chunk_digests(raw: NDArray[np.uint8]) -> list[str]:
    """The SHA-1 of each :data:`CHUNK_BYTES` piece of ``raw`` (the rows it is stored as)."""
    return [
        hashlib.sha1(raw[start : start + CHUNK_BYTES].data, usedforsecurity=False).hexdigest()
        for start in range(0, len(raw), CHUNK_BYTES)
    ]


def _digests(
    raw: NDArray[np.uint8], before: list[str], reference: NDArray[Any] | None
) -> list[str]:
    """:func:`chunk_digests` of ``raw``, those of chunks equal to the same chunk of the
    ``reference`` array (whose digests are ``before``) taken from ``before``."""
    old = None if reference is None else np.ascontiguousarray(reference).reshape(-1).view(np.uint8)
    if old is None or len(old) != len(raw) or len(before) != -(-len(raw) // CHUNK_BYTES):
        return chunk_digests(raw)
    if old.ctypes.data == raw.ctypes.data:
        return list(before)
    changed = _changed_chunks(raw, old)
    return [
        chunk_digests(raw[i * CHUNK_BYTES : (i + 1) * CHUNK_BYTES])[0] if differs else before[i]
        for i, differs in enumerate(changed.tolist())
    ]


#: How many chunks :func:`_changed_chunks` compares at once.
_COMPARED_CHUNKS = 128


def _changed_chunks(raw: NDArray[np.uint8], old: NDArray[np.uint8]) -> NDArray[np.bool_]:
    """Per :data:`CHUNK_BYTES` chunk of the bytes ``raw``, whether it differs from the same
    chunk of ``old`` (as long): compared many chunks at a time, as 8-byte words where
    aligned."""
    count = -(-len(raw) // CHUNK_BYTES)
    whole = len(raw) // CHUNK_BYTES
    changed = np.zeros(count, dtype=np.bool_)
    words = raw.ctypes.data % 8 == 0 and old.ctypes.data % 8 == 0
    dtype = np.uint64 if words else np.uint8
    for first in range(0, whole, _COMPARED_CHUNKS):
        last = min(first + _COMPARED_CHUNKS, whole)
        span = slice(first * CHUNK_BYTES, last * CHUNK_BYTES)
        rows = (last - first, -1)
        mine, theirs = raw[span].view(dtype).reshape(rows), old[span].view(dtype).reshape(rows)
        np.any(mine != theirs, axis=1, out=changed[first:last])
    if whole < count:
        changed[whole] = not np.array_equal(raw[whole * CHUNK_BYTES :], old[whole * CHUNK_BYTES :])
    return changed


def same_bytes(array: NDArray[Any], spec: dict[str, Any] | None) -> bool:
    """Whether ``array`` holds the bytes of the stored array of layout entry ``spec``."""
    if spec is None or CHUNKS not in spec or np.dtype(spec["dtype"]) != array.dtype:
        return False
    raw = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    return bool(chunk_digests(raw) == spec[CHUNKS])


def _identifiers(schema_name: str) -> dict[str, sql.Composable]:
    return {
        "profiles": sql.Identifier(schema_name, schema.ROUTING_PROFILES_TABLE),
        "data": sql.Identifier(schema_name, schema.ROUTING_DATA_TABLE),
    }


def _run(cur: psycopg2.extensions.cursor, schema_name: str, file: str, **params: Any) -> None:
    cur.execute(sql.SQL(load_sql("routing", file)).format(**_identifiers(schema_name)), params)


def save(
    cur: psycopg2.extensions.cursor,
    schema_name: str,
    profile: str,
    version: str,
    arrays: Arrays,
    *,
    build_seconds: float,
    nodes: int,
    edges: int,
    kept: dict[str, dict[str, Any]] | None = None,
    previous: dict[str, dict[str, Any]] | None = None,
    reference: Arrays | None = None,
    staged: bool = False,
    fresh_chunks: dict[str, list[int]] | None = None,
    stored: dict[str, Any] | None = None,
) -> tuple[int, int]:
    """Store ``arrays`` as the routing data of ``profile`` in ``schema_name`` (replacing any),
    with the arrays of layout ``kept`` stored elsewhere (see :func:`keep`); returns the bytes
    of the data and the bytes written. A chunk whose bytes equal those of the same chunk of
    the same array in layout ``previous`` (the served data an update replaces) is not written:
    the update keeps the served row (``update_routing.sql``); ``reference``: the arrays
    ``previous`` stores, when at hand (the previous build in memory): a chunk equal to its
    chunk there keeps its digest, not hashed again. ``staged`` (an update): the
    chunk rows go to the served table under :func:`staged_profile`'s name, which applying
    the update renames rather than copies; ``fresh_chunks`` gets the numbers of the chunks
    written of each array, ``stored`` the layout stored. The caller commits."""
    _run(cur, schema_name, "routing_tables.sql")
    _run(cur, schema_name, "delete_profile.sql", profile=profile)
    rows_schema, rows_profile = schema_name, profile
    if staged:
        rows_schema, rows_profile = schema.SCHEMA, staged_profile(profile)
        _run(cur, rows_schema, "routing_tables.sql")
        _run(cur, rows_schema, "delete_chunks.sql", profile=rows_profile)
    layout: dict[str, dict[str, Any]] = dict(kept or {})
    total = sum(
        int(np.prod(spec["shape"])) * int(np.dtype(spec["dtype"]).itemsize)
        for spec in layout.values()
    )
    written = 0
    for name, array in arrays.items():
        array = np.ascontiguousarray(array)
        raw = array.reshape(-1).view(np.uint8)
        before = (previous or {}).get(name, {}).get(CHUNKS) or []
        chunks = _digests(raw, before, (reference or {}).get(name))
        layout[name] = {"dtype": array.dtype.str, "shape": list(array.shape), CHUNKS: chunks}
        fresh = [i for i, digest in enumerate(chunks) if i >= len(before) or before[i] != digest]
        if fresh_chunks is not None:
            fresh_chunks[name] = fresh
        # COPY in binary: the bytes as they are, not a hex literal twice their size to parse.
        if fresh:
            _copy_array(cur, rows_schema, rows_profile, name, raw, fresh)
            written += sum(len(raw[i * CHUNK_BYTES : (i + 1) * CHUNK_BYTES]) for i in fresh)
        total += len(raw)
        release(arrays[name])
    _run(
        cur,
        schema_name,
        "save_profile.sql",
        profile=profile,
        data_version=version,
        build_seconds=build_seconds,
        nodes=nodes,
        edges=edges,
        bytes=total,
        layout=json.dumps(layout),
    )
    if stored is not None:
        stored.update(layout)
    return total, written


def layout_digest(layout: dict[str, Any]) -> str:
    """What identifies the stored bytes of a layout (its chunks' digests), whatever the order
    of its keys."""
    text = json.dumps(layout, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


class _BinaryRows:
    """The chunk rows of one array as a COPY binary stream, read piece by piece."""

    def __init__(self, profile: str, name: str, raw: NDArray[np.uint8], chunks: list[int]) -> None:
        self._parts = self._stream(profile.encode(), name.encode(), raw, chunks)

    @staticmethod
    def _stream(
        profile: bytes, name: bytes, raw: NDArray[np.uint8], chunks: list[int]
    ) -> Iterator[bytes]:
        yield b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
        for chunk in chunks:
            data = raw[chunk * CHUNK_BYTES : (chunk + 1) * CHUNK_BYTES]
            yield (
                struct.pack(">hi", 4, len(profile)) + profile
                + struct.pack(">i", len(name)) + name
                + struct.pack(">iii", 4, chunk, len(data))
            )  # fmt: skip
            yield data.tobytes()
        yield struct.pack(">h", -1)

    def read(self, size: int = -1) -> bytes:
        """The next piece of the stream (b"" at its end): a row's header or its bytes, at
        most :data:`CHUNK_BYTES` (the caller reads with that size)."""
        return next(self._parts, b"")

    def readline(self, size: int = -1) -> bytes:
        """As :meth:`read` (COPY reads no lines of a binary stream)."""
        return self.read(size)


def _copy_array(
    cur: psycopg2.extensions.cursor,
    schema_name: str,
    profile: str,
    name: str,
    raw: NDArray[Any],
    chunks: list[int],
) -> None:
    """Store the chunk rows numbered ``chunks`` of the bytes ``raw`` of array ``name``."""
    copy = sql.SQL(load_sql("routing", "copy_chunks.sql")).format(**_identifiers(schema_name))
    cur.copy_expert(copy.as_string(cur), _BinaryRows(profile, name, raw, chunks), CHUNK_BYTES)


def meta_array(profile: str, version: str) -> NDArray[np.uint8]:
    """The ``meta`` array of a profile's routing data: its profile and data version."""
    return np.frombuffer(
        json.dumps({"profile": profile, "data_version": version}).encode(), dtype=np.uint8
    )


def keep(
    cur: psycopg2.extensions.cursor,
    schema_name: str,
    profile: str,
    previous: str,
    version: str,
    stored: dict[str, Any] | None = None,
) -> bool:
    """Record in ``schema_name`` that the served routing data of ``profile`` (of data version
    ``previous``) stays, as data version ``version``: its profile row and a new ``meta`` array,
    no other bytes (the update re-tags the served rows). False when none is served for
    ``previous``; ``stored`` gets the layout stored. The caller commits."""
    row = _served(cur, profile, previous)
    if row is None:
        return False
    build_seconds, nodes, edges, layout = row
    save(
        cur,
        schema_name,
        profile,
        version,
        {"meta": meta_array(profile, version)},
        build_seconds=build_seconds,
        nodes=nodes,
        edges=edges,
        kept={name: spec for name, spec in layout.items() if name != "meta"},
        staged=True,
        stored=stored,
    )
    return True


def _served(
    cur: psycopg2.extensions.cursor, profile: str, version: str
) -> tuple[float, int, int, dict[str, dict[str, Any]]] | None:
    """The build seconds, nodes, edges and layout of the served routing data of ``profile``;
    None unless it is of data version ``version``."""
    if not table_exists(cur, schema.SCHEMA, schema.ROUTING_PROFILES_TABLE):
        return None
    cur.execute(
        sql.SQL(load_sql("routing", "kept_profile.sql")).format(
            live_profiles=sql.Identifier(schema.SCHEMA, schema.ROUTING_PROFILES_TABLE)
        ),
        {"profile": profile},
    )
    row = cur.fetchone()
    if row is None or str(row[0]) != version:
        return None
    return float(row[1]), int(row[2]), int(row[3]), dict(row[4])


def served_layout(
    cur: psycopg2.extensions.cursor, profile: str, version: str
) -> dict[str, dict[str, Any]] | None:
    """The layout of the served routing data of ``profile`` when of data version ``version``."""
    row = _served(cur, profile, version)
    return None if row is None else row[3]


def versions(url: str) -> list[dict[str, Any]]:
    """What the served schema holds: per profile its data version, build time and size."""
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            try:
                _run(cur, schema.SCHEMA, "profile_versions.sql")
            except psycopg2.errors.UndefinedTable:
                return []
            names = [column.name for column in cur.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        conn.close()


def cache_root(data_dir: Path, url: str) -> Path:
    """Where the routing data of the database at ``url`` is cached, next to its data."""
    dbname = psycopg2.extensions.parse_dsn(url).get("dbname") or "default"
    return data_dir / "routing" / dbname


def load(url: str, profile: str, version: str, *, cache: Path | None = None) -> Arrays:
    """The routing data of ``profile`` for data version ``version``: memory-mapped from
    ``cache/<version>/<profile>/`` (fetched from the database into it first when missing), or
    read into memory without ``cache``."""
    folder = cache / version / profile if cache is not None else None
    if folder is not None and (folder / LAYOUT_FILE).exists():
        return _open(folder)
    conn = connect(url)
    try:
        # One snapshot: the layout row and the chunks of the same import.
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn.cursor() as cur:
            try:
                _run(cur, schema.SCHEMA, "load_profile.sql", profile=profile)
            except psycopg2.errors.UndefinedTable:
                row = None
            else:
                row = cur.fetchone()
        if row is None:
            raise GraphNotBuiltError(
                f"no {profile} routing data for data version {version}: "
                "run `fondplan routing build`"
            )
        stored, layout = str(row[0]), row[1]
        if stored != version:
            raise GraphNotBuiltError(
                f"the {profile} routing data is of data version {stored}, not {version}"
            )
        if folder is None:
            return _read(conn, profile, layout)
        _fetch(conn, profile, layout, folder)
    finally:
        conn.close()
    return _open(folder)


def load_some(url: str, profile: str, version: str, names: list[str]) -> Arrays | None:
    """The arrays ``names`` of the served routing data of ``profile``, read into memory; None
    unless it is of data version ``version`` and holds them all."""
    conn = connect(url)
    try:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn.cursor() as cur:
            if not table_exists(cur, schema.SCHEMA, schema.ROUTING_PROFILES_TABLE):
                return None
            _run(cur, schema.SCHEMA, "load_profile.sql", profile=profile)
            row = cur.fetchone()
        if row is None or str(row[0]) != version or not set(names) <= set(row[1]):
            return None
        return _read(conn, profile, {name: row[1][name] for name in names})
    finally:
        conn.close()


def _chunks(
    conn: psycopg2.extensions.connection, profile: str, names: list[str] | None = None
) -> Any:
    with conn.cursor(name="routing_chunks") as cur:
        cur.itersize = 1
        if names is None:
            _run(cur, schema.SCHEMA, "load_chunks.sql", profile=profile)
        else:
            _run(cur, schema.SCHEMA, "load_named_chunks.sql", profile=profile, names=names)
        for name, data in cur:
            yield str(name), data


def _read(conn: psycopg2.extensions.connection, profile: str, layout: dict[str, Any]) -> Arrays:
    parts: dict[str, list[bytes]] = {name: [] for name in layout}
    for name, data in _chunks(conn, profile, list(layout)):
        parts[name].append(bytes(data))
    return {
        name: np.frombuffer(b"".join(parts[name]), dtype=np.dtype(spec["dtype"])).reshape(
            spec["shape"]
        )
        for name, spec in layout.items()
    }


def _fetch(
    conn: psycopg2.extensions.connection, profile: str, layout: dict[str, Any], folder: Path
) -> None:
    """Stream the chunks into the files of ``folder`` (see :func:`_publish`)."""

    def write(partial: Path) -> None:
        # COPY in binary: the bytes as they are, several times faster than bytea values.
        files = _ChunkFiles(partial)
        with conn.cursor() as cur:
            copy = sql.SQL(load_sql("routing", "copy_out_chunks.sql")).format(
                **_identifiers(schema.SCHEMA)
            )
            cur.copy_expert(cur.mogrify(copy, {"profile": profile}).decode(), files, CHUNK_BYTES)
        files.close()

    _publish(folder, profile, layout, write)


def fill_cache(
    cache: Path, profile: str, version: str, arrays: Arrays, layout: dict[str, Any]
) -> None:
    """Put the routing data ``arrays`` of ``profile`` (stored with ``layout``) in the file
    cache ``cache`` as data version ``version``'s, as :func:`load` would fetch it: a server
    using that cache maps it at once instead of reading it from the database."""
    folder = cache / version / profile
    if (folder / LAYOUT_FILE).exists():
        return

    def write(partial: Path) -> None:
        for name in layout:
            np.ascontiguousarray(arrays[name]).tofile(partial / f"{name}.bin")
            release(arrays[name])

    _publish(folder, profile, layout, write)


def _publish(
    folder: Path, profile: str, layout: dict[str, Any], write: Callable[[Path], None]
) -> None:
    """Have ``write`` make the array files in a private folder, then rename it to ``folder``:
    readers never see a half-written cache, and concurrent writers each end with a complete
    one."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = folder.parent / f".{profile}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    partial.mkdir()
    try:
        write(partial)
        (partial / LAYOUT_FILE).write_text(json.dumps(layout))
        try:
            partial.rename(folder)
        except OSError:
            if not (folder / LAYOUT_FILE).exists():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)


class _ChunkFiles:
    """Writes a COPY binary stream of (name, data) rows, in name order, as one file per name
    in ``folder`` (the data streamed through, never held whole)."""

    SIGNATURE = b"PGCOPY\n\xff\r\n\x00"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._file: Any = None
        self._name = ""
        #: What the next fixed-size item is, its size and the bytes of it received so far.
        self._state = "header"
        self._need = len(self.SIGNATURE) + 8
        self._small = b""
        #: Bytes of the current data value still to come (written through as they arrive).
        self._left = 0

    def write(self, data: bytes) -> int:
        """Take the next piece of the stream (any size)."""
        view = memoryview(data)
        while view:
            if self._left:
                part = view[: self._left]
                self._file.write(part)
                self._left -= len(part)
                view = view[len(part) :]
                if not self._left:
                    self._expect("row", 2)
                continue
            take = self._need - len(self._small)
            self._small += bytes(view[:take])
            view = view[take:]
            if len(self._small) == self._need:
                item, self._small = self._small, b""
                self._step(item)
        return len(data)

    def _expect(self, state: str, size: int) -> None:
        self._state, self._need = state, size

    def _step(self, item: bytes) -> None:
        state = self._state
        if state == "header":
            if not item.startswith(self.SIGNATURE):
                raise GraphNotBuiltError("the routing data arrives in an unknown COPY format")
            extension = struct.unpack(">i", item[-4:])[0]
            if extension:
                self._expect("extension", extension)
            else:
                self._expect("row", 2)
        elif state == "extension":
            self._expect("row", 2)
        elif state == "row":
            if struct.unpack(">h", item)[0] == -1:
                self._expect("end", 1 << 30)
            else:
                self._expect("name size", 4)
        elif state == "name size":
            self._expect("name", struct.unpack(">i", item)[0])
        elif state == "name":
            name = item.decode()
            if name != self._name or self._file is None:
                self.close()
                self._name = name
                self._file = (self.folder / f"{name}.bin").open("wb")
            self._expect("data size", 4)
        elif state == "data size":
            self._left = struct.unpack(">i", item)[0]
            if not self._left:
                self._expect("row", 2)

    def close(self) -> None:
        """Close the file being written."""
        if self._file is not None:
            self._file.close()
            self._file = None


def _open(folder: Path) -> Arrays:
    layout = json.loads((folder / LAYOUT_FILE).read_text())
    arrays: Arrays = {}
    for name, spec in layout.items():
        dtype, shape = np.dtype(spec["dtype"]), tuple(spec["shape"])
        if int(np.prod(shape)) == 0:
            arrays[name] = np.zeros(shape, dtype=dtype)
        else:
            arrays[name] = np.memmap(folder / f"{name}.bin", dtype=dtype, mode="r", shape=shape)
    return arrays


#: Arrays smaller than this stay in memory when spilled: a file each is not worth it.
SPILL_BYTES = 1 << 20


def spill(folder: Path, arrays: Arrays) -> Arrays:
    """``arrays`` with each large one written to a file of ``folder`` and mapped back from it
    read-only (those mapped already kept as they are): a build holds what it made in the page
    cache, which the system can reclaim, not in its own memory (see :func:`release`)."""
    folder.mkdir(parents=True, exist_ok=True)
    spilled: Arrays = {}
    for name, array in arrays.items():
        if isinstance(array, np.memmap) or array.nbytes < SPILL_BYTES:
            spilled[name] = array
            continue
        path = folder / f"{name}.bin"
        np.ascontiguousarray(array).tofile(path)
        spilled[name] = np.memmap(path, dtype=array.dtype, mode="r", shape=array.shape)
    return spilled


def release(*arrays: NDArray[Any]) -> None:
    """Drop the pages of the memory-mapped ``arrays`` from this process's memory (they are
    read again from the page cache, or the file, when used); not those of a
    :func:`writable_copy`, whose written pages exist nowhere else."""
    for array in arrays:
        mapped = getattr(array, "_mmap", None)
        if isinstance(mapped, mmap.mmap) and getattr(array, "mode", None) != "c":
            mapped.madvise(mmap.MADV_DONTNEED)


def writable_copy(array: NDArray[Any]) -> NDArray[Any]:
    """A copy of ``array`` to change a few values of: of a whole file mapped read-only, a
    private mapping of the file (only the pages written are copied, on write; the file is
    only ever written with the bytes of an array made from it), else a copy in memory."""
    if (
        isinstance(array, np.memmap)
        and array.mode == "r"
        and isinstance(array.base, mmap.mmap)
        and array.filename is not None
        and array.offset == 0
    ):
        return np.memmap(array.filename, dtype=array.dtype, mode="c", shape=array.shape)
    return np.array(array)


def prune(cache: Path, keep: set[str]) -> None:
    """Remove the cached data of every data version but those in ``keep`` (mapped files stay
    readable by the processes that opened them)."""
    if not cache.is_dir():
        return
    for entry in cache.iterdir():
        if entry.is_dir() and entry.name not in keep:
            shutil.rmtree(entry, ignore_errors=True)
