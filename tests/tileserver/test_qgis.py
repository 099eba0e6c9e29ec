"""QGIS 3.22 (Debian's) imports the connection files and draws the vector tiles with labels."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import numpy as np
import psycopg2
import pytest
from PIL import Image

from osmimport import schema
from osmimport.paths import styles_dir
from tests.tileserver.test_wmts import server  # noqa: F401 - fixture

SYSTEM_PYTHON = "/usr/bin/python3"
SCRIPT = Path(__file__).with_name("qgis_check.py")
KINDS = ("xyz", "vectortile", "wmts")


def _has_qgis() -> bool:
    done = subprocess.run([SYSTEM_PYTHON, "-c", "import qgis.core"], capture_output=True)
    return done.returncode == 0


def test_qgis_imports_the_connections_and_labels_the_vector_tiles(
    server: str,  # noqa: F811 - fixture
    liechtenstein_url: str,
    tmp_path: Path,
) -> None:
    if not _has_qgis():
        pytest.skip("needs Debian's qgis and python3-qgis (make setup)")
    files = []
    for kind in KINDS:
        path = tmp_path / f"{kind}.xml"
        path.write_text(httpx.get(f"{server}/qgis-connections.xml?kind={kind}").text)
        files.append(str(path))
    home = tmp_path / "home"  # a fresh QGIS profile: QGIS keeps connections in ~/.config
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_RUNTIME_DIR": str(home),
        "QT_QPA_PLATFORM": "offscreen",
    }
    done = subprocess.run(
        [SYSTEM_PYTHON, str(SCRIPT), str(tmp_path), *files],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["version"].startswith("3.")

    # Every file is accepted (QGIS says nothing) and every style's connection is stored as sent.
    assert report["messages"] == []
    styles = sorted(p.stem for p in styles_dir().glob("*.json"))
    imported = report["imported"]
    assert sorted(imported["xyz"]) == [f"fondplan {s}" for s in styles]
    assert sorted(imported["vectortile"]) == [f"fondplan {s}" for s in styles]
    assert sorted(imported["wmts"]) == [f"fondplan {s} (WMTS)" for s in styles]
    colour = imported["vectortile"]["fondplan colour"]
    assert colour["url"] == f"{server}/tiles/basemap/{{z}}/{{x}}/{{y}}.mvt"
    assert colour["styleUrl"] == f"{server}/styles/colour.json"
    assert (
        imported["xyz"]["fondplan colour"]["url"] == f"{server}/styles/colour/{{z}}/{{x}}/{{y}}.png"
    )
    assert imported["wmts"]["fondplan colour (WMTS)"]["url"] == f"{server}/styles/colour/wmts.xml"

    # The style converts, with labels, and QGIS places street names from the tiles.
    assert report["valid"] and report["styleLoaded"], report.get("styleMessage")
    assert report["labelStyles"] >= 10
    assert report["labelsOff"] == []
    table = schema.LAYER_BY_NAME["street_labels"].table
    with psycopg2.connect(liechtenstein_url) as conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT DISTINCT name FROM {schema.SCHEMA}.{table} WHERE name = ANY(%s)",
            (report["labelsOn"],),
        )
        streets = {row[0] for row in cur.fetchall()}
    assert len(streets) >= 3, report["labelsOn"]
    # …and they are drawn: the two images differ by the text.
    on = np.asarray(Image.open(tmp_path / "labels.png").convert("RGB")).astype(int)
    off = np.asarray(Image.open(tmp_path / "nolabels.png").convert("RGB")).astype(int)
    assert on.shape == off.shape == (600, 800, 3)
    assert (np.abs(on - off).max(axis=2) > 40).sum() > 500
    assert len({tuple(p) for p in off.reshape(-1, 3)[::97]}) > 20  # the map itself is drawn
