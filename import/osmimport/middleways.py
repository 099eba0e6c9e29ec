"""Every way's nodes and tags into ``mid_ways``, in a child process beside the main pass."""

from __future__ import annotations

import io
import json
import multiprocessing
import re
import subprocess
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path

import osmium
from psycopg2 import sql

from osmimport.children import term_on_parent_death
from osmimport.copybuffer import copy_value
from osmimport.database import connect
from osmimport.inputs import osmium_tool
from osmimport.loader import node_refs, tag_dict

#: What one COPY sends (the ways of a region are sent in many COPYs of this many characters).
BATCH_CHARS = 1 << 22

#: A character OPL writes as its code point in hex between two percent signs.
_OPL_ESCAPE = re.compile(r"%([0-9a-fA-F]+)%")
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _unescape(text: str) -> str:
    if "%" not in text:
        return text
    return _OPL_ESCAPE.sub(lambda match: chr(int(match.group(1), 16)), text)


def _copy_line(way_id: str, nodes: str, tags: dict[str, str]) -> str:
    return f"{way_id}\t{{{nodes}}}\t{copy_value(_JSON.encode(tags))}\n"


def opl_lines(tool: str, source: Path) -> Iterator[tuple[str, str]]:
    """(way id, ``mid_ways`` COPY line) of every way of ``source``, read by osmium-tool as OPL:
    the node ids arrive as one string, not an object each as from pyosmium."""
    command = [tool, "cat", "--no-progress", "-t", "way", "-f", "opl,add_metadata=false"]
    with subprocess.Popen(
        [*command, "-o", "-", str(source)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            # "w<id> T<k>=<v>,... N<n><id>,...": separators inside keys and values are escaped.
            head, tags, nodes = line.rstrip("\n").split(" ")
            pairs = tags[1:].split(",") if len(tags) > 1 else []
            values = dict(pair.split("=", 1) for pair in pairs)
            if "%" in tags:
                values = {_unescape(k): _unescape(v) for k, v in values.items()}
            yield head[1:], _copy_line(head[1:], nodes[1:].replace("n", ""), values)
        error = process.stderr.read() if process.stderr is not None else ""
    if process.returncode != 0:
        raise RuntimeError(f"osmium cat failed: {error.strip()}")


def pyosmium_lines(source: Path) -> Iterator[tuple[str, str]]:
    """The same as :func:`opl_lines`, read with pyosmium (without osmium-tool)."""
    for way in osmium.FileProcessor(str(source), osmium.osm.WAY):
        if not isinstance(way, osmium.osm.Way):
            continue
        way_id = str(way.id)
        yield way_id, _copy_line(way_id, ",".join(map(str, node_refs(way))), tag_dict(way.tags))


def copy_middle_ways(url: str, staging: str, source: str) -> int:
    """Copy every way of ``source`` into ``<staging>.mid_ways`` and commit; the rows copied.

    Of an object repeated in a merged input (another version of it, right after itself), the
    first is kept, as the main pass does.
    """
    tool = osmium_tool()
    lines = opl_lines(tool, Path(source)) if tool else pyosmium_lines(Path(source))
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SET synchronous_commit TO off")
            statement = sql.SQL("COPY {} (id, nodes, tags) FROM STDIN").format(
                sql.Identifier(staging, "mid_ways")
            )
            rows, size, batch, last = 0, 0, [], ""
            for way_id, line in lines:
                if way_id == last:
                    continue
                last = way_id
                batch.append(line)
                size += len(line)
                rows += 1
                if size >= BATCH_CHARS:
                    cur.copy_expert(statement, io.StringIO("".join(batch)), size=1 << 20)
                    batch, size = [], 0
            if batch:
                cur.copy_expert(statement, io.StringIO("".join(batch)), size=1 << 20)
        conn.commit()
        return rows
    finally:
        conn.close()


def _copy_in_child(url: str, staging: str, source: str, out: Connection) -> None:
    """:func:`copy_middle_ways`, its rows or its error sent back through ``out``."""
    term_on_parent_death()
    try:
        out.send((copy_middle_ways(url, staging, source), None))
    except Exception as exc:  # noqa: BLE001 - handed to the parent
        out.send((0, str(exc) or type(exc).__name__))
    finally:
        out.close()


class MiddleWays:
    """:func:`copy_middle_ways` in a child process: it reads the file a second time, beside
    the main pass, and its COPYs run on a connection of their own."""

    def __init__(self, url: str, staging: str, source: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self._result, sender = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_copy_in_child, args=(url, staging, str(source), sender), daemon=True
        )
        self._process.start()
        sender.close()

    def wait(self) -> int:
        """The rows copied, once committed; raises the child's error (a RuntimeError)."""
        try:
            rows, error = self._result.recv()
            self._process.join()
        except EOFError:
            raise RuntimeError("the process copying the ways stopped") from None
        finally:
            self.stop()
        if error is not None:
            raise RuntimeError(error)
        return int(rows)

    def stop(self) -> None:
        """Stop the child (its transaction is rolled back)."""
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()
        self._result.close()
