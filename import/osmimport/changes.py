"""OSM change files (.osc, .osc.gz, .opl) read into memory: the newest state of each object."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import osmium
import osmium.osm

from osmimport.errors import OsmImportError
from osmimport.loader import tag_dict

#: Suffixes of the change files an update reads (OPL may carry deletions too).
CHANGE_FILE_SUFFIXES = (".osc", ".osc.gz", ".osc.bz2", ".opl")

#: A node's new state: (lon, lat) or None when its location is invalid, and its tags.
NodeState = tuple[tuple[float, float] | None, dict[str, str]]
#: A way's new state: its node ids and tags.
WayState = tuple[list[int], dict[str, str]]
#: A relation's new state: its members (type, ref, role) and tags.
RelationState = tuple[list[tuple[str, int, str]], dict[str, str]]


@dataclass
class ChangeSet:
    """The newest state of every object a set of change files touches (None: deleted)."""

    nodes: dict[int, NodeState | None] = field(default_factory=dict)
    ways: dict[int, WayState | None] = field(default_factory=dict)
    relations: dict[int, RelationState | None] = field(default_factory=dict)
    #: The newest edit in the files (None when no object carries a timestamp).
    newest: datetime | None = None
    #: Objects read (every version, before keeping the newest of each).
    objects: int = 0
    #: Each file read and the newest edit in it.
    files: list[tuple[Path, datetime | None]] = field(default_factory=list)
    _versions: dict[tuple[str, int], int] = field(default_factory=dict, repr=False)

    @property
    def size(self) -> int:
        """The number of distinct objects changed."""
        return len(self.nodes) + len(self.ways) + len(self.relations)

    def _newer(
        self, kind: str, obj: osmium.osm.Node | osmium.osm.Way | osmium.osm.Relation
    ) -> bool:
        key = (kind, obj.id)
        known = self._versions.get(key)
        if known is not None and obj.version < known:
            return False
        self._versions[key] = obj.version
        return True

    def read(self, path: Path) -> None:
        """Add the objects of ``path``; a later file's version of an object wins on a tie."""
        newest, self.newest = self.newest, None
        try:
            for obj in osmium.FileProcessor(str(path)):
                self.objects += 1
                self._take(obj)
            self.files.append((path, self.newest))
            if newest is not None and (self.newest is None or newest > self.newest):
                self.newest = newest
        except (RuntimeError, ValueError, OSError, EOFError) as exc:
            raise OsmImportError(
                f"{path}: corrupt or truncated change file ({exc}); nothing was changed"
            ) from exc

    def _take(self, obj: Any) -> None:
        stamp = obj.timestamp
        if stamp is not None and stamp.year > 1970 and (self.newest is None or stamp > self.newest):
            self.newest = stamp
        gone = obj.deleted or not obj.visible
        if isinstance(obj, osmium.osm.Node):
            if self._newer("n", obj):
                location = obj.location
                where = (location.lon, location.lat) if location.valid() else None
                self.nodes[obj.id] = None if gone else (where, tag_dict(obj.tags))
        elif isinstance(obj, osmium.osm.Way):
            if self._newer("w", obj):
                refs = [node.ref for node in obj.nodes]
                self.ways[obj.id] = None if gone else (refs, tag_dict(obj.tags))
        elif isinstance(obj, osmium.osm.Relation):
            if self._newer("r", obj):
                members = [(m.type, m.ref, m.role) for m in obj.members]
                self.relations[obj.id] = None if gone else (members, tag_dict(obj.tags))


def check_change_file(path: Path) -> None:
    """Refuse what cannot be a change file, before anything is read."""
    if not path.exists():
        raise OsmImportError(f"{path}: no such file")
    if not path.is_file():
        raise OsmImportError(f"{path}: not a regular file")
    if not path.name.lower().endswith(CHANGE_FILE_SUFFIXES):
        raise OsmImportError(f"{path}: not a change file (expected .osc, .osc.gz, .osc.bz2, .opl)")
    if path.stat().st_size == 0:
        raise OsmImportError(f"{path}: empty file")


def read_changes(paths: Sequence[Path]) -> ChangeSet:
    """The changes of ``paths`` applied in order, read completely before anything is written."""
    changes = ChangeSet()
    for path in paths:
        check_change_file(path)
    for path in paths:
        changes.read(path)
    return changes
