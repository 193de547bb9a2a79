"""Neural-network building blocks: ``dagrad.nn.functional`` (and, later, modules)."""
from . import functional  # noqa: F401
