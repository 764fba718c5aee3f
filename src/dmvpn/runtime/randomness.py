"""The two :class:`~dmvpn.sansio.RandomSource` implementations.

Protocol code never draws randomness itself (DESIGN.md, "the one rule"): the
runtime hands each engine one of these.

* :class:`SystemRandomSource` (real runtime): the OS CSPRNG via ``secrets``;
  the only acceptable source for keys, SPIs, nonces and cookies on a real
  network.
* :class:`SeededRandomSource` (sim): a ``random.Random`` seeded from a hash
  of (simulation seed, label), so each node and link has its own stream,
  identical for the same seed and independent of what other nodes draw. It is
  deliberately NOT cryptographically secure: it exists to make lab runs
  reproducible, never to protect traffic.
"""

from __future__ import annotations

import hashlib
import random
import secrets


class SystemRandomSource:
    """Randomness from the operating system's CSPRNG (``secrets``)."""

    def token_bytes(self, n: int) -> bytes:
        """``n`` bytes from ``secrets.token_bytes``."""
        return secrets.token_bytes(n)

    def uniform(self, a: float, b: float) -> float:
        """A float in [a, b] from the CSPRNG (53 random bits)."""
        return a + (b - a) * (secrets.randbits(53) / float(1 << 53))


def derive_seed(seed: int | str, label: str) -> int:
    """A 64-bit seed for ``label`` (a node or link name) under ``seed``."""
    digest = hashlib.sha256(f"{seed}\x00{label}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


class SeededRandomSource:
    """Deterministic randomness for the simulator, one stream per label."""

    def __init__(self, seed: int | str, label: str) -> None:
        self.rng = random.Random(derive_seed(seed, label))

    def token_bytes(self, n: int) -> bytes:
        """``n`` reproducible pseudo-random bytes."""
        return self.rng.randbytes(n)

    def uniform(self, a: float, b: float) -> float:
        """A reproducible float in [a, b]."""
        return self.rng.uniform(a, b)
