/*
 * conn_gdb_scripts.h -- embed gdbext printers in the program itself.
 *
 * Include it in exactly one .c file.  It adds an inline Python script to the
 * .debug_gdb_scripts section; gdb runs it when it loads the binary, provided
 * the binary lies under `auto-load safe-path` and gdbext is loaded first
 * (from ~/.gdbinit).  The script is the struct printer of conn_printers.py
 * in one line.
 */
__asm__(
    ".pushsection \".debug_gdb_scripts\", \"MS\", @progbits, 1\n"
    ".byte 4\n"                                            /* 4: an inline Python script */
    ".ascii \"gdbext-conn-printers\\n\"\n"                 /* its name in `info auto-load` */
    ".ascii \"from gdbext.kit import Names, struct_printer\\n\"\n"
    ".ascii \"struct_printer('struct conn', summary='fd {fd} {state}',\\n\"\n"
    ".ascii \"    fields={'state': Names({0: 'IDLE', 1: 'HANDSHAKE', 2: 'OPEN', 3: 'CLOSING'})})\\n\"\n"
    ".byte 0\n"
    ".popsection\n");
