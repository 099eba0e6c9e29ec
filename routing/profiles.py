"""Car, bike and foot profiles: which ways and directions each may use, at what speed."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from routing.errors import OsrmError
from routing.maxspeed import default_car_speed, parse_maxspeed

#: Access values that close a way (or node) to a mode.
BLOCKING_ACCESS = frozenset(
    {
        "no",
        "private",
        "agricultural",
        "forestry",
        "emergency",
        "psv",
        "bus",
        "delivery",
        "customers",
        "restricted",
        "military",
        "use_sidepath",
        "discouraged_no",
    }
)
#: Access values that open a way to a mode whatever its class.
OPEN_ACCESS = frozenset({"yes", "permissive", "designated", "official", "destination"})
#: Access values that let a car start or end on a road but not pass through it (car.lua's
#: ``restricted_access_tag_list``).
CAR_RESTRICTED_ACCESS = frozenset(
    {"destination", "private", "delivery", "customers", "permit", "residents", "unknown"}
)


@dataclass(frozen=True)
class WayRule:
    """What a profile may do on a way: directions and speeds (km/h), or a ferry's duration."""

    forward: bool
    backward: bool
    speed_forward: float
    speed_backward: float
    mode: str
    #: Seconds a ferry takes for the whole way (``duration`` tag), else None.
    duration: float | None = None
    #: Open only to reach places on it (``destination`` access): a route may start or end
    #: there, but entering it from an open road costs :data:`MAX_TURN_SECONDS` of weight.
    restricted: bool = False
    #: False where a route may not start or end (car.lua: ``highway=service`` with
    #: ``access=private``): coordinates are never snapped onto such a way.
    startpoint: bool = True


@dataclass(frozen=True)
class TurnCosts:
    """Seconds a turn costs, as OSRM's profiles charge them (``process_turn``).

    Angles are the deviation from straight on in degrees, -180 to 180, positive to the right.
    Like OSRM, which merges the two roads at a node with no other road into one, only nodes
    where more than two roads meet, a change of travel mode or a U-turn cost anything."""

    #: "sigmoid" (car.lua), "quadratic" (bicycle.lua) or "none" (foot.lua: U-turns only).
    shape: str
    #: Seconds of the sharpest turn (sigmoid), or of a right angle (quadratic).
    turn_penalty: float = 0.0
    #: Above 1, right turns cost less than left ones (right-hand traffic).
    turn_bias: float = 1.0
    u_turn_penalty: float = 0.0
    #: Seconds at a node tagged ``highway=traffic_signals``.
    traffic_signal_penalty: float = 0.0

    def seconds(
        self,
        angle: NDArray[np.float64],
        roads: NDArray[np.int64],
        u_turn: NDArray[np.bool_],
        mode_change: NDArray[np.bool_],
    ) -> NDArray[np.float64]:
        """Seconds of each turn: its ``angle``, the ``roads`` meeting at its node, whether it
        turns back onto the road it came by and whether the travel mode changes."""
        angle = np.asarray(angle, dtype=np.float64)
        costly = (np.asarray(roads) > 2) | np.asarray(mode_change) | np.asarray(u_turn)
        bias = self.turn_bias
        if self.shape == "sigmoid":
            right = angle >= 0
            exponent = np.where(
                right,
                (13.0 / bias) * angle / 180.0 - 6.5 * bias,
                (13.0 * bias) * -angle / 180.0 - 6.5 / bias,
            )
            turn = self.turn_penalty / (1.0 + np.exp(-exponent))
        elif self.shape == "quadratic":
            normalized = angle / 90.0
            turn = normalized**2 * np.where(
                normalized >= 0, self.turn_penalty / bias, self.turn_penalty * bias
            )
        else:
            turn = np.zeros_like(angle)
        total = np.where(costly, turn, 0.0) + np.where(u_turn, self.u_turn_penalty, 0.0)
        result: NDArray[np.float64] = total
        return result


#: Weight (s) of a turn from an open road into a restricted one: OSRM's ``max_turn_weight``
#: (the largest 16-bit turn penalty, in tenths of a second), so that routes enter a restricted
#: area only when they start or end in it.
MAX_TURN_SECONDS = 3276.7


def _oneway(value: str | None) -> int | None:
    """1 forward only, -1 backward only, 0 both ways, None when the tag is absent or unknown."""
    if value is None:
        return None
    if value in {"yes", "1", "true"}:
        return 1
    if value in {"-1", "reverse"}:
        return -1
    if value in {"no", "0", "false"}:
        return 0
    return None


_DURATION_HMS = re.compile(r"^(\d+):(\d{1,2})(?::(\d{1,2}))?$")
_DURATION_ISO = re.compile(r"^P(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)$")


