"""Each client's own random numbers: a counter-based stream keyed by (world seed, client, purpose, day, draw).

A number drawn for one client never depends on how many other clients drew that day, so changing what happens
to one client (an action applied to them) leaves every other client's draws, and therefore their rows, exactly
as they were (common random numbers). The numbers come from the SplitMix64 finaliser, vectorised over clients.
"""

from __future__ import annotations

import numpy as np

_MASK = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)


def _mix(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> _S30)
    x = x * _M1
    x = x ^ (x >> _S27)
    x = x * _M2
    return x ^ (x >> _S31)


def _mix_int(value: int) -> int:
    value &= _MASK
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return value ^ (value >> 31)


class ClientStreams:
    """Uniform, normal, exponential, … numbers per client for one named purpose on one day."""

    def __init__(self, seed: int) -> None:
        self.key = int(np.random.SeedSequence(seed).generate_state(1, np.uint64)[0])

    def _bits(self, purpose: int, day: int, who: np.ndarray, columns: int | None) -> np.ndarray:
        salt = np.uint64(_mix_int(self.key ^ _mix_int((purpose << 40) ^ (day & 0xFFFFFFFFFF))))
        h = _mix((np.asarray(who).astype(np.uint64) + np.uint64(1)) * _GOLDEN ^ salt)
        if columns is None:
            return h
        cols = (np.arange(1, columns + 1, dtype=np.uint64) * _M2)[None, :]
        return _mix(h[:, None] ^ cols)

    def uniform(self, purpose: int, day: int, who: np.ndarray, columns: int | None = None,
                low: float = 0.0, high: float = 1.0) -> np.ndarray:
        """Numbers in the open interval (low, high), one per client (or ``columns`` per client)."""
        u = ((self._bits(purpose, day, who, columns) >> _S11).astype(np.float64) + 0.5) * (1.0 / 2**53)
        return u if (low, high) == (0.0, 1.0) else low + (high - low) * u

    def normal(self, purpose: int, day: int, who: np.ndarray, loc: float = 0.0, scale: float = 1.0) -> np.ndarray:
        u = self.uniform(purpose, day, who, 2)
        return loc + scale * np.sqrt(-2.0 * np.log(u[:, 0])) * np.cos(2.0 * np.pi * u[:, 1])

    def exponential(self, purpose: int, day: int, who: np.ndarray, scale: np.ndarray | float) -> np.ndarray:
        return -np.log(self.uniform(purpose, day, who)) * scale

    def gumbel(self, purpose: int, day: int, who: np.ndarray, columns: int) -> np.ndarray:
        return -np.log(-np.log(self.uniform(purpose, day, who, columns)))

    def integers(self, purpose: int, day: int, who: np.ndarray, low: int | np.ndarray, high: int | np.ndarray,
                 columns: int | None = None) -> np.ndarray:
        """Integers in [low, high)."""
        u = self.uniform(purpose, day, who, columns)
        span = np.asarray(high) - np.asarray(low)
        return np.asarray(low) + np.minimum((u * span).astype(np.int64), span - 1)

    def choice(self, purpose: int, day: int, who: np.ndarray, p: list[float] | np.ndarray) -> np.ndarray:
        """Indexes 0..len(p)-1 drawn with probabilities ``p``."""
        cumulative = np.cumsum(p)
        cumulative = cumulative / cumulative[-1]
        return np.minimum(np.searchsorted(cumulative, self.uniform(purpose, day, who), side="right"), len(p) - 1)
