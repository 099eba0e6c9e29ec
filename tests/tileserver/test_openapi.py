"""schemathesis against ``/openapi.json``: bounded examples, no 5xx, no schema violation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from tests.tileserver.conftest import LOOPBACK, TestClient, tile_settings
from tileserver.app import create_app


@pytest.fixture(scope="module")
def api(
    liechtenstein_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[schemathesis.BaseSchema]:
    app = create_app(tile_settings(liechtenstein_url, tmp_path_factory.mktemp("openapi")))
    # The lifespan runs for the whole module; schemathesis calls the same app object.
    with TestClient(app, client=LOOPBACK):
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


def test_api(api: schemathesis.BaseSchema) -> None:
    """Every documented operation with a few generated requests each (bounded, derandomised)."""
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 15

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=12,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=CHECKS)

        call()


def test_the_document_lists_every_route_group(tile_client: TestClient) -> None:
    doc = tile_client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    for path in ("/tiles/{tileset}/{z}/{x}/{y}.mvt", "/route/v1/{profile}/{coordinates}",
                 "/townplans/{name}", "/styles/{style}/{z}/{x}/{y}.png", "/health"):  # fmt: skip
        assert path in doc["paths"]
    assert doc["servers"][0]["url"] == "http://testserver"