def parse_duration(value: str | None) -> float | None:
    """Seconds of an OSM ``duration`` (``HH:MM``, ``HH:MM:SS``, minutes, ISO ``PT1H30M``)."""
    if not value:
        return None
    text = value.strip()
    match = _DURATION_HMS.match(text)
    if match:
        hours, minutes, seconds = (int(group or 0) for group in match.groups())
        return float(hours * 3600 + minutes * 60 + seconds)
    match = _DURATION_ISO.match(text)
    if match and any(match.groups()):
        hours, minutes, seconds = (int(group or 0) for group in match.groups())
        return float(hours * 3600 + minutes * 60 + seconds)
    try:
        minutes_float = float(text)
    except ValueError:
        return None
    return minutes_float * 60 if minutes_float > 0 else None


class Profile:
    """A travel mode; subclasses say which ways, directions and barriers apply to it."""

    name: str = ""
    #: OSRM's ``mode`` of a step on a road.
    mode: str = ""
    #: Access keys from the most specific to the most general.
    access_keys: tuple[str, ...] = ("access",)
    #: Keys whose ``restriction:<key>``/``except`` values concern this profile.
    restriction_modes: tuple[str, ...] = ()
    #: Speed on a ferry without ``duration`` (km/h).
    ferry_speed: float = 5.0
    #: What turns cost (OSRM's ``process_turn`` of the matching profile).
    turns: TurnCosts = TurnCosts("none")
    #: Access values that make a way restricted (see :attr:`WayRule.restricted`) rather than
    #: closed. OSRM's bicycle and foot profiles have none; the issue wants ``destination``
    #: honoured there too, so bike and foot restrict on ``destination`` only.
    restricted_access: frozenset[str] = frozenset({"destination"})
    #: Access values of a ``highway=service`` way no route starts or ends on (car.lua's
    #: ``service_access_tag_blacklist``).
    service_no_start: frozenset[str] = frozenset()

    def access(self, tags: dict[str, str]) -> str | None:
        """The access value of the most specific key present, or None; of a list
        (``destination;delivery``) the most permissive value, as OSRM's ``resolve_access``."""
        for key in self.access_keys:
            value = tags.get(key)
            if value is not None:
                parts = [part.strip() for part in value.split(";")]
                return max(parts, key=self._access_rank)
        return None

    def _access_rank(self, value: str) -> int:
        if value in OPEN_ACCESS and value not in self.restricted_access:
            return 3
        if value in self.restricted_access:
            return 2
        return 1 if value in BLOCKING_ACCESS else 0

    def way(self, tags: dict[str, str]) -> WayRule | None:
        """Directions and speeds on a way with ``tags``, or None when this mode cannot use it."""
        access = self.access(tags)
        restricted = access in self.restricted_access
        if access in BLOCKING_ACCESS and not restricted:
            return None
        if tags.get("route") == "ferry" and "highway" not in tags:
            return self._ferry(tags, access)
        highway = tags.get("highway")
        if highway is None or tags.get("area") == "yes" and highway != "pedestrian":
            return None
        speed = self.speed(highway, tags, explicit=access in OPEN_ACCESS)
        if speed is None:
            return None
        oneway = self.oneway(tags)
        if oneway is None:
            return None
        forward_speed, backward_speed = speed, speed
        if self.name == "car":
            forward_speed = self._directional(tags, "forward", speed)
            backward_speed = self._directional(tags, "backward", speed)
        return WayRule(
            forward=oneway >= 0,
            backward=oneway <= 0,
            speed_forward=forward_speed,
            speed_backward=backward_speed,
            mode=self.mode,
            restricted=restricted,
            startpoint=not (highway == "service" and access in self.service_no_start),
        )

    def _directional(self, tags: dict[str, str], direction: str, speed: float) -> float:
        limit = parse_maxspeed(tags.get(f"maxspeed:{direction}"))
        if limit is None:
            return speed
        return self.speed(tags.get("highway", ""), {**tags, "maxspeed": str(limit)}) or speed

    def _ferry(self, tags: dict[str, str], access: str | None) -> WayRule | None:
        duration = parse_duration(tags.get("duration"))
        return WayRule(
            forward=True,
            backward=True,
            speed_forward=self.ferry_speed,
            speed_backward=self.ferry_speed,
            mode="ferry",
            duration=duration,
        )

    def speed(self, highway: str, tags: dict[str, str], *, explicit: bool = False) -> float | None:
        """Travel speed (km/h) on a ``highway`` class, None when the class is closed to the mode."""
        raise NotImplementedError

    def oneway(self, tags: dict[str, str]) -> int | None:
        """1, -1 or 0 (see :func:`_oneway`); None when the way cannot be used at all."""
        raise NotImplementedError

    def barrier_blocks(self, tags: dict[str, str]) -> bool:
        """Whether a node with ``tags`` (``barrier=*``, access tags) stops this mode."""
        access = self.access(tags)
        if access in BLOCKING_ACCESS:
            return True
        if access in OPEN_ACCESS:
            return False
        barrier = tags.get("barrier")
        return barrier is not None and barrier not in self.passable_barriers

    passable_barriers: frozenset[str] = frozenset()

    def restriction(self, tags: dict[str, str]) -> str | None:
        """The restriction value (``no_left_turn``, ``only_straight_on``...) binding this mode."""
        if not self.restriction_modes:
            return None
        excepted = {part.strip() for part in tags.get("except", "").split(";")}
        for mode in self.restriction_modes:
            value = tags.get(f"restriction:{mode}")
            if value:
                return value
        if excepted & set(self.restriction_modes):
            return None
        value = tags.get("restriction")
        if value and tags.get("type") in {"restriction", None}:
            return value
        return None


