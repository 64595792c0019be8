"""Pool specs for a talloc program (fixtures/src/talloc_overflow.c): its talloc_pool and its whole tree.

Load with `gdbext load specs/talloc.py`.  For your program, change the two
expressions: the pointer talloc_pool() returned, and a top-level context.
"""
from gdbext.pools.presets import talloc_pool, talloc_tree
from gdbext.specs import pool

pool(talloc_pool("records", "g_pool"))   # heapwalk --pool records
pool(talloc_tree("talloc", "g_root"))    # heapwalk --pool talloc: every allocation under g_root
