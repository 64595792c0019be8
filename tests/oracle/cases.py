"""One corpus case: a heap bug chosen by a seed, and the rules that say, before
any program runs, whether a core can show it ("detectable by construction").

The rules use glibc's documented behaviour only (malloc.c): a chunk's usable
size includes the next chunk's ``prev_size`` field, ``free()``'s perturb fill
covers ``chunksize - 2 * SIZE_SZ`` bytes from the user pointer, and the free
lists keep their links in the first bytes of the user area.  Nothing here
looks at gdbext's output.
"""
from __future__ import annotations

import enum
import random
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional

SIZE_SZ = 8
PERTURB_BYTE = 0x5A


class BugKind(str, enum.Enum):
    OVERFLOW = "overflow"
    UNDERFLOW = "underflow"
    UAF_WRITE = "uaf-write"
    UAF_READ_FNPTR = "uaf-read-fnptr"
    DOUBLE_FREE = "double-free"
    INVALID_FREE = "invalid-free"


class SizeClass(str, enum.Enum):
    TCACHE = "tcache"
    FASTBIN = "fastbin"
    SMALL = "small"
    LARGE = "large"
    POOL = "pool"            # the fixture's fixed-slot pool (fixtures/specs/pool_overflow.py)


class Neighbour(str, enum.Enum):
    IN_USE = "in-use"
    FREE = "free"
    TOP = "top"


class Crash(str, enum.Enum):
    MARKER = "marker"        # abort() at a marked point right after the bug
    ALLOCATOR = "allocator"  # the allocator runs over the damage before the marker


class Method(str, enum.Enum):
    STRCPY = "strcpy"
    STRCAT = "strcat"
    MEMCPY = "memcpy"
    LOOP = "loop"
    OFF_BY_ONE = "off-by-one-nul"
    INTERIOR = "interior"    # invalid free of a pointer inside a chunk
    STACK = "stack"          # invalid free of a stack address
    PLAIN = "plain"


# what ASan calls each kind (its report's headline), and what gdbext should say
ASAN_KIND = {
    BugKind.OVERFLOW: "heap-buffer-overflow",
    BugKind.UNDERFLOW: "heap-buffer-overflow",
    BugKind.UAF_WRITE: "heap-use-after-free",
    BugKind.UAF_READ_FNPTR: "heap-use-after-free",
    BugKind.DOUBLE_FREE: "double-free",
    BugKind.INVALID_FREE: "bad-free",
}
GDBEXT_KIND = {
    "heap-buffer-overflow": "heap-buffer-overflow",
    "heap-use-after-free": "use-after-free",
    "double-free": "double-free",
    "bad-free": "invalid-free",
}
#: the glibc size classes, in the order seeds choose from (a new class goes last)
GLIBC_CLASSES = [SizeClass.TCACHE, SizeClass.FASTBIN, SizeClass.SMALL, SizeClass.LARGE]
#: the pool's geometry (fixtures/src/pool_overflow.c): payload, guard, header
POOL_PAYLOAD, POOL_GUARD, POOL_HEADER = 48, 8, 24
POOL_KINDS = (BugKind.OVERFLOW, BugKind.UAF_WRITE, BugKind.UAF_READ_FNPTR)
#: pool seeds live apart from glibc seeds, so adding them changed no glibc case
POOL_SEED_BASE = 100000

# request sizes per class (bytes); fastbin/small fill the tcache bin first
_SIZES = {
    SizeClass.TCACHE: (24, 1000),
    SizeClass.FASTBIN: (24, 120),
    SizeClass.SMALL: (200, 1000),
    SizeClass.LARGE: (1100, 16000),
}


def chunk_size(request: int) -> int:
    """glibc's request2size on 64-bit: header word plus alignment to 16."""
    return max(32, (request + SIZE_SZ + 15) & ~15)


def usable_size(request: int) -> int:
    """malloc_usable_size of a non-mmapped in-use chunk."""
    return chunk_size(request) - SIZE_SZ


