"""WMTS 1.0.0 capabilities (GoogleMapsCompatible) and QGIS connection files for the styles."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from osmimport.mercator import HALF_WORLD, MAX_LAT

#: Attribution every client shows (required by the ODbL).
ATTRIBUTION = "© OpenStreetMap contributors"
ATTRIBUTION_URL = "https://www.openstreetmap.org/copyright"

#: OGC's standardized rendering pixel (0.28 mm) and the EPSG:3857 extent.
_PIXEL_SIZE_M = 0.00028
WORLD_BBOX = (-180.0, -MAX_LAT, 180.0, MAX_LAT)


@dataclass(frozen=True)
class WmtsLayer:
    """One style offered as a WMTS layer."""

    name: str
    title: str
    #: Absolute URL template with ``{z}``, ``{x}``, ``{y}`` of the 256 px PNG tiles.
    tile_url: str
    bbox: tuple[float, float, float, float] = WORLD_BBOX


def scale_denominator(zoom: int, tile_size: int = 256) -> float:
    """The WMTS scale denominator of GoogleMapsCompatible at ``zoom``."""
    return 2 * HALF_WORLD / (tile_size * 2.0**zoom) / _PIXEL_SIZE_M


def _tile_matrix_set(identifier: str, max_zoom: int, tile_size: int) -> str:
    matrices = []
    for zoom in range(max_zoom + 1):
        count = 2**zoom
        matrices.append(
            "    <TileMatrix>\n"
            f"      <ows:Identifier>{zoom}</ows:Identifier>\n"
            f"      <ScaleDenominator>{scale_denominator(zoom, tile_size):.10f}"
            "</ScaleDenominator>\n"
            f"      <TopLeftCorner>{-HALF_WORLD:.10f} {HALF_WORLD:.10f}</TopLeftCorner>\n"
            f"      <TileWidth>{tile_size}</TileWidth>\n"
            f"      <TileHeight>{tile_size}</TileHeight>\n"
            f"      <MatrixWidth>{count}</MatrixWidth>\n"
            f"      <MatrixHeight>{count}</MatrixHeight>\n"
            "    </TileMatrix>\n"
        )
    return (
        "  <TileMatrixSet>\n"
        f"    <ows:Identifier>{identifier}</ows:Identifier>\n"
        "    <ows:SupportedCRS>urn:ogc:def:crs:EPSG::3857</ows:SupportedCRS>\n"
        "    <WellKnownScaleSet>urn:ogc:def:wkss:OGC:1.0:GoogleMapsCompatible</WellKnownScaleSet>\n"
        + "".join(matrices)
        + "  </TileMatrixSet>\n"
    )


def _operation(name: str, url: str) -> str:
    return (
        f'    <ows:Operation name="{name}">\n'
        "      <ows:DCP><ows:HTTP>\n"
        f"        <ows:Get xlink:href={quoteattr(url)}>\n"
        '          <ows:Constraint name="GetEncoding">\n'
        "            <ows:AllowedValues><ows:Value>RESTful</ows:Value></ows:AllowedValues>\n"
        "          </ows:Constraint>\n"
        "        </ows:Get>\n"
        "      </ows:HTTP></ows:DCP>\n"
        "    </ows:Operation>\n"
    )


def _layer(layer: WmtsLayer) -> str:
    west, south, east, north = layer.bbox
    template = (
        layer.tile_url.replace("{z}", "{TileMatrix}")
        .replace("{x}", "{TileCol}")
        .replace("{y}", "{TileRow}")
    )
    return (
        "    <Layer>\n"
        f"      <ows:Title>{escape(layer.title)}</ows:Title>\n"
        f"      <ows:Abstract>{escape(ATTRIBUTION)}</ows:Abstract>\n"
        "      <ows:WGS84BoundingBox>\n"
        f"        <ows:LowerCorner>{west:.7f} {south:.7f}</ows:LowerCorner>\n"
        f"        <ows:UpperCorner>{east:.7f} {north:.7f}</ows:UpperCorner>\n"
        "      </ows:WGS84BoundingBox>\n"
        f"      <ows:Identifier>{escape(layer.name)}</ows:Identifier>\n"
        '      <Style isDefault="true"><ows:Identifier>default</ows:Identifier></Style>\n'
        "      <Format>image/png</Format>\n"
        "      <TileMatrixSetLink><TileMatrixSet>GoogleMapsCompatible</TileMatrixSet>"
        "</TileMatrixSetLink>\n"
        '      <ResourceURL format="image/png" resourceType="tile"'
        f" template={quoteattr(template)}/>\n"
        "    </Layer>\n"
    )


def capabilities(
    layers: Sequence[WmtsLayer], *, capabilities_url: str, max_zoom: int, service_url: str
) -> str:
    """The WMTS 1.0.0 GetCapabilities document (RESTful) of ``layers``."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<Capabilities xmlns="http://www.opengis.net/wmts/1.0"'
        ' xmlns:ows="http://www.opengis.net/ows/1.1"'
        ' xmlns:xlink="http://www.w3.org/1999/xlink"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
        ' xmlns:gml="http://www.opengis.net/gml"'
        ' xsi:schemaLocation="http://www.opengis.net/wmts/1.0'
        ' http://schemas.opengis.net/wmts/1.0/wmtsGetCapabilities_response.xsd"'
        ' version="1.0.0">\n'
        "  <ows:ServiceIdentification>\n"
        "    <ows:Title>fondplan</ows:Title>\n"
        f"    <ows:Abstract>OpenStreetMap basemap. {escape(ATTRIBUTION)}</ows:Abstract>\n"
        "    <ows:ServiceType>OGC WMTS</ows:ServiceType>\n"
        "    <ows:ServiceTypeVersion>1.0.0</ows:ServiceTypeVersion>\n"
        "    <ows:Fees>none</ows:Fees>\n"
        f"    <ows:AccessConstraints>{escape(ATTRIBUTION)} (ODbL, {ATTRIBUTION_URL})"
        "</ows:AccessConstraints>\n"
        "  </ows:ServiceIdentification>\n"
        "  <ows:ServiceProvider>\n"
        "    <ows:ProviderName>fondplan</ows:ProviderName>\n"
        f"    <ows:ProviderSite xlink:href={quoteattr(service_url)}/>\n"
        "  </ows:ServiceProvider>\n"
        "  <ows:OperationsMetadata>\n"
        + _operation("GetCapabilities", capabilities_url)
        + _operation("GetTile", service_url)
        + "  </ows:OperationsMetadata>\n"
        "  <Contents>\n"
        + "".join(_layer(layer) for layer in layers)
        + _tile_matrix_set("GoogleMapsCompatible", max_zoom, 256)
        + "  </Contents>\n"
        f"  <ServiceMetadataURL xlink:href={quoteattr(capabilities_url)}/>\n"
        "</Capabilities>\n"
    )


