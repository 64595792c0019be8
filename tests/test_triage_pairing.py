"""Pairing cores with binaries (no gdb): naming rule, build-ids read from the cores, ELF cores by type."""
import lzma
import os
import shutil

import pytest
from elftools.elf.elffile import ELFFile

from conftest import CORES
from gdbext.errors import CoreFileError
from gdbext.gdbrun import plain_core
from gdbext.triage.pairing import (CoreFacts, check_binary, check_match, choose_binary, elf_type, inspect_core,
                                   name_for_core, scan_directory)


@pytest.mark.parametrize("filename, name", [
    ("prog.core", "prog"), ("prog.core.xz", "prog"), ("core.prog", "prog"), ("core.prog.xz", "prog"),
    ("dir/my.prog.core", "my.prog"), ("core.1234", "1234"), ("prog", None), ("prog.corefile", None),
    ("README.md", None), ("core", None),
])
def test_naming_rule(filename, name):
    assert name_for_core(filename) == name


def unxz(src, dst):
    with lzma.open(src) as fin, open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout)


@pytest.fixture
def folder(tmp_path):
    """pool_overflow under another name, a sensor core named core.sensor, an ELF core named dump.bin, noise."""
    shutil.copy(os.path.join(CORES, "pool_overflow"), tmp_path / "server")
    shutil.copy(os.path.join(CORES, "pool_overflow.core.xz"), tmp_path / "crash-17.core.xz")
    shutil.copy(os.path.join(CORES, "sensor"), tmp_path / "sensor")
    unxz(os.path.join(CORES, "sensor.core.xz"), tmp_path / "core.sensor")
    unxz(os.path.join(CORES, "double_free.core.xz"), tmp_path / "dump.bin")
    shutil.copy(os.path.join(CORES, "double_free"), tmp_path / "double_free")
    (tmp_path / "notes.txt").write_text("not a core")
    shutil.copy(os.path.join(CORES, "sensor.truth"), tmp_path / "sensor.truth")
    return tmp_path


def facts_of(path):
    with plain_core(str(path)) as plain:
        return inspect_core(plain, str(path))


def test_scan_finds_cores_by_name_and_by_elf_type(folder):
    scan = scan_directory(str(folder))
    assert sorted(os.path.basename(c) for c in scan.cores) == ["core.sensor", "crash-17.core.xz", "dump.bin"]
    assert sorted(os.path.basename(p) for p in scan.programs) == ["double_free", "sensor", "server"]
    assert elf_type(str(folder / "dump.bin")) == "ET_CORE" and elf_type(str(folder / "notes.txt")) is None


def test_cores_pair_by_the_build_id_in_their_memory(folder):
    scan = scan_directory(str(folder))
    for core, binary in [("crash-17.core.xz", "server"), ("core.sensor", "sensor"), ("dump.bin", "double_free")]:
        facts = facts_of(folder / core)
        path, how = choose_binary(str(folder / core), facts, scan)
        assert (os.path.basename(path), how) == (binary, "build-id")
        check_match(core, facts, path, check_binary(path))


def test_name_and_recorded_name_rules_when_the_core_has_no_build_id(folder):
    scan = scan_directory(str(folder))
    no_id = CoreFacts(None, "/tmp/gdbext-fx.X/double_free", 1)
    assert choose_binary(str(folder / "sensor.core"), no_id, scan) == (str(folder / "sensor"), "name")
    assert choose_binary(str(folder / "other.core"), no_id, scan) == (str(folder / "double_free"), "recorded name")
    with pytest.raises(CoreFileError, match="no program in"):
        choose_binary(str(folder / "other.core"), CoreFacts("ab" * 20, "/x/none", 1), scan)


def test_a_binary_of_the_same_name_but_another_build_is_refused(folder):
    facts = facts_of(folder / "core.sensor")
    with pytest.raises(CoreFileError, match=r"is a core of another program \(sensor\)"):
        check_match("core.sensor", facts, str(folder / "server"), check_binary(str(folder / "server")))


def test_inspect_core_refuses_cut_and_threadless_cores(tmp_path):
    unxz(os.path.join(CORES, "sensor.core.xz"), tmp_path / "a.core")
    data = (tmp_path / "a.core").read_bytes()
    with open(tmp_path / "a.core", "rb") as fh:
        end = max(s["p_offset"] + s["p_filesz"] for s in ELFFile(fh).iter_segments() if s["p_type"] == "PT_LOAD")
    (tmp_path / "b.core").write_bytes(data[:end - 1])  # one byte of the last segment missing
    with pytest.raises(CoreFileError, match=r"b.core: .*truncated"):
        inspect_core(str(tmp_path / "b.core"))
    assert inspect_core(str(tmp_path / "a.core"), "label").threads == 1
