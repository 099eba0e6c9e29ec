"""A child process fetching a data version's routing profiles into the file cache."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import orjson

log = logging.getLogger(__name__)


class Prefetch:
    """Fetches ``names`` of data version ``version`` into ``cache``, one after the other, in
    a child process: the server builds the CCH of what has arrived meanwhile, and a CCH build,
    which holds the GIL, does not hold up the fetch (nor the fetch the server's imports)."""

    def __init__(self, url: str, version: str, names: Sequence[str], cache: Path) -> None:
        self.version = version
        #: Per profile: "queued", "fetching" or "done" (fetched, or failed: its loader says why).
        self._state = dict.fromkeys(names, "queued")
        self._changed = threading.Condition()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "routing.prefetch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self._process.stdin is not None
        job = {"url": url, "version": version, "names": list(names), "cache": str(cache)}
        self._process.stdin.write(orjson.dumps(job))
        self._process.stdin.close()
        threading.Thread(target=self._follow, name="fondplan-prefetch", daemon=True).start()

    def _follow(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            state, _, name = line.decode().strip().partition(" ")
            with self._changed:
                self._state[name] = state
                self._changed.notify_all()
        self._process.wait()
        with self._changed:
            self._state = dict.fromkeys(self._state, "done")
            self._changed.notify_all()

    def wait(self, name: str) -> None:
        """Wait while ``name`` is being fetched (a profile not started yet is not waited for:
        its loader fetches it itself)."""
        with self._changed:
            self._changed.wait_for(lambda: self._state.get(name) != "fetching")

    def done(self) -> bool:
        """Whether the child has finished."""
        return self._process.poll() is not None


def main() -> int:
    """``python -m routing.prefetch``, the job as JSON on stdin; prints ``fetching NAME`` and
    ``done NAME`` as it goes."""
    from osmimport.children import term_on_parent_death
    from routing import store

    term_on_parent_death()
    job = orjson.loads(sys.stdin.buffer.read())
    cache = Path(job["cache"])
    for name in job["names"]:
        print(f"fetching {name}", flush=True)
        if not (cache / job["version"] / name / store.LAYOUT_FILE).exists():
            try:
                store.load(job["url"], name, job["version"], cache=cache)
            except Exception as exc:  # the server's own load of it reports the error
                print(f"routing prefetch of {name}: {exc}", file=sys.stderr)
        print(f"done {name}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
