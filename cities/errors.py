"""Town plan errors; each is the user's to fix and maps to a clear CLI or HTTP answer."""

from __future__ import annotations

from osmimport.errors import FondplanError


class CitiesError(FondplanError):
    """Base of the town plan errors (HTTP 400)."""


class UnknownCommune(CitiesError):
    """No commune matches the name or INSEE code (HTTP 404); ``suggestions`` are the closest."""

    def __init__(self, query: str, suggestions: list[str]) -> None:
        self.query = query
        self.suggestions = suggestions
        hint = f"; closest: {', '.join(suggestions)}" if suggestions else ""
        super().__init__(f"no commune named {query!r} in the loaded data{hint}")


class NoSuchPage(CitiesError):
    """The path names no plan document, or a page beyond the plan's last (HTTP 404)."""


class IncompleteBoundary(CitiesError):
    """The commune's boundary could not be closed in the data (HTTP 422)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"the boundary of {name!r} is incomplete in the loaded data (the extract cuts it); "
            "plan an area instead with --bbox W,S,E,N --title ..."
        )


class EmptyArea(CitiesError):
    """The planned box holds no street and no facility of the loaded data (HTTP 422)."""


class PlanUnavailable(CitiesError):
    """Base of the answers "not now, ask again shortly" (HTTP 503)."""

    #: Seconds a client is told to wait before asking again.
    retry_after = 5


class NoData(PlanUnavailable):
    """Nothing is loaded yet (HTTP 503)."""


class PlanBusy(PlanUnavailable):
    """Every plan worker and queue slot is taken (HTTP 503)."""


class PlanTimeout(PlanUnavailable):
    """A plan took longer than the time limit; it is still finished and cached (HTTP 503)."""
