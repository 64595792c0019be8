/* crashy.c - the program under test in docs/ci.md's example: `crashy null` dereferences a NULL
   pointer in parse_config, `crashy abort` aborts in check_limits, anything else exits 0. */
#include <stdlib.h>
#include <string.h>

struct config { const char *name; int limit; };

__attribute__((noinline)) static int parse_config(struct config *cfg) { return cfg->limit; }

__attribute__((noinline)) static void check_limits(int limit)
{
    if (limit < 0)
        abort();
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "null") == 0)
        return parse_config(NULL);
    if (argc > 1 && strcmp(argv[1], "abort") == 0)
        check_limits(-1);
    return 0;
}
