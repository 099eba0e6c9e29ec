"""Routing errors: OSRM-coded request errors and missing-graph errors."""

from __future__ import annotations

from osmimport.errors import FondplanError


class RoutingError(FondplanError):
    """Base of every routing error that is the user's to fix."""


class GraphNotBuiltError(RoutingError):
    """No routing graph exists yet for the current data (run ``fondplan routing build``)."""


class OsrmError(RoutingError):
    """A request the OSRM v5 API answers with HTTP 400 and ``{"code", "message"}``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
