"""An edit that cannot be applied to the running app, in words that tell the user what to do."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Refusal:
    """An edit that cannot be applied to the running app, said so the user knows what to do."""

    kind: str
    member: str
    detail: str = ""
    hint: str = "restart the app to pick it up"
    location: str = ""  # "File.fs:12" when known

    def __str__(self) -> str:
        extra = f": {self.detail}" if self.detail else ""
        where = f"{self.location}: " if self.location else ""
        return f"{where}{self.kind} in {self.member.replace('/', '.')}{extra} ({self.hint})"
