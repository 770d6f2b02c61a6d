"""`make chaos`: the platform under faults and bad input (see docs/chaos.md)."""
