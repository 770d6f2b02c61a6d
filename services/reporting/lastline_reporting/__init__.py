"""Lastline reporting service."""