def perturb_fill_end(request: int) -> int:
    """Offset from the user pointer where free()'s perturb fill stops."""
    return chunk_size(request) - 2 * SIZE_SZ


def metadata_bytes(size_class: SizeClass) -> int:
    """How many leading user bytes the free list writes into a freed chunk."""
    if size_class is SizeClass.FASTBIN:
        return SIZE_SZ          # fd
    return 2 * SIZE_SZ          # tcache next+key, or fd+bk


@dataclass(frozen=True)
class Case:
    seed: int
    kind: BugKind
    method: Method
    size_class: SizeClass
    request: int
    neighbour: Neighbour
    perturb: bool
    threads: int
    crash: Crash
    static: bool
    # kind-specific: bytes written past the request (overflow), before the
    # region (underflow), or the written/read field (offset, size)
    extent: int = 0
    field_offset: int = 0
    field_size: int = 0
    intervening_free: bool = False

    @property
    def name(self) -> str:
        return f"c{self.seed:05d}"

    def to_dict(self) -> Dict[str, Any]:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, enum.Enum):
                out[key] = value.value
        out["detectable"], out["why_undetectable"] = detectability(self)
        return out


def _pick_overflow(rng: random.Random, request: int) -> tuple:
    method = rng.choice([Method.STRCPY, Method.STRCAT, Method.MEMCPY, Method.LOOP, Method.OFF_BY_ONE])
    if method is Method.OFF_BY_ONE:
        return method, 1
    slack = usable_size(request) - request
    # sometimes stay inside the slack (undetectable by construction), mostly cross
    extent = rng.choice([max(1, slack), slack + rng.randint(1, 8), slack + rng.randint(9, 24),
                         slack + rng.randint(1, 40)])
    return method, max(1, extent)


