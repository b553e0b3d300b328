"""CLI command ``plismbench distill``, generated from :class:`DistillConfig`'s fields.

Every config field with a CLI flag becomes an option whose default is "unset" (None), so
that an option given on the command line overrides the YAML ``--config`` file, which
overrides ``--preset``, which overrides the field defaults.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Annotated, Any

import typer

from plismbench.cli.app import app, err_console, examples
from plismbench.cli.options import DownloadDir, Parquet, Streaming, TilesDir
from plismbench.distillation.config import DistillConfig, resolve_config
from plismbench.utils.ranks import is_main_process

_SHORT = {"output_dir": ["-o"], "batch_size": ["-b"], "workers": ["-w"]}


def _option(f: dataclasses.Field[Any]) -> tuple[str, Any] | None:
    """(name, Annotated type with its typer.Option) for a config field, or None (YAML-only)."""
    cli = f.metadata.get("cli", "")
    if cli is None:
        return None
    flag = cli or "--" + f.name.replace("_", "-")
    default = f.default if f.default is not dataclasses.MISSING else None
    shown = default
    if isinstance(default, tuple):
        shown = ",".join(f"{v:g}" for v in default)
    text = f.metadata.get("help", "")
    if shown not in (None, ""):
        text += f" [default: {shown}]"
    kind = str(f.type)
    if "bool" in kind:
        base = flag.removeprefix("--")
        decl = typer.Option(f"--{base}/--no-{base}", help=text, show_default=False)
        return f.name, Annotated[bool | None, decl]
    if "tuple" in kind or "str" in kind:
        typ: Any = str
    elif "Path" in kind:
        typ = Path
    elif "int" in kind:
        typ = int
    else:
        typ = float
    decl = typer.Option(flag, *_SHORT.get(f.name, []), help=text, show_default=False)
    return f.name, Annotated[typ | None, decl]


def _parameters() -> list[inspect.Parameter]:
    params = []
    for f in dataclasses.fields(DistillConfig):
        found = _option(f)
        if found is not None:
            name, annotation = found
            params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                                            default=None, annotation=annotation))  # fmt: skip
    extra: dict[str, Any] = {
        "config": Annotated[Path | None, typer.Option(
            "--config", help="YAML file of options (field names); the command line overrides it.")],
        "dry_run": Annotated[bool, typer.Option(
            "--dry-run", help="Write RUN/config.yaml (resolved options and schedule) and exit.")],
        "tiles_dir": TilesDir,
        "download_dir": DownloadDir,
        "streaming": Streaming,
        "parquet": Parquet,
    }  # fmt: skip
    defaults = {"dry_run": False, "streaming": False}
    for name, annotation in extra.items():
        kind = inspect.Parameter.KEYWORD_ONLY
        params.append(inspect.Parameter(name, kind, default=defaults.get(name),
                                        annotation=annotation))  # fmt: skip
    return params


def distill_command(**kwargs: Any) -> None:
    """Distil a teacher into a small ViT (DINO + iBOT, or cosine); torchrun for many GPUs."""
    from plismbench.distillation import distill

    config_file, dry_run = kwargs.pop("config"), kwargs.pop("dry_run")
    sources = {k: kwargs.pop(k) for k in ("tiles_dir", "download_dir", "streaming", "parquet")}
    result = distill(config=config_file, dry_run=dry_run, **sources, **kwargs)
    if result.dry_run:
        cfg = resolve_config(kwargs, config_file)
        warm, ttw, freeze = cfg.lengths()
        err_console.print(f"wrote {result.output_dir / 'config.yaml'}: {cfg.steps} steps, lr "
                          f"warmup {warm}, teacher-temp warmup {ttw}, last layer frozen "
                          f"{freeze}")  # fmt: skip
        return
    if is_main_process():
        if not result.last:
            err_console.print(f"{result.output_dir} already holds all {result.steps} steps")
        else:
            skipped = f"; {result.skipped_tiles} unreadable tile(s) skipped" if (
                result.skipped_tiles) else ""  # fmt: skip
            err_console.print(
                f"distilled {result.steps} steps in {result.seconds:.1f}s "
                f"({result.images_per_s:.1f} img/s); last loss {result.last['loss']:.4f}"
                f" -> {result.student_dir}{skipped}"
            )


distill_command.__signature__ = inspect.Signature(_parameters())  # type: ignore[attr-defined]
distill_command.__annotations__ = {p.name: p.annotation for p in _parameters()}
app.command("distill", epilog=examples(
    "plismbench distill --teacher h0-mini --student vit-small --corpus T -o RUN",
    "plismbench distill --preset h0-mini --teacher h-optimus-0 --corpus TILES \\\n"
    "      -o RUN --steps 1000 --dry-run",
))(distill_command)
