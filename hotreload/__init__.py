"""Hot reload for F#: `hotreload watch App.fsproj`, or from Python `with hotreload.Session("App.fsproj") as s:`.

Every error hotreload raises for you to catch is a `HotReloadError`; outcomes and refusals carry typed kinds
(`OutcomeKind`, `RefusalKind`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import HotReloadError
from .refusal import Refusal, RefusalKind

if TYPE_CHECKING:
    from .session import (
        CompileFailed,
        EditError,
        EditRefused,
        Outcome,
        OutcomeKind,
        Session,
        SessionError,
        UpdateFailed,
    )

__all__ = ["CompileFailed", "EditError", "EditRefused", "HotReloadError", "Outcome", "OutcomeKind", "Refusal",
           "RefusalKind", "Session", "SessionError", "UpdateFailed"]
_LAZY = {"CompileFailed", "EditError", "EditRefused", "Outcome", "OutcomeKind", "Session", "SessionError",
         "UpdateFailed"}


def __getattr__(name: str) -> Any:
    """Imported on first use: `python -m hotreload.compile_worker` and the pytest plugin stay light."""
    if name in _LAZY:
        from . import session

        return getattr(session, name)
    raise AttributeError(f"module 'hotreload' has no attribute {name!r}")
