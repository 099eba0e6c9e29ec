"""The viewer's "Plan de ville" panel in headless Chromium: pick a commune, get its PDF."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from cities.paper import DEFAULT_PAPER, PAPERS
from tests.tileserver.test_viewer import run_viewer, server

__all__ = ["server"]  # the fixture: a real `fondplan serve` over the Liechtenstein import

STEPS = Path(__file__).with_name("townplan_panel_steps.mjs")

pytestmark = pytest.mark.browser


def test_panel_downloads_a_pdf(server: str, tmp_path: Path) -> None:
    report = run_viewer(server, tmp_path / "viewer.png", "", STEPS)
    assert "error" not in report, report.get("error")
    assert report["consoleErrors"] == []
    steps = report["steps"]
    assert isinstance(steps, dict)
    assert steps["title"] == "Plan de ville"
    assert "Vaduz" in steps["communes"] and "Schaan" in steps["communes"]
    assert steps["papers"] == list(PAPERS) and steps["defaultPaper"] == DEFAULT_PAPER
    link = urlparse(steps["href"])
    assert link.path == "/townplans/Vaduz.pdf"
    assert parse_qs(link.query) == {
        "paper": ["A4"], "orientation": ["best"], "layout": ["index-pages"],
    }  # fmt: skip
    assert steps["downloadFailure"] is None
    assert steps["status"] == 200
    assert steps["type"] == "application/pdf"
    assert steps["magic"] == "%PDF-" and steps["size"] > 10_000
