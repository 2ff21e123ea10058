"""Hot reload for F#: `hotreload watch App.fsproj`, or from Python `with hotreload.Session("App.fsproj") as s:`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .session import CompileFailed, EditError, EditRefused, Outcome, Session, UpdateFailed

__all__ = ["CompileFailed", "EditError", "EditRefused", "Outcome", "Session", "UpdateFailed"]


def __getattr__(name: str) -> Any:
    """Imported on first use: `python -m hotreload.compile_worker` and the pytest plugin stay light."""
    if name in __all__:
        from . import session

        return getattr(session, name)
    raise AttributeError(f"module 'hotreload' has no attribute {name!r}")
