"""Tag interpretation: maxspeed, defaults, access, oneway, barriers, ferries."""

from __future__ import annotations

import pytest

from routing.maxspeed import default_car_speed, is_urban, parse_maxspeed
from routing.profiles import PROFILES, Profile, WayRule, parse_duration

car, bike, foot = PROFILES["car"], PROFILES["bike"], PROFILES["foot"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("50", 50.0),
        ("30 mph", 30 * 1.609344),
        ("FR:urban", 50.0),
        ("FR:rural", 80.0),
        ("FR:zone30", 30.0),
        ("FR:motorway", 130.0),
        ("DE:zone:30", 30.0),
        ("DE:rural", 100.0),
        ("CH:motorway", 120.0),
        ("AT:motorway", 130.0),
        ("50;30", 30.0),
        ("none", 130.0),
        ("signals", None),
        ("", None),
        ("fast", None),
    ],
)
def test_parse_maxspeed(value: str, expected: float | None) -> None:
    result = parse_maxspeed(value)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


def test_french_defaults() -> None:
    assert default_car_speed({"highway": "motorway"}) == 130
    assert default_car_speed({"highway": "trunk"}) == 110
    assert default_car_speed({"highway": "primary", "oneway": "yes"}) == 110
    assert default_car_speed({"highway": "secondary"}) == 80
    assert default_car_speed({"highway": "secondary", "sidewalk": "both"}) == 50
    assert default_car_speed({"highway": "residential"}) == 50
    assert default_car_speed({"highway": "tertiary", "source:maxspeed": "FR:urban"}) == 50
    assert not is_urban({"highway": "residential", "zone:traffic": "FR:rural"})


def _rule(profile: Profile, tags: dict[str, str]) -> WayRule:
    rule = profile.way(tags)
    assert rule is not None
    return rule


def test_access_hierarchy() -> None:
    assert car.way({"highway": "residential", "access": "no", "motorcar": "yes"}) is not None
    # car.lua: private, destination, delivery... let cars start or end there, not pass through.
    for value in ("private", "destination", "delivery", "customers"):
        rule = _rule(car, {"highway": "residential", "motor_vehicle": value})
        assert rule.restricted and rule.startpoint
    assert not _rule(car, {"highway": "residential"}).restricted
    assert car.way({"highway": "track", "motor_vehicle": "private"}) is None
    # No route starts on a private driveway.
    assert not _rule(car, {"highway": "service", "access": "private"}).startpoint
    assert bike.way({"highway": "residential", "access": "private"}) is None
    assert _rule(bike, {"highway": "residential", "bicycle": "destination"}).restricted
    assert _rule(foot, {"highway": "footway", "access": "destination;no"}).restricted
    assert car.way({"highway": "footway"}) is None
    assert car.way({"highway": "track"}) is None
    assert car.way({"highway": "track", "motor_vehicle": "yes"}) is not None
    assert bike.way({"highway": "motorway"}) is None
    assert bike.way({"highway": "residential", "vehicle": "no"}) is None
    assert bike.way({"highway": "residential", "vehicle": "no", "bicycle": "yes"}) is not None
    assert foot.way({"highway": "motorway"}) is None
    assert foot.way({"highway": "cycleway", "foot": "no"}) is None
    assert foot.way({"highway": "primary", "access": "no", "foot": "yes"}) is not None


def test_oneway_rules() -> None:
    street = {"highway": "residential", "oneway": "yes"}
    rule = car.way(street)
    assert rule is not None and rule.forward and not rule.backward
    rule = bike.way({**street, "oneway:bicycle": "no"})
    assert rule is not None and rule.forward and rule.backward
    rule = bike.way(street)
    assert rule is not None and not rule.backward
    rule = foot.way(street)
    assert rule is not None and rule.backward
    rule = car.way({"highway": "motorway"})
    assert rule is not None and not rule.backward
    rule = car.way({"highway": "primary", "junction": "roundabout"})
    assert rule is not None and not rule.backward
    rule = car.way({"highway": "motorway", "oneway": "no"})
    assert rule is not None and rule.backward
    rule = car.way({"highway": "primary", "oneway": "-1"})
    assert rule is not None and rule.backward and not rule.forward
    rule = foot.way({"highway": "footway", "oneway:foot": "yes"})
    assert rule is not None and not rule.backward


def test_barriers() -> None:
    assert car.barrier_blocks({"barrier": "bollard"})
    assert not car.barrier_blocks({"barrier": "lift_gate"})
    assert not car.barrier_blocks({"barrier": "bollard", "motor_vehicle": "yes"})
    assert car.barrier_blocks({"barrier": "gate", "access": "private"})
    assert not bike.barrier_blocks({"barrier": "bollard"})
    assert bike.barrier_blocks({"barrier": "wall"})
    assert not foot.barrier_blocks({"barrier": "stile"})


def test_ferry_and_duration() -> None:
    assert parse_duration("01:30") == 5400
    assert parse_duration("0:20:30") == 1230
    assert parse_duration("PT45M") == 2700
    assert parse_duration("15") == 900
    assert parse_duration("soon") is None
    rule = car.way({"route": "ferry", "duration": "00:10"})
    assert rule is not None and rule.duration == 600 and rule.mode == "ferry"
    assert car.way({"route": "ferry", "motor_vehicle": "no"}) is None
    assert foot.way({"route": "ferry", "motor_vehicle": "no"}) is not None


def test_restriction_modes() -> None:
    tags = {"type": "restriction", "restriction": "no_left_turn", "except": "bicycle"}
    assert car.restriction(tags) == "no_left_turn"
    assert bike.restriction(tags) is None
    assert foot.restriction(tags) is None
    assert bike.restriction({"type": "restriction", "restriction:bicycle": "no_u_turn"})
