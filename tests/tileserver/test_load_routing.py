"""Under load the event loop stays free: heavy routes run in child processes, cheap ones on the
loop with the same headers as every other answer; database connections are kept."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psutil
import pytest

from tests.tileserver.conftest import VADUZ, TestClient, serving_client, tile_of

SHORT_DRIVE = "/route/v1/driving/9.5209,47.1410;9.5230,47.1395"
NEAREST = "/nearest/v1/driving/9.5209,47.1410?number=40"
#: Vaduz to Eschen on foot with every option: far too dear for the event loop.
HEAVY = "/route/v1/foot/9.5209,47.1410;9.5220,47.2110?steps=true&overview=full&annotations=true"


@pytest.fixture(scope="module")
def client(
    liechtenstein_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    with serving_client(liechtenstein_url, tmp_path_factory.mktemp("load")) as test_client:
        deadline = time.monotonic() + 120
        while not test_client.get("/health").json()["routing"]["ready"]:
            assert time.monotonic() < deadline, "the routing data did not load"
            time.sleep(0.5)
        yield test_client


def metrics(client: TestClient) -> dict[str, float]:
    found = {}
    for line in client.get("/metrics").text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def routing_children() -> list[psutil.Process]:
    """The routing processes of the test's server (spawned children of this process)."""
    return [
        child
        for child in psutil.Process().children()
        if "spawn_main" in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE
    ]


def test_fast_answers_carry_the_headers_of_every_answer(client: TestClient) -> None:
    before = metrics(client)
    headers = {"Origin": "https://example.org", "Accept-Encoding": "gzip"}
    fast = client.get(NEAREST, headers=headers)
    assert fast.status_code == 200 and len(fast.json()["waypoints"]) == 40
    after = metrics(client)
    assert after['fondplan_fastpath_total{decision="answered"}'] == (
        before['fondplan_fastpath_total{decision="answered"}'] + 1
    )
    label = 'fondplan_http_requests_total{route="osrm_nearest",method="GET",status="200"}'
    assert after[label] == before.get(label, 0) + 1
    # The same CORS, compression and request id as an answer of the middleware stack.
    regular = client.get("/styles/colour.json", headers=headers)
    for name in ("access-control-allow-origin", "access-control-expose-headers"):
        assert fast.headers[name] == regular.headers[name], name
    varies = {part.strip() for part in fast.headers["vary"].split(",")}
    assert varies == {"Accept-Encoding", "Origin"}
    assert varies <= {part.strip() for part in regular.headers["vary"].split(",")}
    assert fast.headers["content-encoding"] == "gzip"
    assert len(fast.headers["x-request-id"]) == 16
    raw = client.get(NEAREST, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers and raw.json() == fast.json()
    head = client.head(NEAREST)
    assert head.status_code == 200 and head.content == b""


def test_heavy_routes_run_in_a_child_process(client: TestClient) -> None:
    before = metrics(client)
    heavy = client.get(HEAVY, headers={"Accept-Encoding": "gzip"})
    assert heavy.status_code == 200, heavy.text
    route = heavy.json()["routes"][0]
    assert route["legs"][0]["steps"] and route["legs"][0]["annotation"]["distance"]
    assert route["distance"] > 5000
    after = metrics(client)
    answers = "fondplan_routing_process_answers_total"
    assert after[answers] == before.get(answers, 0) + 1
    assert after["fondplan_routing_processes"] >= 1
    # The same answer as the event loop gives a light request of the same route.
    light = client.get(SHORT_DRIVE).json()
    assert client.get(f"{SHORT_DRIVE}?steps=true&overview=full&annotations=true").json()["routes"][
        0
    ]["distance"] == pytest.approx(light["routes"][0]["distance"])


def test_a_killed_routing_process_is_replaced(client: TestClient) -> None:
    assert client.get(HEAVY).status_code == 200
    children = routing_children()
    assert children
    for child in children:
        child.kill()
    psutil.wait_procs(children, timeout=10)
    again = client.get(HEAVY)
    assert again.status_code == 200, again.text
    assert metrics(client)["fondplan_routing_process_restarts_total"] >= 1
    assert {c.pid for c in routing_children()}.isdisjoint(c.pid for c in children)


def test_database_connections_are_kept_between_tiles(client: TestClient) -> None:
    x, y = tile_of(*VADUZ, 14)
    for dx in range(4):
        assert client.get(f"/tiles/basemap/14/{x + dx}/{y + 3}.mvt").status_code in (200, 204)
    # The connection goes back to the pool just after the answer is sent: wait for that.
    deadline = time.monotonic() + 10
    found = metrics(client)
    while found["fondplan_db_pool_in_use"] and time.monotonic() < deadline:
        time.sleep(0.05)
        found = metrics(client)
    assert found["fondplan_db_pool_in_use"] == 0
    # Returned to the pool, not closed: the next uncached tile needs no new connection.
    assert found["fondplan_db_pool_idle"] >= 1
