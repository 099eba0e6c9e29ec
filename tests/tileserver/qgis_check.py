"""Run by the system Python with QGIS: import connection files, draw the vector tiles with labels.

Usage: python3 qgis_check.py OUT_DIR XYZ.xml VECTORTILE.xml WMTS.xml
Imports each file through QGIS' own "Load connections" dialog (QgsManageConnectionsDialog),
reads back what QGIS stored, then draws the imported vector-tile connection of the ``colour``
style at Vaduz with its MapLibre style converted by QGIS, with and without labels. Prints JSON.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsDataSourceUri,
    QgsMapRendererSequentialJob,
    QgsMapSettings,
    QgsRectangle,
    QgsSettings,
    QgsVectorTileLayer,
)
from qgis.gui import QgsManageConnectionsDialog
from qgis.PyQt.QtCore import QSize, QTimer
from qgis.PyQt.QtWidgets import QApplication, QMessageBox

#: Vaduz centre (lon, lat) and half the drawn width in metres (about z16 over 800 px).
VADUZ = (9.5209, 47.1410)
HALF = 950.0
GROUPS = {
    "xyz": (QgsManageConnectionsDialog.XyzTiles, "qgis/connections-xyz"),
    "vectortile": (QgsManageConnectionsDialog.VectorTile, "qgis/connections-vector-tile"),
    "wmts": (QgsManageConnectionsDialog.WMS, "qgis/connections-wms"),
}


def import_file(kind: str, path: str, messages: list[str]) -> dict[str, dict[str, str]]:
    """Import ``path`` as QGIS does; the connections QGIS then holds, by name."""
    kind_enum, group = GROUPS[kind]

    def dismiss() -> None:
        # QGIS answers a file it refuses with a modal message box: record it, close it.
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            messages.append(f"{kind}: {box.text()}")
            box.reject()

    timer = QTimer()
    timer.timeout.connect(dismiss)
    timer.start(50)
    dialog = QgsManageConnectionsDialog(None, QgsManageConnectionsDialog.Import, kind_enum, path)
    dialog.selectAll()
    dialog.doExportImport()
    timer.stop()
    settings = QgsSettings()
    settings.beginGroup(group)
    found = {}
    for name in settings.childGroups():
        settings.beginGroup(name)
        found[name] = {key: str(settings.value(key)) for key in settings.childKeys()}
        settings.endGroup()
    settings.endGroup()
    return found


def render(layer: QgsVectorTileLayer, labeling: object, out: Path) -> list[str]:
    """Draw ``layer`` at Vaduz with ``labeling`` (None: no labels) into ``out``; the label
    texts QGIS placed."""
    layer.setLabeling(labeling.clone() if labeling is not None else None)
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
    lon, lat = VADUZ
    x = math.radians(lon) * 6378137.0
    y = math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)) * 6378137.0
    settings.setExtent(QgsRectangle(x - HALF, y - HALF * 0.75, x + HALF, y + HALF * 0.75))
    settings.setOutputSize(QSize(800, 600))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    job.renderedImage().save(str(out))
    results = job.takeLabelingResults()
    if results is None:
        return []
    return sorted({label.labelText for label in results.allLabels()})


def main() -> int:
    out_dir, *files = sys.argv[1:]
    app = QgsApplication([], True)
    app.initQgis()
    report: dict[str, object] = {"version": Qgis.QGIS_VERSION}
    messages: list[str] = []
    imported = {
        kind: import_file(kind, path, messages) for kind, path in zip(GROUPS, files, strict=True)
    }
    report["imported"] = imported
    report["messages"] = messages
    connection = imported["vectortile"].get("fondplan colour")
    if connection:
        uri = QgsDataSourceUri()
        uri.setParam("type", "xyz")
        for key in ("url", "zmin", "zmax", "styleUrl"):
            uri.setParam(key, connection[key])
        layer = QgsVectorTileLayer(bytes(uri.encodedUri()).decode(), "fondplan colour")
        report["valid"] = layer.isValid()
        message, ok = layer.loadDefaultStyle()
        report["styleLoaded"] = ok
        report["styleMessage"] = message
        labeling = layer.labeling()
        report["labelStyles"] = len(labeling.styles()) if labeling is not None else 0
        report["labelsOn"] = render(layer, labeling, Path(out_dir) / "labels.png")
        report["labelsOff"] = render(layer, None, Path(out_dir) / "nolabels.png")
    app.exitQgis()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
