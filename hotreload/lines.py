"""Keeps the runtime's stack-trace file and line info in step with updated code.

CoreCLR ignores the PDB delta given to ApplyUpdate (dotnet/runtime#56335), and after the first update of a
module it gives no file/line to ANY frame of it: `DebugStackTrace::GetStackFramesInternal`
(src/coreclr/vm/debugdebugger.cpp) marks every frame "EnC" while the module's update count
(`EditAndContinueModule::m_applyChangesCount`, 1 until the first update) is not 1, leaves its method token 0,
and CoreLib's `StackFrameHelper.InitializeSourceInfo` then never asks `StackTraceSymbols` for it.
So after each update we (1) install into `StackTraceSymbols`' per-assembly cache (a ConditionalWeakTable of
MetadataReaderProvider) a portable PDB image whose sequence points are those of the running code, and then
(2) put the count back to 1, so the runtime asks that cache again. The count has no other reader in .NET 10:
the debugger's version numbers need an attached debugger, and ApplyUpdate refuses to run with one.

Step (2) writes one int32 of native runtime state, so it is gated (`--stack-lines`, HOTRELOAD_STACK_LINES):
`auto` (default) writes only on runtime builds listed in PINNED, where a test found the field at that offset, and
only once the field found by watching is unique, at the pinned offset, and has counted up across two updates;
`on` drops the PINNED condition (any runtime, same watching and confirmation); `off` never touches the runtime.
Without the write, the runtime's own traces of an updated module show no file/line; hotreload's own crash
reports (`source_of`) show them in every mode, read from the PDB image kept here by method and IL offset.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import os
import struct
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import HotReloadError
from .metadata.schema import TABLE_COUNT, T, split_token
from .metadata.sigs import compressed
from .metadata.writer import BlobHeap, pdb_stream
from .pdb import MethodDebugInfo, Pdb, SequencePoint, decode_sequence_points, encode_sequence_points

MODES = ("auto", "on", "off")
MODE_VARIABLE = "HOTRELOAD_STACK_LINES"

# Runtime builds (CoreLib's informational version, process architecture) on which
# tests/test_lines.py::test_update_count_offset_is_pinned found EditAndContinueModule::m_applyChangesCount at
# this offset of the native Module object. Add a build only after that test passes on it.
PINNED: dict[tuple[str, str], int] = {
    ("10.0.12-servicing.26422.108+95017c711e6afc1085133d440e42b4bd78155701", "X64"): 0x350,
}

_PAGE = 0x1000
_SPARE_ROWS = 256  # nil MethodDebugInformation rows past the last known method: SRM throws on a row it lacks


class LinesUnavailable(HotReloadError):
    """Stack traces cannot show updated lines in this process (the message says why)."""


class PdbImage:
    """A minimal portable PDB (Document and MethodDebugInformation tables only: all StackTraceSymbols reads),
    seeded from the baseline PDB and kept current method by method. `image()` is a few memory copies, so
    writing one per generation is cheap; identical blobs are shared, superseded ones stay (bytes per edit)."""

    def __init__(self, pdb: Pdb) -> None:
        self.pdb_id = pdb.md.pdb_id or b"\0" * 20
        self.blobs = BlobHeap(0)
        self.documents: dict[str, int] = {}
        self.doc_rows = bytearray()
        for rid in range(1, len(pdb.md.rows(T.Document)) + 1):  # the baseline's rids: its blobs copy verbatim
            self._new_document(pdb.document_name(rid))
        self.methods = bytearray()
        for doc, blob in pdb.md.rows(T.MethodDebugInformation):
            self.methods += struct.pack("<II", doc, self.blobs.add(pdb.md.blob(blob)) if blob else 0)
        self._grow(len(self.methods) // 8)

    def _grow(self, rid: int) -> None:
        need = (rid + _SPARE_ROWS) * 8
        if len(self.methods) < need:
            self.methods += bytes(need - len(self.methods))

    def _new_document(self, name: str) -> int:
        sep = "/" if "/" in name else ("\\" if "\\" in name else "")
        parts = name.split(sep) if sep else [name]
        blob = (sep.encode("latin-1") or b"\0") + b"".join(compressed(self.blobs.add(p.encode("utf-8")))
                                                           for p in parts)
        self.doc_rows += struct.pack("<IIII", self.blobs.add(blob), 0, 0, 0)
        rid = len(self.doc_rows) // 16
        self.documents.setdefault(name, rid)
        return rid

    def document(self, name: str) -> int:
        """Document rid of `name` in this image, added if new."""
        return self.documents.get(name) or self._new_document(name)

    def set_raw(self, rid: int, document: int, blob: bytes) -> bool:
        """Set method `rid`'s row to an encoded sequence-points blob whose document rids are this image's.
        Returns whether the row changed."""
        self._grow(rid)
        row = struct.pack("<II", document, self.blobs.add(blob) if blob else 0)
        changed = self.methods[(rid - 1) * 8:rid * 8] != row
        self.methods[(rid - 1) * 8:rid * 8] = row
        return changed

    def set_points(self, rid: int, points: Sequence[SequencePoint], documents: Mapping[int, str]) -> bool:
        """Set method `rid`'s sequence points; their `document` fields are keys of `documents` (-> path)."""
        mapped = [SequencePoint(p.il_offset, self.document(documents[p.document]), p.start_line,
                                p.start_column, p.end_line, p.end_column) for p in points]
        doc, blob = encode_sequence_points(MethodDebugInfo(0, mapped))
        return self.set_raw(rid, doc, blob if mapped else b"")

    def image(self) -> bytes:
        """The whole PDB: #Pdb, a compressed `#~` table stream, empty #Strings/#US/#GUID and #Blob."""
        n_docs, n_methods = len(self.doc_rows) // 16, len(self.methods) // 8
        # `#~` sizes the Document column by the Document row count: 2 bytes below 0x10000 rows
        methods = _narrow(self.methods) if n_docs < 0x10000 else bytes(self.methods)
        valid = (1 << T.Document) | (1 << T.MethodDebugInformation)
        tables = struct.pack("<IBBBBQQII", 0, 2, 0, 0x07, 1, valid, 0, n_docs, n_methods)
        tables += bytes(self.doc_rows) + bytes(methods)
        counts = [0] * TABLE_COUNT
        counts[T.MethodDef] = n_methods
        blobs = bytes(self.blobs.data)
        return _metadata_root([(b"#Pdb", pdb_stream(self.pdb_id, 0, counts)), (b"#~", tables),
                               (b"#Strings", b"\0"), (b"#US", b"\0"), (b"#GUID", b""), (b"#Blob", blobs)])


