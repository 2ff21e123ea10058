"""The user's app inside the hosted runtime: its load context, entry point thread and reflection access."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import HotReloadError

if TYPE_CHECKING:
    from .fsharp_values import FSharpValues


class AppError(HotReloadError, RuntimeError):
    """The app's code could not be found, or threw, when called through the API; or the app has no entry point."""


class MemberNotFound(AppError, LookupError):
    """No method of that name in the app (never there, or deleted by an update and hidden from reflection)."""


@dataclass
class AppExit:
    code: int | None
    error: str | None  # the exception, when the entry point threw
    exception: Any = None  # the .NET exception itself, for a report with the running code's lines


class HostedApp:
    """An assembly loaded into its own non-collectible AssemblyLoadContext.

    Dependencies (FSharp.Core and the rest) resolve from the build output through the app's
    .deps.json (AssemblyDependencyResolver), so the host's own assemblies never leak in. Shared frameworks the
    runtime was not started with (`framework_dirs`: a web app hosted in a process whose runtime is already up)
    resolve from their folders into this context.

    The app is what `dotnet run` would make it: the entry assembly (`Assembly.GetEntryAssembly()`: hosting
    startup, user secrets, the application name) and `AppContext.BaseDirectory` (its build folder; a hosted
    runtime has none). Framework code in the default context that loads the app's assemblies by name (hosting
    startup, MVC application parts) finds them in this context.
    """

    def __init__(self, dll_path: str, name: str = "hotreload-app", framework_dirs: list[str] | None = None) -> None:
        import clr  # noqa: F401
        from System import Func  # type: ignore[import-not-found]
        from System.Reflection import Assembly, AssemblyName  # type: ignore[import-not-found]
        from System.Runtime.Loader import (  # type: ignore[import-not-found]
            AssemblyDependencyResolver,
            AssemblyLoadContext,
        )

        self.path = os.path.abspath(dll_path)
        self.context = AssemblyLoadContext(name, False)
        # Where dependencies come from, newest build first: a package added while running resolves from the build
        # that brought it (its .deps.json), everything else as at the start.
        self.probes: list[tuple[Any, str]] = [(AssemblyDependencyResolver(self.path), os.path.dirname(self.path))]
        self.framework_dirs = list(framework_dirs or [])
        self.extra: dict[str, str] = {}  # assembly name -> path: hotreload's own assemblies the app loads by name
        self._deps = self._deps_json(self.path)

        def find(asm_name: Any) -> str | None:
            if str(asm_name.Name) in self.extra:
                return self.extra[str(asm_name.Name)]
            for resolver, folder in self.probes:
                found = resolver.ResolveAssemblyToPath(asm_name)
                if not found:
                    candidate = os.path.join(folder, f"{asm_name.Name}.dll")
                    found = candidate if os.path.exists(candidate) else None
                if found:
                    return str(found)
            for folder in self.framework_dirs:
                candidate = os.path.join(folder, f"{asm_name.Name}.dll")
                if os.path.exists(candidate):
                    return candidate
            return None

        def resolve(ctx: Any, asm_name: Any) -> Any:
            found = find(asm_name)
            return ctx.LoadFromAssemblyPath(found) if found else None

        def resolve_default(ctx: Any, asm_name: Any) -> Any:
            """Default-context code asking for an assembly of the app's: the one in the app's context."""
            for loaded in self.context.Assemblies:
                if loaded.GetName().Name == asm_name.Name:
                    return loaded
            found = find(asm_name)
            return self.context.LoadFromAssemblyPath(found) if found else None

        self._resolve = Func[AssemblyLoadContext, AssemblyName, Assembly](resolve)
        self._resolve_default = Func[AssemblyLoadContext, AssemblyName, Assembly](resolve_default)
        self.context.add_Resolving(self._resolve)
        self.assembly = self.context.LoadFromAssemblyPath(self.path)
        AssemblyLoadContext.Default.add_Resolving(self._resolve_default)
        self.module = self.assembly.ManifestModule
        self.libraries: list[Any] = []  # the app's own libraries hot reloaded with it (`load`)
        self._as_dotnet_run()
        self.thread: threading.Thread | None = None
        self.exit: AppExit | None = None
        self._values: FSharpValues | None = None

    def _as_dotnet_run(self) -> None:
        """Entry assembly and base directory as the host sets them for `dotnet run`."""
        from System import AppContext  # type: ignore[import-not-found]
        from System.Reflection import Assembly  # type: ignore[import-not-found]

        AppContext.SetData("APP_CONTEXT_BASE_DIRECTORY", os.path.join(os.path.dirname(self.path), ""))
        Assembly.SetEntryAssembly(self.assembly)

    def close(self) -> None:
        """Stop answering the default context's requests for the app's assemblies (the app is not unloaded)."""
        from System.Runtime.Loader import AssemblyLoadContext  # type: ignore[import-not-found]

        AssemblyLoadContext.Default.remove_Resolving(self._resolve_default)

    @staticmethod
    def _deps_json(dll: str) -> bytes:
        try:
            with open(os.path.splitext(dll)[0] + ".deps.json", "rb") as f:
                return f.read()
        except OSError:
            return b""

    def add_dependencies(self, out_dir: Path, snapshot: Callable[[str], Path]) -> None:
        """When the latest build in `out_dir` lists other dependencies (a package was added), keep a copy of it
        (`snapshot`) and resolve from there first, so code of the next update can load the new assemblies."""
        deps = self._deps_json(str(out_dir / os.path.basename(self.path)))
        if not deps or deps == self._deps:
            return
        from System.Runtime.Loader import AssemblyDependencyResolver  # type: ignore[import-not-found]

        copy = snapshot(f"deps{len(self.probes)}")
        self.probes.insert(0, (AssemblyDependencyResolver(str(copy)), str(copy.parent)))
        self._deps = deps

    # ---- running ----------------------------------------------------------------------------------
    def start(self, args: list[str], on_exit: Callable[[AppExit], None] | None = None) -> None:
        """Run the entry point on a daemon thread (pythonnet releases the GIL while .NET runs)."""
        from System import Array, Object, String  # type: ignore[import-not-found]

        entry = self.assembly.EntryPoint
        if entry is None:
            raise AppError(f"{self.path} has no entry point ([<EntryPoint>]): it is a library, not an app")

        def run() -> None:
            try:
                params = entry.GetParameters()
                argv = Array[Object]([Array[String](args)]) if params.Length else None
                result = entry.Invoke(None, argv)
                self.exit = AppExit(int(result) if result is not None else 0, None)
            except Exception as exc:  # noqa: BLE001 - the app's own exception, reported rather than raised
                inner = getattr(exc, "InnerException", None)
                self.exit = AppExit(None, str(inner.ToString() if inner is not None else exc), inner)
            if on_exit is not None:
                on_exit(self.exit)

        self.thread = threading.Thread(target=run, name="hotreload-app", daemon=True)
        self.thread.start()

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    @property
    def hosted(self) -> bool:
        """Whether the app runs on the .NET generic host (ASP.NET Core, worker services): its console lifetime
        stops the app gracefully on SIGINT, SIGTERM or SIGQUIT, and then the entry point returns."""
        from System import AppDomain  # type: ignore[import-not-found]

        return any(str(a.GetName().Name) == "Microsoft.Extensions.Hosting"
                   for a in AppDomain.CurrentDomain.GetAssemblies())

    def join(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the entry point to return; whether it has."""
        if self.thread is not None:
            self.thread.join(timeout)
        return not self.running

    # ---- reflection -------------------------------------------------------------------------------
    def method(self, token: int) -> Any:
        return self.module.ResolveMethod(token)

    def method_il(self, token: int) -> bytes:
        body = self.method(token).GetMethodBody()
        return bytes(body.GetILAsByteArray()) if body is not None else b""

    def load(self, path: str) -> Any:
        """Load one of the app's own libraries into its context (no code runs), as the app would on first use;
        `find_method` searches it too. The one already loaded, when it is."""
        name = os.path.splitext(os.path.basename(path))[0]
        loaded = next((a for a in self.context.Assemblies if str(a.GetName().Name) == name), None)
        assembly = loaded if loaded is not None else self.context.LoadFromAssemblyPath(os.path.abspath(path))
        self.libraries.append(assembly)
        return assembly

    def find_method(self, qualified: str) -> Any:
        """'Namespace.Module.fn' (or 'Module.fn') -> the static MethodInfo. A module that shares its name with a
        type is compiled as `<Name>Module` (F#'s ModuleSuffix): it is found by the name written in the source."""
        from System.Reflection import BindingFlags  # type: ignore[import-not-found]

        type_name, _, member = qualified.rpartition(".")
        flags = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.Instance
        types = [(str(t.FullName).replace("+", "."), t) for asm in (self.assembly, *self.libraries)
                 for t in asm.GetTypes()]
        for wanted in (type_name, type_name + "Module"):
            for name, t in types:
                if name != wanted:
                    continue
                found = [m for m in t.GetMethods(flags) if m.Name == member]
                if found:
                    return found[0]
                prop = t.GetProperty(member, flags)
                if prop is not None:
                    return prop.GetGetMethod(True)
        raise MemberNotFound(f"no method {qualified} in {os.path.basename(self.path)}")

    @property
    def values(self) -> FSharpValues:
        """Converts `call`'s arguments and results, with F#'s reflection from the FSharp.Core the app's code uses:
        the one its load context resolves (another FSharp.Core in the process does not know the app's types)."""
        if self._values is None:
            from .fsharp_values import FSharpValues

            core = next((a for a in self.context.Assemblies if str(a.GetName().Name) == "FSharp.Core"), None)
            if core is None:
                ref = next((r for r in self.assembly.GetReferencedAssemblies() if str(r.Name) == "FSharp.Core"), None)
                core = self.context.LoadFromAssemblyName(ref) if ref is not None else None
            self._values = FSharpValues(core, lambda: list(self.context.Assemblies))
        return self._values

    def call(self, qualified: str, *args: Any, type_args: Sequence[Any] | None = None) -> Any:
        """Invoke a static method with Python arguments converted to its parameter types, and its result converted
        back to Python (see fsharp_values); a generic one with `type_args`, or type arguments inferred from `args`."""
        from System import Array, Object  # type: ignore[import-not-found]

        found = self.find_method(qualified)
        if args and not type_args and found.GetParameters().Length == 0 and _is_function(found.ReturnType):
            return self._apply_value(qualified, found, args)
        method, net_args = self.values.bind(qualified, found, args, type_args)
        try:
            result = method.Invoke(None, Array[Object](net_args) if net_args else None)
        except Exception as exc:  # noqa: BLE001 - .NET exceptions surface as Exception
            inner = getattr(exc, "InnerException", None)
            if inner is not None:
                raise AppError(f"{qualified} threw {inner.GetType().FullName}: {inner.Message}") from None
            raise AppError(f"{qualified} could not be called with {len(args)} argument(s): "
                           f"{str(exc).splitlines()[0]}") from None
        return self.values.to_python(result)

    def _apply_value(self, qualified: str, getter: Any, args: Sequence[Any]) -> Any:
        """A function defined as a value (`let f = g >> h`, compiled as a property of type FSharpFunc): read it
        and apply it to the arguments one by one, each converted to the type the function takes."""
        from System import Array, Object  # type: ignore[import-not-found]

        from .fsharp_values import ConversionError

        value, t = getter.Invoke(None, None), getter.ReturnType
        for i, arg in enumerate(args):
            if not _is_function(t):
                raise AppError(f"{qualified} takes {i} argument(s); got {len(args)}")
            domain, result = t.GetGenericArguments()
            try:
                net = self.values.to_net(arg, domain)
            except ConversionError as exc:
                raise AppError(f"{qualified}: argument {i + 1} wants {domain.Name}: {exc}") from None
            try:
                value = t.GetMethod("Invoke").Invoke(value, Array[Object]([net]))
            except Exception as exc:  # noqa: BLE001 - .NET exceptions surface as Exception
                inner = getattr(exc, "InnerException", None)
                raise AppError(f"{qualified} threw {inner.GetType().FullName}: {inner.Message}" if inner is not None
                               else f"{qualified}: {str(exc).splitlines()[0]}") from None
            t = result
        return self.values.to_python(value)


def _is_function(t: Any) -> bool:
    """An F# function type (FSharpFunc<'a, 'b>) with its type arguments known."""
    return bool(t.IsGenericType and not t.ContainsGenericParameters
                and str(t.GetGenericTypeDefinition().FullName) == "Microsoft.FSharp.Core.FSharpFunc`2")
