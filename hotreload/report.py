"""Status lines for the dev loop: one line per event, prefixed so they stand out from the app's output."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

PREFIX = "[hotreload]"


class Reporter:
    """Writes whole lines and flushes, so they arrive in order even when stdout is a pipe."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.lock = threading.Lock()
        self.color = bool(getattr(self.stream, "isatty", lambda: False)())

    def _write(self, text: str, color: str = "") -> None:
        with self.lock:
            for line in text.splitlines() or [""]:
                shown = f"\033[{color}m{PREFIX}\033[0m {line}" if self.color and color else f"{PREFIX} {line}"
                self.stream.write(shown + "\n")
            self.stream.flush()

    def info(self, text: str) -> None:
        self._write(text, "36")

    def ok(self, text: str) -> None:
        self._write(text, "32")

    def warn(self, text: str) -> None:
        self._write(text, "33")

    def error(self, text: str) -> None:
        self._write(text, "31")
