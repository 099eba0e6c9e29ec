"""Update benchmark: changes of 100, 1,000 and 10,000 objects, and 2013->2021 vs a re-import.

    python bench/update.py [--scale N] [--sizes 100,1000,10000] [--skip-routing] [--skip-years]
        [--full-rebuild] [--no-roads | --both] [--scaled FILE] [--cli]

1. Imports the Liechtenstein extract (repeated ``--scale`` times side by side, as
   bench/import.py builds it) with what updates need and the routing data, then applies
   changes touching about N objects each (half moved road nodes, which keep their tags, a
   quarter renamed buildings, a quarter new POIs), one after the other: wall time, routing
   rebuild time, tiles expired. With ``--cli``, the import and each update run as ``fondplan``
   commands, each in a process of its own, as a cron job runs ``fondplan update``: wall time
   of the whole command (its start-up included), tiles expired.
2. Imports Liechtenstein 2013, applies `osmium derive-changes` 2013->2021 and times it against
   a full import of 2021 (both with the routing data unless --skip-routing).
Prints one line per run and a JSON summary last.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import load_bench

from osmimport.database import connect, drop_database, ensure_database
from osmimport.importer import run_import
from osmimport.update import run_update
from routing.build import build_before_swap, build_graphs

ROOT = Path(__file__).resolve().parent.parent
LI_2013 = ROOT / "tests" / "data" / "liechtenstein-2013-08-03.osm.pbf"
LI_2021 = ROOT / "data" / "sample" / "liechtenstein-2021-05-05.osm.pbf"
STAMP = "2030-01-01T00:00:00Z"


def _rows(url: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(query, params)
            return list(cur.fetchall())
    finally:
        conn.close()


def _tags(tags: dict[str, str]) -> str:
    def esc(text: str) -> str:
        return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")

    return "".join(f'<tag k="{esc(k)}" v="{esc(v)}"/>' for k, v in tags.items())


def make_change(url: str, size: int, seed: int, target: Path, *, roads: bool = True) -> int:
    """An osmChange touching about ``size`` objects of the loaded data; the objects written
    (without ``roads``: new POIs and renamed buildings only, no road node moved)."""
    rng = random.Random(seed)
    moves = _rows(
        url,
        "SELECT n.osm_id, n.lon, n.lat, coalesce(b.tags, '{}') FROM osm.road_nodes n "
        "LEFT JOIN osm.barriers b USING (osm_id) ORDER BY md5(n.osm_id::text || %s) LIMIT %s",
        (str(seed), size // 2),
    )
    buildings = _rows(
        url,
        "SELECT id, nodes, tags FROM osm.mid_ways WHERE tags ? 'building' "
        "ORDER BY md5(id::text || %s) LIMIT %s",
        (str(seed), size // 4 if roads else size // 2),
    )
    create, modify = [], []
    base = 9_000_000_000_000 + seed * 100_000
    for i, (_, lon, lat, _) in enumerate(moves[: size // 4] if roads else moves):
        tags = _tags({"amenity": "bench", "name": f"Bench {seed}-{i}"})
        create.append(
            f'<node id="{base + i}" version="1" timestamp="{STAMP}" '
            f'lon="{lon + 0.0001:.7f}" lat="{lat:.7f}">{tags}</node>'
        )
    for osm_id, lon, lat, node_tags in moves if roads else []:
        shift = rng.uniform(-0.00005, 0.00005)
        # A moved node keeps its tags (barriers, crossings): the change moves roads only.
        modify.append(
            f'<node id="{osm_id}" version="99" timestamp="{STAMP}" '
            f'lon="{lon + shift:.7f}" lat="{lat + shift:.7f}">{_tags(node_tags)}</node>'
        )
    for osm_id, nodes, tags in buildings:
        named = {**tags, "name": f"Building {seed}"}
        refs = "".join(f'<nd ref="{n}"/>' for n in nodes)
        modify.append(
            f'<way id="{osm_id}" version="99" timestamp="{STAMP}">{refs}{_tags(named)}</way>'
        )
    # Nodes first, then ways: osmium reads a change file in order.
    modify.sort(key=lambda element: 0 if element.startswith("<node") else 1)
    target.write_text(
        "<?xml version='1.0' encoding='UTF-8'?>\n<osmChange version=\"0.6\">\n"
        f"<create>{''.join(create)}</create>\n<modify>{''.join(modify)}</modify>\n"
        "</osmChange>\n",
        encoding="utf-8",
    )
    return len(create) + len(modify)


def _timed(step: Callable[[], Any]) -> tuple[float, Any]:
    started = time.monotonic()
    result = step()
    return time.monotonic() - started, result


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scale", type=int, default=1, help="repeat the extract N times")
    parser.add_argument("--sizes", default="100,1000,10000", help="objects per change")
    parser.add_argument(
        "--scaled",
        type=Path,
        help="the scaled extract: read when it exists, else built there (and kept)",
    )
    parser.add_argument("--skip-routing", action="store_true", help="no routing data")
    parser.add_argument("--skip-years", action="store_true", help="no 2013->2021 run")
    parser.add_argument(
        "--no-roads", action="store_true", help="changes of POIs and buildings only"
    )
    parser.add_argument(
        "--both",
        action="store_true",
        help="apply each size twice: without roads (as --no-roads), then with roads",
    )
    parser.add_argument(
        "--full-rebuild",
        action="store_true",
        help="after each update, time the whole routing build of the same data too",
    )
    parser.add_argument(
        "--cli",
        action="store_true",
        help="run the import and each update as a fondplan command of its own (whole wall time)",
    )
    args = parser.parse_args()
    bench_import = load_bench("import")
    admin = bench_import.admin_url()
    hooks = [] if args.skip_routing else [build_before_swap]
    report: dict[str, Any] = {"scale": args.scale, "routing": not args.skip_routing}
    work = Path(tempfile.mkdtemp(prefix="fondplan-bench-update-", dir=ROOT / "var"))
    created: list[str] = []

    def database() -> str:
        name = f"fondplan_bench_{uuid.uuid4().hex[:10]}"
        ensure_database(admin, name)
        created.append(name)
        return admin.rsplit("/", 1)[0] + "/" + name

    try:
        source = LI_2021
        if args.scale > 1:
            source = args.scaled or work / f"scaled-{args.scale}.osm.pbf"
            if not source.exists():
                bench_import.build_scaled(LI_2021, args.scale, source)
        url = database()
        env = {**os.environ, "FONDPLAN_DATABASE_URL": url, "FONDPLAN_DATA_DIR": str(work / "data")}

        def command(*words: str) -> None:
            cli = "osmimport.cli" if args.skip_routing else "tileserver.cli"
            subprocess.run([sys.executable, "-m", cli, *words], env=env, check=True)

        import_seconds, _ = _timed(
            lambda: (
                command("import", "--quiet", str(source))
                if args.cli
                else run_import(url, [source], node_dir=work / "nodes", before_swap=hooks)
            )
        )
        print(f"import x{args.scale}: {import_seconds:.1f}s", flush=True)
        report["import_seconds"] = round(import_seconds, 1)
        report["changes"] = []
        kinds = [False, True] if args.both else [not args.no_roads]
        runs = [
            (size, roads) for s in args.sizes.split(",") for size in [int(s)] for roads in kinds
        ]
        for seed, (size, roads) in enumerate(runs):
            change = work / f"change-{seed}-{size}.osc"
            objects = make_change(url, size, seed, change, roads=roads)
            if args.cli:
                expire = work / f"expire-{seed}.txt"
                seconds, _ = _timed(
                    lambda change=change, expire=expire: command(
                        "update", "--quiet", "--osc", str(change), "--expire-list", str(expire)
                    )
                )
                expired, routing, steps = len(expire.read_text().split()), float("nan"), {}
            else:
                seconds, summary = _timed(
                    lambda change=change: run_update(
                        url, [change], node_dir=work / "nodes", before_swap=hooks
                    )
                )
                expired, routing, steps = (
                    len(summary.expired),
                    summary.routing_seconds,
                    summary.timings,
                )
            full = 0.0
            if hooks and args.full_rebuild:
                # The whole build (every profile, a fresh node order) on the same data, as an
                # update did it before it kept unchanged profiles and reused the order.
                full, _ = _timed(lambda: build_graphs(url, quiet=True))
            row = {
                "objects": objects,
                "roads": roads,
                "seconds": round(seconds, 2),
                "routing_seconds": round(routing, 2),
                "full_rebuild_seconds": round(full, 2),
                "without_routing_seconds": round(seconds - routing, 2),
                "tiles_expired": expired,
                "import_ratio": round(import_seconds / seconds, 1),
                "steps": steps,
            }
            report["changes"].append(row)
            print(
                f"update of {objects:,} objects{'' if roads else ' (no roads)'}: {seconds:.2f}s "
                f"(routing {routing:.2f}s, whole rebuild {full:.2f}s), "
                f"{expired:,} tiles expired, "
                f"{import_seconds / seconds:.1f}x faster than the import",
                flush=True,
            )
        if not args.skip_years:
            tool = shutil.which("osmium")
            assert tool is not None, "osmium-tool is needed"
            change = work / "li-2013-2021.osc.gz"
            subprocess.run(
                [tool, "derive-changes", str(LI_2013), str(LI_2021), "-o", str(change)], check=True
            )
            old, new = database(), database()
            run_import(old, [LI_2013], node_dir=work / "nodes13", before_swap=hooks)
            update_seconds, summary = _timed(
                lambda: run_update(old, [change], node_dir=work / "nodes13", before_swap=hooks)
            )
            import_seconds, _ = _timed(
                lambda: run_import(new, [LI_2021], node_dir=work / "nodes21", before_swap=hooks)
            )
            report["years"] = {
                "objects": summary.objects,
                "update_seconds": round(update_seconds, 1),
                "reimport_seconds": round(import_seconds, 1),
                "tiles_expired": len(summary.expired),
                "steps": summary.timings,
            }
            print(
                f"2013->2021 ({summary.objects:,} objects): update {update_seconds:.1f}s, "
                f"full import of 2021 {import_seconds:.1f}s",
                flush=True,
            )
    finally:
        for name in created:
            drop_database(admin, name)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
