/*
 * conn.c -- the example program of docs/printer-kit.md: a toy server's
 * connections, allocated from a small fixed-slot pool.
 *
 * What gdb shows as raw numbers: `state` and `flags` are #define'd codes,
 * `id` is a hand-packed 64-bit word, and the pool is an array of slots with
 * a header, the connection and guard bytes.  main() opens three connections,
 * closes one, and calls poll_events(): break there to look at them.
 *
 * Build: gcc -g -O0 -o conn conn.c
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define CONN_IDLE      0
#define CONN_HANDSHAKE 1
#define CONN_OPEN      2
#define CONN_CLOSING   3

#define CONN_READ      0x1u
#define CONN_WRITE     0x2u
#define CONN_TLS       0x4u
#define CONN_KEEPALIVE 0x8u

/* conn_id_t: bits 0-15 slot, 16-47 generation, 48-55 shard, 56-63 kind */
typedef uint64_t conn_id_t;
#define CONN_ID(kind, shard, gen, slot) \
    (((uint64_t)(kind) << 56) | ((uint64_t)(shard) << 48) | ((uint64_t)(gen) << 16) | (uint64_t)(slot))
#define KIND_CLIENT 0
#define KIND_PEER   1
#define KIND_ADMIN  2

struct conn {
    int fd;
    uint8_t state;          /* CONN_IDLE ... */
    unsigned flags;         /* CONN_READ | ... */
    uint32_t timeout_ms;
    char peer[16];
    conn_id_t id;
    unsigned retries : 3;
    unsigned ipv6 : 1;
};

/* The pool: NSLOTS slots of a header, one struct conn and 8 guard bytes. */
#define NSLOTS     4
#define SLOT_USED  0xC0FFEE01u
#define SLOT_FREE  0xF4EEF4EEu
#define GUARD_BYTE 0xFD

struct slot_hdr {
    uint32_t magic;
    uint32_t size;                  /* bytes the caller asked for */
    void *site;                     /* return address of the allocating call */
    struct slot_hdr *next_free;
};

struct slot {
    struct slot_hdr hdr;
    struct conn conn;
    unsigned char guard[8];
};

struct conn_pool {
    unsigned nslots;
    struct slot_hdr *free_head;
    struct slot slots[NSLOTS];
};

struct conn_pool g_pool;
struct conn *g_conns[3];

static void pool_init(void)
{
    g_pool.nslots = NSLOTS;
    for (int i = NSLOTS - 1; i >= 0; i--) {
        struct slot *s = &g_pool.slots[i];
        s->hdr.magic = SLOT_FREE;
        s->hdr.next_free = g_pool.free_head;
        memset(s->guard, GUARD_BYTE, sizeof s->guard);
        g_pool.free_head = &s->hdr;
    }
}

__attribute__((noinline))
static struct conn *pool_alloc(void)
{
    struct slot_hdr *h = g_pool.free_head;
    g_pool.free_head = h->next_free;
    h->magic = SLOT_USED;
    h->size = sizeof(struct conn);
    h->site = __builtin_return_address(0);
    return &((struct slot *)h)->conn;
}

static void pool_free(struct conn *c)
{
    struct slot_hdr *h = (struct slot_hdr *)((char *)c - sizeof(struct slot_hdr));
    h->magic = SLOT_FREE;
    h->next_free = g_pool.free_head;
    g_pool.free_head = h;
}

static struct conn *open_conn(int fd, const char *peer, unsigned flags, int kind)
{
    struct conn *c = pool_alloc();
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->state = CONN_HANDSHAKE;
    c->flags = flags;
    c->timeout_ms = 1500;
    strncpy(c->peer, peer, sizeof c->peer - 1);
    c->id = CONN_ID(kind, 3, 42 + fd, (struct slot *)((char *)c - sizeof(struct slot_hdr)) - g_pool.slots);
    return c;
}

__attribute__((noinline))
static void poll_events(struct conn **conns, int n)
{
    for (int i = 0; i < n; i++)
        printf("fd %d state %d\n", conns[i]->fd, conns[i]->state);
}

int main(void)
{
    pool_init();
    g_conns[0] = open_conn(7, "10.0.0.7", CONN_READ | CONN_WRITE, KIND_CLIENT);
    g_conns[1] = open_conn(9, "192.168.1.20", CONN_READ | CONN_TLS | CONN_KEEPALIVE, KIND_PEER);
    g_conns[2] = open_conn(11, "::1", CONN_READ, KIND_ADMIN);
    g_conns[0]->state = CONN_OPEN;
    g_conns[1]->state = CONN_CLOSING;
    g_conns[1]->retries = 5;
    g_conns[2]->ipv6 = 1;
    pool_free(g_conns[2]);
    g_conns[2] = NULL;
    poll_events(g_conns, 2);
    return 0;
}
