"""One CLI vocabulary (docs/cli.md), help that reads at 80 columns, and a Python function
with the same parameters behind every command."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

import plismbench
from plismbench.cli import app

ROOT = Path(__file__).parents[2]
GROUP = get_command(app)
COMMANDS = sorted(GROUP.commands)  # type: ignore[attr-defined]

#: CLI-only presentation options, and how some CLI options reach the Python function.
CLI_ONLY = {"out", "quiet", "as_json", "plugin", "published", "help", "dry_run", "config",
            "download_dir", "streaming", "tiles_dir", "parquet", "out_old", "export_dir",
            "output_dir_old", "no_ri", "expect_tiles", "fmt", "tiles", "no_wait"}  # fmt: skip
#: Python-only parameters: objects and callbacks a command line cannot pass.
PYTHON_ONLY = {"progress", "notice", "log", "source", "write", "config", "options",
               "formats", "names", "metrics", "threads", "probe_max_iter", "robustness_index",
               "repo_id", "n_tiles", "workers", "level", "seed", "n_boot"}  # fmt: skip
#: CLI name -> Python name where the CLI's is singular and repeatable.
RENAMED = {"model": "models", "out_dir": "output_dir", "tiles": "n_tiles"}
#: Python name -> CLI name, where a function names its output folder otherwise.
PY_TO_CLI = {"export_dir": "out_dir", "out": "out_dir"}


def _configs() -> dict[str, Any]:
    from plismbench.distillation.config import DistillConfig
    from plismbench.extraction.config import ExtractConfig

    return {"extract": ExtractConfig, "distill": DistillConfig}


#: Commands whose options are the fields of a config dataclass, passed as ``**options``.
CONFIGS: dict[str, Any] = {"extract": lambda: _configs()["extract"],
                           "distill": lambda: _configs()["distill"]}  # fmt: skip
#: Commands whose Python function lives elsewhere than ``plismbench.<command>``.
FUNCTION = {"models": "list_extractors"}


def _help(name: str) -> str:
    result = CliRunner().invoke(app, [name, "--help"], terminal_width=80,
                                env={"COLUMNS": "80"})  # fmt: skip
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("name", COMMANDS)
def test_help_reads_at_80_columns_with_examples(name: str) -> None:
    text = _help(name)
    assert "…" not in text and "``" not in text and ":class:" not in text, text
    long = [line for line in text.splitlines() if len(line) > 80]
    assert not long, long
    assert "Examples:" in text and f"plismbench {name}" in text.split("Examples:")[1]


def _documented_flags() -> set[str]:
    doc = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    table = doc.split("## Renamed options")[0]
    return set(re.findall(r"`(--[a-z0-9-]+)`", table))


def _flags(command: Any) -> dict[str, Any]:
    return {o: p for p in command.params if not getattr(p, "hidden", False)
            for o in getattr(p, "opts", []) if o.startswith("--")}  # fmt: skip


def test_every_shared_option_is_in_the_vocabulary() -> None:
    """An option used by two commands is a shared concept: it has one row in docs/cli.md."""
    users: dict[str, list[str]] = {}
    for name in COMMANDS:
        for flag in _flags(GROUP.commands[name]):
            users.setdefault(flag, []).append(name)
    shared = {f for f, cmds in users.items() if len(cmds) > 1} - {"--help"}
    missing = shared - _documented_flags()
    assert not missing, f"shared options missing from docs/cli.md: {sorted(missing)}"


@pytest.mark.parametrize("flag", ["--device", "--quiet", "--overwrite", "--plugin",
                                  "--metrics-dir", "--features-dir", "--tile-subset"])
def test_a_shared_option_has_one_help_and_one_type(flag: str) -> None:
    seen = {(re.sub(r" \[default: .*\]$", "", p.help), p.is_flag, p.metavar)
            for c in GROUP.commands.values() for f, p in _flags(c).items() if f == flag}
    assert len(seen) == 1, seen


def test_old_names_are_hidden() -> None:
    for name in COMMANDS:
        flags = _flags(GROUP.commands[name])
        assert "--export-dir" not in flags and "--output-dir" not in flags, name
        if name not in ("compare", "breakdown", "report"):
            assert "--out" not in flags, name  # --out names a file, never a folder
        # one way to say each flag: no --x/--no-x pairs for plain switches
        pairs = [f for f in flags if f.startswith("--no-") and f[5:] in
                 {g[2:] for g in flags}]  # fmt: skip
        assert not pairs or name == "distill", (name, pairs)


def test_old_name_still_works_with_a_warning(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["synth", "--out", str(tmp_path / "s"), "--tiles", "1",
                                      "--stainings", "GIV", "--scanners", "AT2"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "--out is deprecated; use --out-dir" in result.output
    assert (tmp_path / "s").is_dir()


def test_version_short_flag() -> None:
    result = CliRunner().invoke(app, ["-V"])
    assert result.exit_code == 0 and result.output.strip() == f"plismbench {plismbench.__version__}"


def _api(name: str) -> Any:
    return getattr(plismbench, FUNCTION.get(name, name))


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_a_function_with_the_same_parameters(name: str) -> None:
    """Derive both lists: a command cannot ship without its Python function, and the two
    agree on names and defaults (the CLI-only and Python-only ones are listed above)."""
    api = inspect.signature(_api(name)).parameters
    cli = {p.name: p for p in GROUP.commands[name].params if p.name}
    for cli_name, param in cli.items():
        if cli_name in CLI_ONLY:
            continue
        py_name = cli_name if cli_name in api else RENAMED.get(cli_name, cli_name)
        if py_name not in api:
            py_name = next((p for p, c in PY_TO_CLI.items() if c == cli_name and p in api),
                           py_name)  # fmt: skip
        if py_name not in api and name in CONFIGS:
            config = {f.name: f for f in dataclasses.fields(CONFIGS[name]())}
            assert py_name in config, f"{name}: --{cli_name} is no field of its config"
            field_default = config[py_name].default
            if name == "extract" and param.default not in (None, "auto"):
                assert param.default == field_default, (name, cli_name)
            continue
        assert py_name in api, f"{name}: --{cli_name} has no Python parameter"
        default = api[py_name].default
        if default is not inspect.Parameter.empty and param.default is not None:
            cli_default = param.default
            if isinstance(default, (tuple, list)) and isinstance(cli_default, str):
                cli_default = tuple(int(v) for v in cli_default.split(","))
                default = tuple(default)
            assert cli_default == default, (name, cli_name, cli_default, default)
    for py_name, p in api.items():
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or py_name in PYTHON_ONLY:
            continue
        cli_names = {RENAMED.get(c, c) for c in cli} | set(cli) | {
            p for p, c in PY_TO_CLI.items() if c in cli}
        assert py_name in cli_names, f"{name}: Python parameter {py_name!r} has no option"
