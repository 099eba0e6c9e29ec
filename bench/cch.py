"""CCH benchmark: fondplan's own CCH (routing.cch, stored and memory-mapped) against RoutingKit's.

    .venv/bin/python bench/cch.py [--scale 8] [--file F.osm.pbf] [--pairs 300]

Imports the input (the extract repeated N times side by side, bench/import.py's builder) into a
throwaway database, then per profile, on the routing data memory-mapped from a file cache:
  * the time to open an engine on the stored CCH (nothing built) against building RoutingKit's
    CCH and metric from the same arcs and order (what a server did at start), and the memory
    that build keeps (RSS growth);
  * what the import now spends on the CCH: contraction and customization of the arcs;
  * the stored bytes of the CCH arrays;
  * the time of one search between two random road points (the engine's sources and targets,
    several each), both CCHs on the same pairs, p50 and p90, their weights compared.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import psutil
import routingkit_cch as rk
from common import load_bench

from osmimport.database import drop_database, ensure_database
from routing import cch, store
from routing.engine import Engine, Snap
from routing.network import data_version
from routing.profiles import PROFILES

ROOT = Path(__file__).resolve().parent.parent
BENCH_IMPORT = load_bench("import")
DEFAULT_FILE = ROOT / "data" / "sample" / "liechtenstein-2021-05-05.osm.pbf"


def _rss_mb() -> float:
    return float(psutil.Process().memory_info().rss) / 2**20


def measure(folder: Path, pairs: int) -> dict[str, float]:
    """The figures of one profile's routing data, cached in ``folder``."""
    figures: dict[str, float] = {}
    arrays = store._open(folder)
    figures["stored_mb"] = sum(arrays[name].nbytes for name in cch.ARRAYS if name in arrays) / 1e6
    began = time.perf_counter()
    engine = Engine(arrays)
    figures["open_s"] = time.perf_counter() - began
    assert engine.cch_state == "mapped", engine.cch_state
    tails, heads, weights = engine.arcs
    figures["arcs"] = len(tails)
    figures["cch_arcs"] = len(arrays["cch_up_head"])
    began = time.perf_counter()
    contraction = cch.contract(arrays["cch_order"], tails, heads)
    figures["contract_s"] = time.perf_counter() - began
    began = time.perf_counter()
    cch.customize(contraction, weights)
    figures["customize_s"] = time.perf_counter() - began
    del contraction
    gc.collect()
    before = _rss_mb()
    began = time.perf_counter()
    graph = rk.CCH(arrays["cch_order"], tails, heads, False)  # type: ignore[arg-type]
    metric = rk.CCHMetric(graph, weights)  # type: ignore[arg-type]
    figures["rk_build_s"] = time.perf_counter() - began
    figures["rk_build_mb"] = _rss_mb() - before
    rng = np.random.default_rng(11)
    own, theirs = [], []
    for _ in range(pairs):
        a = Snap(int(rng.integers(engine.edge_count)), float(rng.random()), 0, 0, 0)
        b = Snap(int(rng.integers(engine.edge_count)), float(rng.random()), 0, 0, 0)
        sources = [(node, cost) for node, (cost, _) in engine.sources(a).items()]
        targets = list(engine.targets(b).items())
        if not sources or not targets:
            continue
        assert engine._cch is not None
        began = time.perf_counter()
        found = engine._cch.route(sources, targets)
        own.append(time.perf_counter() - began)
        began = time.perf_counter()
        result = rk.CCHQuery(metric).run_multi(sources, targets)
        distance = result.distance
        theirs.append(time.perf_counter() - began)
        assert (found[0] if found else None) == distance, (found, distance)
    for name, times in (("own", own), ("rk", theirs)):
        figures[f"{name}_p50_ms"] = float(np.percentile(times, 50)) * 1000
        figures[f"{name}_p90_ms"] = float(np.percentile(times, 90)) * 1000
    return figures


def main() -> int:
    """Import, measure every profile, print the figures and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--scale", type=int, default=1, help="repeat the extract N times")
    parser.add_argument("--pairs", type=int, default=300)
    args = parser.parse_args()
    admin = BENCH_IMPORT.admin_url()
    name = f"fondplan_bench_{uuid.uuid4().hex[:8]}"
    ensure_database(admin, name)
    url = admin.rsplit("/", 1)[0] + "/" + name
    try:
        with tempfile.TemporaryDirectory(prefix="fondplan-cch-bench-") as tmp:
            source = args.file
            if args.scale > 1:
                source = Path(tmp) / f"scaled-{args.scale}.osm.pbf"
                BENCH_IMPORT.build_scaled(args.file, args.scale, source)
            env = {**os.environ, "FONDPLAN_DATABASE_URL": url, "FONDPLAN_DATA_DIR": tmp}
            subprocess.run(
                [sys.executable, "-m", "tileserver.cli", "import", "--quiet", str(source)],
                env=env,
                check=True,
            )
            version = data_version(url)
            cache = Path(tmp) / "cache"
            rows = {}
            for profile in PROFILES:
                store.load(url, profile, version, cache=cache)
                rows[profile] = measure(cache / version / profile, args.pairs)
    finally:
        drop_database(admin, name)
    print(f"{'figure':34}" + "".join(f"{p:>12}" for p in rows))
    keys = list(next(iter(rows.values())))
    for key in keys:
        print(f"{key:34}" + "".join(f"{rows[p][key]:12.3f}" for p in rows))
    print("ratios (own / RoutingKit):")
    for profile, f in rows.items():
        print(
            f"  {profile}: start {f['open_s'] / f['rk_build_s']:.3f}x, "
            f"query p50 {f['own_p50_ms'] / f['rk_p50_ms']:.2f}x, "
            f"p90 {f['own_p90_ms'] / f['rk_p90_ms']:.2f}x; stored CCH {f['stored_mb']:.1f} MB "
            f"vs {f['rk_build_mb']:.1f} MB built in each process"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
