"""The torchrun bootstrap outside torchrun, and sharding."""

from __future__ import annotations

import pytest
import torch

from plismbench.utils import distributed as d


def test_single_process_is_rank_zero_of_one(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    ctx = d.init_distributed("cpu")
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.distributed) == (0, 1, True, False)
    assert ctx.device == torch.device("cpu")
    assert d.all_reduce_values([1.5, 2]) == [1.5, 2.0]
    assert d.all_gather_object({"a": 1}) == [{"a": 1}]
    assert d.broadcast_object(3) == 3
    d.shutdown(ctx)


def test_shards_partition_in_order() -> None:
    items = list(range(10))
    shards = [d.shard(items, r, 3) for r in range(3)]
    assert sorted(x for s in shards for x in s) == items
    assert shards[1] == [1, 4, 7]
