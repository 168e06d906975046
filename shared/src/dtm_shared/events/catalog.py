"""Importing this module registers every event contract in `base.REGISTRY`."""

from dtm_shared.events import registration, sites
from dtm_shared.events.base import REGISTRY

__all__ = ["REGISTRY", "registration", "sites"]
