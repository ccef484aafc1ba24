"""The registry's entries: importing this package registers every competition."""
from competitions import house_prices  # noqa: F401
from competitions import birdcall  # noqa: F401
from competitions import uberct  # noqa: F401
from competitions import serengeti  # noqa: F401
