# gdbext/aborts.py - glibc's malloc abort messages (2.27-2.43) as data: which
# check fired, the invariant it guards, what usually breaks it, the finding
# kind and the chunk it looked at; plus reading __abort_msg from a core.
"""Explaining a glibc malloc abort.

Since 2.27 glibc's ``malloc_printerr`` prints one line (no address, no
backtrace) and aborts; the same text is kept in the process in
``__abort_msg`` (``struct abort_msg_s { unsigned int size; char msg[]; }``),
so a core carries it (apport reads it with ``print __abort_msg->msg``).

* :data:`ABORTS` maps every ``malloc_printerr`` string of malloc.c in
  glibc 2.27 to 2.43 (plus the ``MALLOC_CHECK_`` and mcheck strings) to an
  :class:`AbortInfo`;
* :func:`explain_abort` looks a message up (exactly, then by prefix; malloc
  assertion failures are recognised by their form);
* :func:`read_abort_message` reads ``__abort_msg`` through a memory source.

The table was written from glibc's malloc/malloc.c (2.27, 2.36 and the
current tree read side by side; 2.36 also checked against the strings of
Debian's libc.so.6).  ``versions`` gives the releases that contain each
string; boundaries marked ``~`` are from the change history as remembered,
not from reading every release.  2.41, 2.42 and 2.43 were read from
malloc.c at each tag (2.43: the tree at its freeze) and checked against the
strings of the static fixture binaries of Debian trixie (2.41) and sid
(2.43): 2.42 added two messages (a fastbin-to-tcache size check and the
tcache_init size guard) and 2.43 dropped every fastbin message with the
fastbins.  ``versions`` is read by :func:`gdbext.glibc.layouts.release_in`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from .errors import MemoryReadError
from .memory import MemorySource

__all__ = [
    "AbortInfo",
    "ABORTS",
    "FINDING_KINDS",
    "explain_abort",
    "read_abort_message",
    "read_perturb_byte",
    "MAX_ABORT_MESSAGE",
]

#: The finding kinds an abort maps to.
FINDING_KINDS = ("heap-buffer-overflow", "use-after-free", "double-free", "invalid-free", "metadata-corruption")

#: The most bytes read from ``__abort_msg->msg``.
MAX_ABORT_MESSAGE = 4096


@dataclass(frozen=True)
class AbortInfo:
    """What one glibc abort message means."""

    message: str  #: the text glibc prints, without the newline
    function: str  #: the glibc function whose check fired
    chunk: str  #: the chunk the check looked at, in words
    invariant: str  #: the property that was found broken, in plain words
    usual_cause: str  #: what usually breaks it
    kind: str  #: the most likely finding kind (one of :data:`FINDING_KINDS`)
    versions: str = "2.27+"  #: glibc releases that contain the message
    #: other finding kinds the same message can come from
    alternatives: Tuple[str, ...] = ()
    source: str = "malloc.c"  #: "malloc.c", "MALLOC_CHECK_", "mcheck" or "assert"

    def lines(self) -> List[str]:
        """A short human explanation."""
        out = [
            f'glibc abort "{self.message}" from {self.function} ({self.source}, glibc {self.versions})',
            f"  checked:  {self.chunk}",
            f"  expected: {self.invariant}",
            f"  usually:  {self.usual_cause}",
            f"  finding:  {self.kind}" + (f" (or {', '.join(self.alternatives)})" if self.alternatives else ""),
        ]
        return out


HBO, UAF, DF, IF, MC = FINDING_KINDS

_FREED = "the chunk being freed"
_NEXT = "the chunk after the one being freed (its size field)"
_UNSORTED_VICTIM = "the victim taken from the unsorted bin"
_UNSORTED_HEAD = "the first chunk of the unsorted bin (its bk link back to the bin head)"

#: Every message, in the order of the code paths (unlink, malloc, free, realloc, others).
_TABLE: Tuple[AbortInfo, ...] = (
    # -- unlink_chunk (the unlink macro before 2.29) -------------------------
    AbortInfo(
        "corrupted size vs. prev_size", "unlink_chunk",
        "the free chunk being unlinked from its bin (a neighbour being merged, or the chunk taken from a bin)",
        "the chunk's size equals the prev_size stored at the start of the chunk after it (the boundary tags agree)",
        "an overflow from the chunk before it into its size field, or into the next chunk's prev_size; "
        "also a write through a dangling pointer into the free chunk's header",
        HBO, "2.26+", (UAF,)),
    AbortInfo(
        "corrupted double-linked list", "unlink_chunk",
        "the free chunk being unlinked from its bin (its fd and bk links)",
        "P->fd->bk == P and P->bk->fd == P: the neighbours in the bin point back at the chunk",
        "a write through a dangling pointer into the first 16 bytes of a freed chunk (its fd/bk), "
        "or an overflow from the previous chunk that reached them",
        UAF, "2.27+", (HBO, MC)),
    AbortInfo(
        "corrupted double-linked list (not small)", "unlink_chunk",
        "the free large chunk being unlinked (its fd_nextsize and bk_nextsize links)",
        "the size-ordered skip list of a large bin is mutual: P->fd_nextsize->bk_nextsize == P and "
        "P->bk_nextsize->fd_nextsize == P",
        "a write through a dangling pointer into bytes 16..31 of a freed large chunk, or an overflow reaching them",
        UAF, "2.27+", (HBO, MC)),
    # -- _int_malloc -----------------------------------------------------------
    AbortInfo(
        "malloc(): unaligned fastbin chunk detected 2", "_int_malloc (fastbin path)",
        "the chunk at the head of the fastbin for the request's size",
        "fastbin entries are aligned to MALLOC_ALIGNMENT (16 bytes on x86-64)",
        "the safe-linked fd of a freed fast chunk was overwritten (a write after free), so the bin head "
        "now decodes to garbage",
        UAF, "2.32-2.42", (MC,)),
    AbortInfo(
        "malloc(): unaligned fastbin chunk detected", "_int_malloc (REMOVE_FB, multi-threaded fastbin pop)",
        "the chunk after the fastbin head (REVEAL_PTR of the head's fd)",
        "fastbin entries are aligned to MALLOC_ALIGNMENT",
        "the fd link of a freed fast chunk was overwritten (a write after free)",
        UAF, "2.32-2.42", (MC,)),
    AbortInfo(
        "malloc(): memory corruption (fast)", "_int_malloc (fastbin path)",
        "the chunk taken from the fastbin for the request's size",
        "the chunk's size maps to the fastbin it was taken from",
        "the fd of a freed fast chunk was overwritten so the bin hands out a bogus chunk, or the size field "
        "of a free fast chunk was overwritten by an overflow from the chunk before it",
        UAF, "2.27-2.42", (HBO, MC)),
    AbortInfo(
        "malloc(): unaligned fastbin chunk detected 3", "_int_malloc (moving fastbin chunks into the tcache)",
        "the next fastbin chunk being stashed into the tcache",
        "fastbin entries are aligned to MALLOC_ALIGNMENT",
        "the fd link of a freed fast chunk was overwritten (a write after free)",
        UAF, "2.32-2.42", (MC,)),
    AbortInfo(
        "malloc(): chunk size mismatch in fastbin", "_int_malloc (moving fastbin chunks into the tcache)",
        "the next fastbin chunk being stashed into the tcache",
        "every chunk of a fastbin has the size of that bin, so it maps to the same tcache bin",
        "the size field of a freed fast chunk was overwritten (an overflow from the chunk before it, "
        "or a write after free), or a forged fastbin link",
        MC, "2.42", (HBO, UAF)),
    AbortInfo(
        "malloc(): smallbin double linked list corrupted", "_int_malloc (smallbin path)",
        "the last chunk of the small bin for the request's size (the victim)",
        "victim->bk->fd == victim",
        "the bk link of a freed small chunk was overwritten (a write after free) or an overflow reached it",
        UAF, "2.27+", (HBO, MC)),
    AbortInfo(
        "malloc(): memory corruption", "_int_malloc (unsorted-bin loop)",
        _UNSORTED_VICTIM,
        "the victim's size is more than 2*SIZE_SZ and at most the arena's system_mem",
        "the size field of a chunk in the unsorted bin was overwritten (overflow from the chunk before it), "
        "or its bk link was overwritten so the walk reached a fake chunk",
        MC, "2.27-2.28", (HBO, UAF)),
    AbortInfo(
        "malloc(): invalid size (unsorted)", "_int_malloc (unsorted-bin loop)",
        _UNSORTED_VICTIM,
        "the victim's size is more than CHUNK_HDR_SZ and at most the arena's system_mem",
        "the size field of a free chunk in the unsorted bin was overwritten (overflow from the chunk before it), "
        "or its bk link was overwritten so the walk reached a fake chunk",
        MC, "2.29+", (HBO, UAF)),
    AbortInfo(
        "malloc(): invalid next size (unsorted)", "_int_malloc (unsorted-bin loop)",
        "the chunk after the victim taken from the unsorted bin (its size field)",
        "the next chunk's size is at least CHUNK_HDR_SZ and at most the arena's system_mem",
        "bytes past the end of the free victim were overwritten: a write after free that ran past it, "
        "or the victim's own size is wrong so 'next' points into data",
        MC, "2.29+", (HBO, UAF)),
    AbortInfo(
        "malloc(): mismatching next->prev_size (unsorted)", "_int_malloc (unsorted-bin loop)",
        "the chunk after the victim taken from the unsorted bin (its prev_size field)",
        "the next chunk's prev_size equals the victim's size (the free victim's footer is intact)",
        "the last word of the free victim was overwritten (a write after free into its end), or the victim's "
        "size field was changed",
        MC, "2.29+", (UAF, HBO)),
    AbortInfo(
        "malloc(): unsorted double linked list corrupted", "_int_malloc (unsorted-bin loop)",
        _UNSORTED_VICTIM + " and its bk neighbour",
        "victim->bk->fd == victim and victim->fd is the unsorted bin head",
        "the fd/bk links of a chunk in the unsorted bin were overwritten (a write after free)",
        UAF, "2.29+", (HBO, MC)),
    AbortInfo(
        "malloc(): invalid next->prev_inuse (unsorted)", "_int_malloc (unsorted-bin loop)",
        "the chunk after the victim taken from the unsorted bin (its PREV_INUSE bit)",
        "the chunk after a free chunk has PREV_INUSE clear",
        "the next chunk's size field was overwritten, or the victim was reused while still binned "
        "(a double free or a write after free)",
        MC, "2.29+", (UAF, DF)),
    AbortInfo(
        "malloc(): largebin double linked list corrupted (nextsize)", "_int_malloc (sorting into a large bin)",
        "the large-bin chunk the victim is inserted next to (its nextsize links)",
        "fwd->bk_nextsize->fd_nextsize == fwd: the large bin's size-ordered skip list is mutual",
        "the fd_nextsize/bk_nextsize of a free large chunk were overwritten (a write after free)",
        UAF, "~2.30+", (HBO, MC)),
    AbortInfo(
        "malloc(): largebin double linked list corrupted (bk)", "_int_malloc (sorting into a large bin)",
        "the large-bin chunk the victim is inserted before (its bk link)",
        "fwd->bk->fd == fwd",
        "the bk link of a free large chunk was overwritten (a write after free)",
        UAF, "~2.30+", (HBO, MC)),
    AbortInfo(
        "malloc(): corrupted unsorted chunks", "_int_malloc (remainder of a large-bin chunk)",
        _UNSORTED_HEAD,
        "the first chunk of the unsorted bin points back at the bin head (fwd->bk == bck)",
        "the bk link of the chunk at the front of the unsorted bin was overwritten (a write after free)",
        UAF, "2.27+", (MC,)),
    AbortInfo(
        "malloc(): corrupted unsorted chunks 2", "_int_malloc (remainder of a chunk found through the binmap)",
        _UNSORTED_HEAD,
        "the first chunk of the unsorted bin points back at the bin head (fwd->bk == bck)",
        "the bk link of the chunk at the front of the unsorted bin was overwritten (a write after free)",
        UAF, "2.27+", (MC,)),
    AbortInfo(
        "malloc(): corrupted unsorted chunks 3", "_int_malloc",
        _UNSORTED_HEAD,
        "the first chunk of the unsorted bin points back at the bin head",
        "the bk link of the chunk at the front of the unsorted bin was overwritten (a write after free)",
        UAF, "~2.29-2.36", (MC,)),
    AbortInfo(
        "malloc(): corrupted top size", "_int_malloc (use_top)",
        "the top chunk (its size field)",
        "the top chunk's size is at most the arena's system_mem",
        "an overflow from the last allocated chunk ran into the top chunk's header (House of Force style)",
        HBO, "2.29+", (MC,)),
    AbortInfo(
        "malloc(): unaligned tcache chunk detected", "tcache_get",
        "the chunk at the head of the tcache bin (reached through the previous entry's next link)",
        "tcache entries are aligned to MALLOC_ALIGNMENT after REVEAL_PTR",
        "the safe-linked next pointer of a chunk in the tcache was overwritten (a write after free)",
        UAF, "2.32+", (MC,)),
    # -- free ------------------------------------------------------------------
    AbortInfo(
        "free(): invalid pointer", "_int_free / __libc_free",
        _FREED,
        "the pointer is 16-byte aligned and p + size does not wrap around the address space",
        "freeing a pointer malloc never returned (interior pointer, stack or global), or the chunk's size "
        "field was overwritten with a huge value",
        IF, "2.27+", (HBO, MC)),
    AbortInfo(
        "free(): invalid size", "_int_free / __libc_free",
        _FREED + " (its size field)",
        "the chunk's size is at least MINSIZE and a multiple of MALLOC_ALIGNMENT",
        "the size field in front of the block was overwritten (an underflow of this block or an overflow "
        "of the one before), or the pointer was never returned by malloc",
        IF, "2.27+", (HBO, MC)),
    AbortInfo(
        "free(): double free detected in tcache 2", "_int_free / tcache_double_free_verify",
        _FREED + " (its tcache key and its tcache bin)",
        "a chunk carrying the tcache key must not already be in its tcache bin",
        "the same pointer freed twice while the first free is still in the tcache",
        DF, "2.29+", (UAF,)),
    AbortInfo(
        "free(): too many chunks detected in tcache", "_int_free / tcache_double_free_verify",
        "the tcache bin of the chunk being freed, walked while checking for a double free",
        "a tcache bin holds at most tcache_count (7) chunks, so the walk ends",
        "a tcache next link was overwritten so the list loops (a write after free), or two threads used one "
        "tcache without synchronisation",
        UAF, "~2.33+", (MC, DF)),
    AbortInfo(
        "free(): unaligned chunk detected in tcache 2", "_int_free / tcache_double_free_verify",
        "the tcache bin of the chunk being freed, walked while checking for a double free",
        "tcache entries are aligned to MALLOC_ALIGNMENT after REVEAL_PTR",
        "the safe-linked next pointer of a chunk in that tcache bin was overwritten (a write after free)",
        UAF, "2.32+", (MC,)),
    AbortInfo(
        "free(): invalid next size (fast)", "_int_free (fastbin path)",
        _NEXT,
        "the next chunk's size is more than CHUNK_HDR_SZ and less than the arena's system_mem",
        "an overflow past the end of the freed block into the header of the chunk after it",
        HBO, "2.27-2.42", (MC,)),
    AbortInfo(
        "double free or corruption (fasttop)", "_int_free (fastbin path)",
        _FREED + " and the chunk at the top of its fastbin",
        "the chunk being freed is not already the first chunk of its fastbin",
        "the same pointer freed twice in a row (after the tcache bin was full)",
        DF, "2.27-2.42", ()),
    AbortInfo(
        "invalid fastbin entry (free)", "_int_free (fastbin path)",
        "the chunk that was at the top of the fastbin the freed chunk joined",
        "the old top of the fastbin has a size belonging to that fastbin",
        "the size field of a free fast chunk was overwritten (overflow from the chunk before it), or its fd "
        "was redirected by a write after free",
        MC, "2.27-2.42", (HBO, UAF)),
    AbortInfo(
        "double free or corruption (top)", "_int_free / _int_free_merge_chunk",
        _FREED,
        "the chunk being freed is not the top chunk",
        "freeing a block a second time after it was merged into the top chunk, or a pointer into the top chunk",
        DF, "2.27+", (IF,)),
    AbortInfo(
        "double free or corruption (out)", "_int_free / _int_free_merge_chunk",
        _FREED + " (where its size says the next chunk starts)",
        "the next chunk lies inside the arena (before the end of the top chunk)",
        "the freed chunk's size field was overwritten (an overflow from the chunk before it) so 'next' lies past "
        "the heap; also freeing a pointer that is not from this arena",
        HBO, "2.27+", (DF, IF, MC)),
    AbortInfo(
        "double free or corruption (!prev)", "_int_free / _int_free_merge_chunk",
        "the chunk after the one being freed (its PREV_INUSE bit)",
        "the chunk after an in-use chunk has PREV_INUSE set",
        "the chunk was already freed (a double free of a chunk that went to a regular bin), or an overflow "
        "clobbered the next chunk's size field",
        DF, "2.27+", (HBO, MC)),
    AbortInfo(
        "free(): invalid next size (normal)", "_int_free / _int_free_merge_chunk",
        _NEXT,
        "the next chunk's size is more than CHUNK_HDR_SZ and less than the arena's system_mem",
        "an overflow past the end of the freed block into the header of the chunk after it",
        HBO, "2.27+", (MC,)),
    AbortInfo(
        "corrupted size vs. prev_size while consolidating", "_int_free / _int_free_merge_chunk (backward merge)",
        "the free chunk before the one being freed (found through the freed chunk's prev_size)",
        "the previous chunk's size equals the freed chunk's prev_size",
        "an off-by-one (often a NUL) overflow from the previous block cleared the freed chunk's PREV_INUSE bit, "
        "or its prev_size was overwritten",
        HBO, "2.29+", (MC,)),
    AbortInfo(
        "free(): corrupted unsorted chunks", "_int_free / _int_free_create_chunk",
        _UNSORTED_HEAD,
        "the first chunk of the unsorted bin points back at the bin head (fwd->bk == bck)",
        "the bk link of the chunk at the front of the unsorted bin was overwritten (a write after free)",
        UAF, "2.27+", (MC,)),
    AbortInfo(
        "free(): chunks in smallbin corrupted", "_int_free_create_chunk",
        "the first chunk of the small bin the freed chunk joins",
        "the first chunk of the small bin points back at the bin head",
        "the bk link of a free small chunk was overwritten (a write after free)",
        UAF, "2.41+", (MC,)),
    # -- malloc_consolidate ------------------------------------------------------
    AbortInfo(
        "malloc_consolidate(): invalid chunk size", "malloc_consolidate",
        "a chunk taken from a fastbin while consolidating",
        "each fastbin chunk's size maps to the fastbin it sits in",
        "the size field of a free fast chunk was overwritten (overflow from the chunk before it), or its fd "
        "was redirected by a write after free",
        MC, "2.27-2.42", (HBO, UAF)),
    AbortInfo(
        "malloc_consolidate(): unaligned fastbin chunk detected", "malloc_consolidate",
        "a chunk reached through a fastbin's fd links while consolidating",
        "fastbin entries are aligned to MALLOC_ALIGNMENT",
        "the safe-linked fd of a freed fast chunk was overwritten (a write after free)",
        UAF, "2.32-2.42", (MC,)),
    AbortInfo(
        "corrupted size vs. prev_size in fastbins", "malloc_consolidate (backward merge)",
        "the free chunk before a fastbin chunk being consolidated",
        "the previous chunk's size equals the fastbin chunk's prev_size",
        "an off-by-one overflow cleared PREV_INUSE of a fast chunk, or its prev_size was overwritten",
        HBO, "2.29-2.42", (MC,)),
    # -- mmapped chunks, realloc -------------------------------------------------
    AbortInfo(
        "munmap_chunk(): invalid pointer", "munmap_chunk",
        _FREED + " (treated as mmapped because IS_MMAPPED is set in its size)",
        "an mmapped chunk and its prev_size+size span are page aligned",
        "freeing a pointer malloc never returned, or an overflow set the IS_MMAPPED bit (0x2) in the size "
        "field in front of the block (text bytes such as 'B' = 0x42 do)",
        IF, "2.27+", (HBO, MC)),
    AbortInfo(
        "mremap_chunk(): invalid pointer", "mremap_chunk (realloc of an mmapped chunk)",
        "the chunk being reallocated (treated as mmapped)",
        "an mmapped chunk and its prev_size+size span are page aligned",
        "realloc of a pointer malloc never returned, or an overflow set IS_MMAPPED in its size field",
        IF, "~2.30+", (HBO, MC)),
    AbortInfo(
        "realloc(): invalid pointer", "__libc_realloc",
        "the chunk being reallocated",
        "the pointer is aligned and p + size does not wrap around the address space",
        "realloc of a pointer malloc never returned, or its size field was overwritten",
        IF, "2.27+", (HBO, MC)),
    AbortInfo(
        "realloc(): invalid old size", "_int_realloc",
        "the chunk being reallocated (its size field)",
        "the old chunk's size is more than CHUNK_HDR_SZ and less than the arena's system_mem",
        "the size field in front of the block was overwritten (overflow from the block before it)",
        MC, "2.27+", (HBO, IF)),
    AbortInfo(
        "realloc(): invalid next size", "_int_realloc",
        "the chunk after the one being reallocated (its size field)",
        "the next chunk's size is more than CHUNK_HDR_SZ and less than the arena's system_mem",
        "an overflow past the end of the block into the header of the chunk after it",
        HBO, "2.27+", (MC,)),
    # -- walks and shutdown ---------------------------------------------------------
    AbortInfo(
        "max tcache size too large", "tcache_init",
        "no chunk: the build's MAX_TCACHE_SMALL_SIZE against the page size",
        "the largest small tcache size is below half a page, so mmapped chunks never enter the tcache",
        "a glibc built for a page size smaller than its tcache limits (a build or port problem, "
        "not heap corruption)",
        MC, "2.42", ()),
    AbortInfo(
        "tcache_thread_shutdown(): unaligned tcache chunk detected", "tcache_thread_shutdown",
        "a chunk reached through a tcache bin while a thread exits",
        "tcache entries are aligned to MALLOC_ALIGNMENT after REVEAL_PTR",
        "the safe-linked next pointer of a chunk in the exiting thread's tcache was overwritten (a write after free)",
        UAF, "2.32+", (MC,)),
    AbortInfo(
        "int_mallinfo(): unaligned fastbin chunk detected", "int_mallinfo (mallinfo)",
        "a chunk reached through a fastbin while counting",
        "fastbin entries are aligned to MALLOC_ALIGNMENT",
        "the safe-linked fd of a freed fast chunk was overwritten (a write after free)",
        UAF, "2.32-2.42", (MC,)),
    AbortInfo(
        "__malloc_info(): unaligned fastbin chunk detected", "__malloc_info (malloc_info)",
        "a chunk reached through a fastbin while reporting",
        "fastbin entries are aligned to MALLOC_ALIGNMENT",
        "the safe-linked fd of a freed fast chunk was overwritten (a write after free)",
        UAF, "2.32-2.42", (MC,)),
    AbortInfo(
        "break adjusted to free malloc space", "sysmalloc",
        "the main arena's top chunk while extending the heap with sbrk",
        "nothing else moves the program break while malloc owns it",
        "foreign sbrk() calls (another allocator, or code shrinking the break) rather than a heap write",
        MC, "2.27+", ()),
    # -- MALLOC_CHECK_ (hooks.c up to 2.33, libc_malloc_debug.so since 2.34) --------
    AbortInfo(
        "malloc_check_get_size: memory corruption", "malloc_check_get_size (MALLOC_CHECK_)",
        "the block being freed or measured (the magic byte after its end)",
        "the check byte MALLOC_CHECK_ stores just past the requested size is intact",
        "an overflow of the block by one or more bytes (MALLOC_CHECK_ catches overflows into malloc's slack)",
        HBO, "2.27+ (MALLOC_CHECK_ only)", (MC,), "MALLOC_CHECK_"),
    AbortInfo(
        "malloc: top chunk is corrupt", "top_check (MALLOC_CHECK_)",
        "the top chunk (its size field)",
        "the top chunk's size is sane and it ends where the heap ends",
        "an overflow from the last allocated block into the top chunk's header",
        HBO, "2.27+ (MALLOC_CHECK_ only)", (MC,), "MALLOC_CHECK_"),
    # -- mcheck (mabort) -------------------------------------------------------------
    AbortInfo(
        "memory clobbered before allocated block", "mcheck (checkhdr)",
        "the mcheck header in front of the block (its magic word)",
        "the header magic in front of a live block is MAGICWORD",
        "an underflow of the block (a write before its start) or an overflow of the block before it",
        HBO, "all (mcheck only)", (MC,), "mcheck"),
    AbortInfo(
        "memory clobbered past end of allocated block", "mcheck (checkhdr)",
        "the byte after the block (MAGICBYTE 0xd7)",
        "the byte just past the requested size is MAGICBYTE",
        "an overflow of the block by at least one byte",
        HBO, "all (mcheck only)", (), "mcheck"),
    AbortInfo(
        "block freed twice", "mcheck (checkhdr)",
        _FREED + " (its mcheck header)",
        "a block being freed has the live magic, not MAGICFREE",
        "the same pointer freed twice",
        DF, "all (mcheck only)", (), "mcheck"),
    AbortInfo(
        "bogus mcheck_status, library is buggy", "mcheck (mabort)",
        "the mcheck header of the block",
        "checkhdr returns a known status",
        "the header was overwritten with a value mcheck does not know",
        MC, "all (mcheck only)", (HBO,), "mcheck"),
)  # fmt: skip

#: Message -> explanation.
ABORTS: Dict[str, AbortInfo] = {info.message: info for info in _TABLE}

_BY_LENGTH = sorted(ABORTS, key=len, reverse=True)

#: ``prog: malloc.c:2617: sysmalloc: Assertion `...' failed.`` (up to 2.36) and
#: ``Fatal glibc error: malloc.c:4376 (_int_malloc): assertion failed: ...`` (2.37+).
#: The file:line part may be missing (a message quoted without it).
_ASSERT_OLD = re.compile(r"(?:^|: )(?:(?P<file>[\w./-]+\.c):(?P<line>\d+): )?(?P<func>[\w.]+): Assertion `(?P<expr>.*)' failed")
_ASSERT_NEW = re.compile(r"Fatal glibc error: (?P<file>[\w./-]+\.c):(?P<line>\d+) \((?P<func>[\w.]+)\): assertion failed: (?P<expr>.*)")

#: malloc's functions with assertions, for messages that do not name malloc.c or arena.c.
_MALLOC_FUNCS = frozenset((
    "sysmalloc", "_int_malloc", "_int_free", "_int_free_merge_chunk", "_int_free_create_chunk", "_int_realloc",
    "_int_memalign", "malloc_consolidate", "__libc_malloc", "__libc_realloc", "__libc_calloc", "__libc_memalign",
    "_mid_memalign", "tcache_get", "tcache_put", "munmap_chunk", "mremap_chunk", "heap_trim", "new_heap",
    "systrim", "mtrim", "arena_get2", "get_free_list", "remove_from_free_list", "reused_arena",
))  # fmt: skip


def _assertion(message: str) -> Optional[AbortInfo]:
    m = _ASSERT_OLD.search(message) or _ASSERT_NEW.search(message)
    if m is None:
        return None
    func, expr, where = m.group("func"), m.group("expr").strip(), m.group("file") or ""
    if func not in _MALLOC_FUNCS and not re.search(r"(?:^|/)(?:malloc|arena|hooks|malloc-check)\.c$", where):
        return None
    alts: Tuple[str, ...]
    if func == "sysmalloc":
        chunk = "the old top chunk while extending the heap"
        cause = ("an overflow from the last allocated block into the top chunk's header (its size, "
                 "PREV_INUSE bit or alignment no longer agree with the heap end)")
        kind, alts = HBO, (MC,)
    else:
        chunk = f"a chunk {func} was working on"
        cause = "malloc's internal state is inconsistent: heap metadata was overwritten"
        kind, alts = MC, (HBO, UAF)
    return AbortInfo(message, f"{func} (assert)", chunk, f"the assertion holds: {expr}", cause, kind,
                     "any", alts, "assert")


def explain_abort(message: Optional[str]) -> Optional[AbortInfo]:
    """The :class:`AbortInfo` for a glibc abort message, or None.

    The message is matched exactly after stripping the trailing newline (and
    surrounding blanks); then as a prefix: the longest known message the
    text starts with (glibc text followed by more), or the one known message
    a truncated text (10 characters or more) is the start of; then as a malloc
    assertion failure (``sysmalloc: Assertion ... failed``).

    :param message: the text (from :func:`read_abort_message` or a log).
    """
    if not message:
        return None
    text = message.strip()
    if text.startswith("*** ") and text.endswith(" ***"):  # pre-2.26 style, harmless to accept
        text = text[4:-4].strip()
    info = ABORTS.get(text)
    if info is not None:
        return info
    for known in _BY_LENGTH:
        if text.startswith(known):
            return ABORTS[known]
    if len(text) >= 10:
        starts = [known for known in _BY_LENGTH if known.startswith(text)]
        if len(starts) == 1:
            return ABORTS[starts[0]]
    return _assertion(text)


def read_perturb_byte(mem: MemorySource) -> Optional[int]:
    """glibc's ``perturb_byte`` (``MALLOC_PERTURB_`` / ``mallopt(M_PERTURB)``), when its symbol is known and set.

    It is a static ``int`` of malloc.c, not a field of ``mp_``; static
    binaries keep its symbol.  Returns None when it is unknown or 0 (off).
    """
    where = mem.symbol("perturb_byte")
    if where is None:
        return None
    try:
        value = mem.read_uint(where, 4)
    except MemoryReadError:
        return None
    return value if 0 < value <= 0xFF else None


def read_abort_message(mem: MemorySource, limit: int = MAX_ABORT_MESSAGE) -> Optional[str]:
    """glibc's ``__abort_msg->msg`` from a memory source, without its trailing newline.

    :param mem: a memory source with symbols (a :class:`~gdbext.corefile.CoreFile`).
    :param limit: the most bytes read from the message.
    :returns: the text (undecodable bytes replaced), or None when the symbol is
        unknown, the pointer is NULL or unreadable, or the message is empty.
    """
    where = mem.symbol("__abort_msg")
    if where is None:
        return None
    try:
        ptr = mem.read_pointer(where)
        if ptr == 0:
            return None
        size = mem.read_uint(ptr, 4)  # the size of the whole mmap'd struct, not of the text
    except MemoryReadError:
        return None
    bound = limit
    if 4 < size <= (1 << 20):
        bound = min(limit, size - 4)
    raw = mem.read_cstring(ptr + 4, bound)
    if not raw:
        return None
    text = raw.decode("utf-8", "replace")
    return text[:-1] if text.endswith("\n") else text
