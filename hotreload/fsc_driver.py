"""fsc's own pipeline, with the imported references kept between compiles.

The public `FSharpChecker.Compile` runs the whole of fsc on every call, and its first step imports mscorlib,
FSharp.Core and every framework and package reference afresh: 0.2-0.4 s of a 0.6 s warm compile of a small app,
and it makes "Encode Interface Data" force the lazily read imports again. This module runs the same pipeline from
the compiler's own internal steps (FSharp.Compiler.Driver's `main1`, done step by step as this SDK's build does it,
then its `main2`..`main6` unchanged), and keeps the imports (TcGlobals with the framework TcImports, and each
project's TcImports of its other references) for as long as the flags and the referenced files are the same. The
parse and type check of every file an edit cannot change are kept too (hotreload.fsc_checkpoints), and so is the
optimization of the files before the first one checked again: `main3` is done step by step as well
(hotreload.fsc_optimize) from KEEP_OPTIMIZATION_FROM bytes of sources (`HOTRELOAD_KEEP_OPTIMIZATION=0`: the
compiler's own main3 always).

The output is byte-identical to the public compile's: the one state the imports carry from compile to compile is
the generated-name counters of TcGlobals, which are reset before each reuse (otherwise `f@3` becomes `f@3-2`).
`tests/test_fsc_driver.py` compares both over a corpus of edits; the worker's warm-up also compares a compile of
every session's app, and its incremental check, with the public one before it trusts this path
(hotreload.compile_worker).

It relies on internals of the SDK's FSharp.Compiler.Service (names and signatures as compiled in 43.12.x):
`DriverUnavailable` is raised at construction when one is missing, and the worker then uses the public Compile.
"""

from __future__ import annotations

import itertools
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from .errors import HotReloadError
from .fsc_checkpoints import CheckpointedTypeCheck
from .fsc_optimize import KeptOptimization, Unkept

_OUTPUT_OPTIONS = ("-o:", "--out:", "--pdb:", "--doc:", "--refout:")
_PER_PROJECT_OPTIONS = (*_OUTPUT_OPTIONS, "-r:", "--reference:")
KEEP_OPTIMIZATION_FROM = 32_000
"""Source bytes from which a project's optimization is kept per file (below, the compiler's own main3 is faster)."""
KEEP_OPTIMIZATION_FROM_VARIABLE = "HOTRELOAD_KEEP_OPTIMIZATION_FROM"
FRAMEWORK_ENTRIES = 2
"""Distinct framework imports kept (a solution's projects share one when their flags agree)."""
_SERIALS = itertools.count()  # tells one project's kept imports from the ones before them


def _path(resolution: object) -> str:
    """An AssemblyResolution's file (its ToString is the path, `[sys]` first for a framework assembly)."""
    text = str(resolution)
    return text.removeprefix("[sys]")


class DriverUnavailable(HotReloadError):
    """The SDK's compiler lacks an internal this driver calls (another compiler build): use the public Compile."""


@dataclass
class _Framework:
    tc_globals: Any
    tc_imports: Any
    name_state_field: Any


@dataclass
class _Project:
    key: tuple[object, ...]
    framework: _Framework
    tc_imports: Any
    serial: int = 0  # tells this project's imports from the ones before it (kept type checks are of one)


