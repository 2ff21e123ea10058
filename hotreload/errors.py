"""The one error root: everything hotreload raises for a user to catch is a `HotReloadError`."""

from __future__ import annotations


class HotReloadError(Exception):
    """Base of every error hotreload raises on purpose; its message names the file or member and what to do."""
