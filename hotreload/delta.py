"""Builds EnC deltas (metadata, IL, PDB) for changed method bodies, generation after generation.

`Baseline` is what the running module looks like: the loaded assembly plus every reference row and heap
byte that earlier deltas added. `DeltaBuilder` maps each token of the new build's IL to a row of the
running module, emitting new reference rows (TypeRef, MemberRef, ...) and heap entries as needed.
The baseline advances (`Baseline.commit`) only after the runtime accepted the delta.
"""

from __future__ import annotations

import os
import struct
import uuid
from dataclasses import dataclass, field

from .diff import Build, ChangedMethod, Refusal
from .metadata.il import encode_body, map_tokens
from .metadata.schema import (
    TABLE_COUNT,
    Coded,
    MemberRefParent,
    MethodDefOrRef,
    ResolutionScope,
    T,
    split_token,
    token,
)
from .metadata.sigs import compressed, encode_type_token, map_signature, map_type_signature
from .metadata.writer import BlobHeap, StringHeap, UserStringHeap, pdb_stream, write_metadata
from .pdb import MethodDebugInfo, Pdb, SequencePoint, encode_sequence_points

_DEF_TABLES = (T.TypeDef, T.MethodDef, T.Field)
_REF_TABLES = (T.AssemblyRef, T.ModuleRef, T.TypeRef, T.TypeSpec, T.MemberRef, T.MethodSpec, T.StandAloneSig)


class UnsupportedEdit(Exception):
    """The new IL needs something a body-only delta cannot express (e.g. a member that does not exist yet)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal


@dataclass
class Delta:
    generation: int
    metadata: bytes
    il: bytes
    pdb: bytes
    methods: list[ChangedMethod]
    method_tokens: dict[str, int]  # method key -> MethodDef token in the running module
    method_il: dict[str, bytes]  # method key -> IL code bytes we sent (to verify through reflection)
    # what the baseline gains once the runtime accepts this delta
    new_refs: dict[str, int] = field(default_factory=dict)
    new_user_strings: dict[str, int] = field(default_factory=dict)
    new_documents: dict[str, int] = field(default_factory=dict)
    added_rows: list[int] = field(default_factory=lambda: [0] * TABLE_COUNT)
    added_pdb_rows: list[int] = field(default_factory=lambda: [0] * TABLE_COUNT)
    strings_added: int = 0
    blobs_added: int = 0
    user_strings_added: int = 0
    guid_size: int = 0
    enc_id: bytes = b""


class Baseline:
    """The running module's metadata as deltas extend it (gen 0 = the assembly that was loaded)."""

    def __init__(self, build: Build, pdb: Pdb | None) -> None:
        md = build.asm.md
        self.build0 = build
        self.generation = 0
        self.enc_id = b"\0" * 16
        self.strings_size = md.heap_size("#Strings")
        self.blob_size = md.heap_size("#Blob")
        self.us_size = md.heap_size("#US")
        self.guid_size = md.heap_size("#GUID")
        self.row_counts = list(md.row_counts)
        self.pdb_row_counts = list(pdb.md.row_counts) if pdb else [0] * TABLE_COUNT
        names = build.names
        self.defs: dict[str, int] = {}
        for t in _DEF_TABLES:
            for rid in range(1, len(md.rows(t)) + 1):
                self.defs.setdefault(names.key(t, rid), token(t, rid))
        self.refs: dict[str, int] = {}
        for t in _REF_TABLES:
            for rid in range(1, len(md.rows(t)) + 1):
                self.refs.setdefault(names.key(t, rid), token(t, rid))
        self.user_strings = md.user_strings()
        self.documents = pdb.documents() if pdb else {}
        self.module_row = md.row(T.Module, 1)

    def commit(self, delta: Delta) -> None:
        """Advance to the generation `delta` produced; call only after the runtime accepted it."""
        self.generation = delta.generation
        self.refs.update(delta.new_refs)
        self.user_strings.update(delta.new_user_strings)
        self.documents.update(delta.new_documents)
        for i in range(TABLE_COUNT):
            self.row_counts[i] += delta.added_rows[i]
            self.pdb_row_counts[i] += delta.added_pdb_rows[i]
        self.strings_size += delta.strings_added
        self.blob_size += delta.blobs_added
        self.us_size += delta.user_strings_added
        self.guid_size = delta.guid_size
        self.enc_id = delta.enc_id


