"""A real F# project hosted by a real `Session`, edited the way a user edits: write the file, rebuild, apply.

Used by the edit-matrix tests: every step goes through build -> diff -> delta -> ApplyUpdate -> verify, and
the test then calls the updated code through reflection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hotreload.report import Reporter
from hotreload.session import Outcome, OutcomeKind, Session

FSPROJ = """<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <OutputType>{output}</OutputType>
    <TargetFramework>net10.0</TargetFramework>
    <AssemblyName>{name}</AssemblyName>
    <WarningLevel>3</WarningLevel>
    <TreatWarningsAsErrors>false</TreatWarningsAsErrors>
    <!-- a library does not copy FSharp.Core beside it otherwise; the host resolves it from the output -->
    <CopyLocalLockFileAssemblies>true</CopyLocalLockFileAssemblies>
  </PropertyGroup>
  <ItemGroup>
{items}
  </ItemGroup>
</Project>
"""


class QuietReporter(Reporter):
    """Collects the session's lines instead of printing them (shown by pytest when a test fails)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def _write(self, text: str, color: str = "") -> None:
        self.lines.append(text)
        print(f"[hotreload] {text}")


class LiveProject:
    """An F# project in `folder`, built and loaded (entry point not run) and kept up to date by edits."""

    def __init__(self, folder: Path, files: dict[str, str], name: str = "Live", output: str = "Library") -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        items = "\n".join(f'    <Compile Include="{f}" />' for f in files)
        self.project = folder / f"{name}.fsproj"
        self.project.write_text(FSPROJ.format(output=output, name=name, items=items))
        for file, text in files.items():
            (folder / file).write_text(text)
        self.reporter = QuietReporter()
        self.session = Session(self.project, reporter=self.reporter, run_entry_point=False, watch=False)
        self.session.start()

    def call(self, qualified: str, *args: Any) -> Any:
        assert self.session.app is not None
        return self.session.app.call(qualified, *args)

    def source(self, file: str) -> str:
        return (self.folder / file).read_text()

    def save(self, file: str, text: str) -> Outcome:
        """Write `file` and run one pass of the loop; returns whatever happened."""
        (self.folder / file).write_text(text)
        return self.session.reload()

    def edit(self, file: str, text: str) -> Outcome:
        """Save and require the edit to be applied (the assertion message carries the session's report)."""
        outcome = self.save(file, text)
        assert outcome.kind == OutcomeKind.APPLIED, f"{outcome.kind}: {outcome.message} {[str(r) for r in outcome.refusals]}" \
            f" {[str(e) for e in outcome.errors]}\n" + "\n".join(self.reporter.lines[-8:])
        return outcome

    def refuse(self, file: str, text: str) -> Outcome:
        outcome = self.save(file, text)
        assert outcome.kind == OutcomeKind.REFUSED, f"expected a refusal, got {outcome.kind}: {outcome.methods}"
        return outcome

    def replace(self, file: str, old: str, new: str) -> str:
        text = self.source(file)
        assert old in text, f"{old!r} not in {file}"
        return text.replace(old, new, 1)

    def close(self) -> None:
        self.session.stop()
