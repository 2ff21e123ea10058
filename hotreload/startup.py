"""Which methods run only while the app starts: edits to them apply, but take effect only after a restart.

A web app's `main` registers routes and services once, then blocks in `app.Run()`; a console app's `main` may
loop forever. Either way an edit to `main`, or to a function only `main` calls once (`configureServices builder`,
`mapRoutes app`), is applied to a method that has already run and will not run again. hotreload says so instead
of "applied", and the restart policy decides.

The analysis reads IL only (nothing runs): from the entry point, follow call sites that are not inside a loop;
a method reached that way is startup-only if every reference to it anywhere in the assembly is such a call site
in a startup-only method (or the entry point). A method whose address is taken (a delegate), that is virtual, or
that is called from a loop or from anything else is not: it may run again. Calls through closures
(`FSharpFunc.Invoke`) are not followed: a route handler's lambda runs per request.
"""

from __future__ import annotations

import struct

from .indexed import Build
from .metadata.il import BR1, BR4, METHOD, SWITCH, instructions
from .metadata.schema import MethodDefOrRef, T, split_token

_CALLS = {0x28, 0x6F, 0x73}  # call, callvirt, newobj
_VIRTUAL = 0x0040


def _loops(code: bytes) -> list[tuple[int, int]]:
    """IL ranges [target, branch] of backward branches: code in them may run more than once."""
    out = []
    for ins in instructions(code):
        if ins.kind in (BR1, BR4):
            fmt = "<b" if ins.kind == BR1 else "<i"
            target = ins.operand_offset + ins.operand_size + struct.unpack_from(fmt, code, ins.operand_offset)[0]
            if target <= ins.offset:
                out.append((target, ins.offset))
        elif ins.kind == SWITCH:
            count, = struct.unpack_from("<I", code, ins.operand_offset)
            end = ins.operand_offset + ins.operand_size
            for i in range(count):
                target = end + struct.unpack_from("<i", code, ins.operand_offset + 4 + 4 * i)[0]
                if target <= ins.offset:
                    out.append((target, ins.offset))
    return out


def _method_def(build: Build, tok: int) -> int:
    """The MethodDef row a method operand names (directly, or through a MethodSpec of a generic method); 0 if none."""
    table, row = split_token(tok)
    if table == T.MethodDef:
        return row
    if table == T.MethodSpec and row:
        method = build.asm.md.row(T.MethodSpec, row)[0]
        spec_table, spec_row = MethodDefOrRef.decode(method)
        return spec_row if spec_table == T.MethodDef else 0
    return 0


def _token_bytes(rid: int) -> bytes:
    return struct.pack("<I", (int(T.MethodDef) << 24) | rid)


def startup_only(build: Build, entry: int, among: set[int]) -> set[int]:
    """The MethodDef rows of `among` (the methods a save updated) that run only while the app starts: the entry
    point `entry` and the methods only it (or they) call once. Conservative: a method is left out on any doubt.
    The search of every body for other references runs only when one of `among` is still a candidate."""
    sites: dict[int, bool] = {}  # callee -> every reference seen so far is a single-run call from startup code
    order = [entry]
    seen = {entry}
    while order:
        caller = order.pop()
        body = build.body(caller)
        if body is None:
            continue
        loops = _loops(body.code)
        for ins in instructions(body.code):
            if ins.kind != METHOD:
                continue
            callee = _method_def(build, struct.unpack_from("<I", body.code, ins.operand_offset)[0])
            if not callee or callee == entry:
                continue
            once = ins.opcode in _CALLS and not any(lo <= ins.offset <= hi for lo, hi in loops) \
                and not build.method_flags(callee)[0] & _VIRTUAL
            sites[callee] = sites.get(callee, True) and once
            if once and callee not in seen:
                seen.add(callee)
                order.append(callee)
    found = {rid for rid, ok in sites.items() if ok}
    if not found & among:
        return among & {entry}
    # Referenced from anywhere else (another method, a MethodSpec of it): it may run again. Until nothing changes:
    # once a method is left out, its own body is searched too, which leaves out what it calls.
    specs = [rid for rid, row in enumerate(build.asm.md.rows(T.MethodSpec), 1)
             if MethodDefOrRef.decode(row[0])[0] == T.MethodDef]
    spec_of = {MethodDefOrRef.decode(build.asm.md.row(T.MethodSpec, rid)[0])[1]: rid for rid in specs}
    count = len(build.asm.md.rows(T.MethodDef))
    changed = True
    while changed:
        changed = False
        patterns = {rid: [_token_bytes(rid)] + ([struct.pack("<I", (int(T.MethodSpec) << 24) | spec_of[rid])]
                                               if rid in spec_of else []) for rid in found}
        for rid in range(1, count + 1):
            if rid == entry or rid in found:
                continue
            body = build.body(rid)
            if body is None:
                continue
            code = body.code
            for callee, needles in patterns.items():
                if callee in found and any(n in code for n in needles):
                    found.discard(callee)
                    changed = True
    return (found | {entry}) & among

