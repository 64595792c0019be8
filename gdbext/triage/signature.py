# gdbext/triage/signature.py - crash signatures for bucketing cores: frame
# names normalized and allocator/abort/libc frames skipped (the way Socorro and
# apport do it), joined with the finding class.
"""Stable crash signatures.

The same bug must give the same signature in every build of the same code,
so nothing that changes with a rebuild may enter it: no addresses, no
offsets, no argument values, no compiler clone suffixes.  The recipe
(research note §8, Socorro's ``signature/rules.py`` and apport's
``crash_signature``):

1. normalize each frame's function name (:func:`normalize_function`):
   C++ argument lists, return types, cv/ref qualifiers and template
   arguments dropped (``<...>`` becomes ``<T>``), `` `anonymous namespace' ``
   spelled ``(anonymous namespace)``, lambdas ``{lambda}``, gcc's
   ``.constprop.0`` / ``.isra.0`` / ``.part.0`` / ``.cold`` / ``[clone ...]``
   suffixes and Rust ``::h<hash>`` removed, CPU-specific string function
   variants (``__memmove_avx_unaligned_erms``) named by their API
   (``memmove``); a frame without a name is ``file#line``, else ``??``;
2. drop the frames at the top that only deliver the crash: signal delivery,
   ``abort``/``raise``/``__pthread_kill*``, glibc's ``__libc_message`` /
   ``malloc_printerr`` / ``__fortify_fail``, assertion helpers, the
   allocator itself (``malloc``, ``free``, ``_int_free``, ``tcache_*``,
   ``operator new``...), C++ terminate handlers (:data:`SKIP_TOP`);
3. drop process and thread start-up frames anywhere (``_start``,
   ``__libc_start_main*``, ``start_thread``, ``clone``: :data:`SKIP_ANYWHERE`);
4. keep the first :data:`SIGNATURE_FRAMES` remaining names and prefix the
   finding class: the first finding's kind, else the signal name;
5. prefix the program's name (the executable's file name,
   :func:`program_name`), so unrelated programs that crash the same way in
   ``main`` are not one bucket::

       pool_overflow: heap-buffer-overflow | pool_alloc | make_log_entry | log_event
"""
from __future__ import annotations

import re
from typing import List, Optional, Pattern, Sequence, Tuple

from .report import Frame

__all__ = [
    "SKIP_TOP",
    "SKIP_ANYWHERE",
    "SIGNATURE_FRAMES",
    "MAX_FRAMES_CONSIDERED",
    "normalize_function",
    "frame_name",
    "is_skipped_top",
    "is_startup",
    "significant_frames",
    "program_name",
    "crash_signature",
]

#: Frames kept in a signature.
SIGNATURE_FRAMES = 3
#: Frames looked at (Socorro looks at 40).
MAX_FRAMES_CONSIDERED = 40
#: The longest signature (Socorro's limit).
MAX_SIGNATURE = 255

#: Full-match patterns of frames skipped at the top of the stack.
SKIP_TOP: Tuple[str, ...] = (
    # signal delivery and abort
    r"<signal handler called>", r"__restore_rt", r"__kernel_vsyscall", r"raise", r"gsignal", r"abort",
    r"__pthread_kill\w*", r"pthread_kill\w*", r"__GI_\w*", r"__libc_message\w*", r"__libc_fatal",
    r"__fortify_fail\w*", r"__chk_fail", r"__stack_chk_fail\w*", r"__assert_fail\w*", r"__assert_perror_fail",
    r"__assert", r"__libc_assert_fail",
    # glibc malloc
    r"malloc_printerr", r"_int_free\w*", r"_int_malloc", r"_int_realloc", r"_int_memalign", r"sysmalloc",
    r"malloc_consolidate", r"unlink_chunk", r"tcache_\w+", r"__malloc_\w+", r"__libc_(malloc|free|calloc|realloc|"
    r"memalign|valloc|pvalloc)", r"malloc", r"free", r"cfree", r"calloc", r"realloc", r"reallocarray",
    r"memalign", r"posix_memalign", r"aligned_alloc", r"valloc", r"pvalloc", r"malloc_check", r"free_check",
    r"mem2chunk_check", r"_mid_memalign", r"__GI___libc_\w+",
    # C++ runtime
    r"operator new(\[\])?", r"operator delete(\[\])?", r"std::terminate", r"__cxxabiv1::\S+",
    r"__gnu_cxx::__verbose_terminate_handler", r"__cxa_throw", r"__cxa_pure_virtual",
    r"__cxa_call_unexpected", r"std::__terminate",
)

