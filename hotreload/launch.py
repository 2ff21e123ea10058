"""How `dotnet run` launches a project, so `hotreload watch` launches it the same way.

`dotnet run` (SDK 10) runs the app with the project folder as its working directory, and applies a launch profile
from `Properties/launchSettings.json`: the one `--launch-profile NAME` names, else the first profile whose
commandName is "Project"; none with `--no-launch-profile`. A profile sets its environmentVariables, its
applicationUrl as ASPNETCORE_URLS, DOTNET_LAUNCH_PROFILE to its name, and its commandLineArgs when the command
line gives the app none.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from .errors import HotReloadError

SETTINGS = Path("Properties") / "launchSettings.json"


class LaunchSettingsError(HotReloadError):
    """launchSettings.json cannot be read, or has no profile by the name asked for: the message says which."""


@dataclass(frozen=True)
class LaunchProfile:
    name: str
    file: Path
    environment: dict[str, str] = field(default_factory=dict)
    application_url: str | None = None
    command_line_args: str | None = None

    def variables(self) -> dict[str, str]:
        """The environment the app gets, as `dotnet run` sets it."""
        env = dict(self.environment)
        if self.application_url:
            env["ASPNETCORE_URLS"] = self.application_url
        env["DOTNET_LAUNCH_PROFILE"] = self.name
        return env

    def args(self, given: list[str]) -> list[str]:
        """The app's arguments: the command line's, else the profile's commandLineArgs."""
        return list(given) if given or not self.command_line_args else shlex.split(self.command_line_args)


_COMMENTS = re.compile(r'("(?:\\.|[^"\\])*")|//[^\n]*|/\*.*?\*/', re.DOTALL)
_TRAILING_COMMAS = re.compile(r'("(?:\\.|[^"\\])*")|,(\s*[}\]])')


def _relaxed_json(text: str) -> object:
    """JSON with the comments and trailing commas launchSettings.json may have (the SDK reads it that way)."""
    text = _COMMENTS.sub(lambda m: m.group(1) or "", text)
    text = _TRAILING_COMMAS.sub(lambda m: m.group(1) or m.group(2), text)
    return json.loads(text)


def read_profile(project: Path, name: str | None = None) -> LaunchProfile | None:
    """The profile `dotnet run` would use for `project` (None when there is no settings file or no Project
    profile and none was named). Raises LaunchSettingsError for an unreadable file or a missing named profile."""
    path = project.parent / SETTINGS
    if not path.exists():
        if name:
            raise LaunchSettingsError(f"{path}: no such file, so no launch profile {name!r}; "
                                      "drop --launch-profile or create the file")
        return None
    try:
        data = _relaxed_json(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise LaunchSettingsError(f"{path}: cannot be read as JSON ({exc}); fix it, or run with "
                                  "--no-launch-profile") from None
    profiles = data.get("profiles") if isinstance(data, dict) else None
    if not isinstance(profiles, dict):
        if name:
            raise LaunchSettingsError(f"{path}: no \"profiles\" object, so no launch profile {name!r}")
        return None
    if name:
        if not isinstance(profiles.get(name), dict):
            known = ", ".join(profiles) or "none"
            raise LaunchSettingsError(f"{path}: no launch profile {name!r} (profiles: {known}); "
                                      "pass one of them to --launch-profile")
        chosen = name
    else:
        chosen = next((k for k, v in profiles.items() if isinstance(v, dict) and v.get("commandName") == "Project"),
                      "")
        if not chosen:
            return None
    profile = profiles[chosen]
    env = profile.get("environmentVariables") or {}
    return LaunchProfile(chosen, path, {str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else {},
                         str(profile["applicationUrl"]) if profile.get("applicationUrl") else None,
                         str(profile["commandLineArgs"]) if profile.get("commandLineArgs") else None)


def apply_environment(variables: dict[str, str]) -> None:
    """Set the app's environment in this process: before the runtime starts, for its first read; and through
    System.Environment once it is up (.NET keeps its own copy of the environment)."""
    from .runtime import running

    os.environ.update(variables)
    if running():  # never import clr before: that would start a runtime of pythonnet's choosing
        from System import Environment  # type: ignore[import-not-found]

        for key, value in variables.items():
            Environment.SetEnvironmentVariable(key, value)
