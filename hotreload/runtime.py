"""Hosts CoreCLR in this Python process (pythonnet) with hot reload enabled, and talks to it.

CoreCLR reads DOTNET_MODIFIABLE_ASSEMBLIES once, at start-up, so `start_runtime` sets it before
pythonnet loads the runtime; the runtime cannot be unloaded, so there is one per process.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from typing import Any

from .errors import HotReloadError

_lock = threading.Lock()
_info: RuntimeInfo | None = None


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
    out = subprocess.run([os.path.join(root, "dotnet"), "--list-runtimes"], capture_output=True, text=True,
                         check=False).stdout
    versions = [line.split()[1] for line in out.splitlines() if line.startswith("Microsoft.NETCore.App ")]
    tens = [v for v in versions if v.split(".")[0].isdigit() and int(v.split(".")[0]) >= 10]
    if not tens:
        raise HostError(f"no .NET 10 runtime found under {root} (found: {', '.join(versions) or 'none'}); "
                            "install the .NET 10 SDK")
    return max(tens, key=lambda v: tuple(int(x) if x.isdigit() else 0 for x in v.split("-")[0].split(".")))


def start_runtime() -> RuntimeInfo:
    """Load CoreCLR once, with hot reload enabled, and report whether it can apply updates."""
    global _info
    with _lock:
        if _info is not None:
            return _info
        os.environ["DOTNET_MODIFIABLE_ASSEMBLIES"] = "debug"
        os.environ.pop("DOTNET_HOTRELOAD_DISABLED", None)
        root = dotnet_root()
        version = _framework_version(root)
        config = os.path.join(tempfile.gettempdir(), f"hotreload-{os.getpid()}.runtimeconfig.json")
        with open(config, "w") as f:
            json.dump({"runtimeOptions": {"tfm": "net10.0", "rollForward": "LatestPatch", "framework": {
                "name": "Microsoft.NETCore.App", "version": version}}}, f)
        import pythonnet

        pythonnet.load("coreclr", runtime_config=config, dotnet_root=root)
        import clr
        from System.Reflection import BindingFlags  # type: ignore[import-not-found]
        from System.Reflection.Metadata import MetadataUpdater  # type: ignore[import-not-found]

        get_caps = clr.GetClrType(MetadataUpdater).GetMethod(
            "GetCapabilities", BindingFlags.NonPublic | BindingFlags.Static)
        caps = str(get_caps.Invoke(None, None)) if get_caps is not None else ""
        from System import Environment  # type: ignore[import-not-found]

        _info = RuntimeInfo(str(Environment.Version), bool(MetadataUpdater.IsSupported), tuple(caps.split()), root)
        return _info


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
