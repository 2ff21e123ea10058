"""Who in the running code may still reach a method a save deletes or replaces (a signature change or a rename).

Once applied, every caller compiled in the new build calls the new method, but three kinds of holder keep the old
one, which now throws MissingMethodException: a delegate made of it before the save (its target is fixed), an F#
function value (a closure object) of a type the new build no longer has, and a frame already running a caller
(the entry point's loop runs its old body until it returns). They are found by reading the running build's IL, so
the user hears of them at the save rather than from a later exception.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from .indexed import Build
from .metadata.il import instructions
from .metadata.schema import T, split_token
from .names import display_name

_CALLS = (0x28, 0x6F, 0x73)  # call, callvirt, newobj
_ADDRESS = (0xFE06, 0xFE07)  # ldftn, ldvirtftn: a delegate is made of the method


def holders(old: Build, new: Build, deleted: Iterable[str], running: str | None) -> list[str]:
    """What may still reach the methods of `deleted` (keys in the running build `old`) after the update: one
    sentence each. `running` is the key of a method on a stack now (the entry point, while the app runs)."""
    targets = {old.methods[k]: display_name(k) for k in deleted if k in old.methods}
    if not targets:
        return []
    found: dict[str, None] = {}
    for key, rid in old.methods.items():
        body = old.body(rid)
        if body is None:
            continue
        for ins in instructions(body.code):
            if ins.opcode not in _CALLS and ins.opcode not in _ADDRESS:
                continue
            table, row = split_token(struct.unpack_from("<I", body.code, ins.operand_offset)[0])
            if table != T.MethodDef or row not in targets:
                continue
            target, caller = targets[row], display_name(key)
            if ins.opcode in _ADDRESS:
                found[f"delegates made of {target} in {caller} before this save still call the old {target}, "
                      "which now throws MissingMethodException: restart to make them again"] = None
            elif key == running:
                found[f"{caller} is running and calls {target}: its running frame keeps the old call, which now "
                      "throws MissingMethodException: restart to run the new code"] = None
            elif key not in new.methods and "@" in caller:
                found[f"F# function values made before this save by {caller.rsplit('.', 1)[0]} still call the old "
                      f"{target}, which now throws MissingMethodException: restart to make them again"] = None
    return list(found)
