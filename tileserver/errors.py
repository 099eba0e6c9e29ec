"""Tile server exceptions and the one map from exception class to HTTP status."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import psycopg2
import psycopg2.extensions
import psycopg2.pool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cities.errors import (
    CitiesError,
    EmptyArea,
    IncompleteBoundary,
    NoData,
    NoSuchPage,
    PlanBusy,
    PlanTimeout,
    UnknownCommune,
)
from osmimport.errors import DatabaseError, FondplanError
from tileserver.middleware import REQUEST_ID


class TileserverError(FondplanError):
    """Base of the tile server's errors."""


class BadRequest(TileserverError):
    """The request cannot be understood (malformed path or parameter)."""


class NotFound(TileserverError):
    """The resource does not exist (unknown tileset, style, or a tile outside the world)."""


class TileOutOfRange(NotFound):
    """A tile outside the world or the zoom range."""


class Unavailable(TileserverError):
    """The data cannot be read right now (database down, query timed out)."""


class ArchiveError(TileserverError):
    """A PMTiles or MBTiles file cannot be read or written."""


#: Exception class → HTTP status; the most specific class listed wins.
STATUS_CODES: dict[type[Exception], int] = {
    BadRequest: 400,
    NotFound: 404,
    Unavailable: 503,
    DatabaseError: 503,
    ArchiveError: 500,
    psycopg2.extensions.QueryCanceledError: 503,
    psycopg2.OperationalError: 503,
    psycopg2.pool.PoolError: 503,
    CitiesError: 400,
    UnknownCommune: 404,
    NoSuchPage: 404,
    IncompleteBoundary: 422,
    EmptyArea: 422,
    NoData: 503,
    PlanBusy: 503,
    PlanTimeout: 503,
}


def status_for(exc: Exception) -> int:
    """The HTTP status of ``exc`` (500 when it is not a known error)."""
    for cls in type(exc).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return 500


def _detail(exc: Exception) -> str:
    if isinstance(exc, psycopg2.extensions.QueryCanceledError):
        return "the tile query took too long"
    if isinstance(exc, psycopg2.Error | psycopg2.pool.PoolError | DatabaseError):
        # The driver's messages name hosts and ports: they go to the log only.
        return "the database is unavailable; try again shortly"
    return str(exc) or type(exc).__name__


log = logging.getLogger(__name__)


def _handle(request: Request, exc: Exception) -> Response:
    response = error_response(exc)
    if response.status_code >= 500:
        # Logged here, once, with the request id; the client gets no more than the detail.
        rid = request.scope.get(REQUEST_ID, "-")
        cause = exc.__cause__ or exc
        log.warning(
            "request %s %s answered %d: %s",
            rid,
            request.url.path,
            response.status_code,
            str(cause).strip() or type(cause).__name__,
        )
    return response


def error_response(exc: Exception) -> Response:
    """The JSON answer ``{"detail": ...}`` for ``exc``; 503 ones say when to retry."""
    if isinstance(exc, HTTPException):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
    status = status_for(exc)
    detail = _detail(exc) if status != 500 else "internal server error"
    headers = None
    if status == 503:
        headers = {"Retry-After": str(getattr(exc, "retry_after", 1))}
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


Handler = Callable[[Request, Exception], Response]


def exception_handlers() -> Mapping[int | type[Exception], Handler]:
    """Handlers answering every error as JSON ``{"detail": ...}``."""
    handlers: dict[int | type[Exception], Handler] = {
        HTTPException: _handle,
        Exception: _handle,
    }
    for cls in STATUS_CODES:
        handlers[cls] = _handle
    return handlers
