"""Applies deltas to the running app, one at a time, and proves each one took.

ApplyUpdate is not transactional and has no lock: updates are serialized here, the baseline advances
only after success, and after a failure nothing more is applied (the process state is unknown).
Proof without running the app's code: each updated method's IL is read back through reflection and compared
with what we sent, the method is JIT-compiled (bad IL only fails there; JIT runs no app code, not even static
constructors), and added types, methods and fields must be visible through reflection.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .app import HostedApp
from .baseline import Baseline
from .delta import Delta
from .errors import HotReloadError
from .lines import LineInfo
from .names import display_name
from .runtime import UpdateApplier


class ApplyFailed(HotReloadError):
    """The runtime rejected a delta; the process may be inconsistent and needs a restart."""


@dataclass
class Verification:
    """What reading the running code back showed. `problems` are failed checks (the save failed); `warnings` are
    things the user should hear that do not undo the update (an update handler threw, stack lines are off)."""

    il_matches: list[str] = field(default_factory=list)
    jitted: list[str] = field(default_factory=list)
    visible: list[str] = field(default_factory=list)  # added members that reflection shows
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class Updater:
    """Owns the baseline of one assembly of a hosted app (the app's own by default, or one of its F# libraries,
    loaded from `path`) and moves it forward generation by generation."""

    def __init__(self, app: HostedApp, baseline: Baseline, stack_lines: str = "auto", assembly: Any = None,
                 path: str | None = None) -> None:
        self.app = app
        self.assembly = assembly if assembly is not None else app.assembly
        self.module = self.assembly.ManifestModule
        self.path = path or app.path
        self.baseline = baseline
        self.applier = UpdateApplier()
        self.lock = threading.Lock()
        self.failed: str | None = None
        self.handler_errors: list[str] = []
        self._handler_cache: dict[str, list[Any]] = {}
        self.handlers_run: list[str] = []  # the MetadataUpdateHandler types of the last update, in order
        # hook (hotreload.lines): exceptions in updated code show the new file and line in their stack trace
        self.lines = LineInfo(self.assembly, os.path.splitext(self.path)[0] + ".pdb", baseline.generation,
                              stack_lines)

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
                self.applier.apply(self.assembly, delta.metadata, delta.il, delta.pdb)
            except Exception as exc:  # noqa: BLE001 - .NET exceptions surface as Exception
                self.failed = f"generation {delta.generation}: {exc}".splitlines()[0]
                raise ApplyFailed(f"the runtime rejected generation {delta.generation} ({str(exc).splitlines()[0]}); "
                                  "the app may now be inconsistent: restart it") from None
            try:
                self.baseline = self.baseline.advanced(delta)
            except Exception as exc:  # noqa: BLE001 - a bug of ours: the running code is ahead of our records
                self.failed = f"generation {delta.generation} was applied but not recorded: {exc}".splitlines()[0]
                raise ApplyFailed(f"generation {delta.generation} was applied, but hotreload could not record it "
                                  f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                                  "nothing more can be applied to this process: restart the app") from None
            lines_problem = self.lines.applied(delta.pdb)  # hook (hotreload.lines); never raises
            try:
                self.handler_errors = self._run_handlers(delta)
            except Exception as exc:  # noqa: BLE001 - .NET exceptions surface as Exception
                self.handler_errors = [f"the update handlers could not be run: {str(exc).splitlines()[0]}"]
            if lines_problem:
                self.handler_errors.append(lines_problem)
            return time.perf_counter() - start

    def _updated_types(self, delta: Delta) -> Any:
        from System import Array, Type  # type: ignore[import-not-found]

        types = {}
        for tok in delta.method_tokens.values():
            declaring = self.module.ResolveMethod(tok).DeclaringType
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
        for asm, fixed in self._handler_assemblies():
            handlers += [h for h in self._handlers_of(asm, fixed) if corelib is None or not h.Equals(corelib)]
        self.handlers_run = [str(h.FullName) for h in handlers]
        for name in ("ClearCache", "UpdateApplication"):
            for handler in handlers:
                try:
                    method = handler.GetMethod(name, flags, None, signature, None)
                    if method is not None:
                        method.Invoke(None, args)
                except Exception as exc:  # noqa: BLE001 - .NET exceptions surface as Exception
                    errors.append(f"{handler.FullName}.{name} threw: {str(exc).splitlines()[0]}")
        return errors

    def _handler_assemblies(self) -> list[tuple[Any, bool]]:
        """Where MetadataUpdateHandlers may be: the framework (System.Text.Json, ASP.NET Core: the default context,
        which a framework-dependent app's shared frameworks load into) first, then the app's own assemblies, so
        caches below are cleared before the app's handlers run (as dotnet watch orders them)."""
        from System.Runtime.Loader import AssemblyLoadContext  # type: ignore[import-not-found]

        return [*((a, True) for a in AssemblyLoadContext.Default.Assemblies),
                *((a, False) for a in self.app.context.Assemblies)]

    def _handlers_of(self, asm: Any, fixed: bool) -> list[Any]:
        """The handler types an assembly names in [assembly: MetadataUpdateHandler(typeof(T))]; read once for a
        `fixed` (framework) assembly, every time for the app's, whose attributes an update may change."""
        key = str(asm.FullName)
        found = self._handler_cache.get(key) if fixed else None
        if found is None:
            found = []
            try:
                for data in asm.GetCustomAttributesData():
                    if str(data.AttributeType.FullName) == "System.Reflection.Metadata.MetadataUpdateHandlerAttribute":
                        found.append(data.ConstructorArguments[0].Value)
            except Exception:  # noqa: BLE001 - an assembly whose attributes cannot be read has no handler for us
                found = []
            if fixed:
                self._handler_cache[key] = found
        return found

    def verify(self, delta: Delta) -> Verification:
        """Read back and JIT every updated method, and find every added member through reflection.

        Runs none of the app's code: hot reload must leave the app's state as it was (a function that clears a
        collection or bumps a counter must not run because it was saved)."""
        from System.Reflection import BindingFlags  # type: ignore[import-not-found]
        from System.Runtime.CompilerServices import RuntimeHelpers  # type: ignore[import-not-found]

        result = Verification(warnings=list(self.handler_errors))
        for key, tok in delta.method_tokens.items():
            name = display_name(key)
            method = self.module.ResolveMethod(tok)
            body = method.GetMethodBody()
            live = bytes(body.GetILAsByteArray()) if body is not None else b""
            if live != delta.method_il[key]:
                result.problems.append(f"{name}: the runtime still reports the old IL")
                continue
            result.il_matches.append(name)
            if method.IsGenericMethodDefinition or method.DeclaringType.ContainsGenericParameters:
                continue  # compiled per instantiation: nothing to prepare without choosing type arguments
            try:
                RuntimeHelpers.PrepareMethod(method.MethodHandle)
                result.jitted.append(name)
            except Exception as exc:  # noqa: BLE001 - .NET exceptions surface as Exception
                first = str(exc).splitlines()[0]
                if type(exc).__name__ in ("FileNotFoundException", "FileLoadException", "BadImageFormatException"):
                    result.problems.append(f"{name}: its new code needs an assembly the running app cannot load "
                                           f"({first}); a restart loads it")
                else:
                    result.problems.append(f"{name}: the JIT rejected the new IL: {first}")
        flags = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.Instance \
            | BindingFlags.DeclaredOnly
        for key, tok in delta.new_defs.items():
            try:
                if key.startswith("T:"):
                    seen = self.module.ResolveType(tok) is not None
                elif key.startswith("M:"):
                    member = self.module.ResolveMethod(tok)
                    owner = member.DeclaringType
                    listed = [owner.TypeInitializer] if str(member.Name) == ".cctor" else \
                        owner.GetConstructors(flags) if str(member.Name) == ".ctor" else owner.GetMethods(flags)
                    seen = any(m is not None and m.MetadataToken == tok for m in listed)
                elif key.startswith("F:"):
                    member = self.module.ResolveField(tok)
                    seen = any(f.MetadataToken == tok for f in member.DeclaringType.GetFields(flags))
                else:
                    continue
            except Exception as exc:  # noqa: BLE001 - .NET exceptions surface as Exception
                result.problems.append(f"added {display_name(key)}: reflection cannot find it "
                                       f"({str(exc).splitlines()[0]})")
                continue
            if seen:
                result.visible.append(display_name(key))
            else:
                result.problems.append(f"added {display_name(key)}: not visible through reflection")
        return result
