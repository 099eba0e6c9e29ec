"""Car, bike and foot routing on the imported road network, with an OSRM v5 HTTP API."""
