"""Test support shared by the metadata and delta tests.

* `BuildFarm`: builds variants of one small F# project (`HotLib`) with the product's `Builder`, two at a
  time, once per session. Every variant lives in its own folder; `PathMap` makes the PDB document paths
  identical, so a variant is byte-for-byte what an edit-and-rebuild of one folder would produce.
* `Srm`: System.Reflection.Metadata, running in the hosted CoreCLR, used as an independent oracle for our
  reader and writer.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotreload.build import Builder
from hotreload.metadata.schema import T

ASSEMBLY = "HotLib"
MODULE = "Hot.Lib"

FSPROJ = """<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <OutputType>Exe</OutputType>
    <TargetFramework>net10.0</TargetFramework>
    <AssemblyName>HotLib</AssemblyName>
    <PathMap>$(MSBuildProjectDirectory)=/hotlib</PathMap>
  </PropertyGroup>
  <ItemGroup>
    <Compile Include="Lib.fs" />
  </ItemGroup>
</Project>
"""

# One line per function, so replacing a definition never moves another one (closure names carry line numbers).
BASE_DEFINITIONS: dict[str, str] = {
    "constant": "let constant () = 42",
    "greeting": 'let greeting (name: string) = "Hello " + name',
    "combine": "let combine (a: int) (b: int) = a + b",
    "scaled": "let scaled (x: int) = x + 1",
    "parse": "let parse (s: string) = int s",
    "doubled": "let doubled () = [1; 2; 3] |> List.map (fun x -> x * 2) |> List.sum",
    "counter": "let counter () = 0",
    "label": 'let label () = "gen-0"',
    "pad": "let pad () = 0",
    "named": "type Named() = class end",
    "extra": "",
    "main": "[<EntryPoint>]\nlet main _ = 0",
}

EDITS: dict[str, dict[str, str]] = {
    "constant": {"constant": "let constant () = 43"},
    "greeting": {"greeting": 'let greeting (name: string) = "Bonjour " + name + "!"'},
    "bcl": {"combine": 'let combine (a: int) (b: int) = System.Math.Max(a, b) * 100 + System.DateTime(2001, 2, 3).Day'
                       ' + System.String.Join(",", [| "ab"; "c" |]).Length'},
    "local": {"scaled": "let scaled (x: int) = let y = int64 x * 10L in let z = float y in int z + 7"},
    "try": {"parse": "let parse (s: string) = try int s with _ -> -1"},
    "closure": {"doubled": "let doubled () = [1; 2; 3] |> List.map (fun x -> x * 3) |> List.sum"},
}

# A base type change (refused: the runtime cannot change a loaded type's base), an added function, and a body (main)
# that calls the added function.
REFUSED_EDIT = {"named": 'type Named() = inherit System.Exception("n")', "extra": "let extra () = 7",
                "main": "[<EntryPoint>]\nlet main _ = extra () - 7"}

# Each form evaluates to {i}; the first use of each brings in BCL members the app never referenced.
COUNTER_FORMS = (
    "System.Math.Abs(-{i})",
    "System.Math.Max({i}, -1)",
    'System.Int32.Parse("{i}")',
    "System.Math.Min({i}, 1000)",
    'System.Convert.ToInt32("{i}")',
    "System.Math.Clamp({i}, 0, 1000)",
    "System.String(' ', {i}).Length",
    "{i}",
)


def generation_label(i: int) -> str:
    """Repeats after 7 generations, so later deltas reuse #US entries of earlier ones (and of the baseline)."""
    return f"gen-{i % 7}"


def generation_edit(i: int) -> dict[str, str]:
    form = COUNTER_FORMS[(i - 1) % len(COUNTER_FORMS)].format(i=i)
    return {"counter": f"let counter () = {form}", "label": f'let label () = "{generation_label(i)}"'}


def hotlib_source(edits: Mapping[str, str] | None = None) -> str:
    defs = dict(BASE_DEFINITIONS, **(edits or {}))
    return "module Hot.Lib\n\n" + "\n".join(defs.values()) + "\n"


def line_of(source: str, prefix: str) -> int:
    """1-based line of the first line starting with `prefix`."""
    for number, line in enumerate(source.splitlines(), 1):
        if line.startswith(prefix):
            return number
    raise LookupError(prefix)


@dataclass(frozen=True)
class Variant:
    name: str
    source: str
    folder: str  # variants sharing a folder are built one after another there, as a user's edits would be


