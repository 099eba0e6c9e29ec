"""Map bodies: the renderer protocol plans are drawn with (MapLibre Native's is injected)."""

from __future__ import annotations

from typing import Protocol

BBox = tuple[float, float, float, float]


class MapRenderer(Protocol):
    """Draws the map of ``bbox_3857`` with ``style`` as a PNG of width_px × height_px.

    ``pixel_ratio`` is the device pixel ratio (print DPI / 96): line widths and labels are
    multiplied by it, so the map reads the same at any DPI. The umbrella CLI and the server
    pass one drawing the named style with MapLibre Native; cities itself draws no map.
    """

    def __call__(
        self,
        *,
        style: str,
        bbox_3857: BBox,
        width_px: int,
        height_px: int,
        pixel_ratio: float,
    ) -> bytes:
        """The PNG bytes of the map."""
        ...
