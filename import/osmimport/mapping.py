"""Tag rules: which OSM objects become which Shortbread 1.1 layer rows, with kind and zoom."""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol


class Tags(Protocol):
    """Read access to an object's tags (an osmium TagList or a plain dict)."""

    def get(self, key: str, default: Any = None, /) -> Any:
        """The value of ``key`` or ``default``."""

    def __contains__(self, key: str, /) -> bool:
        """Whether ``key`` is set."""


class Feature(NamedTuple):
    """One row for a layer: the first zoom it shows at, its draw order and its attributes."""

    layer: str
    minzoom: int
    sort_key: float | None
    attrs: dict[str, Any]


TUNNEL_VALUES = frozenset({"yes", "building_passage"})
BRIDGE_VALUES = frozenset(
    {"yes", "viaduct", "boardwalk", "cantilever", "covered", "low_water_crossing", "movable",
     "trestle"}
)  # fmt: skip

#: (key, value) -> (kind, minzoom) for polygon layers.
WATER_POLYGONS: dict[tuple[str, str], tuple[str, int]] = {
    ("natural", "glacier"): ("glacier", 4),
    ("natural", "water"): ("water", 4),
    ("waterway", "riverbank"): ("river", 4),
    ("landuse", "reservoir"): ("reservoir", 4),
    ("landuse", "basin"): ("basin", 4),
    ("waterway", "dock"): ("dock", 10),
    ("waterway", "canal"): ("canal", 10),
}
#: waterway=* -> (kind, minzoom); rivers and canals also need a long enough line (SQL).
WATER_LINES: dict[str, tuple[str, int]] = {
    "canal": ("canal", 9),
    "river": ("river", 9),
    "stream": ("stream", 14),
    "ditch": ("ditch", 14),
}
WATER_LINES_LABELS_MINZOOM = {"canal": 12, "river": 12, "stream": 14, "ditch": 14}
PIER_KINDS = frozenset({"pier", "breakwater", "groyne"})
DAM_KIND = "dam"
BRIDGE_KIND = "bridge"
FERRY_KIND = "ferry"
JUNCTION_KIND = "motorway_junction"

LAND: dict[tuple[str, str], tuple[str, int]] = {
    ("landuse", "forest"): ("forest", 7),
    ("natural", "wood"): ("forest", 7),
    **{("landuse", v): (v, 11) for v in (
        "grass", "meadow", "orchard", "vineyard", "allotments", "village_green",
        "recreation_ground", "greenhouse_horticulture", "plant_nursery", "quarry")},
    ("landuse", "cemetery"): ("cemetery", 13),
    ("amenity", "grave_yard"): ("grave_yard", 13),
    ("natural", "sand"): ("sand", 10),
    ("natural", "beach"): ("beach", 10),
    **{("natural", v): (v, 11) for v in (
        "heath", "scrub", "grassland", "bare_rock", "scree", "shingle")},
    **{("wetland", v): (v, 11) for v in ("swamp", "bog", "string_bog", "wet_meadow", "marsh")},
    **{("leisure", v): (v, 11) for v in (
        "golf_course", "park", "garden", "playground", "miniature_golf")},
    **{("landuse", v): (v, 10) for v in (
        "residential", "industrial", "commercial", "garages", "retail", "railway", "landfill",
        "brownfield", "greenfield", "farmyard", "farmland")},
}  # fmt: skip

SITES: dict[tuple[str, str], str] = {
    ("military", "danger_area"): "danger_area",
    ("leisure", "sports_centre"): "sports_centre",
    ("amenity", "university"): "university",
    ("amenity", "college"): "college",
    ("amenity", "school"): "school",
    ("amenity", "hospital"): "hospital",
    ("amenity", "prison"): "prison",
    ("amenity", "parking"): "parking",
    ("amenity", "bicycle_parking"): "bicycle_parking",
    ("landuse", "construction"): "construction",
}

