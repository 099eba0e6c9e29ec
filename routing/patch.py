"""A profile's routing data patched from its previous build where only roads' geometry changed."""

from __future__ import annotations

import ctypes
import json
import mmap
import os
import threading
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from routing import arrays as road_arrays
from routing import cch, kernels
from routing.arrays import Geometry, edge_along, within
from routing.build import NUMBER_PREFIX, TEXT_PREFIX, TURN_GRAPH
from routing.engine import Engine, _bearing_arrays, piece_offsets, projection_cos
from routing.store import CHUNK_BYTES, Arrays, layout_digest, release, writable_copy

#: The arrays made from how roads connect and how many points each edge has, nothing else:
#: a patched build takes them from the previous one as they are.
TOPOLOGY = (*TURN_GRAPH, "out_offsets", "out_edges", "in_offsets", "in_edges", "arc_keys")
#: What the turn costs of an edge depend on besides its geometry.
_TURN_COLUMNS = (TEXT_PREFIX + "mode", NUMBER_PREFIX + "restricted")


def patchable(made: Arrays, previous: Arrays, connections: tuple[str, ...]) -> bool:
    """Whether the arrays ``made`` of a profile (see :func:`routing.arrays.profile_arrays`)
    connect as those of its ``previous`` build (a whole engine's) did, with as many points
    per edge: only geometry, weights and tags changed."""
    return all(
        name in previous and np.array_equal(made[name], previous[name])
        for name in (*connections, "geometry_offsets", "geometry_nodes")
    ) and all(name in previous for name in (*TOPOLOGY, "piece_edge", "turn_cost"))


