"""Just enough of the PE/COFF format to find a .NET image's metadata and method bodies."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import BadImageError


@dataclass(frozen=True)
class Section:
    name: str
    virtual_address: int
    virtual_size: int
    raw_offset: int
    raw_size: int


class PEImage:
    """A PE file held in memory: maps RVAs to bytes and exposes the CLI header's metadata directory."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        try:
            self._parse()
        except struct.error as exc:
            raise BadImageError(f"truncated PE image: {exc}") from None

    def _parse(self) -> None:
        d = self.data
        if d[:2] != b"MZ":
            raise BadImageError("not a PE file (no MZ signature)")
        pe = struct.unpack_from("<I", d, 0x3C)[0]
        if d[pe:pe + 4] != b"PE\0\0":
            raise BadImageError("not a PE file (no PE signature)")
        nsections, = struct.unpack_from("<H", d, pe + 6)
        opt_size, = struct.unpack_from("<H", d, pe + 20)
        opt = pe + 24
        magic, = struct.unpack_from("<H", d, opt)
        if magic == 0x10B:
            dirs = opt + 96
        elif magic == 0x20B:
            dirs = opt + 112
        else:
            raise BadImageError(f"unknown optional header magic {magic:#x}")
        self.sections: list[Section] = []
        sec = opt + opt_size
        for i in range(nsections):
            off = sec + 40 * i
            name = d[off:off + 8].rstrip(b"\0").decode("ascii", "replace")
            vsize, va, rsize, roff = struct.unpack_from("<IIII", d, off + 8)
            self.sections.append(Section(name, va, vsize, roff, rsize))
        cli_rva, _cli_size = struct.unpack_from("<II", d, dirs + 14 * 8)
        if cli_rva == 0:
            raise BadImageError("not a .NET assembly (no CLI header)")
        cli = self.rva_to_offset(cli_rva)
        md_rva, md_size = struct.unpack_from("<II", d, cli + 8)
        self.cli_flags, self.entry_point_token = struct.unpack_from("<II", d, cli + 16)
        self.resources_rva, self.resources_size = struct.unpack_from("<II", d, cli + 24)
        md_off = self.rva_to_offset(md_rva)
        if md_off + md_size > len(d):
            raise BadImageError("metadata directory runs past the end of the file")
        self.metadata = d[md_off:md_off + md_size]

    def rva_to_offset(self, rva: int) -> int:
        for s in self.sections:
            if s.virtual_address <= rva < s.virtual_address + max(s.virtual_size, s.raw_size):
                off = rva - s.virtual_address + s.raw_offset
                if off >= len(self.data):
                    break
                return off
        raise BadImageError(f"RVA {rva:#x} is outside every section")
