"""Tests of fondplan."""
