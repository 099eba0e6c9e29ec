"""Pools of child processes of the server: they stop with it, and it stops them."""

from __future__ import annotations

import ctypes
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from typing import Any

#: prctl(2) option: the signal a child gets when the server process dies.
PR_SET_PDEATHSIG = 1


def term_on_parent_death() -> None:
    """SIGTERM this process when the thread of the process that started it ends (Linux's
    parent-death signal; nothing where it does not exist)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def stop_with_parent() -> None:
    """In a child: SIGTERM when the thread of the server that started it ends; Ctrl+C ignored
    (it reaches the whole process group, and the server stops its children itself)."""
    term_on_parent_death()
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def pool_pids(pool: ProcessPoolExecutor | None) -> list[int]:
    """The child processes of ``pool`` running now."""
    processes: dict[int, Any] = getattr(pool, "_processes", None) or {}
    return [process.pid for process in processes.values()]


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Stop the children of ``pool`` (the work under way in them is lost)."""
    children = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for child in children:
        child.terminate()
    for child in children:
        child.join(5)


def lower_priority(pid: int, nice: int, parent: int) -> None:
    """Make process ``pid`` (0: this one) ``nice`` nicer than process ``parent``, unless it is
    already that nice or nicer: the same call from the parent and from the child, in either
    order, adds ``nice`` once."""
    if nice <= 0:
        return
    try:
        target = min(19, os.getpriority(os.PRIO_PROCESS, parent) + nice)
        if os.getpriority(os.PRIO_PROCESS, pid) < target:
            os.setpriority(os.PRIO_PROCESS, pid, target)
    except OSError:
        # Gone already, or not ours: it keeps the priority it has.
        pass