#: highway/railway/aeroway value -> (kind, minzoom, importance for the sort order).
STREETS: dict[tuple[str, str], tuple[str, int, int]] = {
    ("highway", "motorway"): ("motorway", 5, 30),
    ("highway", "trunk"): ("trunk", 6, 29),
    ("highway", "primary"): ("primary", 8, 28),
    ("highway", "secondary"): ("secondary", 9, 27),
    ("highway", "tertiary"): ("tertiary", 10, 26),
    ("highway", "unclassified"): ("unclassified", 12, 25),
    ("highway", "residential"): ("residential", 12, 24),
    ("highway", "busway"): ("busway", 12, 23),
    ("highway", "bus_guideway"): ("bus_guideway", 12, 23),
    ("highway", "living_street"): ("living_street", 13, 22),
    ("highway", "service"): ("service", 13, 21),
    ("highway", "pedestrian"): ("pedestrian", 13, 20),
    ("highway", "track"): ("track", 13, 19),
    ("highway", "footway"): ("footway", 13, 18),
    ("highway", "steps"): ("steps", 13, 17),
    ("highway", "path"): ("path", 13, 17),
    ("highway", "cycleway"): ("cycleway", 13, 18),
    ("aeroway", "runway"): ("runway", 11, 16),
    ("aeroway", "taxiway"): ("taxiway", 13, 15),
    ("railway", "rail"): ("rail", 8, 31),
    ("railway", "narrow_gauge"): ("narrow_gauge", 8, 31),
    ("railway", "tram"): ("tram", 10, 31),
    ("railway", "light_rail"): ("light_rail", 10, 31),
    ("railway", "funicular"): ("funicular", 10, 31),
    ("railway", "subway"): ("subway", 10, 31),
    ("railway", "monorail"): ("monorail", 10, 31),
}
LINK_BASES = frozenset({"motorway", "trunk", "primary", "secondary", "tertiary"})

STREET_LABELS_MINZOOM: dict[str, int] = {
    "motorway": 10, "motorway_link": 13, "trunk": 12, "trunk_link": 13, "primary": 12,
    "primary_link": 13, "secondary": 13, "secondary_link": 13, "tertiary": 13,
    "tertiary_link": 14, "unclassified": 14, "residential": 14, "living_street": 14,
    "busway": 14, "bus_guideway": 14, "service": 14, "pedestrian": 14, "track": 14,
    "footway": 14, "steps": 14, "path": 14, "cycleway": 14, "runway": 11, "taxiway": 13,
    "rail": 10, "narrow_gauge": 10, "tram": 10, "light_rail": 10, "funicular": 10,
    "subway": 10, "monorail": 10,
}  # fmt: skip

STREET_POLYGONS: dict[str, int] = {"pedestrian": 14, "service": 14, "runway": 11, "taxiway": 13}

AERIALWAYS: dict[str, str] = {
    "cable_car": "cable_car", "gondola": "gondola", "goods": "goods", "chair_lift": "chair_lift",
    "drag_lift": "drag_lift", "t-bar": "t-bar", "j-bar": "j-bar", "platter": "platter",
    "rope_tow": "rope-tow",
}  # fmt: skip

#: place=* -> (minzoom, default population).
PLACES: dict[str, tuple[int, int]] = {
    "city": (6, 100_000), "town": (7, 5_000), "village": (10, 100), "hamlet": (10, 50),
    "suburb": (10, 1_000), "quarter": (10, 500), "neighbourhood": (10, 100),
    "isolated_dwelling": (10, 5), "farm": (10, 5), "island": (10, 0), "locality": (10, 0),
}  # fmt: skip
CAPITAL_PLACES = frozenset({"city", "town", "village", "hamlet"})
#: capital=* -> the kind of a capital place (and its minzoom, 4).
CAPITAL_KINDS: dict[str, str] = {"yes": "capital", "4": "state_capital"}

PUBLIC_TRANSPORT: dict[tuple[str, str], tuple[str, int]] = {
    ("aeroway", "aerodrome"): ("aerodrome", 11),
    ("aeroway", "helipad"): ("helipad", 13),
    ("railway", "station"): ("station", 13),
    ("railway", "halt"): ("halt", 13),
    ("railway", "tram_stop"): ("tram_stop", 14),
    ("amenity", "bus_station"): ("bus_station", 13),
    ("highway", "bus_stop"): ("bus_stop", 14),
    ("amenity", "ferry_terminal"): ("ferry_terminal", 12),
    ("aerialway", "station"): ("aerialway_station", 13),
}

