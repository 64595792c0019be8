"""Tab completion for gdbext commands: options, their values, and positional arguments.

A command declares what its arguments complete to (:class:`Completion`):
its option names come from its argparse parser; an option's value and the
positional arguments complete to a gdb completer (expressions complete as
for ``print``, file names as for ``file``) or to a list computed on the spot
(declared pool names, heap states).

gdb hands ``complete`` the whole argument text and the last "word" as its
own word-break characters cut it (``-`` and ``,`` break words, so after
``--st`` the word is ``st``).  Candidates are matched against the whole
current token and returned cut to the part gdb will replace.
"""
from __future__ import annotations

import enum
import os
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Union

import gdb  # type: ignore[import-not-found]

__all__ = ["Completion", "Complete", "complete_arguments", "file_names", "pool_names", "comma_list", "words"]


class Complete(enum.Enum):
    """What an argument completes to, when gdb's own completers do it."""

    NOTHING = "nothing"
    EXPRESSION = "expression"  #: as ``print`` completes (symbols, struct fields)
    SYMBOL = "symbol"  #: symbol and type names

    def gdb_constant(self) -> int:
        return {
            Complete.NOTHING: gdb.COMPLETE_NONE, Complete.EXPRESSION: gdb.COMPLETE_EXPRESSION,
            Complete.SYMBOL: gdb.COMPLETE_SYMBOL,
        }[self]  # fmt: skip


#: A list of candidates computed from the token being completed.
Candidates = Callable[[str], Iterable[str]]
Target = Union[Complete, Candidates]


@dataclass
class Completion:
    """What one command's arguments complete to."""

    #: builds the command's ArgumentParser (its options are listed from it)
    parser: Optional[Callable[[], object]] = None
    #: what a positional argument completes to
    positional: Target = Complete.NOTHING
    #: what the value of an option completes to, by option name (unlisted: nothing)
    values: Dict[str, Target] = field(default_factory=dict)


def _options(parser: object) -> Dict[str, bool]:
    """Option name -> whether it takes a value, from an argparse parser."""
    out: Dict[str, bool] = {}
    # argparse has no public listing of its actions; _actions has been stable since Python 3.2
    for action in getattr(parser, "_actions", []):
        for name in action.option_strings:
            if name.startswith("--"):
                out[name] = action.nargs != 0
    return out


def words(choices: Sequence[str]) -> Candidates:
    """Candidates from a fixed list."""
    return lambda _token: list(choices)


def comma_list(choices: Sequence[str]) -> Candidates:
    """Candidates for ``A,B,...``: the last item completes to one of ``choices``."""

    def candidates(token: str) -> List[str]:
        head = token[: token.rfind(",") + 1]
        return [head + c for c in choices]

    return candidates


#: Most directory entries offered for one file-name completion.
MAX_FILE_CANDIDATES = 1000


def file_names(token: str) -> List[str]:
    """Paths completing ``token``: the entries of its directory, directories with a trailing ``/``.

    gdb's own COMPLETE_FILENAME completes the whole argument text, so it only
    works for a command's first argument; this works after options too.
    """
    directory, _, stem = token.rpartition("/")
    if token.startswith("/") and not directory:
        directory = "/"
    listed = os.path.expanduser(directory) if directory else "."
    try:
        names = sorted(os.listdir(listed))[:MAX_FILE_CANDIDATES]
    except OSError:
        return []
    head = token[: len(token) - len(stem)]
    out = []
    for name in names:
        if name.startswith(stem) and (stem.startswith(".") or not name.startswith(".")):
            out.append(head + name + ("/" if os.path.isdir(os.path.join(listed, name)) else ""))
    return out


def pool_names(_token: str) -> List[str]:
    """The pools declared so far (``gdbext load``)."""
    from gdbext.specs import REGISTRY

    return sorted(REGISTRY.pools)


def complete_arguments(how: Completion, text: str, word: Optional[str]) -> Union[int, List[str]]:
    """The answer to gdb's ``complete(text, word)``: a gdb COMPLETE_* constant or the candidates."""
    tokens = re.split(r"[ \t]+", text)
    current = tokens[-1]
    previous = tokens[-2] if len(tokens) > 1 else None
    options = _options(how.parser()) if how.parser is not None else {}
    target: Target
    if previous is not None and options.get(previous):
        target = how.values.get(previous, Complete.NOTHING)
    elif current.startswith("-"):
        target = words(sorted(options))
    elif how.positional is Complete.NOTHING:
        target = words(sorted(options))
    else:
        target = how.positional
    if isinstance(target, Complete):
        return target.gdb_constant()
    cut = len(current) - len(word) if word is not None and current.endswith(word) else 0
    return [c[cut:] for c in target(current) if c.startswith(current)]