def _narrow(rows: bytearray) -> bytes:
    """<II rows -> <HI rows (every Document index is below 0x10000): drop each row's 2nd 16-bit word."""
    import array

    words = array.array("H", bytes(rows))
    del words[1::4]
    return words.tobytes()


def _pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _metadata_root(streams: list[tuple[bytes, bytes]]) -> bytes:
    version = _pad4(b"PDB v1.0\0")
    header = struct.pack("<IHHII", 0x424A5342, 1, 1, 0, len(version)) + version + struct.pack("<HH", 0, len(streams))
    offset = len(header) + sum(8 + len(_pad4(name + b"\0")) for name, _ in streams)
    out = bytearray(header)
    for name, data in streams:
        out += struct.pack("<II", offset, len(_pad4(data))) + _pad4(name + b"\0")
        offset += len(_pad4(data))
    for _, data in streams:
        out += _pad4(data)
    return bytes(out)


def read_pdb_delta(data: bytes, known: Mapping[int, str]) -> tuple[dict[int, list[SequencePoint]], dict[int, str]]:
    """A PDB delta's MethodDebugInformation rows as (method rid -> points, document rid -> name).

    Rows are keyed by EncMap (the i-th row of a table is that table's i-th EncMap token); the points' document
    rids are the running PDB's, named by this delta's Document rows or by `known` (earlier generations')."""
    pdb = Pdb(data)
    md = pdb.md
    rids: dict[T, list[int]] = {}
    for (tok,) in md.rows(T.EncMap):
        table, rid = split_token(tok)
        if table in (T.Document, T.MethodDebugInformation):
            rids.setdefault(T(table), []).append(rid)
    names = dict(known)
    for i, rid in enumerate(rids.get(T.Document, []), 1):
        names[rid] = pdb.document_name(i)
    methods: dict[int, list[SequencePoint]] = {}
    for (doc, blob), rid in zip(md.rows(T.MethodDebugInformation), rids.get(T.MethodDebugInformation, [])):
        methods[rid] = decode_sequence_points(md.blob(blob), doc).points if blob else []
    return methods, names


