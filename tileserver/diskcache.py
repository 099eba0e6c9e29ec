"""Small helpers shared by the disk caches (glyphs, sprites, tiles): atomic writes, locations."""

from __future__ import annotations

import os
import threading
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``path`` through a private temporary file renamed over it.

    Concurrent processes (the server and its render processes) may build the same entry at
    once: each writes its own file and the rename is atomic, so a reader sees a whole file or
    none. A cache that cannot be written (full or read-only disk) is skipped, not an error.
    """
    partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(data)
        partial.replace(path)
    except OSError:
        partial.unlink(missing_ok=True)


def cache_dir(env_var: str, data_dir: Path, name: str) -> Path | None:
    """``$env_var`` if set, else ``data_dir/cache/<name>``; ``None`` when set but empty.

    Made absolute so a render process started elsewhere finds the same files.
    """
    value = os.environ.get(env_var)
    if value is not None:
        return Path(value).resolve() if value.strip() else None
    return (data_dir / "cache" / name).resolve()
