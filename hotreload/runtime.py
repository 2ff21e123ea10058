"""Hosts CoreCLR in this Python process (pythonnet) with hot reload enabled, and talks to it.

CoreCLR reads DOTNET_MODIFIABLE_ASSEMBLIES once, at start-up, so `start_runtime` sets it before
pythonnet loads the runtime; the runtime cannot be unloaded, so there is one per process.

Files: the runtimeconfig pythonnet needs is private (mkstemp) and deleted as soon as the runtime is up (hostfxr
reads it before the runtime starts). The runtime's own IPC files in the temp folder (debugger pipes, diagnostics
socket), which a hosted runtime never removes, are removed when this process exits or execs
(`remove_runtime_files`).
"""

from __future__ import annotations

import atexit
import base64
import glob
import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from typing import Any

from . import processes
from .errors import HotReloadError

_lock = threading.Lock()
_info: RuntimeInfo | None = None
_runtime_files: str | None = None
"""The folder (with a trailing slash) where this process's runtime keeps its IPC files, once it is loaded."""


class HostError(HotReloadError, RuntimeError):
    """The .NET runtime could not be started: the message says what to install."""


@dataclass(frozen=True)
class RuntimeInfo:
    version: str
    supported: bool
    capabilities: tuple[str, ...]
    dotnet_root: str
    frameworks: tuple[tuple[str, str], ...] = ()
    """The shared frameworks the runtime was started with: (name, folder), e.g. Microsoft.AspNetCore.App."""

    def framework_names(self) -> set[str]:
        return {name for name, _ in self.frameworks}


def app_runtime_options(config: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """The `runtimeOptions` of an app's own `*.runtimeconfig.json` when it names shared frameworks (a
    framework-dependent app, as `dotnet run` runs it), else None (no file, or a self-contained app)."""
    if config is None:
        return None
    try:
        with open(config, encoding="utf-8-sig") as f:
            options = json.load(f).get("runtimeOptions")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(options, dict) or not (options.get("framework") or options.get("frameworks")):
        return None
    return options


def app_frameworks(config: str | os.PathLike[str] | None) -> list[tuple[str, str]]:
    """(name, version) of each shared framework an app's runtimeconfig names."""
    options = app_runtime_options(config) or {}
    listed = options.get("frameworks") or [options.get("framework")]
    return [(str(f["name"]), str(f.get("version", "0"))) for f in listed if isinstance(f, dict) and "name" in f]


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(x) if x.isdigit() else 0 for x in version.split("-")[0].split("."))


def framework_folder(root: str, name: str, version: str) -> str | None:
    """The folder of the installed framework `name` that the host would roll forward to from `version`: the highest
    installed release of the same major version at or above it (LatestPatch within the lowest such minor, as the
    default Minor roll-forward picks)."""
    base = os.path.join(root, "shared", name)
    try:
        installed = [v for v in os.listdir(base) if v.split(".")[0].isdigit()]
    except OSError:
        return None
    want = _version_key(version)
    fits = [v for v in installed if _version_key(v)[:1] == want[:1] and _version_key(v) >= want]
    if not fits:
        return None
    lowest_minor = min(_version_key(v)[:2] for v in fits)
    best = max((v for v in fits if _version_key(v)[:2] == lowest_minor), key=_version_key)
    return os.path.join(base, best)


def dotnet_root() -> str:
    """The folder holding the `dotnet` host and shared frameworks."""
    env = os.environ.get("DOTNET_ROOT")
    if env and os.path.isdir(env):
        return env
    exe = shutil.which("dotnet")
    if not exe:
        raise HostError("the .NET SDK was not found: install the .NET 10 SDK and put `dotnet` on PATH")
    return os.path.dirname(os.path.realpath(exe))


def _framework_version(root: str) -> str:
    """Highest installed Microsoft.NETCore.App 10.x (the runtime we host)."""
    try:
        out = processes.run([os.path.join(root, "dotnet"), "--list-runtimes"], "`dotnet --list-runtimes`",
                            processes.QUERY_TIMEOUT, None, "the runtime cannot be started without its answer; check that "
                            "`dotnet --list-runtimes` runs in this shell").stdout
    except (processes.StepTimedOut, processes.Stopped) as exc:
        raise HostError(str(exc)) from None
    versions = [line.split()[1] for line in out.splitlines() if line.startswith("Microsoft.NETCore.App ")]
    tens = [v for v in versions if v.split(".")[0].isdigit() and int(v.split(".")[0]) >= 10]
    if not tens:
        raise HostError(f"no .NET 10 runtime found under {root} (found: {', '.join(versions) or 'none'}); "
                            "install the .NET 10 SDK")
    return max(tens, key=lambda v: tuple(int(x) if x.isdigit() else 0 for x in v.split("-")[0].split(".")))


