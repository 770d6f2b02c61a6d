"""Lastline notifications service."""
