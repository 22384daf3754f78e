"""Fixtures of the unit tier: `world` (tests/unit/world.py), a shop with no subprocess."""

from tests.unit.world import world

__all__ = ["world"]
