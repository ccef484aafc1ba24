"""The registry's entries: importing this package registers every competition."""
from competitions import house_prices  # noqa: F401
