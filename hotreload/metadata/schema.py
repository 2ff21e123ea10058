"""ECMA-335 (and Portable PDB) table schema: one description drives both the reader and the delta writer."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from .errors import BadImageError


class T(IntEnum):
    """Metadata table numbers (ECMA-335 II.22, Portable PDB spec)."""

    Module = 0x00
    TypeRef = 0x01
    TypeDef = 0x02
    FieldPtr = 0x03
    Field = 0x04
    MethodPtr = 0x05
    MethodDef = 0x06
    ParamPtr = 0x07
    Param = 0x08
    InterfaceImpl = 0x09
    MemberRef = 0x0A
    Constant = 0x0B
    CustomAttribute = 0x0C
    FieldMarshal = 0x0D
    DeclSecurity = 0x0E
    ClassLayout = 0x0F
    FieldLayout = 0x10
    StandAloneSig = 0x11
    EventMap = 0x12
    EventPtr = 0x13
    Event = 0x14
    PropertyMap = 0x15
    PropertyPtr = 0x16
    Property = 0x17
    MethodSemantics = 0x18
    MethodImpl = 0x19
    ModuleRef = 0x1A
    TypeSpec = 0x1B
    ImplMap = 0x1C
    FieldRva = 0x1D
    EncLog = 0x1E
    EncMap = 0x1F
    Assembly = 0x20
    AssemblyProcessor = 0x21
    AssemblyOS = 0x22
    AssemblyRef = 0x23
    AssemblyRefProcessor = 0x24
    AssemblyRefOS = 0x25
    File = 0x26
    ExportedType = 0x27
    ManifestResource = 0x28
    NestedClass = 0x29
    GenericParam = 0x2A
    MethodSpec = 0x2B
    GenericParamConstraint = 0x2C
    Document = 0x30
    MethodDebugInformation = 0x31
    LocalScope = 0x32
    LocalVariable = 0x33
    LocalConstant = 0x34
    ImportScope = 0x35
    StateMachineMethod = 0x36
    CustomDebugInformation = 0x37


TABLE_COUNT = 64

_HAS_CA = (
    T.MethodDef, T.Field, T.TypeRef, T.TypeDef, T.Param, T.InterfaceImpl, T.MemberRef, T.Module,
    T.DeclSecurity, T.Property, T.Event, T.StandAloneSig, T.ModuleRef, T.TypeSpec, T.Assembly,
    T.AssemblyRef, T.File, T.ExportedType, T.ManifestResource, T.GenericParam,
    T.GenericParamConstraint, T.MethodSpec,
)


@dataclass(frozen=True)
class Coded:
    """A coded index: tag bits select one of `tables` (None marks an unused tag)."""

    name: str
    bits: int
    tables: tuple[T | None, ...]

    def decode(self, value: int) -> tuple[T | None, int]:
        """(table, row); a tag past the list or an unused one (None) comes from a corrupt file: BadImageError."""
        tag = value & ((1 << self.bits) - 1)
        table = self.tables[tag] if tag < len(self.tables) else None
        if table is None:
            raise BadImageError(f"corrupt {self.name} coded index {value:#x}: tag {tag} names no table")
        return table, value >> self.bits

    def encode(self, table: T, row: int) -> int:
        return (row << self.bits) | self.tables.index(table)


TypeDefOrRef = Coded("TypeDefOrRef", 2, (T.TypeDef, T.TypeRef, T.TypeSpec))
HasConstant = Coded("HasConstant", 2, (T.Field, T.Param, T.Property))
HasCustomAttribute = Coded("HasCustomAttribute", 5, _HAS_CA)
HasFieldMarshal = Coded("HasFieldMarshal", 1, (T.Field, T.Param))
HasDeclSecurity = Coded("HasDeclSecurity", 2, (T.TypeDef, T.MethodDef, T.Assembly))
MemberRefParent = Coded("MemberRefParent", 3, (T.TypeDef, T.TypeRef, T.ModuleRef, T.MethodDef, T.TypeSpec))
HasSemantics = Coded("HasSemantics", 1, (T.Event, T.Property))
MethodDefOrRef = Coded("MethodDefOrRef", 1, (T.MethodDef, T.MemberRef))
MemberForwarded = Coded("MemberForwarded", 1, (T.Field, T.MethodDef))
Implementation = Coded("Implementation", 2, (T.File, T.AssemblyRef, T.ExportedType))
CustomAttributeType = Coded("CustomAttributeType", 3, (None, None, T.MethodDef, T.MemberRef, None))
ResolutionScope = Coded("ResolutionScope", 2, (T.Module, T.ModuleRef, T.AssemblyRef, T.TypeRef))
TypeOrMethodDef = Coded("TypeOrMethodDef", 1, (T.TypeDef, T.MethodDef))
HasCustomDebugInformation = Coded(
    "HasCustomDebugInformation", 5,
    _HAS_CA + (T.Document, T.LocalScope, T.LocalVariable, T.LocalConstant, T.ImportScope),
)

# Column kinds: "u1" "u2" "u4" fixed; "str" "guid" "blob" heap indexes; a T is a simple row index;
# a Coded is a coded index.
Column = str | T | Coded

SCHEMA: dict[T, tuple[tuple[str, Column], ...]] = {
    T.Module: (("Generation", "u2"), ("Name", "str"), ("Mvid", "guid"), ("EncId", "guid"), ("EncBaseId", "guid")),
    T.TypeRef: (("ResolutionScope", ResolutionScope), ("Name", "str"), ("Namespace", "str")),
    T.TypeDef: (("Flags", "u4"), ("Name", "str"), ("Namespace", "str"), ("Extends", TypeDefOrRef),
                ("FieldList", T.Field), ("MethodList", T.MethodDef)),
    T.FieldPtr: (("Field", T.Field),),
    T.Field: (("Flags", "u2"), ("Name", "str"), ("Signature", "blob")),
    T.MethodPtr: (("Method", T.MethodDef),),
    T.MethodDef: (("Rva", "u4"), ("ImplFlags", "u2"), ("Flags", "u2"), ("Name", "str"), ("Signature", "blob"),
                  ("ParamList", T.Param)),
    T.ParamPtr: (("Param", T.Param),),
    T.Param: (("Flags", "u2"), ("Sequence", "u2"), ("Name", "str")),
    T.InterfaceImpl: (("Class", T.TypeDef), ("Interface", TypeDefOrRef)),
    T.MemberRef: (("Class", MemberRefParent), ("Name", "str"), ("Signature", "blob")),
    T.Constant: (("Type", "u2"), ("Parent", HasConstant), ("Value", "blob")),
    T.CustomAttribute: (("Parent", HasCustomAttribute), ("Type", CustomAttributeType), ("Value", "blob")),
    T.FieldMarshal: (("Parent", HasFieldMarshal), ("NativeType", "blob")),
    T.DeclSecurity: (("Action", "u2"), ("Parent", HasDeclSecurity), ("PermissionSet", "blob")),
    T.ClassLayout: (("PackingSize", "u2"), ("ClassSize", "u4"), ("Parent", T.TypeDef)),
    T.FieldLayout: (("Offset", "u4"), ("Field", T.Field)),
    T.StandAloneSig: (("Signature", "blob"),),
    T.EventMap: (("Parent", T.TypeDef), ("EventList", T.Event)),
    T.EventPtr: (("Event", T.Event),),
    T.Event: (("Flags", "u2"), ("Name", "str"), ("EventType", TypeDefOrRef)),
    T.PropertyMap: (("Parent", T.TypeDef), ("PropertyList", T.Property)),
    T.PropertyPtr: (("Property", T.Property),),
    T.Property: (("Flags", "u2"), ("Name", "str"), ("Type", "blob")),
    T.MethodSemantics: (("Semantics", "u2"), ("Method", T.MethodDef), ("Association", HasSemantics)),
    T.MethodImpl: (("Class", T.TypeDef), ("Body", MethodDefOrRef), ("Declaration", MethodDefOrRef)),
    T.ModuleRef: (("Name", "str"),),
    T.TypeSpec: (("Signature", "blob"),),
    T.ImplMap: (("Flags", "u2"), ("Member", MemberForwarded), ("ImportName", "str"), ("ImportScope", T.ModuleRef)),
    T.FieldRva: (("Rva", "u4"), ("Field", T.Field)),
    T.EncLog: (("Token", "u4"), ("FuncCode", "u4")),
    T.EncMap: (("Token", "u4"),),
    T.Assembly: (("HashAlgId", "u4"), ("Major", "u2"), ("Minor", "u2"), ("Build", "u2"), ("Revision", "u2"),
                 ("Flags", "u4"), ("PublicKey", "blob"), ("Name", "str"), ("Culture", "str")),
    T.AssemblyProcessor: (("Processor", "u4"),),
    T.AssemblyOS: (("PlatformId", "u4"), ("Major", "u4"), ("Minor", "u4")),
    T.AssemblyRef: (("Major", "u2"), ("Minor", "u2"), ("Build", "u2"), ("Revision", "u2"), ("Flags", "u4"),
                    ("PublicKeyOrToken", "blob"), ("Name", "str"), ("Culture", "str"), ("HashValue", "blob")),
    T.AssemblyRefProcessor: (("Processor", "u4"), ("AssemblyRef", T.AssemblyRef)),
    T.AssemblyRefOS: (("PlatformId", "u4"), ("Major", "u4"), ("Minor", "u4"), ("AssemblyRef", T.AssemblyRef)),
    T.File: (("Flags", "u4"), ("Name", "str"), ("HashValue", "blob")),
    T.ExportedType: (("Flags", "u4"), ("TypeDefId", "u4"), ("Name", "str"), ("Namespace", "str"),
                     ("Implementation", Implementation)),
    T.ManifestResource: (("Offset", "u4"), ("Flags", "u4"), ("Name", "str"), ("Implementation", Implementation)),
    T.NestedClass: (("Nested", T.TypeDef), ("Enclosing", T.TypeDef)),
    T.GenericParam: (("Number", "u2"), ("Flags", "u2"), ("Owner", TypeOrMethodDef), ("Name", "str")),
    T.MethodSpec: (("Method", MethodDefOrRef), ("Instantiation", "blob")),
    T.GenericParamConstraint: (("Owner", T.GenericParam), ("Constraint", TypeDefOrRef)),
    T.Document: (("Name", "blob"), ("HashAlgorithm", "guid"), ("Hash", "blob"), ("Language", "guid")),
    T.MethodDebugInformation: (("Document", T.Document), ("SequencePoints", "blob")),
    T.LocalScope: (("Method", T.MethodDef), ("ImportScope", T.ImportScope), ("VariableList", T.LocalVariable),
                   ("ConstantList", T.LocalConstant), ("StartOffset", "u4"), ("Length", "u4")),
    T.LocalVariable: (("Attributes", "u2"), ("Index", "u2"), ("Name", "str")),
    T.LocalConstant: (("Name", "str"), ("Signature", "blob")),
    T.ImportScope: (("Parent", T.ImportScope), ("Imports", "blob")),
    T.StateMachineMethod: (("MoveNext", T.MethodDef), ("Kickoff", T.MethodDef)),
    T.CustomDebugInformation: (("Parent", HasCustomDebugInformation), ("Kind", "guid"), ("Value", "blob")),
}

FIXED_SIZES = {"u1": 1, "u2": 2, "u4": 4}


def column_index(table: T, name: str) -> int:
    """Position of a named column, so callers read rows by name without magic numbers."""
    for i, (col_name, _) in enumerate(SCHEMA[table]):
        if col_name == name:
            return i
    raise KeyError(f"{table.name} has no column {name}")


def token(table: T, row: int) -> int:
    return (int(table) << 24) | row


def split_token(tok: int) -> tuple[int, int]:
    return tok >> 24, tok & 0xFFFFFF
