"""Write styles/icons/maki-*.svg: Maki (CC0, npm @mapbox/maki) glyphs on fondplan's round badge.

Run from the repository root after `npm install`; the SVGs are committed, so the server never
needs node_modules. The icons are the ones `tileserver.sprites.VERSATILES_ALIASES` names.
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "import")]

from tileserver.sprites import MAKI_PREFIX, VERSATILES_ALIASES  # noqa: E402

MAKI = ROOT / "node_modules" / "@mapbox" / "maki" / "icons"
ICONS = ROOT / "styles" / "icons"
BADGE = "#5d6b7a"
SVG_NS = "http://www.w3.org/2000/svg"


def badge(maki_svg: str) -> str:
    """The Maki glyph (15 x 15) in white, centred on a 20 x 20 round badge like our icons."""
    root = ET.fromstring(maki_svg)
    paths = [el.get("d", "") for el in root.iter(f"{{{SVG_NS}}}path")]
    if not paths or not all(paths):
        raise SystemExit("a Maki icon without plain paths")
    d = " ".join(re.sub(r"\s+", " ", p).strip() for p in paths)
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20" viewBox="0 0 20 20">\n'
        f'  <circle cx="10" cy="10" r="9.25" fill="{BADGE}" stroke="#fff" stroke-width="1.5"/>\n'
        f'  <path fill="#fff" transform="translate(4.75 4.75) scale(0.7)" d="{d}"/>\n'
        "</svg>\n"
    )


def main() -> int:
    """Rewrite every maki-*.svg the aliases name."""
    aliases = VERSATILES_ALIASES.values()
    wanted = sorted({v.removeprefix(MAKI_PREFIX) for v in aliases if v.startswith(MAKI_PREFIX)})
    for old in ICONS.glob(f"{MAKI_PREFIX}*.svg"):
        old.unlink()
    for name in wanted:
        source = MAKI / f"{name}.svg"
        (ICONS / f"{MAKI_PREFIX}{name}.svg").write_text(badge(source.read_text("utf-8")), "utf-8")
    print(f"wrote {len(wanted)} icons")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