class _Fcs:
    """Reflection on the compiler's internal types; every lookup fails at construction, not mid-compile."""

    def __init__(self, service: Any, core: Any) -> None:
        from System.Reflection import BindingFlags  # type: ignore[import-not-found]

        self.flags = (BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.Instance
                      | BindingFlags.DeclaredOnly)
        self.assemblies = (service, core)

    def type(self, name: str) -> Any:
        for assembly in self.assemblies:
            found = assembly.GetType(name)
            if found is not None:
                return found
        raise DriverUnavailable(f"the F# compiler has no type {name}")

    def method(self, owner: Any, name: str, params: int | None = None) -> Any:
        owner = self.type(owner) if isinstance(owner, str) else owner
        found = [m for m in owner.GetMethods(self.flags)
                 if m.Name == name and (params is None or m.GetParameters().Length == params)]
        if len(found) != 1:
            raise DriverUnavailable(f"the F# compiler's {owner.FullName}.{name} is not as expected "
                                    f"({len(found)} matches)")
        return found[0]

    def case(self, type_name: str, case: str) -> Any:
        prop = self.type(type_name).GetProperty(case, self.flags)
        if prop is None:
            raise DriverUnavailable(f"the F# compiler's {type_name} has no case {case}")
        return prop.GetValue(None)

    @staticmethod
    def invoke(method: Any, target: Any, *args: Any) -> Any:
        from System import Array, Int32, Object  # type: ignore[import-not-found]

        # a Python int in an object[] arrives as a Python object, not an Int32
        values = [Int32(a) if isinstance(a, int) and not isinstance(a, bool) else a for a in args]
        return method.Invoke(target, Array[Object](values))

    @staticmethod
    def get(obj: Any, name: str) -> Any:
        t = obj.GetType()
        while t is not None:
            prop = t.GetProperty(name, _Fcs._all())
            if prop is not None:
                return prop.GetValue(obj)
            t = t.BaseType
        raise DriverUnavailable(f"the F# compiler's {obj.GetType().FullName} has no property {name}")

    @staticmethod
    def _all() -> Any:
        from System.Reflection import BindingFlags  # type: ignore[import-not-found]

        return BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance

    @staticmethod
    def bind(method: Any, args: list[Any]) -> Any:
        """A generic method instantiated from the runtime types of the values passed (main2..main6 are generic)."""
        from System import Array, Object, Type  # type: ignore[import-not-found]

        if not method.IsGenericMethodDefinition:
            return method
        bound: dict[int, Any] = {}

        def unify(param: Any, actual: Any) -> None:
            if param.IsGenericParameter:
                bound.setdefault(param.GenericParameterPosition, actual)
            elif param.IsGenericType and actual.IsGenericType:
                for p, a in zip(param.GetGenericArguments(), actual.GetGenericArguments(), strict=False):
                    unify(p, a)

        for param, arg in zip(method.GetParameters(), args, strict=False):
            if arg is not None:
                unify(param.ParameterType, arg.GetType())
        count = len(method.GetGenericArguments())
        return method.MakeGenericMethod(Array[Type]([bound.get(i, Object().GetType()) for i in range(count)]))

    def fslist(self, element: Any, items: list[Any]) -> Any:
        from System import Array, Object  # type: ignore[import-not-found]

        list_type = self.type("Microsoft.FSharp.Collections.FSharpList`1").MakeGenericType(element)
        acc = list_type.GetProperty("Empty").GetValue(None)
        cons = list_type.GetMethod("Cons")
        for item in reversed(items):
            acc = cons.Invoke(None, Array[Object]([item, acc]))
        return acc


