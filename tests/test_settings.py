"""The settings tree: its variables, the README's table, and create_app obeying every section."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from osmimport.settings import (
    TABLE_END,
    TABLE_START,
    ImportSettings,
    SettingsTree,
    markdown_table,
    sections,
    variables,
)
from routing.settings import RoutingCommandSettings
from tests.conftest import ROOT
from tests.tileserver.conftest import TestClient
from tileserver import server
from tileserver.app import create_app
from tileserver.settings import (
    AssetSettings,
    CacheSettings,
    DatabaseSettings,
    LimitSettings,
    RasterSettings,
    RoutingSettings,
    ServerSettings,
    Settings,
    TileSettings,
    TownplanSettings,
)

PACKAGES = [ROOT / "import" / "osmimport", ROOT / "tileserver", ROOT / "routing", ROOT / "cities"]
VARIABLE = re.compile(r"\bFONDPLAN_[A-Z][A-Z0-9_]*[A-Z0-9]\b")


def _readme_table() -> str:
    text = (ROOT / "README.md").read_text("utf-8")
    start = text.index(TABLE_START) + len(TABLE_START)
    return text[start : text.index(TABLE_END)].lstrip("\n")


def test_the_readme_table_is_generated_from_the_tree() -> None:
    assert _readme_table() == markdown_table(Settings), (
        "the README's settings table is stale: run `python -m tileserver.settings --readme`"
    )


def test_every_variable_has_one_name_and_a_meaning() -> None:
    found = variables(Settings)
    names = [var.name for var in found]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    assert [var.name for var in found if not var.meaning] == []
    assert all(VARIABLE.fullmatch(name) for name in names)


def test_every_tree_is_a_part_of_the_servers() -> None:
    """The commands' trees are sections of the server's, read from the same variables."""
    full = sections(Settings)
    for tree in (ImportSettings, RoutingCommandSettings):
        for name, section in sections(tree).items():
            assert full[name] is section


def test_every_variable_named_in_the_docs_and_deployment_exists() -> None:
    known = {var.name for var in variables(Settings)}
    # Read by the test fixtures only, never by fondplan.
    known.add("FONDPLAN_TEST_DATABASE_URL")
    files = ["README.md", "Dockerfile", "docker-compose.yml", *Path(ROOT).glob("docker/*")]
    for file in files:
        path = ROOT / file
        if not path.is_file():
            continue
        names = set(VARIABLE.findall(path.read_text("utf-8")))
        assert names <= known, f"{path.name}: {sorted(names - known)}"


@pytest.mark.parametrize(
    ("variable", "value", "read"),
    [
        ("FONDPLAN_DATABASE_URL", "postgresql://h/db", lambda s: s.database.database_url),
        ("FONDPLAN_DATA_DIR", "/srv/fondplan", lambda s: str(s.database.data_dir)),
        ("FONDPLAN_COMMUNE_LEVELS", '{"IT": [8]}', lambda s: s.communes.levels),
        ("FONDPLAN_DISABLE", "viewer, raster", lambda s: s.server.disable),
        ("FONDPLAN_FORWARDED_ALLOW_IPS", "*", lambda s: s.server.forwarded_allow_ips),
        ("FONDPLAN_LIMIT_CONCURRENCY", "9", lambda s: s.server.limit_concurrency),
        ("FONDPLAN_TILE_STATEMENT_TIMEOUT_MS", "1200", lambda s: s.tiles.statement_timeout_ms),
        ("FONDPLAN_CACHE_DISK", "false", lambda s: s.cache.disk),
        ("FONDPLAN_LIMIT_TILES", "3", lambda s: s.limits.tiles),
        ("FONDPLAN_RASTER_TIMEOUT", "0.5", lambda s: s.raster.timeout),
        ("FONDPLAN_TOWNPLAN_MAX_DPI", "150", lambda s: s.townplan.max_dpi),
        ("FONDPLAN_ROUTING_SNAP_RADIUS", "20", lambda s: s.routing.routing_snap_radius),
        ("FONDPLAN_FONT_DIRS", "/a:/b", lambda s: tuple(map(str, s.assets.font_dirs))),
        ("fondplan_glyph_cache_dir", "", lambda s: s.glyph_cache_dir()),
    ],
)
def test_each_section_reads_its_documented_variables(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, read: object
) -> None:
    expected = {
        "FONDPLAN_DATABASE_URL": "postgresql://h/db",
        "FONDPLAN_DATA_DIR": "/srv/fondplan",
        "FONDPLAN_COMMUNE_LEVELS": {"IT": [8]},
        "FONDPLAN_DISABLE": frozenset({"viewer", "raster"}),
        "FONDPLAN_FORWARDED_ALLOW_IPS": ("*",),
        "FONDPLAN_LIMIT_CONCURRENCY": 9,
        "FONDPLAN_TILE_STATEMENT_TIMEOUT_MS": 1200,
        "FONDPLAN_CACHE_DISK": False,
        "FONDPLAN_LIMIT_TILES": 3,
        "FONDPLAN_RASTER_TIMEOUT": 0.5,
        "FONDPLAN_TOWNPLAN_MAX_DPI": 150,
        "FONDPLAN_ROUTING_SNAP_RADIUS": 20.0,
        "FONDPLAN_FONT_DIRS": ("/a", "/b"),
        "fondplan_glyph_cache_dir": None,
    }[variable]
    assert callable(read)
    assert read(Settings()) != expected
    monkeypatch.setenv(variable, value)
    assert read(Settings()) == expected


def test_env_file_is_read_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("FONDPLAN_TILE_MAX_AGE=5\nFONDPLAN_PORT=9000\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FONDPLAN_PORT", "9100")
    settings = Settings()
    assert (settings.tiles.max_age, settings.server.port) == (5, 9100)


def test_a_section_given_in_code_replaces_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FONDPLAN_TILE_EXTENT", "512")
    monkeypatch.setenv("FONDPLAN_TILE_BUFFER", "8")
    settings = Settings(tiles=TileSettings(buffer=16))
    assert (settings.tiles.extent, settings.tiles.buffer) == (4096, 16)
    assert Settings().tiles.extent == 512


def test_a_misspelt_field_in_code_is_an_error() -> None:
    with pytest.raises(ValueError, match="statement_timeout"):
        TileSettings(statement_timeout=5)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="tile\n"):
        Settings(tile=TileSettings())  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("FONDPLAN_LIMIT_TILES", "many", "error: FONDPLAN_LIMIT_TILES: Input should be"),
        ("FONDPLAN_COMMUNE_LEVELS", "{FR: 8}", "error: FONDPLAN_COMMUNE_LEVELS: not valid JSON"),
    ],
)
def test_a_bad_variable_is_a_cli_error_naming_it(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    message: str,
) -> None:
    from tileserver.cli import main

    monkeypatch.setenv(variable, value)
    assert main(["info"]) == 1
    assert capsys.readouterr().err.startswith(message)


def _environment_reads(path: Path) -> list[str]:
    """``os.environ`` / ``os.getenv`` reads in a module (writes for child processes aside)."""
    tree = ast.parse(path.read_text("utf-8"))
    writes = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store)
    }
    return [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in ("environ", "getenv")
        and id(node) not in writes
    ]


def _tree_constructions(path: Path, trees: set[str]) -> list[str]:
    """Calls building a whole settings tree (which reads the variables), or a database section
    of defaults only (which would ignore FONDPLAN_DATABASE_URL and FONDPLAN_DATA_DIR)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            bare = not node.args and not node.keywords
            if node.func.id in trees or (node.func.id == "DatabaseSettings" and bare):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def _subclasses(cls: type) -> set[type]:
    out = set(cls.__subclasses__())
    for sub in list(out):
        out |= _subclasses(sub)
    return out