def all_variants() -> list[Variant]:
    """Every source the suite builds, in the order worth building them."""
    out = [Variant("gen0", hotlib_source(), "gen0"),
           Variant("all", hotlib_source({k: v for edit in EDITS.values() for k, v in edit.items()}), "all"),
           Variant("bcl", hotlib_source(EDITS["bcl"]), "bcl")]
    # 20 generations, edited and rebuilt in place (incremental builds, as in a watch session), in two folders
    # so that both build workers share the work
    out += [Variant(f"gen{i}", hotlib_source(generation_edit(i)), "chain-a" if i <= 10 else "chain-b")
            for i in range(1, 21)]
    out += [Variant(name, hotlib_source(edit), name) for name, edit in EDITS.items() if name != "bcl"]
    out += [
        Variant("refused", hotlib_source(REFUSED_EDIT), "refused"),
        Variant("noop", hotlib_source(), "noop"),
        Variant("gen0_pad", hotlib_source({"pad": "let padx () = 0"}), "gen0_pad"),
        Variant("bcl_pad", hotlib_source({**EDITS["bcl"], "pad": "let padx () = 0"}), "bcl_pad"),
    ]
    return out


@dataclass(frozen=True)
class FsBuild:
    name: str
    source: str
    dll: Path  # a snapshot of the output folder: never overwritten by a later build

    @property
    def pdb(self) -> Path:
        return self.dll.with_suffix(".pdb")


class BuildError(AssertionError):
    pass


class BuildFarm:
    """Builds the HotLib variants with the product's Builder, two folders at a time, each variant once.

    `prefetch` queues builds in the background; `get` waits for the ones asked for. `close` drops what has
    not started, so running a single test file does not wait for the whole farm.
    """

    def __init__(self, root: Path, variants: list[Variant] | None = None, workers: int = 2) -> None:
        self.root = root
        self.variants = {v.name: v for v in (variants or all_variants())}
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="fsbuild")
        self._futures: dict[str, Future[FsBuild]] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()

    def _build_folder(self, folder_name: str, variants: list[Variant]) -> None:
        folder = self.root / folder_name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "HotLib.fsproj").write_text(FSPROJ)
        builder = Builder(folder / "HotLib.fsproj", folder / ".hotreload")
        for i, v in enumerate(variants):
            future = self._futures[v.name]
            try:
                if self._closing.is_set():
                    raise BuildError("the session ended before this variant was built")
                future.set_result(self._build(builder, folder, v))
            except Exception as exc:  # noqa: BLE001  (handed to everyone waiting for this folder)
                for rest in variants[i:]:
                    if not self._futures[rest.name].done():
                        self._futures[rest.name].set_exception(exc)
                return

    def _build(self, builder: Builder, folder: Path, v: Variant) -> FsBuild:
        kept = builder.work_dir / v.name
        if (kept / "Lib.fs").exists() and (kept / "Lib.fs").read_text() == v.source:
            return FsBuild(v.name, v.source, kept / f"{ASSEMBLY}.dll")  # HOTRELOAD_TEST_BUILDS: same source
        (folder / "Lib.fs").write_text(v.source)
        result = builder.build()
        if not result.ok:
            raise BuildError(f"building variant {v.name} failed:\n" + "\n".join(map(str, result.errors))
                             + "\n" + result.output[-3000:])
        dll = builder.snapshot(v.name)
        (kept / "Lib.fs").write_text(v.source)
        return FsBuild(v.name, v.source, dll)

    def prefetch(self, names: Iterable[str] | None = None) -> None:
        """Queue the builds of `names` (default: all) and of the variants that share their folders."""
        wanted = set(self.variants if names is None else names)
        with self._lock:
            folders = dict.fromkeys(v.folder for v in self.variants.values()
                                    if v.name in wanted and v.name not in self._futures)
            for folder in folders:
                members = [v for v in self.variants.values() if v.folder == folder]
                for v in members:
                    self._futures[v.name] = Future()
                self._executor.submit(self._build_folder, folder, members)

    def get(self, names: Iterable[str]) -> dict[str, FsBuild]:
        wanted = list(dict.fromkeys(names))
        self.prefetch(wanted)
        return {n: self._futures[n].result() for n in wanted}

    def __getitem__(self, name: str) -> FsBuild:
        return self.get([name])[name]

    def close(self) -> None:
        self._closing.set()
        self._executor.shutdown(wait=True, cancel_futures=True)


