"""Prometheus text-format metrics: requests by route and status, tile latency, cache outcomes."""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Callable

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

    def render(self, extra: dict[str, float] | None = None) -> str:
        """The metrics in the Prometheus text exposition format 0.0.4."""
        lines = [
            "# HELP fondplan_http_requests_total HTTP requests answered, by route and status.",
            "# TYPE fondplan_http_requests_total counter",
        ]
        with self._lock:
            for (route, method, status), n in sorted(self.requests.items()):
                labels = _labels((("route", route), ("method", method), ("status", str(status))))
                lines.append(f"fondplan_http_requests_total{labels} {n}")
            lines += [
                "# HELP fondplan_tile_cache_total Tile cache lookups, by level and outcome.",
                "# TYPE fondplan_tile_cache_total counter",
            ]
            for (level, outcome), n in sorted(self.cache.items()):
                labels = _labels((("level", level), ("outcome", outcome)))
                lines.append(f"fondplan_tile_cache_total{labels} {n}")
            lines += [
                "# HELP fondplan_tile_seconds Time to produce a tile, by where it came from.",
                "# TYPE fondplan_tile_seconds histogram",
            ]
            for source, buckets in sorted(self._buckets.items()):
                cumulative = 0
                for bound, n in zip((*LATENCY_BUCKETS, float("inf")), buckets, strict=True):
                    cumulative += n
                    le = "+Inf" if bound == float("inf") else repr(bound)
                    labels = _labels((("source", source), ("le", le)))
                    lines.append(f"fondplan_tile_seconds_bucket{labels} {cumulative}")
                labels = _labels((("source", source),))
                lines.append(f"fondplan_tile_seconds_sum{labels} {self._sum[source]:.6f}")
                lines.append(f"fondplan_tile_seconds_count{labels} {self._count[source]}")
        gauges = dict(extra or {})
        for gauge_source in self._gauges:
            gauges.update(gauge_source())
        typed: set[str] = set()
        for name, value in sorted(gauges.items()):
            base = name.split("{", 1)[0]
            if base not in typed:
                typed.add(base)
                kind = "counter" if base.endswith("_total") else "gauge"
                lines.append(f"# TYPE {base} {kind}")
            lines.append(f"{name} {float(value)!r}")
        return "\n".join(lines) + "\n"
