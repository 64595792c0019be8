"""The base of every gdbext command: argument splitting and the one error boundary.

Errors of the core (:class:`gdbext.errors.GdbextError`) and gdb memory errors
become a one-line ``gdb.GdbError``; anything else is a bug, reported in one
line too unless ``set gdbext debug on`` asks for the traceback.
"""
from __future__ import annotations

import argparse
from typing import List, Optional, Union

import gdb  # type: ignore[import-not-found]

from gdbext.errors import GdbextError

from . import _output
from ._complete import Completion, complete_arguments

__all__ = ["GdbextCommand", "ArgumentParser", "parse_address"]


class _ArgError(Exception):
    pass


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises instead of exiting the debugger."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _ArgError(f"{self.prog}: {message}")

    def exit(self, status: int = 0, message: Optional[str] = None) -> None:  # type: ignore[override]
        if message:
            raise _ArgError(message.strip())
        raise _ArgError("")


def parse_address(text: str) -> int:
    """An address argument: a number (0x..., decimal) or a gdb expression typed by the user."""
    try:
        return int(text, 0)
    except ValueError:
        pass
    try:
        value = gdb.parse_and_eval(text)
        if value.type.strip_typedefs().code == gdb.TYPE_CODE_ARRAY:
            value = value.address
        return int(value)
    except gdb.error as err:
        raise GdbextError(f"cannot use {text!r} as an address: {err}") from None


class GdbextCommand(gdb.Command):
    """Base class; subclasses set ``command_name`` and implement :meth:`run`."""

    command_name = ""
    command_class = gdb.COMMAND_DATA
    prefix = False
    #: what the arguments complete to (None: nothing; a prefix completes its subcommands)
    completion: Optional[Completion] = None

    def __init__(self) -> None:
        # -1: gdb asks complete() (gdb's COMPLETE_NONE here would silence it)
        completer = -1 if self.completion is not None else gdb.COMPLETE_NONE
        super().__init__(self.command_name, self.command_class, completer, self.prefix)

    def run(self, argv: List[str], from_tty: bool) -> None:
        raise NotImplementedError

    def complete(self, text: str, word: Optional[str]) -> Union[int, List[str]]:
        """gdb's tab completion of the arguments (see :mod:`._complete`)."""
        if self.completion is None:
            return gdb.COMPLETE_NONE
        return complete_arguments(self.completion, text, word)

    def invoke(self, arg: str, from_tty: bool) -> None:
        try:
            _output.begin()
            self.run(gdb.string_to_argv(arg), from_tty)
        except _ArgError as err:
            raise gdb.GdbError(str(err) or f"{self.command_name}: bad arguments") from None
        except GdbextError as err:
            raise gdb.GdbError(f"{self.command_name}: {err}") from None
        except gdb.MemoryError as err:
            raise gdb.GdbError(f"{self.command_name}: {err}") from None
        except (gdb.GdbError, KeyboardInterrupt):
            raise
        except Exception as err:  # a bug of ours: one line, unless the user asked for the traceback
            if _debug():
                raise
            raise gdb.GdbError(
                f"{self.command_name}: internal error: {type(err).__name__}: {err} "
                f"(set gdbext debug on for the traceback)"
            ) from None


def _debug() -> bool:
    try:
        return bool(gdb.parameter("gdbext debug"))
    except (gdb.error, RuntimeError):
        return False
