"""Prometheus text-format metrics: requests, tile latency, cache outcomes; all workers summed."""

from __future__ import annotations

import bisect
import json
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tileserver.diskcache import write_atomically

#: Gives gauge values by metric name, which may carry labels: ``name{kind="tiles"}``.
GaugeSource = Callable[[], dict[str, float]]

#: Upper bounds (seconds) of the tile latency histogram buckets.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    if not pairs:
        return ""
    body = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in pairs
    )
    return "{" + body + "}"


class Metrics:
    """The server's counters and histograms (one instance per app)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.cache: dict[tuple[str, str], int] = defaultdict(int)
        self._buckets: dict[str, list[int]] = {}
        self._sum: dict[str, float] = defaultdict(float)
        self._count: dict[str, int] = defaultdict(int)
        self._gauges: list[GaugeSource] = []
        self._shared: Path | None = None

    def add_gauges(self, source: GaugeSource) -> None:
        """Read ``source`` at every exposition (render pools, limits, the database pool)."""
        self._gauges.append(source)

    def request(self, route: str, method: str, status: int) -> None:
        """Count one answered request."""
        with self._lock:
            self.requests[(route, method, status)] += 1

    def cache_event(self, level: str, outcome: str) -> None:
        """Count a cache ``hit`` or ``miss`` at ``level`` (memory, disk)."""
        with self._lock:
            self.cache[(level, outcome)] += 1

    def tile_latency(self, source: str, seconds: float) -> None:
        """Record how long a tile took, by where it came from (memory, disk, database)."""
        with self._lock:
            buckets = self._buckets.setdefault(source, [0] * (len(LATENCY_BUCKETS) + 1))
            buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            self._sum[source] += seconds
            self._count[source] += 1

    def snapshot(self, extra: dict[str, float] | None = None) -> dict[str, Any]:
        """This process's values as plain JSON data (what other workers read)."""
        gauges = dict(extra or {})
        for gauge_source in self._gauges:
            gauges.update(gauge_source())
        with self._lock:
            return {
                "requests": {"\t".join(map(str, k)): n for k, n in self.requests.items()},
                "cache": {"\t".join(k): n for k, n in self.cache.items()},
                "buckets": {k: list(v) for k, v in self._buckets.items()},
                "sum": dict(self._sum),
                "count": dict(self._count),
                "gauges": gauges,
            }

    def share(self, folder: Path, every: float = 1.0) -> None:
        """Write this process's snapshot to ``folder`` every ``every`` seconds, so that
        ``/metrics`` of any worker of one server covers them all."""
        self._shared = folder
        folder.mkdir(parents=True, exist_ok=True)

        def write() -> None:
            while True:
                write_atomically(
                    folder / f"{os.getpid()}.json", json.dumps(self.snapshot()).encode()
                )
                time.sleep(every)

        threading.Thread(target=write, name="fondplan-metrics-share", daemon=True).start()

    def render(self, extra: dict[str, float] | None = None) -> str:
        """The metrics in the Prometheus text exposition format 0.0.4 (all workers summed)."""
        snapshots = [self.snapshot(extra)]
        if self._shared is not None:
            snapshots += _others(self._shared)
        merged = _merge(snapshots)
        merged["gauges"]["fondplan_workers"] = float(len(snapshots))
        return _exposition(merged)


def _others(folder: Path) -> list[dict[str, Any]]:
    """The snapshots of the other live workers."""
    found = []
    for path in folder.glob("*.json"):
        pid = int(path.stem) if path.stem.isdigit() else 0
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
            found.append(json.loads(path.read_bytes()))
        except (OSError, ValueError):
            # A worker gone (its counts go with it, as a restarted process's would).
            path.unlink(missing_ok=True)
    return found


def _merge(snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {
        "requests": defaultdict(int),
        "cache": defaultdict(int),
        "buckets": {},
        "sum": defaultdict(float),
        "count": defaultdict(int),
        "gauges": defaultdict(float),
    }
    for snap in snapshots:
        for part in ("requests", "cache", "sum", "count", "gauges"):
            for key, value in snap.get(part, {}).items():
                merged[part][key] += value
        for key, buckets in snap.get("buckets", {}).items():
            into = merged["buckets"].setdefault(key, [0] * len(buckets))
            for i, n in enumerate(buckets):
                into[i] += n
    return merged


def _exposition(merged: dict[str, Any]) -> str:
    lines = [
        "# HELP fondplan_http_requests_total HTTP requests answered, by route and status.",
        "# TYPE fondplan_http_requests_total counter",
    ]
    for key, n in sorted(merged["requests"].items()):
        route, method, status = key.split("\t")
        labels = _labels((("route", route), ("method", method), ("status", status)))
        lines.append(f"fondplan_http_requests_total{labels} {n}")
    lines += [
        "# HELP fondplan_tile_cache_total Tile cache lookups, by level and outcome.",
        "# TYPE fondplan_tile_cache_total counter",
    ]
    for key, n in sorted(merged["cache"].items()):
        level, outcome = key.split("\t")
        lines.append(
            f"fondplan_tile_cache_total{_labels((('level', level), ('outcome', outcome)))} {n}"
        )
    lines += [
        "# HELP fondplan_tile_seconds Time to produce a tile, by where it came from.",
        "# TYPE fondplan_tile_seconds histogram",
    ]
    for source, buckets in sorted(merged["buckets"].items()):
        cumulative = 0
        for bound, n in zip((*LATENCY_BUCKETS, float("inf")), buckets, strict=True):
            cumulative += n
            le = "+Inf" if bound == float("inf") else repr(bound)
            labels = _labels((("source", source), ("le", le)))
            lines.append(f"fondplan_tile_seconds_bucket{labels} {cumulative}")
        labels = _labels((("source", source),))
        lines.append(f"fondplan_tile_seconds_sum{labels} {merged['sum'][source]:.6f}")
        lines.append(f"fondplan_tile_seconds_count{labels} {merged['count'][source]}")
    typed: set[str] = set()
    for name, value in sorted(merged["gauges"].items()):
        base = name.split("{", 1)[0]
        if base not in typed:
            typed.add(base)
            kind = "counter" if base.endswith("_total") else "gauge"
            lines.append(f"# TYPE {base} {kind}")
        lines.append(f"{name} {float(value)!r}")
    return "\n".join(lines) + "\n"
