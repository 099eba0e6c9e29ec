"""fondplan: self-hosted OpenStreetMap basemap server (vector and raster tiles, plans, routes).

Every command uses the embedded PostGIS of the data folder (FONDPLAN_DATA_DIR, else the
checkout's var/, else $XDG_DATA_HOME/fondplan) unless
FONDPLAN_DATABASE_URL names an external one.
"""

from __future__ import annotations

from collections.abc import Sequence

from cities import cli as cities_cli
from osmimport import cli as import_cli
from osmimport.command import Command, dispatch
from routing import cli as routing_cli
from tileserver import commands as tile_commands
from tileserver import raster_cli, townplan_renderer
from tileserver.settings import Settings


def all_commands() -> list[Command]:
    """The commands of every package, in the order the help lists them."""
    commands: list[Command] = [_with_routing(command) for command in import_cli.COMMANDS]
    commands += routing_cli.COMMANDS
    commands += cities_cli.commands(townplan_renderer.renderer_factory)
    commands += tile_commands.COMMANDS
    commands += raster_cli.COMMANDS
    return commands


def _with_routing(command: Command) -> Command:
    """Imports and updates build the routing data of the data they make, before it is served."""
    if isinstance(command, import_cli.ImportCommand):
        return import_cli.ImportCommand(before_swap=[routing_cli.build_before_swap])
    if isinstance(command, import_cli.UpdateCommand):
        return import_cli.UpdateCommand(before_swap=[routing_cli.build_before_swap])
    return command


def main(argv: Sequence[str] | None = None) -> int:
    """The ``fondplan`` console script."""
    return dispatch("fondplan", __doc__ or "", all_commands(), argv, Settings)


if __name__ == "__main__":
    raise SystemExit(main())