def _implied_oneway(tags: dict[str, str]) -> int:
    if tags.get("junction") in {"roundabout", "circular"}:
        return 1
    if tags.get("highway") in {"motorway", "motorway_link"}:
        return 1
    return 0


def _vehicle_oneway(tags: dict[str, str], keys: tuple[str, ...]) -> int | None:
    """The first of the oneway ``keys`` set; None (closed) on reversible or alternating roads;
    implied on motorways and roundabouts when none is set."""
    if tags.get("oneway") in {"reversible", "alternating"}:
        return None
    for key in keys:
        value = _oneway(tags.get(key))
        if value is not None:
            return value
    return _implied_oneway(tags)


class CarProfile(Profile):
    """Motor cars: motorcar > motor_vehicle > vehicle > access, French default limits."""

    name = "car"
    mode = "driving"
    access_keys = ("motorcar", "motor_vehicle", "vehicle", "access")
    restriction_modes = ("motorcar", "motor_vehicle", "vehicle")
    restricted_access = CAR_RESTRICTED_ACCESS
    service_no_start = frozenset({"private"})
    # car.lua: turn_penalty 7.5, turn_bias 1.075 (right-hand traffic), u_turn_penalty 20.
    turns = TurnCosts(
        "sigmoid",
        turn_penalty=7.5,
        turn_bias=1.075,
        u_turn_penalty=20.0,
        traffic_signal_penalty=2.0,
    )
    passable_barriers = frozenset(
        {
            "cattle_grid",
            "border_control",
            "toll_booth",
            "sally_port",
            "gate",
            "lift_gate",
            "no",
            "entrance",
            "height_restrictor",
            "arch",
            "kerb",
        }
    )
    #: Classes open to cars by default, with the speed a car actually keeps (km/h) there.
    CLASS_CAPS: dict[str, float] = {
        "motorway": 130,
        "motorway_link": 90,
        "trunk": 110,
        "trunk_link": 70,
        "primary": 100,
        "primary_link": 60,
        "secondary": 90,
        "secondary_link": 50,
        "tertiary": 80,
        "tertiary_link": 40,
        "unclassified": 50,
        "residential": 30,
        "living_street": 10,
        "service": 15,
        "road": 30,
    }
    #: Opened only by an explicit access tag (``motor_vehicle=yes``...).
    EXPLICIT_CLASSES: dict[str, float] = {"track": 10, "pedestrian": 10}
    #: Share of the legal limit a car keeps on average (OSRM's speed reduction).
    SPEED_FACTOR = 0.8

    def speed(self, highway: str, tags: dict[str, str], *, explicit: bool = False) -> float | None:
        """The legal limit (tag or default) times the speed factor, capped by the class."""
        cap = self.CLASS_CAPS.get(highway)
        if cap is None and explicit:
            cap = self.EXPLICIT_CLASSES.get(highway)
        if cap is None:
            return None
        limit = parse_maxspeed(tags.get("maxspeed"))
        if limit is None:
            limit = default_car_speed(tags)
        return max(5.0, min(cap, limit * self.SPEED_FACTOR))

    def oneway(self, tags: dict[str, str]) -> int | None:
        """``oneway`` (or its motor_vehicle/vehicle forms), implied on motorways and roundabouts."""
        keys = ("oneway:motorcar", "oneway:motor_vehicle", "oneway:vehicle", "oneway")
        return _vehicle_oneway(tags, keys)


