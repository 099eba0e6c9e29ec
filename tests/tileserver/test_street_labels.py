"""Street names win over house numbers and POIs: counted in Chromium against VersaTiles' style."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_json
from tests.tileserver.conftest import MULHOUSE, VADUZ
from tests.tileserver.test_viewer import CHROMIUM, serving

pytestmark = pytest.mark.browser

SCRIPT = Path(__file__).with_name("street_names.mjs")
OURS = ["colour", "grey", "print"]
REFERENCE = "versatiles-colorful"
#: Mulhouse centre (place de la Réunion) and Vaduz centre, at the zooms where house numbers show.
VIEWS = [
    {"name": f"{place} z{zoom}", "zoom": zoom, "lat": lat, "lon": lon}
    for place, (lon, lat) in [("Mulhouse", MULHOUSE), ("Vaduz", VADUZ)]
    for zoom in (16, 17)
]


@pytest.fixture(scope="module")
def both_server(town_centres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server over Liechtenstein and Mulhouse centre imported together."""
    with serving(town_centres_url, tmp_path_factory.mktemp("street-cache")) as base:
        yield base


def test_street_names_at_least_as_many_as_versatiles(both_server: str) -> None:
    if not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium (make setup)")
    report = run_json(["node", str(SCRIPT), both_server, json.dumps(VIEWS), *OURS, REFERENCE])
    assert "error" not in report, report.get("error")
    assert report["consoleErrors"] == []
    counts = report["counts"]
    for view in VIEWS:
        name = view["name"]
        reference = counts[REFERENCE][name]["count"]
        # The reference names the streets there: the views hold streets and the count works.
        assert reference >= 10, (name, counts[REFERENCE][name])
        for style in OURS:
            ours = counts[style][name]
            assert set(ours["layers"]) == {"label-street", "label-street-minor"}, style
            assert ours["count"] >= reference, (style, name, ours["names"], reference)
