"""Printable town plans (plans de ville) of the communes in the imported data."""