#: The POI values of Shortbread 1.1, by key.
SHORTBREAD_POIS: dict[str, frozenset[str]] = {
    "amenity": frozenset({
        "arts_centre", "atm", "bank", "bar", "bench", "bicycle_rental", "biergarten", "cafe",
        "car_rental", "car_sharing", "car_wash", "cinema", "clinic", "college",
        "community_centre", "courthouse", "dentist", "doctors", "dog_park", "drinking_water",
        "embassy", "fast_food", "fire_station", "food_court", "fountain", "fuel", "grave_yard",
        "hospital", "hunting_stand", "library", "marketplace", "nightclub", "nursing_home",
        "pharmacy", "place_of_worship", "playground", "police", "post_box", "post_office",
        "prison", "pub", "public_building", "recycling", "restaurant", "school", "shelter",
        "telephone", "theatre", "toilets", "townhall", "university", "vending_machine",
        "veterinary", "waste_basket"}),
    "emergency": frozenset({"defibrillator", "fire_hydrant", "phone"}),
    "highway": frozenset({"emergency_access_point"}),
    "historic": frozenset({
        "archaeological_site", "battlefield", "castle", "fort", "memorial", "monument",
        "ruins", "wayside_cross", "wayside_shrine"}),
    "leisure": frozenset({
        "dog_park", "golf_course", "ice_rink", "pitch", "playground", "sports_centre", "stadium",
        "swimming_pool", "water_park"}),
    "man_made": frozenset({
        "lighthouse", "surveillance", "tower", "wastewater_plant", "water_well", "water_works",
        "watermill", "windmill"}),
    "office": frozenset({"diplomatic"}),
    "shop": frozenset({
        "alcohol", "bakery", "beauty", "beverages", "bicycle", "books", "butcher", "car",
        "chemist", "clothes", "computer", "convenience", "department_store", "doityourself",
        "dry_cleaning", "florist", "furniture", "garden_centre", "general", "gift",
        "greengrocer", "hairdresser", "hardware", "jewelry", "kiosk", "laundry", "mall",
        "mobile_phone", "newsagent", "optician", "outdoor", "shoes", "sports", "stationery",
        "supermarket", "toys", "travel_agency", "video"}),
    "tourism": frozenset({
        "artwork", "alpine_hut", "bed_and_breakfast", "camp_site", "caravan_site", "chalet",
        "guest_house", "hostel", "hotel", "information", "motel", "picnic_site", "theme_park",
        "viewpoint", "zoo"}),
}  # fmt: skip
#: POI values beyond Shortbread 1.1 that the town plans' facilities index and the styles' icons
#: ask for (schools for the youngest, museums, attractions, charging stations).
POI_EXTENSIONS: dict[str, frozenset[str]] = {
    "amenity": frozenset({"kindergarten", "charging_station"}),
    "tourism": frozenset({"museum", "attraction"}),
}
#: key -> the values that make a POI of it.
POIS: dict[str, frozenset[str]] = {
    key: values | POI_EXTENSIONS.get(key, frozenset()) for key, values in SHORTBREAD_POIS.items()
}

#: Extra string attributes: column -> (key, values of that key that select it).
POI_EXTRA_TEXT: dict[str, tuple[str, frozenset[str]]] = {
    "cuisine": ("amenity", frozenset({"restaurant", "fast_food", "pub", "bar", "cafe"})),
    "sport": ("leisure", frozenset({"pitch", "sports_centre"})),
    "vending": ("amenity", frozenset({"vending_machine"})),
    "information": ("tourism", frozenset({"information"})),
    "tower:type": ("man_made", frozenset({"tower"})),
    "religion": ("amenity", frozenset({"place_of_worship"})),
    "denomination": ("amenity", frozenset({"place_of_worship"})),
}
POI_EXTRA_BOOL: dict[str, tuple[str, str]] = {
    "recycling:glass_bottles": ("amenity", "recycling"),
    "recycling:paper": ("amenity", "recycling"),
    "recycling:clothes": ("amenity", "recycling"),
    "recycling:scrap_metal": ("amenity", "recycling"),
    "atm": ("amenity", "bank"),
}

#: Boundaries: admin_level -> minzoom of the line.
BOUNDARY_LEVELS: dict[int, int] = {2: 0, 4: 7}


