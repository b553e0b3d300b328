"""CLI commands for the extract stage (see plismbench.extract): ``extract`` and ``models``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from plismbench.cli.app import app, err_console, examples
from plismbench.cli.options import (
    AsJson,
    BatchSize,
    Device,
    DownloadDir,
    Model,
    Overwrite,
    Parquet,
    Plugin,
    Quiet,
    Streaming,
    TilesDir,
    old_name,
    out_dir_option,
    renamed,
    require,
)
from plismbench.errors import InputError
from plismbench.extraction import defaults
from plismbench.utils.ranks import env_ranks, under_torchrun

if TYPE_CHECKING:
    from plismbench.data.base import TileSource


def _load_plugins(plugins: list[str] | None) -> None:
    """Import ``--plugin`` modules (dotted names or ``.py`` paths) so they register."""
    for plugin in plugins or []:
        try:
            if plugin.endswith(".py") and Path(plugin).is_file():
                import importlib.util

                spec = importlib.util.spec_from_file_location(Path(plugin).stem, plugin)
                if spec is None or spec.loader is None:
                    raise ImportError(plugin)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
            else:
                importlib.import_module(plugin)
        except Exception as exc:
            raise InputError(f"plugin {plugin!r} cannot be imported: {exc}") from None


@app.command("extract", epilog=examples(
    "plismbench extract -m h0-mini --download-dir PLISM -o FEATURES --device cuda",
    "torchrun --nproc-per-node 8 -m plismbench extract -m h0-mini \\\n"
    "      --download-dir PLISM -o FEATURES",
))
def extract_command(
    model: Model,
    out_dir: Annotated[
        Path | None, out_dir_option("Features go to OUT_DIR/<model>/<slide>/.", required=True)
    ] = None,
    export_dir: Annotated[Path | None, old_name("--export-dir")] = None,
    download_dir: DownloadDir = None,
    streaming: Streaming = False,
    tiles_dir: TilesDir = None,
    parquet: Parquet = None,
    batch_size: BatchSize = defaults.BATCH_SIZE,
    workers: Annotated[
        int, typer.Option("--workers", "-w", min=0, help="Tile-reading threads (0: inline).")
    ] = defaults.WORKERS,
    device: Device = "auto",
    precision: Annotated[
        str, typer.Option("--precision", help="auto (the model's preference), bf16, fp16, fp32.")
    ] = "auto",
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the model.")] = False,
    overwrite: Overwrite = False,
    weights: Annotated[
        Path | None,
        typer.Option("--weights", help="Local weights (.safetensors/.pt) for the architecture."),
    ] = None,
    check_precision: Annotated[
        bool,
        typer.Option("--check-precision", help="Compare the precision with fp32 on a probe batch."),
    ] = False,
    precision_threshold: Annotated[
        float, typer.Option("--precision-threshold", help="Worst cosine allowed.")
    ] = defaults.PRECISION_THRESHOLD,
    force: Annotated[
        bool, typer.Option("--force", help="Go on even if the precision check fails.")
    ] = False,
    chunk_rows: Annotated[
        int, typer.Option("--chunk-rows", min=1, help="Rows per resume checkpoint.")
    ] = defaults.CHUNK_ROWS,
    layers: Annotated[
        str | None,
        typer.Option(
            "--layers",
            help="Also store these intermediate layers (1-based blocks, e.g. 4,8,12, or all) "
            "under <slide>/layers/<L>/features.npy.",
        ),
    ] = None,
    no_wait: Annotated[
        bool,
        typer.Option(
            "--no-wait",
            help="Return at once instead of waiting for slides other processes are extracting.",
        ),
    ] = False,
    plugin: Plugin = None,
    quiet: Quiet = False,
    pooling: Annotated[
        str | None,
        typer.Option(
            "--pooling",
            help="cls, mean or cls+mean instead of the model's default (see `plismbench "
            "models`); features go to <model>-<pooling>/ and meta.json records it.",
        ),
    ] = None,
    revision: Annotated[
        str | None,
        typer.Option(
            "--revision",
            help="Hub revision (branch, tag or commit) of the weights; the resolved commit "
            "is recorded in meta.json.",
        ),
    ] = None,
) -> None:
    """Extract features of every PLISM tile with one model (resumable; torchrun shards slides)."""
    export_dir = require(renamed(out_dir, export_dir, "--export-dir", "--out-dir"), "--out-dir")
    _load_plugins(plugin)
    from plismbench.extraction.config import ExtractConfig, check_writable
    from plismbench.extraction.engine import extract
    rank = env_ranks()[0]

    def log(message: str) -> None:
        err_console.print(
            f"[dim]rank {rank}[/] {message}" if under_torchrun() else message
        )

    config = ExtractConfig(
        batch_size=batch_size,
        workers=workers,
        device=device,
        precision=None if precision == "auto" else precision,
        compile=compile,
        overwrite=overwrite,
        weights=weights,
        check_precision=check_precision,
        precision_threshold=precision_threshold,
        force=force,
        chunk_rows=chunk_rows,
        layers=layers,
        wait=not no_wait,
        log=None if not quiet and err_console.is_terminal else log,
        progress=not quiet,
        pooling=pooling,
        revision=revision,
    )
    config.validate()
    # Cheap checks first: the output folder and the Hub, before any model or data is loaded.
    check_writable(export_dir)
    if streaming:
        _require_hub()
    try:
        source = _open_source(download_dir, streaming, tiles_dir, parquet)
        result = extract(model, source, export_dir, config)
    except KeyboardInterrupt:
        err_console.print("interrupted; run the same command again to resume", highlight=False)
        raise typer.Exit(130) from None
    elsewhere = (
        f", {len(result.slides_elsewhere)} left to other processes"
        if result.slides_elsewhere
        else ""
    )
    if result.worst_cosine is not None:  # printed even when progress bars hide the log
        log(
            f"precision check: worst cosine {result.worst_cosine:.6f} ({result.precision} vs "
            "fp32), recorded in meta.json"
        )
    log(
        f"{result.model}: {len(result.slides_done)} slides done, {len(result.slides_skipped)} "
        f"already there{elsewhere}, {result.tiles} tiles in {result.seconds:.1f}s "
        f"({result.tiles_per_s:.0f} tiles/s, {result.precision} on {result.device}) "
        f"-> {result.export_dir}"
    )


def _require_hub() -> None:
    """One line when ``--streaming`` cannot reach the Hub (offline mode, no network)."""
    from plismbench.data.hub import require_online

    require_online("extract --streaming")


def _open_source(
    download_dir: Path | None, streaming: bool, tiles_dir: Path | None, parquet: Path | None
) -> TileSource:
    """The tile source; a Hub failure while listing streamed slides is one line."""
    from plismbench.data.sources import open_source

    try:
        return open_source(
            download_dir=download_dir, streaming=streaming, tiles_dir=tiles_dir, parquet=parquet
        )
    except (InputError, KeyboardInterrupt):
        raise
    except Exception as exc:
        if not streaming:
            raise
        first = (str(exc).splitlines() or [""])[0]
        raise InputError(
            f"extract --streaming: cannot list the tiles on the Hub ({type(exc).__name__}: "
            f"{first})"
        ) from None


@app.command("models", epilog=examples("plismbench models", "plismbench models --json"))
def models_command(as_json: AsJson = False, plugin: Plugin = None) -> None:
    """List the extractors: name, dim, parameters, pooling, Hub id, gating, licence."""
    _load_plugins(plugin)
    from plismbench.extractors.registry import list_extractors

    specs = list_extractors()
    if as_json:
        typer.echo(json.dumps([s.summary() for s in specs], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_header=True, header_style="bold")
    columns = ("name", "dim", "params (M)", "pooling", "precision", "input", "weights from",
               "gated", "licence")  # fmt: skip
    for column in columns:
        table.add_column(column, no_wrap=column not in ("weights from", "licence"), overflow="fold")
    for s in specs:
        size = f"{s.input_size}" + (f" (<-{s.resize})" if s.resize else "")
        size = size if s.normalise else "raw"
        restricted = ", ".join(s.licence_restrictions)
        table.add_row(
            s.name,
            str(s.embed_dim),
            "-" if s.params_m is None else f"{s.params_m:g}",
            s.pooling,
            f"{s.dtype} (GPU)" if s.normalise else "fp32",
            size,
            s.hub_id or s.url or "-",
            "yes: accept terms" if s.gated else "",
            s.licence + (f" (restricts: {restricted})" if restricted else ""),
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    console.print(table)
    why = [(s.name, s.pooling, s.pooling_reason) for s in specs if s.pooling_reason]
    if why:
        console.print("Pooling defaults (override with `extract --pooling`):", highlight=False)
        for name, pooling, reason in why:
            console.print(f"  {name}: {pooling}: {reason}", highlight=False, soft_wrap=True)
