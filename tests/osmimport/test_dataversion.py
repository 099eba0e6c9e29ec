"""The one data-version reader, on an empty database and after an import."""

from __future__ import annotations

from collections.abc import Callable

from osmimport.database import connect
from osmimport.dataversion import NO_DATA, read_data_version, version_from_meta
from osmimport.importer import read_meta


def test_nothing_loaded_reads_no_data(make_database: Callable[[], str]) -> None:
    conn = connect(make_database())
    try:
        assert read_data_version(conn) == NO_DATA
    finally:
        conn.close()


def test_reads_the_version_the_import_recorded(liechtenstein_url: str) -> None:
    meta = read_meta(liechtenstein_url)
    assert meta is not None and meta["data_version"]
    conn = connect(liechtenstein_url)
    try:
        assert read_data_version(conn) == meta["data_version"] != NO_DATA
    finally:
        conn.close()


def test_version_from_meta() -> None:
    assert version_from_meta(None) == NO_DATA
    assert version_from_meta({}) == NO_DATA
    assert version_from_meta({"data_version": ""}) == NO_DATA
    assert version_from_meta({"data_version": "2021-01-01T00:00:00Z-ab12"}) == (
        "2021-01-01T00:00:00Z-ab12"
    )