def start_runtime(app_config: str | os.PathLike[str] | None = None) -> RuntimeInfo:
    """Load CoreCLR once, with hot reload enabled, and report whether it can apply updates.

    With `app_config` (the app's own `*.runtimeconfig.json`), the runtime starts as `dotnet run` would start that
    app: its shared frameworks (Microsoft.AspNetCore.App...), rolled forward by the host's rules, and its
    configProperties (server GC...). Without it, or when the runtime is already up, Microsoft.NETCore.App alone;
    `RuntimeInfo.frameworks` says which frameworks the running runtime has."""
    global _info, _runtime_files
    with _lock:
        if _info is not None:
            return _info
        os.environ["DOTNET_MODIFIABLE_ASSEMBLIES"] = "debug"
        os.environ.pop("DOTNET_HOTRELOAD_DISABLED", None)
        root = dotnet_root()
        options = app_runtime_options(app_config) or {
            "tfm": "net10.0", "rollForward": "LatestPatch",
            "framework": {"name": "Microsoft.NETCore.App", "version": _framework_version(root)}}
        # private: an unpredictable name, created exclusively (never through someone's symlink), mode 0600; the pid
        # in it lets a later hotreload remove it should this process die inside load (processes.sweep_stale)
        fd, config = tempfile.mkstemp(prefix=f"hotreload-{os.getpid()}-", suffix=".runtimeconfig.json")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"runtimeOptions": options}, f)
            import pythonnet

            _runtime_files = os.path.join(os.environ.get("TMPDIR") or "/tmp", "")  # where CoreCLR puts them
            atexit.register(remove_runtime_files)
            processes.keep_runtime_files(_runtime_files)  # and if this process dies with no Python code run
            try:
                pythonnet.load("coreclr", runtime_config=config, dotnet_root=root)
            except Exception as exc:  # noqa: BLE001 - clr_loader raises plain exceptions for a missing framework
                names = ", ".join(f"{n} {v}" for n, v in app_frameworks(config)) or "Microsoft.NETCore.App"
                raise HostError(f"the .NET runtime could not start with {names} from {root} ({exc}); install the "
                                "shared frameworks the app names (`dotnet --list-runtimes` shows what is there)") from None
        finally:  # read by hostfxr before the runtime starts; not needed once load returns, or if it failed
            os.unlink(config)
        import clr
        from System.Reflection import BindingFlags  # type: ignore[import-not-found]
        from System.Reflection.Metadata import MetadataUpdater  # type: ignore[import-not-found]

        get_caps = clr.GetClrType(MetadataUpdater).GetMethod(
            "GetCapabilities", BindingFlags.NonPublic | BindingFlags.Static)
        caps = str(get_caps.Invoke(None, None)) if get_caps is not None else ""
        from System import AppContext, Environment  # type: ignore[import-not-found]

        deps = str(AppContext.GetData("APP_CONTEXT_DEPS_FILES") or "").split(";")
        frameworks = tuple((os.path.basename(os.path.dirname(os.path.dirname(d))), os.path.dirname(d))
                           for d in deps if d.endswith(".deps.json"))
        _info = RuntimeInfo(str(Environment.Version), bool(MetadataUpdater.IsSupported), tuple(caps.split()), root,
                            frameworks)
        return _info


def running() -> bool:
    """Whether this process has started its runtime."""
    return _info is not None


def remove_runtime_files() -> None:
    """Remove this process's runtime IPC files (`clr-debug-pipe-<pid>-*`, `dotnet-diagnostic-<pid>-*`).

    CoreCLR removes them at its own shutdown, which a hosted runtime never reaches: this process ends by `os._exit`
    or `os.execv`, or Python exits around the runtime. Called at those points; harmless when nothing is there."""
    if _runtime_files is None:
        return
    pid = os.getpid()
    for pattern in (f"clr-debug-pipe-{pid}-*", f"dotnet-diagnostic-{pid}-*"):
        for path in glob.glob(glob.escape(_runtime_files) + pattern):
            try:
                os.unlink(path)
            except OSError:
                pass


class UpdateApplier:
    """Calls MetadataUpdater.ApplyUpdate with byte arrays.

    pythonnet cannot pass ReadOnlySpan<byte> (a ref struct cannot be boxed for reflection), so we emit a
    DynamicMethod once: `(Assembly a, byte[] m, byte[] i, byte[] p) => ApplyUpdate(a, m, i, p)`, where the
    span conversions are `op_Implicit` calls in IL. No helper assembly to build or ship.
    """

    def __init__(self) -> None:
        import clr
        import System  # type: ignore[import-not-found]
        from System import Array, Byte, Type  # type: ignore[import-not-found]
        from System.Reflection import Assembly  # type: ignore[import-not-found]
        from System.Reflection.Emit import DynamicMethod, OpCodes  # type: ignore[import-not-found]
        from System.Reflection.Metadata import MetadataUpdater  # type: ignore[import-not-found]

        byte_array = clr.GetClrType(Byte).MakeArrayType()
        span = clr.GetClrType(System.ReadOnlySpan[Byte])
        asm_type = clr.GetClrType(Assembly)
        to_span = next(m for m in span.GetMethods()
                       if m.Name == "op_Implicit" and m.GetParameters()[0].ParameterType == byte_array)
        apply = clr.GetClrType(MetadataUpdater).GetMethod("ApplyUpdate", Array[Type]([asm_type, span, span, span]))
        method = DynamicMethod("hotreload_apply_update", None, Array[Type]([asm_type, byte_array, byte_array,
                                                                             byte_array]),
                               clr.GetClrType(MetadataUpdater).Module)
        il = method.GetILGenerator()
        il.Emit(OpCodes.Ldarg_0)
        for load in (OpCodes.Ldarg_1, OpCodes.Ldarg_2, OpCodes.Ldarg_3):
            il.Emit(load)
            il.Emit(OpCodes.Call, to_span)
        il.Emit(OpCodes.Call, apply)
        il.Emit(OpCodes.Ret)
        action = clr.GetClrType(System.Action[Assembly, Array[Byte], Array[Byte], Array[Byte]])
        self._call = method.CreateDelegate(action)
        self._from_base64 = System.Convert.FromBase64String

    def to_array(self, data: bytes) -> Any:
        """bytes -> byte[] via base64: pythonnet converts sequences element by element, which is slow."""
        return self._from_base64(base64.b64encode(data).decode("ascii"))

    def apply(self, assembly: Any, metadata: bytes, il: bytes, pdb: bytes) -> None:
        self._call(assembly, self.to_array(metadata), self.to_array(il), self.to_array(pdb))
