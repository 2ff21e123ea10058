"""An edit that cannot be applied to the running app, in words that tell the user what to do."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RefusalKind(StrEnum):
    """Why an edit cannot be applied; the value is the words status lines use."""

    SIGNATURE = "signature change"
    UNION_CASE = "union case change"
    LAYOUT = "record field, union case or struct layout change"
    TYPE_ATTRIBUTES = "type attribute change"
    TYPE_KIND = "type kind change"
    BASE_TYPE = "base type change"
    INTERFACES = "interface change"
    GENERIC_CONSTRAINT = "generic constraint change"
    GENERIC_PARAMETERS = "generic parameter change"
    FIELD_TYPE = "field type change"
    FIELD_ATTRIBUTES = "field attribute change"
    REMOVED_FIELD = "removed field"
    INITIALIZER = "static initializer change"
    ADDED_INITIALIZER = "added static initializer"
    REMOVED_INITIALIZER = "removed constructor or initializer"
    ADDED_VIRTUAL = "added virtual, override or interface member"
    REMOVED_VIRTUAL = "removed virtual, override or interface member"
    METHOD_ATTRIBUTES = "method attribute change"
    EVENTS = "event change"
    ATTRIBUTE_TARGET = "attribute change"
    CAPABILITY = "not supported by this runtime"
    AMBIGUOUS = "ambiguous change to compiler-generated code"
    NEW_REFERENCE = "reference to a new member"
    REFERENCE_KIND = "reference kind not supported"
    MISSING_METHOD = "method not in the running app"
    NO_BODY = "method has no IL body"
    DELETED_METHOD = "deleted method"
    CSHARP = "edit to a C# project"


@dataclass(frozen=True)
class Refusal:
    """An edit that cannot be applied to the running app, said so the user knows what to do."""

    kind: RefusalKind
    member: str
    detail: str = ""
    hint: str = "restart the app to pick it up"
    location: str = ""  # "File.fs:12" when known

    def __str__(self) -> str:
        extra = f": {self.detail}" if self.detail else ""
        where = f"{self.location}: " if self.location else ""
        return f"{where}{self.kind.value} in {self.member.replace('/', '.')}{extra} ({self.hint})"
