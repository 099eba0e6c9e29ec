"""The OpenAPI 3.0 document of the HTTP API, served at ``/openapi.json``."""

from __future__ import annotations

from typing import Any

from osmimport import schema

JSON = "application/json"
ERROR = {
    "type": "object",
    "required": ["detail"],
    "properties": {"detail": {"type": "string"}},
}
OSRM_ERROR = {
    "type": "object",
    "required": ["code"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
}
#: Statuses every route may answer besides its own: the server's limits and faults.
COMMON = {
    "503": {
        "description": "overloaded or the database is unavailable; see Retry-After",
        "content": {JSON: {"schema": ERROR}},
    }
}


def _error(description: str, body: dict[str, Any] = ERROR) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": body}}}


def _ok(media: str, description: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": body or {}}}}


def _param(where: str, name: str, schema_: dict[str, Any], description: str) -> dict[str, Any]:
    required = where == "path"
    return {"name": name, "in": where, "required": required, "schema": schema_} | (
        {"description": description} if description else {}
    )


def _path_param(name: str, schema_: dict[str, Any], description: str = "") -> dict[str, Any]:
    return _param("path", name, schema_, description)


def _query(name: str, schema_: dict[str, Any], description: str = "") -> dict[str, Any]:
    return _param("query", name, schema_, description)


def _get(
    summary: str, responses: dict[str, Any], parameters: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": parameters or [],
            "responses": {**responses, **COMMON},
        }
    }


STYLE = _path_param("style", {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}, "style name")
ZOOM = {"type": "integer", "minimum": 0, "maximum": 20}
COORD = {"type": "integer", "minimum": 0, "maximum": 1048575}
PROFILE = _path_param("profile", {"type": "string"}, "car/driving, bike/cycling, foot/walking")
COORDINATES = _path_param(
    "coordinates", {"type": "string"}, "lon,lat;lon,lat… or polyline(…)/polyline6(…)"
)
OSRM_OPTIONS = [
    _query(name, {"type": "string"})
    for name in (
        "steps",
        "overview",
        "geometries",
        "annotations",
        "alternatives",
        "continue_straight",
        "radiuses",
        "bearings",
        "approaches",
        "hints",
        "generate_hints",
        "exclude",
        "snapping",
        "number",
        "sources",
        "destinations",
        "fallback_speed",
        "fallback_coordinate",
        "scale_factor",
    )
]
OSRM_RESPONSES = {
    "200": _ok(JSON, "an OSRM v5 answer", {"type": "object", "required": ["code"]}),
    "400": _error("invalid request, in OSRM's words", OSRM_ERROR),
}
PNG = {"200": _ok("image/png", "a PNG"), "304": {"description": "not modified"}}
XML = {"200": _ok("application/xml", "an XML document")}


def document(server_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI document; ``server_url`` is the absolute URL the server is reached at."""
    tile_params = [
        _path_param("tileset", {"type": "string"}, "the tileset (basemap)"),
        _path_param("z", {"type": "integer", "minimum": 0, "maximum": schema.MAX_ZOOM}),
        _path_param("x", COORD),
        _path_param("y", COORD),
    ]
    raster_params = [
        STYLE,
        _path_param("z", ZOOM),
        _path_param("x", COORD),
        _path_param("y", COORD),
    ]
    paths: dict[str, Any] = {
        "/tiles/{tileset}.json": _get(
            "TileJSON 3.0 of a vector tileset",
            {"200": _ok(JSON, "TileJSON", {"type": "object"}), "404": _error("no such tileset")},
            [_path_param("tileset", {"type": "string"})],
        ),
        "/tiles/{tileset}/{z}/{x}/{y}.mvt": _get(
            "a Mapbox vector tile (Shortbread 1.1)",
            {
                "200": _ok("application/vnd.mapbox-vector-tile", "the tile"),
                "204": {"description": "an empty tile"},
                "304": {"description": "not modified"},
                "400": _error("malformed path"),
                "404": _error("outside the world or zoom range, or no such tileset"),
            },
            tile_params,
        ),
        "/styles.json": _get(
            "the styles", {"200": _ok(JSON, "id, name and URL of each", {"type": "array"})}
        ),
        "/styles/{style}.json": _get(
            "a MapLibre style",
            {"200": _ok(JSON, "style spec v8", {"type": "object"}), "404": _error("no such style")},
            [STYLE],
        ),
        "/styles/{style}/{z}/{x}/{y}.png": _get(
            "a raster tile (256 px)",
            {
                **PNG,
                "400": _error("malformed tile name"),
                "404": _error("no such style, or outside the world or zoom range"),
            },
            [*raster_params, _query("attribution", {"type": "string", "enum": ["0", "1"]})],
        ),
        "/styles/{style}/tiles.json": _get(
            "TileJSON of a style's raster tiles",
            {"200": _ok(JSON, "TileJSON", {"type": "object"}), "404": _error("no such style")},
            [STYLE],
        ),
        "/styles/{style}/wmts.xml": _get(
            "WMTS 1.0.0 capabilities of a style", {**XML, "404": _error("no such style")}, [STYLE]
        ),
        "/styles/wmts.xml": _get("WMTS 1.0.0 capabilities of every style", XML),
        "/qgis-connections.xml": _get(
            "a QGIS connections file",
            {**XML, "400": _error("unknown kind")},
            [_query("kind", {"type": "string", "enum": ["xyz", "vectortile", "wmts"]})],
        ),
        "/fonts/{fontstack}/{range}.pbf": _get(
            "a glyph range (comma-separated fontstacks merged)",
            {
                "200": _ok("application/x-protobuf", "glyphs"),
                "304": {"description": "not modified"},
                "400": _error("malformed range or fontstack"),
                "404": _error("no installed font in the fontstack"),
            },
            [
                _path_param("fontstack", {"type": "string"}),
                _path_param("range", {"type": "string", "pattern": "^[0-9]{1,6}-[0-9]{1,6}$"}),
            ],
        ),
        "/sprites/{name}.json": _get(
            "a sprite sheet's index",
            {
                "200": _ok(JSON, "index", {"type": "object"}),
                "304": {"description": "not modified"},
                "400": _error("malformed name"),
                "404": _error("no such sprite"),
            },
            [_path_param("name", {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}(@[1-9]x)?$"})],
        ),
        "/route/v1/{profile}/{coordinates}": _get(
            "OSRM v5 route", OSRM_RESPONSES, [PROFILE, COORDINATES, *OSRM_OPTIONS]
        ),
        "/nearest/v1/{profile}/{coordinates}": _get(
            "OSRM v5 nearest", OSRM_RESPONSES, [PROFILE, COORDINATES, *OSRM_OPTIONS]
        ),
        "/table/v1/{profile}/{coordinates}": _get(
            "OSRM v5 table", OSRM_RESPONSES, [PROFILE, COORDINATES, *OSRM_OPTIONS]
        ),
        "/townplans/communes.json": _get(
            "communes a plan can be drawn of",
            {"200": _ok(JSON, "communes", {"type": "array"})},
            [_query("search", {"type": "string"})],
        ),
        "/townplans/{name}": _get(
            "a town plan of a commune (name or INSEE code) as PDF or PNG",
            {
                "200": {
                    "description": "the plan",
                    "content": {"application/pdf": {"schema": {}}, "image/png": {"schema": {}}},
                },
                "400": _error("invalid option"),
                "404": {"description": "no such commune", "content": {JSON: {"schema": ERROR}}},
                "422": _error("the commune's boundary is incomplete"),
            },
            [
                _path_param("name", {"type": "string"}, "COMMUNE.pdf or COMMUNE.png"),
                _query("paper", {"type": "string"}),
                _query("orientation", {"type": "string"}),
                _query("layout", {"type": "string"}),
                _query("dpi", {"type": "integer", "minimum": 30, "maximum": 150}),
            ],
        ),
        "/health": _get(
            "the server's state: ok, or degraded while the database is unavailable",
            {
                "200": _ok(
                    JSON,
                    "state",
                    {
                        "type": "object",
                        "required": ["status", "data_version"],
                        "properties": {
                            "status": {"type": "string", "enum": ["ok", "degraded"]},
                            "data_version": {"type": "string"},
                        },
                    },
                )
            },
        ),
        "/metrics": _get(
            "Prometheus metrics of every server process",
            {"200": _ok("text/plain", "text exposition format 0.0.4")},
        ),
        "/openapi.json": _get(
            "this document", {"200": _ok(JSON, "OpenAPI 3.0", {"type": "object"})}
        ),
    }
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {
            "title": "fondplan",
            "version": "1",
            "description": "OpenStreetMap vector and raster tiles, styles, town plans and "
            'OSRM-compatible routing. Errors are JSON {"detail": …} (OSRM routes: '
            '{"code", "message"}).',
        },
        "paths": paths,
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc
