"""Outbox and inbox."""

from lastline_shared.migrations import create_plumbing, drop_plumbing

revision = "0001"
down_revision = None
upgrade = create_plumbing
downgrade = drop_plumbing
