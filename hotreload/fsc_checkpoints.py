"""fsc's parse and type check, kept file by file between compiles of one project (as FCS's IncrementalBuilder does).

`Driver.TypeCheck` checks every file of a compile from an empty state. This does what it does (the state of
`GetInitialTcState`, one `CheckOneInputEntry` per file, then `CheckMultipleInputsFinish`, `CheckClosedInputSetFinish`
and the whole-assembly signature set into the CCU) and keeps, after each file, its parse, the type-check state and
what checking it gave. The next compile of the same project (same arguments, same kept imports) parses again only
the files whose text changed and checks again only what they can change (graph mode, below: the changed files and
the files depending on them; otherwise every file from the first changed one on); the other files' checks are taken
as they were, and the finish runs over all of them.

The generated-name counters: the compiler numbers generated names per (name, file) (NiceNameGenerator's buckets,
keyed by a range's file index), so each file is checked with counters of its own, which start empty as they do in a
full compile; the counters handed to the later phases are the union of every file's. A file whose checking touched
another file's bucket, or asked the stable generator for a name another file asked for, would not merge exactly:
then the whole project is checked again by `Driver.TypeCheck` and this project is not checked incrementally again.

Reuse is refused, and every file checked from an empty state, when anything but the text of existing files changed:
the arguments (flags, references, the list and order of files), the kept imports, a `#` directive line of a changed
file (a `#nowarn`, `#r`, ... changes the configuration of all files), or the compile before had errors (no state is
kept from a compile with errors: a reused file never has any).

This SDK's fsc checks in graph mode by default (TcConfig's typeCheckingConfig.Mode is Graph): it computes which
files each file depends on from the parsed inputs (DependencyResolution.mkGraph), checks each file against a state
holding only its dependencies' contributions, and folds every file's contribution (the "finisher" that
CheckOneInputWithCallback returns: AddCheckResultsToTcState on the state's own environment) into the final state in
file order. This does the same, one file after the other, with the compiler's own graph and finishers, and keeps
each file's dependencies, finisher and the state after it: a later compile checks again only the changed files and
the files that depend on them (transitively, in the new graph, or whose dependencies changed); every other file's
check is taken as it was and its finisher folded into the new states, so a file checked again sees what a full
compile gives it. Projects with signature files, FSharp.Core itself and the Sequential mode are checked one file
after the other from the first changed file (the Sequential mode's order; the outputs were byte-identical to graph
mode's on every compile tested, which is tested, not proven). Other modes go to `Driver.TypeCheck`.

What the later phases of a compile (optimization) set on a kept file's module-level values (their flags, e.g.
ValMakesNoCriticalTailcalls, and optional data) is undone before the next compile uses them: each is put back as
checking its file left it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NoReturn

CHECKED_MODES = ("Sequential", "Graph")


@dataclass
class _File:
    """One file of a kept check: its text and parse, and what checking it gave (in compile order)."""

    path: str
    text: bytes
    last: tuple[bool, bool]
    parsed: Any  # ParsedInput as parsed (before module-name deduplication)
    input: Any = None  # the ParsedInput checked (after deduplication)
    state: Any = None  # TcState after this file (sequential: every file before it; graph: its dependencies)
    result: Any = None  # Tuple`4[TcEnv, TopAttribs, CheckedImplFile option, ModuleOrNamespaceType]
    names: Any = None  # the CompilerGlobalState this file was checked with (its own counters)
    quotations: bool = False  # the CCU's UsesFSharp20PlusQuotations after this file (graph: set by this file)
    qual: str = ""  # graph: the checked input's qualified name (deduplication can change it with other files)
    deps: tuple[int, ...] = ()  # graph: the files it depends on, as mkGraph found them, in its order
    finisher: Any = None  # graph: FSharpFunc<TcState, Tuple<result, TcState>> adding this file to a state
    folded: Any = None  # graph: its finisher's Tuple<result, TcState> in the fold of every file, in file order
    vals: list[tuple[Any, Any, Any]] = field(default_factory=list)  # its module's values as checking left them


@dataclass
class _Kept:
    key: tuple[object, ...]
    initial: Any  # TcState before the first file
    contents: Any  # the CCU's contents as GetInitialTcState made them
    files: list[_File] = field(default_factory=list)
    checked: bool = False  # the files' check state is complete (not only their parses)
    graph: bool = False  # checked the graph way (each file against its dependencies, with finishers)


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
        self._graph_init(f)
        self.kept: dict[str, _Kept] = {}
        self.refused: set[str] = set()  # output paths checked by Driver.TypeCheck from now on
        self.refused_everywhere = False  # a spot check found a difference (hotreload.compile_worker): no more
        self.last_checked: list[str] = []  # the files the last check checked (the others' checks were kept)
        self._properties: dict[tuple[str, str], Any] = {}
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
        """The type check from what is kept still valid: (Ccu, TopAttribs, CheckedImplFile list, files checked),
        with the compile's name state set in `tc_globals` and the files checked in `last_checked`; None when it
        must be Driver.TypeCheck's (the caller runs it: another mode, no files, or a file's names not mergeable,
        when the caller must also start with fresh names)."""
        self.last_checked = []
        if self.refused_everywhere or outfile in self.refused or not inputs or self.mode(config) not in CHECKED_MODES:
            self.forget(outfile)
            return None
        args = (outfile, key, files, inputs, ctok, config, tc_imports, tc_globals, logger, assembly_name, env,
                range_startup)
        if self.mode(config) == "Graph" and not bool(self.f.get(config, "compilingFSharpCore")) \
                and not any(bool(self._get(i, "IsSigFile")) for i in inputs):
            return self._check_graph(*args)
        return self._check_sequential(*args)

    def _get(self, obj: Any, name: str) -> Any:
        """A property's value, its PropertyInfo looked up once per runtime type (a few hundred reads a compile)."""
        key = (str(obj.GetType().FullName), name)
        prop = self._properties.get(key)
        if prop is None:
            t = obj.GetType()
            while prop is None and t is not None:
                prop, t = t.GetProperty(name, self.f.flags), t.BaseType
            if prop is None:
                raise_unavailable(f"{obj.GetType().FullName} has no property {name}")
            self._properties[key] = prop
        return prop.GetValue(obj)

    def _initial(self, key: tuple[object, ...], config: Any, tc_imports: Any, tc_globals: Any, assembly_name: str,
                 env: Any, range_startup: Any, graph: bool) -> _Kept:
        state = self.f.invoke(self.m["initial_state"], None, range_startup, assembly_name, config, tc_globals,
                              tc_imports, env.Item1, env.Item2)
        return _Kept(key, state, self.f.get(self._ccu_data(state), "Contents"), graph=graph)

    def _ccu_data(self, state: Any) -> Any:
        return self.f.get(self.f.get(state, "Ccu"), "Deref")

    def _set_ccu(self, state: Any, name: str, value: Any) -> None:
        data = self._ccu_data(state)
        self.f.invoke(self.f.method(data.GetType(), f"set_{name}", 1), data, value)

    def _check_sequential(self, outfile: str, key: tuple[object, ...], files: list[_File], inputs: list[Any],
                          ctok: Any, config: Any, tc_imports: Any, tc_globals: Any, logger: Any, assembly_name: str,
                          env: Any, range_startup: Any) -> tuple[Any, Any, Any, int] | None:
        """Sequential: every file from the first changed one is checked again against all files before it."""
        from System import Activator, Array, Object  # type: ignore[import-not-found]

        f, m = self.f, self.m
        kept = self.kept.get(outfile)
        start = 0
        if kept is not None and kept.key == key and kept.checked and not kept.graph and len(kept.files) == len(files):
            while start < len(files):
                old, new = kept.files[start], files[start]
                if old.path != new.path or old.parsed is not new.parsed:
                    break
                start += 1
            if any(_directives(old.text) != _directives(new.text)
                   for old, new in zip(kept.files[start:], files[start:], strict=True)):
                start = 0
            start = self._from_signature(inputs, start)
        else:
            kept = None
        if kept is None or start == 0:
            kept = self._initial(key, config, tc_imports, tc_globals, assembly_name, env, range_startup, False)
            start = 0
        else:
            self._set_ccu(kept.initial, "Contents", kept.contents)
            self._set_ccu(kept.initial, "UsesFSharp20PlusQuotations",
                          kept.files[start - 1].quotations if start else False)
        state = kept.files[start - 1].state if start else kept.initial
        self.forget(outfile)  # kept again only when the whole check succeeds without errors
        reused = kept.files[:start]
        self._restore_values(reused)
        check_errors = self.check_errors[0].Invoke(Array[Object]([logger]))
        ccu_data = self._ccu_data(state)
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
            entry.vals = self._snapshot(self._signature(entry.result))
            new_files.append(entry)
        self.last_checked = [k.path for k in files[start:]]
        return self._finish(outfile, kept, new_files, [k.result for k in new_files], state, tc_globals, logger)

    def _from_signature(self, inputs: list[Any], start: int) -> int:
        """Where the check must start for an implementation checked again to see its signature file as a full
        compile does: checking an implementation against its signature changes the signature's values (a kept
        signature checked against the last version of it gave other bytes), so that signature is checked again."""
        signatures = {self._qualified(i): k for k, i in enumerate(inputs[:start]) if bool(self._get(i, "IsSigFile"))}
        if not signatures:
            return start
        pairs = [signatures.get(self._qualified(i), start) for i in inputs[start:] if not bool(self._get(i, "IsSigFile"))]
        return min([start, *pairs])

    def _qualified(self, parsed: Any) -> str:
        return str(self._get(self._get(parsed, "QualifiedName"), "Text"))

    def _finish(self, outfile: str, kept: _Kept, new_files: list[_File], results: list[Any], state: Any,
                tc_globals: Any, logger: Any) -> tuple[Any, Any, Any, int] | None:
        """What Driver.TypeCheck does after the files' checks: the name counters merged, the results and the
        whole-assembly signature given to the CCU; the files kept when no error was said."""
        f, m = self.f, self.m
        merged = self._merge([k.names for k in new_files], [k.path for k in new_files])
        if merged is None:
            self.refused.add(outfile)
            return None
        self.name_state.SetValue(tc_globals, merged)
        listed = f.fslist(m["check_one"].ReturnType.GetGenericArguments()[0], results)
        done = f.invoke(f.bind(m["finish"], [listed, state]), None, listed, state)
        summary, state = done.Item1, done.Item2
        closed = f.invoke(m["closed_finish"], None, summary.Item3, state)
        state, declared, contents = closed.Item1, closed.Item2, closed.Item3
        ccu = f.get(state, "Ccu")
        self._set_ccu(state, "Contents", contents)
        if int(f.get(logger, "ErrorCount")) == 0:
            kept.files, kept.checked = new_files, True
            self.kept[outfile] = kept
        return ccu, summary.Item2, declared, len(self.last_checked)

    def _signature(self, result: Any) -> Any:
        impl = result.Item3
        return None if impl is None else self.f.get(impl.Value, "Signature")

    def _restore_values(self, reused: list[_File]) -> None:
        """Kept files' values put back as checking left them (the last compile's later phases set flags and
        optimization data on them), before any file is checked against them, as in a full compile."""
        for entry in reused:
            for val, flags, data in entry.vals:
                self.restore(val, flags, data)

    # ---- graph mode ----------------------------------------------------------------------------------------
    def _graph_init(self, f: Any) -> None:
        m, pac, gc = f.method, "FSharp.Compiler.ParseAndCheckInputs", "FSharp.Compiler.GraphChecking."
        self.g = {
            "callback": m(pac, "CheckOneInputWithCallback", 10),
            "run": m("Internal.Utilities.Library.Cancellable", "runWithoutCancellation", 1),
            "graph": m(gc + "DependencyResolution", "mkGraph", 2),
            "physical": m(pac + "+NodeToTypeCheck", "NewPhysicalFile", 1),
            "nowarn": m("FSharp.Compiler.CompilerDiagnostics", "GetDiagnosticsLoggerFilteringByScopedNowarn", 2),
            "use_logger": m("FSharp.Compiler.DiagnosticsLogger", "UseDiagnosticsLogger", 1),
        }
        self.g_types = {
            "file": f.type(gc + "FileInProject"), "pairs": f.type(gc + "FilePairMap"),
            "capturing": f.type("FSharp.Compiler.DiagnosticsLogger+CapturingDiagnosticsLogger"),
            # graph mode's own checkForErrors: errors before the type check, or in this file
            "errors": f.type(pac + "+checkForErrors2@1813"),
        }
        self.g_new = {k: self._constructor(self.g_types[k]) for k in ("file", "pairs", "capturing", "errors")}
        self.no_sink = f.case("FSharp.Compiler.NameResolution+TcResultsSink", "NoSink")
        finisher_type = self.g["callback"].ReturnType.GetGenericArguments()[0]
        self.finisher_of = finisher_type.GetProperty("finisher", f.flags)
        if self.finisher_of is None:
            raise_unavailable("graph checking's Finisher is not as expected")
        self.finish_one = self.finisher_of.PropertyType.GetMethod("Invoke")

    def _constructor(self, owner: Any) -> Any:
        found = owner.GetConstructors(self.f.flags)
        if len(found) != 1:
            raise_unavailable(f"{owner.FullName}'s constructor is not as expected")
        return found[0]

    def _dependencies(self, inputs: list[Any]) -> list[tuple[int, ...]] | None:
        """Each file's dependencies as graph mode finds them (DependencyResolution.mkGraph over the parsed inputs);
        None when they are not only earlier files (then the files are checked one after the other)."""
        from System import Array, Int32, Object  # type: ignore[import-not-found]

        f = self.f
        files = Array.CreateInstance(self.g_types["file"], len(inputs))
        for index, parsed in enumerate(inputs):
            files[index] = self.g_new["file"].Invoke(Array[Object]([Int32(index), self._get(parsed, "FileName"), parsed]))
        pairs = self.g_new["pairs"].Invoke(Array[Object]([files]))
        graph = f.invoke(self.g["graph"], None, pairs, files).Item1
        deps: dict[int, tuple[int, ...]] = {int(pair.Key): tuple(int(d) for d in pair.Value) for pair in graph}
        if sorted(deps) != list(range(len(inputs))) or any(d >= k or d < 0 for k, ds in deps.items() for d in ds):
            return None
        return [deps[k] for k in range(len(inputs))]

    def _check_graph(self, outfile: str, key: tuple[object, ...], files: list[_File], inputs: list[Any], ctok: Any,
                     config: Any, tc_imports: Any, tc_globals: Any, logger: Any, assembly_name: str, env: Any,
                     range_startup: Any) -> tuple[Any, Any, Any, int] | None:
        """Graph mode: the changed files and the files depending on them checked, each against the state of its
        dependencies (as CheckMultipleInputsUsingGraphMode builds it); every file's finisher folded in file order."""
        from System import Activator, Array, Boolean, IDisposable, Object  # type: ignore[import-not-found]

        f = self.f
        count = len(files)
        quals = [self._qualified(i) for i in inputs]
        kept = self.kept.get(outfile)
        if kept is None or kept.key != key or not kept.checked or not kept.graph or len(kept.files) != count \
                or any(old.path != new.path for old, new in zip(kept.files, files, strict=True)):
            kept = None
        changed = [kept is None or old.parsed is not new.parsed or old.qual != qual
                   for old, new, qual in zip(kept.files if kept else files, files, quals, strict=True)]
        if kept is not None and any(c and _directives(old.text) != _directives(new.text)
                                    for c, old, new in zip(changed, kept.files, files, strict=True)):
            kept = None  # a `#` line (#nowarn, #r, ...) configures every file
        if kept is not None and not any(changed):
            deps = [old.deps for old in kept.files]  # the same parsed files: the same graph
        else:
            found = self._dependencies(inputs)
            if found is None:
                return self._check_sequential(outfile, key, files, inputs, ctok, config, tc_imports, tc_globals,
                                              logger, assembly_name, env, range_startup)
            deps = found
        if kept is None:
            kept = self._initial(key, config, tc_imports, tc_globals, assembly_name, env, range_startup, True)
            changed = [True] * count
        else:
            self._set_ccu(kept.initial, "Contents", kept.contents)
        self.forget(outfile)  # kept again only when the whole check succeeds without errors
        dirty: list[bool] = []
        closure: list[set[int]] = []  # each file's transitive dependencies
        for k in range(count):
            dirty.append(changed[k] or kept.files[k].deps != deps[k] or any(dirty[d] for d in deps[k]))
            closure.append(set(deps[k]).union(*(closure[d] for d in deps[k])))
        self._restore_values([old for old, d in zip(kept.files, dirty, strict=False) if not d])
        scratch = Activator.CreateInstance(self.name_state.FieldType)  # a fold must not generate names
        prior = bool(f.get(logger, "CheckForRealErrorsIgnoringWarnings"))
        options = f.get(config, "diagnosticsOptions")
        new_files: list[_File] = []
        for k in range(count):
            if not dirty[k]:
                new_files.append(kept.files[k])
                continue
            entry = files[k]
            entry.input, entry.qual, entry.deps = inputs[k], quals[k], deps[k]
            self.name_state.SetValue(tc_globals, scratch)
            before = self._combine(k, deps, closure, new_files, kept.initial)
            entry.names = Activator.CreateInstance(self.name_state.FieldType)
            self.name_state.SetValue(tc_globals, entry.names)
            self._set_ccu(kept.initial, "UsesFSharp20PlusQuotations", False)
            captured = self.g_new["capturing"].Invoke(Array[Object](["TcDiagnosticsLogger", None]))
            file_logger = f.invoke(self.g["nowarn"], None, options, captured)
            scope = f.invoke(self.g["use_logger"], None, file_logger)
            try:
                errors = self.g_new["errors"].Invoke(Array[Object]([Boolean(prior), file_logger]))
                node = f.invoke(self.g["physical"], None, k)
                work = f.invoke(self.g["callback"], None, node, errors, config, tc_imports, tc_globals, None,
                                self.no_sink, before, entry.input, False)
                finisher = f.invoke(f.bind(self.g["run"], [work]), None, work)
            finally:
                IDisposable(scope).Dispose()
                f.invoke(f.method(captured.GetType(), "CommitDelayedDiagnostics", 1), captured, logger)
            entry.finisher = self.finisher_of.GetValue(finisher)
            entry.quotations = bool(f.get(self._ccu_data(kept.initial), "UsesFSharp20PlusQuotations"))
            self.name_state.SetValue(tc_globals, scratch)
            pair = self._fold(entry, before)
            entry.result, entry.state = pair.Item1, pair.Item2
            entry.vals = self._snapshot(self._signature(entry.result))
            new_files.append(entry)
        self.name_state.SetValue(tc_globals, scratch)
        # graph mode's last step: every file's finisher, in file order; the same up to the first file checked
        start = dirty.index(True) if any(dirty) else count
        state = new_files[start - 1].folded.Item2 if start else kept.initial
        for entry in new_files[start:]:
            entry.folded = self._fold(entry, state)
            state = entry.folded.Item2
        results = [entry.folded.Item1 for entry in new_files]
        self._set_ccu(kept.initial, "UsesFSharp20PlusQuotations", any(k.quotations for k in new_files))
        if not self._generated_nothing(scratch):
            self.refused.add(outfile)
            return None
        self.last_checked = [k.path for k, d in zip(files, dirty, strict=True) if d]
        return self._finish(outfile, kept, new_files, results, state, tc_globals, logger)

    def _fold(self, entry: _File, state: Any) -> Any:
        from System import Array, Object  # type: ignore[import-not-found]

        return self.finish_one.Invoke(entry.finisher, Array[Object]([state]))

    def _combine(self, k: int, deps: list[tuple[int, ...]], closure: list[set[int]], done: list[_File],
                 initial: Any) -> Any:
        """The state file k is checked against, as graph mode's combineResults makes it: the state after its
        dependency with the most transitive dependencies (the first of them), then the finishers of its other
        transitive dependencies in file order."""
        if not deps[k]:
            return initial
        sizes = [len(closure[d]) for d in deps[k]]
        biggest = deps[k][sizes.index(max(sizes))]
        state = done[biggest].state
        for d in sorted(closure[k] - closure[biggest] - {biggest}):
            state = self._fold(done[d], state).Item2
        return state

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
    def _generated_nothing(self, state: Any) -> bool:
        stable = self.stable_field.GetValue(state)
        counters = [self.counts_field.GetValue(g.GetValue(state)) for g in self.nng_fields]
        counters += [self.counts_field.GetValue(self.inner_field.GetValue(stable)), self.nice_field.GetValue(stable)]
        return all(int(c.Count) == 0 for c in counters)

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


def raise_unavailable(what: str) -> NoReturn:
    from .fsc_driver import DriverUnavailable

    raise DriverUnavailable(f"the F# compiler's {what}")
