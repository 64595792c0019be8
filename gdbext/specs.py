"""The registry of a team's declarations: packed words and pool specs.

A user's spec file is plain Python that calls :func:`packed_word` and
:func:`pool` (or :func:`declare`)::

    from gdbext.specs import packed_word, pool
    from gdbext.packed import PackedWord, Field
    packed_word(PackedWord("sensor_word_t", [...]), typedef="sensor_word_t")

It is loaded with ``gdbext load FILE`` inside gdb, ``--pools FILE`` on the
command line, or simply imported.  Printers and commands read the registry
when they run, so declarations made after loading gdbext take effect at once.
"""
from __future__ import annotations

import runpy
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from .errors import SpecError
from .packed import PackedWord
from .pools import PoolSpec

__all__ = ["PackedBinding", "Observed", "Registry", "REGISTRY", "packed_word", "pool", "load_file"]


@dataclass(frozen=True)
class PackedBinding:
    """Where a packed layout applies: values of a typedef, or the object at an expression."""

    layout: PackedWord
    typedef: Optional[str] = None
    expression: Optional[str] = None


class Observed:
    """Something whose listeners hear of every change (the printer collection refreshes)."""

    def __init__(self) -> None:
        self._listeners: List[Callable[[], None]] = []

    def subscribe(self, listener: Callable[[], None]) -> None:
        if listener not in self._listeners:
            self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in list(self._listeners):
            listener()


class Registry(Observed):
    """Declarations by name; listeners hear of every change (the gdb adapter re-registers)."""

    def __init__(self) -> None:
        super().__init__()
        self.packed: Dict[str, PackedBinding] = {}
        self.pools: Dict[str, PoolSpec] = {}
        self.files: List[str] = []

    def add_packed(self, binding: PackedBinding) -> None:
        if not (binding.typedef or binding.expression):
            raise SpecError(f"packed word {binding.layout.name}: give typedef= or expression=")
        key = binding.typedef or f"expr:{binding.expression}"
        self.packed[key] = binding
        self._changed()

    def add_pool(self, spec: PoolSpec) -> None:
        self.pools[spec.name] = spec
        self._changed()

    def remove_pool(self, name: str) -> None:
        """Forget a declared pool (a spec that failed validation)."""
        if self.pools.pop(name, None) is not None:
            self._changed()

    def pool(self, name: str) -> PoolSpec:
        try:
            return self.pools[name]
        except KeyError:
            known = ", ".join(sorted(self.pools)) or "none declared"
            raise SpecError(f"no pool named {name!r} ({known})") from None

    def by_typedef(self) -> Dict[str, PackedBinding]:
        return {b.typedef: b for b in self.packed.values() if b.typedef}

    def by_expression(self) -> List[Tuple[str, PackedBinding]]:
        return [(b.expression, b) for b in self.packed.values() if b.expression]

    def clear(self) -> None:
        self.packed.clear()
        self.pools.clear()
        self.files.clear()
        self._changed()


#: The process-wide registry that printers and commands read.
REGISTRY = Registry()


def packed_word(layout: PackedWord, typedef: Optional[str] = None, expression: Optional[str] = None) -> PackedWord:
    """Declare that values of ``typedef`` (or the object at ``expression``) hold ``layout``."""
    REGISTRY.add_packed(PackedBinding(layout, typedef, expression))
    return layout


def pool(spec: PoolSpec) -> PoolSpec:
    """Declare a custom pool allocator."""
    REGISTRY.add_pool(spec)
    return spec


def load_file(path: str) -> None:
    """Run a user's spec file (Python that calls :func:`packed_word` / :func:`pool`).

    Errors in the file become one :class:`SpecError` naming the file and line.
    """
    try:
        runpy.run_path(path, run_name="gdbext_specs")
    except FileNotFoundError:
        raise SpecError(f"spec file {path} not found") from None
    except SpecError as err:
        raise SpecError(f"{path}: {err}") from None
    except SyntaxError as err:
        raise SpecError(f"{path}:{err.lineno}: syntax error: {err.msg}") from None
    except Exception as err:  # a user's file may raise anything; report it in one line
        tb = err.__traceback__
        line = None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == path:
                line = tb.tb_lineno
            tb = tb.tb_next
        where = f"{path}:{line}" if line else path
        raise SpecError(f"{where}: {type(err).__name__}: {err}") from None
    if path not in REGISTRY.files:
        REGISTRY.files.append(path)