def names(tags: Tags) -> dict[str, Any]:
    """The four label name columns."""
    return {
        "name": tags.get("name"),
        "name_fr": tags.get("name:fr"),
        "name_de": tags.get("name:de"),
        "name_en": tags.get("name:en"),
    }


def is_tunnel(tags: Tags) -> bool:
    """Shortbread's ``tunnel`` flag."""
    return tags.get("tunnel") in TUNNEL_VALUES or tags.get("covered") == "yes"


def is_bridge(tags: Tags) -> bool:
    """Shortbread's ``bridge`` flag."""
    return tags.get("bridge") in BRIDGE_VALUES


def layer_number(tags: Tags) -> int:
    """The OSM ``layer`` tag as an integer (0 when absent or not a number)."""
    value = tags.get("layer")
    if value is None:
        return 0
    try:
        return max(-10, min(10, int(value)))
    except ValueError:
        return 0


def parse_int(value: str | None) -> int | None:
    """A tag value as an integer, tolerating spaces and thousands separators."""
    if not value:
        return None
    cleaned = value.replace(" ", "").replace(",", "").replace(".", "").replace("'", "")
    try:
        return int(cleaned)
    except ValueError:
        return None


#: The keys of each lookup table, in the order they first appear in it (their priority).
_LOOKUP_KEYS: dict[int, tuple[str, ...]] = {}


def _lookup(table: dict[tuple[str, str], Any], tags: Tags) -> Any:
    keys = _LOOKUP_KEYS.get(id(table))
    if keys is None:
        keys = _LOOKUP_KEYS[id(table)] = tuple(dict.fromkeys(k for k, _ in table))
    for key in keys:
        value = tags.get(key)
        if value is not None and (key, value) in table:
            return table[(key, value)]
    return None


def _street_kind(tags: Tags) -> tuple[str, int, int, bool] | None:
    """(kind, minzoom, importance, link) of a street line, or None."""
    highway = tags.get("highway")
    if highway is not None:
        link = False
        base = highway
        if highway.endswith("_link") and highway[:-5] in LINK_BASES:
            base, link = highway[:-5], True
        found = STREETS.get(("highway", base))
        if found:
            return found[0], found[1], found[2] - (1 if link else 0), link
    for key in ("railway", "aeroway"):
        value = tags.get(key)
        if value is not None and (key, value) in STREETS:
            kind, minzoom, importance = STREETS[(key, value)]
            if key == "railway" and kind in ("rail", "narrow_gauge") and "service" in tags:
                minzoom = 10
            return kind, minzoom, importance, False
    return None


def _street_sort_key(tags: Tags, importance: int) -> float:
    # Ascending: lower layers first, tunnels before bridges, important roads first.
    offset = -50 if is_tunnel(tags) else 50 if is_bridge(tags) else 0
    return float(layer_number(tags) * 200 + offset - importance)


def _street_label(tags: Tags, kind: str, tunnel: bool) -> Feature | None:
    name = tags.get("name")
    ref = tags.get("ref")
    if name is None and ref is None:
        return None
    minzoom = STREET_LABELS_MINZOOM.get(kind)
    if minzoom is None:
        return None
    ref_rows = ref_cols = None
    if ref is not None:
        parts = [part.strip() for part in ref.split(";")]
        ref = "\n".join(parts)
        ref_rows, ref_cols = len(parts), max(len(part) for part in parts)
    attrs = {"kind": kind, "ref": ref, "ref_rows": ref_rows, "ref_cols": ref_cols}
    attrs.update(names(tags))
    attrs["tunnel"] = tunnel
    return Feature("street_labels", minzoom, None, attrs)


def _streets(tags: Tags) -> list[Feature]:
    found = _street_kind(tags)
    if found is None:
        return []
    kind, minzoom, importance, link = found
    rail = "railway" in tags and ("railway", tags.get("railway")) in STREETS
    tunnel, bridge = is_tunnel(tags), is_bridge(tags)
    oneway = tags.get("oneway")
    attrs = {
        "kind": kind,
        "link": link,
        "rail": rail,
        "tunnel": tunnel,
        "bridge": bridge,
        "oneway": (oneway in ("yes", "1", "true", "-1")) and not rail,
        "oneway_reverse": oneway == "-1" and not rail,
        "tracktype": tags.get("tracktype"),
        "surface": tags.get("surface", ""),
        "service": tags.get("service"),
        "bicycle": tags.get("bicycle", ""),
        "horse": tags.get("horse", ""),
    }
    features = [Feature("streets", minzoom, _street_sort_key(tags, importance), attrs)]
    label_kind = tags.get("highway") if "highway" in tags and not rail else kind
    label = _street_label(tags, label_kind if label_kind else kind, tunnel)
    if label is not None:
        features.append(label)
    return features


