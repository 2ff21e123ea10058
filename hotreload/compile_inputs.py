"""What one compile of a project read, to tell which of its files two compiles compiled alike.

F# compiles files in order, each from the files before it, the flags and the references only. Two compiles with
the same flags and references and the same first files (same paths, same contents) compiled those files alike:
the diff then need not compare their entities (hotreload.carry).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

_SOURCE_SUFFIXES = (".fs", ".fsi", ".fsx")
_REFERENCE_OPTIONS = ("-r:", "--reference:")


@dataclass(frozen=True)
class CompileInputs:
    """A compile's sources in compile order, each with its content digest, and the rest of what it read (its
    flags, and each referenced file's size and write time) as one digest."""

    sources: tuple[tuple[str, str], ...]
    rest: str

    @classmethod
    def of(cls, args: list[str], folder: str, known: dict[str, str] | None = None) -> CompileInputs | None:
        """The inputs of a compile with fsc's `args`, run in `folder` (relative paths are its); `known`: digests
        already read, by argument (not read again). None when a file is missing or unreadable (then nothing is
        vouched for)."""
        sources: list[tuple[str, str]] = []
        flags: list[str] = []
        references: list[tuple[str, int, int]] = []
        try:
            for arg in args:
                if not arg.startswith("-") and arg.endswith(_SOURCE_SUFFIXES):
                    path = os.path.normpath(os.path.join(folder, arg))
                    digest = (known or {}).get(arg)
                    if digest is None:
                        with open(path, "rb") as source:
                            digest = hashlib.sha256(source.read()).hexdigest()
                    sources.append((path, digest))
                    continue
                flags.append(arg)
                if arg.startswith(_REFERENCE_OPTIONS):
                    path = os.path.normpath(os.path.join(folder, arg.split(":", 1)[1]))
                    stat = os.stat(path)
                    references.append((path, stat.st_size, stat.st_mtime_ns))
        except OSError:
            return None
        rest = hashlib.sha256(json.dumps([flags, references]).encode()).hexdigest()
        return cls(tuple(sources), rest)

    def unchanged_prefix(self, before: CompileInputs | None) -> frozenset[str]:
        """The files this compile compiled as `before` did: the sources before the first that differs (in path,
        place or content), when everything else is the same; none otherwise."""
        if before is None or before.rest != self.rest:
            return frozenset()
        same: set[str] = set()
        for now, then in zip(self.sources, before.sources, strict=False):
            if now != then:
                break
            same.add(now[0])
        return frozenset(same)