def make_case(seed: int, *, static: Optional[bool] = None) -> Case:
    rng = random.Random(seed)
    kind = rng.choice(list(BugKind))
    size_class = rng.choice(GLIBC_CLASSES)
    low, high = _SIZES[size_class]
    request = rng.randint(low, high)
    if kind is BugKind.OVERFLOW and rng.random() < 0.3:
        request = usable_size(request)          # no slack: every overflow crosses
    neighbour = rng.choice(list(Neighbour))
    perturb = rng.random() < 0.5
    threads = 2 if rng.random() < 0.25 else 1
    crash = rng.choice(list(Crash))
    link_static = rng.random() < 0.5 if static is None else static
    fields: Dict[str, Any] = {}
    method = Method.PLAIN
    if kind is BugKind.OVERFLOW:
        method, fields["extent"] = _pick_overflow(rng, request)
    elif kind is BugKind.UNDERFLOW:
        fields["extent"] = rng.choice([8, 16, rng.randint(9, 16)])
        method = rng.choice([Method.MEMCPY, Method.LOOP])
    elif kind in (BugKind.UAF_WRITE, BugKind.UAF_READ_FNPTR):
        size = 8 if kind is BugKind.UAF_READ_FNPTR else rng.choice([1, 2, 4, 8])
        top = max(size, min(request, 96)) - size
        offset = rng.randint(0, top)
        fields["field_offset"] = offset - offset % size
        fields["field_size"] = size
        request = max(request, 32)
    elif kind is BugKind.DOUBLE_FREE:
        fields["intervening_free"] = rng.random() < 0.5
    elif kind is BugKind.INVALID_FREE:
        method = rng.choice([Method.INTERIOR, Method.STACK])
        fields["field_offset"] = 16 * rng.randint(1, max(1, min(request, 256) // 16 - 1))
    return Case(seed=seed, kind=kind, method=method, size_class=size_class, request=request,
                neighbour=neighbour, perturb=perturb, threads=threads, crash=crash,
                static=link_static, **fields)


def make_pool_case(seed: int) -> Case:
    """A case in the fixed-slot pool: the allocator records the requested size
    and the allocation site, fills freed payloads with 0xDD and fresh ones
    with 0xCD, and guards each payload with 8 bytes of 0xFD."""
    rng = random.Random(seed)
    kind = rng.choice(POOL_KINDS)
    request = rng.randint(8, POOL_PAYLOAD)
    fields: Dict[str, Any] = {}
    method = Method.PLAIN
    if kind is BugKind.OVERFLOW:
        method = rng.choice([Method.STRCPY, Method.STRCAT, Method.MEMCPY, Method.LOOP, Method.OFF_BY_ONE])
        reach = POOL_PAYLOAD + POOL_GUARD + POOL_HEADER - request   # up to the end of the next header
        fields["extent"] = 1 if method is Method.OFF_BY_ONE else rng.randint(1, reach)
    else:
        size = 8 if kind is BugKind.UAF_READ_FNPTR else rng.choice([1, 2, 4, 8])
        offset = rng.randint(0, POOL_PAYLOAD - size)
        fields["field_offset"] = offset - offset % size
        fields["field_size"] = size
    return Case(seed=seed, kind=kind, method=method, size_class=SizeClass.POOL, request=request,
                neighbour=rng.choice(list(Neighbour)), perturb=False, threads=2 if rng.random() < 0.25 else 1,
                crash=rng.choice(list(Crash)), static=rng.random() < 0.5, **fields)


def detectability(case: Case) -> tuple:
    """(detectable, reason): decided from the case alone, never from a report."""
    if case.size_class is SizeClass.POOL:
        # every byte the bug writes differs from the pool's fills (text, strides
        # and 0x5a-flipped bytes are never 0xCD/0xDD/0xFD), and the pool keeps
        # the requested size: any overflow and any write after free shows
        if case.kind is BugKind.UAF_WRITE and case.crash is Crash.ALLOCATOR:
            return False, "the freed slot is handed out again and refilled"
        if case.kind is BugKind.OVERFLOW and case.crash is Crash.ALLOCATOR:
            # the source slot is freed and handed out again (payload and guard
            # refilled); a free neighbour is popped too (its header rewritten,
            # all but the link it hands to the free-list head)
            end = case.request + case.extent
            past_slot = POOL_PAYLOAD + POOL_GUARD
            if case.neighbour is Neighbour.IN_USE and end <= past_slot:
                return False, "the overflow stayed in the source slot, which was freed and refilled"
            if case.neighbour is not Neighbour.IN_USE and end <= past_slot + 2 * SIZE_SZ:
                return False, "the overflow stopped before the free neighbour's link, and its header was rewritten"
        return True, None
    if case.kind is BugKind.OVERFLOW:
        if case.request + case.extent <= usable_size(case.request):
            return False, "overflow stays inside the chunk's usable slack"
        return True, None
    if case.kind is BugKind.UNDERFLOW:
        if case.extent <= SIZE_SZ:
            return False, "underflow only reaches prev_size, which is the previous chunk's data"
        return True, None
    merges_into_top = (case.neighbour is Neighbour.TOP
                       and case.size_class in (SizeClass.SMALL, SizeClass.LARGE))
    if case.kind is BugKind.UAF_WRITE:
        if merges_into_top:
            return False, "the freed chunk merged into the top chunk"
        end = case.field_offset + case.field_size
        in_meta = case.field_offset < metadata_bytes(case.size_class)
        if in_meta:
            return True, None
        if case.crash is Crash.ALLOCATOR:
            return False, "the freed chunk is handed out again and its data is not metadata"
        if case.perturb and end <= perturb_fill_end(case.request):
            return True, None
        if not case.perturb:
            return False, "no perturb fill: free() leaves no known content to compare"
        return False, "written bytes lie past free()'s perturb fill"
    if case.kind is BugKind.UAF_READ_FNPTR:
        if case.field_offset < metadata_bytes(case.size_class):
            return True, None
        if case.perturb and case.field_offset + 8 <= perturb_fill_end(case.request):
            return True, None
        return False, "the function pointer survives free(): the read changes nothing"
    return True, None
