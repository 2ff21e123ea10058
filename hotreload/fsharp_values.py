"""Python values <-> F# values, driven by the .NET parameter type (what `Session.call` passes and returns).

Reflection alone passes only scalars, and refuses a generic method outright. An F# function wants its own types,
so for each call:

* a generic function's type arguments come from `type_args` or are inferred: each parameter type (`'a`,
  `'a list`, `'a option`, `'a * 'b`, `'a[]`, `Map<'k, 'v>`, ...) is matched against the Python argument, and a
  type parameter gets the type of the values found in its place (ints and floats together: float; otherwise
  mixed: obj);
* each argument becomes the parameter's type: list/tuple/set -> F# list, array, seq, ResizeArray or Set; tuple ->
  tuple; None -> None and x -> Some x for an option; dict -> Map, Dictionary or a record (keys = field names); a
  case name or ("Case", field, ...) -> a union case; an enum's name or number -> the enum; ints, floats,
  decimal.Decimals, bools and strs -> the scalar asked for;
* the result comes back as plain Python: F# list, array and ResizeArray -> list; tuple -> tuple; option and
  voption -> the value or None; Map and Dictionary -> dict; Set and HashSet -> frozenset; decimal ->
  decimal.Decimal; record -> dict of field name -> value; union case without fields -> its name; union case with
  fields -> a `UnionCase` tuple (name, *fields) whose fields are also attributes (`.radius`). Anything else stays
  the .NET object pythonnet gives (lazy seqs too: they may be infinite), so it can be passed back.

F# values are read and made with F#'s own reflection (FSharpType, FSharpValue) from the app's FSharp.Core: the
host process may hold another FSharp.Core (the compiler's), whose reflection does not know the app's types.
"""

from __future__ import annotations

import contextlib
import decimal
import keyword
from collections import namedtuple
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .app import AppError

LIST = "Microsoft.FSharp.Collections.FSharpList`1"
MAP = "Microsoft.FSharp.Collections.FSharpMap`2"
SET = "Microsoft.FSharp.Collections.FSharpSet`1"
OPTION = "Microsoft.FSharp.Core.FSharpOption`1"
VOPTION = "Microsoft.FSharp.Core.FSharpValueOption`1"
NULLABLE = "System.Nullable`1"
RESIZE_ARRAY = "System.Collections.Generic.List`1"
DICTIONARY = "System.Collections.Generic.Dictionary`2"
HASH_SET = "System.Collections.Generic.HashSet`1"
# Interfaces an argument is built for as a T[] (an array implements them all).
ARRAY_INTERFACES = {f"System.Collections.Generic.{n}`1" for n in
                    ("IEnumerable", "ICollection", "IList", "IReadOnlyCollection", "IReadOnlyList")}
DICTIONARY_INTERFACES = {"System.Collections.Generic.IDictionary`2", "System.Collections.Generic.IReadOnlyDictionary`2"}
SET_INTERFACES = {"System.Collections.Generic.ISet`1", "System.Collections.Generic.IReadOnlySet`1"}
SEQUENCES = {LIST, SET, RESIZE_ARRAY, HASH_SET} | ARRAY_INTERFACES | SET_INTERFACES
MAPS = {MAP, DICTIONARY} | DICTIONARY_INTERFACES
OPTIONS = {OPTION, VOPTION, NULLABLE}

SCALARS: dict[str, str] = {  # .NET type -> F# name (error messages, and names accepted in type_args)
    "System.Int32": "int", "System.Int64": "int64", "System.Double": "float", "System.Single": "float32",
    "System.String": "string", "System.Boolean": "bool", "System.Char": "char", "System.Byte": "byte",
    "System.SByte": "sbyte", "System.Int16": "int16", "System.UInt16": "uint16", "System.UInt32": "uint32",
    "System.UInt64": "uint64", "System.Decimal": "decimal", "System.Object": "obj",
    "Microsoft.FSharp.Core.Unit": "unit",
}
INTEGERS = {"System.Int32", "System.Int64", "System.Byte", "System.SByte", "System.Int16", "System.UInt16",
            "System.UInt32", "System.UInt64"}
