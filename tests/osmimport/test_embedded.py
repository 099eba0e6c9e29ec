"""The embedded PostGIS starts idempotently and serves PostGIS."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg2
import pytest

from osmimport.embedded import EmbeddedCluster, find_pg_bindir
from osmimport.errors import DatabaseError

ROOT = Path(__file__).resolve().parents[2]


def test_start_is_idempotent_and_has_postgis(admin_url: str) -> None:
    cluster = EmbeddedCluster(Path(os.environ.get("FONDPLAN_DATA_DIR", ROOT / "var")))
    if os.environ.get("FONDPLAN_DATABASE_URL"):
        return
    first = cluster.start()
    second = cluster.start()
    assert first.port == second.port
    assert cluster.is_running()
    with psycopg2.connect(cluster.url("postgres")) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)


def _lose_credentials_then_start(data_dir: Path) -> tuple[EmbeddedCluster, Path]:
    """Start a cluster in ``data_dir``, delete its cluster.json, then start again."""
    first = EmbeddedCluster(data_dir)
    old = Path(first.start().cluster_dir)
    (data_dir / "cluster.json").unlink()
    return EmbeddedCluster(data_dir), old


def _remove(cluster_dir: Path) -> None:
    bindir = find_pg_bindir()
    command = [str(bindir / "pg_ctl"), "stop", "-m", "immediate", "-D", str(cluster_dir)]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, capture_output=True, cwd="/")
    shutil.rmtree(cluster_dir, ignore_errors=True)


@pytest.mark.skipif(bool(os.environ.get("FONDPLAN_DATABASE_URL")), reason="external database")
def test_a_cluster_whose_credentials_are_gone_is_kept_and_not_reused() -> None:
    # In a folder postgres can enter, the cluster lives beside cluster.json: a clear error.
    shared = Path(tempfile.mkdtemp(prefix="fondplan-embedded-"))
    shared.chmod(0o755)
    try:
        again, old = _lose_credentials_then_start(shared / "data")
        with pytest.raises(DatabaseError, match="cluster.json is missing"):
            again.start()
        assert (old / "PG_VERSION").exists()
    finally:
        _remove(shared / "data" / "pg")
        shutil.rmtree(shared, ignore_errors=True)
    if os.geteuid() != 0:
        return
    # As root in a folder postgres cannot enter (a checkout under /root), an earlier checkout's
    # cluster stays where it is and the new checkout gets its own.
    private = Path(tempfile.mkdtemp(prefix="fondplan-embedded-"))
    private.chmod(0o700)
    made: list[Path] = []
    try:
        again, old = _lose_credentials_then_start(private / "data")
        made.append(old)
        info = again.start()
        made.append(Path(info.cluster_dir))
        assert Path(info.cluster_dir) != old and (old / "PG_VERSION").exists()
        with psycopg2.connect(again.url("postgres")) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        for cluster_dir in made:
            _remove(cluster_dir)
        shutil.rmtree(private, ignore_errors=True)
