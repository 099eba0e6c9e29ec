"""Google's encoded polyline format (OSRM ``polyline``/``polyline6``), in (lat, lon) order."""

from __future__ import annotations

from collections.abc import Iterable


def _encode_value(value: int) -> str:
    value = ~(value << 1) if value < 0 else value << 1
    chunks = []
    while value >= 0x20:
        chunks.append(chr((0x20 | (value & 0x1F)) + 63))
        value >>= 5
    chunks.append(chr(value + 63))
    return "".join(chunks)


def encode(coordinates: Iterable[tuple[float, float]], precision: int = 5) -> str:
    """Encode (lon, lat) pairs; the format itself stores latitude first."""
    factor = 10**precision
    out = []
    prev_lat = prev_lon = 0
    for lon, lat in coordinates:
        ilat, ilon = round(lat * factor), round(lon * factor)
        out.append(_encode_value(ilat - prev_lat))
        out.append(_encode_value(ilon - prev_lon))
        prev_lat, prev_lon = ilat, ilon
    return "".join(out)


def decode(text: str, precision: int = 5) -> list[tuple[float, float]]:
    """Decode to (lon, lat) pairs; ValueError on malformed input."""
    factor = 10**precision
    values: list[int] = []
    shift = result = 0
    for char in text:
        byte = ord(char) - 63
        if byte < 0 or byte > 0x5F:
            raise ValueError(f"invalid polyline character {char!r}")
        result |= (byte & 0x1F) << shift
        shift += 5
        if byte < 0x20:
            values.append(~(result >> 1) if result & 1 else result >> 1)
            shift = result = 0
    if shift or len(values) % 2:
        raise ValueError("truncated polyline")
    coordinates = []
    lat = lon = 0
    for i in range(0, len(values), 2):
        lat += values[i]
        lon += values[i + 1]
        coordinates.append((lon / factor, lat / factor))
    return coordinates
