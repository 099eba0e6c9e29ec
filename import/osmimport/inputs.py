"""Input files made ready for the one-pass loader: sorted, and several merged into one file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import osmium
import osmium.io

from osmimport.errors import OsmImportError

#: How to get osmium-tool, which sorts and merges files without holding them in memory.
OSMIUM_HINT = "apt-get install osmium-tool (or run `make setup`)"


def osmium_tool() -> str | None:
    """The osmium-tool command, if installed."""
    return shutil.which("osmium")


def _run(args: list[str], what: Path | str) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise OsmImportError(f"{what}: cannot run osmium ({exc})") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise OsmImportError(
            f"{what}: cannot be read ({detail[-1] if detail else 'osmium failed'})"
        )
    return done.stdout


def file_header(path: Path) -> osmium.io.Header:
    """The header of an OSM file (timestamps, bbox, sorting), without reading its objects."""
    try:
        reader = osmium.io.Reader(str(path), osmium.osm.NOTHING)
        try:
            return reader.header()
        finally:
            reader.close()
    except RuntimeError as exc:
        raise OsmImportError(f"{path}: cannot read the file header ({exc})") from exc


def declared_sorted(path: Path) -> bool:
    """Whether the file's header says it is sorted by type, then id (PBF files from osmium)."""
    return bool(file_header(path).get("sorting") == "Type_then_ID")


def is_sorted(path: Path, tool: str) -> bool:
    """Whether ``path`` comes as nodes, ways, relations, each by id (read once by osmium)."""
    if declared_sorted(path):
        return True
    return _fact(tool, path, "data.objects_ordered") == "yes"


def _fact(tool: str, path: Path, name: str) -> str:
    # One value at a time: the full report fails on some files (no node in the file at all).
    return _run([tool, "fileinfo", "--extended", "--get", name, str(path)], path).strip()


def _object_count(tool: str, path: Path) -> int:
    kinds = ("nodes", "ways", "relations")
    return sum(int(_fact(tool, path, f"data.count.{kind}") or 0) for kind in kinds)


def unsorted_error(path: Path) -> OsmImportError:
    """The one-line refusal of an unsorted file, saying how to sort it."""
    sorted_name = path.name.split(".", 1)[0] + "-sorted.osm.pbf"
    return OsmImportError(
        f"{path}: objects are not sorted (nodes, ways, relations, each by id, as in an "
        f"Overpass export): sort it with `osmium sort {path} -o {sorted_name}` and import that"
    )


#: The warning counting objects found in several inputs with different versions.
OLDER_VERSIONS = "objects in several input files with different versions, older versions dropped"


def prepare(
    paths: Sequence[Path], tmp: Path, *, progress: bool = False, assume_sorted: bool = False
) -> tuple[Path, dict[str, int]]:
    """One sorted file holding every input (``paths[0]`` itself when it alone is sorted).

    Unsorted files are sorted into ``tmp`` with ``osmium sort``; several files are merged with
    ``osmium merge``, which streams them: an object found in two extracts is written once, and
    of its versions in extracts of different days only the newest is kept (``osmium
    time-filter``). Without osmium-tool, a single sorted file is imported as it is, and several
    are merged in memory. Also returns warnings to report.

    ``assume_sorted``: a single file is returned as it is, unchecked (the loader stops on the
    first object out of order).
    """
    tool = osmium_tool()
    if tool is None or (assume_sorted and len(paths) == 1):
        if len(paths) == 1:
            return paths[0], {}
        merge_in_memory(paths, tmp / "merged.osm.pbf")
        return tmp / "merged.osm.pbf", {}
    ready: list[Path] = []
    for number, path in enumerate(paths):
        if is_sorted(path, tool):
            ready.append(path)
            continue
        target = tmp / f"sorted-{number}.osm.pbf"
        _say(progress, f"sorting {path.name} (its objects are not in order)")
        _run([tool, "sort", "--no-progress", "-O", "-o", str(target), str(path)], path)
        ready.append(target)
    if len(ready) == 1:
        return ready[0], {}
    merged = tmp / "merged.osm.pbf"
    where = ", ".join(str(p) for p in paths)
    _say(progress, f"merging {len(ready)} files")
    _run(
        [tool, "merge", "--no-progress", "--with-history", "-O", "-o", str(merged)]
        + [str(p) for p in ready],
        where,
    )
    if _fact(tool, merged, "data.multiple_versions") != "yes":
        return merged, {}
    # The version valid now of each object: the newest (the inputs have no deletions).
    newest = tmp / "newest.osm.pbf"
    _run([tool, "time-filter", "--no-progress", "-O", "-o", str(newest), str(merged)], where)
    dropped = _object_count(tool, merged) - _object_count(tool, newest)
    merged.unlink()
    return newest, {OLDER_VERSIONS: dropped} if dropped else {}


def merge_in_memory(files: Sequence[Path], target: Path) -> None:
    """Merge several extracts into one sorted file with pyosmium (holds them all in memory)."""
    merger = osmium.MergeInputReader()
    for path in files:
        try:
            merger.add_file(str(path))
        except RuntimeError as exc:
            raise OsmImportError(f"{path}: cannot be read ({exc})") from exc
    writer = osmium.WriteHandler(str(target))
    try:
        merger.apply(writer, simplify=True)
    finally:
        writer.close()


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, file=sys.stderr, flush=True)
