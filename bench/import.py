"""Import benchmark: fondplan vs osm2pgsql on the same file, in the same run.

    python bench/import.py [--file F.osm.pbf] [--scale N] [--inputs DIR] [--skip-hooks]
                            [--skip-no-hooks] [--merge]

Runs, each into its own throwaway database of the same PostGIS server:
  1. "core": `fondplan import --no-generalise` (tables and indexes, like osm2pgsql's run; its
     generalisation, osm2pgsql-gen, is a separate optional step),
  2. "no hooks": `fondplan import` with the generalised low-zoom tables the tiles use,
  3. "with hooks": plus the post-import hooks the umbrella CLI wires (the routing graphs),
  4. `osm2pgsql --create` (default pgsql output and style, no --slim).
Prints wall time, peak RSS of each child process (and the peak memory of it and the processes
it starts together), the ratio fondplan / osm2pgsql, and the
routing build seconds of each profile (what the import stored in ``routing_profiles``).
`--scale N` first builds an input made of the extract repeated N times side by side
(ids renumbered, shifted east in longitude) with pyosmium. `--merge` adds a run importing the
input cut into two overlapping halves (osmium extract), which the import merges.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import osmium
import psutil

from osmimport.database import drop_database, ensure_database
from osmimport.embedded import EmbeddedCluster
from routing.store import versions

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FILE = ROOT / "data" / "sample" / "liechtenstein-2021-05-05.osm.pbf"


def admin_url() -> str:
    external = os.environ.get("FONDPLAN_DATABASE_URL")
    if external:
        return external.rsplit("/", 1)[0] + "/postgres"
    cluster = EmbeddedCluster(Path(os.environ.get("FONDPLAN_DATA_DIR", ROOT / "var")))
    cluster.start()
    return cluster.url("postgres")


def tree_memory_mb(pid: int) -> float:
    """Memory of process ``pid`` and its children together (MB): the sum of their PSS (pages
    shared between them counted once), or of their RSS where PSS cannot be read."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for process in processes:
        try:
            try:
                total += process.memory_full_info().pss
            except psutil.AccessDenied:
                total += process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 1e6


def run_child(
    cmd: list[str],
    env: dict[str, str],
    *,
    tree_peak: list[float] | None = None,
    log: Path | None = None,
) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MB) of the child (of its largest process when it starts
    others), exit code. ``tree_peak`` gets the peak of :func:`tree_memory_mb`, sampled;
    ``log`` the child's stderr (else shown when it fails)."""
    start = time.monotonic()
    errors = log.open("wb") if log is not None else subprocess.PIPE
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=errors)
    done = threading.Event()

    def sample() -> None:
        peak = 0.0
        while not done.wait(0.25):
            peak = max(peak, tree_memory_mb(process.pid))
        if tree_peak is not None:
            tree_peak.append(peak)

    sampler = threading.Thread(target=sample, daemon=True)
    if tree_peak is not None:
        sampler.start()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.monotonic() - start
    done.set()
    if tree_peak is not None:
        sampler.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    if log is not None:
        errors.close()  # type: ignore[union-attr]
    if process.returncode != 0 and process.stderr is not None:
        sys.stderr.write(process.stderr.read().decode(errors="replace")[-2000:])
    return elapsed, usage.ru_maxrss / 1024, process.returncode


def build_scaled(source: Path, copies: int, target: Path) -> None:
    """The extract repeated ``copies`` times side by side, ids renumbered per copy."""
    box = osmium.io.Reader(str(source), osmium.osm.NOTHING).header().box()
    width = (box.top_right.lon - box.bottom_left.lon) if box.valid() else 1.0
    max_id = 0
    for obj in osmium.FileProcessor(str(source)):
        max_id = max(max_id, obj.id)
    step = 10 ** len(str(max_id))
    writer = osmium.SimpleWriter(str(target), overwrite=True)
    try:
        for kind in (osmium.osm.NODE, osmium.osm.WAY, osmium.osm.RELATION):
            for copy in range(copies):
                offset, shift = copy * step, copy * width * 1.05
                for obj in osmium.FileProcessor(str(source), kind):
                    if isinstance(obj, osmium.osm.Node):
                        loc = obj.location
                        writer.add_node(
                            obj.replace(id=obj.id + offset, location=(loc.lon + shift, loc.lat))
                        )
                    elif isinstance(obj, osmium.osm.Way):
                        writer.add_way(
                            obj.replace(
                                id=obj.id + offset, nodes=[n.ref + offset for n in obj.nodes]
                            )
                        )
                    elif isinstance(obj, osmium.osm.Relation):
                        members = [(m.type, m.ref + offset, m.role) for m in obj.members]
                        writer.add_relation(obj.replace(id=obj.id + offset, members=members))
    finally:
        writer.close()