@dataclass(frozen=True)
class QgisSources:
    """The URLs one style is offered at, for the QGIS connection files."""

    style: str
    xyz_url: str
    vector_url: str
    style_url: str
    wmts_url: str
    max_zoom: int
    vector_max_zoom: int


def _attrs(values: dict[str, str]) -> str:
    return " ".join(f"{key}={quoteattr(value)}" for key, value in values.items())


def _xyz(s: QgisSources) -> dict[str, str]:
    return {"url": s.xyz_url, "zmin": "0", "zmax": str(s.max_zoom), "tilePixelRatio": "1"}


def _vectortile(s: QgisSources) -> dict[str, str]:
    zooms = {"zmin": "0", "zmax": str(s.vector_max_zoom)}
    return {"url": s.vector_url, **zooms, "serviceType": "", "styleUrl": s.style_url}


def _wms(s: QgisSources) -> dict[str, str]:
    ignored = ("ignoreGetMapURI", "ignoreGetFeatureInfoURI", "ignoreAxisOrientation")
    switches = dict.fromkeys((*ignored, "invertAxisOrientation", "smoothPixmapTransform"), "false")
    return {"url": s.wmts_url, **switches, "dpiMode": "7"}


#: Per kind: the file's root element, each connection's element, the name's suffix, whether it
#: has an authentication configuration, and the kind's own attributes.
_CONNECTIONS: dict[str, tuple[str, str, str, bool, Callable[[QgisSources], dict[str, str]]]] = {
    "xyz": ("qgsXYZTilesConnections", "xyztiles", "", True, _xyz),
    "vectortile": ("qgsVectorTileConnections", "vectortile", "", True, _vectortile),
    "wmts": ("qgsWMSConnections", "wms", " (WMTS)", False, _wms),
}


def qgis_connections(kind: str, sources: Sequence[QgisSources]) -> str:
    """A QGIS "Load connections" file of ``kind`` (``xyz``, ``vectortile`` or ``wmts``).

    QGIS reads one kind of connection per file, named by the root element.
    """
    if kind not in _CONNECTIONS:
        raise ValueError(f"unknown connection kind: {kind}")
    root, element, suffix, authcfg, attributes = _CONNECTIONS[kind]
    rows: list[str] = []
    for s in sources:
        values = {"name": f"fondplan {s.style}{suffix}", **attributes(s)}
        if authcfg:
            values["authcfg"] = ""
        values |= {"username": "", "password": "", "referer": ""}
        rows.append(f"  <{element} {_attrs(values)}/>")
    body = "\n".join(rows)
    return f'<!DOCTYPE connections>\n<{root} version="1.0">\n{body}\n</{root}>\n'