class _EncCount:
    """`EditAndContinueModule::m_applyChangesCount` of one module, found by watching it and put back to 1.

    The field is private native state, so nothing is assumed about where it is: it is the int32 of the Module
    object that went from n to n+1 across ApplyUpdate (and, if several did, the one that keeps doing so). Its
    value is checked before every write; anything unexpected raises and the caller stops touching it. Reads go
    through /proc/self/mem, which fails cleanly where ctypes would crash the process on an unmapped page.
    """

    WINDOW = 0x1000  # bytes of the Module object scanned (the field sits at 0x350 on .NET 10.0 x64)

    def __init__(self, address: int, count: int, pinned: int | None = None) -> None:
        if not os.path.exists("/proc/self/mem"):
            raise LinesUnavailable("finding the runtime's update count needs /proc/self/mem (Linux)")
        self.address = address  # of the Module object
        self.true_count = count  # what the runtime would hold had we never written it
        self.value = count  # what it holds now
        self.pinned = pinned  # the offset a test found on this runtime build, if any
        self.offset: int | None = None
        self.confirmed = False  # the found field counted up in a second update too: only then is it written
        self.candidates = {off for off, value in self._scan().items() if value == count}

    def _scan(self) -> dict[int, int]:
        data = bytearray()
        with open("/proc/self/mem", "rb", buffering=0) as mem:
            start = self.address
            end = start + self.WINDOW
            while start < end:
                chunk = min(end, (start // _PAGE + 1) * _PAGE) - start
                try:
                    mem.seek(start)
                    data += mem.read(chunk)
                except OSError:
                    break
                start += chunk
        return {off: struct.unpack_from("<i", data, off)[0] for off in range(0, len(data) - 3, 4)}

    def _field(self, expected: int) -> ctypes.c_int32:
        assert self.offset is not None
        field = ctypes.c_int32.from_address(self.address + self.offset)
        if field.value != expected:
            raise LinesUnavailable(f"the runtime's update count is {field.value}, expected {expected}")
        return field

    def _narrow(self, value: int) -> None:
        values = self._scan()
        self.candidates = {off for off in self.candidates if values.get(off) == value}

    def before(self) -> None:
        """Just before ApplyUpdate: drop candidates that moved on their own since the last look."""
        if self.offset is None:
            self._narrow(self.value)

    def after(self) -> None:
        """Just after ApplyUpdate: keep the candidates that went n -> n+1, and of those, the ones that then hold
        still (the count changes only inside ApplyUpdate; neighbouring memory may be busy). Once one is left it
        must be the pinned offset (if any), and it is confirmed when it counts up again in the next update."""
        self.true_count += 1
        self.value += 1
        if self.offset is not None:
            self._field(self.value)  # raises unless it counted up as the runtime's update count does
            self.confirmed = True
            return
        for _ in range(3):
            self._narrow(self.value)
            if len(self.candidates) <= 1:
                break
            time.sleep(0.002)
        if not self.candidates:
            raise LinesUnavailable("could not find the runtime's update count in the module")
        if len(self.candidates) == 1:
            self.offset = self.candidates.pop()
            if self.pinned is not None and self.offset != self.pinned:
                raise LinesUnavailable(f"the runtime's update count was found at 0x{self.offset:x}, not at the "
                                       f"0x{self.pinned:x} pinned for this runtime build; not writing it")

    def reset(self) -> bool:
        """After `after`: put the count back to 1; False until its place is unique and confirmed."""
        if self.offset is None or not self.confirmed:
            return False
        self._field(self.value).value = 1
        self.value = 1
        return True

    def restore(self) -> None:
        """Give the runtime back its own count: frames of the module show no file/line again."""
        if self.offset is not None and self.value != self.true_count:
            self._field(self.value).value = self.true_count
            self.value = self.true_count


def _native_module(module: Any) -> int:
    """The runtime's Module* behind a System.Reflection.Module (RuntimeModule.m_pData)."""
    from System.Reflection import BindingFlags  # type: ignore[import-not-found]

    field = module.GetType().GetField("m_pData", BindingFlags.NonPublic | BindingFlags.Instance)
    address = int(field.GetValue(module).ToInt64()) if field is not None else 0
    if not address:
        raise LinesUnavailable("RuntimeModule.m_pData not found on this runtime")
    return address


def _symbols_cache() -> Any:
    """StackTraceSymbols' ConditionalWeakTable<Assembly, MetadataReaderProvider> (created if not yet)."""
    import clr
    import System  # type: ignore[import-not-found]
    from System.Reflection import BindingFlags  # type: ignore[import-not-found]

    helper = clr.GetClrType(System.Object).Assembly.GetType("System.Diagnostics.StackFrameHelper")
    field = helper.GetField("s_stackTraceSymbolsCache", BindingFlags.NonPublic | BindingFlags.Static) \
        if helper is not None else None
    if field is None:
        raise LinesUnavailable("StackFrameHelper.s_stackTraceSymbolsCache not found (not .NET 10?)")
    if field.GetValue(None) is None:
        System.Diagnostics.StackTrace(0, True)  # with file info: InitializeSourceInfo creates the instance
    symbols = field.GetValue(None)
    if symbols is None:
        raise LinesUnavailable("the runtime did not create its StackTraceSymbols")
    cache = symbols.GetType().GetField("_metadataCache", BindingFlags.NonPublic | BindingFlags.Instance)
    if cache is None:
        raise LinesUnavailable("StackTraceSymbols._metadataCache not found (not .NET 10?)")
    return cache.GetValue(symbols)


def stack_lines_mode(value: str | None = None) -> str:
    """The --stack-lines mode: `value` if given, else HOTRELOAD_STACK_LINES (0/1 read as off/on), else auto."""
    raw = (value or os.environ.get(MODE_VARIABLE) or "auto").strip().lower()
    mode = {"0": "off", "1": "on", "false": "off", "true": "on"}.get(raw, raw)
    if mode not in MODES:
        raise LinesUnavailable(f"{MODE_VARIABLE}={raw!r} is not one of auto, on, off")
    return mode


def runtime_build() -> tuple[str, str]:
    """(CoreLib's informational version, which names the exact build, and the process architecture)."""
    import clr
    from System import Object  # type: ignore[import-not-found]
    from System.Reflection import AssemblyInformationalVersionAttribute  # type: ignore[import-not-found]
    from System.Runtime.InteropServices import RuntimeInformation  # type: ignore[import-not-found]

    attrs = clr.GetClrType(Object).Assembly.GetCustomAttributes(
        clr.GetClrType(AssemblyInformationalVersionAttribute), False)
    version = str(attrs[0].InformationalVersion) if attrs.Length else ""
    return version, str(RuntimeInformation.ProcessArchitecture)


class LineInfo:
    """Keeps the sequence points of the running code of `assembly` (for hotreload's own crash reports, always) and,
    where the mode allows, makes the runtime's own stack traces of updated code show the new file and line.

    Call `applied(pdb_delta)` after every successful ApplyUpdate, and `update`/`update_from` for methods
    whose lines moved without an IL change (no ApplyUpdate then). Never raises: the first failure is kept in
    `problem` (returned once by `applied`) and stops the runtime side, leaving its traces without file/line, not
    wrong ones. `status` says once, at start, when the runtime side is off and why.
    """

    def __init__(self, assembly: Any, pdb_path: str, generation: int = 0, mode: str = "auto") -> None:
        self.assembly = assembly
        self.pdb_path = pdb_path
        self.mode = mode
        self.problem: str | None = None
        self.status: str | None = None
        self.lock = threading.Lock()
        self._reported = False
        self._image: PdbImage | None = None
        self._running_docs: dict[int, str] = {}  # Document rids of the running PDB (baseline + deltas) -> path
        self._providers: list[Any] = []  # installed, newest last
        self._count: _EncCount | None = None
        self._image_error: str | None = None  # the kept sequence points could not be read or updated
        self.writes = False  # whether the runtime's traces are kept in step (native count reset + symbols cache)
        off = "the runtime's own stack traces of updated code will show no file/line (hotreload's crash reports do)"
        if mode == "off":
            self.status = f"stack-trace lines: off (--stack-lines off): {off}"
            return
        try:
            build = runtime_build()
            pinned = PINNED.get(build)
            if mode == "auto" and pinned is None:
                self.status = (f"stack-trace lines: this runtime build ({build[0]}, {build[1]}) is not one a test "
                               f"pinned, so hotreload writes nothing into it: {off}; --stack-lines on tries anyway")
                return
            # before the first ApplyUpdate: the count is found by watching it change
            self._count = _EncCount(_native_module(assembly.ManifestModule), generation + 1, pinned)
            self.writes = True
        except Exception as exc:  # noqa: BLE001 - reported, never fatal
            self._fail(exc)
            self.status, self.problem, self._reported = self.problem, None, True

    def _fail(self, exc: Exception) -> None:
        """Stop the runtime side for good; its frames then show no file/line (as without LineInfo), never stale
        ones. The sequence points kept for hotreload's own reports go on."""
        self.problem = "the runtime's stack traces of updated code will show no file/line (hotreload's crash " \
                       "reports still do): " + str(exc).splitlines()[0]
        self.writes = False
        if self._count is not None:
            with contextlib.suppress(Exception):  # nothing more can be done
                self._count.restore()
        self._count = None

    def _report(self) -> str | None:
        """The problem, the first time it is asked for after it arose."""
        if self._reported or self.problem is None:
            return None
        self._reported = True
        return self.problem

    def _ensure_image(self) -> PdbImage:
        if self._image is None:
            pdb = Pdb.from_file(self.pdb_path)
            self._image = PdbImage(pdb)
            self._running_docs = {rid: name for name, rid in pdb.documents().items()}
        return self._image

    def before_apply(self) -> None:
        """Just before ApplyUpdate (optional, sharpens finding the runtime's update count)."""
        with self.lock:
            if self._count is not None:
                try:
                    self._count.before()
                except Exception as exc:  # noqa: BLE001 - reported, never fatal
                    self._fail(exc)

    def applied(self, pdb_delta: bytes) -> str | None:
        """After a successful ApplyUpdate: keep the sequence points of the PDB delta that went with it (rows keyed
        by running method rid) and, if the runtime side is on, let the runtime read them. Returns a problem once."""
        with self.lock:
            image: PdbImage | None = None
            changed = False
            try:
                image = self._ensure_image()
                methods, names = read_pdb_delta(pdb_delta, self._running_docs) if pdb_delta else ({}, {})
                self._running_docs.update(names)
                results = [image.set_points(rid, points, names) for rid, points in methods.items()]  # every one
                changed = any(results)
            except Exception as exc:  # noqa: BLE001 - reported, never fatal
                self._image_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if self.writes and self._count is not None:
                try:
                    self._count.after()
                    if image is None:
                        raise LinesUnavailable(f"the running code's sequence points are unknown ({self._image_error})")
                    if changed or not self._providers:
                        self._publish(image)
                    self._count.reset()  # last: until now the runtime showed no line rather than a stale one
                except Exception as exc:  # noqa: BLE001 - reported, never fatal
                    self._fail(exc)
            return self._report()

    def _installed(self, image: PdbImage, changed: bool) -> None:
        """After lines moved without an update: the runtime reads the new image (if its side is on)."""
        if changed and self.writes:
            try:
                self._publish(image)
            except Exception as exc:  # noqa: BLE001 - reported, never fatal
                self._fail(exc)

    def update(self, methods: Mapping[int, Sequence[SequencePoint]], documents: Mapping[int, str]) -> None:
        """Install sequence points: running MethodDef rid -> points whose `document` fields key `documents`
        (-> path). Later calls for a method replace earlier ones."""
        with self.lock:
            try:
                image = self._ensure_image()
                results = [image.set_points(rid, points, documents) for rid, points in methods.items()]
                changed = any(results)
            except Exception as exc:  # noqa: BLE001 - reported, never fatal
                self._image_error = str(exc).splitlines()[0]
                self._fail(exc)
                return
            self._installed(image, changed)

    def update_from(self, pdb: Pdb, rids: Mapping[int, int]) -> None:
        """Install what a newer build's `pdb` says about methods given as running rid -> rid in `pdb`.

        Cheap enough to pass every method after every build (about a microsecond each when the documents line
        up, as they do unless files were added): rows that did not change cost a dictionary lookup."""
        with self.lock:
            try:
                image = self._ensure_image()
                names = {rid: pdb.document_name(rid) for rid in range(1, len(pdb.md.rows(T.Document)) + 1)}
                same_docs = all(image.document(name) == rid for rid, name in names.items())
                rows = pdb.md.rows(T.MethodDebugInformation)
                changed = False
                for running, new in rids.items():
                    if same_docs:  # the blob's document rids are the image's: copy it as it is
                        doc, blob = rows[new - 1] if new <= len(rows) else (0, 0)
                        changed |= image.set_raw(running, doc, pdb.md.blob(blob) if blob else b"")
                    else:
                        changed |= image.set_points(running, pdb.method_info(new).points, names)
            except Exception as exc:  # noqa: BLE001 - reported, never fatal
                self._image_error = str(exc).splitlines()[0]
                self._fail(exc)
                return
            self._installed(image, changed)

    def source_of(self, method_rid: int, il_offset: int) -> tuple[str, int] | None:
        """(file, line) of the running code of method `method_rid` at `il_offset`, from the kept sequence points:
        what hotreload's own crash reports show, whatever the runtime's traces do."""
        with self.lock:
            if self._image_error is not None or il_offset < 0:
                return None
            try:
                pdb = Pdb(self._ensure_image().image())
                points = [p for p in pdb.method_info(method_rid).points if not p.hidden and p.il_offset <= il_offset]
            except Exception:  # noqa: BLE001 - a report without a line rather than none
                return None
            if not points:
                return None
            point = max(points, key=lambda p: p.il_offset)
            return pdb.document_name(point.document), point.start_line

    def _publish(self, image: PdbImage) -> None:
        """Make `image` what StackTraceSymbols reads for the assembly."""
        import clr
        from System import Byte, Convert  # type: ignore[import-not-found]

        clr.AddReference("System.Reflection.Metadata")
        clr.AddReference("System.Collections.Immutable")
        from System.Reflection.Metadata import MetadataReaderProvider  # type: ignore[import-not-found]
        from System.Runtime.InteropServices import ImmutableCollectionsMarshal  # type: ignore[import-not-found]

        array = Convert.FromBase64String(base64.b64encode(image.image()).decode("ascii"))  # one copy, no per-item
        provider = MetadataReaderProvider.FromPortablePdbImage(ImmutableCollectionsMarshal.AsImmutableArray[Byte](
            array))
        provider.GetMetadataReader()  # a bad image throws here rather than inside a stack trace
        cache = _symbols_cache()
        found, old = cache.TryGetValue(self.assembly, None)
        cache.AddOrUpdate(self.assembly, provider)
        if found and old is not None and not self._providers:
            self._providers.append(old)  # the runtime's own provider over the gen0 PDB file: retired like ours
        self._providers.append(provider)
        # A stack trace in progress may still read the previous image: keep that one, dispose older ones.
        while len(self._providers) > 2:
            self._providers.pop(0).Dispose()