class Srm:
    """System.Reflection.Metadata inside the hosted runtime: an independent reader of what we read and write."""

    def __init__(self) -> None:
        import clr

        clr.AddReference("System.Reflection.Metadata")
        clr.AddReference("System.Collections.Immutable")
        import System  # type: ignore[import-not-found]
        from System.Collections.Immutable import ImmutableArray  # type: ignore[import-not-found]
        from System.Reflection.Metadata import (  # type: ignore[import-not-found]
            BlobBuilder,
            MetadataReaderProvider,
            PEReaderExtensions,
        )
        from System.Reflection.Metadata.Ecma335 import (  # type: ignore[import-not-found]
            HeapIndex,
            MetadataAggregator,
            MetadataReaderExtensions,
            MetadataTokens,
            TableIndex,
        )
        from System.Reflection.PortableExecutable import PEReader  # type: ignore[import-not-found]

        self.System = System
        self.ImmutableArray = ImmutableArray
        self.BlobBuilder = BlobBuilder
        self.MetadataReaderProvider = MetadataReaderProvider
        self.PEReaderExtensions = PEReaderExtensions
        self.HeapIndex = HeapIndex
        self.MetadataAggregator = MetadataAggregator
        self.X = MetadataReaderExtensions
        self.MetadataTokens = MetadataTokens
        self.TableIndex = TableIndex
        self.PEReader = PEReader
        self._keep: list[Any] = []  # providers and PE readers own the memory their readers point into

    # ---- bytes across the boundary (pythonnet converts sequences element by element) -------------------
    def to_net(self, data: bytes) -> Any:
        return self.System.Convert.FromBase64String(base64.b64encode(data).decode("ascii"))

    def to_py(self, array: Any) -> bytes:
        return base64.b64decode(str(self.System.Convert.ToBase64String(array)))

    def _immutable(self, data: bytes) -> Any:
        return self.ImmutableArray.Create[self.System.Byte](self.to_net(data))

    # ---- readers -------------------------------------------------------------------------------------------
    def read_metadata(self, data: bytes) -> Any:
        """A MetadataReader over a raw metadata blob (a delta, or an assembly's metadata section)."""
        provider = self.MetadataReaderProvider.FromMetadataImage(self._immutable(data))
        self._keep.append(provider)
        return provider.GetMetadataReader()

    def read_pdb(self, data: bytes) -> Any:
        provider = self.MetadataReaderProvider.FromPortablePdbImage(self._immutable(data))
        self._keep.append(provider)
        return provider.GetMetadataReader()

    def read_pe(self, path: Path | str) -> tuple[Any, Any]:
        """(PEReader, MetadataReader) for an assembly on disk, read by SRM from the file bytes."""
        pe = self.PEReader(self._immutable(Path(path).read_bytes()))
        self._keep.append(pe)
        return pe, self.PEReaderExtensions.GetMetadataReader(pe)

    # ---- queries ---------------------------------------------------------------------------------------------
    def row_count(self, reader: Any, table: T) -> int:
        return int(self.X.GetTableRowCount(reader, self.TableIndex(int(table))))

    def heap_size(self, reader: Any, stream: str) -> int:
        index = {"#Strings": self.HeapIndex.String, "#US": self.HeapIndex.UserString, "#Blob": self.HeapIndex.Blob,
                 "#GUID": self.HeapIndex.Guid}[stream]
        return int(self.X.GetHeapSize(reader, index))

    def handle(self, typed_handle: Any) -> Any:
        """Any typed handle (StringHandle, MethodDebugInformationHandle...) as a plain Handle.

        pythonnet does not apply .NET's implicit conversion operators by itself.
        """
        name = type(typed_handle).__name__
        if name in ("Handle", "EntityHandle"):
            return typed_handle
        return type(typed_handle).op_Implicit(typed_handle)

    def token(self, handle: Any) -> int:
        return int(self.MetadataTokens.GetToken(self.handle(handle)))

    def heap_offset(self, handle: Any) -> int:
        return int(self.MetadataTokens.GetHeapOffset(self.handle(handle)))

    def enc_log(self, reader: Any) -> list[tuple[int, int]]:
        return [(self.token(e.Handle), int(e.Operation)) for e in self.X.GetEditAndContinueLogEntries(reader)]

    def enc_map(self, reader: Any) -> list[int]:
        return [self.token(h) for h in self.X.GetEditAndContinueMapEntries(reader)]

    def guid(self, reader: Any, handle: Any) -> bytes:
        return self.to_py(reader.GetGuid(handle).ToByteArray())

    def string_at(self, reader: Any, offset: int) -> str:
        return str(reader.GetString(self.MetadataTokens.StringHandle(offset)))

    def user_string_at(self, reader: Any, offset: int) -> str:
        return str(reader.GetUserString(self.MetadataTokens.UserStringHandle(offset)))

    def blob_at(self, reader: Any, offset: int) -> bytes:
        return self.to_py(reader.GetBlobBytes(self.MetadataTokens.BlobHandle(offset)))
