"""The one place where OSM ``maxspeed`` values and the legal default speeds are interpreted."""

from __future__ import annotations

import re

MPH = 1.609344

#: Implicit limits by ``<country>:<type>`` (km/h); ``None`` means no general limit.
#: France: Code de la route R413-2 (80 rural since 2018, 110 on dual carriageways, 130 motorways).
COUNTRY_LIMITS: dict[str, float | None] = {
    "FR:urban": 50,
    "FR:rural": 80,
    "FR:trunk": 110,
    "FR:expressway": 110,
    "FR:motorway": 130,
    "FR:zone30": 30,
    "FR:zone20": 20,
    "FR:living_street": 20,
    "FR:walk": 6,
    "DE:urban": 50,
    "DE:rural": 100,
    "DE:trunk": None,
    "DE:motorway": None,
    "DE:living_street": 7,
    "DE:bicycle_road": 30,
    "DE:zone30": 30,
    "DE:zone20": 20,
    "DE:walk": 7,
    "CH:urban": 50,
    "CH:rural": 80,
    "CH:trunk": 100,
    "CH:motorway": 120,
    "CH:zone30": 30,
    "CH:zone20": 20,
    "CH:living_street": 20,
    "AT:urban": 50,
    "AT:rural": 100,
    "AT:trunk": 100,
    "AT:motorway": 130,
    "AT:zone30": 30,
    "AT:living_street": 5,
    "BE:urban": 50,
    "BE-WAL:rural": 90,
    "BE-VLG:rural": 70,
    "BE:motorway": 120,
    "BE:zone30": 30,
    "LU:urban": 50,
    "LU:rural": 90,
    "LU:motorway": 130,
    "LI:urban": 50,
    "LI:rural": 80,
    "LI:motorway": 120,
}

#: Speed used where the law sets no limit (German Autobahn, ``maxspeed=none``).
UNLIMITED_SPEED = 130.0

_NUMBER = re.compile(r"^\s*(\d+(?:[.,]\d+)?)\s*(km/h|kmh|kph|mph|knots)?\s*$")
_ZONE = re.compile(r"^([A-Z]{2}(?:-[A-Z]+)?):zone:?(\d+)$")


def parse_maxspeed(value: str | None) -> float | None:
    """The limit in km/h a ``maxspeed`` value states, or ``None`` when it states none we can use.

    Understands plain numbers, ``mph``/``knots`` units, ``CC:type`` implicit values (``FR:urban``,
    ``FR:zone30``, ``DE:zone:30``, ``CH:motorway``...), ``walk`` and ``none``. A list
    (``50;30``) gives its lowest value. ``signals``/``variable`` and unknown values give ``None``.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if ";" in text:
        parts = [parse_maxspeed(part) for part in text.split(";")]
        numbers = [part for part in parts if part is not None]
        return min(numbers) if numbers else None
    match = _NUMBER.match(text)
    if match:
        number = float(match.group(1).replace(",", "."))
        unit = match.group(2)
        if unit == "mph":
            number *= MPH
        elif unit == "knots":
            number *= 1.852
        return number if number > 0 else None
    if text == "none":
        return UNLIMITED_SPEED
    if text == "walk":
        return 6.0
    if text in COUNTRY_LIMITS:
        limit = COUNTRY_LIMITS[text]
        return UNLIMITED_SPEED if limit is None else float(limit)
    zone = _ZONE.match(text)
    if zone:
        return float(zone.group(2))
    return None


def area_type(tags: dict[str, str]) -> str | None:
    """``"urban"``/``"rural"`` when a tag says so (``source:maxspeed``, zones), else None."""
    for key in ("maxspeed:type", "source:maxspeed", "zone:maxspeed", "zone:traffic", "maxspeed"):
        value = tags.get(key, "")
        if value.endswith(":urban") or value == "urban":
            return "urban"
        if value.endswith(":rural") or value == "rural":
            return "rural"
    return None


#: Classes taken as urban unless tagged otherwise: streets that exist to serve buildings.
URBAN_CLASSES = frozenset({"residential", "living_street", "service", "pedestrian"})


def is_urban(tags: dict[str, str]) -> bool:
    """Whether the French urban default (50) applies rather than the rural one (80).

    The tags decide first (``source:maxspeed=FR:urban``, ``zone:traffic=DE:rural``...). Without
    them, residential, living and service streets are urban, and any other road is urban only
    where it has sidewalks or street lighting (``sidewalk=*``, ``lit=yes``), which in the region
    mark roads through a built-up area; everything else is rural.
    """
    explicit = area_type(tags)
    if explicit is not None:
        return explicit == "urban"
    if tags.get("highway", "").removesuffix("_link") in URBAN_CLASSES:
        return True
    sidewalk = tags.get("sidewalk") or tags.get("sidewalk:both") or ""
    if sidewalk and sidewalk not in {"no", "none", "separate"}:
        return True
    return tags.get("lit") == "yes"


def default_car_speed(tags: dict[str, str]) -> float:
    """The legal limit (km/h) on a way with no usable ``maxspeed``, by French rules.

    130 on motorways, 110 on dual carriageways (trunks and one-way trunk/primary carriageways
    outside towns), 50 in built-up areas (see :func:`is_urban`), 80 elsewhere; living streets
    20, service roads and tracks lower, as a driver would actually go.
    """
    highway = tags.get("highway", "")
    if highway in {"motorway", "motorway_link"}:
        return 130.0 if highway == "motorway" else 90.0
    if highway == "living_street":
        return 20.0
    if highway == "service":
        return 20.0 if tags.get("service") in {"parking_aisle", "drive-through"} else 30.0
    if highway == "track":
        return 20.0
    urban = is_urban(tags)
    if highway in {"trunk", "trunk_link"}:
        return 50.0 if urban else 110.0
    if urban:
        return 50.0
    dual = tags.get("oneway") in {"yes", "1", "true", "-1"} and highway in {"primary", "trunk"}
    return 110.0 if dual else 80.0
