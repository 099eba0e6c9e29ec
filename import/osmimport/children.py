"""Child processes of the server, and the database backends it uses: both yield it the CPU."""

from __future__ import annotations

import ctypes
import os
import re
import signal
import socket
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import psycopg2.extensions

from osmimport.database import load_sql

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


def lower_backend_priority(conn: psycopg2.extensions.connection, nice: int) -> bool:
    """Add ``nice`` to the niceness of the PostgreSQL backend serving ``conn`` when it is a
    process of this machine (the embedded cluster, a local server) the server may renice;
    says whether it did.

    A cold tile's or a town plan's query then yields the CPU to the server's event loop
    answering cached tiles, instead of sharing it equally. The backend is known to be local
    when it sees the same client port as this end of the connection (TCP) and that process is
    a PostgreSQL one; elsewhere (a remote database, another container, a Unix socket)
    nothing is changed.

    Its scheduling group's niceness too (see :func:`lower_session_priority`): a backend leads
    a session of its own, which Linux's autogroups schedule as a group apart, where a process's
    own niceness weighs only against the group's other processes (none).
    """
    with conn.cursor() as cur:
        cur.execute(load_sql("osmimport", "backend.sql"))
        row = cur.fetchone()
    if row is None or row[1] is None:
        return False
    pid, client_port = int(row[0]), int(row[1])
    try:
        with socket.socket(fileno=os.dup(conn.fileno())) as sock:
            local = sock.getsockname()
        if not isinstance(local, tuple) or local[1] != client_port:
            return False
        with open(f"/proc/{pid}/comm", encoding="utf-8") as comm:
            if comm.read().strip() not in ("postgres", "postmaster"):
                return False
        current = os.getpriority(os.PRIO_PROCESS, pid)
        os.setpriority(os.PRIO_PROCESS, pid, min(19, current + nice))
    except OSError:
        # Not this machine's process after all, gone, or not ours to renice.
        return False
    lower_session_priority(pid, nice)
    return True


#: A process's autogroup: its name and niceness (``/autogroup-123 nice 0``).
_AUTOGROUP = re.compile(r"^/autogroup-\d+ nice (-?\d+)$")


def lower_session_priority(pid: int, nice: int) -> bool:
    """Add ``nice`` to the niceness of the autogroup of ``pid`` when the process leads its
    session (the autogroup is its own: PostgreSQL's backends each start one); says whether it
    did.

    Where the kernel groups processes by session (``kernel.sched_autogroup_enabled``, the
    default of most distributions), each group gets an equal share of the CPU whatever its
    processes' niceness: 16 busy backends took 16 shares to the server's one. Nothing changes
    for a process sharing its session, nor where there are no autogroups.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # The command name (field 2) may hold spaces: count the fields after its paren.
        session = int(stat.rsplit(")", 1)[1].split()[3])
        if session != pid:
            return False
        group = Path(f"/proc/{pid}/autogroup")
        found = _AUTOGROUP.match(group.read_text().strip())
        if found is None:
            return False
        group.write_text(str(min(19, int(found.group(1)) + nice)))
    except (OSError, ValueError, IndexError):
        # No autogroups in this kernel, the process is gone, or not ours.
        return False
    return True
