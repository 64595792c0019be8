# gdbext/forensics/sites.py - allocation sites from recorded return addresses:
# the call instruction before the address (capstone) and its function, file
# and line (the context's symbolizer: gdb inside gdb, ELF/DWARF outside).
"""Allocation sites.

A pool header that records ``__builtin_return_address(0)`` holds the
address the allocator returns to, which is the instruction *after* the call
(often already on the next source line).  :func:`alloc_site` finds the call
instruction that ends there and symbolizes the call itself; without a
decodable call it symbolizes ``pc - 1``, which lies inside the call.
"""
from __future__ import annotations

from typing import Optional

from ..disasm import call_before
from ..errors import GdbextError
from .context import ForensicContext
from .model import AllocSite

__all__ = ["alloc_site", "function_start"]


def function_start(ctx: ForensicContext, pc: int) -> Optional[int]:
    """Start of the function holding ``pc``, from the memory source's symbols."""
    try:
        sym = ctx.mem.symbolize(pc)
    except GdbextError:
        return None
    if sym is None:
        return None
    return pc - sym[1]


def _target(ctx: ForensicContext, target: Optional[int]) -> str:
    """`` <pool_alloc>`` for a direct call's destination."""
    if target is None:
        return ""
    try:
        sym = ctx.mem.symbolize(target)
    except GdbextError:
        return ""
    if sym is None:
        return ""
    return f" <{sym[0]}+{sym[1]:#x}>" if sym[1] else f" <{sym[0]}>"


def alloc_site(ctx: ForensicContext, pc: int, how: str) -> AllocSite:
    """The call that returned to ``pc``, symbolized.

    :param ctx: the context (memory, symbolizer, architecture).
    :param pc: the recorded return address.
    :param how: where the address was recorded (``"g_pool slot 3 header alloc_site"``).
    """
    try:
        call = call_before(ctx.mem, pc, function_start(ctx, pc), ctx.arch)
    except GdbextError:
        call = None
    where = call.address if call is not None else pc - 1
    loc = ctx.site(where) or {}
    detail = (f"call at {call.address:#x} ({call.text}{_target(ctx, call.target)})" if call is not None
              else f"no call decodes before it: symbolized at {pc - 1:#x}")
    line = loc.get("line")
    return AllocSite(function=loc.get("function"), file=loc.get("file"), line=int(line) if line else None, pc=pc,
                     how=f"{how}: return address {pc:#x}, {detail}")
