"""Intake's view of the network's reference data (facilities and courts), kept in ``lastline_shared``
because matching needs the same places (locations, federal districts)."""

from lastline_shared.reference import *  # noqa: F403
from lastline_shared.reference import __all__  # noqa: F401