def _water_lines(tags: Tags) -> list[Feature]:
    found = WATER_LINES.get(tags.get("waterway", ""))
    if found is None:
        return []
    kind, minzoom = found
    tunnel, bridge = is_tunnel(tags), is_bridge(tags)
    attrs = {"kind": kind, "tunnel": tunnel, "bridge": bridge}
    features = [Feature("water_lines", minzoom, float(layer_number(tags)), attrs)]
    if tags.get("name") is not None:
        label = {"kind": kind, **names(tags), "tunnel": tunnel, "bridge": bridge}
        features.append(
            Feature(
                "water_lines_labels",
                WATER_LINES_LABELS_MINZOOM[kind],
                float(layer_number(tags)),
                label,
            )
        )
    return features


def line_features(tags: Tags, *, closed: bool) -> list[Feature]:
    """Rows for a way drawn as a line (closed ways too, unless the tag makes them areas)."""
    features: list[Feature] = []
    area_yes = tags.get("area") == "yes"
    if not area_yes:
        features.extend(_streets(tags))
        features.extend(_water_lines(tags))
        aerialway = AERIALWAYS.get(tags.get("aerialway", ""))
        if aerialway is not None:
            features.append(Feature("aerialways", 12, None, {"kind": aerialway}))
        if tags.get("route") == "ferry":
            minzoom = 12 if tags.get("motor_vehicle") == "no" else 10
            features.append(Feature("ferries", minzoom, None, {"kind": FERRY_KIND, **names(tags)}))
    if not closed:
        if tags.get("waterway") == "dam":
            features.append(Feature("dam_lines", 12, None, {"kind": DAM_KIND}))
        man_made = tags.get("man_made")
        if man_made in PIER_KINDS:
            features.append(Feature("pier_lines", 12, None, {"kind": man_made}))
    return features


def _water_polygon(tags: Tags, *, from_way: bool) -> tuple[str, int] | None:
    natural = tags.get("natural")
    if natural == "water":
        return ("river", 4) if tags.get("water") == "river" else ("water", 4)
    found: tuple[str, int] | None = _lookup(WATER_POLYGONS, tags)
    if found is not None and found[0] == "canal" and from_way and tags.get("area") != "yes":
        return None
    return found


def area_features(tags: Tags, *, from_way: bool) -> list[Feature]:
    """Rows for an area (a closed way or a multipolygon relation)."""
    features: list[Feature] = []
    water = _water_polygon(tags, from_way=from_way)
    if water is not None:
        kind, minzoom = water
        features.append(Feature("water_polygons", minzoom, None, {"kind": kind}))
        if tags.get("name") is not None:
            features.append(
                Feature("water_polygons_labels", minzoom, None, {"kind": kind, **names(tags)})
            )
    if tags.get("waterway") == "dam":
        features.append(Feature("dam_polygons", 12, None, {"kind": DAM_KIND}))
    man_made = tags.get("man_made")
    if man_made in PIER_KINDS:
        features.append(Feature("pier_polygons", 12, None, {"kind": man_made}))
    elif man_made == "bridge":
        features.append(Feature("bridges", 12, None, {"kind": BRIDGE_KIND}))
    land = _lookup(LAND, tags)
    if land is not None:
        features.append(Feature("land", land[1], None, {"kind": land[0]}))
    site = _lookup(SITES, tags)
    if site is not None:
        features.append(Feature("sites", 14, None, {"kind": site}))
    building = tags.get("building")
    if building is not None and building != "no":
        features.append(Feature("buildings", 14, None, {"dummy": 1}))
    street_kind = None
    highway = tags.get("highway")
    if highway in ("pedestrian", "service") and (tags.get("area") == "yes" or not from_way):
        street_kind = highway
    elif tags.get("area:aeroway") in ("runway", "taxiway"):
        street_kind = tags.get("area:aeroway")
    elif tags.get("aeroway") in ("runway", "taxiway") and tags.get("area") == "yes":
        street_kind = tags.get("aeroway")
    if street_kind is not None:
        attrs = {
            "kind": street_kind,
            "bridge": is_bridge(tags),
            "rail": False,
            "service": tags.get("service", ""),
            "surface": tags.get("surface", ""),
            "tunnel": is_tunnel(tags),
        }
        importance = STREETS.get(("highway", street_kind), STREETS.get(("aeroway", street_kind)))
        sort_key = _street_sort_key(tags, importance[2] if importance else 0)
        features.append(Feature("street_polygons", STREET_POLYGONS[street_kind], sort_key, attrs))
        if tags.get("name") is not None:
            features.append(
                Feature("streets_polygons_labels", 14, None, {"kind": street_kind, **names(tags)})
            )
    features.extend(point_features(tags))
    return features


