"""Lastline intake service."""
