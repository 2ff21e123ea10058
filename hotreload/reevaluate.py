"""Computes module-level values again in the running app, after the update that changed them is applied.

A value's code is a stretch of its startup class's static constructor (hotreload.module_values finds it). The
constructor already ran and will not run again, so that stretch is copied from the running constructor's IL
(the update's new code, with the running module's tokens) into a dynamic method owned by the startup class,
its tokens re-issued for the dynamic method, and run once: it stores the new value where every read finds it.
This runs the app's code, on purpose: the user's edit asked for that value to be what the new code computes.
A stretch whose running IL is not what the build said is not run (the check reads the field it stores).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from .metadata.il import TOKEN_KINDS, instructions
from .module_values import Value

_STRING, _FIELD, _METHODDEF, _MEMBERREF, _METHODSPEC = 0x70, 0x04, 0x06, 0x0A, 0x2B
_TYPES = (0x01, 0x02, 0x1B)  # TypeRef, TypeDef, TypeSpec


@dataclass
class Reevaluated:
    done: list[str] = field(default_factory=list)  # values computed again, in order
    failed: list[str] = field(default_factory=list)  # one sentence each: the value keeps its previous one


def reevaluate(assembly: Any, values: list[Value]) -> Reevaluated:
    """Compute `values` again, in order, in the running `assembly`. A value whose code throws keeps its old value
    (its store is the last instruction), and the ones after it are still computed."""
    result = Reevaluated()
    for value in values:
        try:
            _run(assembly, value)
        except _Unsupported as exc:
            result.failed.append(f"{value.name}: its new value cannot be computed here ({exc}); restart the app to "
                                 "pick it up")
        except Exception as exc:  # noqa: BLE001 - .NET exceptions surface as Exception
            inner = getattr(exc, "InnerException", None)
            shown = inner if inner is not None else exc
            kind = str(shown.GetType().Name) if hasattr(shown, "GetType") else type(shown).__name__
            message = str(getattr(shown, "Message", shown)).splitlines()[0] if str(shown) else ""
            result.failed.append(f"{value.name}: computing its new value threw {kind}: {message}; it keeps its "
                                 "previous value")
        else:
            result.done.append(value.name)
    return result


class _Unsupported(Exception):
    """The running code is not what hotreload can copy a value's stretch from."""


def _run(assembly: Any, value: Value) -> None:
    from System import Array, Byte, Type  # type: ignore[import-not-found]
    from System.Reflection.Emit import DynamicMethod, SignatureHelper  # type: ignore[import-not-found]

    startup = assembly.GetType(value.startup)
    if startup is None:
        raise _Unsupported(f"{value.startup} is not in the running assembly")
    initializer = startup.TypeInitializer
    if initializer is None:
        raise _Unsupported(f"{value.startup} has no static constructor in the running app")
    body = initializer.GetMethodBody()
    il = bytes(body.GetILAsByteArray())
    module = startup.Module
    if len(il) < value.end or il[value.end - 5] != 0x80:
        raise _Unsupported("the running initializer is not the one hotreload built")
    stored = module.ResolveField(struct.unpack_from("<i", il, value.end - 4)[0])
    if str(stored.Name) != value.field.split("::", 1)[1].split("|", 1)[0]:
        raise _Unsupported(f"the running initializer stores {stored.Name} where hotreload expected {value.field}")
    code = bytearray(il[value.start:value.end]) + (b"\x26" if value.pop else b"") + b"\x2a"  # pop; ret
    method = DynamicMethod(f"hotreload: {value.name}", None, Type.EmptyTypes, startup, True)
    info = method.GetDynamicILInfo()
    for ins in instructions(bytes(code)):
        if ins.kind in TOKEN_KINDS:
            token = struct.unpack_from("<i", code, ins.operand_offset)[0]
            struct.pack_into("<i", code, ins.operand_offset, _reissue(info, module, token))
    clauses = [c for c in body.ExceptionHandlingClauses
               if value.start <= c.TryOffset and c.HandlerOffset + c.HandlerLength <= value.end]
    signature = SignatureHelper.GetLocalVarSigHelper()
    for local in body.LocalVariables:
        signature.AddArgument(local.LocalType, local.IsPinned)
    info.SetCode(Array[Byte](bytes(code)), max(int(body.MaxStackSize), 2))
    info.SetLocalSignature(signature.GetSignature())
    if clauses:
        info.SetExceptions(Array[Byte](_exception_section(info, clauses, value.start)))
    method.Invoke(None, None)


def _reissue(info: Any, module: Any, token: int) -> int:
    """The dynamic method's token for what `token` names in the running module."""
    table = (token >> 24) & 0xFF
    if table == _STRING:
        return int(info.GetTokenFor(module.ResolveString(token)))
    if table in _TYPES:
        return int(info.GetTokenFor(module.ResolveType(token).TypeHandle))
    if table == _FIELD:
        return _field_token(info, module.ResolveField(token))
    if table in (_METHODDEF, _METHODSPEC):
        return _method_token(info, module.ResolveMethod(token))
    if table == _MEMBERREF:
        member = module.ResolveMember(token)
        if str(member.MemberType) == "Field":
            return _field_token(info, module.ResolveField(token))
        return _method_token(info, module.ResolveMethod(token))
    raise _Unsupported(f"its code uses a token of table {table:#x}, which hotreload cannot re-issue")


def _method_token(info: Any, method: Any) -> int:
    declaring = method.DeclaringType
    if declaring is not None and declaring.IsGenericType:
        return int(info.GetTokenFor(method.MethodHandle, declaring.TypeHandle))
    return int(info.GetTokenFor(method.MethodHandle))


def _field_token(info: Any, fld: Any) -> int:
    declaring = fld.DeclaringType
    if declaring is not None and declaring.IsGenericType:
        return int(info.GetTokenFor(fld.FieldHandle, declaring.TypeHandle))
    return int(info.GetTokenFor(fld.FieldHandle))


def _exception_section(info: Any, clauses: Any, start: int) -> bytes:
    """A fat exception-handling section (ECMA-335 II.25.4.6) for the clauses inside the stretch, moved to it."""
    out = bytearray(struct.pack("<I", 0x41 | ((4 + 24 * len(clauses)) << 8)))
    for c in clauses:
        flags = int(c.Flags)
        extra = 0
        if flags == 0:  # a typed catch
            extra = int(info.GetTokenFor(c.CatchType.TypeHandle))
        elif flags == 1:  # a filter
            extra = int(c.FilterOffset) - start
        out += struct.pack("<IIIIII", flags, int(c.TryOffset) - start, int(c.TryLength),
                           int(c.HandlerOffset) - start, int(c.HandlerLength), extra)
    return bytes(out)
