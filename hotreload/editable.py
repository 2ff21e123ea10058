"""Checks, from metadata alone, that the runtime will accept edits to an assembly."""

from __future__ import annotations

import struct

from .metadata.reader import Assembly
from .metadata.schema import CustomAttributeType, HasCustomAttribute, T
from .names import Names

DEFAULT = 0x1
DISABLE_OPTIMIZATIONS = 0x100


def debugging_modes(asm: Assembly) -> int | None:
    """DebuggingModes of the assembly-level DebuggableAttribute, or None when it has none."""
    names = Names(asm)
    md = asm.md
    for parent, ctor, value in md.rows(T.CustomAttribute):
        ptable, _ = HasCustomAttribute.decode(parent)
        if ptable != T.Assembly:
            continue
        ctable, crow = CustomAttributeType.decode(ctor)
        if ctable != T.MemberRef:
            continue
        owner = names.key(T.MemberRef, crow)
        if "System.Diagnostics.DebuggableAttribute::.ctor" not in owner:
            continue
        blob = md.blob(value)
        if len(blob) < 4 or blob[:2] != b"\1\0":
            continue
        sig = md.blob(md.row(T.MemberRef, crow)[2])
        if len(sig) > 1 and sig[1] == 2:  # .ctor(bool isJITTrackingEnabled, bool isJITOptimizerDisabled)
            return (DEFAULT if blob[2] else 0) | (DISABLE_OPTIMIZATIONS if blob[3] else 0)
        if len(blob) >= 6:  # .ctor(DebuggingModes modes)
            return int(struct.unpack_from("<i", blob, 2)[0])
    return None


def editability_problem(asm: Assembly) -> str | None:
    """None when editable; else why not and what to do."""
    modes = debugging_modes(asm)
    if modes is None:
        return ("it has no DebuggableAttribute, so the runtime will not allow edits; "
                "build it in Debug (hotreload passes -c Debug -p:Optimize=false)")
    missing = []
    if not modes & DEFAULT:
        missing.append("Default")
    if not modes & DISABLE_OPTIMIZATIONS:
        missing.append("DisableOptimizations")
    if not missing:
        return None
    lacks = f"its DebuggableAttribute lacks {' and '.join(missing)} (modes {modes:#x})"
    if modes & DISABLE_OPTIMIZATIONS:
        return f"{lacks}; build it in Debug with debug information (hotreload passes -c Debug -p:Optimize=false)"
    # Optimize=false is a global property here, so the project cannot turn it back on: only raw compiler flags can
    return (f"{lacks}: it was built optimized. hotreload builds with -c Debug -p:Optimize=false, so something passes "
            "--optimize+ (or -O) to the F# compiler: remove it from <OtherFlags> in the project or in a "
            "Directory.Build.props/.targets above it")
