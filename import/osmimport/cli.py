"""Manage the embedded PostGIS and import OpenStreetMap extracts.

fondplan db start | stop | status | url
fondplan import FILE [FILE ...]
fondplan update --osc FILE [--osc FILE ...] | --replication URL_OR_DIR [--loop SECONDS]
fondplan info
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from osmimport import replication
from osmimport.command import Command, dispatch
from osmimport.database import database_url, existing_database_url
from osmimport.embedded import EmbeddedCluster
from osmimport.errors import DatabaseError, UsageError
from osmimport.importer import (
    BeforeSwapHook,
    ImportSummary,
    node_store_dir,
    read_meta,
    run_import,
)
from osmimport.update import (
    REPLICATION_KEY,
    TIMESTAMP_KEY,
    UPDATED_KEY,
    format_update,
    run_update,
)


class DbCommand:
    """Control the embedded PostGIS (used when FONDPLAN_DATABASE_URL is unset).

    start   initialise the cluster under the data folder if needed, and start it
    stop    stop it
    status  say whether it runs, where, and on which port
    url     print the connection URL every fondplan command uses

    The data folder is FONDPLAN_DATA_DIR, else the var/ folder of the checkout fondplan runs
    from, else the per-user data folder ($XDG_DATA_HOME/fondplan). Only `start` and `import`
    create or start the cluster; commands that only read say where they looked.
    """

    name: ClassVar[str] = "db"
    help: ClassVar[str] = "start, stop or inspect the embedded PostGIS"

    def add_args(self, parser: argparse.ArgumentParser) -> None:
        """Declare the action."""
        parser.add_argument("action", choices=["start", "stop", "status", "url"])

    def run(self, args: argparse.Namespace) -> int:
        """Carry out the action."""
        settings = args.settings.database
        if args.action == "url":
            print(existing_database_url(settings))
            return 0
        if settings.database_url and args.action != "status":
            print("FONDPLAN_DATABASE_URL is set: the embedded PostGIS is not used")
            return 0
        cluster = EmbeddedCluster(settings.data_dir)
        if args.action == "start":
            database_url(settings)
            info = cluster.info()
            assert info is not None
            print(f"embedded PostGIS running on 127.0.0.1:{info.port} ({info.cluster_dir})")
        elif args.action == "stop":
            stopped = cluster.stop()
            print("embedded PostGIS stopped" if stopped else "embedded PostGIS was not running")
        else:
            if settings.database_url:
                print("external database (FONDPLAN_DATABASE_URL)")
                return 0
            info = cluster.info()
            if info is None:
                raise DatabaseError(
                    f"no embedded PostGIS in {cluster.data_dir} ({settings.data_dir_origin()}): "
                    "`fondplan db start` or `fondplan import FILE` creates it"
                )
            running = cluster.is_running()
            state = "running" if running else "stopped"
            print(f"embedded PostGIS: {state}, port {info.port}, cluster {info.cluster_dir}")
            return 0 if running else 3
        return 0


class ImportCommand:
    """Import OpenStreetMap extracts (.osm.pbf, .osm, .osm.bz2, .osm.gz) into the database.

    Several files are merged (an object present in two extracts is loaded once); files not
    sorted by type and id (Overpass exports) are sorted first with osmium-tool. The data
    served so far stays in place until the new data is complete, then one transaction swaps
    it in; an import that finds no map features, or no roads where the served data has some,
    is refused unless --allow-empty is given. Progress goes to stderr; a summary ends the run.
    """

    name: ClassVar[str] = "import"
    help: ClassVar[str] = "import OSM extracts (replaces the loaded data)"

    def __init__(self, before_swap: Sequence[BeforeSwapHook] = ()) -> None:
        self.before_swap = list(before_swap)

    def add_args(self, parser: argparse.ArgumentParser) -> None:
        """Declare the input files."""
        parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
        parser.add_argument(
            "--quiet", action="store_true", help="no progress output, only the summary"
        )
        parser.add_argument(
            "--no-generalise",
            dest="generalise",
            action="store_false",
            help="skip the generalised low-zoom tables: a faster import, heavier low-zoom tiles",
        )
        parser.add_argument(
            "--allow-empty",
            action="store_true",
            help="replace the served data even when the import finds no map features, or no "
            "road network where the served data has one",
        )

    def run(self, args: argparse.Namespace) -> int:
        """Import, then print the summary."""
        settings = args.settings.database
        url = database_url(settings)
        summary = run_import(
            url,
            args.files,
            progress=not args.quiet,
            before_swap=self.before_swap,
            node_dir=node_store_dir(settings.data_dir, url),
            generalise=args.generalise,
            allow_empty=args.allow_empty,
            communes=args.settings.communes,
        )
        print(format_summary(summary))
        return 0


def format_summary(summary: ImportSummary) -> str:
    """The end-of-import report: rows per table, warnings, time and peak memory."""
    lines = [f"imported data version {summary.data_version}"]
    width = max(len(name) for name in summary.counts) if summary.counts else 0
    for table, count in summary.counts.items():
        lines.append(f"  {table:<{width}}  {count:>10,}")
    lines.append(f"warnings: {summary.warning_count}")
    for what, count in sorted(summary.warnings.items()):
        lines.append(f"  {count:>8,}  {what}")
    lines.append(f"elapsed: {summary.elapsed:.1f}s, peak memory: {summary.peak_rss_mb:.0f} MB")
    return "\n".join(lines)


class UpdateCommand:
    """Apply OpenStreetMap changes to the loaded data (imported by `fondplan import`).

    --osc applies change files (.osc, .osc.gz) in the order given; --replication follows a
    replication feed (an HTTP URL or a local folder with state.txt and 000/000/001.osc.gz ...)
    from the sequence the data is at, --loop keeps following it. Every update is one
    transaction: tiles, routing data and town plans switch together to the new data version,
    and a failed or interrupted update leaves the data and the replication state as they were.
    --expire-list writes the tiles whose content changed (z/x/y per line) for an outside
    cache to purge; the servers drop them from their own caches.
    """

    name: ClassVar[str] = "update"
    help: ClassVar[str] = "apply OSM change files or follow a replication feed"

    def __init__(self, before_swap: Sequence[BeforeSwapHook] = ()) -> None:
        self.before_swap = list(before_swap)

    def add_args(self, parser: argparse.ArgumentParser) -> None:
        """Declare the sources of changes."""
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--osc", action="append", type=Path, metavar="FILE", default=None)
        source.add_argument("--replication", metavar="URL_OR_DIR")
        parser.add_argument(
            "--max-diffs", type=int, default=None, metavar="N", help="at most N diffs a run"
        )
        parser.add_argument(
            "--loop", type=float, default=None, metavar="SECONDS", help="keep following the feed"
        )
        parser.add_argument(
            "--start-sequence",
            type=int,
            default=None,
            metavar="N",
            help="the feed's sequence the loaded data is at (first run, when the data's "
            "timestamp cannot tell it)",
        )
        parser.add_argument("--expire-list", type=Path, default=None, metavar="FILE")
        parser.add_argument("--quiet", action="store_true", help="only the summary")

    def run(self, args: argparse.Namespace) -> int:
        """Update, then print what changed."""
        settings = args.settings.database
        url = existing_database_url(settings)
        common: dict[str, Any] = {
            "node_dir": node_store_dir(settings.data_dir, url),
            "before_swap": self.before_swap,
            "communes": args.settings.communes,
            "expire_list": args.expire_list,
            "progress": not args.quiet,
        }
        if args.osc:
            if args.loop is not None or args.max_diffs is not None:
                raise UsageError("--loop and --max-diffs go with --replication, not --osc")
            summary = run_update(url, args.osc, **common)
            print(format_update(summary))
            return 0
        for summary in replication.follow(
            url,
            args.replication,
            **common,
            max_diffs=args.max_diffs,
            loop=args.loop,
            start_sequence=args.start_sequence,
        ):
            print(format_update(summary), flush=True)
        return 0


class InfoCommand:
    """Show what is loaded: source files, timestamps, bounding box, data version, counts."""

    name: ClassVar[str] = "info"
    help: ClassVar[str] = "show what is loaded"

    def add_args(self, parser: argparse.ArgumentParser) -> None:
        """No arguments."""

    def run(self, args: argparse.Namespace) -> int:
        """Print the facts from the meta table."""
        meta = read_meta(existing_database_url(args.settings.database))
        if meta is None:
            print("nothing is loaded yet: run `fondplan import FILE`", file=sys.stderr)
            print("nothing loaded")
            return 0
        print(format_info(meta))
        return 0


def format_info(meta: dict[str, Any]) -> str:
    """The ``fondplan info`` text."""
    lines = [
        f"data version: {meta.get('data_version')}",
        f"imported at:  {meta.get('imported_at')}",
        "sources:",
    ]
    for source in meta.get("sources", []):
        lines.append(
            f"  {source['name']}  {source['size']:,} bytes  timestamp {source['timestamp']}"
        )
    bbox = meta.get("bbox")
    if bbox:
        lines.append("bbox (w, s, e, n): " + ", ".join(f"{v:.5f}" for v in bbox))
    lines.append("counts:")
    counts: dict[str, int] = meta.get("counts", {})
    width = max((len(name) for name in counts), default=0)
    for table, count in counts.items():
        lines.append(f"  {table:<{width}}  {count:>10,}")
    warnings: dict[str, int] = meta.get("warnings", {})
    lines.append(f"warnings at import: {sum(warnings.values())}")
    if meta.get(TIMESTAMP_KEY):
        lines.append(f"data timestamp: {meta[TIMESTAMP_KEY]}")
    updated = meta.get(UPDATED_KEY)
    if updated:
        lines.append(f"last update: {updated.get('at')} ({updated.get('objects', 0):,} objects)")
    replication = meta.get(REPLICATION_KEY)
    if replication:
        lines.append(
            f"replication: sequence {replication.get('sequence')}, "
            f"timestamp {replication.get('timestamp')}, from {replication.get('url')}"
        )
    return "\n".join(lines)


COMMANDS: list[Command] = [DbCommand(), ImportCommand(), UpdateCommand(), InfoCommand()]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the import commands on their own (``python -m osmimport.cli``)."""
    return dispatch("fondplan", __doc__ or "", COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
