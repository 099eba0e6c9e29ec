"""Manage the embedded PostGIS and import OpenStreetMap extracts.

fondplan db start | stop | status | url
fondplan import FILE [FILE ...]
fondplan info
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import ClassVar

from osmimport.command import Command, dispatch
from osmimport.database import database_url
from osmimport.embedded import EmbeddedCluster
from osmimport.settings import DatabaseSettings


class DbCommand:
    """Control the embedded PostGIS (used when FONDPLAN_DATABASE_URL is unset).

    start   initialise the cluster under FONDPLAN_DATA_DIR if needed, and start it
    stop    stop it
    status  say whether it runs, where, and on which port
    url     print the connection URL every fondplan command uses
    """

    name: ClassVar[str] = "db"
    help: ClassVar[str] = "start, stop or inspect the embedded PostGIS"

    def add_args(self, parser: argparse.ArgumentParser) -> None:
        """Declare the action."""
        parser.add_argument("action", choices=["start", "stop", "status", "url"])

    def run(self, args: argparse.Namespace) -> int:
        """Carry out the action."""
        settings = DatabaseSettings()
        if args.action == "url":
            print(database_url(settings))
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
                print("embedded PostGIS: not initialised")
                return 3
            running = cluster.is_running()
            state = "running" if running else "stopped"
            print(f"embedded PostGIS: {state}, port {info.port}, cluster {info.cluster_dir}")
            return 0 if running else 3
        return 0


COMMANDS: list[Command] = [DbCommand()]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the import commands on their own (``python -m osmimport.cli``)."""
    return dispatch("fondplan", __doc__ or "", COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
