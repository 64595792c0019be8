"""Crash signatures (no gdb): frame-name normalisation, skipped frames, stability across rebuilds."""
import pytest

from gdbext.triage.report import Frame
from gdbext.triage.signature import (crash_signature, frame_name, is_skipped_top, normalize_function,
                                     significant_frames)


@pytest.mark.parametrize("raw, want", [
    ("pool_alloc", "pool_alloc"),
    ("  pool_alloc  ", "pool_alloc"),
    ("__pthread_kill_implementation.constprop.0", "__pthread_kill_implementation"),
    ("parse_header.isra.0.cold", "parse_header"),
    ("foo(int, char const*)", "foo"),
    ("ns::Conn::send(std::vector<char, std::allocator<char> > const&) const", "ns::Conn::send"),
    ("std::vector<int, std::allocator<int> >::push_back(int const&)", "std::vector<T>::push_back"),
    ("void std::__sort<int*, __gnu_cxx::__ops::_Iter_less_iter>(int*, int*)", "std::__sort<T>"),
    ("(anonymous namespace)::helper(int)", "(anonymous namespace)::helper"),
    ("`anonymous namespace'::helper", "(anonymous namespace)::helper"),
    ("Foo::operator<<(int)", "Foo::operator<<"),
    ("Foo::operator()(int) const", "Foo::operator()"),
    ("Foo::operator<(Foo const&) const", "Foo::operator<"),
    ("operator new(unsigned long)", "operator new"),
    ("main::{lambda(int)#3}::operator()(int) const", "main::{lambda}::operator()"),
    ("worker(void*) [clone .cold.12]", "worker"),
    ("mycrate::run::h0123456789abcdef", "mycrate::run"),
    ("__memmove_avx_unaligned_erms", "memmove"),
    ("__strcpy_avx2", "strcpy"),
    ("<signal handler called>", "<signal handler called>"),
    (None, None),
    ("", None),
    ("??", None),
])
def test_normalize_function(raw, want):
    assert normalize_function(raw) == want


def test_frame_without_function_uses_file_and_line_never_an_address():
    assert frame_name(Frame(None, "src/a.c", 12, 0x401000)) == "a.c#12"
    assert frame_name(Frame(None, None, None, 0x401000, "libfoo.so")) == "??"


@pytest.mark.parametrize("name", ["raise", "abort", "__pthread_kill_implementation", "__libc_message",
                                  "malloc_printerr", "_int_free", "_int_free_merge_chunk", "free", "malloc",
                                  "__GI_raise", "tcache_get", "__assert_fail", "operator delete",
                                  "__fortify_fail", "__stack_chk_fail"])
def test_delivery_and_allocator_frames_are_skipped(name):
    assert is_skipped_top(name)


@pytest.mark.parametrize("name", ["pool_alloc", "pool_free", "free_list_push", "my_malloc_wrapper", "main"])
def test_program_frames_are_kept(name):
    assert not is_skipped_top(name)


GLIBC_ABORT = ["__pthread_kill_implementation.constprop.0", "raise", "abort", "__libc_message", "malloc_printerr",
               "_int_free", "free"]


def frames(names, base=0x401000, file="prog.c"):
    out = []
    for i, n in enumerate(names):
        own = not n.startswith("_") and n not in ("raise", "abort", "free", "malloc", "malloc_printerr")
        out.append(Frame(n, file if own else None, 10 + i if own else None, base + 0x40 * i))
    return out


def test_signature_skips_abort_and_allocator_frames():
    fr = frames(GLIBC_ABORT + ["cleanup_connection", "main"])
    assert crash_signature(fr, "double-free") == "double-free | cleanup_connection | main"
    assert significant_frames(fr)[0] == (7, "cleanup_connection")


def test_signature_drops_startup_frames_anywhere():
    fr = frames(["crash_in_driver", "process_frame", "main", "__libc_start_call_main", "__libc_start_main_impl",
                 "_start"])
    assert crash_signature(fr, "SIGSEGV") == "SIGSEGV | crash_in_driver | process_frame | main"
    fr = frames(["futex_wait", "worker", "start_thread", "clone3"])
    assert crash_signature(fr, "SIGABRT", depth=5) == "SIGABRT | futex_wait | worker"


def test_signature_is_the_same_when_every_address_moves():
    names = GLIBC_ABORT + ["flush_log", "main"]
    a = crash_signature(frames(names, 0x401000), "heap-buffer-overflow")
    b = crash_signature(frames(names, 0x7F0000123000), "heap-buffer-overflow")
    assert a == b == "heap-buffer-overflow | flush_log | main"
    # compiler clone suffixes and argument lists that differ between builds do not matter either
    c = crash_signature([Frame("flush_log.constprop.0(char*)", "x.c", 1, 5), Frame("main", "x.c", 2, 9)],
                        "heap-buffer-overflow")
    assert c == a


def test_signature_class_and_depth():
    fr = frames(["a", "b", "c", "d", "e"])
    assert crash_signature(fr, "use-after-free") == "use-after-free | a | b | c"
    assert crash_signature([], "SIGSEGV") == "SIGSEGV"
    assert crash_signature([], "") == "crash"


def test_only_delivery_frames_still_give_names():
    assert crash_signature(frames(["raise", "abort"]), "SIGABRT") == "SIGABRT | raise | abort"
