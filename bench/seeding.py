"""Stable seeds by name, so every named input is the same in every run and every framework."""

from __future__ import annotations

import hashlib


def seed_for(name: str, seed: int) -> int:
    """A 47-bit seed derived from a tensor's name and the run's base seed."""
    h = hashlib.blake2b(f"{seed}:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & 0x7FFF_FFFF_FFFF
