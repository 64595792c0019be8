#!/usr/bin/env bash
# gdbext-ci.sh -- the two steps of a CI job that triages the core dumps its tests leave.
#
#   gdbext-ci.sh run CMD [ARG...]    run the tests with core dumps enabled; exits with CMD's status
#   gdbext-ci.sh triage BINARY...    triage every core the tests left against the crash history
#
# Environment (all optional):
#   GDBEXT          the gdbext command                      (default: gdbext)
#   GDBEXT_CORES    where the kernel writes cores           (default: ./cores; set kernel.core_pattern to it)
#   GDBEXT_DB       the crash history: a file or postgresql:// URL   (default: .gdbext/crashes.db)
#   GDBEXT_OUT      where the reports go                    (default: gdbext-out)
#   GDBEXT_FAIL_ON  new | any | none                        (default: new)
#   GDBEXT_PAGES    also write the job summary and the HTML page: yes | no   (default: yes)
#
# `triage` gathers the cores (from GDBEXT_CORES, and files named core or core.N under the current
# directory, where a relative core_pattern leaves them) and the BINARY files into GDBEXT_OUT/crashes,
# where gdbext pairs each core with its binary by build-id, then writes GDBEXT_OUT/gdbext.sarif
# (code scanning), gdbext.md (job summary) and gdbext.html (artifact), records every
# core in GDBEXT_DB and exits 1 when a crash signature is new to it (0 when all are known or there is
# no core, 2 when a core could not be analysed).
set -uo pipefail

GDBEXT=${GDBEXT:-gdbext}
CORES=${GDBEXT_CORES:-cores}
DB=${GDBEXT_DB:-.gdbext/crashes.db}
OUT=${GDBEXT_OUT:-gdbext-out}
FAIL_ON=${GDBEXT_FAIL_ON:-new}
PAGES=${GDBEXT_PAGES:-yes}

die() { echo "gdbext-ci.sh: $*" >&2; exit 2; }

# an ELF core file (magic, then e_type ET_CORE little-endian): never move a file that only has the name
is_core() { [ "$(head -c 18 -- "$1" 2>/dev/null | od -An -v -tx1 | tr -d ' \n' | cut -c1-8,33-36)" = "7f454c460400" ]; }

run_tests() {
    [ "$#" -gt 0 ] || die "run: give the test command"
    mkdir -p -- "$CORES"
    ulimit -c unlimited || die "cannot raise the core size limit (ulimit -c)"
    "$@"
}

triage() {
    [ "$#" -gt 0 ] || die "triage: give the binaries the tests ran"
    local crashes="$OUT/crashes" n=0 f
    rm -rf -- "$crashes"
    mkdir -p -- "$crashes"
    case "$DB" in *://*) ;; *) mkdir -p -- "$(dirname -- "$DB")" ;; esac
    while IFS= read -r -d '' f; do
        is_core "$f" || continue
        n=$((n + 1))
        mv -- "$f" "$crashes/crash-$n.core"
    done < <(find . -maxdepth 4 -path "./$OUT" -prune -o -type f \( -name core -o -name 'core.[0-9]*' \) -print0 \
                 2>/dev/null;
             [ -d "$CORES" ] && find "$CORES" -maxdepth 1 -type f -print0)
    if [ "$n" -eq 0 ]; then
        echo "gdbext-ci.sh: no core dumps"
        return 0
    fi
    for f in "$@"; do
        cp -- "$f" "$crashes/" || die "binary $f not found"
    done
    echo "gdbext-ci.sh: $n core dump(s)"
    local status=0
    "$GDBEXT" triage --dir "$crashes" --db "$DB" --fail-on "$FAIL_ON" --format sarif --output "$OUT/gdbext.sarif" \
        || status=$?
    # the same cores for people: a job summary and a page with heap maps (the first run's status is the job's)
    if [ "$PAGES" = yes ]; then
        "$GDBEXT" triage --dir "$crashes" --format markdown --output "$OUT/gdbext.md" 2>/dev/null
        "$GDBEXT" triage --dir "$crashes" --format html --output "$OUT/gdbext.html" 2>/dev/null
    fi
    return "$status"
}

case "${1:-}" in
    run) shift; run_tests "$@" ;;
    triage) shift; triage "$@" ;;
    *) die "usage: gdbext-ci.sh run CMD [ARG...] | gdbext-ci.sh triage BINARY..." ;;
esac
