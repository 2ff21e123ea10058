"""Portable PDB: documents and sequence points of a build, decoded so a PDB delta can re-emit them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from .metadata.errors import BadImageError
from .metadata.reader import MetadataImage
from .metadata.schema import T
from .metadata.sigs import compressed, compressed_signed, read_compressed, read_compressed_signed

HIDDEN_LINE = 0xFEEFEE


@dataclass(frozen=True)
class SequencePoint:
    il_offset: int
    document: int  # Document row in the PDB it was read from (or written to)
    start_line: int
    start_column: int
    end_line: int
    end_column: int

    @property
    def hidden(self) -> bool:
        return self.start_line == HIDDEN_LINE


@dataclass
class MethodDebugInfo:
    local_signature: int  # StandAloneSig row, 0 for none
    points: list[SequencePoint]


class Pdb:
    """A standalone portable PDB file."""

    def __init__(self, data: bytes) -> None:
        self.md = MetadataImage(data)

    @classmethod
    def from_file(cls, path: str) -> Pdb:
        """Read a PDB; a BadImageError names the file (it is read beside an assembly, which has its own errors)."""
        with open(path, "rb") as f:
            data = f.read()
        try:
            return cls(data)
        except BadImageError as exc:
            raise BadImageError(f"{path} is not a readable portable PDB ({exc}); rebuild it") from None

    def document_name(self, rid: int) -> str:
        blob = self.md.blob(self.md.row(T.Document, rid)[0])
        if not blob:
            return ""
        sep = chr(blob[0]) if blob[0] else ""
        parts = []
        pos = 1
        while pos < len(blob):
            part, pos = read_compressed(blob, pos)
            parts.append(self.md.blob(part).decode("utf-8", "replace") if part else "")
        return sep.join(parts)

    @cached_property
    def method_documents(self) -> list[int]:
        """Per MethodDef row (index row - 1): the one Document row its sequence points lie in, 0 when they lie in
        several (inlined code), -1 when it has none. Read once per PDB, from two columns: a structural save asks
        which file every generated entity of both builds comes from."""
        documents = self.md.column(T.MethodDebugInformation, 0)
        blobs = self.md.column(T.MethodDebugInformation, 1)
        return [document if blob else -1 for document, blob in zip(documents, blobs, strict=True)]

    def documents(self) -> dict[str, int]:
        return {self.document_name(i): i for i in range(1, len(self.md.rows(T.Document)) + 1)}

    def method_info(self, method_rid: int) -> MethodDebugInfo:
        if method_rid > self.md.row_counts[T.MethodDebugInformation]:
            return MethodDebugInfo(0, [])
        document, blob_offset = self.md.row(T.MethodDebugInformation, method_rid)
        if not blob_offset:
            return MethodDebugInfo(0, [])
        return decode_sequence_points(self.md.blob(blob_offset), document)


def decode_sequence_points(blob: bytes, document: int) -> MethodDebugInfo:
    local_sig, pos = read_compressed(blob, 0)
    if not document:
        if pos >= len(blob):  # no sequence points, hence no initial document
            return MethodDebugInfo(local_sig, [])
        document, pos = read_compressed(blob, pos)
    points: list[SequencePoint] = []
    il = 0
    prev_line = prev_col = -1
    first = True
    while pos < len(blob):
        delta_il, pos = read_compressed(blob, pos)
        if not first and delta_il == 0:
            document, pos = read_compressed(blob, pos)
            continue
        il = delta_il if first else il + delta_il
        first = False
        delta_lines, pos = read_compressed(blob, pos)
        if delta_lines == 0:
            delta_cols, pos = read_compressed(blob, pos)
        else:
            delta_cols, pos = read_compressed_signed(blob, pos)
        if delta_lines == 0 and delta_cols == 0:
            points.append(SequencePoint(il, document, HIDDEN_LINE, 0, HIDDEN_LINE, 0))
            continue
        if prev_line < 0:
            line, pos = read_compressed(blob, pos)
            col, pos = read_compressed(blob, pos)
        else:
            dl, pos = read_compressed_signed(blob, pos)
            dc, pos = read_compressed_signed(blob, pos)
            line, col = prev_line + dl, prev_col + dc
        prev_line, prev_col = line, col
        points.append(SequencePoint(il, document, line, col, line + delta_lines, col + delta_cols))
    return MethodDebugInfo(local_sig, points)


def encode_sequence_points(info: MethodDebugInfo) -> tuple[int, bytes]:
    """Encode to (Document column value, blob); the column names the document when there is only one."""
    docs = {p.document for p in info.points}
    single = docs.pop() if len(docs) == 1 else 0
    out = bytearray(compressed(info.local_signature))
    current = single
    if not single and info.points:
        current = info.points[0].document
        out += compressed(current)
    prev_il = 0
    prev_line = prev_col = -1
    for i, p in enumerate(info.points):
        if p.document != current:
            out += compressed(0) + compressed(p.document)
            current = p.document
        out += compressed(p.il_offset if i == 0 else p.il_offset - prev_il)
        prev_il = p.il_offset
        if p.hidden:
            out += b"\0\0"
            continue
        delta_lines = p.end_line - p.start_line
        delta_cols = p.end_column - p.start_column
        out += compressed(delta_lines)
        out += compressed(delta_cols) if delta_lines == 0 else compressed_signed(delta_cols)
        if prev_line < 0:
            out += compressed(p.start_line) + compressed(p.start_column)
        else:
            out += compressed_signed(p.start_line - prev_line) + compressed_signed(p.start_column - prev_col)
        prev_line, prev_col = p.start_line, p.start_column
    return single, bytes(out)