#: Full-match patterns of start-up frames dropped wherever they are.
SKIP_ANYWHERE: Tuple[str, ...] = (
    r"_start", r"__libc_start_main\w*", r"__libc_start_call_main", r"start_thread", r"clone3?", r"__clone\w*",
    r"__GI___clone\w*", r"_dl_start_user", r"_dl_start",
)

_SKIP_TOP_RE: Pattern[str] = re.compile("|".join(f"(?:{p})" for p in SKIP_TOP))
_SKIP_ANYWHERE_RE: Pattern[str] = re.compile("|".join(f"(?:{p})" for p in SKIP_ANYWHERE))

_GCC_SUFFIX = re.compile(r"(?:\.(?:constprop|isra|part|cold|lto_priv|localalias|clone)(?:\.\d+)*)+$")
_CLONE = re.compile(r"\s*\[clone [^\]]*\]")
_RUST_HASH = re.compile(r"::h[0-9a-f]{16}$")
_LAMBDA = re.compile(r"\{lambda\([^{}]*\)#\d+\}")
_ANON_NS = re.compile(r"`anonymous namespace'")
_STRING_VARIANT = re.compile(
    r"^__(mem\w*?|str\w*?|stp\w*?|wmem\w*?|wcs\w*?|raw\w*?)_(?:avx\w*|sse\w*|evex\w*|erms\w*|unaligned\w*|ssse3\w*|"
    r"generic|ifunc|aligned\w*)$"
)
_PROGRAM_UNSAFE = re.compile(r"[^A-Za-z0-9._+@-]")
#: The longest program name kept (a core's NT_PRPSINFO keeps 16 bytes; paths can be anything).
MAX_PROGRAM = 64
_QUALIFIERS = re.compile(r"(?:\s*(?:const|volatile|&&|&|noexcept|override|final))+\s*$")
_OPERATORS = (
    "operator<<=", "operator>>=", "operator<=>", "operator<<", "operator>>", "operator<=", "operator>=",
    "operator->*", "operator->", "operator<", "operator>", "operator()", "operator[]",
)


def _protect_operators(name: str) -> Tuple[str, List[str]]:
    """Replace operator tokens that contain brackets by placeholders."""
    saved: List[str] = []
    for op in _OPERATORS:
        while op in name:
            name = name.replace(op, f"\x00{len(saved)}\x00", 1)
            saved.append(op)
    return name, saved


def _restore_operators(name: str, saved: Sequence[str]) -> str:
    for i, op in enumerate(saved):
        name = name.replace(f"\x00{i}\x00", op)
    return name


def _collapse_templates(name: str) -> str:
    """Every top-level ``<...>`` (nested ones included) becomes ``<T>``."""
    out: List[str] = []
    depth = 0
    for ch in name:
        if ch == "<":
            if depth == 0:
                out.append("<T>")
            depth += 1
        elif ch == ">" and depth > 0:
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def _strip_arguments(name: str) -> str:
    """Drop a trailing ``(args)`` list (and qualifiers after it), but not ``(anonymous namespace)``."""
    name = _QUALIFIERS.sub("", name)
    if not name.endswith(")"):
        return name
    depth = 0
    for i in range(len(name) - 1, -1, -1):
        ch = name[i]
        if ch == ")":
            depth += 1
        elif ch == "(":
            depth -= 1
            if depth == 0:
                if name[i:] == "(anonymous namespace)" or i == 0:
                    return name
                return name[:i].rstrip()
    return name


