"""Lastline matching service."""
