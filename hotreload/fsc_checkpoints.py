"""fsc's parse and type check, kept file by file between compiles of one project (as FCS's IncrementalBuilder does).

`Driver.TypeCheck` checks every file of a compile from an empty state. This does what it does (the state of
`GetInitialTcState`, one `CheckOneInputEntry` per file, then `CheckMultipleInputsFinish`, `CheckClosedInputSetFinish`
and the whole-assembly signature set into the CCU) and keeps, after each file, its parse, the type-check state and
what checking it gave. The next compile of the same project (same arguments, same kept imports) parses again only
the files whose text changed and checks from the first of them in compile order; the files before it are taken as
they were, and the finish runs over all of them.

The generated-name counters: the compiler numbers generated names per (name, file) (NiceNameGenerator's buckets,
keyed by a range's file index), so each file is checked with counters of its own, which start empty as they do in a
full compile; the counters handed to the later phases are the union of every file's. A file whose checking touched
another file's bucket, or asked the stable generator for a name another file asked for, would not merge exactly:
then the whole project is checked again by `Driver.TypeCheck` and this project is not checked incrementally again.

Reuse is refused, and every file checked from an empty state, when anything but the text of existing files changed:
the arguments (flags, references, the list and order of files), the kept imports, a `#` directive line of a changed
file (a `#nowarn`, `#r`, ... changes the configuration of all files), or the compile before had errors (no state is
kept from a compile with errors: a reused file never has any).

This SDK's fsc checks in graph mode by default (TcConfig's typeCheckingConfig.Mode is Graph: files checked in
parallel, each against the files it depends on); this checks the files one after the other, as the Sequential mode
does. Both give the same typed trees where the dependency graph is sound, and the generated names are per file in
both; the outputs were byte-identical on every compile tested (tests/test_fsc_driver.py, the 100-file layered
project), but that equality is tested, not proven. Other modes go to `Driver.TypeCheck`.

What the later phases of a compile (optimization) set on a kept file's module-level values (their flags, e.g.
ValMakesNoCriticalTailcalls, and optional data) is undone before the next compile uses them: each is put back as
checking its file left it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CHECKED_MODES = ("Sequential", "Graph")


@dataclass
class _File:
    """One file of a kept check: its text and parse, and what checking it gave (in compile order)."""

    path: str
    text: bytes
    last: tuple[bool, bool]
    parsed: Any  # ParsedInput as parsed (before module-name deduplication)
    input: Any = None  # the ParsedInput checked (after deduplication)
    state: Any = None  # TcState after this file
    result: Any = None  # Tuple`4[TcEnv, TopAttribs, CheckedImplFile option, ModuleOrNamespaceType]
    names: Any = None  # the CompilerGlobalState this file was checked with (its own counters)
    quotations: bool = False  # the CCU's UsesFSharp20PlusQuotations after this file
    vals: list[tuple[Any, Any, Any]] = field(default_factory=list)  # its module's values as checking left them


@dataclass
class _Kept:
    key: tuple[object, ...]
    initial: Any  # TcState before the first file
    contents: Any  # the CCU's contents as GetInitialTcState made them
    files: list[_File] = field(default_factory=list)
    checked: bool = False  # the files' check state is complete (not only their parses)


def _directives(text: bytes) -> list[bytes]:
    return [line.strip() for line in text.splitlines() if line.lstrip().startswith(b"#")]


class CheckpointedTypeCheck:
    """Parse and type check of fsc's main1 with per-file checkpoints, per output path."""

    def __init__(self, f: Any, name_state: Any) -> None:
        m = f.method
        pac = "FSharp.Compiler.ParseAndCheckInputs"
        self.f, self.name_state = f, name_state
        self.m = {
            "parse_one": m(pac, "ParseOneInputFile", 6), "initial_state": m(pac, "GetInitialTcState", 7),
            "check_one": m(pac, "CheckOneInputEntry", 8), "finish": m(pac, "CheckMultipleInputsFinish", 2),
            "closed_finish": m(pac, "CheckClosedInputSetFinish", 2),
            "entry_point": m("FSharp.Compiler.CompilerConfig+TcConfig", "ComputeCanContainEntryPoint", 1),
        }
        self.check_errors = f.type("FSharp.Compiler.Driver+TypeCheck@155").GetConstructors(f.flags)
        if len(self.check_errors) != 1:
            raise_unavailable("Driver's checkForErrors closure is not as expected")
        generators = "FSharp.Compiler.CompilerGlobalState+"
        self.nng_fields = [_field(name_state.FieldType, n, f.flags) for n in ("globalNng", "ilxgenGlobalNng")]
        self.stable_field = _field(name_state.FieldType, "globalStableNameGenerator", f.flags)
        self.counts_field = _field(f.type(generators + "NiceNameGenerator"), "basicNameCounts", f.flags)
        self.nice_field = _field(f.type(generators + "StableNiceNameGenerator"), "niceNames", f.flags)
        self.inner_field = _field(f.type(generators + "StableNiceNameGenerator"), "innerGenerator", f.flags)
        val_type = f.type("FSharp.Compiler.TypedTree+Val")
        self.val_flags = val_type.GetField("val_flags@", f.flags)
        self.val_data = val_type.GetField("val_opt_data@", f.flags)
        self.clone = val_type.BaseType.GetMethod("MemberwiseClone", f.flags)
        if None in (self.val_flags, self.val_data, self.clone):
            raise_unavailable("Val is not as expected")
        self.restore = self._restorer(val_type, f.type("FSharp.Compiler.TypedTree+ValOptionalData"))
        self.kept: dict[str, _Kept] = {}
        self.refused: set[str] = set()  # output paths checked by Driver.TypeCheck from now on
        self.refused_everywhere = False  # a spot check found a difference (hotreload.compile_worker): no more
        self.recheck_second_half = False  # the next parse takes the later half of the files as changed (once)

    def forget(self, outfile: str) -> None:
        self.kept.pop(outfile, None)

    # ---- parse ---------------------------------------------------------------------------------------------
    def parse(self, outfile: str, key: tuple[object, ...], config: Any, lex: Any, sources: Any,
              source_list: list[str], logger: Any) -> tuple[list[tuple[Any, str]], list[_File]]:
        """fsc's ParseInputFiles, taking the parse of a file whose text is the same from the last compile."""
        import os

        from System import Boolean, Tuple  # type: ignore[import-not-found]

        f = self.f
        kept = self.kept.get(outfile)
        old = {k.path: k for k in kept.files} if kept is not None and kept.key[:len(key)] == key else {}
        can = f.invoke(self.m["entry_point"], config, sources)
        lasts, is_exe = [bool(b) for b in can.Item1], bool(can.Item2)
        files: list[_File] = []
        # a warm-up's check of the incremental path (hotreload.compile_worker): the later half parsed again, so
        # it is checked again from the middle as after an edit there
        fresh_from = len(source_list) // 2 if self.recheck_second_half else len(source_list)
        self.recheck_second_half = False
        for index, (path, last) in enumerate(zip(source_list, lasts, strict=True)):
            with open(path, "rb") as stream:
                text = stream.read()
            was = old.get(path)
            if index < fresh_from and was is not None and was.text == text and was.last == (last, is_exe):
                files.append(_File(path, text, was.last, was.parsed))
                continue
            parsed = f.invoke(self.m["parse_one"], None, config, lex, path, Tuple[Boolean, Boolean](last, is_exe),
                              logger, False)
            files.append(_File(path, text, (last, is_exe), parsed))
        return [(k.parsed, os.path.dirname(k.path)) for k in files], files

    # ---- check ---------------------------------------------------------------------------------------------
    def mode(self, config: Any) -> str:
        return str(self.f.get(self.f.get(config, "typeCheckingConfig"), "Mode"))

    def check(self, outfile: str, key: tuple[object, ...], files: list[_File], inputs: list[Any], ctok: Any,
              config: Any, tc_imports: Any, tc_globals: Any, logger: Any, assembly_name: str, env: Any,
              range_startup: Any) -> tuple[Any, Any, Any, int] | None:
        """The type check from the last checkpoint still valid: (Ccu, TopAttribs, CheckedImplFile list, files
        checked), with the compile's name state set in `tc_globals`; None when it must be Driver.TypeCheck's (the
        caller runs it: graph-based checking, no files, or a file's names not mergeable, when the caller must also
        start with fresh names)."""
        from System import Activator, Array, Object  # type: ignore[import-not-found]

        f, m = self.f, self.m
        if self.refused_everywhere or outfile in self.refused or not inputs or self.mode(config) not in CHECKED_MODES:
            self.forget(outfile)
            return None
        kept = self.kept.get(outfile)
        start = 0
        if kept is not None and kept.key == key and kept.checked and len(kept.files) == len(files):
            while start < len(files):
                old, new = kept.files[start], files[start]
                if old.path != new.path or old.parsed is not new.parsed:
                    break
                start += 1
            if any(_directives(old.text) != _directives(new.text)
                   for old, new in zip(kept.files[start:], files[start:], strict=True)):
                start = 0
        else:
            kept = None
        if kept is None or start == 0:
            state = f.invoke(m["initial_state"], None, range_startup, assembly_name, config, tc_globals, tc_imports,
                             env.Item1, env.Item2)
            ccu_data = f.get(f.get(state, "Ccu"), "Deref")
            kept = _Kept(key, state, f.get(ccu_data, "Contents"))
            start = 0
        else:
            ccu_data = f.get(f.get(kept.initial, "Ccu"), "Deref")
            f.invoke(f.method(ccu_data.GetType(), "set_Contents", 1), ccu_data, kept.contents)
            f.invoke(f.method(ccu_data.GetType(), "set_UsesFSharp20PlusQuotations", 1), ccu_data,
                     kept.files[start - 1].quotations if start else False)
            state = kept.files[start - 1].state if start else kept.initial
        self.forget(outfile)  # kept again only when the whole check succeeds without errors
        reused = kept.files[:start]
        check_errors = self.check_errors[0].Invoke(Array[Object]([logger]))
        ccu_data = f.get(f.get(state, "Ccu"), "Deref")
        new_files = list(reused)
        for k in range(start, len(files)):
            entry = files[k]
            entry.input = inputs[k]
            entry.names = Activator.CreateInstance(self.name_state.FieldType)
            self.name_state.SetValue(tc_globals, entry.names)
            pair = f.invoke(m["check_one"], None, ctok, check_errors, config, tc_imports, tc_globals, None, state,
                            entry.input)
            entry.result, state = pair.Item1, pair.Item2
            entry.state = state
            entry.quotations = bool(f.get(ccu_data, "UsesFSharp20PlusQuotations"))
            impl = entry.result.Item3
            entry.vals = self._snapshot(None if impl is None else f.get(impl.Value, "Signature"))
            new_files.append(entry)
        for entry in reused:  # what the last compile's later phases set on them (optimization data) undone
            for val, flags, data in entry.vals:
                self.restore(val, flags, data)
        merged = self._merge([k.names for k in new_files], [k.path for k in new_files])
        if merged is None:
            self.refused.add(outfile)
            return None
        self.name_state.SetValue(tc_globals, merged)
        results = f.fslist(m["check_one"].ReturnType.GetGenericArguments()[0], [k.result for k in new_files])
        done = f.invoke(f.bind(m["finish"], [results, state]), None, results, state)
        summary, state = done.Item1, done.Item2
        closed = f.invoke(m["closed_finish"], None, summary.Item3, state)
        state, declared, contents = closed.Item1, closed.Item2, closed.Item3
        ccu = f.get(state, "Ccu")
        ccu_data = f.get(ccu, "Deref")
        f.invoke(f.method(ccu_data.GetType(), "set_Contents", 1), ccu_data, contents)
        if int(f.get(logger, "ErrorCount")) == 0:
            kept.files, kept.checked = new_files, True
            self.kept[outfile] = kept
        return ccu, summary.Item2, declared, len(files) - start

    # ---- values of the kept files ----------------------------------------------------------------------------
    def _snapshot(self, signature: Any) -> list[tuple[Any, Any, Any]]:
        """The module-level values (and members) of a checked file's signature with their flags and optional data
        as checking left them: the optimizer marks some (ValMakesNoCriticalTailcalls) when the compile goes on."""
        if signature is None:
            return []
        out: list[tuple[Any, Any, Any]] = []
        pending = [signature]
        while pending:
            mty = pending.pop()
            for val in self.f.get(mty, "AllValsAndMembers"):
                data = self.val_data.GetValue(val)
                kept = None if data is None else self.clone.Invoke(data.Value, None)
                out.append((val, self.val_flags.GetValue(val), kept))
            for entity in self.f.get(mty, "AllEntities"):
                if bool(self.f.get(entity, "IsModuleOrNamespace")):
                    pending.append(self.f.get(entity, "ModuleOrNamespaceType"))
        return out

    def _restorer(self, val_type: Any, data_type: Any) -> Any:
        """A compiled `(val, flags, data) -> unit` that sets a value's flags and copies every field of `data` (a
        copy of its optional data) into its optional data: one call per value, not one per field."""
        from System import Action, Array, Object  # type: ignore[import-not-found]
        from System.Linq.Expressions import Expression, ParameterExpression  # type: ignore[import-not-found]

        val, flags, data = (Expression.Parameter(Object().GetType(), n) for n in ("val", "flags", "data"))
        typed = Expression.Convert(val, val_type)
        current = Expression.Property(Expression.Field(typed, self.val_data), "Value")
        source = Expression.Convert(data, data_type)
        copies = [Expression.Assign(Expression.Field(current, fld), Expression.Field(source, fld))
                  for fld in data_type.GetFields(self.f.flags) if not fld.IsStatic]
        body = Expression.Block(Array[Expression]([
            Expression.Assign(Expression.Field(typed, self.val_flags), Expression.Unbox(flags, self.val_flags.FieldType)),
            Expression.IfThen(Expression.AndAlso(
                Expression.NotEqual(data, Expression.Constant(None)),
                Expression.NotEqual(Expression.Field(typed, self.val_data), Expression.Constant(None))),
                Expression.Block(Array[Expression](copies)))]))
        lam = Expression.Lambda[Action[Object, Object, Object]](body, Array[ParameterExpression]([val, flags, data]))
        return lam.Compile()

    # ---- generated names -----------------------------------------------------------------------------------
    def _merge(self, states: list[Any], paths: list[str]) -> Any:
        """One CompilerGlobalState holding every file's counters, as one state through all files would hold them;
        None when a file's counters are not its own (another file's bucket, a stable name another file asked)."""
        from System import Activator, Array, Int32, Object  # type: ignore[import-not-found]

        f = self.f
        file_index = f.method("FSharp.Compiler.Text.FileIndexModule", "fileIndexOfFile", 1)
        merged = Activator.CreateInstance(self.name_state.FieldType)
        targets = [self.counts_field.GetValue(self.nng_fields[0].GetValue(merged)),
                   self.counts_field.GetValue(self.inner_field.GetValue(self.stable_field.GetValue(merged)))]
        nice_target = self.nice_field.GetValue(self.stable_field.GetValue(merged))
        ref_type = None
        for state, path in zip(states, paths, strict=True):
            index = int(f.invoke(file_index, None, path))
            if int(self.counts_field.GetValue(self.nng_fields[1].GetValue(state)).Count) != 0:
                return None
            stable = self.stable_field.GetValue(state)
            sources = [self.counts_field.GetValue(self.nng_fields[0].GetValue(state)),
                       self.counts_field.GetValue(self.inner_field.GetValue(stable))]
            for source, target in zip(sources, targets, strict=True):
                for pair in source:
                    if int(pair.Key.Item2) != index:
                        return None
                    ref_type = ref_type or pair.Value.GetType()
                    count = Activator.CreateInstance(ref_type, Array[Object]([Int32(int(pair.Value.Value))]))
                    if not target.TryAdd(pair.Key, count):
                        return None
            for pair in self.nice_field.GetValue(stable):
                if not nice_target.TryAdd(pair.Key, pair.Value):
                    return None
        return merged


def _field(owner: Any, name: str, flags: Any) -> Any:
    found = owner.GetField(name, flags)
    if found is None:
        raise_unavailable(f"{owner.FullName} has no field {name}")
    return found


def raise_unavailable(what: str) -> None:
    from .fsc_driver import DriverUnavailable

    raise DriverUnavailable(f"the F# compiler's {what}")
