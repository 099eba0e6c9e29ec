"""Updates: eight years of real changes, small edits, errors, a killed update, replication."""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import shapely

from cities.communes import list_communes
from cities.grid import Grid
from cities.streets import street_index
from osmimport.importer import node_store_dir, run_import
from osmimport.replication import update_once
from osmimport.update import EXPIRED_TABLE, PLAN_VERSIONS_TABLE, run_update
from routing import arrays
from routing.build import build_before_swap
from routing.service import RoutingService
from tests.osmimport.db import cli, query, scalar
from tests.osmimport.opl import Opl
from tests.osmimport.test_import import table_digest

ROOT = Path(__file__).resolve().parents[2]
LI_2013 = ROOT / "tests" / "data" / "liechtenstein-2013-08-03.osm.pbf"
LI_2021 = ROOT / "data" / "sample" / "liechtenstein-2021-05-05.osm.pbf"

#: Tables an import of the new data and an update to it need not agree on: the facts about
#: the import, the routing data (built from equal networks, at different times), the tiles the
#: update expired, and the node locations changed since the import (the import's own file
#: holds them; an update keeps them in mid_nodes), the versions of the town plans updates touched.
NOT_COMPARED = {
    "meta",
    "routing_profiles",
    "routing_data",
    EXPIRED_TABLE,
    "mid_nodes",
    PLAN_VERSIONS_TABLE,
}


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Node locations go under a throwaway data dir (the CLI finds them there too)."""
    data = tmp_path / "data"
    monkeypatch.setenv("FONDPLAN_DATA_DIR", str(data))
    return data


def nodes_of(url: str) -> Path:
    """Where the CLI looks for the node locations of the database at ``url``."""
    return node_store_dir(Path(os.environ["FONDPLAN_DATA_DIR"]), url)


def digests(url: str) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent digest of every column, per table of ``osm``."""
    tables = query(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'osm'")
    return {table: table_digest(url, table) for (table,) in sorted(tables)}


def fondplan(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``fondplan`` command (updates build routing data there) on the database at ``url``."""
    return cli(url, *args, module="tileserver.cli")


def meta(url: str) -> dict[str, Any]:
    """The meta table."""
    return dict(query(url, "SELECT key, value FROM osm.meta"))


def derive_changes(old: Path, new: Path, target: Path) -> Path:
    """The change file from ``old`` to ``new`` (osmium derive-changes)."""
    tool = shutil.which("osmium")
    assert tool is not None, "osmium-tool is needed (make setup)"
    subprocess.run([tool, "derive-changes", str(old), str(new), "-o", str(target)], check=True)
    return target


def _kill_when_applying(process: subprocess.Popen[str], url: str) -> None:
    """SIGKILL the update once its one transaction writes into the served tables."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        rows = query(
            url,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND query LIKE %s AND pid <> pg_backend_pid()",
            ('%INSERT INTO "osm_update"."dirty"%',),
        )
        if rows[0][0]:
            process.send_signal(signal.SIGKILL)
            process.wait()
            return
        time.sleep(0.05)
    raise AssertionError("the update never reached its transaction")


def test_eight_years_of_changes_give_the_2021_data(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    """2013 + `osmium derive-changes` 2013->2021 = a fresh import of 2021, table by table;
    an update killed in its transaction changes nothing."""
    change = derive_changes(LI_2013, LI_2021, tmp_path / "li-2013-2021.osc.gz")
    old, new = make_database(), make_database()
    run_import(old, [LI_2013], node_dir=nodes_of(old))
    run_import(new, [LI_2021], node_dir=nodes_of(new))
    before = digests(old)

    env = {**os.environ, "FONDPLAN_DATABASE_URL": old}
    killed = subprocess.Popen(
        [sys.executable, "-m", "osmimport.cli", "update", "--quiet", "--osc", str(change)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _kill_when_applying(killed, old)
    time.sleep(0.5)
    assert digests(old) == before

    summary = run_update(old, [change], node_dir=nodes_of(old))
    assert summary.objects > 300_000
    updated, fresh = digests(old), digests(new)
    compared = sorted(set(fresh) - NOT_COMPARED)
    assert set(updated) - NOT_COMPARED == set(compared)
    differing = [t for t in compared if updated[t] != fresh[t]]
    assert not differing, {t: (updated[t], fresh[t]) for t in differing}
    assert meta(old)["data_version"] == summary.data_version
    assert meta(old)["counts"] == meta(new)["counts"]
    assert len(summary.expired) > 100


# -- small edits ---------------------------------------------------------------------------

#: Node ids of the little town below.
A, M, B = 1, 2, 3
DETOUR = (4, 5)
RING = (10, 11, 12, 13)
OUTSIDE = (20, 21)
FAR = (30, 31)
BUILDING = (40, 41, 42, 43)


def town(path: Path) -> Path:
    """A commune with a main street, a detour, a street just outside and a far road."""
    return _town().write(path)


def _town() -> Opl:
    opl = Opl()
    opl.node(9.4950, 47.1000, A)
    opl.node(9.5050, 47.1000, M)
    opl.node(9.5150, 47.1000, B)
    opl.node(9.4950, 47.1050, DETOUR[0])
    opl.node(9.5150, 47.1050, DETOUR[1])
    opl.node(9.5250, 47.1000, OUTSIDE[0])
    opl.node(9.5350, 47.1000, OUTSIDE[1])
    opl.node(9.9000, 47.3000, FAR[0])
    opl.node(9.9100, 47.3000, FAR[1])
    opl.way(1, [A, M, B], highway="residential", name="Hauptstrasse")
    opl.way(2, [A, DETOUR[0], DETOUR[1], B], highway="residential", name="Umweg")
    opl.way(3, list(OUTSIDE), highway="residential", name="Aussenweg")
    opl.way(4, list(FAR), highway="residential", name="Fernweg")
    _commune(opl, 1, RING, (9.49, 47.09, 9.52, 47.12), "Testdorf")
    return opl


def _commune(
    opl: Opl, osm_id: int, ring: tuple[int, ...], box: tuple[float, ...], name: str
) -> None:
    """Commune relation ``osm_id`` bounded by a closed way (id ``osm_id + 99``) round ``box``."""
    west, south, east, north = box
    corners = [(west, south), (east, south), (east, north), (west, north)]
    for node_id, (x, y) in zip(ring, corners, strict=True):
        opl.node(x, y, node_id)
    opl.way(osm_id + 99, [*ring, ring[0]])
    opl.boundary(osm_id, [osm_id + 99], "8", name=name)


def osc(path: Path, create: str = "", modify: str = "", delete: str = "") -> Path:
    """An osmChange file from its three blocks (objects in OSM XML)."""
    text = (
        "<?xml version='1.0' encoding='UTF-8'?>\n<osmChange version=\"0.6\">\n"
        f"<create>{create}</create>\n<modify>{modify}</modify>\n<delete>{delete}</delete>\n"
        "</osmChange>\n"
    )
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path


STAMP = 'version="2" timestamp="2024-05-01T10:00:00Z"'


def node_xml(node_id: int, lon: float, lat: float, **tags: str) -> str:
    """One node element."""
    inner = "".join(f'<tag k="{k}" v="{v}"/>' for k, v in tags.items())
    return f'<node id="{node_id}" {STAMP} lon="{lon}" lat="{lat}">{inner}</node>'


def way_xml(way_id: int, refs: list[int], **tags: str) -> str:
    """One way element."""
    inner = "".join(f'<nd ref="{r}"/>' for r in refs)
    inner += "".join(f'<tag k="{k}" v="{v}"/>' for k, v in tags.items())
    return f'<way id="{way_id}" {STAMP}>{inner}</way>'


def building_xml() -> str:
    """A new building (way 200) in the commune, with its nodes."""
    corners = [(9.5000, 47.0950), (9.5005, 47.0950), (9.5005, 47.0955), (9.5000, 47.0955)]
    nodes = "".join(node_xml(n, x, y) for n, (x, y) in zip(BUILDING, corners, strict=True))
    return nodes + way_xml(200, [*BUILDING, BUILDING[0]], building="yes")


def edits(path: Path) -> Path:
    """A building added, the main street cut after its middle, the commune grown eastwards."""
    building = building_xml()
    moved = node_xml(RING[1], 9.54, 47.09) + node_xml(RING[2], 9.54, 47.12)
    cut = way_xml(1, [A, M], highway="residential", name="Hauptstrasse")
    return osc(path, create=building, modify=moved + cut)


def _route_km(url: str) -> float:
    service = RoutingService(url)
    found = service.route("car", [(9.4951, 47.1000), (9.5149, 47.1000)], {"overview": "false"})
    return float(found["routes"][0]["distance"]) / 1000


def _streets(url: str) -> list[str]:
    with psycopg2.connect(url) as conn:
        (commune,) = list_communes(conn)
        row = query(url, "SELECT ST_AsBinary(geom) FROM osm.communes WHERE osm_id = 1")[0]
        area = shapely.from_wkb(bytes(row[0]))
        grid = Grid(area.bounds, 2, 2)
        return sorted(e.name for e in street_index(conn, area, grid, latitude=commune.latitude))


@pytest.fixture
def town_url(make_database: Callable[[], str], tmp_path: Path) -> str:
    """The little town imported with its routing data and what updates need."""
    url = make_database()
    run_import(
        url, [town(tmp_path / "town.opl")], node_dir=nodes_of(url), before_swap=[build_before_swap]
    )
    return url


def _tile(z: int, lon: float, lat: float) -> tuple[int, int, int]:
    import math

    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return z, x, y


def test_small_edits_change_routes_plans_and_exactly_their_tiles(
    town_url: str, tmp_path: Path
) -> None:
    """A road cut lengthens the route, a moved boundary changes the street index, a new
    building expires its tiles and not a far one; all on the new data version at once."""
    assert _route_km(town_url) == pytest.approx(1.5, abs=0.1)
    assert _streets(town_url) == ["Hauptstrasse", "Umweg"]
    expire = tmp_path / "expired.txt"

    done = fondplan(town_url, "update", "--quiet", "--osc", str(edits(tmp_path / "e.osc")),
               "--expire-list", str(expire))  # fmt: skip
    assert done.returncode == 0, done.stderr
    version = meta(town_url)["data_version"]
    assert version in done.stdout
    assert "communes whose town plan changed: 1" in done.stdout
    assert scalar(town_url, "SELECT data_version FROM osm.routing_profiles LIMIT 1") == version
    assert _route_km(town_url) > 2.0
    assert _streets(town_url) == ["Aussenweg", "Hauptstrasse", "Umweg"]
    tiles = {tuple(int(v) for v in line.split("/")) for line in expire.read_text().split()}
    assert _tile(14, 9.50025, 47.09525) in tiles
    assert _tile(14, 9.905, 47.3) not in tiles
    assert all(z <= 14 for z, _, _ in tiles)
    stored = query(
        town_url, f"SELECT z, x, y FROM osm.{EXPIRED_TABLE} WHERE data_version = %s", (version,)
    )
    assert {tuple(r) for r in stored} == tiles
    assert scalar(town_url, "SELECT count(*) FROM osm.buildings WHERE osm_id = 200") == 1


def test_the_same_change_twice_gives_the_same_data(town_url: str, tmp_path: Path) -> None:
    """Applying a change again (after a success) leaves every table as the first time did."""
    change = edits(tmp_path / "e.osc.gz")
    run_update(town_url, [change], node_dir=nodes_of(town_url))
    first = digests(town_url)
    run_update(town_url, [change], node_dir=nodes_of(town_url))
    again = digests(town_url)
    assert {t: d for t, d in again.items() if t not in NOT_COMPARED} == {
        t: d for t, d in first.items() if t not in NOT_COMPARED
    }


def test_bad_changes_are_refused_and_change_nothing(town_url: str, tmp_path: Path) -> None:
    """Corrupt, truncated and too-old change files: exit 1, a precise error, nothing changed."""
    good = edits(tmp_path / "good.osc.gz")
    done = cli(town_url, "update", "--quiet", "--osc", str(good))
    assert done.returncode == 0, done.stderr
    before = digests(town_url), meta(town_url)

    corrupt = tmp_path / "corrupt.osc.gz"
    corrupt.write_bytes(b"\x1f\x8b\x08\x00garbage that is not deflate at all" * 20)
    truncated = tmp_path / "truncated.osc.gz"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    old = tmp_path / "old.osc"
    osc(
        old, modify=node_xml(FAR[0], 9.9, 47.3, amenity="bench").replace("2024-05-01", "2001-01-01")
    )
    for path, message in [
        (corrupt, "corrupt or truncated change file"),
        (truncated, "corrupt or truncated change file"),
        (old, "older than the loaded data"),
        (tmp_path / "missing.osc", "no such file"),
    ]:
        # A good file before the bad one is not applied either.
        done = cli(town_url, "update", "--quiet", "--osc", str(good), "--osc", str(path))
        assert done.returncode == 1, (path, done.stdout)
        assert done.stderr.startswith("error: "), done.stderr
        assert message in done.stderr, done.stderr
        assert (digests(town_url), meta(town_url)) == before


def test_an_update_needs_what_the_import_keeps(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    """Data imported without node locations cannot be updated: the error says what to do."""
    url = make_database()
    run_import(url, [town(tmp_path / "town.opl")])
    done = cli(url, "update", "--osc", str(edits(tmp_path / "e.osc")))
    assert done.returncode == 1
    assert "import it again with `fondplan import FILE`" in done.stderr


def test_import_refuses_a_change_file(make_database: Callable[[], str], tmp_path: Path) -> None:
    """`fondplan import changes.osc.gz` points at `fondplan update`."""
    url = make_database()
    for name in ("e.osc", "e.osc.gz"):
        done = cli(url, "import", str(edits(tmp_path / name)))
        assert done.returncode == 1
        assert f"fondplan update --osc {tmp_path / name}" in done.stderr
    renamed = tmp_path / "changes.osm"
    renamed.write_bytes((tmp_path / "e.osc").read_bytes())
    done = cli(url, "import", str(renamed))
    assert done.returncode == 1
    assert "osmChange" in done.stderr and "fondplan update" in done.stderr


# -- replication -----------------------------------------------------------------------------


def _publish(feed: Path, sequence: int, change: Path, stamp: str, *, latest: bool = True) -> None:
    """Put ``change`` in the feed folder as ``sequence``, with its state file."""
    folder = feed / f"{sequence // 1_000_000:03d}" / f"{sequence // 1000 % 1000:03d}"
    folder.mkdir(parents=True, exist_ok=True)
    data = change.read_bytes()
    if not change.name.endswith(".gz"):
        data = gzip.compress(data)
    (folder / f"{sequence % 1000:03d}.osc.gz").write_bytes(data)
    state = f"sequenceNumber={sequence}\ntimestamp={stamp.replace(':', chr(92) + ':')}\n"
    (folder / f"{sequence % 1000:03d}.state.txt").write_text(state)
    if latest:
        (feed / "state.txt").write_text(state)


def test_a_replication_folder_is_followed_and_a_gap_refused(town_url: str, tmp_path: Path) -> None:
    """Three diffs applied from a local feed; the state shows in `info`; a gap is an error."""
    feed = tmp_path / "feed"
    _publish(feed, 1, osc(tmp_path / "1.osc", modify=node_xml(FAR[0], 9.9, 47.3, amenity="bench")),
             "2024-05-01T10:00:00Z")  # fmt: skip
    _publish(feed, 2, edits(tmp_path / "2.osc"), "2024-05-01T11:00:00Z")
    _publish(feed, 3, osc(tmp_path / "3.osc", delete=way_xml(4, list(FAR))), "2024-05-01T12:00:00Z")

    done = cli(town_url, "update", "--quiet", "--replication", str(feed), "--start-sequence", "0")
    assert done.returncode == 0, done.stderr
    state = meta(town_url)["replication"]
    assert state["sequence"] == 3
    assert state["timestamp"].startswith("2024-05-01T12:00:00")
    assert scalar(town_url, "SELECT count(*) FROM osm.buildings WHERE osm_id = 200") == 1
    assert scalar(town_url, "SELECT count(*) FROM osm.streets WHERE osm_id = 4") == 0
    info = cli(town_url, "info")
    assert "replication: sequence 3, timestamp 2024-05-01T12:00:00" in info.stdout

    again = cli(town_url, "update", "--quiet", "--replication", str(feed))
    assert again.returncode == 0, again.stderr
    assert "up to date" in again.stderr

    # Sequence 4 never published, 5 is: nothing is applied.
    _publish(feed, 5, osc(tmp_path / "5.osc", modify=node_xml(FAR[1], 9.91, 47.3, shop="bakery")),
             "2024-05-01T14:00:00Z")  # fmt: skip
    before = digests(town_url), meta(town_url)
    gap = cli(town_url, "update", "--quiet", "--replication", str(feed))
    assert gap.returncode == 1
    assert "error: " in gap.stderr and "diff 4 is missing" in gap.stderr, gap.stderr
    assert (digests(town_url), meta(town_url)) == before


def test_a_feed_that_does_not_answer_is_an_error(town_url: str, tmp_path: Path) -> None:
    """Nothing listens on the feed's port: a clear error after the tries, nothing changed."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    before = digests(town_url)
    from osmimport.errors import OsmImportError

    with pytest.raises(OsmImportError, match="does not answer"):
        update_once(
            town_url,
            f"http://127.0.0.1:{port}/replication",
            node_dir=nodes_of(town_url),
            tries=1,
            timeout=2,
        )
    assert digests(town_url) == before


def test_served_tiles_switch_and_only_changed_ones_get_a_new_etag(
    town_url: str, tmp_path: Path
) -> None:
    """Through the app: the building's tile changes (new ETag, no longer cached), a far tile
    keeps its ETag and its cached copy across the update."""
    import warnings

    from tests.tileserver.conftest import LOOPBACK, tile_settings
    from tileserver.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    near, far = _tile(14, 9.50025, 47.09525), _tile(14, 9.905, 47.3)
    cache = tmp_path / "tilecache"

    def path(tile: tuple[int, int, int]) -> str:
        return "/tiles/basemap/{}/{}/{}.mvt".format(*tile)

    with TestClient(create_app(tile_settings(town_url, cache)), client=LOOPBACK) as client:
        before = {t: client.get(path(t)) for t in (near, far)}
        assert before[far].status_code == 200
        old_version = meta(town_url)["data_version"]
        assert list(cache.glob(f"*{old_version[-8:]}*"))
        run_update(
            town_url,
            [edits(tmp_path / "e.osc")],
            node_dir=nodes_of(town_url),
            before_swap=[build_before_swap],
        )
        deadline = time.monotonic() + 30
        while client.get(path(near)).headers["etag"] == before[near].headers["etag"]:
            assert time.monotonic() < deadline, "the server never switched to the update"
            time.sleep(0.2)
        new_version = meta(town_url)["data_version"]
        # The far tile was carried over to the new version's disk folder, not cut again.
        (folder,) = [p for p in cache.iterdir() if p.name == new_version.replace("+", "_")]
        assert list(folder.glob(f"*/{far[0]}/{far[1]}/{far[2]}.mvt.gz"))
        after_far = client.get(path(far), headers={"if-none-match": before[far].headers["etag"]})
        assert after_far.status_code == 304
        assert after_far.headers["etag"] == before[far].headers["etag"]
        after_near = client.get(path(near))
        assert after_near.headers["etag"] != before[near].headers["etag"]
        assert len(after_near.content) > len(before[near].content)


def test_loop_keeps_following_the_feed(town_url: str, tmp_path: Path) -> None:
    """`--loop` applies a diff published while it runs, then waits for the next one."""
    feed = tmp_path / "feed"
    _publish(feed, 7, edits(tmp_path / "7.osc"), "2024-05-01T10:00:00Z")
    env = {**os.environ, "FONDPLAN_DATABASE_URL": town_url}
    args = ["update", "--quiet", "--replication", str(feed), "--start-sequence", "6"]
    process = subprocess.Popen(
        [sys.executable, "-m", "osmimport.cli", *args, "--loop", "0.5"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def sequence() -> int | None:
            state = meta(town_url).get("replication")
            return None if state is None else int(state["sequence"])

        deadline = time.monotonic() + 120
        while sequence() != 7:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.3)
        change = osc(tmp_path / "8.osc", delete=way_xml(4, list(FAR)))
        _publish(feed, 8, change, "2024-05-01T11:00:00Z")
        while sequence() != 8:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.3)
        assert scalar(town_url, "SELECT count(*) FROM osm.streets WHERE osm_id = 4") == 0
    finally:
        process.terminate()
        process.wait(timeout=30)


def _chunk_rows(url: str) -> dict[tuple[str, str], str]:
    """The row version (xmin) of each profile's first chunk of each array but ``meta``."""
    rows = query(
        url,
        "SELECT profile, name, xmin::text FROM osm.routing_data WHERE chunk = 0 AND name <> 'meta'",
    )
    return {(str(p), str(n)): str(x) for p, n, x in rows}


def test_profiles_whose_roads_did_not_change_keep_their_routing_data(
    town_url: str, tmp_path: Path
) -> None:
    """A building keeps every profile's arrays (not rewritten, re-tagged); a footway rebuilds
    foot and bike (what changes: foot as a fresh build would) but keeps car; routes answer on
    the new version either way."""
    before = _chunk_rows(town_url)
    building = building_xml()
    hooks = [build_before_swap]
    first = run_update(town_url, [osc(tmp_path / "b.osc", create=building)],
                       node_dir=nodes_of(town_url), before_swap=hooks)  # fmt: skip
    assert _chunk_rows(town_url) == before
    stored = dict(query(town_url, "SELECT profile, data_version FROM osm.routing_profiles"))
    assert set(stored.values()) == {first.data_version}
    assert _route_km(town_url) == pytest.approx(1.5, abs=0.1)
    # As in a new process: the road network kept on disk stands for the new version too (the
    # building changed no road), so the next update patches it instead of reading it again.
    arrays._ROADS.clear()
    kept = arrays.remembered_roads(town_url, first.data_version, nodes_of(town_url))
    assert kept is not None and kept[0].data_version == first.data_version

    path = node_xml(50, 9.5050, 47.1025) + way_xml(300, [M, 50, DETOUR[0]], highway="footway")
    second = run_update(town_url, [osc(tmp_path / "f.osc", create=path)],
                        node_dir=nodes_of(town_url), before_swap=hooks)  # fmt: skip
    _as_a_fresh_build(town_url, "foot", second.data_version)
    after = _chunk_rows(town_url)
    assert {k: v for k, v in after.items() if k[0] == "car"} == {
        k: v for k, v in before.items() if k[0] == "car"
    }
    assert after[("foot", "geometry")] != before[("foot", "geometry")]
    assert _route_km(town_url) == pytest.approx(1.5, abs=0.1)
    fresh = RoutingService(town_url).route(
        "foot", [(9.5050, 47.1000), (9.4951, 47.1049)], {"overview": "false"}
    )
    assert fresh["code"] == "Ok"


def _way_xml(way_id: int, refs: list[int], tags: dict[str, str]) -> str:
    from xml.sax.saxutils import quoteattr

    inner = "".join(f'<nd ref="{r}"/>' for r in refs)
    inner += "".join(f"<tag k={quoteattr(k)} v={quoteattr(v)}/>" for k, v in tags.items())
    return f'<way id="{way_id}" {STAMP}>{inner}</way>'


def _stored_and_fresh(url: str, profile: str, version: str) -> tuple[Any, Any]:
    """The engines of the routing data the update stored for ``profile`` and of a fresh
    build on the same (updated) network."""
    from osmimport import schema
    from routing import store
    from routing.arrays import profile_arrays, read_roads
    from routing.engine import Engine
    from routing.profiles import PROFILES

    rules = PROFILES[profile]
    stored = Engine(store.load(url, profile, version))
    fresh = Engine(profile_arrays(read_roads(url, schema.SCHEMA, version, [rules]), rules))
    return stored, fresh


def _same_answers(stored: Any, fresh: Any, seed: int, points: int = 80) -> int:
    """Route random pairs of ``points`` in Liechtenstein on both engines: equal weights,
    durations and lengths; the number of routes found."""
    import numpy as np

    rng = np.random.default_rng(seed)
    at = np.column_stack([rng.uniform(9.48, 9.62, points), rng.uniform(47.05, 47.25, points)])
    compared = 0
    for (lon1, lat1), (lon2, lat2) in zip(at[::2], at[1::2], strict=True):
        a = stored.snap(float(lon1), float(lat1), radius=None)
        b = stored.snap(float(lon2), float(lat2), radius=None)
        x = fresh.snap(float(lon1), float(lat1), radius=None)
        y = fresh.snap(float(lon2), float(lat2), radius=None)
        mine, theirs = stored.route(a[0], b[0]), fresh.route(x[0], y[0])
        assert (mine is None) == (theirs is None)
        if mine is not None and theirs is not None:
            assert mine.weight == theirs.weight
            assert stored.duration(mine) == pytest.approx(fresh.duration(theirs), abs=1e-6)
            assert stored.length(mine) == pytest.approx(fresh.length(theirs), abs=1e-3)
            compared += 1
    return compared


def _layouts(url: str) -> dict[str, dict[str, Any]]:
    return {
        str(p): dict(layout)
        for p, layout in query(url, "SELECT profile, layout FROM osm.routing_profiles")
    }


def _rows_of(url: str) -> dict[tuple[str, str, int], str]:
    """The row version (xmin) of every chunk of the routing data."""
    rows = query(url, "SELECT profile, name, chunk, xmin::text FROM osm.routing_data")
    return {(str(p), str(n), int(c)): str(x) for p, n, c, x in rows}


def test_a_rebuild_with_the_previous_order_answers_as_a_fresh_build(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    """Liechtenstein with roads cut and a road added: the car data the update builds on the
    previous node order routes every pair of points as the data built from scratch does."""
    import numpy as np

    url = make_database()
    run_import(url, [LI_2021], node_dir=nodes_of(url), before_swap=[build_before_swap])
    previous = meta(url)["data_version"]
    rows = query(
        url,
        "SELECT m.id, m.nodes, m.tags FROM osm.mid_ways m JOIN osm.road_ways r ON r.osm_id = m.id "
        "WHERE m.tags ->> 'highway' IN ('residential', 'tertiary') AND cardinality(m.nodes) > 3 "
        "ORDER BY m.id LIMIT 40",
    )
    cut = "".join(_way_xml(int(i), list(nodes)[:-2], dict(tags)) for i, nodes, tags in rows[::2])
    joined = [int(rows[1][1][0]), int(rows[3][1][0])]
    added = _way_xml(10**12, joined, {"highway": "residential", "name": "Neuweg"})
    change = osc(tmp_path / "roads.osc", create=added, modify=cut)
    summary = run_update(url, [change], node_dir=nodes_of(url), before_swap=[build_before_swap])
    version = summary.data_version

    stored, fresh = _stored_and_fresh(url, "car", version)
    assert previous != version
    assert not np.array_equal(stored.arrays["cch_order"], fresh.arrays["cch_order"])
    assert np.array_equal(stored.arrays["turn_origin"], fresh.arrays["turn_origin"])
    assert _same_answers(stored, fresh, 14, 120) > 40


#: A second commune around the far road.
FAR_RING = (60, 61, 62, 63)


def two_towns(path: Path) -> Path:
    """The town, and a second commune (Ferndorf) around its far road."""
    opl = _town()
    _commune(opl, 2, FAR_RING, (9.89, 47.29, 9.92, 47.31), "Ferndorf")
    return opl.write(path)


def _get(client: Any, path: str) -> Any:
    """GET ``path``, again after a 503 (a render process replaced under load) up to twice."""
    for _ in range(2):
        response = client.get(path)
        if response.status_code != 503:
            return response
        time.sleep(1)
    return client.get(path)


def _pixels(png: bytes) -> Any:
    import io

    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def test_raster_tiles_and_plans_of_untouched_places_keep_their_etag(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    """Through the app: after a building is added, the raster tile over it is drawn again
    (new ETag, new pixels) and the touched commune's plan changes, while a far raster tile and
    the plan of the far commune answer 304 to their old ETag."""
    import warnings

    from tests.tileserver.conftest import LOOPBACK, tile_settings
    from tileserver.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    url = make_database()
    run_import(url, [two_towns(tmp_path / "towns.opl")], node_dir=nodes_of(url))
    near, far = _tile(17, 9.50025, 47.09525), _tile(16, 9.905, 47.3)
    tiles = {
        "near": "/styles/colour/{}/{}/{}.png".format(*near),
        "near512": "/styles/colour/512/{}/{}/{}.png".format(*_tile(16, 9.50025, 47.09525)),
        "far": "/styles/colour/{}/{}/{}.png".format(*far),
        "far512": "/styles/colour/512/{}/{}/{}.png".format(*far),
    }
    plans = {"plan": "/townplans/Testdorf.png?dpi=72", "far plan": "/townplans/Ferndorf.png?dpi=72"}
    building = building_xml()

    with TestClient(create_app(tile_settings(url, tmp_path / "cache")), client=LOOPBACK) as client:
        before = {name: _get(client, path) for name, path in {**tiles, **plans}.items()}
        assert all(r.status_code == 200 for r in before.values()), {
            k: r.text[:200] for k, r in before.items()
        }
        old_version = meta(url)["data_version"]
        change = osc(tmp_path / "b.osc", create=building)
        summary = run_update(url, [change], node_dir=nodes_of(url))
        assert summary.communes == [1]
        deadline = time.monotonic() + 30
        while client.get(tiles["near"]).headers["etag"] == before["near"].headers["etag"]:
            assert time.monotonic() < deadline, "the server never switched to the update"
            time.sleep(0.2)
        assert meta(url)["data_version"] != old_version
        for name in ("near", "near512"):
            after = client.get(tiles[name])
            assert after.headers["etag"] != before[name].headers["etag"]
            assert (_pixels(after.content) != _pixels(before[name].content)).any(), name
        for name in ("far", "far512"):
            again = client.get(tiles[name], headers={"if-none-match": before[name].headers["etag"]})
            assert again.status_code == 304, name
        old_tag = before["far plan"].headers["etag"]
        kept = client.get(plans["far plan"], headers={"if-none-match": old_tag})
        assert kept.status_code == 304 and kept.headers["etag"] == old_tag
        assert client.get(plans["far plan"]).content == before["far plan"].content
        changed = _get(client, plans["plan"])
        assert changed.status_code == 200
        assert changed.headers["etag"] != before["plan"].headers["etag"]
        assert (_pixels(changed.content) != _pixels(before["plan"].content)).any()


def _work_schemas(url: str) -> list[str]:
    rows = query(url, "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'osm\\_update%%'")
    return sorted(str(name) for (name,) in rows)


def test_what_an_update_stages_is_dropped_when_it_fails_or_at_the_next_one(
    town_url: str, tmp_path: Path
) -> None:
    """A failing routing build: the error passes, nothing changed, nothing staged is left;
    what a killed update left is dropped by the next update."""

    def failing(url: str, staging: str, version: str, keep: Path | None) -> None:
        raise RuntimeError("routing build failed")

    change = edits(tmp_path / "e.osc")
    before = digests(town_url)
    with pytest.raises(RuntimeError, match="routing build failed"):
        run_update(town_url, [change], node_dir=nodes_of(town_url), before_swap=[failing])
    assert digests(town_url) == before
    assert _work_schemas(town_url) == []

    with psycopg2.connect(town_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE SCHEMA osm_update_network; CREATE TABLE osm_update_network.x (i int)")
    assert _work_schemas(town_url) == ["osm_update_network"]
    run_update(town_url, [change], node_dir=nodes_of(town_url))
    assert _work_schemas(town_url) == []
    assert scalar(town_url, "SELECT count(*) FROM osm.buildings WHERE osm_id = 200") == 1


def _as_a_fresh_build(url: str, profile: str, version: str) -> None:
    """The stored arrays of ``profile`` are a fresh build's (but the node order), and car
    routes are its routes."""
    import numpy as np

    from routing import cch

    stored, fresh = _stored_and_fresh(url, profile, version)
    for name, array in fresh.arrays.items():
        # The CCH is made from the node order.
        if name not in {"cch_order", "meta", *cch.ARRAYS}:
            assert np.array_equal(stored.arrays[name], array), (profile, name)
    # A patch customises again only the arcs whose weights changed: as a whole customisation.
    tails, heads, weights = stored.arcs
    plain = weights - stored.restricted_ms(stored.origin[tails], stored.origin[heads])
    whole = {
        **cch.customize(stored.arrays, weights),
        **cch.customize_plain(stored.arrays, weights, plain),
    }
    assert {name for name in (*cch.METRIC, *cch.PLAIN) if name in stored.arrays} == set(whole)
    for name, array in whole.items():
        assert stored.arrays[name].dtype == array.dtype, (profile, name)
        assert stored.arrays[name].tobytes() == array.tobytes(), (profile, name)
    if profile == "car":
        assert _same_answers(stored, fresh, 14) > 25


def test_incremental_routing_updates_answer_as_a_fresh_build(
    make_database: Callable[[], str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Liechtenstein, then road nodes moved and a maxspeed changed (the roads connect as
    before: every profile keeps its turn graph, order and components, byte for byte and
    unwritten), the same nodes moved again (the arrays the update built patched), then a road
    made one-way, a road added, a road deleted and a turn restriction deleted (the turn graphs
    change): after each, every profile's arrays equal a fresh build's (but the node order) and
    routes equal its routes."""

    from routing.build import CONNECTIONS, TURN_GRAPH

    url = make_database()
    run_import(url, [LI_2021], node_dir=nodes_of(url), before_swap=[build_before_swap])
    before_layouts, before_rows = _layouts(url), _rows_of(url)
    moved = query(
        url,
        "SELECT osm_id, lon, lat FROM osm.road_nodes ORDER BY md5(osm_id::text) LIMIT 60",
    )
    moves = "".join(
        node_xml(int(i), round(lon + 0.00004, 7), round(lat - 0.00003, 7)) for i, lon, lat in moved
    )
    ((fast_id, fast_nodes, fast_tags),) = query(
        url,
        "SELECT m.id, m.nodes, m.tags FROM osm.mid_ways m JOIN osm.road_ways r ON r.osm_id = m.id "
        "WHERE m.tags ->> 'highway' = 'secondary' AND m.tags ? 'maxspeed' "
        "AND m.tags ->> 'maxspeed' <> '30' ORDER BY m.id LIMIT 1",
    )
    slower = _way_xml(int(fast_id), list(fast_nodes), {**dict(fast_tags), "maxspeed": "30"})
    capsys.readouterr()
    first = run_update(url, [osc(tmp_path / "moves.osc", modify=moves + slower)],
                       node_dir=nodes_of(url), before_swap=[build_before_swap])  # fmt: skip
    # The import's build, kept beside the road network, is patched by this first update of
    # the process (as by any later one: the build kept in memory).
    assert capsys.readouterr().err.count("patches its previous build") == len(before_layouts)
    layouts, rows = _layouts(url), _rows_of(url)
    for profile, layout in layouts.items():
        for name in [*CONNECTIONS, *TURN_GRAPH]:
            assert layout[name]["chunks"] == before_layouts[profile][name]["chunks"], name
            kept = [key for key in rows if key[:2] == (profile, name)]
            assert len(kept) == len(layout[name]["chunks"]), name
            assert all(rows[key] == before_rows[key] for key in kept), name
        assert layout["geometry"]["chunks"] != before_layouts[profile]["geometry"]["chunks"]
        _as_a_fresh_build(url, profile, first.data_version)

    # The same nodes moved on, in the same process: each profile makes again only the arrays
    # made from node locations and patches the others the first update built (only the moved
    # roads' parts computed again).
    capsys.readouterr()
    moves = "".join(
        node_xml(int(i), round(lon - 0.00006, 7), round(lat + 0.00002, 7)) for i, lon, lat in moved
    )
    again = run_update(url, [osc(tmp_path / "again.osc", modify=moves)],
                       node_dir=nodes_of(url), before_swap=[build_before_swap])  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("patches its previous build") == len(layouts)
    assert err.count("only moves the moved nodes' roads") == len(layouts)
    for profile in _layouts(url):
        _as_a_fresh_build(url, profile, again.data_version)

    ways = query(
        url,
        "SELECT m.id, m.nodes, m.tags FROM osm.mid_ways m JOIN osm.road_ways r ON r.osm_id = m.id "
        "WHERE m.tags ->> 'highway' = 'residential' AND NOT m.tags ? 'oneway' "
        "AND cardinality(m.nodes) > 3 ORDER BY m.id LIMIT 3",
    )
    oneway = _way_xml(int(ways[0][0]), list(ways[0][1]), {**dict(ways[0][2]), "oneway": "yes"})
    joined = [int(ways[1][1][0]), int(ways[2][1][-1])]
    added = _way_xml(10**12, joined, {"highway": "residential", "name": "Neuweg"})
    deleted = f'<way id="{int(ways[2][0])}" {STAMP}/>'
    (restriction,) = query(
        url,
        "SELECT osm_id FROM osm.restrictions WHERE left(tags ->> 'restriction', 3) = 'no_' "
        "ORDER BY osm_id LIMIT 1",
    )[0]
    deleted += f'<relation id="{int(restriction)}" {STAMP}/>'
    change = osc(tmp_path / "roads.osc", create=added, modify=oneway, delete=deleted)
    second = run_update(url, [change], node_dir=nodes_of(url), before_swap=[build_before_swap])
    layouts = _layouts(url)
    assert layouts["car"]["turn_next"]["chunks"] != before_layouts["car"]["turn_next"]["chunks"]
    for profile in layouts:
        _as_a_fresh_build(url, profile, second.data_version)


def test_eight_years_of_road_changes_patch_the_road_network_as_read_again(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    """The road network of 2013 patched with what the 2013->2021 update changes in it gives
    every profile the routing arrays the updated network read whole gives."""
    import numpy as np

    from osmimport import schema
    from routing.arrays import (
        patch_roads,
        profile_arrays,
        read_road_changes,
        read_roads,
        read_roads_with_reader,
    )
    from routing.profiles import PROFILES

    change = derive_changes(LI_2013, LI_2021, tmp_path / "li-2013-2021.osc.gz")
    url = make_database()
    run_import(url, [LI_2013], node_dir=nodes_of(url))
    profiles = list(PROFILES.values())
    old, reader = read_roads_with_reader(url, schema.SCHEMA, "2013", profiles)
    checked = []

    def check(url: str, network: str, version: str, keep: Path | None) -> None:
        changes = read_road_changes(url, version)
        assert len(changes.ways) > 1000 and len(changes.replaced_nodes) > 10000
        patched = patch_roads(old, reader, changes)
        whole = read_roads(url, network, version, profiles)
        assert np.array_equal(patched.way_ids, whole.way_ids)
        assert np.array_equal(patched.node_ids, whole.node_ids)
        for profile in profiles:
            mine, theirs = profile_arrays(patched, profile), profile_arrays(whole, profile)
            assert mine.keys() == theirs.keys()
            for name, array in theirs.items():
                assert np.array_equal(mine[name], array, equal_nan=True), (profile.name, name)
        checked.append(version)

    summary = run_update(url, [change], node_dir=nodes_of(url), before_swap=[check])
    assert checked == [summary.data_version]
