"""Pool spec for an APR program (fixtures/src/apr_overflow.c): the memory nodes of one apr_pool_t.

Load with `gdbext load specs/apr.py`.  For your program, change the expression
that reaches the pool (an `apr_pool_t *`); declare one spec per pool to watch.
"""
from gdbext.pools.presets import apr_pool
from gdbext.specs import pool

pool(apr_pool("apr", "g_pool"))   # heapwalk --pool apr; print g_pool