def split_in_two(source: Path, folder: Path) -> list[Path]:
    """Two extracts of ``source`` (west and east halves) sharing a strip, cut by osmium."""
    box = subprocess.run(
        ["osmium", "fileinfo", "--extended", "--get", "data.bbox", str(source)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip("()\n ")
    west, south, east, north = (float(v) for v in box.split(","))
    middle, overlap = (west + east) / 2, (east - west) * 0.02
    halves = []
    for name, left, right in (("west", west, middle + overlap), ("east", middle - overlap, east)):
        target = folder / f"{name}.osm.pbf"
        subprocess.run(
            ["osmium", "extract", "--strategy", "complete_ways", "-O", "-b",
             f"{left},{south},{right},{north}", "-o", str(target), str(source)],
            check=True,
            capture_output=True,
        )  # fmt: skip
        halves.append(target)
    return halves


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--scale", type=int, default=1, help="repeat the extract N times")
    parser.add_argument("--skip-hooks", action="store_true", help="skip the run with hooks")
    parser.add_argument(
        "--skip-no-hooks", action="store_true", help="skip the run without hooks (not core)"
    )
    parser.add_argument(
        "--merge", action="store_true", help="also import the input as two overlapping halves"
    )
    parser.add_argument(
        "--inputs",
        type=Path,
        default=None,
        help="keep the --scale input in this folder and reuse it when there (it takes minutes)",
    )
    parser.add_argument(
        "--log",
        type=Path,
        default=None,
        help="write each fondplan run's progress and step timings to a file in this folder",
    )
    args = parser.parse_args()
    quiet = [] if args.log else ["--quiet"]
    if args.log:
        args.log.mkdir(parents=True, exist_ok=True)

    admin = admin_url()
    base_env = {k: v for k, v in os.environ.items() if k != "FONDPLAN_DATABASE_URL"}
    with tempfile.TemporaryDirectory(prefix="fondplan-bench-") as tmp:
        source: Path = args.file
        if args.scale > 1:
            folder = args.inputs or Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            source = folder / f"{args.file.name.split('.')[0]}-x{args.scale}.osm.pbf"
            started = time.monotonic()
            if not source.exists():
                build_scaled(args.file, args.scale, source.with_suffix(".part"))
                source.with_suffix(".part").rename(source)
            print(f"built {source.name} ({source.stat().st_size / 1e6:.1f} MB) "
                  f"in {time.monotonic() - started:.1f}s")  # fmt: skip
        print(f"input: {source.name}, {source.stat().st_size / 1e6:.1f} MB")
        # osm2pgsql's run loads tables and indexes; its generalisation (osm2pgsql-gen) is a
        # separate optional step, so the like-for-like fondplan run skips the generalised tables.
        inputs = [str(source)]
        runs = [
            ("fondplan (core)", [sys.executable, "-m", "osmimport.cli", "import", *quiet,
                                 "--no-generalise", *inputs]),
            ("fondplan (no hooks)", [sys.executable, "-m", "osmimport.cli", "import", *quiet,
                                     *inputs]),
        ]  # fmt: skip
        if args.skip_no_hooks:
            runs.pop()
        if args.merge:
            halves = [str(p) for p in split_in_two(source, Path(tmp))]
            runs.append(
                ("fondplan (2 halves)", [sys.executable, "-m", "osmimport.cli", "import",
                                         *quiet, *halves])
            )  # fmt: skip
        if not args.skip_hooks:
            runs.append(
                ("fondplan (with hooks)", [sys.executable, "-m", "tileserver.cli", "import",
                                           *quiet, *inputs])
            )  # fmt: skip
        results: dict[str, tuple[float, float, int]] = {}
        trees: dict[str, float] = {}
        routing: list[dict[str, Any]] = []
        databases: list[str] = []
        try:
            for label, cmd in runs:
                name = f"fondplan_bench_{uuid.uuid4().hex[:8]}"
                ensure_database(admin, name)
                databases.append(name)
                env = {
                    **base_env,
                    "FONDPLAN_DATABASE_URL": admin.rsplit("/", 1)[0] + "/" + name,
                    # The node location file goes there, not into the served data dir.
                    "FONDPLAN_DATA_DIR": str(Path(tmp) / name),
                }
                peak: list[float] = []
                log = None
                if args.log:
                    log = args.log / (label.replace("fondplan (", "").strip(")").replace(" ", "-")
                                      + ".log")  # fmt: skip
                results[label] = run_child(cmd, env, tree_peak=peak, log=log)
                trees[label] = peak[0]
                if label == "fondplan (with hooks)":
                    routing = versions(env["FONDPLAN_DATABASE_URL"])
            name = f"fondplan_bench_{uuid.uuid4().hex[:8]}"
            ensure_database(admin, name)
            databases.append(name)
            url = admin.rsplit("/", 1)[0] + "/" + name
            peak = []
            results["osm2pgsql"] = run_child(
                ["osm2pgsql", "--create", "--cache", "1000", "--number-processes", "2",
                 "-d", url, str(source)],
                base_env,
                tree_peak=peak,
            )  # fmt: skip
            trees["osm2pgsql"] = peak[0]
        finally:
            for name in databases:
                drop_database(admin, name)
    # "all processes": the import and the processes it starts, together (PSS, sampled).
    print(f"{'run':<24} {'time (s)':>9} {'peak RSS (MB)':>14} {'all processes':>14} {'exit':>5}")
    for label, (elapsed, rss, code) in results.items():
        print(f"{label:<24} {elapsed:>9.2f} {rss:>14.0f} {trees[label]:>14.0f} {code:>5}")
    for row in routing:
        print(
            f"routing {row['profile']:<5} built in {row['build_seconds']:6.1f} s: "
            f"{row['nodes']} nodes, {row['edges']} edges, {row['bytes'] / 1e6:.1f} MB"
        )
    reference = results["osm2pgsql"][0]
    for label, (elapsed, _, _) in results.items():
        if label != "osm2pgsql":
            print(f"ratio {label} / osm2pgsql: {elapsed / reference:.2f}x (goal <= 3x)")
    return 0 if all(code == 0 for _, _, code in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
