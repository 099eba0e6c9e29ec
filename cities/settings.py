"""Town plans' section of the settings tree (``FONDPLAN_TOWNPLAN_*``)."""

from __future__ import annotations

from typing import ClassVar

from osmimport.settings import Section


class TownplanSettings(Section):
    """Town plans over HTTP: generation pool, time limit, cache size."""

    env_prefix: ClassVar[str] = "TOWNPLAN_"

    workers: int = 1
    """Plans drawn at the same time (each takes a core and a few hundred MB)."""
    queue: int = 4
    """Plans waiting for a worker before new requests get 503."""
    timeout: float = 120.0
    """Seconds a request waits for its plan; the plan is still finished and cached."""
    cache_bytes: int = 256 * 1024 * 1024
    """Finished plans kept in memory (bytes)."""
    max_dpi: int = 300
    """Highest DPI a request may ask for."""
