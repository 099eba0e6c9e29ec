"""Sprite sheets built from styles/icons, decoded with Pillow."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from tileserver.sprites import (
    SPRITE_NAME,
    VERSATILES_SPRITE,
    SpriteError,
    SpriteNotFoundError,
    icons_dir,
    sprite,
)


def _decode(name: str, ratio: int) -> tuple[dict[str, dict[str, int]], np.ndarray]:
    index_bytes, png = sprite(name, ratio)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return json.loads(index_bytes), np.asarray(image.convert("RGBA"))


@pytest.mark.parametrize("ratio", [1, 2])
def test_every_icon_is_a_visible_rectangle_inside_the_sheet(ratio: int) -> None:
    index, pixels = _decode(SPRITE_NAME, ratio)
    height, width = pixels.shape[:2]
    assert set(index) == {path.stem for path in icons_dir().glob("*.svg")}
    boxes = []
    for name, rect in index.items():
        x, y, w, h = rect["x"], rect["y"], rect["width"], rect["height"]
        assert rect["pixelRatio"] == ratio, name
        assert 0 <= x and 0 <= y and x + w <= width and y + h <= height, name
        alpha = pixels[y : y + h, x : x + w, 3]
        assert (alpha > 0).mean() > 0.2, f"{name} is (nearly) blank"
        boxes.append((x, y, x + w, y + h))
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)


def test_2x_is_twice_the_1x() -> None:
    one, pixels_one = _decode(SPRITE_NAME, 1)
    two, pixels_two = _decode(SPRITE_NAME, 2)
    assert pixels_two.shape[:2] == (pixels_one.shape[0] * 2, pixels_one.shape[1] * 2)
    for name, rect in one.items():
        for key in ("x", "y", "width", "height"):
            assert two[name][key] == 2 * rect[key], (name, key)
        # The same drawing: the 2x icon shrunk looks like the 1x icon.
        x, y, w, h = rect["x"], rect["y"], rect["width"], rect["height"]
        small = Image.fromarray(pixels_two[2 * y : 2 * (y + h), 2 * x : 2 * (x + w)])
        small_alpha = np.asarray(small.resize((w, h), Image.Resampling.BOX))[:, :, 3]
        diff = np.abs(small_alpha.astype(int) - pixels_one[y : y + h, x : x + w, 3].astype(int))
        assert diff.mean() < 20, name


def test_versatiles_sheet_points_at_our_drawings() -> None:
    ours, pixels = _decode(SPRITE_NAME, 1)
    theirs, their_pixels = _decode(VERSATILES_SPRITE, 1)
    assert np.array_equal(pixels, their_pixels)
    assert theirs["icon-town_hall"] == ours["townhall"]
    assert theirs["icon-pill"] == ours["pharmacy"]


def test_unknown_sprite_and_bad_ratio_are_errors() -> None:
    with pytest.raises(SpriteNotFoundError, match="nope"):
        sprite("nope", 1)
    with pytest.raises(SpriteError):
        sprite(SPRITE_NAME, 0)