def _place(tags: Tags) -> Feature | None:
    place = tags.get("place")
    found = PLACES.get(place or "")
    if found is None or tags.get("name") is None:
        return None
    minzoom, population = found
    kind: str = place
    capital = tags.get("capital")
    if place in CAPITAL_PLACES and capital in CAPITAL_KINDS:
        kind, minzoom = CAPITAL_KINDS[capital], 4
    value = parse_int(tags.get("population"))
    if value is not None:
        population = value
    attrs = {"kind": kind, **names(tags), "population": population}
    return Feature("place_labels", minzoom, float(-population), attrs)


def _poi(tags: Tags) -> Feature | None:
    attrs: dict[str, Any] = {}
    for key, values in POIS.items():
        value = tags.get(key)
        if value is not None and value in values:
            attrs[key] = value
    if not attrs:
        return None
    attrs.update(names(tags))
    attrs["housename"] = tags.get("addr:housename")
    attrs["housenumber"] = tags.get("addr:housenumber")
    for column, (key, values) in POI_EXTRA_TEXT.items():
        if attrs.get(key) in values:
            attrs[column] = tags.get(column)
    for column, (key, value) in POI_EXTRA_BOOL.items():
        if attrs.get(key) == value:
            attrs[column] = tags.get(column) == "yes"
    return Feature("pois", 14, None, attrs)


def point_features(tags: Tags) -> list[Feature]:
    """Point rows of a node, or of an area represented by a point (POIs, stops, addresses)."""
    features: list[Feature] = []
    place = _place(tags)
    if place is not None:
        features.append(place)
    transport = _lookup(PUBLIC_TRANSPORT, tags)
    if transport is not None:
        attrs = {"kind": transport[0], **names(tags), "iata": tags.get("iata")}
        features.append(Feature("public_transport", transport[1], None, attrs))
    poi = _poi(tags)
    if poi is not None:
        features.append(poi)
    elif "addr:housenumber" in tags or "addr:housename" in tags:
        attrs = {
            "housename": tags.get("addr:housename"),
            "housenumber": tags.get("addr:housenumber"),
        }
        features.append(Feature("addresses", 14, None, attrs))
    return features


def node_features(tags: Tags) -> list[Feature]:
    """Rows for a tagged node."""
    features = point_features(tags)
    if tags.get("highway") == "motorway_junction":
        attrs = {"kind": JUNCTION_KIND, "ref": tags.get("ref"), **names(tags)}
        features.append(Feature("street_labels_points", 12, None, attrs))
    return features


#: Every key ``node_features`` can make a row from: a node with none of them has no row.
NODE_KEYS: frozenset[str] = frozenset(
    {
        "place",
        *(key for key, _ in PUBLIC_TRANSPORT),
        *POIS,
        "addr:housenumber",
        "addr:housename",
        "highway",
    }
)


#: Every key ``line_features`` can make a row from (``route`` also marks ferries as roads).
LINE_KEYS: frozenset[str] = frozenset(
    {
        *(key for key, _ in STREETS),
        "waterway",
        "aerialway",
        "route",
        "man_made",
    }
)


def admin_level(tags: Tags) -> int | None:
    """The admin_level of a boundary=administrative object, else None."""
    if tags.get("boundary") != "administrative":
        return None
    return parse_int(tags.get("admin_level"))
