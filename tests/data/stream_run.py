"""Run Hub streaming in a fresh process, for the tests in test_data_hub.py.

huggingface_hub and datasets read ``HF_ENDPOINT`` once, at import, so streaming against a fake
Hub (a new port per test) runs here, with the environment set before anything is imported.
``datasets.load_dataset`` and ``decode_image`` are wrapped to record what they were asked for.

Usage: ``python stream_run.py REPO_ID H5_DIR START [SLIDE ...]``: streams the given slides
(default: the last one), indexing the others only, from row ``START`` in batches of 2, and
compares the tiles with the h5 files of ``H5_DIR``. Prints one JSON object.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np


def main(argv: list[str]) -> dict[str, Any]:
    import datasets

    from plismbench.data import sources
    from plismbench.data.sources import streaming

    calls: list[dict[str, Any]] = []
    real_load = datasets.load_dataset

    def load_dataset(path: str, *args: Any, **kwargs: Any) -> Any:
        calls.append({"path": path, "args": list(args), **{k: repr(v) for k, v in kwargs.items()}})
        calls[-1]["data_files"] = kwargs.get("data_files")
        return real_load(path, *args, **kwargs)

    datasets.load_dataset = load_dataset  # type: ignore[assignment]

    decoded: list[str] = []
    real_decode = sources.decode_image

    def decode_image(data: Any, *, where: str, name: str) -> np.ndarray:
        decoded.append(name)
        return real_decode(data, where=where, name=name)

    streaming.decode_image = decode_image  # type: ignore[assignment]

    repo_id, h5_dir, start, *wanted = argv
    stream = sources.open_source(streaming=True, repo_id=repo_id)
    local = sources.open_source(download_dir=h5_dir)
    slide_ids = stream.slide_ids()
    wanted = wanted or slide_ids[-1:]
    result: dict[str, Any] = {"slide_ids": slide_ids, "starts": {}, "equal": {}}
    result["same_slides"] = slide_ids == local.slide_ids()
    result["same_coords"] = all(
        np.array_equal(stream.coords(sid), local.coords(sid)) for sid in slide_ids
    )
    for sid in slide_ids:
        if sid not in wanted:
            continue  # a slide already done: indexed only
        batches = list(stream.iter_batches(sid, 2, start=int(start)))
        ref = [b.tiles for b in local.iter_batches(sid, 2, start=int(start))]
        result["starts"][sid] = [b.start for b in batches]
        result["equal"][sid] = len(batches) == len(ref) and all(
            np.array_equal(a.tiles, b) for a, b in zip(batches, ref, strict=True)
        )
    result["decoded"] = decoded
    result["calls"] = calls
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
