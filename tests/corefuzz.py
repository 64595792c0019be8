"""Byte-flip mutations of the fixture cores: random bytes in heap segments, program headers and notes.

Deterministic (seeded): the same seed gives the same mutated cores, so a failure can be replayed.
"""
from __future__ import annotations

import os
import random
from typing import Iterator, List, Tuple

from elftools.elf.elffile import ELFFile

__all__ = ["Mutation", "mutations", "KINDS"]

KINDS = ("heap", "phdrs", "notes")


class Mutation:
    """One mutated copy of a core: what was changed, and where it was written."""

    def __init__(self, source: str, kind: str, seed: int, path: str, changes: List[Tuple[int, bytes]]) -> None:
        self.source, self.kind, self.seed, self.path, self.changes = source, kind, seed, path, changes

    def __repr__(self) -> str:
        return f"{os.path.basename(self.source)}:{self.kind}:{self.seed}"


def _areas(data: bytes) -> dict:
    """File ranges of each mutation kind: writable PT_LOAD (heap data), the phdr table, PT_NOTE."""
    import io

    elf = ELFFile(io.BytesIO(data))
    hdr = elf.header
    areas = {"phdrs": [(hdr.e_phoff, hdr.e_phoff + hdr.e_phnum * hdr.e_phentsize)], "heap": [], "notes": []}
    for seg in elf.iter_segments():
        lo, hi = seg["p_offset"], seg["p_offset"] + seg["p_filesz"]
        if hi <= lo:
            continue
        if seg["p_type"] == "PT_NOTE":
            areas["notes"].append((lo, hi))
        elif seg["p_type"] == "PT_LOAD" and seg["p_flags"] & 2:
            areas["heap"].append((lo, hi))
    return areas


def _mutate(data: bytearray, ranges, rng: random.Random) -> List[Tuple[int, bytes]]:
    changes = []
    for _ in range(rng.randint(1, 12)):
        lo, hi = rng.choice(ranges)
        width = rng.choice([1, 1, 2, 8, 8, 16, 64])
        at = rng.randrange(lo, max(lo + 1, hi - width))
        style = rng.random()
        if style < 0.4:
            new = bytes(rng.randrange(256) for _ in range(width))
        elif style < 0.6:
            new = b"\xff" * width
        elif style < 0.8:
            new = b"\x00" * width
        else:
            new = (b"AAAAAAAA" * ((width + 7) // 8))[:width]
        data[at : at + width] = new
        changes.append((at, new))
    return changes


def mutations(core_path: str, outdir: str, count: int, seed: int = 0) -> Iterator[Mutation]:
    """``count`` mutated copies of ``core_path`` (a plain core), cycling through the kinds."""
    original = open(core_path, "rb").read()
    areas = _areas(original)
    base = os.path.basename(core_path)
    for n in range(count):
        kind = KINDS[n % len(KINDS)]
        if not areas[kind]:
            kind = "heap"
        rng = random.Random(f"{seed}:{base}:{n}")
        data = bytearray(original)
        changes = _mutate(data, areas[kind], rng)
        path = os.path.join(outdir, f"{base}.{kind}.{n}")
        with open(path, "wb") as fh:
            fh.write(data)
        yield Mutation(core_path, kind, n, path, changes)
