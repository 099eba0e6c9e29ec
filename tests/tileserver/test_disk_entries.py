"""Disk cache entries are checked on read; glyph fontstacks are bounded in size and number."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mapbox_vector_tile
import pytest

from tests.tileserver.conftest import VADUZ, TestClient, tile_of, tile_settings
from tests.tileserver.glyph_proto import decode as decode_glyphs
from tileserver.app import create_app
from tileserver.diskcache import seal, unseal
from tileserver.glyphs import MAX_FONTSTACK_FONTS, GlyphBuilder, available_fonts
from tileserver.settings import CacheSettings

ZOOM = 14


@pytest.fixture(scope="module")
def disk_client(
    liechtenstein_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """An app without a memory cache, so every tile is read from its disk cache."""
    folder = tmp_path_factory.mktemp("disk")
    settings = tile_settings(liechtenstein_url, folder / "tiles")
    settings = type(settings)(
        database=settings.database,
        server=settings.server,
        cache=CacheSettings(dir=folder / "tiles", memory_bytes=0, version_ttl=1.0),
    )
    with TestClient(create_app(settings)) as client:
        client.folder = folder  # type: ignore[attr-defined]
        yield client


def _layers(body: bytes) -> set[str]:
    return set(mapbox_vector_tile.decode(body))


def test_seal_rejects_truncated_padded_and_flipped_entries() -> None:
    blob = seal(b"tile bytes", b"etag")
    assert unseal(blob) == (b"etag", b"tile bytes")
    assert unseal(blob[:-1]) is None
    assert unseal(blob + b"x") is None
    flipped = bytearray(blob)
    flipped[-3] ^= 0x01
    assert unseal(bytes(flipped)) is None
    assert unseal(b"garbage") is None


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_damaged_tile_file_is_rebuilt_not_served(disk_client: TestClient, damage: str) -> None:
    x, y = tile_of(*VADUZ, ZOOM)
    url = f"/tiles/basemap/{ZOOM}/{x}/{y}.mvt"
    first = disk_client.get(url)
    assert first.status_code == 200
    expected = _layers(first.content)
    assert "streets" in expected
    (path,) = Path(disk_client.folder).rglob(f"{ZOOM}/{x}/{y}.mvt.gz")  # type: ignore[attr-defined]
    blob = path.read_bytes()
    path.write_bytes(
        {"truncate": blob[: len(blob) // 2], "garbage": b"\x00garbage\n" * 50, "empty": b""}[damage]
    )
    for encoding in ("gzip", "identity"):
        response = disk_client.get(url, headers={"accept-encoding": encoding})
        assert response.status_code == 200, response.text
        # httpx has undone the gzip encoding when there was one.
        assert (response.headers.get("content-encoding") == "gzip") == (encoding == "gzip")
        assert _layers(response.content) == expected
    # The entry was written again, whole.
    assert unseal(path.read_bytes()) is not None
    assert unseal(path.read_bytes()) == unseal(blob)


def test_a_damaged_glyph_file_is_rebuilt(tmp_path: Path) -> None:
    built = GlyphBuilder(cache_dir=tmp_path).glyph_range("Noto Sans Regular", 0, 255)
    (path,) = tmp_path.rglob("0-255.pbf")
    path.write_bytes(path.read_bytes()[:100])
    again = GlyphBuilder(cache_dir=tmp_path).glyph_range("Noto Sans Regular", 0, 255)
    assert again == built
    assert decode_glyphs(again).stacks[0].range == "0-255"
    assert unseal(path.read_bytes()) == (b"", built)


def test_too_many_or_too_long_fontstacks_are_400(disk_client: TestClient) -> None:
    fonts = available_fonts()
    many = ",".join(fonts[:60])
    response = disk_client.get(f"/fonts/{many}/0-255.pbf")
    assert response.status_code == 400
    assert "at most" in response.json()["detail"]
    five = ",".join(fonts[: MAX_FONTSTACK_FONTS + 1])
    assert disk_client.get(f"/fonts/{five}/0-255.pbf").status_code == 400
    long_name = "Noto Sans Regular," + "x" * 300
    response = disk_client.get(f"/fonts/{long_name}/0-255.pbf")
    assert response.status_code == 400 and "characters" in response.json()["detail"]
    ok = disk_client.get("/fonts/Noto Sans Regular,DejaVu Sans Book/0-255.pbf")
    assert ok.status_code == 200
    assert decode_glyphs(ok.content).stacks[0].range == "0-255"


def test_the_glyph_disk_cache_keeps_a_bounded_number_of_fontstacks(tmp_path: Path) -> None:
    builder = GlyphBuilder(cache_dir=tmp_path, disk_fontstacks=3)
    fonts = [name for name in available_fonts() if name.startswith("DejaVu")][:6]
    assert len(fonts) == 6
    stacks = [f"{a},{b}" for a, b in zip(fonts[::2], fonts[1::2], strict=True)]
    stacks += [f"{b},{a}" for a, b in zip(fonts[::2], fonts[1::2], strict=True)]
    for stack in stacks:
        assert decode_glyphs(builder.glyph_range(stack, 0, 255)).stacks[0].range == "0-255"
    folders = [entry for entry in tmp_path.iterdir() if entry.is_dir()]
    assert len(folders) == 3
    # Names stay short whatever the fontstack.
    assert all(len(entry.name) < 40 for entry in folders)
