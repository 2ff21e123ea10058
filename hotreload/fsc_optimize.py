"""fsc's main3 (signature data, optimization, optimization data), with each file's optimization kept between compiles.

`OptimizeInputs.ApplyAllOptimizations` optimizes the files of a compile in a fold: each file's phases (first
simplification loop, lowering of local mutables, detupling, lambda lifting, lowering of calls, final
simplification, as the configuration turns them on) run with the optimization environments and the signature
hiding information left by the files before it, and give the optimized file and its cross-module optimization info.
A file's result depends only on the files before it. This runs main3 of this compiler build step by step and does
that fold with the compiler's own per-file step (`optimizeFilesSequentially`'s closure over the compiler's own
phases); it keeps, per file, its input (the type-checked file), its result and the fold's state after it. The next
compile of the project optimizes again only from the first file whose type-checked tree is not the same object as
last time (hotreload.fsc_checkpoints keeps the check of the files before the first edited one): the files before it
take their result and the fold resumes from the state after them.

What optimizing a file sets on its module-level values (flags such as ValMakesNoCriticalTailcalls, and optional
data) is part of its result: fsc_checkpoints puts those values back as checking left them before each compile
(the signature data is encoded from that state, as in a full compile); after the signature data is encoded, the
values of the kept files are set as their optimization left them, before the later files are optimized.

The environments are immutable but for one count: the method environment's count of pipelines (the optimizer names
`x |> f` stages "Pipe #n ..." from it, and optimizing a file counts on in the environment it was given). It is put
back, before the fold resumes, as it was after the last kept file.

A kept file's result also holds the closure the optimizer returns for IL generation to optimize expressions it
generates (OptimizeDuringCodeGen), made in the compile that optimized the file; IL generation calls it again in
each later compile, as a full compile calls the one it just made.

The optimization of files that asked for generated names (the compiler's name counters changed) is not kept: a
kept file's optimization does not run again, and the counters would then differ from a full compile's. (None of the
tested projects' optimization asks for any.)

This SDK's fsc optimizes in its Parallel mode by default (each phase of a file runs once the same phase of the file
before it and the phase before it of the same file are done); this runs the files one after the other, as the
Sequential mode does. Each phase reads from the file before it only what that same phase wrote (its environment)
and from its own file's previous phase the rest, so both modes give the phases the same inputs.

The output is byte-identical to the compiler's own main3 (tests/test_fsc_driver.py compares with the public
compile over edits in the first, middle and last files, inline functions used across files, and errors); the
compile worker's spot checks compare it too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Optimized:
    """One file of a kept optimization, in compile order."""

    input: Any  # the CheckedImplFile optimized (the type check's object)
    result: Any  # Tuple`2[CheckedImplFileAfterOptimization, its optimization info]
    state: Any  # the fold's state after it: Tuple`4[env first loop, env extra loop, env final simplify, hiding]
    vals: list[tuple[Any, Any, Any]] = field(default_factory=list)  # its module's values as optimizing left them
    counts: list[tuple[Any, int]] = field(default_factory=list)  # the state's environments' pipeline counts then


@dataclass
class _KeptOptimization:
    key: tuple[Any, ...]  # the objects the fold depends on, compared by reference
    files: list[_Optimized] = field(default_factory=list)


class KeptOptimization:
    """main3 of this compiler build, with the optimization of the files before the first changed one kept."""

    def __init__(self, f: Any, checks: Any) -> None:
        from .fsc_driver import DriverUnavailable

        m = f.method
        oi = "FSharp.Compiler.OptimizeInputs"
        self.f, self.checks = f, checks
        self.m = {
            "remap": m("FSharp.Compiler.TypedTreeOps.SignatureOps", "MakeExportRemapping", 2),
            "sig_data": m("FSharp.Compiler.CompilerImports", "EncodeSignatureData", 6),
            "opt_data": m("FSharp.Compiler.CompilerImports", "EncodeOptimizationData", 6),
            "error_recovery": m("FSharp.Compiler.DiagnosticsLogger+DiagnosticsLoggerExtensions", "DiagnosticsLogger.ErrorRecovery", 3),
            "logger": m("FSharp.Compiler.DiagnosticsLogger+DiagnosticsThreadStatics", "get_DiagnosticsLogger", 0),
            "range0": m("FSharp.Compiler.Text.RangeModule", "get_range0", 0),
            "build_phase": m("FSharp.Compiler.DiagnosticsLogger", "UseBuildPhase", 1),
            "initial_env": m(oi, "GetInitialOptimizationEnv", 2),
            "add_phase": m(oi, "addPhase@355", 3),
            "union": m("FSharp.Compiler.Optimizer", "UnionOptimizationInfos", 1),
            "abort": m("FSharp.Compiler.Driver", "AbortOnError", 2),
            "tail_calls": m("FSharp.Compiler.TailCallChecks", "CheckImplFile", 4),
            "ref_hash": m("FSharp.Compiler.Driver", "refAssemblySignatureHash$cont@869", 6),
            "module_def": m("FSharp.Compiler.CompilerConfig+IRawFSharpAssemblyData", "TryGetILModuleDef", 0),
            "new_assembly": m("FSharp.Compiler.TypedTree+CheckedAssemblyAfterOptimization",
                              "NewCheckedAssemblyAfterOptimization", 1),
            "supports": m("FSharp.Compiler.Features+LanguageVersion", "SupportsFeature", 1),
            "hiding_empty": m("FSharp.Compiler.TypedTreeOps.SignatureOps+SignatureHidingInfo", "get_Empty", 0),
            "tailrec_feature": m("FSharp.Compiler.Features+LanguageFeature",
                                 "get_WarningWhenTailRecAttributeButNonTailRecUsage", 0),
        }
        self.types = {name: f.type(name) for name in (
            "FSharp.Compiler.Driver+main3@840", oi + "+optimizeFilesSequentially@258", oi + "+firstLoop@373",
            oi + "+lowerLocalMutables@407", oi + "+extraLoop@419", oi + "+detuple@451",
            oi + "+innerLambdasToToplevelFuncs@465", oi + "+lowerCalls@483", oi + "+finalSimplify@495",
            oi + "+PhaseInfo")}
        settings = f.type("FSharp.Compiler.Optimizer+OptimizationSettings")
        self.settings_fields = {n: settings.GetField(n + "@", f.flags)
                                for n in ("abstractBigTargets", "reportingPhase", "alwaysInline", "processingMode")}
        self.clone = settings.BaseType.GetMethod("MemberwiseClone", f.flags)
        self.method_env = f.type("FSharp.Compiler.Optimizer+IncrementalOptimizationEnv").GetField("methEnv@", f.flags)
        self.pipeline_count = f.type("FSharp.Compiler.Optimizer+MethodEnv").GetField("pipelineCount@", f.flags)
        self.build_phase_optimize = f.case("FSharp.Compiler.DiagnosticsLogger+BuildPhase", "Optimize")
        if None in (*self.settings_fields.values(), self.clone, self.method_env, self.pipeline_count):
            raise DriverUnavailable("the F# compiler's optimization settings or environment are not as expected")
        self.kept: dict[str, _KeptOptimization] = {}

    def forget(self, outfile: str) -> None:
        self.kept.pop(outfile, None)

    # ---- main3 ---------------------------------------------------------------------------------------------
    def main3(self, outfile_key: str, staged: Any, main3: Any, mark: Callable[[str], object]) -> tuple[Any, int, int]:
        """What the compiler's `main3(staged)` gives (its Args), and (files optimized, files); `mark(step)` is
        called at the end of each step ("signature data", "optimization", "optimization data")."""
        from System import Activator, Array, IDisposable, Object  # type: ignore[import-not-found]

        f, m = self.f, self.m
        item = f.get(staged, "Item")
        first, rest = [f.get(item, f"Item{i}") for i in range(1, 8)], f.get(item, "Rest")
        second, last = [f.get(rest, f"Item{i}") for i in range(1, 8)], f.get(rest, "Rest")
        ctok, config, tc_imports, framework_imports, tc_globals, logger, ccu = first
        outfile, impl_files, top_attrs, pdbfile, assembly_name, assembly_version, signing = second
        exiter, source_docs = f.get(last, "Item1"), f.get(last, "Item2")

        mode = str(self.settings_fields["processingMode"].GetValue(f.get(config, "optSettings")))
        if mode not in ("Sequential", "Parallel"):
            self.forget(outfile_key)
            raise Unkept(f"the optimization mode {mode}")
        remap = f.invoke(m["remap"], None, ccu, f.get(f.get(ccu, "Deref"), "Contents"))
        try:
            sig_data = f.invoke(m["sig_data"], None, config, tc_globals, remap, ccu, outfile, False)
        except Exception as exc:
            inner = getattr(exc, "InnerException", None) or exc
            f.invoke(m["error_recovery"], None, f.invoke(m["logger"], None), inner, f.invoke(m["range0"], None))
            f.method(exiter.GetType(), "Exit", 1).Invoke(exiter, Array[Object]([1]))
            raise
        mark("signature data")
        version = f.get(config, "metadataVersion")
        if version is not None:
            metadata_version = f.get(version, "Value")
        else:
            found = f.get(framework_imports, "DllTable").TryFind(f.get(f.get(config, "primaryAssembly"), "Name"))
            metadata_version = "" if found is None else f.get(f.get(f.invoke(
                m["module_def"], f.get(found.Value, "RawMetadata")), "Value"), "MetadataVersion")

        phase = f.invoke(m["build_phase"], None, self.build_phase_optimize)
        try:
            import_map = f.invoke(f.method(tc_imports.GetType(), "GetImportMap", 0), tc_imports)
            tc_val = self._new(self.types["FSharp.Compiler.Driver+main3@840"].MakeGenericType(tc_globals.GetType()),
                               tc_globals)
            files = [impl for impl in impl_files]
            optimized, count = self._optimize(outfile_key, config, tc_globals, tc_imports, tc_val, import_map, ccu,
                                              files)
            f.invoke(m["abort"], None, logger, exiter)
            mark("optimization")
            after_type = m["union"].GetParameters()[0].ParameterType.GetGenericArguments()[0]
            opt_info = f.invoke(m["union"], None, f.fslist(after_type, [p.Item2 for p in optimized]))
            new_assembly = m["new_assembly"]
            impls = f.fslist(new_assembly.GetParameters()[0].ParameterType.GetGenericArguments()[0],
                             [p.Item1 for p in optimized])
            assembly = f.invoke(new_assembly, None, impls)
            data_arg = m["opt_data"].GetParameters()[4].ParameterType
            pair_type = data_arg.GetGenericTypeDefinition().MakeGenericType(data_arg.GetGenericArguments()[0],
                                                                              opt_info.GetType())
            opt_method = f.bind(m["opt_data"], [None, None, None, None,
                                                Activator.CreateInstance(pair_type, Array[Object]([ccu, opt_info]))])
            opt_data = f.invoke(opt_method, None, tc_globals, config, outfile, remap,
                                Activator.CreateInstance(pair_type, Array[Object]([ccu, opt_info])), False)
        finally:
            IDisposable(phase).Dispose()
        if bool(f.invoke(m["supports"], f.get(tc_globals, "langVersion"), f.invoke(m["tailrec_feature"], None))):
            for after in [p.Item1 for p in optimized]:
                f.invoke(m["tail_calls"], None, tc_globals, f.invoke(f.method(tc_imports.GetType(), "GetImportMap", 0),
                                                                     tc_imports),
                         True, f.get(f.get(after, "ImplFile"), "Contents"))
        emit = f.get(config, "emitMetadataAssembly")
        ref_hash = None
        if bool(f.get(emit, "IsReferenceOut")) or bool(f.get(emit, "IsReferenceOnly")):
            ref_hash = f.invoke(f.bind(m["ref_hash"], [impl_files, top_attrs, tc_globals]), None, impl_files,
                                top_attrs, tc_globals, config, opt_data, None)
        mark("optimization data")
        return self._args(main3, staged, [
            ctok, config, tc_imports, tc_globals, logger, ccu, outfile,
            assembly, top_attrs, pdbfile, assembly_name, sig_data.Item1, sig_data.Item2, opt_data,
            assembly_version, signing, metadata_version, exiter, source_docs, ref_hash]), count, len(files)

    def _optimize(self, outfile_key: str, config: Any, tc_globals: Any, tc_imports: Any, tc_val: Any, import_map: Any,
                  ccu: Any, files: list[Any]) -> tuple[list[Any], int]:
        """ApplyAllOptimizations' fold, from the first file not kept: ([Tuple`2[optimized file, info]], files
        optimized)."""
        from System import Int32, Object, Tuple  # type: ignore[import-not-found]

        f = self.f
        key = (config, tc_globals, tc_imports, ccu)
        kept = self.kept.pop(outfile_key, None)
        start = 0
        if kept is not None and all(Object.ReferenceEquals(a, b) for a, b in zip(kept.key[1:], key[1:], strict=True)):
            while start < min(len(kept.files), len(files)) and Object.ReferenceEquals(kept.files[start].input,
                                                                                     files[start]):
                start += 1
        reused = kept.files[:start] if kept is not None else []
        for entry in reused:  # as their optimization left them (the signature data was encoded before)
            for val, flags, data in entry.vals:
                self.checks.restore(val, flags, data)
        fold = self._new(self.types["FSharp.Compiler.OptimizeInputs+optimizeFilesSequentially@258"],
                         self._phases(config, tc_globals, tc_val, import_map, ccu))
        if reused:
            state = reused[-1].state
            for method_env, count in reused[-1].counts:  # the later files' optimization counted on from them
                self.pipeline_count.SetValue(method_env, Int32(count))
        else:
            env = f.invoke(self.m["initial_env"], None, tc_imports, tc_globals)
            state = Tuple.Create(env, env, env, f.invoke(self.m["hiding_empty"], None))
        names = self._names(tc_globals)
        out = list(reused)
        for k in range(start, len(files)):
            step = fold.Invoke(state).Invoke(Tuple.Create(Int32(k), files[k]))
            state = step.Item2
            out.append(_Optimized(files[k], step.Item1, state, self.checks._snapshot(f.get(files[k], "Signature")),
                                  self._counts(state)))
        # files whose optimization asked for generated names are not kept (see the module's docstring): which of
        # them did is not looked for (the counters are read twice, not once per file), none of them is kept
        keep = len(out) if self._names(tc_globals) == names else start
        self.kept[outfile_key] = _KeptOptimization(key, out[:keep])
        return [e.result for e in out], len(files) - start

    def _counts(self, state: Any) -> list[tuple[Any, int]]:
        """The one mutable part of an optimization environment: its method environment's count of pipelines (the
        optimizer names `x |> f` stages "Pipe #n ..." from it, and optimizing later files counts on)."""
        envs = [state.Item1, state.Item2, state.Item3]
        method_envs = [self.method_env.GetValue(env) for env in envs]
        return [(env, int(self.pipeline_count.GetValue(env))) for env in method_envs]

    def _names(self, tc_globals: Any) -> tuple[Any, ...]:
        """The generated-name counters (the optimizer may ask for names): every count, and the stable names'."""
        c = self.checks
        state = c.name_state.GetValue(tc_globals)
        stable = c.stable_field.GetValue(state)
        counts = [c.counts_field.GetValue(g.GetValue(state)) for g in c.nng_fields]
        counts.append(c.counts_field.GetValue(c.inner_field.GetValue(stable)))
        return (*(frozenset((str(p.Key), int(p.Value.Value)) for p in d) for d in counts),
                int(c.nice_field.GetValue(stable).Count))

    def _phases(self, config: Any, tc_globals: Any, tc_val: Any, import_map: Any, ccu: Any) -> Any:
        """The phases ApplyAllOptimizations builds for this configuration (the compiler's own closures)."""
        from System.Collections.Generic import List  # type: ignore[import-not-found]

        f, t, oi = self.f, self.types, "FSharp.Compiler.OptimizeInputs+"
        base = f.get(config, "optSettings")
        first = self.clone.Invoke(base, None)
        self.settings_fields["abstractBigTargets"].SetValue(first, bool(f.get(config, "doTLR")))
        self.settings_fields["reportingPhase"].SetValue(first, True)
        self.settings_fields["alwaysInline"].SetValue(first, bool(f.get(config, "alwaysInline")))
        later = self.clone.Invoke(first, None)
        self.settings_fields["abstractBigTargets"].SetValue(later, False)
        self.settings_fields["reportingPhase"].SetValue(later, False)

        def make(name: str, *args: Any) -> Any:
            return self._new(t[oi + name], *args)

        loop = (config, tc_globals, tc_val, import_map, False, ccu)
        phases = List[t[oi + "PhaseInfo"]]()
        for name, on, closure in (
                ("firstLoop", True, make("firstLoop@373", *loop, first)),
                ("lowerLocalMutables", True, make("lowerLocalMutables@407", tc_globals, import_map)),
                ("ExtraLoop", int(f.get(config, "extraOptimizationIterations")) > 0,
                 make("extraLoop@419", *loop, later)),
                ("Detuple", bool(f.get(config, "doDetuple")), make("detuple@451", tc_globals, ccu)),
                ("InnerLambdasToToplevelFuncs", bool(f.get(config, "doTLR")),
                 make("innerLambdasToToplevelFuncs@465", tc_globals, import_map, ccu)),
                ("LowerCalls", True, make("lowerCalls@483", tc_globals)),
                ("FinalSimplify", bool(f.get(config, "doFinalSimplify")), make("finalSimplify@495", *loop, later))):
            if on:
                f.invoke(self.m["add_phase"], None, phases, name, closure)
        return phases.ToArray()

    def _new(self, closure: Any, *args: Any) -> Any:
        """An instance of one of the compiler's closure classes (their constructors are internal)."""
        from System import Array, Object  # type: ignore[import-not-found]

        return closure.GetConstructors(self.f.flags)[0].Invoke(Array[Object](list(args)))

    def _args(self, main3: Any, staged: Any, values: list[Any]) -> Any:
        """main3's Args from its 20 values (as the compiler nests them: 7, 7, then 6)."""
        from System import Activator, Array, Object  # type: ignore[import-not-found]

        args_type = self.f.bind(main3, [staged]).ReturnType
        whole = args_type.GetGenericArguments()[0]
        middle = whole.GetGenericArguments()[7]
        tail = middle.GetGenericArguments()[7]
        inner = Activator.CreateInstance(tail, Array[Object](values[14:]))
        mid = Activator.CreateInstance(middle, Array[Object]([*values[7:14], inner]))
        item = Activator.CreateInstance(whole, Array[Object]([*values[:7], mid]))
        return self.f.invoke(self.f.method(args_type, "NewArgs", 1), None, item)


class Unkept(Exception):
    """This compile's optimization is the compiler's own main3 (a mode this does not do)."""
