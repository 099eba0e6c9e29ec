"""A server on a streaming replica follows the imports made on the primary."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import mapbox_vector_tile
import psycopg2
import pytest

from osmimport.database import ensure_database
from osmimport.embedded import EmbeddedCluster, find_pg_bindir
from routing.network import data_version
from tests.conftest import ROOT, SAMPLE, TEST_DATA
from tests.tileserver.conftest import free_port, tile_of

pytestmark = pytest.mark.slow

#: Seconds between two reads of the data version by the server on the replica.
INTERVAL = 2.0
#: Slack on top of the interval: a request in flight, the new routing graph loaded.
SLACK = 20.0
FIRST = SAMPLE / "mulhouse-sud-ouest.osm.pbf"
SECOND = TEST_DATA / "wehr-baden.osm.pbf"
#: A short trip on the roads of each extract.
MULHOUSE = ((7.31697, 47.73374), (7.30902, 47.73171))
WEHR = ((7.90855, 47.5855), (7.90983, 47.58964))


def _pg(tool: str, *args: str) -> None:
    """Run a PostgreSQL program, as ``postgres`` when the tests run as root (like the
    embedded cluster); fail with its output when it fails."""
    cmd = [str(find_pg_bindir() / tool), *args]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd="/", timeout=120)
    assert done.returncode == 0, f"{tool} failed: {done.stderr or done.stdout}"


def _owned_dir(prefix: str) -> Path:
    """A fresh folder under the system temp dir that the cluster's user can use."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")
    return path


@dataclass
class Clusters:
    """The primary's and the replica's URLs of the served database."""

    primary: str
    replica: str


@pytest.fixture(scope="module")
def clusters() -> Iterator[Clusters]:
    """An embedded cluster and a streaming replica of it (`pg_basebackup -R`), both running."""
    primary_dir, replica_dir = _owned_dir("fondplan-primary-"), _owned_dir("fondplan-replica-")
    primary = EmbeddedCluster(primary_dir)
    replica_started = False
    try:
        info = primary.start()
        ensure_database(primary.url("postgres"), "fondplan")
        # -R: standby.signal and primary_conninfo, so the copy starts as a streaming replica.
        server = primary.url("postgres").rsplit("/", 1)[0]
        _pg("pg_basebackup", *"-R -X stream -c fast -D".split(), str(replica_dir), "-d", server)
        port, log = free_port(), str(replica_dir / "server.log")
        options = f"-p {port} -k {replica_dir}"
        _pg("pg_ctl", "start", "-w", "-D", str(replica_dir), "-l", log, "-o", options)
        replica_started = True
        yield Clusters(
            primary.url("fondplan"),
            primary.url("fondplan").replace(f":{info.port}/", f":{port}/"),
        )
    finally:
        if replica_started:
            _pg("pg_ctl", "stop", "-m", "fast", "-D", str(replica_dir))
        primary.stop()
        shutil.rmtree(primary_dir, ignore_errors=True)
        shutil.rmtree(replica_dir, ignore_errors=True)


