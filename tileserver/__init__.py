"""The fondplan HTTP server: vector and raster tiles, styles, fonts, sprites, and the CLI."""
