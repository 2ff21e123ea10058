"""Status lines for the dev loop: one line per event, prefixed so they stand out from the app's output.

`Reporter` writes text (coloured on a terminal, plain otherwise); `JsonReporter` (`hotreload watch --json`) writes
one JSON object per event instead, for editors and CI. Both write whole lines and flush, so they arrive in order
even when stdout is a pipe.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, TextIO

PREFIX = "[hotreload]"
_COLORS = {"info": "36", "ok": "32", "warn": "33", "error": "31"}


class Reporter:
    """Text status lines. `event` names what happened (start, built, applied, refused, compile-error, ...)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.lock = threading.Lock()
        self.color = bool(getattr(self.stream, "isatty", lambda: False)())

    def emit(self, level: str, text: str, event: str, fields: dict[str, Any]) -> None:
        self._write(text, _COLORS.get(level, ""))

    def _write(self, text: str, color: str = "") -> None:
        with self.lock:
            for line in text.splitlines() or [""]:
                shown = f"\033[{color}m{PREFIX}\033[0m {line}" if self.color and color else f"{PREFIX} {line}"
                self.stream.write(shown + "\n")
            self.stream.flush()

    def info(self, text: str, event: str = "info", **fields: Any) -> None:
        self.emit("info", text, event, fields)

    def ok(self, text: str, event: str = "ok", **fields: Any) -> None:
        self.emit("ok", text, event, fields)

    def warn(self, text: str, event: str = "warning", **fields: Any) -> None:
        self.emit("warn", text, event, fields)

    def error(self, text: str, event: str = "error", **fields: Any) -> None:
        self.emit("error", text, event, fields)


class JsonReporter(Reporter):
    """One JSON object per line: {"event", "level", "message", "time", ...fields}; the app's own output stays text."""

    def emit(self, level: str, text: str, event: str, fields: dict[str, Any]) -> None:
        record = {"event": event, "level": level, "message": text, "time": round(time.time(), 3), **fields}
        with self.lock:
            self.stream.write(json.dumps(record, default=str, ensure_ascii=False) + "\n")
            self.stream.flush()
