"""Rows buffered in memory in COPY text format and streamed into PostgreSQL tables."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg2.extensions
from psycopg2 import sql

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_value(value: Any) -> str:
    """One value in PostgreSQL's COPY text format."""
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    return str(value)


def copy_array(values: Iterable[int]) -> str:
    """An integer array literal for COPY."""
    return "{" + ",".join(map(str, values)) + "}"


class CopyBuffer:
    """Collects rows for one table and sends them with ``COPY`` once enough have piled up."""

    def __init__(
        self,
        cursor: psycopg2.extensions.cursor,
        schema: str,
        table: str,
        columns: Sequence[str],
        *,
        limit: int = 8 << 20,
    ) -> None:
        self._cursor = cursor
        self._statement = (
            sql.SQL("COPY {}.{} ({}) FROM STDIN")
            .format(
                sql.Identifier(schema),
                sql.Identifier(table),
                sql.SQL(", ").join(sql.Identifier(c) for c in columns),
            )
            .as_string(cursor)
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
        """Send what is queued."""
        if not self._parts:
            return
        data = io.StringIO("".join(self._parts))
        self._parts = []
        self._size = 0
        self._cursor.copy_expert(self._statement, data, size=1 << 20)
