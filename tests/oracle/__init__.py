"""AddressSanitizer as the oracle: a generated corpus of C programs, each with
one injected heap bug, built twice (ASan, plain), scored field by field.

``cases`` chooses a case from a seed and says, by rule and before anything
runs, whether a core can show the bug at all; ``csource`` writes the program;
``asan`` parses AddressSanitizer's report; ``runner`` builds, runs and triages;
``score`` compares gdbext's JSON with the oracle and aggregates the table.
``python -m tests.oracle`` (``make accuracy``) runs a corpus and prints it.
"""
