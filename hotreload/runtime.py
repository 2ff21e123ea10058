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


def start_runtime() -> RuntimeInfo:
    """Load CoreCLR once, with hot reload enabled, and report whether it can apply updates."""
    global _info, _runtime_files
    with _lock:
        if _info is not None:
            return _info
        os.environ["DOTNET_MODIFIABLE_ASSEMBLIES"] = "debug"
        os.environ.pop("DOTNET_HOTRELOAD_DISABLED", None)
        root = dotnet_root()
        version = _framework_version(root)
        # private: an unpredictable name, created exclusively (never through someone's symlink), mode 0600; the pid
        # in it lets a later hotreload remove it should this process die inside load (processes.sweep_stale)
        fd, config = tempfile.mkstemp(prefix=f"hotreload-{os.getpid()}-", suffix=".runtimeconfig.json")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"runtimeOptions": {"tfm": "net10.0", "rollForward": "LatestPatch", "framework": {
                    "name": "Microsoft.NETCore.App", "version": version}}}, f)
            import pythonnet

            _runtime_files = os.path.join(os.environ.get("TMPDIR") or "/tmp", "")  # where CoreCLR puts them
            atexit.register(remove_runtime_files)
            processes.keep_runtime_files(_runtime_files)  # and if this process dies with no Python code run
            pythonnet.load("coreclr", runtime_config=config, dotnet_root=root)
        finally:  # read by hostfxr before the runtime starts; not needed once load returns, or if it failed
            os.unlink(config)
        import clr
        from System.Reflection import BindingFlags  # type: ignore[import-not-found]
        from System.Reflection.Metadata import MetadataUpdater  # type: ignore[import-not-found]

        get_caps = clr.GetClrType(MetadataUpdater).GetMethod(
            "GetCapabilities", BindingFlags.NonPublic | BindingFlags.Static)
        caps = str(get_caps.Invoke(None, None)) if get_caps is not None else ""
        from System import Environment  # type: ignore[import-not-found]

        _info = RuntimeInfo(str(Environment.Version), bool(MetadataUpdater.IsSupported), tuple(caps.split()), root)
        return _info


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
