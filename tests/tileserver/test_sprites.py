"""Sprite sheets built from styles/icons, decoded with Pillow."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT, run_json
from tileserver import sprites
from tileserver.settings import AssetSettings, DatabaseSettings, Settings
from tileserver.sprites import (
    SPRITE_NAME,
    VERSATILES_SPRITE,
    SpriteBuilder,
    SpriteError,
    SpriteNotFoundError,
    icons_dir,
    icons_key,
    sprite,
)

CACHE_DIR_ENV = AssetSettings.variable("sprite_cache_dir")


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


# --- disk cache -----------------------------------------------------------------------------

#: A fresh interpreter serving the sheets the way the server and the render process do; with
#: ``nocairo`` it cannot draw an icon at all (cairosvg made unimportable).
_CHILD = """
import hashlib, json, sys
if sys.argv[1] == "nocairo":
    sys.modules["cairosvg"] = None
from tileserver import sprites
from tileserver.settings import Settings
cache = Settings().sprite_cache_dir()
out = {}
for name in ("fondplan", "versatiles"):
    for ratio in (1, 2):
        index, png = sprites.sprite(name, ratio, cache)
        out[f"{name}@{ratio}"] = hashlib.sha256(index + png).hexdigest()
out["builds"] = sprites.builder_for(cache).builds
print(json.dumps(out))
"""


def _child(cache_dir: Path, mode: str) -> dict[str, object]:
    env = {**os.environ, CACHE_DIR_ENV: str(cache_dir)}
    return run_json([sys.executable, "-c", _CHILD, mode], env)


def test_a_second_process_reads_the_sheets_from_the_disk_cache(tmp_path: Path) -> None:
    cache = tmp_path / "sprites"
    # Without cairosvg and without a cache, a process cannot answer: the check below means it.
    env = {**os.environ, CACHE_DIR_ENV: str(cache)}
    blind = subprocess.run(
        [sys.executable, "-c", _CHILD, "nocairo"], capture_output=True, cwd=ROOT, env=env
    )
    assert blind.returncode != 0 and b"cairosvg" in blind.stderr

    first = _child(cache, "draw")
    assert first["builds"] == 2  # our sheet at @1x and @2x; the VersaTiles index reuses it
    files = sorted(path.name for path in cache.rglob("*") if path.is_file())
    assert files == ["@1x.json", "@1x.png", "@2x.json", "@2x.png"]
    (folder,) = cache.iterdir()
    assert folder.name == f"{SPRITE_NAME}-{icons_key(icons_dir())}"

    second = _child(cache, "nocairo")
    assert second["builds"] == 0
    assert second == {**first, "builds": 0}
    # What the cache holds is what a builder without a cache draws.
    fresh = SpriteBuilder(cache_dir=None)
    for ratio in (1, 2):
        sheet = fresh.sheet(SPRITE_NAME, ratio)
        digest = hashlib.sha256(sheet.json_bytes() + sheet.png).hexdigest()
        assert first[f"{SPRITE_NAME}@{ratio}"] == digest
        assert (folder / f"@{ratio}x.png").read_bytes() == sheet.png


def test_an_edited_icon_changes_the_key_and_rebuilds(tmp_path: Path) -> None:
    icons = tmp_path / "icons"
    shutil.copytree(icons_dir(), icons)
    cache = tmp_path / "cache"
    original = SpriteBuilder(icons, cache)
    before = original.sheet(SPRITE_NAME, 1)
    assert original.builds == 1
    again = SpriteBuilder(icons, cache)
    assert again.sheet(SPRITE_NAME, 1) == before and again.builds == 0

    # Recolour one icon: same name, same size, different drawing.
    cafe = icons / "cafe.svg"
    svg = cafe.read_text()
    colour = svg.split('fill="', 1)[1].split('"', 1)[0]
    assert colour != "#123456"
    cafe.write_text(svg.replace(f'fill="{colour}"', 'fill="#123456"'))
    edited = SpriteBuilder(icons, cache)
    assert edited.key() != original.key()
    after = edited.sheet(SPRITE_NAME, 1)
    assert edited.builds == 1, "a stale sheet was read"
    assert after.index == before.index
    rect = after.index["cafe"]
    box = (rect["x"], rect["y"], rect["x"] + rect["width"], rect["y"] + rect["height"])
    old = np.asarray(Image.open(io.BytesIO(before.png)).convert("RGBA").crop(box)).astype(int)
    new = np.asarray(Image.open(io.BytesIO(after.png)).convert("RGBA").crop(box)).astype(int)
    assert np.abs(old - new).max() > 50
    assert len(list(cache.iterdir())) == 2

    # Removing an icon changes the key too; so does a new sheet format.
    cafe.unlink()
    assert SpriteBuilder(icons, cache).key() not in (original.key(), edited.key())
    keys = {SpriteBuilder(icons).key()}
    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(sprites, "FORMAT_VERSION", sprites.FORMAT_VERSION + 1)
        keys.add(SpriteBuilder(icons).key())
    finally:
        mp.undo()
    assert len(keys) == 2


def test_a_damaged_cache_file_is_rebuilt(tmp_path: Path) -> None:
    builder = SpriteBuilder(cache_dir=tmp_path)
    sheet = builder.sheet(SPRITE_NAME, 1)
    paths = builder.disk_paths(1)
    assert paths is not None
    json_path, png_path = paths
    json_path.write_bytes(json_path.read_bytes()[:10])
    reader = SpriteBuilder(cache_dir=tmp_path)
    assert reader.sheet(SPRITE_NAME, 1) == sheet
    assert reader.builds == 1
    assert json.loads(json_path.read_bytes()) == sheet.index
    assert not list(tmp_path.rglob("*.tmp"))
    assert png_path.read_bytes() == sheet.png


def test_cache_dir_follows_the_data_dir_and_the_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def cache_dir(data_dir: Path) -> Path | None:
        return Settings(database=DatabaseSettings(data_dir=data_dir)).sprite_cache_dir()

    monkeypatch.delenv(CACHE_DIR_ENV, raising=False)
    assert cache_dir(tmp_path) == (tmp_path / "cache" / "sprites").resolve()
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "elsewhere"))
    assert cache_dir(Path("var")) == (tmp_path / "elsewhere").resolve()
    monkeypatch.setenv(CACHE_DIR_ENV, "")
    assert cache_dir(Path("var")) is None
