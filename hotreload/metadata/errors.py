"""The one exception the metadata layer raises for bad input."""

from ..errors import HotReloadError


class BadImageError(HotReloadError, ValueError):
    """The bytes are not a well-formed PE/metadata image (truncated, corrupt, or not .NET)."""