FLOATS = {"System.Double", "System.Single", "System.Decimal"}
WIDENING = ["System.Int32", "System.Int64", "System.Double"]  # inferred from mixed Python numbers: the widest
PYTHON_TYPES: dict[type, str] = {int: "System.Int32", float: "System.Double", str: "System.String",
                                 bool: "System.Boolean", object: "System.Object"}


class ConversionError(ValueError):
    """A Python value that cannot become the .NET type asked for; `path` says where inside the argument."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.message, self.path = message, path

    def inside(self, step: str) -> ConversionError:
        return ConversionError(self.message, step + self.path)


class UnionCase(tuple):  # type: ignore[type-arg]
    """A union case with fields, as (case name, field, ...); each case gets a subclass naming its fields."""

    __slots__ = ()
    case: str


def _clr() -> Any:
    import System  # type: ignore[import-not-found]

    return System


def is_net(value: Any) -> bool:
    """Whether `value` is a .NET object (pythonnet converts .NET scalars and strings to Python ones)."""
    return isinstance(value, _clr().Object)


def generic_name(t: Any) -> str:
    """The generic type definition's full name ('' for a type that is not generic)."""
    return str(t.GetGenericTypeDefinition().FullName) if t.IsGenericType else ""


def type_name(t: Any) -> str:
    """A .NET type as F# writes it: `int list`, `string option`, `int * float`, `Map<string, int>`, `'a`."""
    if t.IsGenericParameter:
        return f"'{t.Name}"
    if t.IsArray:
        return f"{_postfix_arg(t.GetElementType())}[]"
    if not t.IsGenericType:
        return SCALARS.get(str(t.FullName), str(t.Name))
    name, args = generic_name(t), list(t.GetGenericArguments())
    if name.startswith(("System.Tuple`", "System.ValueTuple`")):
        if len(args) == 8 and generic_name(args[7]).startswith(("System.Tuple`", "System.ValueTuple`")):
            return " * ".join([*(_postfix_arg(a) for a in args[:7]), type_name(args[7])])
        return " * ".join(_postfix_arg(a) for a in args)
    postfix = {LIST: "list", OPTION: "option", VOPTION: "voption", NULLABLE: "Nullable", RESIZE_ARRAY: "ResizeArray"}
    if name in postfix:
        return f"{_postfix_arg(args[0])} {postfix[name]}"
    short = {MAP: "Map", SET: "Set", "System.Collections.Generic.IEnumerable`1": "seq"}.get(
        name, str(t.Name).split("`")[0])
    return f"{short}<{', '.join(type_name(a) for a in args)}>"


def _postfix_arg(t: Any) -> str:
    text = type_name(t)
    return f"({text})" if " * " in text or " -> " in text else text


def _hashable(value: Any) -> Any:
    """A dict key or set element: lists become tuples, dicts tuples of items, sets frozensets."""
    try:
        hash(value)
        return value
    except TypeError:
        if isinstance(value, dict):
            return tuple((k, _hashable(v)) for k, v in value.items())
        if isinstance(value, (set, frozenset)):
            return frozenset(value)
        return tuple(_hashable(v) for v in value)


def _case_class(name: str, fields: Sequence[str]) -> type[UnionCase]:
    typename = name if name.isidentifier() and not keyword.iskeyword(name) else "UnionCase"
    base = namedtuple(typename, ["case", *fields], rename=True)  # type: ignore[misc]
    return type(base.__name__, (base, UnionCase), {"__slots__": ()})


