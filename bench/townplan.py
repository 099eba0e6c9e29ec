"""Town plan benchmark: time and peak memory of A4/A3/A0 plans of the largest and smallest
Liechtenstein communes (goal: an A3 plan with index in <= 15 s and <= 2 GB), with the pages,
sheets, scale, and the names drawn of each: streets, places, water, stations and facilities (a
commune that does not read on one sheet at 1:12 000 becomes an atlas of sheets).

Maps are drawn by MapLibre Native with the print style (a render process per plan, started
and stopped inside the timing). Each plan runs in its own process; peak RSS is the larger of
the plan process and its render process. Uses FONDPLAN_DATABASE_URL if set
(with Liechtenstein imported), else imports the sample into a throwaway database of the
embedded PostGIS.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample" / "liechtenstein-2021-05-05.osm.pbf"
GOAL_SECONDS = 15.0
GOAL_MB = 2048.0

CHILD = """
import sys
from cities.communes import find_commune
from cities.townplan import PlanOptions, commune_area, make_plan
from osmimport.database import connect
from tileserver.townplan_renderer import MapLibreMapRenderer
url, name, paper, layout, out = sys.argv[1:]
conn = connect(url)
commune = find_commune(conn, name=name)
conn.close()
renderer = MapLibreMapRenderer.for_database(url)
try:
    plan = make_plan(url, commune_area(url, commune), PlanOptions(paper=paper, layout=layout),
                     renderer)
finally:
    renderer.close()
open(out, "wb").write(plan.documents[0])
print(plan.page_count, len(plan.atlas.sheets), round(plan.scale), len(plan.streets),
      plan.label_count, plan.place_count, plan.water_count, plan.poi_count, len(plan.unnamed),
      round(plan.map_dpi))
"""


def prepare() -> tuple[str, str | None]:
    url = os.environ.get("FONDPLAN_DATABASE_URL")
    if url:
        return url, None
    from osmimport.database import ensure_database
    from osmimport.embedded import EmbeddedCluster
    from osmimport.importer import run_import

    cluster = EmbeddedCluster(Path(os.environ.get("FONDPLAN_DATA_DIR", ROOT / "var")))
    cluster.start()
    name = f"fondplan_bench_{uuid.uuid4().hex[:8]}"
    ensure_database(cluster.url("postgres"), name)
    url = cluster.url(name)
    run_import(url, [SAMPLE])
    return url, cluster.url("postgres")


def communes(url: str) -> tuple[str, str]:
    from osmimport.database import connect

    conn = connect(url)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT name FROM osm.communes WHERE complete AND commune AND country = 'LI' "
            "ORDER BY ST_Area(geom)"
        )
        names = [row[0] for row in cur.fetchall()]
    conn.close()
    return names[-1], names[0]


def run_one(
    url: str, name: str, paper: str, layout: str, out: Path
) -> tuple[float, float, float, str]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, name, paper, layout, str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # wait4's maxrss covers the plan process and the render process it waited for.
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    stdout = proc.stdout.read() if proc.stdout else ""
    if status != 0:
        err = proc.stderr.read() if proc.stderr else ""
        raise SystemExit(f"plan {name} {paper} failed:\n{err}")
    # CPU seconds of the plan and its render process: on a shared machine, what the plan cost.
    cpu = usage.ru_utime + usage.ru_stime
    return elapsed, cpu, usage.ru_maxrss / 1024, stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--papers", default="A4,A3,A0")
    parser.add_argument("--layout", default="index-side")
    args = parser.parse_args()
    url, admin = prepare()
    try:
        largest, smallest = communes(url)
        print(f"largest commune: {largest}, smallest: {smallest}; layout {args.layout}")
        print(f"{'commune':<14}{'paper':<7}{'seconds':>9}{'cpu s':>7}{'peak MB':>10}{'pages':>7}"
              f"{'sheets':>8}{'scale':>8}{'streets':>9}{'names':>7}{'places':>8}{'water':>7}{'pois':>6}"
              f"{'unnamed':>9}"
              f"{'map dpi':>9}"
              f"{'t/goal':>8}{'mem/goal':>10}")  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            for name in (largest, smallest):
                for paper in args.papers.split(","):
                    out = Path(tmp) / f"{name}-{paper}.pdf"
                    seconds, cpu, mb, info = run_one(url, name, paper, args.layout, out)
                    pages, sheets, scale, streets, names, places, water, pois, unnamed, dpi = (
                        info.split()
                    )
                    print(
                        f"{name:<14}{paper:<7}{seconds:>9.2f}{cpu:>7.1f}{mb:>10.0f}{pages:>7}{sheets:>8}"
                        f"{scale:>8}{streets:>9}{names:>7}{places:>8}{water:>7}{pois:>6}"
                        f"{unnamed:>9}{dpi:>9}"
                        f"{seconds / GOAL_SECONDS:>8.2f}{mb / GOAL_MB:>10.2f}"
                    )
    finally:
        if admin:
            from osmimport.database import drop_database

            drop_database(admin, url.rsplit("/", 1)[1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
