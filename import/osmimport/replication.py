"""Replication feeds (state.txt, 000/000/001.osc.gz ...) over HTTP or in a local folder."""

from __future__ import annotations

import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from osmium.replication.server import OsmosisState, ReplicationServer

from osmimport.errors import OsmImportError
from osmimport.importer import BeforeSwapHook, read_meta
from osmimport.settings import CommuneSettings
from osmimport.update import REPLICATION_KEY, ReplicationState, UpdateSummary, data_timestamp
from osmimport.update import run_update as apply_changes

#: Each request of the feed: tries and seconds before a try counts as failed.
TRIES = 3
TIMEOUT = 30.0


class _Feed(ReplicationServer):
    """pyosmium's replication client, reading file:// URLs (local folders) with urllib."""

    def __init__(self, url: str, timeout: float) -> None:
        super().__init__(url)
        self.timeout = timeout
        self.set_request_parameter("timeout", timeout)

    def open_url(self, url: urllib.request.Request) -> Any:
        """Local files through urllib (requests has no file:// support), the rest as usual."""
        if url.get_full_url().startswith("file:"):
            return urllib.request.urlopen(url.get_full_url(), timeout=self.timeout)
        return super().open_url(url)


def feed_url(location: str) -> str:
    """The feed's base URL: an http(s) URL as given, a folder as a file:// URL."""
    if location.startswith(("http://", "https://", "file://")):
        return location.rstrip("/")
    folder = Path(location)
    if not folder.is_dir():
        raise OsmImportError(f"{location}: no such replication folder (nor an http(s) URL)")
    return folder.resolve().as_uri()


def _state(feed: _Feed, where: str, sequence: int | None, tries: int) -> OsmosisState | None:
    for attempt in range(tries):
        state = feed.get_state_info(sequence, retries=0)
        if state is not None:
            return state
        if attempt < tries - 1:
            time.sleep(min(5.0, 0.5 * 2**attempt))
    return None


def _diff(feed: _Feed, sequence: int, tries: int) -> bytes | None:
    for attempt in range(tries):
        try:
            # Bytes, whatever pyosmium's annotation says.
            block: Any = feed.get_diff_block(sequence)
            return bytes(block)
        except (OSError, requests.RequestException):
            if attempt < tries - 1:
                time.sleep(min(5.0, 0.5 * 2**attempt))
    return None


def _start(feed: _Feed, where: str, meta: dict[str, Any], start_sequence: int | None) -> int:
    """The sequence the loaded data is at."""
    known = meta.get(REPLICATION_KEY) or {}
    if known.get("sequence") is not None:
        return int(known["sequence"])
    if start_sequence is not None:
        return start_sequence
    stamp = data_timestamp(meta)
    sequence = feed.timestamp_to_sequence(stamp) if stamp is not None else None
    if sequence is None:
        raise OsmImportError(
            f"{where}: cannot tell which sequence of the feed the loaded data is at (it has no "
            "timestamp the feed covers): give it with --start-sequence N"
        )
    return int(sequence)


def update_once(
    url: str,
    location: str,
    *,
    node_dir: Path,
    before_swap: Sequence[BeforeSwapHook] = (),
    communes: CommuneSettings | None = None,
    max_diffs: int | None = None,
    start_sequence: int | None = None,
    expire_list: Path | None = None,
    progress: bool = False,
    tries: int = TRIES,
    timeout: float = TIMEOUT,
) -> UpdateSummary | None:
    """Apply the diffs published since the data's sequence in one update (None: up to date)."""
    base = feed_url(location)
    meta = read_meta(url)
    if meta is None:
        raise OsmImportError("nothing is loaded: run `fondplan import FILE` first")
    feed = _Feed(base, timeout)
    try:
        latest = _state(feed, location, None, tries)
        if latest is None:
            raise OsmImportError(
                f"{location}: the replication feed does not answer (state.txt, {tries} tries, "
                f"{timeout:g} s each); nothing was changed"
            )
        current = _start(feed, location, meta, start_sequence)
        if latest.sequence < current:
            raise OsmImportError(
                f"{location}: the feed is at sequence {latest.sequence}, behind the loaded "
                f"data ({current}): is it the feed the data came from?"
            )
        if latest.sequence == current:
            return None
        last = latest.sequence if max_diffs is None else min(latest.sequence, current + max_diffs)
        with tempfile.TemporaryDirectory(prefix="fondplan-diffs-", dir=_tmp_dir(node_dir)) as tmp:
            files: list[Path] = []
            for sequence in range(current + 1, last + 1):
                block = _diff(feed, sequence, tries)
                if block is None:
                    raise OsmImportError(
                        f"{location}: diff {sequence} is missing (a gap in the sequence after "
                        f"{sequence - 1}; the feed is at {latest.sequence}); nothing was changed"
                    )
                path = Path(tmp) / f"{sequence:09d}.osc.gz"
                path.write_bytes(block)
                files.append(path)
            state = latest if last == latest.sequence else _state(feed, location, last, tries)
            if state is None:
                raise OsmImportError(
                    f"{location}: the state of sequence {last} is missing; nothing was changed"
                )
            stamp: datetime = state.timestamp
            return apply_changes(
                url,
                files,
                node_dir=node_dir,
                before_swap=before_swap,
                communes=communes,
                replication=ReplicationState(base, last, stamp, previous=current),
                expire_list=expire_list,
                progress=progress,
            )
    finally:
        feed.close()


def _tmp_dir(node_dir: Path) -> Path:
    node_dir.mkdir(parents=True, exist_ok=True)
    return node_dir


def follow(
    url: str,
    location: str,
    *,
    loop: float | None = None,
    **options: Any,
) -> Iterator[UpdateSummary]:
    """``update_once``, then again every ``loop`` seconds (for good) when ``loop`` is given.

    In the loop, a feed that does not answer is reported and tried again at the next round.
    """
    while True:
        try:
            summary = update_once(url, location, **options)
        except OsmImportError as exc:
            if loop is None or "does not answer" not in str(exc):
                raise
            print(f"warning: {exc}; trying again in {loop:g} s", file=sys.stderr, flush=True)
            summary = None
        if summary is not None:
            yield summary
        elif loop is None:
            print("the data is up to date with the feed", file=sys.stderr, flush=True)
        if loop is None:
            return
        time.sleep(loop)