class KeptImportsCompiler:
    """Compiles fsc argument lists like the public Compile, keeping the imported references between compiles."""

    def __init__(self, checker: Any, service: Any, core: Any) -> None:
        f = self.f = _Fcs(service, core)
        d, dl, cc = "FSharp.Compiler.Driver", "FSharp.Compiler.DiagnosticsLogger", "FSharp.Compiler.CompilerConfig"
        pac, imports = "FSharp.Compiler.ParseAndCheckInputs", "FSharp.Compiler.CompilerImports"
        field = checker.GetType().GetField("legacyReferenceResolver", f.flags)
        if field is None:
            raise DriverUnavailable("the F# compiler's checker has no legacyReferenceResolver")
        self.resolver = field.GetValue(checker)
        m = f.method
        self.m = {
            "handlers": m("FSharp.Compiler.CodeAnalysis.CompileHelpers", "mkCompilationDiagnosticsHandlers", 1),
            "build_phase": m(dl, "UseBuildPhase", 1), "use_logger": m(dl, "UseDiagnosticsLogger", 1),
            "set_logger": m(dl, "SetThreadDiagnosticsLoggerNoUnwind", 1),
            "bin_folder": m("Internal.Utilities.FSharpEnvironment", "BinFolderOfDefaultFSharpCompiler", 1),
            "snapshot": m(d, "tryGetMetadataSnapshot@463"), "create": m(cc + "+TcConfigBuilder", "CreateNew", 10),
            "optimize": m("FSharp.Compiler.CompilerOptions", "SetOptimizeSwitch", 2),
            "debug": m("FSharp.Compiler.CompilerOptions", "SetDebugSwitch", 3),
            "tailcalls": m("FSharp.Compiler.CompilerOptions", "SetTailcallSwitch", 2),
            "flags": m(d, "ProcessCommandLineFlags", 3),
            "duplicates": m("FSharp.Compiler.CompilerOptions", "CheckAndReportSourceFileDuplicates", 1),
            "of_list": m("Internal.Utilities.ResizeArrayModule", "ofList", 1),
            "script": m(d, "AdjustForScriptCompile", 4), "config": m(cc + "+TcConfig", "Create", 2),
            "provider_logger": m(d + "+IDiagnosticsLoggerProvider", "CreateLogger", 2),
            "scoped_nowarn": m("FSharp.Compiler.CompilerDiagnostics", "GetDiagnosticsLoggerFilteringByScopedNowarn", 2),
            "abort": m(d, "AbortOnError", 2),
            "split": m(imports + "+TcAssemblyResolutions", "SplitNonFoundationalResolutions", 1),
            "constant": m(cc + "+TcConfigProvider", "Constant", 1),
            "framework": m(imports + "+TcImports", "BuildFrameworkTcImports", 3),
            "others": m(imports + "+TcImports", "BuildNonFrameworkTcImports", 5),
            "run": m("Internal.Utilities.Library.PervasiveAutoOpens", "Async.RunImmediate.Static", 2),
            "memoize_file": m("FSharp.Compiler.TcGlobals+TcGlobals", "memoize_file", 1),
            "file_index": m("FSharp.Compiler.Text.FileIndexModule", "fileIndexOfFile", 1),
            "dedup": m(pac, "DeduplicateParsedInputModuleName", 2),
            "meta": m(pac, "ApplyMetaCommandsFromInputToTcConfig", 4),
            "initial_env": m(pac, "GetInitialTcEnv", 5), "typecheck": m(d, "TypeCheck", 10),
            "range0": m("FSharp.Compiler.Text.RangeModule", "get_range0", 0),
            "range_startup": m("FSharp.Compiler.Text.RangeModule", "get_rangeStartup", 0),
            "map_empty": m("Microsoft.FSharp.Collections.MapModule", "Empty", 0),
            "main1": m(d, "main1"), **{f"main{i}": m(d, f"main{i}") for i in range(2, 7)},
        }
        self.types = {name: f.type(name) for name in (
            "Internal.Utilities.Library.CompilationThreadToken", dl + "+StopProcessingExiter",
            "Internal.Utilities.Library.Extras+DisposablesTracker", dl + "+CapturingDiagnosticsLogger",
            "FSharp.Compiler.Lexhelp+LexResourceManager", "FSharp.Compiler.DependencyManager.DependencyProvider")}
        self.cases = {
            "parse": f.case(dl + "+BuildPhase", "Parse"), "typecheck": f.case(dl + "+BuildPhase", "TypeCheck"),
            "reduce": f.case("FSharp.Compiler.AbstractIL.ILBinaryReader+ReduceMemoryFlag", "Yes"),
            "copy_no": f.case(cc + "+CopyFSharpCoreFlag", "No"),
            "one_off": f.case("FSharp.Compiler.TcGlobals+CompilationMode", "OneOff"),
            "on": f.case("FSharp.Compiler.CompilerOptions+OptionSwitch", "On"),
            "off": f.case("FSharp.Compiler.CompilerOptions+OptionSwitch", "Off"),
        }
        self.name_state = f.type("FSharp.Compiler.TcGlobals+TcGlobals").GetField("compilerGlobalState", f.flags)
        if self.name_state is None:
            raise DriverUnavailable("the F# compiler's TcGlobals has no compilerGlobalState")
        self.frameworks: OrderedDict[tuple[object, ...], _Framework] = OrderedDict()
        self.projects: dict[str, _Project] = {}  # output path -> its kept imports
        self.checks = CheckpointedTypeCheck(f, self.name_state)  # output path -> its kept parse and type check
        self.optimizer: KeptOptimization | None = None  # output path -> its kept optimization per file
        self.optimizer_note: str | None = None  # why the compiler's own main3 runs instead
        self.keep_optimization_from = int(os.environ.get(KEEP_OPTIMIZATION_FROM_VARIABLE, KEEP_OPTIMIZATION_FROM))
        if os.environ.get("HOTRELOAD_KEEP_OPTIMIZATION", "1") == "0":
            self.optimizer_note = "HOTRELOAD_KEEP_OPTIMIZATION=0"
        else:
            try:
                self.optimizer = KeptOptimization(f, self.checks)
            except DriverUnavailable as exc:  # the rest of the driver does not need it
                self.optimizer_note = str(exc)

    def forget(self, outfile: str) -> None:
        """Drop what is kept for one output (a warm-up's scratch compile: it would hold a whole type check)."""
        self.projects.pop(outfile, None)
        self.checks.forget(outfile)
        if self.optimizer is not None:
            self.optimizer.forget(outfile)

    # ---- keys --------------------------------------------------------------------------------------------
    @staticmethod
    def _stamp(path: str) -> tuple[str, float | None]:
        try:
            return path, os.path.getmtime(path)
        except OSError:
            return path, None

    def _framework_key(self, args: list[str], sources: list[str], system: list[str], others: list[str]) -> \
            tuple[object, ...]:
        """What the framework imports depend on: every flag but the project's own files and references, the
        framework assemblies and FSharp.Core (its resolution may sit among the other references), with their
        write times."""
        flags = tuple(a for a in args if not a.startswith(_PER_PROJECT_OPTIONS) and a not in sources)
        core = [p for p in others if os.path.basename(p).lower() == "fsharp.core.dll"]
        return flags, tuple(self._stamp(p) for p in system), tuple(self._stamp(p) for p in core)

    # ---- compiling ---------------------------------------------------------------------------------------
    def compile(self, args: list[str], state_as: str | None = None) -> dict[str, Any]:
        """One compile of `args` (fsc's, without the program name) in the current folder; a reply as the
        worker's protocol has it, with `phases` [(step, seconds)], `imports` ("kept" or "read"), `typecheck`
        {checked, files} and `optimization` {optimized, files} (None where the compiler's own step ran).
        `state_as`: the output whose kept imports, type check and optimization this compile uses and keeps
        (default: its own; a warm-up's compile to a scratch folder names the real output, so the first save finds
        its state)."""
        from System import Activator, Array, IDisposable, String  # type: ignore[import-not-found]

        f, m = self.f, self.m
        start = time.perf_counter()
        self._phases: list[tuple[str, float]] = []
        self._imports = "kept"
        self._checked: tuple[int, int] | None = None
        self._optimized: tuple[int, int] | None = None
        self._phase_end = start
        self._outfile = ""
        self._state_as = state_as
        handlers = f.invoke(m["handlers"], None, "--flaterrors" in args)
        diagnostics, logger0, provider = handlers.Item1, handlers.Item2, handlers.Item3
        scopes = [f.invoke(m["build_phase"], None, self.cases["parse"]), f.invoke(m["use_logger"], None, logger0)]
        exiter = Activator.CreateInstance(self.types["FSharp.Compiler.DiagnosticsLogger+StopProcessingExiter"])
        disposables = Activator.CreateInstance(self.types["Internal.Utilities.Library.Extras+DisposablesTracker"])
        failure = None
        try:
            staged = self._main1(Array[String](["fsc.exe", *args]), args, exiter, provider)
            t = time.perf_counter()
            for step in ("main2", "main3", "main4", "main5", "main6"):
                if step == "main3" and self.optimizer is not None and not self._small(args):
                    try:
                        staged, *counts = self.optimizer.main3(self._outfile, staged, m["main3"],
                                                               lambda name: self._mark(name, self._phases_end()))
                        self._optimized = (counts[0], counts[1])
                        t = time.perf_counter()
                        continue
                    except Unkept:
                        pass
                if step == "main3" and self.optimizer is not None:
                    self.optimizer.forget(self._outfile)  # the compiler's own main3 optimizes every file
                passed = {"main4": [None, None, staged], "main6": [None, staged]}.get(step, [staged])
                staged = f.invoke(f.bind(m[step], passed), None, *passed)
                t = self._mark({"main2": "attributes", "main3": "interface data, optimization", "main4": "IL",
                                "main5": "static linking", "main6": "write"}[step], t)
            done = True
        except Exception as exc:  # noqa: BLE001 - the compiler's stop (errors said) arrives wrapped, as any crash
            done = False
            inner = getattr(exc, "InnerException", None) or exc
            kind = str(inner.GetType().Name) if hasattr(inner, "GetType") else type(inner).__name__
            if "StopProcessing" not in kind:
                failure = f"{kind}: {getattr(inner, 'Message', inner)}"
        finally:
            IDisposable(disposables).Dispose()
            for scope in reversed(scopes):
                IDisposable(scope).Dispose()
        errors = [[str(d.FileName), int(d.StartLine), int(d.StartColumn) + 1, str(d.ErrorNumberText), str(d.Message)]
                  for d in diagnostics if str(d.Severity) == "Error"]
        if failure is None and not errors and not done:
            failure = "the compiler stopped without saying why"
        if errors or failure is not None:
            self.checks.forget(self._outfile)
            if self.optimizer is not None:
                self.optimizer.forget(self._outfile)
        checked = None if self._checked is None else {"checked": self._checked[0], "files": self._checked[1],
                                                      "paths": list(self.checks.last_checked)}
        optimized = None if self._optimized is None else {"optimized": self._optimized[0],
                                                          "files": self._optimized[1]}
        return {"ok": not errors and failure is None, "errors": errors, "failure": failure,
                "seconds": time.perf_counter() - start, "phases": self._phases, "imports": self._imports,
                "typecheck": checked, "optimization": optimized}

    def _small(self, args: list[str]) -> bool:
        """A project whose sources weigh less than `keep_optimization_from` bytes: the compiler's own main3
        optimizes all of it in a few milliseconds, less than the kept optimization's own cost (sample_app: 10 ms
        against 40 ms)."""
        size = 0
        for arg in args:
            if not arg.startswith("-") and arg.endswith((".fs", ".fsi")):
                try:
                    size += os.path.getsize(arg)
                except OSError:
                    pass
        return size < self.keep_optimization_from

    def _phases_end(self) -> float:
        """When the last step marked ended (the next step's start)."""
        return self._phase_end

    def _mark(self, step: str, since: float) -> float:
        now = time.perf_counter()
        self._phases.append((step, now - since))
        self._phase_end = now
        return now

    def _run(self, computation: Any) -> Any:
        return self.f.invoke(self.f.bind(self.m["run"], [computation, None]), None, computation, None)

    def _main1(self, argv: Any, args: list[str], exiter: Any, provider: Any) -> Any:
        """main1 of this compiler build, step by step, with the imports taken from the cache when they fit."""
        from System import Activator, Array, IDisposable, Object, String, Type  # type: ignore[import-not-found]

        f, m, c = self.f, self.m, self.cases
        t = time.perf_counter()
        ctok = Activator.CreateInstance(self.types["Internal.Utilities.Library.CompilationThreadToken"])
        bin_dir = f.get(f.invoke(m["bin_folder"], None, None), "Value")
        func = m["create"].GetParameters()[7].ParameterType.GetGenericArguments()
        snapshot = m["snapshot"].MakeGenericMethod(Array[Type]([func[0], func[1].GetGenericArguments()[0]])) \
            .Invoke(None, Array[Object]([]))
        builder = f.invoke(m["create"], None, self.resolver, bin_dir, c["reduce"], os.getcwd(), False, False,
                           c["copy_no"], snapshot, None, f.invoke(m["range0"], None))
        f.invoke(f.method(builder.GetType(), "set_compilationMode", 1), builder, c["one_off"])
        f.invoke(f.method(builder.GetType(), "set_exiter", 1), builder, exiter)
        f.invoke(m["optimize"], None, builder, c["on"])
        f.invoke(m["debug"], None, builder, None, c["off"])
        f.invoke(m["tailcalls"], None, builder, c["on"])
        delayed = Activator.CreateInstance(self.types["FSharp.Compiler.DiagnosticsLogger+CapturingDiagnosticsLogger"],
                                           Array[Object](["DelayFlagsLogger", None]))
        f.invoke(m["set_logger"], None, delayed)
        lex = Activator.CreateInstance(self.types["FSharp.Compiler.Lexhelp+LexResourceManager"],
                                       Array[Object]([None]))
        deps = Activator.CreateInstance(self.types["FSharp.Compiler.DependencyManager.DependencyProvider"])
        files = f.invoke(m["flags"], None, builder, None, argv)
        files = f.invoke(m["duplicates"], None, f.invoke(f.bind(m["of_list"], [files]), None, files))
        sources = f.invoke(m["script"], None, builder, files, lex, deps)
        defines = [str(x) for x in f.get(builder, "conditionalDefines")]
        f.invoke(f.method(builder.GetType(), "set_conditionalDefines", 1), builder,
                 f.fslist(String("").GetType(), ["COMPILED", *defines]))
        names = f.invoke(f.method(builder.GetType(), "DecideNames", 1), builder, sources)
        outfile, pdbfile, assembly_name = names.Item1, names.Item2, names.Item3
        self._outfile = self._state_as or str(outfile)
        logger = f.invoke(m["provider_logger"], provider, builder, exiter)
        if int(f.get(delayed, "ErrorCount")) > 0:
            f.invoke(f.method(delayed.GetType(), "CommitDelayedDiagnostics", 1), delayed, logger)
            f.invoke(m["abort"], None, logger, exiter)
        config = f.invoke(m["config"], None, builder, False)
        f.invoke(m["set_logger"], None, logger)
        f.invoke(f.method(delayed.GetType(), "CommitDelayedDiagnostics", 1), delayed,
                 f.invoke(m["scoped_nowarn"], None, f.get(builder, "diagnosticsOptions"), logger))
        f.invoke(m["abort"], None, logger, exiter)
        t = self._mark("flags", t)

        split = f.invoke(m["split"], None, config)
        system, others, unresolved = split.Item1, split.Item2, split.Item3
        source_list = [str(s) for s in sources]
        fw_key = self._framework_key(args, source_list, [_path(r) for r in system], [_path(r) for r in others])
        framework = self.frameworks.get(fw_key)
        if framework is None:
            self._imports = "read"
            pair = self._run(f.invoke(m["framework"], None, f.invoke(m["constant"], None, config), system, others))
            framework = _Framework(pair.Item1, pair.Item2, self.name_state)
            self.frameworks[fw_key] = framework
            while len(self.frameworks) > FRAMEWORK_ENTRIES:
                self.frameworks.popitem(last=False)
        else:
            self.frameworks.move_to_end(fw_key)
            # fresh generated-name counters, as a new TcGlobals has: without them `f@3` becomes `f@3-2`
            self.name_state.SetValue(framework.tc_globals, Activator.CreateInstance(self.name_state.FieldType))
        t = self._mark("import framework", t)
        tc_globals = framework.tc_globals
        docs = [f.invoke(m["memoize_file"], tc_globals, f.invoke(m["file_index"], None, s)) for s in source_list]
        source_docs = f.fslist(m["memoize_file"].ReturnType, docs)

        phase = f.invoke(m["build_phase"], None, c["parse"])
        try:
            # the output's own paths do not change the check (its assembly name does): a warm-up's scratch
            # compile and the saves' compiles share one kept check
            own = tuple(a for a in args if not a.startswith(_OUTPUT_OPTIONS))
            check_key = (os.getcwd(), own, str(assembly_name), fw_key)
            parsed, files = self.checks.parse(self._outfile, check_key, config, lex, sources, source_list, logger)
            map_args = Array[Type](list(m["dedup"].GetParameters()[0].ParameterType.GetGenericArguments()))
            state = f.invoke(m["map_empty"].MakeGenericMethod(map_args), None)
            inputs = []
            for parsed_input, folder in parsed:
                deduped = f.invoke(m["dedup"], None, state, parsed_input)
                state = deduped.Item2
                inputs.append((deduped.Item1, folder))
            for parsed_input, folder in inputs:
                config = f.invoke(m["meta"], None, config, parsed_input, folder, deps)
            t = self._mark("parse", t)
            project_key = (fw_key, tuple(self._stamp(_path(r)) for r in others),
                           tuple(str(u) for u in unresolved))
            project = self.projects.get(self._outfile)
            if project is None or project.key != project_key or project.framework is not framework:
                self._imports = "read"
                imports = self._run(f.invoke(m["others"], None, f.invoke(m["constant"], None, config),
                                             framework.tc_imports, others, unresolved, deps))
                if project is not None and project.framework is framework:
                    IDisposable(project.tc_imports).Dispose()  # its references' files changed: read again
                project = self.projects[self._outfile] = _Project(project_key, framework, imports, next(_SERIALS))
            t = self._mark("import references", t)
        finally:
            IDisposable(phase).Dispose()

        phase = f.invoke(m["build_phase"], None, c["typecheck"])
        try:
            startup = f.invoke(m["range_startup"], None)
            env = f.invoke(m["initial_env"], None, assembly_name, startup, config, project.tc_imports, tc_globals)
            done = self.checks.check(self._outfile, (*check_key, project.serial), files, [i for i, _ in inputs],
                                     ctok, config, project.tc_imports, tc_globals, logger, assembly_name, env,
                                     startup)
            if done is None:  # Driver.TypeCheck's own check of every file, with fresh generated-name counters
                self.name_state.SetValue(tc_globals, Activator.CreateInstance(self.name_state.FieldType))
                input_type = m["meta"].GetParameters()[1].ParameterType
                checked = f.invoke(m["typecheck"], None, ctok, config, project.tc_imports, tc_globals, logger,
                                   assembly_name, env.Item1, env.Item2, f.fslist(input_type, [i for i, _ in inputs]),
                                   exiter)
                ccu, top_attribs, impl_files = f.get(checked.Item1, "Ccu"), checked.Item2, checked.Item3
            else:
                ccu, top_attribs, impl_files, count = done
                self._checked = (count, len(files))
            f.invoke(m["abort"], None, logger, exiter)
            self._mark("typecheck", t)
        finally:
            IDisposable(phase).Dispose()
        args_type = m["main1"].ReturnType
        whole = args_type.GetGenericArguments()[0]
        rest = Activator.CreateInstance(whole.GetGenericArguments()[7], Array[Object](
            [config, outfile, pdbfile, assembly_name, logger, exiter, source_docs]))
        item = Activator.CreateInstance(whole, Array[Object](
            [ctok, tc_globals, project.tc_imports, framework.tc_imports, ccu, impl_files, top_attribs, rest]))
        return f.invoke(f.method(args_type, "NewArgs", 1), None, item)