def _strip_return_type(name: str) -> str:
    """``int ns::f`` -> ``ns::f``: keep what follows the last top-level space."""
    depth = 0
    cut = -1
    for i, ch in enumerate(name):
        if ch in "(<":
            depth += 1
        elif ch in ")>" and depth > 0:
            depth -= 1
        elif ch == " " and depth == 0:
            cut = i
    if cut < 0:
        return name
    tail = name[cut + 1 :]
    # "operator new", "operator delete[]", conversion operators keep their word
    head = name[:cut]
    if head.endswith("operator") or head.split("::")[-1] == "operator":
        words = head.rsplit(" ", 1)
        return (words[-1] + " " + tail) if len(words) > 1 else name
    return tail


def normalize_function(name: Optional[str]) -> Optional[str]:
    """A function name with everything build-dependent removed; None when there is no name.

    >>> normalize_function("std::vector<int, std::allocator<int> >::push_back(int const&) const")
    'std::vector<T>::push_back'
    >>> normalize_function("__pthread_kill_implementation.constprop.0")
    '__pthread_kill_implementation'
    """
    if not name:
        return None
    text = " ".join(name.split())
    if not text or text == "??":
        return None
    if text.startswith("<") and text.endswith(">"):  # <signal handler called>
        return text
    text = _ANON_NS.sub("(anonymous namespace)", text)
    text = _CLONE.sub("", text)
    text = _LAMBDA.sub("{lambda}", text)
    text, saved = _protect_operators(text)
    text = _strip_arguments(text)
    text = _collapse_templates(text)
    text = _strip_return_type(text)
    text = _restore_operators(text, saved)
    text = _GCC_SUFFIX.sub("", text)
    text = _RUST_HASH.sub("", text)
    m = _STRING_VARIANT.match(text)
    if m:
        text = m.group(1)
    return text.strip() or None


def frame_name(frame: Frame) -> str:
    """The normalized name a frame contributes to a signature: function, ``file#line`` or ``??``."""
    name = normalize_function(frame.function)
    if name:
        return name
    if frame.file and frame.line:
        return f"{frame.file.rsplit('/', 1)[-1]}#{frame.line}"
    return "??"


def is_skipped_top(name: str) -> bool:
    """True for a frame that only delivers the crash (skipped at the top of the stack)."""
    return _SKIP_TOP_RE.fullmatch(name) is not None


def is_startup(name: str) -> bool:
    """True for a process or thread start-up frame."""
    return _SKIP_ANYWHERE_RE.fullmatch(name) is not None


def significant_frames(frames: Sequence[Frame]) -> List[Tuple[int, str]]:
    """``(index, normalized name)`` of the frames a signature may use, innermost first."""
    out: List[Tuple[int, str]] = []
    at_top = True
    for i, frame in enumerate(frames[:MAX_FRAMES_CONSIDERED]):
        name = frame_name(frame)
        if is_startup(name):
            continue
        if at_top and (is_skipped_top(name) or (name == "??" and not frame.file)):
            continue
        at_top = False
        out.append((i, name))
    return out


def program_name(binary: Optional[str]) -> Optional[str]:
    """The program part of a signature: the executable's file name, without its directory.

    Anything but letters, digits and ``._+@-`` becomes ``_`` (the name comes from a
    file name, which may hold anything); None when there is no name.

    >>> program_name("/opt/build-17/bin/pool_overflow")
    'pool_overflow'
    """
    if not binary:
        return None
    base = binary.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    base = _PROGRAM_UNSAFE.sub("_", base)[:MAX_PROGRAM]
    return base or None


def crash_signature(
    frames: Sequence[Frame], crash_class: str, depth: int = SIGNATURE_FRAMES, program: Optional[str] = None
) -> str:
    """``PROGRAM: CLASS | f1 | f2 | f3``: the program, the class and the first significant frame names.

    :param frames: the crashing thread's frames, innermost first.
    :param crash_class: the first finding's kind, or the signal name.
    :param depth: how many frames to keep.
    :param program: the program's name (:func:`program_name`); None leaves out ``PROGRAM: ``.
    """
    names = [name for _, name in significant_frames(frames)[:depth]]
    if not names:  # only delivery frames: use them rather than nothing
        names = [frame_name(f) for f in frames[:depth] if not is_startup(frame_name(f))]
    text = " | ".join([crash_class or "crash"] + names)
    if program:
        text = f"{program}: {text}"
    return text if len(text) <= MAX_SIGNATURE else text[: MAX_SIGNATURE - 3] + "..."