class PatchedEngine(Engine):
    """The engine (not searching) of arrays ``data`` that :func:`patchable` finds patchable
    from ``previous``: every derived array equals a fresh build's, but only the parts of the
    edges whose geometry (or turn costs) changed are computed; the rest is copied."""

    def __init__(self, data: Arrays, previous: Arrays, **options: Any) -> None:
        self._previous = previous
        offsets, points = data["geometry_offsets"], data["geometry"]
        moved_points = np.flatnonzero((points != previous["geometry"]).any(axis=1))
        count = len(offsets) - 1
        #: Per edge, whether a point of it moved, and whether its turns may cost otherwise.
        self._moved = np.zeros(count, dtype=np.bool_)
        self._moved[np.searchsorted(offsets, moved_points, side="right") - 1] = True
        self._turning = self._moved.copy()
        for name in _TURN_COLUMNS:
            self._turning |= data[name] != previous[name]
        edges = np.flatnonzero(self._moved)
        patched = dict(data)
        patched.update({name: previous[name] for name in TOPOLOGY})
        sizes = np.diff(offsets)[edges]
        at = np.repeat(offsets[edges], sizes) + within(sizes)
        local = np.zeros(len(edges) + 1, dtype=np.int64)
        np.cumsum(sizes, out=local[1:])
        along = writable_copy(previous["along"])
        along[at] = edge_along(points[at], local)
        first, last = offsets[:-1][edges], offsets[1:][edges] - 1
        first_bearing = writable_copy(previous["first_bearing"])
        first_bearing[edges] = _bearing_arrays(points[first], points[first + 1])
        last_bearing = writable_copy(previous["last_bearing"])
        last_bearing[edges] = _bearing_arrays(points[last - 1], points[last])
        patched.update(along=along, first_bearing=first_bearing, last_bearing=last_bearing)
        super().__init__(patched, **options)

    def _turn_metric(self) -> None:
        a, previous = self.arrays, self._previous
        count = self.edge_count
        origin, offsets = a["turn_origin"], a["turn_offsets"]
        tails = np.repeat(np.arange(len(origin), dtype=np.int64), np.diff(offsets))
        first, second = origin[tails], origin[a["turn_next"]]
        arcs = np.flatnonzero(self._turning[first] | self._turning[second])
        first, second = first[arcs], second[arcs]
        turn_cost = writable_copy(previous["turn_cost"])
        turn_cost[arcs] = self.turn_ms(first, second) + self.restricted_ms(first, second)
        keys = a["arc_keys"]
        pairs = np.flatnonzero(self._turning[keys // count] | self._turning[keys % count])
        arc_turn = writable_copy(previous["arc_turn"])
        arc_turn[pairs] = self.turn_ms(keys[pairs] // count, keys[pairs] % count)
        a.update(turn_cost=turn_cost, arc_turn=arc_turn)

    def _complete_cch(self, topology: Engine | None) -> None:
        a, previous = self.arrays, self._previous
        names = (*cch.CONTRACTION, *cch.METRIC)
        if any(name in a for name in cch.METRIC) or not all(name in previous for name in names):
            super()._complete_cch(topology)
            return
        # The contraction is the previous build's (a patch keeps the turn graph and order):
        # only the arcs whose weights changed are customised again.
        tails, heads, weights = self.arcs
        first, second = self._origin[tails], self._origin[heads]
        before = previous[NUMBER_PREFIX + "weight"][first] + previous["turn_cost"]
        differ = weights != before
        changed = np.flatnonzero(differ)
        # The second metric's arcs change with the weights and the roads' restrictions.
        differ |= self._turning[first] | self._turning[second]
        plain = weights - self.restricted_ms(first, second)
        del tails, heads, first, second, before
        a.update(cch.recustomize(a, previous, weights, plain, changed, np.flatnonzero(differ)))

    def _index_pieces(self) -> None:
        a, previous = self.arrays, self._previous
        self._cos = projection_cos(self.node_lat)
        if self._cos != float(previous["grid_frame"][5]):
            super()._index_pieces()
            return
        piece_edge = previous["piece_edge"]
        pieces = np.flatnonzero(self._moved[piece_edge])
        owners = piece_edge[pieces]
        point = self.offsets[:-1][owners] + (pieces - np.searchsorted(piece_edge, owners))
        start, end, xy = self._piece_points(point)
        before = np.asarray(previous["piece_xy"][pieces])
        patched: dict[str, NDArray[Any]] = {}
        for name, part in (
            ("piece_start", start),
            ("piece_end", end),
            ("piece_xy", xy),
            ("piece_offset", piece_offsets(owners, start, end)),
        ):
            patched[name] = writable_copy(previous[name])
            patched[name][pieces] = part
        a.update(piece_edge=piece_edge, **patched)
        self._patch_grid(pieces, before, xy)
        self._index_components()

    def _patch_grid(
        self, pieces: NDArray[np.int64], before: NDArray[np.float64], after: NDArray[np.float64]
    ) -> None:
        """The snapping grid of the previous build with the ``pieces`` whose projected boxes
        were ``before`` moved to the cells of ``after``: a new build's, unless the grid's
        frame changes (then built again)."""
        a, previous = self.arrays, self._previous
        cell = self._grid_cell()
        left, bottom, columns, rows = kernels.grid_frame(a["piece_xy"], cell)
        frame = np.asarray([left, bottom, columns, rows, cell, self._cos])
        made = None
        if np.array_equal(frame, previous["grid_frame"]):
            made = kernels.regrid(
                previous["grid_starts"],
                previous["grid_members"],
                (left, bottom, columns, rows, cell),
                pieces,
                before,
                after,
            )
        if made is None:
            self._index_grid()
            return
        a.update(grid_frame=frame, grid_starts=made[0], grid_members=made[1])


#: The folder (in the folder the road network is kept in) of each profile's last build, for
#: the next update made by another process to patch: one file per array, memory-mapped.
BUILDS_FOLDER = "builds"
#: The file naming a kept build's data versions, arrays and made arrays (written last).
BUILD_FILE = "build.json"
#: The prefix of the kept arrays of the build's :class:`routing.arrays.Geometry`.
GEOMETRY_PREFIX = "placed:"


@dataclass
class KeptBefore:
    """What :func:`write_build` needs of the build kept before the one it keeps: its data
    version, the chunks of each array that differ from it (as :func:`routing.store.save`
    finds them against the served data, whose layout has the digest ``served``) and its
    geometry."""

    version: str
    fresh_chunks: dict[str, list[int]]
    geometry: Geometry | None
    served: str


def write_build(
    keep: Path,
    profile: str,
    version: str,
    arrays: Arrays,
    geometry: Geometry | None,
    made: list[str],
    stored: dict[str, Any],
    before: KeptBefore | None = None,
) -> None:
    """Keep the arrays of the build of ``profile`` (of data version ``version``, stored with
    layout ``stored``), its ``geometry`` and the names of its ``made`` arrays in the folder
    ``keep``, for :func:`kept_build`. Where the build kept there is ``before``'s, only the
    chunks of its arrays that differ are written (and the geometry when another)."""
    folder = keep / BUILDS_FOLDER / profile
    try:
        folder.mkdir(parents=True, exist_ok=True)
        kept = _layout(folder)
        # Not a kept build while its files change: a process stopped meanwhile leaves none.
        (folder / BUILD_FILE).unlink(missing_ok=True)
        # Only chunks are written where the files hold the served data the save compared to.
        same = (
            before is not None
            and before.version in kept.get("versions", ())
            and kept.get("stored") == before.served
        )
        specs = kept.get("arrays", {}) if same and kept.get("code") == road_arrays._CODE else {}
        layout: dict[str, Any] = {}
        for name, array in _flat(arrays, geometry).items():
            spec = {"dtype": array.dtype.str, "shape": list(array.shape)}
            layout[name] = spec
            target = folder / f"{name}.bin"
            if before is not None and specs.get(name) == spec:
                part = name.removeprefix(GEOMETRY_PREFIX)
                if part != name:
                    if before.geometry is not None and array is getattr(before.geometry, part):
                        continue
                elif name in before.fresh_chunks:
                    _write_chunks(target, array, before.fresh_chunks[name])
                    continue
            partial = folder / f".{name}.bin-{os.getpid()}"
            np.ascontiguousarray(array).tofile(partial)
            release(array)
            # A new file: a process that maps the one replaced keeps reading it.
            partial.replace(target)
        for stale in set(kept.get("arrays", {})) - set(layout):
            (folder / f"{stale}.bin").unlink(missing_ok=True)
        _write_layout(
            folder,
            {
                "code": road_arrays._CODE,
                "versions": [version],
                "arrays": layout,
                "made": made,
                "stored": layout_digest(stored),
            },
        )
    except OSError:
        # Only a cache: the next update of another process builds more of its data again.
        pass


def _write_chunks(target: Path, array: NDArray[Any], chunks: list[int]) -> None:
    """Write the chunks numbered ``chunks`` (of :data:`routing.store.CHUNK_BYTES`) of
    ``array`` over those of its file ``target`` (the rest of which holds its bytes)."""
    if not chunks:
        return
    raw = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    with target.open("r+b") as out:
        for chunk in chunks:
            out.seek(chunk * CHUNK_BYTES)
            out.write(raw[chunk * CHUNK_BYTES : (chunk + 1) * CHUNK_BYTES].data)


def relabel_build(
    keep: Path, profile: str, version: str, new_version: str, served: dict[str, Any]
) -> None:
    """Record that the build of ``profile`` kept for ``version`` stands for ``new_version``
    too (an update that keeps the profile's routing data, stored with layout ``served``)."""
    folder = keep / BUILDS_FOLDER / profile
    layout = _layout(folder)
    if version in layout.get("versions", ()):
        layout["versions"] = [*layout["versions"][-7:], new_version]
        layout["stored"] = layout_digest(served)
        try:
            _write_layout(folder, layout)
        except OSError:
            pass


def kept_build(
    keep: Path, profile: str, version: str, served: dict[str, Any] | None
) -> tuple[Arrays, Geometry | None, list[str]] | None:
    """The arrays, geometry and made array names of the build of ``profile`` for data
    version ``version`` kept by :func:`write_build` in ``keep``, memory-mapped; None unless
    one is kept for that version (by this code) whose arrays are those stored with the
    layout ``served`` (the data another build of the same version replaced is not)."""
    folder = keep / BUILDS_FOLDER / profile
    text = _layout_text(folder)
    with _READ_AHEAD_LOCK:
        ahead = _READ_AHEAD.pop(folder, None)
    if ahead is not None and ahead[0] == text and ahead[1] == served:
        return ahead[2]
    layout = _parsed(text)
    if (
        served is None
        or layout.get("code") != road_arrays._CODE
        or version not in layout.get("versions", ())
        or layout.get("stored") != layout_digest(served)
    ):
        return None
    found: Arrays = {}
    try:
        for name, spec in layout["arrays"].items():
            dtype, shape = np.dtype(spec["dtype"]), tuple(spec["shape"])
            if int(np.prod(shape)) == 0:
                found[name] = np.zeros(shape, dtype=dtype)
            else:
                found[name] = np.memmap(folder / f"{name}.bin", dtype=dtype, mode="r", shape=shape)
    except (OSError, ValueError):
        return None
    parts = {part.name for part in fields(Geometry)}
    geometry = None
    if all(GEOMETRY_PREFIX + name in found for name in parts):
        geometry = Geometry(**{name: found.pop(GEOMETRY_PREFIX + name) for name in parts})
    return found, geometry, list(layout["made"])


#: Per kept build folder, the build :func:`read_ahead` mapped: the text of its layout file
#: then, the served layout it was checked against and what :func:`kept_build` returned.
_READ_AHEAD: dict[Path, tuple[str, Any, tuple[Arrays, Geometry | None, list[str]] | None]] = {}
_READ_AHEAD_LOCK = threading.Lock()


def read_ahead(keep: Path, profile: str, version: str, served: dict[str, Any] | None) -> None:
    """Map the build :func:`kept_build` finds (the next call of which, for the same kept
    files, returns it) and have the system read its files' pages now, and make the index a
    patch's recustomisation reads of its contraction: an update does this while its change is
    staged, and its patch then finds the pages in memory rather than faulting them in one by
    one."""
    folder = keep / BUILDS_FOLDER / profile
    text = _layout_text(folder)
    found = kept_build(keep, profile, version, served)
    with _READ_AHEAD_LOCK:
        _READ_AHEAD[folder] = (text, served, found)
    if found is None:
        return
    arrays, geometry, _ = found
    for array in [*arrays.values(), *_flat({}, geometry).values()]:
        _populate(array)
    if all(name in arrays for name in ("cch_up_first", "cch_up_head")):
        cch.downward_arcs(arrays["cch_up_first"], arrays["cch_up_head"])


#: ``madvise`` advice mapping a range's pages (read from the file when not in memory), in
#: Linux 5.14 and later; older systems only read them ahead (``MADV_WILLNEED``).
_MADV_POPULATE_READ = 22
#: The C library's ``madvise``, called through ctypes: the interpreter's lock is released
#: meanwhile (``mmap.madvise`` keeps it while the pages are read).
_LIBC = ctypes.CDLL(None, use_errno=True)


def _populate(array: NDArray[Any]) -> None:
    """Have the pages of the memory-mapped ``array`` read and mapped (best effort)."""
    mapped = getattr(array, "_mmap", None)
    if not isinstance(mapped, mmap.mmap) or not array.nbytes:
        return
    start = array.ctypes.data & ~(mmap.PAGESIZE - 1)
    length = array.ctypes.data + array.nbytes - start
    madvise = _LIBC.madvise
    for advice in (_MADV_POPULATE_READ, mmap.MADV_WILLNEED):
        if madvise(ctypes.c_void_p(start), ctypes.c_size_t(length), ctypes.c_int(advice)) == 0:
            return


def _flat(arrays: Arrays, geometry: Geometry | None) -> Arrays:
    """``arrays`` and those of ``geometry`` (named with :data:`GEOMETRY_PREFIX`)."""
    flat = dict(arrays)
    if geometry is not None:
        for part in fields(Geometry):
            flat[GEOMETRY_PREFIX + part.name] = getattr(geometry, part.name)
    return flat


def _layout(folder: Path) -> dict[str, Any]:
    return _parsed(_layout_text(folder))


def _layout_text(folder: Path) -> str:
    try:
        return (folder / BUILD_FILE).read_text("utf-8")
    except OSError:
        return ""


def _parsed(text: str) -> dict[str, Any]:
    try:
        layout = json.loads(text)
    except ValueError:
        return {}
    return layout if isinstance(layout, dict) else {}


def _write_layout(folder: Path, layout: dict[str, Any]) -> None:
    partial = folder / f".{BUILD_FILE}-{os.getpid()}"
    partial.write_text(json.dumps(layout), "utf-8")
    partial.replace(folder / BUILD_FILE)