class FSharpValues:
    """Converts call arguments and results for one app: `fsharp_core` is the FSharp.Core its code uses (None for
    an app without F#), `assemblies` lists the app's loaded assemblies (type names in `type_args`)."""

    def __init__(self, fsharp_core: Any, assemblies: Callable[[], Iterable[Any]]) -> None:
        import clr  # type: ignore[import-not-found]

        System = _clr()
        from System.Reflection import BindingFlags  # type: ignore[import-not-found]

        self.assemblies = assemblies
        self.object_type = clr.GetClrType(System.Object)
        self._cases: dict[tuple[str, str], type[UnionCase]] = {}
        self._kinds: dict[Any, str] = {}
        self.core = fsharp_core
        if fsharp_core is None:
            return
        ftype = fsharp_core.GetType("Microsoft.FSharp.Reflection.FSharpType")
        fvalue = fsharp_core.GetType("Microsoft.FSharp.Reflection.FSharpValue")

        def member(t: Any, name: str, count: int) -> Any:
            return next(m for m in t.GetMethods() if m.Name == name and m.GetParameters().Length == count)

        flags = BindingFlags.Public | BindingFlags.NonPublic  # records and unions with a private representation
        option = fsharp_core.GetType(OPTION).MakeGenericType(System.Array[System.Type]([clr.GetClrType(BindingFlags)]))
        self._flags = option.GetMethod("Some").Invoke(None, System.Array[System.Object]([flags]))
        self._is_record, self._is_union = member(ftype, "IsRecord", 2), member(ftype, "IsUnion", 2)
        self._is_tuple, self._tuple_elements = member(ftype, "IsTuple", 1), member(ftype, "GetTupleElements", 1)
        self._record_fields, self._union_cases = member(ftype, "GetRecordFields", 2), member(ftype, "GetUnionCases", 2)
        self._record_values, self._make_record = member(fvalue, "GetRecordFields", 2), member(fvalue, "MakeRecord", 3)
        self._union_values, self._make_union = member(fvalue, "GetUnionFields", 3), member(fvalue, "MakeUnion", 3)
        self._tuple_values, self._make_tuple = member(fvalue, "GetTupleFields", 1), member(fvalue, "MakeTuple", 2)
        self._of_array = member(fsharp_core.GetType("Microsoft.FSharp.Collections.ListModule"), "OfArray", 1)

    @staticmethod
    def _invoke(method: Any, *args: Any) -> Any:
        System = _clr()
        return method.Invoke(None, System.Array[System.Object](list(args)))

    def kind(self, t: Any) -> str:
        """'record', 'union', 'tuple' or '' for a type, by F#'s reflection (cached: it reads attributes)."""
        found = self._kinds.get(t)
        if found is None:
            found = ""
            if self.core is not None:
                if self._invoke(self._is_tuple, t):
                    found = "tuple"
                elif self._invoke(self._is_record, t, self._flags):
                    found = "record"
                elif self._invoke(self._is_union, t, self._flags):
                    found = "union"
            self._kinds[t] = found
        return found

    def net_type(self, name: str) -> Any:
        """A .NET type by its full name; FSharp.Core's from the app's copy."""
        System = _clr()
        found = self.core.GetType(name) if name.startswith("Microsoft.FSharp.") else System.Type.GetType(name)
        if found is None:
            raise ConversionError(f"the app has no {name} (does it reference FSharp.Core?)")
        return found

    def make_generic(self, name: str, args: Sequence[Any]) -> Any:
        System = _clr()
        return self.net_type(name).MakeGenericType(System.Array[System.Type](list(args)))

    def tuple_type(self, elements: Sequence[Any]) -> Any:
        """System.Tuple of these element types; more than 7 nest in the last one (TRest), as F# does."""
        if len(elements) > 7:
            return self.make_generic("System.Tuple`8", [*elements[:7], self.tuple_type(elements[7:])])
        return self.make_generic(f"System.Tuple`{len(elements)}", elements)

    # ---- type arguments ---------------------------------------------------------------------------
    def resolve_type(self, spec: Any) -> Any:
        """A `type_args` entry: int, float, str, bool or object; a .NET type (System.Type, or a pythonnet class
        such as System.Int64); or a name: F# (`int64`, `string`), .NET (`System.Int64`) or the app's (`Demo.Shape`)."""
        import clr  # type: ignore[import-not-found]

        System = _clr()
        if isinstance(spec, type) and spec in PYTHON_TYPES:
            return System.Type.GetType(PYTHON_TYPES[spec])
        if isinstance(spec, System.Type):
            return spec
        if isinstance(spec, str):
            name = next((full for full, alias in SCALARS.items() if alias == spec), spec)
            found = System.Type.GetType(name)
            for assembly in ([] if found is not None else self.assemblies()):
                found = assembly.GetType(name)
                if found is None and "." in name:  # a type in a module: Ns.Module.Type is Ns.Module+Type
                    head, _, tail = name.rpartition(".")
                    found = assembly.GetType(f"{head}+{tail}")
                if found is not None:
                    break
            if found is None:
                raise ConversionError(f"no type named {spec!r} (give a full .NET name such as 'System.Int64', "
                                      f"an F# one such as 'int64', or one of the app's such as 'MyApp.Shape')")
            return found
        with contextlib.suppress(Exception):  # a pythonnet class (System.Int64); a Python class is not a type here
            return clr.GetClrType(spec)
        raise ConversionError(f"{spec!r} is not a type: give int, float, str, bool, a .NET type name or a System.Type")

    def natural_type(self, value: Any, unknown: Any) -> Any:
        """The .NET type a Python value makes when nothing asks for another; `unknown` where it cannot say
        (None, an empty list)."""
        System = _clr()
        if is_net(value):
            return value.GetType()
        if isinstance(value, bool):
            return System.Type.GetType("System.Boolean")
        if isinstance(value, int):
            return System.Type.GetType("System.Int32" if -2**31 <= value < 2**31 else "System.Int64")
        if isinstance(value, float):
            return System.Type.GetType("System.Double")
        if isinstance(value, decimal.Decimal):
            return System.Type.GetType("System.Decimal")
        if isinstance(value, str):
            return System.Type.GetType("System.String")
        if isinstance(value, (list, set, frozenset)):
            element = self.join_all(self.natural_type(x, None) for x in value)
            if element is None:
                element = unknown
            if element is None:
                return None
            return self.make_generic(LIST if isinstance(value, list) else SET, [element])
        if isinstance(value, tuple) and value:
            elements = [self.natural_type(x, unknown) for x in value]
            return None if any(e is None for e in elements) else self.tuple_type(elements)
        if isinstance(value, dict):
            key = self.join_all(self.natural_type(k, None) for k in value)
            item = self.join_all(self.natural_type(v, None) for v in value.values())
            key, item = (unknown if key is None else key), (unknown if item is None else item)
            return None if key is None or item is None else self.make_generic(MAP, [key, item])
        return unknown

    def join(self, a: Any, b: Any) -> Any:
        """The type both values fit: the same type, the wider number, the same generic of joined arguments, obj."""
        if a is None or b is None:
            return b if a is None else a
        if a.Equals(b):
            return a
        names = (str(a.FullName), str(b.FullName))
        if names[0] in WIDENING and names[1] in WIDENING:
            return a if WIDENING.index(names[0]) > WIDENING.index(names[1]) else b
        if a.IsGenericType and b.IsGenericType and generic_name(a) == generic_name(b):
            args = [self.join(x, y) for x, y in zip(a.GetGenericArguments(), b.GetGenericArguments(), strict=True)]
            return self.make_generic(generic_name(a), args)
        return self.object_type

    def join_all(self, types: Iterable[Any]) -> Any:
        found = None
        for t in types:
            found = self.join(found, t)
        return found

    def infer(self, parameter: Any, value: Any, found: list[Any]) -> None:
        """Match a parameter type that mentions the method's type parameters against a Python argument."""
        if not parameter.ContainsGenericParameters:
            return
        if is_net(value):
            self.infer_from_type(parameter, value.GetType(), found)
        elif parameter.IsGenericParameter:
            if parameter.DeclaringMethod is not None:
                position = parameter.GenericParameterPosition
                found[position] = self.join(found[position], self.natural_type(value, None))
        elif parameter.IsArray:
            if isinstance(value, (list, tuple)):
                for x in value:
                    self.infer(parameter.GetElementType(), x, found)
        elif parameter.IsGenericType:
            name, args = generic_name(parameter), list(parameter.GetGenericArguments())
            if name in SEQUENCES and isinstance(value, (list, tuple, set, frozenset)):
                for x in value:
                    self.infer(args[0], x, found)
            elif name in OPTIONS and value is not None:
                self.infer(args[0], value, found)
            elif name in MAPS and isinstance(value, dict):
                for k, v in value.items():
                    self.infer(args[0], k, found)
                    self.infer(args[1], v, found)
            elif name.startswith(("System.Tuple`", "System.ValueTuple`")) and isinstance(value, tuple):
                if len(args) == 8:
                    self.infer(args[7], value[7:], found)
                for arg, x in zip(args[:7], value, strict=False):
                    self.infer(arg, x, found)

    def infer_from_type(self, parameter: Any, actual: Any, found: list[Any]) -> None:
        """Match a parameter type against the type of a .NET value passed as it is."""
        if not parameter.ContainsGenericParameters:
            return
        if parameter.IsGenericParameter:
            if parameter.DeclaringMethod is not None:
                position = parameter.GenericParameterPosition
                found[position] = self.join(found[position], actual)
        elif parameter.IsArray and actual.IsArray:
            self.infer_from_type(parameter.GetElementType(), actual.GetElementType(), found)
        elif parameter.IsGenericType:
            definition = parameter.GetGenericTypeDefinition()
            candidates, base = [*actual.GetInterfaces()], actual
            while base is not None:
                candidates.insert(0, base)
                base = base.BaseType
            for candidate in candidates:
                if candidate.IsGenericType and candidate.GetGenericTypeDefinition().Equals(definition):
                    for p, a in zip(parameter.GetGenericArguments(), candidate.GetGenericArguments(), strict=True):
                        self.infer_from_type(p, a, found)
                    return

    def bind(self, name: str, method: Any, args: Sequence[Any],
             type_args: Sequence[Any] | None) -> tuple[Any, list[Any]]:
        """The method to invoke (a generic one made with its type arguments) and `args` as .NET values of its
        parameter types; AppError naming the function and what to do otherwise."""
        parameters = list(method.GetParameters())
        labels, args = self._spread(name, method, parameters, args)
        if method.ContainsGenericParameters:
            method = self._made(name, method, parameters, args, type_args)
            parameters = list(method.GetParameters())
        elif type_args:
            raise AppError(f"{name} is not generic: leave out type_args")
        converted = []
        for label, p, value in zip(labels, parameters, args, strict=True):
            try:
                converted.append(self.to_net(value, p.ParameterType))
            except ConversionError as exc:
                where = f"{p.Name}{exc.path}: " if exc.path else ""
                raise AppError(f"{name}: {label} wants {type_name(p.ParameterType)}; {where}{exc.message}") from None
        return method, converted

    @staticmethod
    def _spread(name: str, method: Any, parameters: list[Any], args: Sequence[Any]) -> tuple[list[str], list[Any]]:
        """The arguments one per .NET parameter, with a label for messages. F# compiles a tupled argument group to
        one parameter per item (`let f (a, b) c` is f(a, b, c), CompilationArgumentCounts [2; 1]): it is given as
        F# calls it, one tuple per group, or item by item."""
        counts = [len(parameters)]
        for data in method.GetCustomAttributesData():
            if str(data.AttributeType.Name) == "CompilationArgumentCountsAttribute":
                counts = [int(c.Value) for c in data.ConstructorArguments[0].Value]
        if len(args) == len(parameters):
            return [f"argument {i + 1} ({p.Name})" for i, p in enumerate(parameters)], list(args)
        if len(args) == len(counts) and all(k == 1 or (isinstance(a, tuple) and len(a) == k)
                                            for a, k in zip(args, counts, strict=True)):
            labels: list[str] = []
            spread: list[Any] = []
            for i, (a, k) in enumerate(zip(args, counts, strict=True)):
                labels += [f"argument {i + 1} ({p.Name})" for p in parameters[len(spread):len(spread) + k]]
                spread += list(a) if k > 1 else [a]
            return labels, spread
        groups, at = [], 0
        for k in counts:  # as F# writes the signature: (a, b) c
            items = ", ".join(f"{p.Name}: {type_name(p.ParameterType)}" for p in parameters[at:at + k])
            groups.append(f"({items})" if k > 1 else items)
            at += k
        text = f"{name} takes {len(counts)} argument(s) ({', '.join(groups)})"
        if len(counts) != len(parameters):
            text += f", a tuple for each parenthesized group, or its {len(parameters)} parameters one by one"
        raise AppError(f"{text}; got {len(args)}"
                       + ("; a function of unit takes none: call it with no arguments" if not parameters else ""))

    def _made(self, name: str, method: Any, parameters: list[Any], args: Sequence[Any],
              type_args: Sequence[Any] | None) -> Any:
        System = _clr()
        generic = list(method.GetGenericArguments())
        names = ", ".join(type_name(g) for g in generic)
        if type_args is not None and len(type_args) != len(generic):
            raise AppError(f"{name} has {len(generic)} type parameter(s) ({names}); type_args gives {len(type_args)}")
        found: list[Any] = [None] * len(generic)
        for i, spec in enumerate(type_args or []):
            if spec is not None:
                try:
                    found[i] = self.resolve_type(spec)
                except ConversionError as exc:
                    raise AppError(f"{name}: type_args[{i}]: {exc.message}") from None
        inferred: list[Any] = [None] * len(generic)
        for p, value in zip(parameters, args, strict=True):
            try:
                self.infer(p.ParameterType, value, inferred)
            except ConversionError as exc:
                raise AppError(f"{name}: {exc.message}") from None
        types = [given if given is not None else guess for given, guess in zip(found, inferred, strict=True)]
        missing = [type_name(g) for g, t in zip(generic, types, strict=True) if t is None]
        if missing:
            raise AppError(f"{name} is generic ({names}) and the arguments do not say what {', '.join(missing)} "
                           f"{'is' if len(missing) == 1 else 'are'}: pass type_args=[...], one type per type "
                           f"parameter (int, float, str, bool, a .NET type or its name; None to infer that one)")
        try:
            return method.MakeGenericMethod(System.Array[System.Type](types))
        except Exception as exc:  # noqa: BLE001 - ArgumentException: a constraint the types do not meet
            inner = getattr(exc, "InnerException", None) or exc
            given = ", ".join(type_name(t) for t in types)
            raise AppError(f"{name} cannot take the type arguments ({given}) for ({names}): "
                           f"{str(getattr(inner, 'Message', inner)).splitlines()[0]}; pass other type_args") from None

    # ---- Python -> .NET ---------------------------------------------------------------------------
    def to_net(self, value: Any, t: Any) -> Any:
        """`value` as a .NET value of type `t` (closed). ConversionError says why not."""
        System = _clr()
        if is_net(value):
            if t.IsInstanceOfType(value):
                return value
            raise ConversionError(f"a .NET {type_name(value.GetType())} cannot be {type_name(t)}")
        full, name = str(t.FullName), generic_name(t)
        if value is None:
            if name == VOPTION:
                return t.GetProperty("None").GetValue(None)
            if not t.IsValueType or name == NULLABLE:
                return None
            raise ConversionError(f"None cannot be {type_name(t)}")
        if t.Equals(self.object_type):
            natural = self.natural_type(value, self.object_type)
            if natural is None or natural.Equals(self.object_type):
                raise ConversionError(f"a Python {type(value).__name__} has no .NET counterpart")
            return self.to_net(value, natural)
        if full in SCALARS:
            return self._scalar(value, t, full)
        if t.IsEnum:
            if isinstance(value, str):
                return System.Enum.Parse(t, value)
            if isinstance(value, int) and not isinstance(value, bool):
                return System.Enum.ToObject(t, value)
            raise ConversionError(f"{_short(value)} cannot be {type_name(t)} (give a case name or a number)")
        if name in OPTIONS:
            inner = self.to_net(value, t.GetGenericArguments()[0])
            return inner if name == NULLABLE else self._invoke(t.GetMethod("Some"), inner)
        if t.IsArray or name in SEQUENCES:
            return self._sequence(value, t, name)
        if name in MAPS:
            return self._map(value, t, name)
        kind = self.kind(t)
        if kind == "tuple":
            return self._tuple(value, t)
        if kind == "record":
            return self._record(value, t)
        if kind == "union":
            return self._union(value, t)
        raise ConversionError(f"a Python {type(value).__name__} cannot be {type_name(t)}"
                              f" (pass a {type_name(t)} the app made)")

    @staticmethod
    def _scalar(value: Any, t: Any, full: str) -> Any:
        System = _clr()
        if full == "Microsoft.FSharp.Core.Unit":
            raise ConversionError(f"{_short(value)} cannot be unit (pass None)")
        if isinstance(value, decimal.Decimal) and full in FLOATS:
            if full == "System.Decimal":
                from System.Globalization import CultureInfo  # type: ignore[import-not-found]

                return System.Decimal.Parse(format(value, "f"), CultureInfo.InvariantCulture)
            value = float(value)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        fits = {"System.String": isinstance(value, str), "System.Boolean": isinstance(value, bool),
                "System.Char": isinstance(value, str) and len(value) == 1}.get(
            full, number and (full in FLOATS or isinstance(value, int)))
        if not fits:
            raise ConversionError(f"{_short(value)} cannot be {SCALARS[full]}")
        if full == "System.String":
            return value
        try:
            return getattr(System, full.removeprefix("System."))(value)
        except (OverflowError, ValueError, TypeError):
            raise ConversionError(f"{_short(value)} does not fit in {SCALARS[full]}") from None

    def _items(self, value: Any, element: Any) -> list[Any]:
        if not isinstance(value, (list, tuple, set, frozenset)):
            raise ConversionError(f"{_short(value)} is not a list")
        out = []
        for i, x in enumerate(value):
            try:
                out.append(self.to_net(x, element))
            except ConversionError as exc:
                raise exc.inside(f"[{i}]") from None
        return out

    def _array(self, items: list[Any], element: Any) -> Any:
        System = _clr()
        array = System.Array.CreateInstance(element, len(items))
        for i, x in enumerate(items):
            array.SetValue(x, i)
        return array

    def _sequence(self, value: Any, t: Any, name: str) -> Any:
        System = _clr()
        element = t.GetElementType() if t.IsArray else t.GetGenericArguments()[0]
        array = self._array(self._items(value, element), element)
        if t.IsArray or name in ARRAY_INTERFACES:
            return array
        if name == LIST:
            return self._invoke(self._of_array.MakeGenericMethod(System.Array[System.Type]([element])), array)
        made = t if not t.IsInterface else self.make_generic(HASH_SET, [element])
        return System.Activator.CreateInstance(made, System.Array[System.Object]([array]))

    def _map(self, value: Any, t: Any, name: str) -> Any:
        System = _clr()
        if not isinstance(value, dict):
            raise ConversionError(f"{_short(value)} is not a dict")
        key, item = t.GetGenericArguments()
        pairs = []
        for k, v in value.items():
            try:
                pairs.append((self.to_net(k, key), self.to_net(v, item)))
            except ConversionError as exc:
                raise exc.inside(f"[{k!r}]") from None
        if name == MAP:
            pair = self.tuple_type([key, item])
            tuples = [System.Activator.CreateInstance(pair, System.Array[System.Object](list(p))) for p in pairs]
            return System.Activator.CreateInstance(t, System.Array[System.Object]([self._array(tuples, pair)]))
        made = self.make_generic(DICTIONARY, [key, item])
        dictionary = System.Activator.CreateInstance(made)
        for k, v in pairs:
            dictionary.Add(k, v)
        return dictionary

    def _tuple(self, value: Any, t: Any) -> Any:
        elements = list(self._invoke(self._tuple_elements, t))
        if not isinstance(value, tuple) or len(value) != len(elements):
            raise ConversionError(f"{_short(value)} is not a tuple of {len(elements)}")
        items = []
        for i, (x, element) in enumerate(zip(value, elements, strict=True)):
            try:
                items.append(self.to_net(x, element))
            except ConversionError as exc:
                raise exc.inside(f"[{i}]") from None
        return self._invoke(self._make_tuple, self._array(items, self.object_type), t)

    def _record(self, value: Any, t: Any) -> Any:
        fields = list(self._invoke(self._record_fields, t, self._flags))
        names = [str(f.Name) for f in fields]
        if not isinstance(value, dict) or set(value) != set(names):
            raise ConversionError(f"{_short(value)} is not a dict of exactly the fields {', '.join(names)}")
        items = []
        for f, n in zip(fields, names, strict=True):
            try:
                items.append(self.to_net(value[n], f.PropertyType))
            except ConversionError as exc:
                raise exc.inside(f"[{n!r}]") from None
        return self._invoke(self._make_record, t, self._array(items, self.object_type), self._flags)

    def _union(self, value: Any, t: Any) -> Any:
        cases = {str(c.Name): c for c in self._invoke(self._union_cases, t, self._flags)}
        case_name, values = (value, ()) if isinstance(value, str) else (
            (value[0], value[1:]) if isinstance(value, tuple) and value and isinstance(value[0], str) else (None, ()))
        if case_name is None:
            raise ConversionError(f"{_short(value)} is not a case name or a (case name, field, ...) tuple")
        case = cases.get(case_name)
        if case is None:
            raise ConversionError(f"{type_name(t)} has no case {case_name!r} (cases: {', '.join(cases)})")
        fields = list(case.GetFields())
        if len(values) != len(fields):
            wanted = ", ".join(f"{f.Name}: {type_name(f.PropertyType)}" for f in fields) or "no fields"
            raise ConversionError(f"case {case_name} has {len(fields)} field(s) ({wanted}), got {len(values)}")
        items = []
        for i, (x, f) in enumerate(zip(values, fields, strict=True)):
            try:
                items.append(self.to_net(x, f.PropertyType))
            except ConversionError as exc:
                raise exc.inside(f"[{i + 1}]") from None
        return self._invoke(self._make_union, case, self._array(items, self.object_type), self._flags)

    # ---- .NET -> Python ---------------------------------------------------------------------------
    def to_python(self, value: Any) -> Any:
        """A result as plain Python values (see the module's docstring for the shapes)."""
        if not is_net(value):
            return value
        t = value.GetType()
        if str(t.FullName) == "System.Decimal":  # the one scalar pythonnet leaves as a .NET object
            from System.Globalization import CultureInfo  # type: ignore[import-not-found]

            return decimal.Decimal(str(value.ToString(CultureInfo.InvariantCulture)))
        if t.IsArray:
            return [self.to_python(x) for x in value]
        name = generic_name(t)
        if name in (LIST, RESIZE_ARRAY):
            return [self.to_python(x) for x in value]
        if name == OPTION:
            return self.to_python(value.Value)
        if name == VOPTION:
            return self.to_python(value.Value) if value.IsSome else None
        if name == SET or name == HASH_SET:
            return frozenset(_hashable(self.to_python(x)) for x in value)
        if name in (MAP, DICTIONARY):
            return {_hashable(self.to_python(kv.Key)): self.to_python(kv.Value) for kv in value}
        kind = self.kind(t)
        if kind == "tuple":
            return tuple(self.to_python(x) for x in self._invoke(self._tuple_values, value))
        if kind == "record":
            names = [str(f.Name) for f in self._invoke(self._record_fields, t, self._flags)]
            values = self._invoke(self._record_values, value, self._flags)
            return {n: self.to_python(v) for n, v in zip(names, values, strict=True)}
        if kind == "union":
            found = self._invoke(self._union_values, value, t, self._flags)
            case, fields = found.Item1, list(found.Item2)
            if not fields:
                return str(case.Name)
            key = (str(t.AssemblyQualifiedName), str(case.Name))
            cls = self._cases.get(key)
            if cls is None:
                cls = self._cases[key] = _case_class(str(case.Name), [str(f.Name) for f in case.GetFields()])
            return cls(str(case.Name), *(self.to_python(f) for f in fields))
        return value


def _short(value: Any) -> str:
    """A Python value for an error message, cut short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