class BikeProfile(Profile):
    """Bicycles: bicycle > vehicle > access, pushed at walking pace on footways."""

    name = "bike"
    mode = "cycling"
    access_keys = ("bicycle", "vehicle", "access")
    restriction_modes = ("bicycle", "vehicle")
    # bicycle.lua: turn_penalty 6, turn_bias 1.4, u_turn_penalty 20.
    turns = TurnCosts(
        "quadratic",
        turn_penalty=6.0,
        turn_bias=1.4,
        u_turn_penalty=20.0,
        traffic_signal_penalty=2.0,
    )
    passable_barriers = frozenset(
        {
            "bollard",
            "block",
            "border_control",
            "cattle_grid",
            "chain",
            "cycle_barrier",
            "entrance",
            "gate",
            "kerb",
            "kissing_gate",
            "lift_gate",
            "motorcycle_barrier",
            "no",
            "sally_port",
            "swing_gate",
            "toll_booth",
            "height_restrictor",
            "arch",
            "turnstile",
            "barrier_board",
            "bus_trap",
            "spikes",
        }
    )
    CLASS_SPEEDS: dict[str, float] = {
        "cycleway": 18,
        "primary": 16,
        "primary_link": 16,
        "secondary": 16,
        "secondary_link": 16,
        "tertiary": 16,
        "tertiary_link": 16,
        "unclassified": 15,
        "residential": 15,
        "living_street": 10,
        "service": 14,
        "road": 14,
        "track": 12,
        "path": 12,
        "trunk": 16,
        "trunk_link": 16,
        "bridleway": 8,
    }
    PUSHING_SPEED = 5.0
    PUSH_CLASSES = frozenset({"footway", "pedestrian", "platform", "corridor"})

    def speed(self, highway: str, tags: dict[str, str], *, explicit: bool = False) -> float | None:
        """A steady cycling speed by class; walking pace where the bike is pushed."""
        if tags.get("motorroad") == "yes" and not explicit:
            return None
        if highway in {"motorway", "motorway_link"} and not explicit:
            return None
        speed = self.CLASS_SPEEDS.get(highway)
        if highway in self.PUSH_CLASSES:
            return 14.0 if explicit else self.PUSHING_SPEED
        if tags.get("bicycle") == "dismount":
            return self.PUSHING_SPEED
        if speed is None and explicit:
            return 14.0
        return speed

    def oneway(self, tags: dict[str, str]) -> int | None:
        """``oneway:bicycle`` first; contraflow lanes (``cycleway=opposite*``) open both ways."""
        value = _oneway(tags.get("oneway:bicycle"))
        if value is not None:
            return value
        for key in ("cycleway", "cycleway:left", "cycleway:right", "cycleway:both"):
            if tags.get(key, "").startswith("opposite"):
                return 0
        if tags.get("cycleway:left:oneway") == "no" or tags.get("cycleway:right:oneway") == "no":
            return 0
        return _vehicle_oneway(tags, ("oneway:vehicle", "oneway"))


class FootProfile(Profile):
    """Pedestrians: foot > access; one-way only where ``oneway:foot`` says so."""

    name = "foot"
    mode = "walking"
    access_keys = ("foot", "access")
    restriction_modes = ()
    # foot.lua: no cost for the angle, 2 s for a U-turn.
    turns = TurnCosts("none", u_turn_penalty=2.0, traffic_signal_penalty=2.0)
    passable_barriers = BikeProfile.passable_barriers | {"debris", "log", "stile", "yes"}
    WALKING_SPEED = 5.0
    CLOSED_CLASSES = frozenset({"motorway", "motorway_link"})
    OPEN_CLASSES = frozenset(
        {
            "trunk",
            "trunk_link",
            "primary",
            "primary_link",
            "secondary",
            "secondary_link",
            "tertiary",
            "tertiary_link",
            "unclassified",
            "residential",
            "living_street",
            "service",
            "road",
            "track",
            "path",
            "footway",
            "pedestrian",
            "steps",
            "cycleway",
            "bridleway",
            "corridor",
            "platform",
            "elevator",
        }
    )

    def speed(self, highway: str, tags: dict[str, str], *, explicit: bool = False) -> float | None:
        """Walking pace on every class open to pedestrians."""
        if highway in self.CLOSED_CLASSES and not explicit:
            return None
        if tags.get("motorroad") == "yes" and not explicit:
            return None
        if highway in self.OPEN_CLASSES or explicit:
            return self.WALKING_SPEED
        return None

    def oneway(self, tags: dict[str, str]) -> int | None:
        """Only ``oneway:foot`` applies to pedestrians."""
        return _oneway(tags.get("oneway:foot")) or 0


PROFILES: dict[str, Profile] = {
    profile.name: profile for profile in (CarProfile(), BikeProfile(), FootProfile())
}

#: OSRM profile names in URLs and the profile they mean.
PROFILE_ALIASES: dict[str, str] = {
    "car": "car",
    "driving": "car",
    "bike": "bike",
    "bicycle": "bike",
    "cycling": "bike",
    "foot": "foot",
    "walking": "foot",
}


def profile_name(profile: str) -> str:
    """The profile an OSRM profile name stands for (an :class:`OsrmError` when none)."""
    name = PROFILE_ALIASES.get(profile)
    if name is None:
        raise OsrmError(
            "InvalidUrl",
            f"unknown profile {profile!r}: use one of {', '.join(sorted(PROFILE_ALIASES))}",
        )
    return name
