"""Launch profiles as `dotnet run` picks and applies them (hotreload.launch), and shared frameworks as the host rolls
them forward (hotreload.runtime.framework_folder): files only, no runtime."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hotreload.launch import LaunchSettingsError, read_profile
from hotreload.runtime import app_frameworks, framework_folder

SETTINGS = """{
  // comments and trailing commas, as Visual Studio writes them
  "$schema": "https://json.schemastore.org/launchsettings.json",
  "profiles": {
    "IIS Express": { "commandName": "IISExpress", "applicationUrl": "http://localhost:1" },
    "http": {
      "commandName": "Project",
      "applicationUrl": "http://localhost:5206",
      "commandLineArgs": "--mode \\"two words\\"",
      "environmentVariables": { "ASPNETCORE_ENVIRONMENT": "Development", "URL_IN_VALUE": "http://x//y", },
    },
    "https": { "commandName": "Project", "applicationUrl": "https://localhost:7270;http://localhost:5206" },
  },
}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "Properties").mkdir()
    (tmp_path / "Properties" / "launchSettings.json").write_text(SETTINGS)
    return tmp_path / "App.fsproj"


def test_the_first_project_profile_is_used_with_its_url_environment_and_arguments(project: Path) -> None:
    profile = read_profile(project)
    assert profile is not None and profile.name == "http"  # IIS Express is not a Project profile
    assert profile.variables() == {"ASPNETCORE_ENVIRONMENT": "Development", "URL_IN_VALUE": "http://x//y",
                                   "ASPNETCORE_URLS": "http://localhost:5206", "DOTNET_LAUNCH_PROFILE": "http"}
    assert profile.args([]) == ["--mode", "two words"]
    assert profile.args(["--given"]) == ["--given"]  # arguments on the command line win


def test_a_named_profile_and_a_missing_one(project: Path) -> None:
    profile = read_profile(project, "https")
    assert profile is not None and profile.variables()["ASPNETCORE_URLS"] == "https://localhost:7270;http://localhost:5206"
    with pytest.raises(LaunchSettingsError, match="no launch profile 'nope'.*IIS Express, http, https"):
        read_profile(project, "nope")


def test_no_settings_file_means_no_profile_unless_one_is_named(tmp_path: Path) -> None:
    assert read_profile(tmp_path / "App.fsproj") is None
    with pytest.raises(LaunchSettingsError, match="no such file"):
        read_profile(tmp_path / "App.fsproj", "http")


def test_a_broken_settings_file_is_said(project: Path) -> None:
    (project.parent / "Properties" / "launchSettings.json").write_text("{ not json")
    with pytest.raises(LaunchSettingsError, match="launchSettings.json: cannot be read as JSON.*--no-launch-profile"):
        read_profile(project)


def test_frameworks_roll_forward_to_the_latest_patch_of_the_lowest_fitting_minor(tmp_path: Path) -> None:
    for version in ("9.0.5", "10.0.3", "10.0.12", "10.1.0", "11.0.0"):
        (tmp_path / "shared" / "Microsoft.AspNetCore.App" / version).mkdir(parents=True)
    assert framework_folder(str(tmp_path), "Microsoft.AspNetCore.App", "10.0.0") == \
        str(tmp_path / "shared" / "Microsoft.AspNetCore.App" / "10.0.12")
    assert framework_folder(str(tmp_path), "Microsoft.AspNetCore.App", "10.1.0").endswith("10.1.0")  # type: ignore[union-attr]
    assert framework_folder(str(tmp_path), "Microsoft.AspNetCore.App", "12.0.0") is None
    assert framework_folder(str(tmp_path), "Microsoft.WindowsDesktop.App", "10.0.0") is None


def test_app_frameworks_reads_one_or_many(tmp_path: Path) -> None:
    many = tmp_path / "Web.runtimeconfig.json"
    many.write_text(json.dumps({"runtimeOptions": {"frameworks": [
        {"name": "Microsoft.NETCore.App", "version": "10.0.0"}, {"name": "Microsoft.AspNetCore.App", "version": "10.0.0"}]}}))
    one = tmp_path / "Console.runtimeconfig.json"
    one.write_text(json.dumps({"runtimeOptions": {"framework": {"name": "Microsoft.NETCore.App", "version": "10.0.0"}}}))
    contained = tmp_path / "SelfContained.runtimeconfig.json"
    contained.write_text(json.dumps({"runtimeOptions": {"includedFrameworks": [{"name": "Microsoft.NETCore.App"}]}}))
    assert [n for n, _ in app_frameworks(many)] == ["Microsoft.NETCore.App", "Microsoft.AspNetCore.App"]
    assert app_frameworks(one) == [("Microsoft.NETCore.App", "10.0.0")]
    assert app_frameworks(contained) == [] and app_frameworks(tmp_path / "missing.json") == []
