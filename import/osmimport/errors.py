"""Exceptions shared by every fondplan command; the CLI prints them as ``error: ...``."""


class FondplanError(Exception):
    """Base of every error that is the user's to fix (bad input, missing data, setup)."""


class UsageError(FondplanError):
    """A command was called with arguments that cannot work."""


class DatabaseError(FondplanError):
    """The database cannot be reached, started or initialised."""


class OsmImportError(FondplanError):
    """An OSM file cannot be imported; the data already served is untouched."""
