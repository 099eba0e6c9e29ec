"""A tiny OPL writer for inline test fixtures."""

from __future__ import annotations

from pathlib import Path


def _escape(text: str) -> str:
    out = []
    for char in text:
        if char.isalnum() or char in "-_.:;/'()!?*+<>[]{}|^~$&":
            out.append(char)
        else:
            out.append(f"%{ord(char):x}%")
    return "".join(out)


def _tags(tags: dict[str, str]) -> str:
    return ",".join(f"{_escape(k)}={_escape(v)}" for k, v in tags.items())


class Opl:
    """Collects nodes, ways and relations and writes them sorted, as osmium expects."""

    def __init__(self) -> None:
        self.nodes: dict[int, str] = {}
        self.ways: dict[int, str] = {}
        self.relations: dict[int, str] = {}
        self._next_node = 1

    def node(self, x: float, y: float, node_id: int | None = None, **tags: str) -> int:
        if node_id is None:
            node_id = self._next_node
        self._next_node = max(self._next_node, node_id + 1)
        self.nodes[node_id] = f"n{node_id} v1 x{x:.7f} y{y:.7f} T{_tags(tags)}"
        return node_id

    def way(self, way_id: int, nodes: list[int], **tags: str) -> int:
        refs = ",".join(f"n{n}" for n in nodes)
        self.ways[way_id] = f"w{way_id} v1 T{_tags(tags)} N{refs}"
        return way_id

    def line(self, way_id: int, x: float, y: float, length: float = 0.01, **tags: str) -> int:
        a = self.node(x, y)
        b = self.node(x + length / 2, y + 0.0005)
        c = self.node(x + length, y)
        return self.way(way_id, [a, b, c], **tags)

    def square(self, way_id: int, x: float, y: float, size: float = 0.002, **tags: str) -> int:
        a = self.node(x, y)
        b = self.node(x + size, y)
        c = self.node(x + size, y + size)
        d = self.node(x, y + size)
        return self.way(way_id, [a, b, c, d, a], **tags)

    def relation(self, rel_id: int, members: list[tuple[str, int, str]], **tags: str) -> int:
        refs = ",".join(f"{kind}{ref}@{_escape(role)}" for kind, ref, role in members)
        self.relations[rel_id] = f"r{rel_id} v1 T{_tags(tags)} M{refs}"
        return rel_id

    def boundary(
        self, rel_id: int, ways: list[int], admin_level: str, type: str = "boundary", **tags: str
    ) -> int:
        """An administrative boundary relation of the outer ways ``ways``."""
        members = [("w", way, "outer") for way in ways]
        boundary = {"type": type, "boundary": "administrative", "admin_level": admin_level}
        return self.relation(rel_id, members, **boundary, **tags)

    def write(self, path: Path) -> Path:
        lines = [
            *(self.nodes[k] for k in sorted(self.nodes)),
            *(self.ways[k] for k in sorted(self.ways)),
            *(self.relations[k] for k in sorted(self.relations)),
        ]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path
