"""Content digests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from plismbench.utils.hashing import bytes_digest, file_digest, tensor_state_digest


def test_file_digest_matches_hashlib_across_blocks(tmp_path: Path) -> None:
    data = bytes(range(256)) * 9000  # > 2 blocks
    p = tmp_path / "f.bin"
    p.write_bytes(data)
    assert file_digest(p) == hashlib.blake2b(data).hexdigest() == bytes_digest(data)
    assert file_digest(p, "sha256") == hashlib.sha256(data).hexdigest()


def test_state_digest_sees_values_names_and_dtypes() -> None:
    a = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(3)}
    base = tensor_state_digest(a)
    assert tensor_state_digest(dict(reversed(list(a.items())))) == base
    changed = a["w"].clone()
    changed[0, 0] = 9.0
    assert tensor_state_digest({**a, "w": changed}) != base
    assert tensor_state_digest({"v": a["w"], "b": a["b"]}) != base
    assert tensor_state_digest({**a, "w": a["w"].to(torch.bfloat16)}) != base
    assert tensor_state_digest({**a, "w": a["w"].reshape(3, 2)}) != base
