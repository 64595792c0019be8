"""The C program of a pool case: the fixture's fixed-slot pool allocator.

The allocator is fixtures/src/pool_overflow.c's (same structs, same global
``g_pool``), so fixtures/specs/pool_overflow.py describes it: 16 slots of a
24-byte header (magic, requested size, recorded return address, free link),
a 48-byte payload and 8 guard bytes.  Built with ASan, the allocator poisons
everything but the live payloads' requested bytes
(``ASAN_POISON_MEMORY_REGION``), so ASan reports the same bad accesses it
would for malloc (as ``use-after-poison``: ASan knows no pool's kinds, the
case does).
"""
from __future__ import annotations

from .cases import PERTURB_BYTE, Case, Neighbour
from .csource import _HEADER, _summary, scenario_tail, truth_lines

POOL_ALLOCATOR = r'''#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif
#define POOL_SLOTS 16
#define SLOT_PAYLOAD 48
#define SLOT_GUARD 8
struct slot_hdr { uint32_t magic; uint32_t req_size; void *alloc_site; struct slot_hdr *next_free; };
struct slot { struct slot_hdr hdr; unsigned char payload[SLOT_PAYLOAD]; unsigned char guard[SLOT_GUARD]; };
struct pool { uint32_t slot_size; uint32_t nslots; uint32_t in_use; struct slot_hdr *free_head;
              struct slot slots[POOL_SLOTS]; };
struct pool g_pool;

static void pool_init(void)
{
    g_pool.slot_size = sizeof(struct slot);
    g_pool.nslots = POOL_SLOTS;
    for (int i = POOL_SLOTS - 1; i >= 0; i--) {
        struct slot *s = &g_pool.slots[i];
        s->hdr.magic = 0xF4EEF4EEu;
        memset(s->payload, 0xDD, SLOT_PAYLOAD);
        memset(s->guard, 0xFD, SLOT_GUARD);
        s->hdr.next_free = g_pool.free_head;
        g_pool.free_head = &s->hdr;
    }
    POISON(g_pool.slots, sizeof g_pool.slots);
}

__attribute__((noinline)) void *pool_alloc(size_t n)
{
    struct slot_hdr *h = g_pool.free_head;
    if (h == NULL || n > SLOT_PAYLOAD)
        return NULL;
    UNPOISON(h, sizeof(struct slot));
    g_pool.free_head = h->next_free;
    struct slot *s = (struct slot *)h;
    h->magic = 0xA110C8EDu;
    h->req_size = (uint32_t)n;
    h->alloc_site = __builtin_return_address(0);
    memset(s->payload, 0xCD, SLOT_PAYLOAD);
    memset(s->guard, 0xFD, SLOT_GUARD);
    g_pool.in_use++;
    POISON(s, sizeof *s);
    UNPOISON(s->payload, n);
    return s->payload;
}

__attribute__((noinline)) void pool_free(void *p)
{
    struct slot *s = (struct slot *)((char *)p - offsetof(struct slot, payload));
    UNPOISON(s, sizeof *s);
    s->hdr.magic = 0xF4EEF4EEu;
    memset(s->payload, 0xDD, SLOT_PAYLOAD);
    s->hdr.next_free = g_pool.free_head;
    g_pool.free_head = &s->hdr;
    g_pool.in_use--;
    POISON(s, sizeof *s);
}

#define ALLOC(n) pool_alloc(n)
__attribute__((noinline)) char *alloc_buffer(size_t n) { return pool_alloc(n); }
__attribute__((noinline)) char *alloc_neighbour(size_t n) { return pool_alloc(n); }
__attribute__((noinline)) void release(void *p) { pool_free(p); }'''


def pool_program(case: Case) -> str:
    """The whole C source of a pool ``case``."""
    params = dict(allocator=POOL_ALLOCATOR, seed=case.seed, summary=_summary(case), request=case.request,
                  nrequest=case.request, extent=case.extent, field_offset=case.field_offset,
                  field_size=case.field_size, perturb=0, perturb_byte=PERTURB_BYTE, threads=case.threads)
    header = (_HEADER % params).replace("#include <stdint.h>", "#include <stddef.h>\n#include <stdint.h>")
    lines = [header, "static void *scenario(void *arg)\n{\n    (void)arg;",
             "    pool_init();",
             "    volatile char *pad = ALLOC(%d);\n    (void)pad;" % (8 + case.seed % 40),
             "    char *other = ALLOC(REQ);\n    (void)other;",
             "    char *buf = alloc_buffer(REQ);"]
    if case.neighbour is Neighbour.TOP:   # the next slot was never handed out
        lines.append("    char *nb = NULL;")
    else:
        lines.append("    char *nb = alloc_neighbour(NREQ);\n    make_text(nb, NREQ, 29);")
    if case.neighbour is Neighbour.FREE:
        lines.append("    release(nb);")
    lines.append(truth_lines(usable="REQ", other=False))
    return "\n".join(lines + [scenario_tail(case, params)])
