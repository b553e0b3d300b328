"""Extraction throughput: forward-only vs end-to-end from local h5, same model, one run.

Forward-only feeds synthetic uint8 tiles already on the device; end-to-end runs
``plismbench.extract`` on a synthetic PLISM written as h5 (read, transfer,
normalise, forward, write). Neural models use random weights of the real
architecture (no download). Target: end-to-end >= 90% of forward-only.

    uv run python benchmarks/bench_extract.py --models h0-mini,hed-histogram --tiles 2048
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from plismbench.data.sources import open_source
from plismbench.data.synth import synth
from plismbench.extraction.engine import extract, resolve_device, resolve_precision
from plismbench.extraction.layers import n_layers
from plismbench.extractors.registry import get_extractor, load_extractor


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def forward_only(model: torch.nn.Module, device: torch.device, batch: int, iters: int) -> float:
    """Tiles/s with uint8 tiles already on the device."""
    tiles = torch.randint(0, 256, (batch, 224, 224, 3), dtype=torch.uint8, device=device)
    for _ in range(3):
        model(tiles)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        model(tiles)
    _sync(device)
    return batch * iters / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="rgb-histogram,hed-histogram,h0-mini")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--tiles", type=int, default=1024, help="tiles per slide")
    parser.add_argument("--slides", type=int, default=2, help="slides (scanners) to write")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--layers", default=None, help="also time extract --layers (e.g. all)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    device = resolve_device(args.device)
    scanners = ["AT2", "GT450", "P", "S210", "S360", "S60", "SQ"][: args.slides]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        data = synth(Path(tmp) / "plism", n_tiles=args.tiles, stainings=["GIV"], scanners=scanners)
        print(f"synthetic h5: {args.slides} slides x {args.tiles} tiles "
              f"in {time.perf_counter() - t0:.1f}s")  # fmt: skip
        for name in args.models.split(","):
            spec = get_extractor(name)
            precision = resolve_precision(
                None if args.precision == "auto" else args.precision, spec, device
            )
            torch.manual_seed(0)
            model = load_extractor(spec, pretrained=False, device=device, precision=precision)
            if args.compile:
                model.backbone = torch.compile(model.backbone)  # type: ignore[assignment]
            fwd = forward_only(model, device, args.batch_size, args.iters)
            source = open_source(download_dir=data)
            result = extract(model, source, Path(tmp) / "out", batch_size=args.batch_size,
                             workers=args.workers, overwrite=True)  # fmt: skip
            e2e = result.tiles_per_s
            layers_rate = None
            if args.layers and n_layers(model):
                with_layers = extract(
                    model, source, Path(tmp) / "out", batch_size=args.batch_size,
                    workers=args.workers, overwrite=True, layers=args.layers,
                )  # fmt: skip
                layers_rate = round(with_layers.tiles_per_s, 1)
            row = {
                "model": spec.name,
                "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                "precision": precision,
                "batch_size": args.batch_size,
                "compile": args.compile,
                "forward_tiles_per_s": round(fwd, 1),
                "end_to_end_tiles_per_s": round(e2e, 1),
                "ratio": round(e2e / fwd, 3) if fwd else None,
                "end_to_end_with_layers_tiles_per_s": layers_rate,
                "tiles": result.tiles,
            }
            rows.append(row)
            print(json.dumps(row))
    print()
    print("| model | device | precision | batch | forward tiles/s | end-to-end tiles/s | ratio |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['device']} | {r['precision']} | {r['batch_size']} | "
              f"{r['forward_tiles_per_s']:.0f} | {r['end_to_end_tiles_per_s']:.0f} | "
              f"{r['ratio']:.2f} |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
