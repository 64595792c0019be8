"""What the commands share about declared pools: walking them by default, and validating specs with gdb.

Every heap command covers every declared pool unless told otherwise
(``--pool NAME`` narrows).  A spec is validated when it is loaded: against
the program's DWARF through gdb, and against memory when there is a process
or core (before ``run`` the pool's memory holds only its initial values).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import gdb  # type: ignore[import-not-found]

from gdbext.errors import GdbextError, SpecError
from gdbext.gdbmem import GdbEvaluator, GdbInferiorSource, core_file_path
from gdbext.pools import FixedSlots, PoolReport, PoolSpec, Validation, resolve, validate, walk_pool
from gdbext.specs import REGISTRY, load_file

__all__ = ["walk_pools", "has_target", "validate_spec", "load_validated", "slot_type_size"]


def has_target() -> bool:
    """A process or a core is there (memory holds the program's state, not the file's initial values)."""
    return gdb.selected_inferior().pid != 0 or core_file_path() is not None


def slot_type_size(spec: PoolSpec) -> Optional[int]:
    """For fixed slots given as an expression: the size of what ``geometry.first`` points to (or holds)."""
    geo = spec.geometry
    if not isinstance(geo, FixedSlots) or not isinstance(geo.first, str):
        return None
    try:
        gtype = gdb.parse_and_eval(geo.first).type.strip_typedefs()
    except gdb.error:
        return None
    if gtype.code in (gdb.TYPE_CODE_PTR, gdb.TYPE_CODE_ARRAY):
        target = gtype.target().strip_typedefs()
        if target.code not in (gdb.TYPE_CODE_VOID, gdb.TYPE_CODE_INT) or target.sizeof > 1:
            return target.sizeof
    return None


def validate_spec(spec: PoolSpec, mem: Optional[GdbInferiorSource] = None) -> Validation:
    """The spec checked with gdb: DWARF always, memory when ``mem`` is given."""
    return validate(spec, GdbEvaluator(), mem, slot_type_size(spec))


def load_validated(path: str) -> Tuple[List[str], List[str]]:
    """Load a spec file and validate the pools it declares; (pools kept, problem lines).

    A pool with a certain problem is not kept: the commands would only mislead with it.
    What corruption could explain too is written as a warning, and the pool kept.
    """
    before = dict(REGISTRY.pools)
    load_file(path)
    mem = GdbInferiorSource(require_target=False) if has_target() else None
    kept: List[str] = []
    problems: List[str] = []
    for name, spec in list(REGISTRY.pools.items()):
        if before.get(name) is spec:
            continue
        if not _in_this_program(spec):
            print(f"gdbext: pool {name}: its root {spec.root!r} is not in this program; not checked")
            kept.append(name)
            continue
        result = validate_spec(spec, mem)
        for p in result.warnings:
            gdb.write(f"warning: {path}: {p.text()}\n", gdb.STDERR)
        if result.errors:
            problems += [p.text() for p in result.errors]
            REGISTRY.remove_pool(name)
            if name in before:
                REGISTRY.add_pool(before[name])
        else:
            kept.append(name)
    return kept, problems


def _in_this_program(spec: PoolSpec) -> bool:
    """A spec file may serve several programs: a pool whose root names nothing here belongs to another."""
    if not isinstance(spec.root, str):
        return True
    try:
        gdb.parse_and_eval(spec.root)
        return True
    except gdb.error:
        return False


def walk_pools(mem: GdbInferiorSource, requested: Sequence[str] = (),
               notes: Optional[List[str]] = None) -> List[PoolReport]:
    """Walk the pools asked for (each must exist and resolve), or every declared pool.

    With nothing asked for, a pool that cannot be resolved here becomes a note (or is
    skipped) instead of failing the whole command.
    """
    for name in requested:
        REGISTRY.pool(name)
    out = []
    for name in requested or sorted(REGISTRY.pools):
        try:
            out.append(walk_pool(mem, resolve(REGISTRY.pool(name), GdbEvaluator())))
        except SpecError as err:
            if requested:
                raise
            if notes is not None:
                notes.append(str(err))
        except GdbextError as err:
            if requested:
                raise
            if notes is not None:
                notes.append(f"pool {name}: {err}")
    return out
