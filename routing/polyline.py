"""Google's encoded polyline format (OSRM ``polyline``/``polyline6``), in (lat, lon) order."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

from routing import kernels


def encode(
    coordinates: Iterable[tuple[float, float]] | NDArray[np.float64], precision: int = 5
) -> str:
    """Encode (lon, lat) pairs; the format itself stores latitude first."""
    points = np.asarray(coordinates, dtype=np.float64).reshape(-1, 2)
    return kernels.encode_polyline(points, precision)[0].tobytes().decode("ascii")


def _value(value: int) -> str:
    value = ~(value << 1) if value < 0 else value << 1
    chars = []
    while value >= 0x20:
        chars.append(chr((0x20 | (value & 0x1F)) + 63))
        value >>= 5
    chars.append(chr(value + 63))
    return "".join(chars)


def encode_ranges(
    coordinates: Iterable[tuple[float, float]] | NDArray[np.float64],
    ranges: list[tuple[int, int]],
    precision: int = 5,
) -> list[str]:
    """One polyline per ``(first, last)`` point range (inclusive) of a line, encoding the line
    once: a range is its first point in full, then the shared encoded deltas."""
    points = np.asarray(coordinates, dtype=np.float64).reshape(-1, 2)
    if not len(points):
        return ["" for _ in ranges]
    chars, sizes = kernels.encode_polyline(points, precision)
    text = chars.tobytes().decode("ascii")
    # Character offset where each point's (lat, lon) delta starts in ``text``.
    offsets = np.concatenate(([0], np.cumsum(sizes))).tolist()
    # np.rint, like the encoder: the same integers.
    scaled = np.rint(points[:, ::-1] * 10**precision).astype(np.int64)
    absolute = scaled.tolist()
    found = []
    for first, last in ranges:
        lat, lon = absolute[first]
        found.append(_value(lat) + _value(lon) + text[offsets[first + 1] : offsets[last + 1]])
    return found


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
