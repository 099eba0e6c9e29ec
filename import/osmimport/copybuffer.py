"""Rows buffered in memory in COPY text format and streamed into PostgreSQL tables."""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Sequence
from typing import Any

import psycopg2.extensions
from psycopg2 import sql

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})

#: NULL in COPY text format.
NULL = "\\N"


def copy_value(value: Any) -> str:
    """One value in PostgreSQL's COPY text format."""
    if value is None:
        return NULL
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, str):
        # Four scans for the rare special characters cost less than translating every string.
        if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
            return value.translate(_ESCAPES)
        return value
    return str(value)


class CopySender:
    """Runs the COPYs on a background thread so parsing and loading overlap.

    Only this thread uses the cursor while it is open; ``close`` waits for the last COPY and
    re-raises any error it met.
    """

    def __init__(self, cursor: psycopg2.extensions.cursor, *, depth: int = 4) -> None:
        self._cursor = cursor
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="copy", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue
            statement, data = item
            try:
                self._cursor.copy_expert(statement, io.StringIO(data), size=1 << 20)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                self._error = exc

    def send(self, statement: str, data: str) -> None:
        """Queue one COPY (blocks while the queue is full)."""
        if self._error is not None:
            raise self._error
        self._queue.put((statement, data))

    def close_quietly(self) -> None:
        """Stop after the COPYs already queued, ignoring their errors (the caller has one)."""
        self._error = self._error or RuntimeError("import aborted")
        self._queue.put(None)
        self._thread.join()

    def close(self) -> None:
        """Wait for the queued COPYs; raise the first error."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


class CopyBuffer:
    """Collects rows for one table and sends them with ``COPY`` once enough have piled up.

    The limit is small enough that most COPYs run while the file is still being read, rather
    than all together at the end.
    """

    def __init__(
        self,
        sender: CopySender,
        schema: str,
        table: str,
        columns: Sequence[str],
        *,
        limit: int = 1 << 20,
    ) -> None:
        self._sender = sender
        self._statement = (
            sql.SQL("COPY {}.{} ({}) FROM STDIN")
            .format(
                sql.Identifier(schema),
                sql.Identifier(table),
                sql.SQL(", ").join(sql.Identifier(c) for c in columns),
            )
            .as_string(sender._cursor)
        )
        self._parts: list[str] = []
        self._size = 0
        self._limit = limit
        self.rows = 0

    def add(self, values: Sequence[Any]) -> None:
        """Queue one row (values in column order)."""
        line = "\t".join([copy_value(v) for v in values]) + "\n"
        self._parts.append(line)
        self._size += len(line)
        self.rows += 1
        if self._size >= self._limit:
            self.flush()

    def add_line(self, line: str) -> None:
        """Queue one pre-formatted COPY line (ending with a newline)."""
        self._parts.append(line)
        self._size += len(line)
        self.rows += 1
        if self._size >= self._limit:
            self.flush()

    def flush(self) -> None:
        """Hand what is queued to the sender."""
        if not self._parts:
            return
        data = "".join(self._parts)
        self._parts = []
        self._size = 0
        self._sender.send(self._statement, data)
