"""Lastline shared contracts and plumbing."""
