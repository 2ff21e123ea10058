"""Crash reports of the app's exceptions with the right file:line for updated code.

The runtime's own `Exception.ToString()` shows no file/line for frames of an updated module (or, with
`--stack-lines off` or on an unpinned runtime, never again after the first update). hotreload's reports read each
frame's method and IL offset through `System.Diagnostics.StackTrace` and look the line up in the sequence points
it keeps for the running code (`LineInfo.source_of`); frames of other modules keep what the runtime says.
"""

from __future__ import annotations

from typing import Any

from .lines import LineInfo


def _frame(frame: Any, module: Any, lines: LineInfo | None) -> str:
    method = frame.GetMethod()
    if method is None:
        return "   at <unknown>"
    owner = method.DeclaringType
    params = ", ".join(f"{p.ParameterType.Name} {p.Name}" for p in method.GetParameters())
    text = f"   at {owner.FullName + '.' if owner is not None else ''}{method.Name}({params})"
    where: tuple[str, int] | None = None
    if lines is not None and method.Module.Equals(module):
        where = lines.source_of(int(method.MetadataToken) & 0xFFFFFF, int(frame.GetILOffset()))
    elif frame.GetFileName():
        where = str(frame.GetFileName()), int(frame.GetFileLineNumber())
    return f"{text} in {where[0]}:line {where[1]}" if where else text


def format_exception(exc: Any, module: Any, lines: LineInfo | None) -> str:
    """`exc` (a .NET exception) as `ToString()` lays it out, inner exceptions first, with file:line of the app's
    frames (in `module`) from `lines`."""
    from System import Boolean  # type: ignore[import-not-found]
    from System.Diagnostics import StackTrace  # type: ignore[import-not-found]

    text = f"{exc.GetType().FullName}: {exc.Message}"
    inner = exc.InnerException
    if inner is not None:
        text += "\n ---> " + format_exception(inner, module, lines) + "\n   --- End of inner exception stack trace ---"
    frames = StackTrace(exc, Boolean(True)).GetFrames()  # a Python True would pick (Exception, int skipFrames)
    for frame in frames if frames is not None else []:
        text += "\n" + _frame(frame, module, lines)
    return text
