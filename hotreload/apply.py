"""Applies deltas to the running app, one at a time, and proves each one took.

ApplyUpdate is not transactional and has no lock: updates are serialized here, the baseline advances
only after success, and after a failure nothing more is applied (the process state is unknown).
Proof: each updated method's IL is read back through reflection and compared with what we sent, the
method is JIT-compiled (bad IL only fails there), and safe parameterless functions are invoked.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .app import HostedApp
from .delta import Baseline, Delta
from .diff import Build
from .lines import LineInfo
from .names import display_name
from .runtime import UpdateApplier

# A parameterless function is invoked to check it only if its IL calls nothing from these.
_SIDE_EFFECT_SCOPES = ("System.Console", "System.IO.", "System.Threading", "System.Net.", "System.Diagnostics.Process",
                       "System.Environment", "System.Random", "Microsoft.FSharp.Core.PrintfModule",
                       "Microsoft.FSharp.Core.ExtraTopLevelOperators::PrintFormat", "System.Runtime.InteropServices")


class ApplyFailed(Exception):
    """The runtime rejected a delta; the process may be inconsistent and needs a restart."""


@dataclass
class Verification:
    il_matches: list[str] = field(default_factory=list)
    jitted: list[str] = field(default_factory=list)
    invoked: dict[str, str] = field(default_factory=dict)  # method -> result (repr) or exception text
    problems: list[str] = field(default_factory=list)


class Updater:
    """Owns the baseline of one hosted app and moves it forward generation by generation."""

    def __init__(self, app: HostedApp, baseline: Baseline) -> None:
        self.app = app
        self.baseline = baseline
        self.applier = UpdateApplier()
        self.lock = threading.Lock()
        self.failed: str | None = None
        self.handler_errors: list[str] = []
        # hook (hotreload.lines): exceptions in updated code show the new file and line in their stack trace
        self.lines = LineInfo(app.assembly, os.path.splitext(app.path)[0] + ".pdb", baseline.generation)

    def apply(self, delta: Delta) -> float:
        """Apply one delta; returns seconds spent in ApplyUpdate and the update handlers."""
        with self.lock:
            if self.failed:
                raise ApplyFailed(f"an earlier update failed ({self.failed}); restart the app to continue")
            if delta.generation != self.baseline.generation + 1:
                raise ApplyFailed(f"delta generation {delta.generation} does not follow {self.baseline.generation}")
            start = time.perf_counter()
            self.lines.before_apply()  # hook (hotreload.lines); never raises
            try:
                self.applier.apply(self.app.assembly, delta.metadata, delta.il, delta.pdb)
            except Exception as exc:  # noqa: BLE001 - .NET exceptions surface as Exception
                self.failed = f"generation {delta.generation}: {exc}".splitlines()[0]
                raise ApplyFailed(f"the runtime rejected generation {delta.generation} ({str(exc).splitlines()[0]}); "
                                  "the app may now be inconsistent: restart it") from None
            self.baseline.commit(delta)
            lines_problem = self.lines.applied(delta.pdb)  # hook (hotreload.lines); never raises
            self.handler_errors = self._run_handlers(delta) + ([lines_problem] if lines_problem else [])
            return time.perf_counter() - start

    def _updated_types(self, delta: Delta) -> Any:
        from System import Array, Type  # type: ignore[import-not-found]

        types = {}
        for tok in delta.method_tokens.values():
            declaring = self.app.method(tok).DeclaringType
            types[str(declaring.AssemblyQualifiedName)] = declaring
        return Array[Type](list(types.values()))

    def _run_handlers(self, delta: Delta) -> list[str]:
        """CoreLib's reflection cache first, then the app's MetadataUpdateHandlers: all ClearCache, then all
        UpdateApplication, each isolated so one failing handler does not stop the others."""
        import clr
        from System import Array, Object, Type  # type: ignore[import-not-found]
        from System.Reflection import BindingFlags  # type: ignore[import-not-found]

        errors: list[str] = []
        types = self._updated_types(delta)
        args = Array[Object]([types])
        flags = BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic
        signature = Array[Type]([clr.GetClrType(Type).MakeArrayType()])
        corelib = clr.GetClrType(Object).Assembly.GetType("System.Reflection.Metadata.RuntimeTypeMetadataUpdateHandler")
        handlers = [corelib] if corelib is not None else []
        handler_attr = "System.Reflection.Metadata.MetadataUpdateHandlerAttribute"
        for asm in self.app.context.Assemblies:
            for data in asm.GetCustomAttributesData():
                if str(data.AttributeType.FullName) == handler_attr:
                    handlers.append(data.ConstructorArguments[0].Value)
        for name in ("ClearCache", "UpdateApplication"):
            for handler in handlers:
                try:
                    method = handler.GetMethod(name, flags, None, signature, None)
                    if method is not None:
                        method.Invoke(None, args)
                except Exception as exc:  # noqa: BLE001 - .NET exceptions surface as Exception
                    errors.append(f"{handler.FullName}.{name} threw: {str(exc).splitlines()[0]}")
        return errors

    def verify(self, delta: Delta, build: Build, invoke_timeout: float = 2.0) -> Verification:
        """Read back, JIT and (where safe) run every updated method."""
        from System.Runtime.CompilerServices import RuntimeHelpers  # type: ignore[import-not-found]

        result = Verification(problems=list(self.handler_errors))
        for key, tok in delta.method_tokens.items():
            name = display_name(key)
            method = self.app.method(tok)
            live = self.app.method_il(tok)
            if live == delta.method_il[key]:
                result.il_matches.append(name)
            else:
                result.problems.append(f"{name}: the runtime still reports the old IL")
                continue
            generic = bool(method.IsGenericMethodDefinition or method.DeclaringType.ContainsGenericParameters)
            if not generic:
                try:
                    RuntimeHelpers.PrepareMethod(method.MethodHandle)
                    result.jitted.append(name)
                except Exception as exc:  # noqa: BLE001 - .NET exceptions surface as Exception
                    result.problems.append(f"{name}: JIT rejected the new IL: {str(exc).splitlines()[0]}")
                    continue
            new_rid = delta.new_rids.get(key, 0)
            if new_rid and "@" not in name and self._safe_to_invoke(method, build, new_rid):
                result.invoked[name] = self._invoke(method, invoke_timeout)
        return result

    def _safe_to_invoke(self, method: Any, build: Build, rid: int) -> bool:
        if not method.IsStatic or method.GetParameters().Length or method.IsGenericMethodDefinition:
            return False
        if method.DeclaringType.ContainsGenericParameters or method.Name in (".cctor", "main@"):
            return False
        if str(method.ReturnType.FullName) == "System.Void" or method == self.app.assembly.EntryPoint:
            return False
        refs = build.normalized(rid)[1]
        return not any(scope in ref for ref in refs for scope in _SIDE_EFFECT_SCOPES)  # type: ignore[attr-defined]

    @staticmethod
    def _invoke(method: Any, timeout: float) -> str:
        box: dict[str, str] = {}

        def run() -> None:
            try:
                value = method.Invoke(None, None)
                box["result"] = repr(value) if isinstance(value, (bool, int, float, str)) else str(value)
            except Exception as exc:  # noqa: BLE001 - .NET exceptions surface as Exception
                inner = getattr(exc, "InnerException", None)
                box["result"] = f"threw {inner.GetType().FullName if inner is not None else type(exc).__name__}"

        t = threading.Thread(target=run, daemon=True)
        t.start()
        t.join(timeout)
        return box.get("result", f"still running after {timeout:.0f}s (not waited for)")
