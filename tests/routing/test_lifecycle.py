"""The routing data switches with the tiles: built in the staged import, never half-switched."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import mapbox_vector_tile
import numpy as np

from osmimport import schema
from osmimport.database import connect
from osmimport.importer import WORK_DIR_PREFIX, run_import
from routing import store
from routing.build import build_before_swap
from routing.engine import Engine
from routing.network import data_version
from tests.tileserver.conftest import tile_of, tile_settings
from tileserver.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
SUD_OUEST = ROOT / "data" / "sample" / "mulhouse-sud-ouest.osm.pbf"
CENTRE = ROOT / "data" / "sample" / "mulhouse-centre.osm.pbf"
#: Two points a few hundred metres apart in each extract (2 km apart), snapped within 100 m.
IN_SUD_OUEST = "7.3080,47.7310;7.3150,47.7330?radiuses=100;100"
IN_CENTRE = "7.3300,47.7510;7.3380,47.7530?radiuses=100;100"
#: A tile of the centre, away from the other extract.
CENTRE_TILE = tile_of(7.334, 47.752, 14)


def _stored_versions(url: str) -> tuple[str, set[str]]:
    """The served data version and the data versions of the stored routing profiles."""
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"SELECT value #>> '{{}}' FROM {schema.SCHEMA}.meta WHERE key = 'data_version'"
            )
            row = cur.fetchone()
            assert row is not None
            cur.execute(f"SELECT data_version FROM {schema.SCHEMA}.{schema.ROUTING_PROFILES_TABLE}")
            return str(row[0]), {str(r[0]) for r in cur.fetchall()}
    finally:
        conn.close()


def _fondplan_import(url: str, data_dir: Path, path: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "FONDPLAN_DATABASE_URL": url, "FONDPLAN_DATA_DIR": str(data_dir)}
    return subprocess.Popen(
        [sys.executable, "-m", "tileserver.cli", "import", str(path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_ready(client: TestClient) -> dict[str, object]:
    deadline = time.monotonic() + 120
    while True:
        body: dict[str, object] = client.get("/health").json()
        if body["status"] == "ok":
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def _route(client: TestClient, points: str) -> dict[str, object]:
    answer: dict[str, object] = client.get(f"/route/v1/driving/{points}").json()
    return answer


def _tile_features(client: TestClient) -> int:
    x, y = CENTRE_TILE
    response = client.get(f"/tiles/basemap/14/{x}/{y}.mvt")
    if response.status_code == 204:
        return 0
    assert response.status_code == 200
    layers = mapbox_vector_tile.decode(response.content).values()
    return sum(len(layer["features"]) for layer in layers)


def test_a_killed_import_leaves_everything_on_the_old_version_and_the_next_switches_together(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    url = make_database()
    first = run_import(url, [SUD_OUEST], before_swap=[build_before_swap])
    assert _stored_versions(url) == (first.data_version, {first.data_version})
    settings = tile_settings(url, tmp_path / "tiles")
    with TestClient(create_app(settings)) as client:
        health = _wait_ready(client)
        assert health["data_version"] == first.data_version
        routing = health["routing"]
        assert isinstance(routing, dict)
        for name in ("car", "bike", "foot"):
            profile = routing["profiles"][name]
            assert profile["data_version"] == first.data_version and profile["loaded"]
            assert profile["edges"] > 100
        assert health["render"] == {"ready": True, "started": False, "max_pending": 32}
        assert _route(client, IN_SUD_OUEST)["code"] == "Ok"
        old_tile = _tile_features(client)

        # Killed while it builds the routing data, before its swap.
        process = _fondplan_import(url, tmp_path / "data", CENTRE)
        assert process.stderr is not None
        seen = []
        for line in process.stderr:
            seen.append(line)
            if "routing: building" in line:
                process.send_signal(signal.SIGKILL)
                break
        process.wait(timeout=60)
        assert process.returncode == -signal.SIGKILL, "".join(seen)
        assert _stored_versions(url) == (first.data_version, {first.data_version})
        time.sleep(1.5)  # past the tile service's version check (version_ttl 1 s)
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["data_version"] == first.data_version
        assert {p["data_version"] for p in health["routing"]["profiles"].values()} == {
            first.data_version
        }
        assert _route(client, IN_SUD_OUEST)["code"] == "Ok"
        assert _route(client, IN_CENTRE)["code"] == "NoSegment"
        assert _tile_features(client) == old_tile

        # The next import works, and tiles and routes switch together.
        process = _fondplan_import(url, tmp_path / "data", CENTRE)
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        second, stored = _stored_versions(url)
        assert second != first.data_version and stored == {second}
        deadline = time.monotonic() + 60
        while True:
            before = _tile_features(client) != old_tile
            code = _route(client, IN_CENTRE)["code"]
            after = _tile_features(client) != old_tile
            # New tiles before the route: the route is new too; a new route: tiles after it too.
            assert not before or code == "Ok"
            assert code != "Ok" or after
            if before:
                break
            assert time.monotonic() < deadline, "the server never switched"
            time.sleep(0.05)
        health = client.get("/health").json()
        assert health["data_version"] == second and health["status"] == "ok"
        assert {p["data_version"] for p in health["routing"]["profiles"].values()} == {second}
        assert _route(client, IN_SUD_OUEST)["code"] == "NoSegment"


def test_the_stored_routing_data_is_mapped_and_routes_as_the_graph_model(
    routing_liechtenstein_url: str, engines: dict[str, Engine], tmp_path: Path
) -> None:
    """The engine a server opens (the import's arrays, memory-mapped from the file cache)
    answers as the engine made from the networkx graph of the same data."""
    url = routing_liechtenstein_url
    version = data_version(url)
    for name in ("car", "foot"):
        arrays = store.load(url, name, version, cache=tmp_path)
        assert isinstance(arrays["geometry"], np.memmap)
        assert isinstance(arrays["turn_next"], np.memmap)
        stored, model = Engine(arrays), engines[name]
        assert stored.edge_count == model.edge_count and stored.data_version == version
        rng = random.Random(5)
        for _ in range(60):
            lon = rng.uniform(9.48, 9.60)
            lat = rng.uniform(47.06, 47.24)
            a = stored.snap(lon, lat, radius=None)
            b = stored.snap(lat=rng.uniform(47.06, 47.24), lon=rng.uniform(9.48, 9.60), radius=None)
            assert a == model.snap(lon, lat, radius=None)
            path, expected = stored.route(a[0], b[0]), model.route(a[0], b[0])
            assert (path is None) == (expected is None)
            if path is not None and expected is not None:
                assert path.weight == expected.weight
                assert stored.summary(path) == model.summary(expected)
                assert stored.duration(path) == model.duration(expected)
        assert model.graph is not None
        for u, v, key, data in model.graph.edges(keys=True, data=True):
            if key % 97 == 0:
                assert stored.edges[key] == data
                assert (stored.tail[key], stored.head[key]) == (u, v)
    # A second open maps the same files: no second copy from the database.
    again = store.load(url, "car", version, cache=tmp_path)
    assert again["geometry"].filename == tmp_path / version / "car" / "geometry.bin"


def test_an_import_puts_its_routing_data_in_the_file_cache_of_its_data_folder(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    """A server on the machine that imported maps the new data at once: the import put each
    profile in the file cache as the server would have fetched it, and dropped older data."""
    url = make_database()
    data_dir = tmp_path / "data"
    cache = store.cache_root(data_dir, url)
    stale = cache / "an-older-version" / "car"
    stale.mkdir(parents=True)
    process = _fondplan_import(url, data_dir, SUD_OUEST)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    version = data_version(url)
    assert not stale.parent.exists()
    for name in ("car", "bike", "foot"):
        assert (cache / version / name / store.LAYOUT_FILE).exists(), name
        mapped = store.load(url, name, version, cache=cache)
        stored = store.load(url, name, version)
        assert mapped.keys() == stored.keys()
        assert any(isinstance(array, np.memmap) for array in mapped.values())
        for key, array in stored.items():
            assert mapped[key].dtype == array.dtype, key
            assert mapped[key].tobytes() == array.tobytes(), key
    # The folder the build kept its arrays in while it made them is gone.
    assert not list(data_dir.rglob(f"{WORK_DIR_PREFIX}*"))
