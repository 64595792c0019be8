"""gdbext's gdb commands: one module per command, found by walking this package.

A command module defines one subclass of :class:`GdbextCommand`; settings
live in ``_settings``.  Nothing is listed by hand, so a new command is one
new file.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import List

from ._base import GdbextCommand
from ._settings import register_settings

__all__ = ["register", "command_classes", "GdbextCommand"]


def command_modules():
    """Every command module of the package, in name order."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            yield importlib.import_module(f"{__name__}.{info.name}")


def command_classes(module) -> List[type]:
    """The :class:`GdbextCommand` subclasses a module defines itself."""
    return [
        obj for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, GdbextCommand) and obj is not GdbextCommand and obj.__module__ == module.__name__
    ]


def register() -> None:
    """Create the settings, then every command (prefixes first, so subcommands find them)."""
    register_settings()
    classes = [cls for module in command_modules() for cls in command_classes(module)]
    for cls in sorted(classes, key=lambda c: c.command_name.count(" ")):
        cls()
