"""OSM extracts into PostGIS: the database schema fondplan serves from."""

__version__ = "0.1.0"
