"""Print town plans (plans de ville) of the communes in the loaded data.

fondplan townplan "Vaduz" --paper A3 --orientation landscape --layout index-side -o vaduz.pdf
fondplan townplan --insee 68224 --paper A4 --format png --dpi 300 -o mulhouse.png
fondplan townplan --bbox 7.30,47.72,7.33,47.74 --title "Mulhouse — Brunstatt" -o plan.pdf
fondplan townplan --all --paper A3 --outdir plans/
fondplan communes [--search TEXT]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from cities.communes import find_commune, list_communes
from cities.errors import CitiesError
from cities.paper import DEFAULT_PAPER, PAPERS, Layout, parse_layout, parse_orientation, parse_paper
from cities.render import MapRenderer
from cities.townplan import (
    Plan,
    PlanArea,
    PlanOptions,
    bbox_area,
    commune_area,
    make_plan,
    parse_bbox,
)
from osmimport.command import Command, dispatch
from osmimport.database import connect, database_url, existing_database_url
from osmimport.errors import UsageError

#: Builds the map renderer for a database URL and the settings tree; the umbrella CLI passes
#: MapLibre Native's.
RendererFactory = Callable[[str, Any], MapRenderer]


def write_plan(plan: Plan, output: Path) -> list[Path]:
    """Write the plan; PNG plans of several pages get ``-2``, ``-3``… files after the first."""
    output.parent.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for number, document in enumerate(plan.documents, start=1):
        path = output if number == 1 else output.with_name(f"{output.stem}-{number}{output.suffix}")
        path.write_bytes(document)
        written.append(path)
    return written


def add_admin_level(parser: argparse.ArgumentParser) -> None:
    """The ``--admin-level`` option of the commands that pick communes."""
    parser.add_argument(
        "--admin-level",
        type=int,
        metavar="N",
        help="areas of this OSM admin_level (6 to 10) instead of the communes (8 in FR, DE, LU, "
        "CH, BE, LI; German kreisfreie Städte at 6; see FONDPLAN_COMMUNE_LEVELS)",
    )


class TownplanCommand:
    """Print the plan of a commune (by name or INSEE code), of a box, or of every commune.

    Paper A4…A0, portrait, landscape or best fit; the street and facilities index beside the
    map, below it, or on pages of its own. PDF (all pages in one file) or PNG (one per page).
    """

    name: ClassVar[str] = "townplan"
    help: ClassVar[str] = "print a town plan (PDF/PNG) of a commune"

    def __init__(self, renderer_factory: RendererFactory | None = None) -> None:
        self.renderer_factory = renderer_factory

    def add_args(self, parser: argparse.ArgumentParser) -> None:
        """Declare the plan options."""
        parser.add_argument("commune", nargs="?", help="commune name (accents and case ignored)")
        what = parser.add_argument_group("what to plan (one of)")
        what.add_argument("--insee", help="INSEE code of the commune (ref:INSEE)")
        what.add_argument("--bbox", help="a box W,S,E,N in degrees instead of a commune")
        what.add_argument("--all", action="store_true", help="every commune loaded")
        add_admin_level(parser)
        parser.add_argument("--title", help="title printed on the plan")
        parser.add_argument(
            "--paper", default=DEFAULT_PAPER, help=f"{', '.join(PAPERS)} (default {DEFAULT_PAPER})"
        )
        parser.add_argument(
            "--orientation",
            default="best",
            help="portrait, landscape or best (from the area's shape; default)",
        )
        parser.add_argument(
            "--layout",
            default=Layout.INDEX_SIDE.value,
            help="index-side (default), index-below or index-pages",
        )
        parser.add_argument("--format", choices=["pdf", "png"], help="default: from -o, else pdf")
        parser.add_argument(
            "--dpi",
            type=int,
            default=300,
            help="output resolution (default 300); the map is drawn at it, except that it is "
            "capped at 60 million pixels (A0 maps print at about 250 dpi)",
        )
        parser.add_argument("--style", default="print", help="map style name (default print)")
        parser.add_argument("-o", "--output", type=Path, help="output file")
        parser.add_argument("--outdir", type=Path, help="output folder (with --all)")

    def run(self, args: argparse.Namespace) -> int:
        """Make the plan(s)."""
        chosen = [bool(args.commune), bool(args.insee), bool(args.bbox), bool(args.all)]
        if sum(chosen) != 1:
            raise UsageError("name one commune, or give --insee, --bbox or --all")
        fmt = args.format
        if fmt is None:
            suffix = args.output.suffix.lower().lstrip(".") if args.output else ""
            fmt = suffix if suffix in ("pdf", "png") else "pdf"
        options = PlanOptions(
            paper=parse_paper(args.paper),
            orientation=parse_orientation(args.orientation),
            layout=parse_layout(args.layout),
            format=fmt,
            dpi=args.dpi,
            style=args.style,
            title=args.title,
        )
        url = database_url(args.settings.database)
        if self.renderer_factory is None:
            raise UsageError("no map renderer: run `fondplan townplan` (MapLibre Native)")
        renderer = self.renderer_factory(url, args.settings)
        try:
            return self._run(args, url, options, renderer, fmt)
        finally:
            close = getattr(renderer, "close", None)
            if callable(close):
                close()

    def _run(
        self,
        args: argparse.Namespace,
        url: str,
        options: PlanOptions,
        renderer: MapRenderer,
        fmt: str,
    ) -> int:
        if args.all:
            return self._all(url, options, renderer, args.outdir or Path("."), args.admin_level)
        if args.bbox:
            area = bbox_area(parse_bbox(args.bbox), args.title)
        else:
            conn = connect(url)
            try:
                commune = find_commune(
                    conn, name=args.commune, insee=args.insee, admin_level=args.admin_level
                )
            finally:
                conn.close()
            area = commune_area(url, commune)
        output = args.output or Path(f"{area.slug}.{fmt}")
        return self._one(url, area, options, renderer, output)

    @staticmethod
    def _one(
        url: str, area: PlanArea, options: PlanOptions, renderer: MapRenderer, output: Path
    ) -> int:
        started = time.monotonic()
        plan = make_plan(url, area, options, renderer)
        for warning in plan.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        paths = write_plan(plan, output)
        print(
            f"{area.title}: {plan.page_count} page(s), {len(plan.atlas.sheets)} sheet(s) at "
            f"1:{plan.scale:.0f}, {len(plan.streets)} streets ({plan.label_count} names drawn), "
            f"{sum(len(e) for _, e in plan.facilities)} facilities ({plan.poi_count} named), "
            f"{plan.water_count} water names, grid "
            f"{plan.grid.cols}x{plan.grid.rows} -> {', '.join(map(str, paths))} "
            f"({time.monotonic() - started:.1f} s)"
        )
        return 0

    @staticmethod
    def _all(
        url: str,
        options: PlanOptions,
        renderer: MapRenderer,
        outdir: Path,
        admin_level: int | None,
    ) -> int:
        conn = connect(url)
        try:
            communes = list_communes(conn, admin_level=admin_level)
        finally:
            conn.close()
        started = time.monotonic()
        done = skipped = 0
        for number, commune in enumerate(communes, start=1):
            elapsed = time.monotonic() - started
            eta = elapsed / max(number - 1, 1) * (len(communes) - number + 1) if done else 0.0
            print(
                f"[{number}/{len(communes)}] {commune.label} (ETA {eta:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
            if not commune.complete:
                print(f"  skipped: boundary of {commune.label} incomplete", file=sys.stderr)
                skipped += 1
                continue
            try:
                area = commune_area(url, commune)
                plan = make_plan(url, area, options, renderer)
            except CitiesError as exc:
                print(f"  skipped: {exc}", file=sys.stderr)
                skipped += 1
                continue
            write_plan(plan, outdir / f"{commune.slug}.{options.format}")
            done += 1
        print(
            f"{done} plans written to {outdir}, {skipped} skipped, "
            f"{time.monotonic() - started:.1f} s"
        )
        return 0


class CommunesCommand:
    """List the communes that can be planned (name, INSEE code, whether the boundary is whole)."""

    name: ClassVar[str] = "communes"
    help: ClassVar[str] = "list the communes a town plan can be made of"

    def add_args(self, parser: argparse.ArgumentParser) -> None:
        """Declare the search option."""
        parser.add_argument("--search", help="keep names containing this (accents ignored)")
        add_admin_level(parser)

    def run(self, args: argparse.Namespace) -> int:
        """Print one commune per line."""
        conn = connect(existing_database_url(args.settings.database))
        try:
            communes = list_communes(conn, args.search, admin_level=args.admin_level)
        finally:
            conn.close()
        for commune in communes:
            flags = "" if commune.complete else "  (boundary incomplete: use --bbox)"
            insee = commune.insee or "-"
            print(f"{commune.label}\t{insee}\t{commune.country or '-'}{flags}")
        print(f"{len(communes)} communes", file=sys.stderr)
        return 0


def commands(renderer_factory: RendererFactory | None = None) -> list[Command]:
    """The town plan commands, drawing maps with ``renderer_factory`` (MapLibre Native's)."""
    return [TownplanCommand(renderer_factory), CommunesCommand()]


COMMANDS: list[Command] = commands()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the town plan commands on their own (``communes`` only: plans need a renderer)."""
    return dispatch("fondplan", __doc__ or "", COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