def _import(clusters: Clusters, path: Path) -> str:
    """``fondplan import`` on the primary; the data version it swapped in, once replayed."""
    url = clusters.primary
    env = {**os.environ, "FONDPLAN_DATABASE_URL": url}
    subprocess.run(
        [sys.executable, "-m", "tileserver.cli", "import", "--quiet", str(path)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_current_wal_lsn()")
        lsn = cur.fetchone()
    conn.close()
    assert lsn is not None
    _wait_replayed(clusters.replica, str(lsn[0]))
    return data_version(url)


def _wait_replayed(replica: str, lsn: str) -> None:
    """Wait until the replica has replayed the primary's WAL up to ``lsn``."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with psycopg2.connect(replica) as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))
            row = cur.fetchone()
        conn.close()
        if row and row[0]:
            return
        time.sleep(0.2)
    raise AssertionError(f"the replica did not replay up to {lsn} within 60 s")


@dataclass
class Server:
    """A ``fondplan serve`` child process and where it listens."""

    process: subprocess.Popen[bytes]
    base: str
    log: Path


@pytest.fixture(scope="module")
def replica_server(clusters: Clusters) -> Iterator[Server]:
    """``fondplan serve`` (uvicorn) on the replica, after the first import on the primary."""
    _import(clusters, FIRST)
    work = Path(tempfile.mkdtemp(prefix="fondplan-replica-serve-"))
    port = free_port()
    env = {
        **os.environ,
        "FONDPLAN_DATABASE_URL": clusters.replica,
        "FONDPLAN_DATA_DIR": str(work),
        "FONDPLAN_CACHE_VERSION_TTL": str(INTERVAL),
        "FONDPLAN_ROUTING_RELOAD_INTERVAL": str(INTERVAL),
    }
    log = work / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tileserver.cli", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        ready = time.monotonic() + 300
        _wait(lambda: _get(server, "/health").status_code == 200, ready, server, "/health")
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


def _get(server: Server, path: str) -> httpx.Response:
    try:
        return httpx.get(server.base + path, timeout=60)
    except httpx.TransportError:
        return httpx.Response(599)


def _wait(ok: Callable[[], bool], deadline: float, server: Server, what: str) -> None:
    """Wait until ``ok()`` holds; fail with the server's log when it does not by ``deadline``
    (a ``time.monotonic()`` value)."""
    while not ok():
        if server.process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{what}: not in time\n{server.log.read_text()}")
        time.sleep(0.2)


def _version(server: Server) -> str | None:
    answer = _get(server, "/health")
    return str(answer.json()["data_version"]) if answer.status_code == 200 else None


def _route_ok(server: Server, trip: tuple[tuple[float, float], tuple[float, float]]) -> bool:
    (lon1, lat1), (lon2, lat2) = trip
    answer = _get(server, f"/route/v1/driving/{lon1},{lat1};{lon2},{lat2}")
    return answer.status_code == 200 and answer.json()["code"] == "Ok"


def _communes(server: Server) -> set[str]:
    answer = _get(server, "/townplans/communes.json")
    return {c["name"] for c in answer.json()} if answer.status_code == 200 else set()


def _streets(server: Server, lon: float, lat: float) -> int:
    """How many features the streets layer of the z14 tile of a point has."""
    x, y = tile_of(lon, lat, 14)
    answer = _get(server, f"/tiles/basemap/14/{x}/{y}.mvt")
    if answer.status_code != 200:
        return 0
    layers = mapbox_vector_tile.decode(answer.content)
    return len(layers.get("streets", {}).get("features", []))


def test_server_on_a_replica_follows_the_primary(
    clusters: Clusters, replica_server: Server
) -> None:
    server = replica_server
    # The first data: tiles, routes and plans of Mulhouse.
    first = _version(server)
    assert _streets(server, *MULHOUSE[0])
    assert _route_ok(server, MULHOUSE)
    assert "Brunstatt-Didenheim" in _communes(server)
    tilejson = _get(server, "/tiles/basemap.json").json()
    assert tilejson["bounds"][0] < MULHOUSE[0][0] < tilejson["bounds"][2]
    assert not _streets(server, *WEHR[0])

    version = _import(clusters, SECOND)
    assert version != first
    # Tiles, routes and plans switch within the reload interval once the replica has the data.
    deadline = time.monotonic() + INTERVAL + SLACK
    _wait(lambda: _version(server) == version, deadline, server, "tiles")
    _wait(lambda: bool(_streets(server, *WEHR[0])), deadline, server, "tile of the new data")
    _wait(lambda: _route_ok(server, WEHR), deadline, server, "route in the new data")
    _wait(lambda: "Wehr" in _communes(server), deadline, server, "town plan communes")
    assert "Brunstatt-Didenheim" not in _communes(server)
    assert not _streets(server, *MULHOUSE[0])
    assert not _route_ok(server, MULHOUSE)
    tilejson = _get(server, "/tiles/basemap.json").json()
    assert tilejson["bounds"][0] < WEHR[0][0] < tilejson["bounds"][2]
    # A read-only server never tries to write (nor to LISTEN, which a standby refuses).
    log = server.log.read_text()
    assert "read-only" not in log and "recovery" not in log, log
