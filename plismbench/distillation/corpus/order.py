"""A seeded permutation of ``0 .. n - 1`` per epoch, computed per position in O(1) memory.

Position ``p`` of the stream is tile ``perm_e(p mod n)`` of epoch ``e = p // n``. ``perm_e``
is a keyed Feistel network on the smallest even number of bits that covers ``n``, walked
until it lands in range (cycle walking keeps it a bijection of ``0 .. n - 1``). Nothing of
size ``n`` is ever materialised, so 43M tiles cost each worker no permutation array, and
any slice of the stream (a rank's share of a step, a resumed step) is computed directly.
"""

from __future__ import annotations

import numpy as np

__all__ = ["StreamOrder"]

_ROUNDS = 6
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_G = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on a uint64 array (wrapping arithmetic)."""
    z = x + _G
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


class StreamOrder:
    """The seeded order in which a stream visits ``n`` tiles, epoch after epoch."""

    def __init__(self, n: int, seed: int) -> None:
        if n < 1:
            raise ValueError("a stream needs at least one tile")
        self.n, self.seed = n, seed
        bits = max(2, int(n - 1).bit_length())
        self._half = (bits + 1) // 2
        self._mask = np.uint64((1 << self._half) - 1)

    def _keys(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, epoch, 0x7115])
        return rng.integers(0, 2**63, size=_ROUNDS, dtype=np.uint64)

    def _encrypt(self, x: np.ndarray, keys: np.ndarray) -> np.ndarray:
        h = np.uint64(self._half)
        left, right = x >> h, x & self._mask
        for k in keys:
            left, right = right, left ^ (_mix(right ^ k) & self._mask)
        return (left << h) | right

    def permute(self, k: np.ndarray, epoch: int) -> np.ndarray:
        """``perm_epoch(k)`` for an array of ``k`` in ``0 .. n - 1``."""
        keys = self._keys(epoch)
        x = self._encrypt(np.asarray(k, dtype=np.uint64), keys)
        out = x >= np.uint64(self.n)
        while out.any():
            x[out] = self._encrypt(x[out], keys)
            out = x >= np.uint64(self.n)
        return x.astype(np.int64)

    def indices(self, positions: np.ndarray) -> np.ndarray:
        """The tile index at each stream position."""
        pos = np.asarray(positions, dtype=np.int64)
        epochs, k = np.divmod(pos, self.n)
        out = np.empty_like(pos)
        for e in np.unique(epochs):
            sel = epochs == e
            out[sel] = self.permute(k[sel], int(e))
        return out
