"""The event-loop fast path takes only cheap requests; dear ones go to the worker threads."""

from __future__ import annotations

from routing.http import request_cost
from tests.tileserver.conftest import TestClient, tile_client  # noqa: F401 - fixture
from tileserver.fastpath import DEFAULT_BUDGET

#: Across Liechtenstein, north to south.
LONG_WALK = ";".join(f"{9.52 + 0.004 * (i % 3):.4f},{47.22 - 0.02 * i:.4f}" for i in range(10))
SHORT_DRIVE = "9.5209,47.1410;9.5230,47.1395"
HEAVY = "steps=true&overview=full&annotations=true"


def counters(client: TestClient) -> dict[str, float]:
    found = {}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("fondplan_fastpath_total{"):
            name, value = line.rsplit(" ", 1)
            found[name.split('"')[1]] = float(value)
    return found


def test_cost_grows_with_distance_and_options_not_coordinates() -> None:
    plain_long = request_cost(f"/route/v1/foot/{LONG_WALK}", "")
    assert request_cost(f"/route/v1/foot/{LONG_WALK}", HEAVY) > 10 * plain_long
    assert request_cost(f"/route/v1/driving/{SHORT_DRIVE}", "") < DEFAULT_BUDGET
    # Two far points cost more than ten close ones.
    close = ";".join(f"{9.5209 + 0.0002 * i:.4f},47.1410" for i in range(10))
    far = "9.52,47.22;9.52,47.05"
    assert request_cost(f"/route/v1/foot/{far}", "") > request_cost(f"/route/v1/foot/{close}", "")


def test_heavy_routes_go_to_the_threads_and_answer_the_same(
    tile_client: TestClient,  # noqa: F811 - the fixture imported above
) -> None:
    # The first request checks the data version in a thread; then the fast path may answer.
    assert tile_client.get(f"/route/v1/driving/{SHORT_DRIVE}").status_code == 200
    before = counters(tile_client)
    light = tile_client.get(f"/route/v1/driving/{SHORT_DRIVE}")
    assert light.status_code == 200 and light.json()["code"] == "Ok"
    middle = counters(tile_client)
    assert middle["answered"] == before.get("answered", 0) + 1
    heavy = tile_client.get(f"/route/v1/foot/{LONG_WALK}?{HEAVY}")
    assert heavy.status_code == 200, heavy.text
    route = heavy.json()["routes"][0]
    assert route["legs"][0]["steps"] and route["legs"][0]["annotation"]["distance"]
    after = counters(tile_client)
    assert after["deferred"] == middle.get("deferred", 0) + 1
    assert after["answered"] == middle["answered"]
