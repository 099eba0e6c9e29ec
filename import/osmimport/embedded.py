"""The embedded PostGIS: a PostgreSQL cluster fondplan initialises and runs under its data dir."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from hashlib import sha1
from pathlib import Path
from urllib.parse import quote

from osmimport.errors import DatabaseError

APT_HINT = (
    "install PostgreSQL and PostGIS with: "
    "apt-get install postgresql-15 postgresql-15-postgis-3 (or run `make setup`)"
)
SUPERUSER = "fondplan"
#: The role the server reads with: SELECT on what the owner creates, nothing more.
READER = "fondplan_reader"
FALLBACK_ROOT = Path("/var/lib/fondplan/clusters")


def find_pg_bindir() -> Path:
    """The newest PostgreSQL server binaries installed (Debian layout, then PATH)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
        reverse=True,
    )
    if candidates:
        return candidates[0].parent
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    raise DatabaseError(f"PostgreSQL server binaries (pg_ctl, initdb) not found; {APT_HINT}")


def _has_postgis(bindir: Path) -> bool:
    pg_config = bindir / "pg_config"
    try:
        sharedir = subprocess.run(
            [str(pg_config), "--sharedir"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        sharedir = f"/usr/share/postgresql/{bindir.parent.name}"
    return any(Path(sharedir, "extension").glob("postgis.control"))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class ClusterInfo:
    """What a client needs to reach the cluster (stored in ``cluster.json``)."""

    port: int
    password: str
    cluster_dir: str
    #: Password of READER (made on first use by clusters older than the role).
    reader_password: str = ""


class EmbeddedCluster:
    """A private PostgreSQL cluster, run as the ``postgres`` user when fondplan runs as root."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.absolute()
        self.info_file = self.data_dir / "cluster.json"
        self.as_root = os.geteuid() == 0

    # -- locations -------------------------------------------------------------------------
    def _postgres_can_use(self, path: Path) -> bool:
        """Whether the postgres user can create and enter ``path`` (its parents must be +x)."""
        probe = path
        while not probe.exists():
            probe = probe.parent
        return (
            subprocess.run(
                [
                    "runuser",
                    "-u",
                    "postgres",
                    "--",
                    "test",
                    "-w",
                    str(probe),
                    "-a",
                    "-x",
                    str(probe),
                ],
                capture_output=True,
            ).returncode
            == 0
        )

    def _choose_cluster_dir(self) -> Path:
        default = self.data_dir / "pg"
        if not self.as_root:
            return default
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            os.chown(self.data_dir, *_postgres_ids())
        except OSError:
            pass
        if self._postgres_can_use(self.data_dir):
            return default
        # A checkout under /root (mode 700) cannot be entered by postgres: keep the cluster in a
        # folder it owns, one per data dir, and remember where in cluster.json.
        digest = sha1(str(self.data_dir).encode()).hexdigest()[:12]
        return FALLBACK_ROOT / digest

    def info(self) -> ClusterInfo | None:
        """The stored connection facts, or None before ``init``."""
        if not self.info_file.exists():
            return None
        raw = json.loads(self.info_file.read_text())
        return ClusterInfo(**raw)

    def _save(self, info: ClusterInfo) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.info_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(info.__dict__, indent=2))
        tmp.chmod(0o600)
        tmp.replace(self.info_file)

    # -- commands --------------------------------------------------------------------------
    def _run(self, args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = ["runuser", "-u", "postgres", "--", *args] if self.as_root else args
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd="/")
        except FileNotFoundError as exc:
            raise DatabaseError(f"cannot run {args[0]}: {exc}; {APT_HINT}") from exc
        if check and proc.returncode != 0:
            raise DatabaseError(
                f"{Path(args[0]).name} failed ({proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()[-2000:]}"
            )
        return proc

    def init(self) -> ClusterInfo:
        """Create the cluster once; later calls return the stored facts."""
        existing = self.info()
        if existing and Path(existing.cluster_dir, "PG_VERSION").exists():
            return existing
        bindir = find_pg_bindir()
        if not _has_postgis(bindir):
            raise DatabaseError(f"the PostGIS extension is not installed; {APT_HINT}")
        cluster_dir = self._choose_cluster_dir()
        if (cluster_dir / "PG_VERSION").exists() and existing is None:
            # A cluster whose password went with its cluster.json: never reused, never deleted.
            if cluster_dir.parent != FALLBACK_ROOT:
                raise DatabaseError(
                    f"{cluster_dir} holds a PostgreSQL cluster but {self.info_file} is missing: "
                    f"restore it, or remove {cluster_dir} to start afresh"
                )
            # Left by an earlier checkout at this path: this one gets its own folder.
            base, number = cluster_dir.name, 1
            while (cluster_dir / "PG_VERSION").exists():
                cluster_dir = FALLBACK_ROOT / f"{base}-{number}"
                number += 1
        if cluster_dir.exists() and any(cluster_dir.iterdir()):
            if not (cluster_dir / "PG_VERSION").exists():
                raise DatabaseError(f"{cluster_dir} exists and is not a PostgreSQL cluster")
        cluster_dir.mkdir(parents=True, exist_ok=True)
        cluster_dir.chmod(0o700)
        if self.as_root:
            os.chown(cluster_dir, *_postgres_ids())
        password = secrets.token_urlsafe(24)
        if not (cluster_dir / "PG_VERSION").exists():
            pwdir = Path(tempfile.mkdtemp(prefix="fondplan-initdb-"))
            pwfile = pwdir / "pw"
            pwfile.write_text(password + "\n")
            if self.as_root:
                os.chown(pwdir, *_postgres_ids())
                os.chown(pwfile, *_postgres_ids())
            try:
                self._run(
                    [
                        str(bindir / "initdb"),
                        "-D",
                        str(cluster_dir),
                        "-U",
                        SUPERUSER,
                        f"--pwfile={pwfile}",
                        "--auth=scram-sha-256",
                        "--encoding=UTF8",
                        "--locale=C.UTF-8",
                    ]
                )
            finally:
                shutil.rmtree(pwdir, ignore_errors=True)
            conf = cluster_dir / "postgresql.conf"
            with conf.open("a") as fh:
                fh.write(
                    "\n# fondplan embedded cluster\n"
                    "listen_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{cluster_dir}'\n"
                    "max_connections = 200\n"
                    "shared_buffers = 256MB\n"
                    "work_mem = 32MB\n"
                    "maintenance_work_mem = 512MB\n"
                    "max_wal_size = 4GB\n"
                    "fsync = on\n"
                    "jit = off\n"
                    "logging_collector = off\n"
                )
        info = ClusterInfo(port=_free_port(), password=password, cluster_dir=str(cluster_dir))
        self._save(info)
        return info

    def is_running(self) -> bool:
        """Whether the cluster's postmaster is alive."""
        info = self.info()
        if not info or not Path(info.cluster_dir, "PG_VERSION").exists():
            return False
        proc = self._run(
            [str(find_pg_bindir() / "pg_ctl"), "status", "-D", info.cluster_dir], check=False
        )
        return proc.returncode == 0

    def start(self) -> ClusterInfo:
        """Initialise if needed and start; a running cluster is left as it is."""
        info = self.init()
        if self.is_running():
            return info
        if _port_in_use(info.port):
            info.port = _free_port()
            self._save(info)
        log = Path(info.cluster_dir, "server.log")
        self._run(
            [
                str(find_pg_bindir() / "pg_ctl"),
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                info.cluster_dir,
                "-l",
                str(log),
                "-o",
                f"-p {info.port}",
            ]
        )
        self._wait_ready(info)
        return info

    def _wait_ready(self, info: ClusterInfo) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if _port_in_use(info.port):
                return
            time.sleep(0.1)
        raise DatabaseError(f"the embedded PostgreSQL did not open port {info.port}")

    def stop(self) -> bool:
        """Stop the cluster; returns False when it was not running."""
        info = self.info()
        if not info or not self.is_running():
            return False
        self._run(
            [str(find_pg_bindir() / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", info.cluster_dir]
        )
        return True

    def reader_url(self, dbname: str) -> str:
        """The URL of ``dbname`` as READER, made able to read what the owner creates there.

        The import creates its schemas and tables as the owner; default privileges give the
        reader USAGE and SELECT on them, so every swapped-in version is readable, not writable.
        """
        import psycopg2
        from psycopg2 import sql

        info = self.info()
        if info is None:
            raise DatabaseError("the embedded PostGIS is not initialised; run `fondplan db start`")
        if not info.reader_password:
            info.reader_password = secrets.token_urlsafe(24)
            self._save(info)
        reader = sql.Identifier(READER)
        conn = psycopg2.connect(self.url(dbname), connect_timeout=10)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (READER,))
                verb = "ALTER" if cur.fetchone() else "CREATE"
                cur.execute(
                    sql.SQL(
                        verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %s"
                    ).format(reader),
                    (info.reader_password,),
                )
                for statement in (
                    "GRANT CONNECT ON DATABASE {db} TO {r}",
                    "ALTER DEFAULT PRIVILEGES FOR ROLE {o} GRANT USAGE ON SCHEMAS TO {r}",
                    "ALTER DEFAULT PRIVILEGES FOR ROLE {o} GRANT SELECT ON TABLES TO {r}",
                ):
                    cur.execute(
                        sql.SQL(statement).format(
                            db=sql.Identifier(dbname), r=reader, o=sql.Identifier(SUPERUSER)
                        )
                    )
                # What exists already (data imported before the role was made).
                cur.execute(
                    "SELECT nspname FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner "
                    "WHERE r.rolname = %s AND nspname NOT LIKE 'pg%%' "
                    "AND nspname <> 'information_schema'",
                    (SUPERUSER,),
                )
                for (name,) in cur.fetchall():
                    schema_id = sql.Identifier(name)
                    cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema_id, reader))
                    cur.execute(
                        sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(
                            schema_id, reader
                        )
                    )
        finally:
            conn.close()
        return (
            f"postgresql://{READER}:{quote(info.reader_password, safe='')}"
            f"@127.0.0.1:{info.port}/{quote(dbname, safe='')}"
        )

    def url(self, dbname: str) -> str:
        """The libpq URL of ``dbname`` in this cluster (the cluster must be initialised)."""
        info = self.info()
        if info is None:
            raise DatabaseError("the embedded PostGIS is not initialised; run `fondplan db start`")
        return (
            f"postgresql://{SUPERUSER}:{quote(info.password, safe='')}"
            f"@127.0.0.1:{info.port}/{quote(dbname, safe='')}"
        )


def _postgres_ids() -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam("postgres")
    return entry.pw_uid, entry.pw_gid