class DeltaBuilder:
    """Emits one generation's delta for a set of changed methods of `new` (a newer build)."""

    def __init__(self, base: Baseline, new: Build, new_pdb: Pdb | None) -> None:
        self.base = base
        self.new = new
        self.new_pdb = new_pdb
        self.md = new.asm.md
        self.strings = StringHeap(base.strings_size)
        self.blobs = BlobHeap(base.blob_size)
        self.user_strings = UserStringHeap(base.us_size)
        self.rows: dict[T, list[tuple[int, ...]]] = {}
        self.rids: dict[T, list[int]] = {}
        self.new_refs: dict[str, int] = {}
        self.new_user_strings: dict[str, int] = {}
        self.context = ""

    # ---- token mapping -------------------------------------------------------------------------
    def _add_row(self, table: T, row: tuple[int, ...], rid: int | None = None) -> int:
        if rid is None:
            rid = self.base.row_counts[table] + len(self.rows.get(table, [])) + 1
        self.rows.setdefault(table, []).append(row)
        self.rids.setdefault(table, []).append(rid)
        return rid

    def map_token(self, tok: int) -> int:
        """Token of the new build -> token of the same entity in the running module (adding rows if needed)."""
        table, row = split_token(tok)
        if table == 0x70:
            return 0x70000000 | self._user_string(self.md.user_string(row))
        if tok == 0 or row == 0:
            return tok
        t = T(table)
        key = self.new.names.key(t, row)
        if t in _DEF_TABLES:
            found = self.base.defs.get(key)
            if found is None:
                raise UnsupportedEdit(Refusal("reference to a new member", self.context,
                                              f"uses {key[2:].split('|')[0]}, which the running app does not have"))
            return found
        found = self.base.refs.get(key) or self.new_refs.get(key)
        if found is None:
            found = token(t, self._add_reference(t, row))
            self.new_refs[key] = found
        return found

    def _user_string(self, value: str) -> int:
        off = self.base.user_strings.get(value)
        if off is None:
            off = self.user_strings.add(value)
            self.new_user_strings[value] = off
        return off

    def _map_type(self, table: T, row: int) -> bytes:
        mapped = self.map_token(token(table, row))
        t, r = split_token(mapped)
        return encode_type_token(T(t), r)

    def _sig(self, blob_offset: int) -> int:
        return self.blobs.add(map_signature(self.md.blob(blob_offset), self._map_type))

    def _coded(self, coded_index: Coded, value: int) -> int:
        table, row = coded_index.decode(value)
        if table is None or row == 0:
            return value
        t, r = split_token(self.map_token(token(table, row)))
        return coded_index.encode(T(t), r)

    def _add_reference(self, t: T, row: int) -> int:
        md = self.md
        r = md.row(t, row)
        new_row: tuple[int, ...]
        if t == T.AssemblyRef:
            new_row = (r[0], r[1], r[2], r[3], r[4], self.blobs.add(md.blob(r[5])), self.strings.add(md.string(r[6])),
                       self.strings.add(md.string(r[7])), self.blobs.add(md.blob(r[8])))
        elif t == T.ModuleRef:
            new_row = (self.strings.add(md.string(r[0])),)
        elif t == T.TypeRef:
            scope_table, _ = ResolutionScope.decode(r[0])
            scope = r[0] if scope_table == T.Module else self._coded(ResolutionScope, r[0])
            new_row = (scope, self.strings.add(md.string(r[1])), self.strings.add(md.string(r[2])))
        elif t == T.TypeSpec:
            new_row = (self.blobs.add(map_type_signature(md.blob(r[0]), self._map_type)),)
        elif t == T.MemberRef:
            new_row = (self._coded(MemberRefParent, r[0]), self.strings.add(md.string(r[1])), self._sig(r[2]))
        elif t == T.MethodSpec:
            new_row = (self._coded(MethodDefOrRef, r[0]), self._sig(r[1]))
        elif t == T.StandAloneSig:
            new_row = (self._sig(r[0]),)
        else:
            raise UnsupportedEdit(Refusal("reference kind not supported", self.context, t.name))
        return self._add_row(t, new_row)

    # ---- the delta ---------------------------------------------------------------------------------
    def build(self, changed: list[ChangedMethod]) -> Delta:
        base = self.base
        generation = base.generation + 1
        il = bytearray(b"\0\0\0\0")
        method_tokens: dict[str, int] = {}
        method_il: dict[str, bytes] = {}
        debug: list[tuple[int, MethodDebugInfo]] = []
        for change in sorted(changed, key=lambda c: base.defs.get(c.key, 0)):
            self.context = change.name
            running = base.defs.get(change.key)
            if running is None:
                raise UnsupportedEdit(Refusal("method not in the running app", change.name))
            body = self.new.body(change.new_rid)
            if body is None:
                raise UnsupportedEdit(Refusal("method has no IL body", change.name))
            body.code = map_tokens(body.code, lambda _kind, tok: self.map_token(tok))
            body.local_sig = self.map_token(body.local_sig) if body.local_sig else 0
            for c in body.clauses:
                if c.flags == 0 and c.class_token_or_filter:
                    c.class_token_or_filter = self.map_token(c.class_token_or_filter)
            while len(il) % 4:
                il.append(0)
            rva = len(il)
            il += encode_body(body)
            rid = running & 0xFFFFFF
            old_row = base.build0.asm.md.row(T.MethodDef, rid)
            self._add_row(T.MethodDef, (rva,) + tuple(old_row[1:]), rid)
            method_tokens[change.key] = running
            method_il[change.key] = body.code
            if self.new_pdb is not None:
                info = self.new_pdb.method_info(change.new_rid)
                info.local_signature = body.local_sig & 0xFFFFFF
                debug.append((rid, info))

        # Module row: the runtime reads Name/Mvid/EncBaseId from the delta's own heaps, so they are
        # written again. #GUID is padded to its previous size; new GUIDs follow.
        enc_id = uuid.uuid4().bytes_le
        base_md = base.build0.asm.md
        mod = base.module_row
        guid_list = [base_md.guid(mod[2]), enc_id] + ([base.enc_id] if base.generation else [])
        guids = b"\0" * base.guid_size + b"".join(guid_list)
        first = base.guid_size // 16 + 1
        mvid_index, enc_id_index = first, first + 1
        enc_base_index = first + 2 if base.generation else 0
        tables: dict[T, list[tuple[int, ...]]] = {
            T.Module: [(generation, self.strings.add(base_md.string(mod[1])), mvid_index, enc_id_index,
                        enc_base_index)]}
        enc_log: list[tuple[int, ...]] = []
        enc_map: list[int] = []
        for t in sorted(self.rows):
            order = sorted(range(len(self.rows[t])), key=lambda i: self.rids[t][i])
            tables[t] = [self.rows[t][i] for i in order]
            rids = [self.rids[t][i] for i in order]
            enc_map += [token(t, r) for r in rids]
        for t in (*_REF_TABLES, T.MethodDef):
            enc_log += [(token(t, r), 0) for r in sorted(self.rids.get(t, []))]
        tables[T.EncLog] = enc_log
        tables[T.EncMap] = [(tok,) for tok in sorted(enc_map)]
        metadata = write_metadata(tables, bytes(self.strings.data), bytes(self.user_strings.data), guids,
                                  bytes(self.blobs.data))

        added = [0] * TABLE_COUNT
        for t in self.rows:
            added[t] = sum(1 for r in self.rids[t] if r > base.row_counts[t])
        pdb_bytes, new_docs, pdb_added = self._pdb_delta(debug, added, generation)
        return Delta(
            generation=generation, metadata=metadata, il=bytes(il), pdb=pdb_bytes, methods=list(changed),
            method_tokens=method_tokens, method_il=method_il, new_refs=self.new_refs,
            new_user_strings=self.new_user_strings, new_documents=new_docs, added_rows=added,
            added_pdb_rows=pdb_added, strings_added=len(self.strings.data),
            blobs_added=len(self.blobs.data) + (-len(self.blobs.data) % 4),
            user_strings_added=len(self.user_strings.data) + (-len(self.user_strings.data) % 4),
            guid_size=len(guids), enc_id=enc_id,
        )

    def _pdb_delta(self, debug: list[tuple[int, MethodDebugInfo]], added: list[int],
                   generation: int) -> tuple[bytes, dict[str, int], list[int]]:
        """Portable PDB delta: MethodDebugInformation (sequence points) for every updated method."""
        base = self.base
        strings = StringHeap(0)
        blobs = BlobHeap(0)
        docs: dict[str, int] = {}
        doc_rows: list[tuple[int, ...]] = []
        doc_rids: list[int] = []
        new_pdb = self.new_pdb

        def map_doc(doc: int) -> int:
            assert new_pdb is not None
            name = new_pdb.document_name(doc)
            known = base.documents.get(name) or docs.get(name)
            if known:
                return known
            rid = base.pdb_row_counts[T.Document] + len(doc_rows) + 1
            r = new_pdb.md.row(T.Document, doc)
            name_blob = new_pdb.md.blob(r[0])
            sep = bytes([name_blob[0]]) if name_blob else b"/"
            parts = name.split(sep.decode("latin-1")) if name_blob and name_blob[0] else [name]
            encoded = sep + b"".join(compressed(blobs.add(p.encode("utf-8"))) for p in parts)
            doc_rows.append((blobs.add(encoded), 0, blobs.add(new_pdb.md.blob(r[2])), 0))
            doc_rids.append(rid)
            docs[name] = rid
            return rid

        mdi_rows: list[tuple[int, ...]] = []
        mdi_rids: list[int] = []
        for rid, info in sorted(debug):
            points = [SequencePoint(p.il_offset, map_doc(p.document), p.start_line, p.start_column, p.end_line,
                                    p.end_column) for p in info.points]
            doc_col, blob = encode_sequence_points(MethodDebugInfo(info.local_signature, points))
            # no sequence points: a nil blob (a blob holding only the local signature has no initial document,
            # and readers such as SRM reject it)
            mdi_rows.append((doc_col, blobs.add(blob) if points else 0))
            mdi_rids.append(rid)
        tables: dict[T, list[tuple[int, ...]]] = {}
        if doc_rows:
            tables[T.Document] = doc_rows
        if mdi_rows:
            tables[T.MethodDebugInformation] = mdi_rows
        enc_map: list[tuple[int, ...]] = [(token(T.Document, r),) for r in doc_rids]
        enc_map += [(token(T.MethodDebugInformation, r),) for r in mdi_rids]
        tables[T.EncMap] = enc_map
        type_system = [base.row_counts[i] + added[i] if i < 0x30 else 0 for i in range(TABLE_COUNT)]
        pdb_id = uuid.uuid4().bytes + struct.pack("<I", generation)
        data = write_metadata(tables, bytes(strings.data), b"\0", b"", bytes(blobs.data),
                              pdb=pdb_stream(pdb_id, 0, type_system))
        pdb_added = [0] * TABLE_COUNT
        pdb_added[T.Document] = len(doc_rows)
        return data, docs, pdb_added


def build_delta(base: Baseline, new: Build, new_pdb: Pdb | None, changed: list[ChangedMethod]) -> Delta:
    return DeltaBuilder(base, new, new_pdb).build(changed)


def load_build(dll_path: str) -> tuple[Build, Pdb | None]:
    """Read a build's assembly and, when present beside it, its portable PDB."""
    build = Build.from_file(dll_path)
    pdb_path = os.path.splitext(dll_path)[0] + ".pdb"
    pdb = Pdb.from_file(pdb_path) if os.path.exists(pdb_path) else None
    return build, pdb