def test_no_module_reads_the_environment_itself() -> None:
    """Only the settings module reads variables; trees are built by commands and the app."""
    allowed_reads = {
        # The tree itself.
        "import/osmimport/settings.py",
        # The XDG base directory, the default of FONDPLAN_DATA_DIR.
        "import/osmimport/paths.py",
        # numba's own variable, and Mesa's for the render process.
        "routing/kernels.py",
        "tileserver/raster_worker.py",
    }
    trees = {cls.__name__ for cls in _subclasses(SettingsTree)}
    allowed_trees = {"tileserver/app.py"}
    reads, built = [], []
    for package in PACKAGES:
        for path in sorted(package.rglob("*.py")):
            name = str(path.relative_to(ROOT))
            if name not in allowed_reads:
                reads += _environment_reads(path)
            if name not in allowed_trees:
                built += _tree_constructions(path, trees)
    assert reads == []
    assert built == []


# --- create_app(settings) reaches every part ------------------------------------------------


@pytest.fixture(scope="module")
def tuned(liechtenstein_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    folder = tmp_path_factory.mktemp("tuned")
    return Settings(
        database=DatabaseSettings(database_url=liechtenstein_url, data_dir=folder / "data"),
        server=ServerSettings(
            public_url="https://maps.example.org/base",
            disable=frozenset({"viewer"}),
            header_timeout=4.5,
        ),
        tiles=TileSettings(max_age=123),
        cache=CacheSettings(disk=False),
        limits=LimitSettings(ops=3),
        raster=RasterSettings(max_pending=7),
        townplan=TownplanSettings(max_dpi=100),
        routing=RoutingSettings(routing_max_coordinates=2),
        assets=AssetSettings(
            glyph_cache_dir=str(folder / "glyphs"), sprite_cache_dir=str(folder / "sprites")
        ),
    )


def test_create_app_obeys_each_section(tuned: Settings) -> None:
    with TestClient(create_app(tuned)) as client:
        tilejson = client.get("/tiles/basemap.json")
        assert tilejson.status_code == 200
        assert tilejson.json()["tiles"][0].startswith("https://maps.example.org/base/tiles/")
        assert "max-age=123" in tilejson.headers["cache-control"]
        assert client.get("/").status_code == 404  # the viewer is switched off

        health = client.get("/health").json()
        assert health["render"]["max_pending"] == 7
        assert server.header_timeout() == 4.5

        route = client.get("/route/v1/driving/9.52,47.14;9.53,47.15;9.54,47.16")
        assert (route.status_code, route.json()["code"]) == (400, "TooBig")
        plan = client.get("/townplans/Vaduz.png", params={"dpi": "200"})
        assert plan.status_code == 400
        assert "at most 100" in plan.json()["detail"]

        fonts = client.get("/fonts/Noto Sans Regular/0-255.pbf")
        assert fonts.status_code == 200
        assert client.get("/sprites/fondplan.json").status_code == 200
    folder = tuned.database.data_dir.parent
    assert list((folder / "glyphs").rglob("0-255.pbf"))
    assert list((folder / "sprites").rglob("@1x.json"))
    assert not (tuned.database.data_dir / "cache").exists()


def test_the_font_folders_come_from_the_settings(tuned: Settings, tmp_path: Path) -> None:
    assets = AssetSettings(font_dirs=(tmp_path,), glyph_cache_dir="")
    settings = tuned.model_copy(update={"assets": assets})
    with TestClient(create_app(settings)) as client:
        response = client.get("/fonts/Noto Sans Regular/0-255.pbf")
        assert response.status_code == 404
        assert "Noto Sans Regular" in response.json()["detail"]


def test_a_worker_process_reads_the_tree_in_the_app_factory(
    liechtenstein_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn's workers call ``create_app()``: the variables they inherit configure it."""
    monkeypatch.setenv("FONDPLAN_DATABASE_URL", liechtenstein_url)
    monkeypatch.setenv("FONDPLAN_CACHE_DISK", "false")
    monkeypatch.setenv("FONDPLAN_TILE_MAX_AGE", "77")
    monkeypatch.setenv("FONDPLAN_DISABLE", "raster,routing,townplans")
    with TestClient(create_app()) as client:
        response = client.get("/tiles/basemap.json")
        assert "max-age=77" in response.headers["cache-control"]
        assert client.get("/styles/colour/14/8580/5748.png").status_code == 404
